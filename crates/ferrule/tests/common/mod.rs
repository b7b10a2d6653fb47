//! Shared fixtures for the `ferrule` binary's integration tests: a [`Server`] that runs the real
//! binary on port-0 listeners in a temporary data dir, bounded process helpers ([`run`], [`Bg`]),
//! and thin wrappers around the real `mosquitto_pub` / `mosquitto_sub` clients.
//!
//! Every wait is bounded and every process started here is killed when its guard drops. When a
//! test fails, the server's stderr is printed so the failure can be read next to the broker's log.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::{OsStr, OsString};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
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
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').ok_or_else(|| format!("no '=' in line {line:?}"))?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("value not quoted in line {line:?}"))?;
            let addr: SocketAddr = value.parse().map_err(|e| format!("bad address in line {line:?}: {e}"))?;
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
    listeners: Listeners,
    starts: u32,
}

/// The flags that put every listener on a free port.
pub(crate) fn all_listener_args() -> Vec<OsString> {
    ["--mqtts-listen", "--mqtt-listen", "--ws-listen", "--wss-listen", "--api-listen"]
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
        let root = tempfile::Builder::new().prefix("ferrule-it-").tempdir().expect("creating a temp dir");
        let data_dir = root.path().join("data");
        let log_path = root.path().join("ferrule.stderr.log");
        let mut server =
            Server { child: None, root, data_dir, log_path, args, listeners: Listeners::default(), starts: 0 };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let _ = std::fs::remove_file(self.data_dir.join("listeners.toml"));
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("opening the log file");
        writeln!(log, "===== ferrule serve, start #{} =====", self.starts).expect("writing the log file");
        let child = Command::new(ferrule_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
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
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("ferrule serve exited with {status} before writing listeners.toml\n{}", self.log_dump());
                }
            }
            if Instant::now() > deadline {
                panic!("ferrule serve did not write {} within {START_TIMEOUT:?}\n{}", path.display(), self.log_dump());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data dir (kept across [`Server::restart`]).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
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
        format!("----- ferrule stderr ({}) -----\n{}----- end of ferrule stderr -----", self.log_path.display(), self.log())
    }

    /// Waits until the server's stderr contains `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                panic!("the server never logged {needle:?} within {timeout:?}\n{}", self.log_dump());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server has logged a line that satisfies `pred`.
    pub(crate) fn wait_for_log_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.log().lines().any(&pred) {
            if Instant::now() > deadline {
                panic!("the server never logged {what} within {timeout:?}\n{}", self.log_dump());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server has logged the end of `client_id`'s connection, however it ended.
    pub(crate) fn wait_for_client_gone(&self, client_id: &str) {
        let needle = format!("client_id={client_id} ");
        self.wait_for_log_line(&format!("the end of {client_id}'s connection"), CLIENT_TIMEOUT, |l| {
            l.contains(&needle)
                && ["client disconnected", "connection lost", "connection closed"].iter().any(|m| l.contains(m))
        });
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status. Panics if it does not exit.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        terminate(&mut child, STOP_TIMEOUT).unwrap_or_else(|| {
            panic!("ferrule serve did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)\n{}", self.log_dump())
        })
    }

    /// Stops the server (asserting a clean exit) and starts it again on the same data dir. The
    /// listeners get new ports.
    pub(crate) fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "ferrule serve exited with {status} after SIGTERM\n{}", self.log_dump());
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
        // `root` (the temp dir) is removed after this.
        let _ = self.root.path();
    }
}

