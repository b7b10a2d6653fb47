//! The fixture of the Lambda tests: the router on a socket with an optional
//! [`FunctionHost`], the aws CLI, IAM roles, zips made by Python, and [`EchoHost`], a host
//! that answers from the event instead of running code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrule_testkit::aws_cli::{AwsError, CliRunner};
use serde_json::{Value, json};

use crate::functions::{FunctionHost, HostError, HostFuture, HostInvocation};
use crate::{ApiConfig, ApiState, Credential};

pub(super) const KEY: &str = "AKIALAMBDATESTKEY001";
pub(super) const SECRET: &str = "lambda-test-secret";
pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const TRUST_LAMBDA: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
pub(super) const TRUST_IOT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Echoes events back, or fails as the event asks: `{"fail": msg}` is a function error,
/// `{"busy": true}`, `{"vanish": true}`, `{"bad_zip": true}` and `{"down": true}` are the
/// host's own errors,
/// `{"log_lines": n}` writes n long log lines.
#[derive(Default)]
pub(super) struct EchoHost {
    pub(super) queued: Mutex<Vec<(String, Value)>>,
}

impl FunctionHost for EchoHost {
    fn invoke(&self, name: String, event: Value) -> HostFuture<Result<HostInvocation, HostError>> {
        Box::pin(async move {
            if event["busy"] == true {
                return Err(HostError::TooManyRequests("Rate Exceeded.".into()));
            }
            if event["vanish"] == true {
                return Err(HostError::NotFound(name));
            }
            if event["bad_zip"] == true {
                return Err(HostError::InvalidZipFile("no bootstrap in the zip".into()));
            }
            if event["down"] == true {
                return Err(HostError::Unavailable(
                    "the runtime is shutting down".into(),
                ));
            }
            let request_id = "8f5b2d1c-0000-4000-8000-000000000001".to_owned();
            let mut log_lines = vec![format!("START RequestId: {request_id} Version: $LATEST")];
            for i in 0..event["log_lines"].as_u64().unwrap_or(0) {
                log_lines.push(format!("line {i} {}", "x".repeat(100)));
            }
            log_lines.push(format!("handling {event}"));
            log_lines.push(format!("END RequestId: {request_id}"));
            log_lines.push(format!("REPORT RequestId: {request_id}\tDuration: 1.00 ms"));
            let result = match event.get("fail") {
                Some(message) => Err(json!({
                    "errorMessage": message,
                    "errorType": "ValueError",
                    "stackTrace": ["  File \"/var/task/app.py\", line 2, in handler\n"],
                })),
                None => Ok(json!({ "function": name, "event": event })),
            };
            Ok(HostInvocation {
                request_id,
                result,
                log_lines,
            })
        })
    }

    fn invoke_event(&self, name: String, event: Value) -> HostFuture<Result<(), HostError>> {
        let busy = event["busy"] == true;
        if !busy {
            self.queued.lock().unwrap().push((name, event));
        }
        Box::pin(async move {
            if busy {
                return Err(HostError::TooManyRequests("the event queue is full".into()));
            }
            Ok(())
        })
    }
}

