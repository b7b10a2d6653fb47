//! Shared fixtures for the control plane's integration tests: a [`Server`] running the real
//! router on a port-0 socket with a SQLite registry in a temporary directory (or a fresh
//! PostgreSQL database), the real `aws` CLI ([`Server::aws`] through the CLI's own entry point
//! in one long-lived process, [`Server::aws_exe_as`] through the executable), boto3 scripts
//! ([`Server::python`]) and `openssl` for certificates ([`Pki`]).
//!
//! Every process is bounded by a timeout and every server stops when its guard drops.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a different subset

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrule_api::{ApiConfig, ApiState, Credential};
use ferrule_testkit::aws_cli::{self, CliRunner};
pub(crate) use ferrule_testkit::aws_cli::{AwsError, CliOutput as Output};
use serde_json::Value;

pub(crate) const ACCESS_KEY_ID: &str = "AKIAFERRULETESTKEY01";
pub(crate) const SECRET_ACCESS_KEY: &str = "ferrule+test/secret/0123456789abcdefghij";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "123456789012";
/// Where the PostgreSQL tests run unless `FERRULE_TEST_POSTGRES_URL` says otherwise.
pub(crate) const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Bound on any one child process (an aws CLI call, a boto3 script, openssl).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(120);

/// Which registry backend a [`Server`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The router served on 127.0.0.1:0 from its own thread and runtime, so tests can call
/// blocking clients directly.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// Holds the SQLite database and the issuing CA; also a scratch dir for the test.
    pub(crate) dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runner: Mutex<Option<CliRunner>>,
    thread: Option<std::thread::JoinHandle<()>>,
    database: Option<PgDatabase>,
}