/// SIGTERM, then wait up to `timeout`; SIGKILL if it is still running. `None` if it had to be
/// killed.
pub(crate) fn terminate(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match wait_timeout(child, timeout) {
        Some(status) => Some(status),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Waits for `child` to exit for at most `timeout`.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for a child process: {e}"),
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"', '|', '#', '$']) {
            let _ = write!(s, " '{}'", a.replace('\'', "'\\''"));
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

fn read_all_in_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs a command to completion with stdin closed, for at most `timeout` (killed and reported
/// after that). Panics if the program cannot be started, naming it.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e} (is it installed?)"));
    let out = read_all_in_thread(child.stdout.take().expect("piped stdout"));
    let err = read_all_in_thread(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!(
            "`{what}` did not finish within {timeout:?} (killed)\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Like [`run`], with `input` written to the command's stdin (then closed).
pub(crate) fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e} (is it installed?)"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = read_all_in_thread(child.stdout.take().expect("piped stdout"));
    let err = read_all_in_thread(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = writer.join();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!(
            "`{what}` did not finish within {timeout:?} (killed)\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Like [`run`], and asserts that the command succeeded.
pub(crate) fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let what = describe(cmd);
    let out = run(cmd, timeout);
    assert!(
        out.status.success(),
        "`{what}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A background process whose stdout and stderr lines are collected as they come. Killed on drop.
pub(crate) struct Bg {
    what: String,
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every line, for failure reports.
    seen: Vec<String>,
    /// Lines not yet taken by [`Bg::try_line`].
    pending: VecDeque<String>,
    status: Option<ExitStatus>,
}

impl Bg {
    /// Spawns `cmd` with stdin closed. Lines from stderr are prefixed with `[stderr] `.
    pub(crate) fn spawn(cmd: &mut Command) -> Bg {
        Bg::spawn_with_stdin(cmd, Stdio::null())
    }

    pub(crate) fn spawn_with_stdin(cmd: &mut Command, stdin: Stdio) -> Bg {
        let what = describe(cmd);
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e} (is it installed?)"));
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx2.send(format!("[stderr] {line}")).is_err() {
                    break;
                }
            }
        });
        Bg { what, child: Some(child), lines: rx, seen: Vec::new(), pending: VecDeque::new(), status: None }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("process is running").id()
    }

    /// Every line seen so far.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }

    fn transcript(&self) -> String {
        format!("`{}` printed:\n{}", self.what, self.seen.join("\n"))
    }

    /// Takes the first not-yet-taken line that satisfies `pred`, waiting at most `timeout` for
    /// it; `None` on timeout or once the process has closed its output. Lines that do not match
    /// stay available to later calls, in order.
    pub(crate) fn try_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(i) = self.pending.iter().position(|l| pred(l)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                    self.pending.push_back(line);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every line received within `timeout` (until the output closes), without taking any.
    pub(crate) fn drain(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    self.pending.push_back(line);
                }
                Err(_) => return self.pending.iter().cloned().collect(),
            }
        }
    }

    /// Like [`Bg::try_line`], but panics (with everything seen) on timeout.
    pub(crate) fn line(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.try_line(timeout, pred) {
            Some(l) => l,
            None => panic!("no line with {what} within {timeout:?}\n{}", self.transcript()),
        }
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let child = self.child.as_mut().expect("process was started");
        let status = wait_timeout(child, timeout);
        // Collect what is left of the output.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line.clone());
            self.pending.push_back(line);
        }
        match status {
            Some(s) => {
                self.status = Some(s);
                s
            }
            None => panic!("process did not exit within {timeout:?}\n{}", self.transcript()),
        }
    }

    /// SIGKILL: the process gets no chance to say goodbye (no MQTT DISCONNECT).
    pub(crate) fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            if let Ok(s) = child.wait() {
                self.status = Some(s);
            }
        }
    }

    /// SIGTERM and wait.
    pub(crate) fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let s = terminate(child, CLIENT_TIMEOUT);
        self.status = s;
        s
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if thread::panicking() {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            eprintln!("{}", self.transcript());
        }
    }
}

/// How a mosquitto client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Net {
    /// `mqtts` listener, `--cafile server-ca.pem -h localhost`.
    Tls,
    /// `mqtt` listener, `-h 127.0.0.1`.
    Tcp,
}

/// The protocol version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mqtt {
    V311,
    V5,
}

impl Mqtt {
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Mqtt::V311 => "mqttv311",
            Mqtt::V5 => "mqttv5",
        }
    }
}

/// `-h`, `-p`, `-V` and the TLS flags for a mosquitto client.
pub(crate) fn mosq_conn_args(server: &Server, net: Net, v: Mqtt) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    match net {
        Net::Tls => {
            a.extend(["-h".into(), "localhost".into(), "-p".into(), server.mqtts().port().to_string().into()]);
            a.extend([OsString::from("--cafile"), server.ca().into_os_string()]);
        }
        Net::Tcp => {
            a.extend(["-h".into(), "127.0.0.1".into(), "-p".into(), server.mqtt().port().to_string().into()]);
        }
    }
    a.extend(["-V".into(), v.flag().into()]);
    a
}

/// `mosquitto_sub` with stdout line-buffered (it block-buffers into a pipe, which would hold
/// back the "Subscribed" line until it exits).
pub(crate) fn mosquitto_sub_line_buffered() -> Command {
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub"]);
    cmd
}

/// The `-F` format [`Sub`] uses: a fixed prefix, then fields separated by `|`, payload last.
pub(crate) const SUB_FORMAT: &str = "MSG|%t|%q|%r|%p";

/// One message as printed by [`Sub`] with [`SUB_FORMAT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) topic: String,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) payload: String,
}

impl Msg {
    fn parse(line: &str) -> Msg {
        let rest = line.strip_prefix("MSG|").unwrap_or_else(|| panic!("not a message line: {line:?}"));
        let mut f = rest.splitn(4, '|');
        let mut next = || f.next().unwrap_or_else(|| panic!("short message line: {line:?}"));
        let topic = next().to_owned();
        let qos = next().parse().unwrap_or_else(|e| panic!("bad qos in {line:?}: {e}"));
        let retain = next() == "1";
        let payload = next().to_owned();
        Msg { topic, qos, retain, payload }
    }
}