/// The router on a port-0 socket, served from its own thread, and one aws CLI runner.
pub(super) struct Server {
    pub(super) endpoint: String,
    dir: tempfile::TempDir,
    runner: CliRunner,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(super) fn start(host: Option<Arc<dyn FunctionHost>>) -> Server {
        let dir = tempfile::tempdir().unwrap();
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
                let registry = ferrule_store::Registry::open_sqlite(&data.join("ferrule.db"))
                    .await
                    .unwrap();
                let issuer = Arc::new(ferrule_pki::Issuer::load_or_create(&data).unwrap());
                let config = ApiConfig {
                    region: "us-east-1".into(),
                    account_id: ACCOUNT.into(),
                    mqtt_endpoint: "localhost:8883".into(),
                    credentials: vec![Credential {
                        access_key_id: KEY.into(),
                        secret_access_key: SECRET.into(),
                    }],
                };
                let mut state = ApiState::new(config, registry.clone(), issuer);
                if let Some(host) = host {
                    state = state.with_functions(host);
                }
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, super::super::router(state))
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
                registry.close().await;
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let runner = CliRunner::start(|cmd| {
            cmd.env("AWS_ACCESS_KEY_ID", KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET);
        });
        Server {
            endpoint: format!("http://{addr}"),
            dir,
            runner,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `aws SERVICE ARGS` against this server.
    pub(super) fn aws(&mut self, service: &str, args: &[&str]) -> Result<Value, AwsError> {
        let mut full = vec![service.to_owned()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.extend(["--endpoint-url", &self.endpoint, "--output", "json"].map(str::to_owned));
        self.runner
            .call(&full, &json!({}), Duration::from_secs(120))
            .json()
    }

    /// `aws lambda ARGS` that must succeed.
    pub(super) fn ok(&mut self, args: &[&str]) -> Value {
        self.aws("lambda", args)
            .unwrap_or_else(|e| panic!("aws lambda {}: {e}", args.join(" ")))
    }

    /// `aws lambda ARGS` that must fail with `code`; the message.
    pub(super) fn fails(&mut self, code: &str, args: &[&str]) -> String {
        match self.aws("lambda", args) {
            Ok(v) => panic!(
                "aws lambda {} succeeded ({v}), expected {code}",
                args.join(" ")
            ),
            Err(e) => {
                assert_eq!(e.code, code, "aws lambda {}: {}", args.join(" "), e.stderr);
                e.message
            }
        }
    }

    /// An IAM role with `trust` as its trust policy, made with `aws iam create-role`; its ARN.
    pub(super) fn role(&mut self, name: &str, trust: &str) -> String {
        let out = self
            .aws(
                "iam",
                &[
                    "create-role",
                    "--role-name",
                    name,
                    "--path",
                    "/service-role/",
                    "--assume-role-policy-document",
                    trust,
                ],
            )
            .unwrap();
        out["Role"]["Arn"].as_str().unwrap().to_owned()
    }

    /// A zip of `files` made by `python3 -m zipfile`; `fileb://` for the CLI, and the path.
    pub(super) fn zip(&self, name: &str, files: &[(&str, &str)]) -> (String, PathBuf) {
        let src = self.dir.path().join(format!("{name}-src"));
        std::fs::create_dir_all(&src).unwrap();
        let mut args = vec!["-m".to_owned(), "zipfile".to_owned(), "-c".to_owned()];
        let zip = self.dir.path().join(format!("{name}.zip"));
        args.push(zip.display().to_string());
        for (file, text) in files {
            std::fs::write(src.join(file), text).unwrap();
            args.push(src.join(file).display().to_string());
        }
        let out = Command::new("python3").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (format!("fileb://{}", zip.display()), zip)
    }

    pub(super) fn file(&self, name: &str, content: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        format!("fileb://{}", path.display())
    }

    pub(super) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Creates `name` (python3.12, `app.handler`) with `role`.
    pub(super) fn create(&mut self, name: &str, role: &str, zip: &str) -> Value {
        self.ok(&[
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--role",
            role,
            "--zip-file",
            zip,
        ])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `base64(sha256(file))`, computed by Python rather than by the code under test.
pub(super) fn python_sha256(path: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys;print(base64.b64encode(hashlib.sha256(open(sys.argv[1],'rb').read()).digest()).decode())",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Downloads `url` with a SigV4 signature made by botocore.
pub(super) fn signed_download(url: &str, out: &str) -> Vec<u8> {
    let script = "import sys,urllib.request\n\
        from botocore.auth import SigV4Auth\n\
        from botocore.awsrequest import AWSRequest\n\
        from botocore.credentials import Credentials\n\
        url,key,secret,out=sys.argv[1:5]\n\
        req=AWSRequest(method='GET',url=url)\n\
        SigV4Auth(Credentials(key,secret),'lambda','us-east-1').add_auth(req)\n\
        data=urllib.request.urlopen(urllib.request.Request(url,headers=dict(req.headers.items()))).read()\n\
        open(out,'wb').write(data)\n";
    let status = Command::new("python3")
        .args(["-c", script, url, KEY, SECRET, out])
        .status()
        .unwrap();
    assert!(status.success(), "download of {url} failed");
    std::fs::read(out).unwrap()
}
