//! Shared fixtures for the `ferrule` binary's integration tests: a [`Server`] that runs the real
//! binary on port-0 listeners in a temporary data dir, bounded process helpers ([`run`], [`Bg`]),
//! thin wrappers around the real `mosquitto_pub` / `mosquitto_sub` clients, the real `aws` CLI
//! against the control plane ([`Server::aws`]), certificates made with `openssl` ([`Pki`]), a
//! small Rust MQTT client for exact reason codes ([`Conn`]) and the admin event subscriber
//! ([`Events`]).
//!
//! The `mqtts` listener requires a registered device certificate: the mosquitto and paho helpers
//! present the server's default device ([`Server::default_device`], registered ACTIVE under a
//! fixture CA with an allow-all policy, made on first use).
//!
//! Every wait is bounded and every process started here is killed when its guard drops. When a
//! test fails, the server's stderr is printed so the failure can be read next to the broker's log.

#![allow(dead_code)] // each test binary uses a different subset

mod aws;
mod events;
mod functions;
mod hook;
mod http;
mod mosquitto;
mod mqtt;
mod paho;
mod pki;
mod process;
mod rules;

#[allow(unused_imports)] // each test binary uses a different subset
pub(crate) use self::{
    aws::*, events::*, functions::*, hook::*, http::*, mosquitto::*, mqtt::*, paho::*, pki::*,
    process::*, rules::*,
};

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to write `listeners.toml`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to exit after SIGTERM.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Default bound for a single client command or an awaited line.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The addresses in `DATA_DIR/listeners.toml`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listeners {
    pub(crate) mqtts: Option<SocketAddr>,
    pub(crate) mqtt: Option<SocketAddr>,
    pub(crate) ws: Option<SocketAddr>,
    pub(crate) wss: Option<SocketAddr>,
    pub(crate) api: Option<SocketAddr>,
}

impl Listeners {
    /// Parses `key = "addr"` lines; an unknown key or a bad address is an error.
    pub(crate) fn parse(text: &str) -> Result<Listeners, String> {
        let mut l = Listeners::default();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("no '=' in line {line:?}"))?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("value not quoted in line {line:?}"))?;
            let addr: SocketAddr = value
                .parse()
                .map_err(|e| format!("bad address in line {line:?}: {e}"))?;
            let slot = match key.trim() {
                "mqtts" => &mut l.mqtts,
                "mqtt" => &mut l.mqtt,
                "ws" => &mut l.ws,
                "wss" => &mut l.wss,
                "api" => &mut l.api,
                other => return Err(format!("unknown listener {other:?} in line {line:?}")),
            };
            if slot.replace(addr).is_some() {
                return Err(format!("listener {key:?} named twice"));
            }
        }
        Ok(l)
    }
}

/// A running `ferrule serve`, on port-0 listeners (all five unless told otherwise), with its own
/// data dir. Dropping it sends SIGTERM and waits; a failing test gets the server's stderr printed.
pub(crate) struct Server {
    child: Option<Child>,
    /// Holds the data dir and the log; removed on drop.
    root: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    args: Vec<OsString>,
    /// Extra environment variables (`FERRULE_*` settings), kept across restarts.
    env: Vec<(OsString, OsString)>,
    listeners: Listeners,
    starts: u32,
    /// The aws CLI runner and credentials file ([`Server::aws`]).
    aws: Arc<AwsShared>,
    /// The fixture CA, policy and default device ([`provision_device`]), made on first use.
    fixture: OnceLock<Fixture>,
}

/// The flags that put every listener on a free port.
pub(crate) fn all_listener_args() -> Vec<OsString> {
    [
        "--mqtts-listen",
        "--mqtt-listen",
        "--ws-listen",
        "--wss-listen",
        "--api-listen",
    ]
    .iter()
    .flat_map(|f| [OsString::from(f), OsString::from("127.0.0.1:0")])
    .collect()
}

/// The `ferrule` binary cargo built for these tests.
pub(crate) fn ferrule_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrule")
}

impl Server {
    /// Starts the binary with all five listeners on port 0.
    pub(crate) fn start() -> Server {
        Server::start_with(all_listener_args())
    }