/// A `mosquitto_sub -d` in the background, ready once the server has acknowledged its
/// subscriptions.
pub(crate) struct Sub {
    pub(crate) proc: Bg,
}

impl Sub {
    /// Subscribes to `topics` at `qos` with [`SUB_FORMAT`] output; `extra` goes before the topics.
    pub(crate) fn start(server: &Server, net: Net, v: Mqtt, qos: u8, topics: &[&str], extra: &[&str]) -> Sub {
        Sub::start_fmt(server, net, v, qos, topics, extra, SUB_FORMAT)
    }

    /// Like [`Sub::start`] with a custom `-F` format, which must start with `MSG|`.
    pub(crate) fn start_fmt(
        server: &Server,
        net: Net,
        v: Mqtt,
        qos: u8,
        topics: &[&str],
        extra: &[&str],
        format: &str,
    ) -> Sub {
        assert!(format.starts_with("MSG|"));
        let mut cmd = mosquitto_sub_line_buffered();
        cmd.args(mosq_conn_args(server, net, v)).args(["-d", "-q", &qos.to_string(), "-F", format]).args(extra);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut proc = Bg::spawn(&mut cmd);
        let acks = topics.len();
        // mosquitto_sub sends all topics in one SUBSCRIBE and prints one "Subscribed" line.
        let line = proc.line(CLIENT_TIMEOUT, "a SUBACK", |l| l.starts_with("Subscribed (mid:"));
        let granted = line.split(':').nth(2).map(str::trim).unwrap_or_default().to_owned();
        assert_eq!(granted.split(',').count(), acks, "SUBACK for {topics:?}: {line}");
        Sub { proc }
    }

    /// The next message, parsed; panics after `timeout`.
    pub(crate) fn next(&mut self, timeout: Duration) -> Msg {
        Msg::parse(&self.proc.line(timeout, "a message", |l| l.starts_with("MSG|")))
    }

    /// The next raw message line (for custom formats); panics after `timeout`.
    pub(crate) fn next_raw(&mut self, timeout: Duration) -> String {
        self.proc.line(timeout, "a message", |l| l.starts_with("MSG|"))
    }

    /// The next message if one comes within `timeout`.
    pub(crate) fn try_next(&mut self, timeout: Duration) -> Option<Msg> {
        self.proc.try_line(timeout, |l| l.starts_with("MSG|")).map(|l| Msg::parse(&l))
    }
}

/// Runs `mosquitto_pub` to completion and asserts it succeeded. `extra` holds `-r`, `-D …` etc.
pub(crate) fn publish(server: &Server, net: Net, v: Mqtt, topic: &str, payload: &str, qos: u8, extra: &[&str]) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_conn_args(server, net, v)).args(["-t", topic, "-m", payload, "-q", &qos.to_string()]).args(extra);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// Runs `mosquitto_pub` with the connection flags and `args` (topic, message, options) and
/// asserts it succeeded.
pub(crate) fn pub_args(server: &Server, net: Net, v: Mqtt, args: &[&str]) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_conn_args(server, net, v)).args(args);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// `mosquitto_sub` that stops after `count` messages or `secs` seconds; returns its output.
pub(crate) fn receive(server: &Server, net: Net, v: Mqtt, count: usize, secs: u32, extra: &[&str]) -> Output {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(mosq_conn_args(server, net, v))
        .args(["-F", SUB_FORMAT, "-C", &count.to_string(), "-W", &secs.to_string()])
        .args(extra);
    run(&mut cmd, Duration::from_secs(u64::from(secs) + 10))
}

/// The messages in the output of [`receive`].
pub(crate) fn messages(out: &Output) -> Vec<Msg> {
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("MSG|")).map(Msg::parse).collect()
}

/// A topic prefix unique to one test, so tests sharing nothing still never cross.
pub(crate) fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// `GET path` on the API listener with a bare HTTP/1.1 request; returns (status, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connecting to the API listener");
    s.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(CLIENT_TIMEOUT)).expect("write timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("sending the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("reading the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else { return out };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { return out };
        if n == 0 || rest.len() < n {
            return out;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
}

/// The value of the Prometheus sample whose name-and-labels part is exactly `series`
/// (e.g. `ferrule_messages_received_total{qos="1"}`).
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(name, _)| *name == series).and_then(|(_, v)| v.parse().ok()))
}

/// Asserts that a program this suite needs is installed, with a message that says what to install.
pub(crate) fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "`{program}` is not on PATH; these tests need it (install {package})");
}

/// The file `name` in a fresh temp dir with `contents`; the dir lives as long as the guard.
pub(crate) fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    let mut f = File::create(&path).expect("creating a temp file");
    f.write_all(contents).expect("writing a temp file");
    (dir, path)
}

/// Convenience for building argument lists of mixed string types.
pub(crate) fn os<S: AsRef<OsStr>>(items: &[S]) -> Vec<OsString> {
    items.iter().map(|s| s.as_ref().to_owned()).collect()
}