impl Server {
    pub(crate) fn start(backend: Backend) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let database = (backend == Backend::Postgres).then(PgDatabase::create);
        let pg_url = database.as_ref().map(|d| d.url.clone());
        let data = dir.path().to_owned();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let registry = match pg_url {
                    Some(url) => ferrule_store::Registry::open_postgres(&url).await.unwrap(),
                    None => ferrule_store::Registry::open_sqlite(&data.join("ferrule.db"))
                        .await
                        .unwrap(),
                };
                let issuer = Arc::new(ferrule_pki::Issuer::load_or_create(&data).unwrap());
                let config = ApiConfig {
                    region: REGION.into(),
                    account_id: ACCOUNT.into(),
                    mqtt_endpoint: "localhost:8883".into(),
                    credentials: vec![Credential {
                        access_key_id: ACCESS_KEY_ID.into(),
                        secret_access_key: SECRET_ACCESS_KEY.into(),
                    }],
                };
                let app = ferrule_api::router(ApiState::new(config, registry.clone(), issuer));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
                registry.close().await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the API server starts");
        Server {
            addr,
            dir,
            stop: Some(stop_tx),
            runner: Mutex::new(None),
            thread: Some(thread),
            database,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `aws iot ARGS` with the test credentials; the parsed JSON output, or the error.
    pub(crate) fn aws(&self, args: &[&str]) -> Result<Value, AwsError> {
        self.aws_as(ACCESS_KEY_ID, SECRET_ACCESS_KEY, args)
    }

    /// `aws iot ARGS` that must succeed.
    pub(crate) fn ok(&self, args: &[&str]) -> Value {
        self.aws(args)
            .unwrap_or_else(|e| panic!("aws iot {}: {e}", args.join(" ")))
    }

    /// `aws iot ARGS` that must fail with `code`; returns the message.
    pub(crate) fn fails(&self, code: &str, args: &[&str]) -> String {
        match self.aws(args) {
            Ok(v) => panic!(
                "aws iot {} succeeded ({v}) but should fail with {code}",
                args.join(" ")
            ),
            Err(e) => {
                assert_eq!(e.code, code, "aws iot {}: {}", args.join(" "), e.stderr);
                e.message
            }
        }
    }

    /// `aws iot ARGS` as `key`/`secret`, run by the aws CLI's own entry point in a long-lived
    /// Python process ([`CliRunner`]).
    pub(crate) fn aws_as(&self, key: &str, secret: &str, args: &[&str]) -> Result<Value, AwsError> {
        self.run_cli(key, secret, self.cli_args("iot", args))
    }

    /// `aws SERVICE ARGS` (another service on the same endpoint, `logs` say) with the test
    /// credentials, through the long-lived runner.
    pub(crate) fn aws_in(&self, service: &str, args: &[&str]) -> Result<Value, AwsError> {
        self.run_cli(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            self.cli_args(service, args),
        )
    }

    fn run_cli(&self, key: &str, secret: &str, full: Vec<String>) -> Result<Value, AwsError> {
        let mut runner = self.runner.lock().unwrap();
        let runner = runner.get_or_insert_with(|| {
            CliRunner::start(|cmd| client_env(cmd, ACCESS_KEY_ID, SECRET_ACCESS_KEY))
        });
        let env = serde_json::json!({ "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret });
        runner.call(&full, &env, PROCESS_TIMEOUT).json()
    }

    /// `aws iot ARGS` through the `aws` executable itself, one process per command.
    pub(crate) fn aws_exe_as(
        &self,
        key: &str,
        secret: &str,
        args: &[&str],
    ) -> Result<Value, AwsError> {
        let mut cmd = Command::new("aws");
        cmd.args(self.cli_args("iot", args));
        client_env(&mut cmd, key, secret);
        run(&mut cmd).json()
    }

    fn cli_args(&self, service: &str, args: &[&str]) -> Vec<String> {
        let mut full = vec![service.to_owned()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        let endpoint = self.endpoint();
        full.extend(
            [
                "--endpoint-url",
                &endpoint,
                "--region",
                REGION,
                "--output",
                "json",
            ]
            .map(str::to_owned),
        );
        full
    }

    /// Runs `python3 tests/python/SCRIPT ARGS` with the endpoint and credentials in the
    /// environment (`FERRULE_ENDPOINT`, `AWS_*`); panics with its output if it fails.
    pub(crate) fn python(&self, script: &str, args: &[&str]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script);
        let mut cmd = Command::new("python3");
        cmd.arg(&path)
            .args(args)
            .env("FERRULE_ENDPOINT", self.endpoint())
            .env("FERRULE_WORK_DIR", self.dir.path());
        client_env(&mut cmd, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
        let out = run(&mut cmd);
        assert!(
            out.success,
            "{script} failed.\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut runner) = self.runner.lock() {
            runner.take();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(db) = self.database.take() {
            db.drop_database();
        }
    }
}

/// The test credentials on top of an environment that reads nothing from the machine's AWS
/// configuration.
fn client_env(cmd: &mut Command, key: &str, secret: &str) {
    aws_cli::clean_env(cmd);
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret);
}

/// Runs a command to completion within [`PROCESS_TIMEOUT`], killing it otherwise.
pub(crate) fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {PROCESS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        success: status.success(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A fresh PostgreSQL database for one server, made and dropped with `psql`.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create() -> PgDatabase {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin_url = std::env::var("FERRULE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "ferrule_api_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(Command::new("psql").args([
            &admin_url,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            &format!("CREATE DATABASE {name}"),
        ]));
        assert!(
            out.success,
            "PostgreSQL is not reachable at {admin_url} or refuses CREATE DATABASE: {}. These tests run on \
             PostgreSQL too: start it or point FERRULE_TEST_POSTGRES_URL at a server where this user may create \
             databases",
            out.stderr.trim()
        );
        let url = with_database(&admin_url, &name);
        PgDatabase {
            admin_url,
            name,
            url,
        }
    }

    fn drop_database(&self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let out = run(Command::new("psql").args([&self.admin_url, "-qc", &statement]));
        if !out.success {
            eprintln!(
                "could not drop the test database {}: {}",
                self.name, out.stderr
            );
        }
    }
}

/// `postgres://u@h:p/db?x=y` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base
        .find("://")
        .and_then(|scheme| {
            base[scheme + 3..]
                .find('/')
                .map(|slash| &base[..scheme + 3 + slash])
        })
        .unwrap_or(base);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// Certificates made with the `openssl` command line, as operators make them (the canonical
/// CA-registration recipe of the AWS documentation).
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        Pki { dir }
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// `file://PATH`, as the aws CLI reads file arguments.
    pub(crate) fn file_arg(&self, file: &str) -> String {
        format!("file://{}", self.path(file).display())
    }

    pub(crate) fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }

    pub(crate) fn openssl(&self, args: &[&str]) -> String {
        let out = run(Command::new("openssl").args(args).current_dir(&self.dir));
        assert!(out.success, "openssl {}: {}", args.join(" "), out.stderr);
        out.stdout
    }

    /// A root CA: `NAME.key` (RSA 2048) and the self-signed `NAME.pem` (v3, CA:TRUE).
    pub(crate) fn root_ca(&self, name: &str) {
        self.openssl(&["genrsa", "-out", &format!("{name}.key"), "2048"]);
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-key",
            &format!("{name}.key"),
            "-sha256",
            "-days",
            "1024",
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// A certificate `NAME.pem` with key `NAME.key` and subject `CN=cn`, signed by `ca` with
    /// `openssl x509 -req` (an X.509 v1 certificate, as the recipe makes the verification
    /// certificate). `ca_key` defaults to the CA's own key.
    pub(crate) fn signed_cert(&self, name: &str, cn: &str, ca: &str, ca_key: Option<&str>) {
        let key = ca_key.map_or_else(|| format!("{ca}.key"), |k| format!("{k}.key"));
        self.openssl(&["genrsa", "-out", &format!("{name}.key"), "2048"]);
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &key,
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "500",
            "-sha256",
        ]);
    }

    /// A self-signed end-entity certificate (no CA): `NAME.pem`, `NAME.key`.
    pub(crate) fn self_signed(&self, name: &str, cn: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-out",
            &format!("{name}.pem"),
        ]);
    }

    /// The certificate id AWS gives `NAME.pem`: the SHA-256 fingerprint of its DER.
    pub(crate) fn certificate_id(&self, name: &str) -> String {
        let out = self.openssl(&[
            "x509",
            "-in",
            &format!("{name}.pem"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        out.trim()
            .rsplit_once('=')
            .unwrap()
            .1
            .replace(':', "")
            .to_ascii_lowercase()
    }
}