    /// Starts the binary with `serve --data-dir DIR` and `args` (which name the listeners).
    pub(crate) fn start_with(args: Vec<OsString>) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Like [`Server::start_with`], with these environment variables set for the binary.
    pub(crate) fn start_with_env(args: Vec<OsString>, env: &[(&str, &str)]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("ferrule-it-")
            .tempdir()
            .expect("creating a temp dir");
        let data_dir = root.path().join("data");
        let log_path = root.path().join("ferrule.stderr.log");
        let aws = Arc::new(AwsShared::new(&data_dir));
        let mut server = Server {
            child: None,
            root,
            data_dir,
            log_path,
            args,
            env: env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect(),
            listeners: Listeners::default(),
            starts: 0,
            aws,
            fixture: OnceLock::new(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let _ = std::fs::remove_file(self.data_dir.join("listeners.toml"));
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the log file");
        writeln!(log, "===== ferrule serve, start #{} =====", self.starts)
            .expect("writing the log file");
        let child = Command::new(ferrule_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("FERRULE_LOG", "info,ferrule_broker=debug")
            // Plain log lines, so tests can search them.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning the ferrule binary");
        self.child = Some(child);
        self.listeners = self.wait_for_listeners();
    }

    fn wait_for_listeners(&mut self) -> Listeners {
        let path = self.data_dir.join("listeners.toml");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                match Listeners::parse(&text) {
                    Ok(l) => return l,
                    Err(e) => panic!("{} is malformed: {e}\n---\n{text}", path.display()),
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!(
                    "ferrule serve exited with {status} before writing listeners.toml\n{}",
                    self.log_dump()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "ferrule serve did not write {} within {START_TIMEOUT:?}\n{}",
                    path.display(),
                    self.log_dump()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data dir (kept across [`Server::restart`]).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What [`Server::aws`] shares between handles.
    pub(crate) fn aws_shared(&self) -> &Arc<AwsShared> {
        &self.aws
    }

    /// The fixture CA (registered ACTIVE, auto-registration off), the allow-all policy and the
    /// default device, made through the aws CLI on first use.
    pub(crate) fn fixture(&self) -> &Fixture {
        self.fixture
            .get_or_init(|| Fixture::create(self, &self.root.path().join("fixture-pki")))
    }

    /// The device certificate the mosquitto and paho helpers present on TLS listeners:
    /// registered ACTIVE with the allow-all policy attached.
    pub(crate) fn default_device(&self) -> &Cert {
        &self.fixture().default_device
    }

    /// A scratch directory that lives as long as the server.
    pub(crate) fn scratch(&self) -> PathBuf {
        let dir = self.root.path().join("scratch");
        std::fs::create_dir_all(&dir).expect("creating the scratch dir");
        dir
    }

    /// The development CA clients must trust.
    pub(crate) fn ca(&self) -> PathBuf {
        self.data_dir.join("server-ca.pem")
    }

    pub(crate) fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    pub(crate) fn mqtts(&self) -> SocketAddr {
        self.listeners.mqtts.expect("the mqtts listener is enabled")
    }

    pub(crate) fn mqtt(&self) -> SocketAddr {
        self.listeners.mqtt.expect("the mqtt listener is enabled")
    }

    pub(crate) fn ws(&self) -> SocketAddr {
        self.listeners.ws.expect("the ws listener is enabled")
    }

    pub(crate) fn wss(&self) -> SocketAddr {
        self.listeners.wss.expect("the wss listener is enabled")
    }

    pub(crate) fn api(&self) -> SocketAddr {
        self.listeners.api.expect("the api listener is enabled")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Everything the server wrote to stderr so far (all runs).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn log_dump(&self) -> String {
        format!(
            "----- ferrule stderr ({}) -----\n{}----- end of ferrule stderr -----",
            self.log_path.display(),
            self.log()
        )
    }

    /// Waits until the server's stderr contains `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                panic!(
                    "the server never logged {needle:?} within {timeout:?}\n{}",
                    self.log_dump()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server has logged a line that satisfies `pred`.
    pub(crate) fn wait_for_log_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !self.log().lines().any(&pred) {
            if Instant::now() > deadline {
                panic!(
                    "the server never logged {what} within {timeout:?}\n{}",
                    self.log_dump()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server has logged the end of `client_id`'s connection, however it ended.
    pub(crate) fn wait_for_client_gone(&self, client_id: &str) {
        let needle = format!("client_id={client_id} ");
        self.wait_for_log_line(
            &format!("the end of {client_id}'s connection"),
            CLIENT_TIMEOUT,
            |l| {
                l.contains(&needle)
                    && [
                        "client disconnected",
                        "connection lost",
                        "connection closed",
                    ]
                    .iter()
                    .any(|m| l.contains(m))
            },
        );
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status. Panics if it does not exit.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends `SIG<signal>` (e.g. "TERM", "INT") and waits for the exit; returns the exit status.
    /// Panics (after SIGKILL) if it does not exit within [`STOP_TIMEOUT`].
    pub(crate) fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        send_signal(&child, signal);
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ferrule serve did not exit within {STOP_TIMEOUT:?} of SIG{signal} (killed)\n{}",
                    self.log_dump()
                )
            }
        }
    }

    /// Stops the server (asserting a clean exit) and starts it again on the same data dir. The
    /// listeners get new ports.
    pub(crate) fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "ferrule serve exited with {status} after SIGTERM\n{}",
            self.log_dump()
        );
        self.spawn();
    }

    /// Stops the server (asserting a clean exit) and starts it again with `extra` flags added.
    pub(crate) fn restart_adding_args(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(OsString::from));
        self.restart();
    }

    /// Stops the server (asserting a clean exit), lets `between` change the stopped server's
    /// data dir, and starts it again. The listeners get new ports.
    pub(crate) fn restart_with(&mut self, between: impl FnOnce(&Path)) {
        let status = self.stop();
        assert!(
            status.success(),
            "ferrule serve exited with {status} after SIGTERM\n{}",
            self.log_dump()
        );
        between(&self.data_dir);
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child, STOP_TIMEOUT);
        }
        if thread::panicking() {
            eprintln!("{}", self.log_dump());
        }
        // `root` (data dir and log) is removed after this.
    }
}

/// A topic prefix unique to one test, so tests sharing nothing still never cross.
pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Asserts that a program this suite needs is installed, with a message that says what to install.
pub(crate) fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not on PATH; these tests need it (install {package})"
    );
}

/// The file `name` in a fresh temp dir with `contents`; the dir lives as long as the guard.
pub(crate) fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    let mut f = File::create(&path).expect("creating a temp file");
    f.write_all(contents).expect("writing a temp file");
    (dir, path)
}
