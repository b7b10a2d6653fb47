//! The function service against a real SQLite registry and real `python3` (and shell) workers:
//! deployment from stored zips, logs in the registry, role sessions, updates and deletes,
//! asynchronous invocations with retries, and code that must not be deployed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrule_functions::{FunctionService, Invocation, ServiceConfig, ServiceError, function_name};
use ferrule_store::{FunctionRecord, LogEventsQuery, LogFilterQuery, Registry};
use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

const BOUND: Duration = Duration::from_secs(60);
const ROLE: &str = "arn:aws:iam::123456789012:role/service-role/fn-role";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

struct Env {
    dir: tempfile::TempDir,
    registry: Registry,
    service: FunctionService,
}

impl Env {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut ServiceConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open_sqlite(&dir.path().join("ferrule.db"))
            .await
            .unwrap();
        let mut config = ServiceConfig::new(
            "eu-west-1",
            "123456789012",
            "http://127.0.0.1:9",
            dir.path().join("functions"),
        );
        config.retry_delays = vec![Duration::from_millis(100), Duration::from_millis(100)];
        adjust(&mut config);
        let service = FunctionService::start(registry.clone(), config);
        Self {
            dir,
            registry,
            service,
        }
    }

    fn code_root(&self) -> PathBuf {
        self.dir.path().join("functions")
    }

    /// The unpacked code directories of a function.
    fn code_dirs(&self, name: &str) -> Vec<PathBuf> {
        match std::fs::read_dir(self.code_root().join(name)) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn create(&self, record: &FunctionRecord, zip: &[u8]) {
        self.registry.create_function(record, zip).await.unwrap();
    }

    async fn create_python(&self, name: &str, handler_py: &str) -> FunctionRecord {
        let zip = zip(&[("handler.py", handler_py, 0o644)]);
        let record = record(name, "python3.12", "handler.handle", &zip);
        self.create(&record, &zip).await;
        record
    }

    async fn invoke(&self, name: &str, event: Value) -> Invocation {
        self.service.invoke(name, event).await.unwrap()
    }

    /// Every message in the function's log group, oldest first.
    async fn logs(&self, name: &str) -> Vec<String> {
        match self
            .registry
            .filter_log_events(
                &format!("/aws/lambda/{name}"),
                &LogFilterQuery {
                    limit: 10_000,
                    ..LogFilterQuery::default()
                },
            )
            .await
        {
            Ok(found) => found.events.into_iter().map(|e| e.message).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until the function's logs hold a line containing `needle`; returns them.
    async fn wait_for_log(&self, name: &str, needle: &str) -> Vec<String> {
        let started = Instant::now();
        loop {
            let logs = self.logs(name).await;
            if logs.iter().any(|l| l.contains(needle)) {
                return logs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no log line with {needle:?} in {logs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn zip(files: &[(&str, &str, u32)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text, mode) in files {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        writer.start_file(*name, options).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn replace_all(haystack: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut replaced = 0;
    let mut i = 0;
    while i + from.len() <= haystack.len() {
        if &haystack[i..i + from.len()] == from {
            haystack[i..i + from.len()].copy_from_slice(to);
            replaced += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(replaced >= 2, "local and central headers");
}

fn sha(zip: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    zip.hash(&mut hasher);
    format!("{:016x}=", hasher.finish())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn revision() -> String {
    format!("rev-{}", ferrule_pki::random_hex(8))
}

fn record(name: &str, runtime: &str, handler: &str, zip: &[u8]) -> FunctionRecord {
    FunctionRecord {
        name: name.into(),
        runtime: runtime.into(),
        handler: handler.into(),
        role: ROLE.into(),
        description: String::new(),
        timeout_s: 2,
        memory_mb: 256,
        environment: BTreeMap::new(),
        code_sha256: sha(zip),
        code_size: zip.len() as i64,
        revision_id: revision(),
        created_ms: now_ms(),
        last_modified_ms: now_ms(),
    }
}

fn ok(invocation: &Invocation) -> &Value {
    match &invocation.result {
        Ok(value) => value,
        Err(e) => panic!(
            "invocation failed: {e:?}\nlogs: {:#?}",
            invocation.log_lines
        ),
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ECHO: &str = r#"
def handle(event, context):
    print("hello from", context.function_name)
    return {"echo": event, "request_id": context.aws_request_id}
"#;

#[tokio::test]
async fn invoke_returns_the_result_and_stores_the_logs() {
    bounded(async {
        let env = Env::new().await;
        env.create_python("echo", ECHO).await;
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:echo";
        let invocation = env.invoke(arn, json!({"a": 1})).await;
        let request_id = invocation.request_id.to_string();
        assert_eq!(
            ok(&invocation),
            &json!({"echo": {"a": 1}, "request_id": request_id})
        );

        let logs = env.logs("echo").await;
        assert!(logs.contains(&"hello from echo".to_owned()), "{logs:#?}");
        assert!(
            logs[0].starts_with(&format!("START RequestId: {request_id}")),
            "{logs:#?}"
        );
        assert!(
            logs.iter()
                .any(|l| l.starts_with(&format!("REPORT RequestId: {request_id}")))
        );
        // The worker's own stream holds the same lines, in order.
        let stream = env
            .registry
            .get_log_events(
                "/aws/lambda/echo",
                &invocation.log_stream_name,
                &LogEventsQuery {
                    start_from_head: true,
                    limit: 100,
                    ..LogEventsQuery::default()
                },
            )
            .await
            .unwrap();
        let messages: Vec<_> = stream.events.into_iter().map(|e| e.message).collect();
        assert_eq!(messages, invocation.log_lines);
        assert!(invocation.log_stream_name.contains("[$LATEST]"));

        // Warm: the second invocation reuses the deployment and the worker's stream.
        let second = env.invoke("echo", json!({})).await;
        assert_eq!(second.log_stream_name, invocation.log_stream_name);
        assert_eq!(env.code_dirs("echo").len(), 1);
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_new_service_deploys_on_first_invocation_and_sweeps_old_code() {
    bounded(async {
        let env = Env::new().await;
        env.create_python("again", ECHO).await;
        ok(&env.invoke("again", json!({})).await);
        env.service.shutdown().await;

        // As after a crash: code left behind by an earlier process.
        let stale = env.code_root().join("again").join("rev-old-0000");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("handler.py"), "stale").unwrap();
        let service = FunctionService::start(
            env.registry.clone(),
            ServiceConfig::new("eu-west-1", "123456789012", "http://x", env.code_root()),
        );
        let invocation = service.invoke("again", json!({"n": 2})).await.unwrap();
        assert_eq!(ok(&invocation)["echo"], json!({"n": 2}));
        assert!(!stale.exists());
        assert_eq!(env.code_dirs("again").len(), 1);
        service.shutdown().await;
    })
    .await;
}

const ENVIRONMENT: &str = r#"
import os
def handle(event, context):
    return {k: os.environ.get(k) for k in event["keys"]}
"#;

#[tokio::test]
async fn functions_see_their_environment_and_role_credentials() {
    bounded(async {
        let env = Env::new().await;
        let zip = zip(&[("handler.py", ENVIRONMENT, 0o644)]);
        let mut record = record("envy", "python3.12", "handler.handle", &zip);
        record.memory_mb = 512;
        record.environment = BTreeMap::from([
            ("GREETING".to_owned(), "hi".to_owned()),
            // Reserved: the service's value wins.
            ("AWS_REGION".to_owned(), "mars-1".to_owned()),
        ]);
        env.create(&record, &zip).await;
        let keys = [
            "GREETING",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ];
        let before = now_ms();
        let invocation = env.invoke("envy", json!({"keys": keys})).await;
        let after = now_ms();
        let seen = ok(&invocation);
        assert_eq!(seen["GREETING"], "hi");
        assert_eq!(seen["AWS_REGION"], "eu-west-1");
        assert_eq!(seen["AWS_DEFAULT_REGION"], "eu-west-1");
        assert_eq!(seen["AWS_LAMBDA_FUNCTION_NAME"], "envy");
        assert_eq!(seen["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
        assert_eq!(seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
        assert_eq!(seen["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/envy");
        assert_eq!(seen["AWS_ENDPOINT_URL"], "http://127.0.0.1:9");

        let key_id = seen["AWS_ACCESS_KEY_ID"].as_str().unwrap();
        assert_eq!(key_id.len(), 20);
        assert!(key_id.starts_with("ASIA"));
        assert!(
            key_id[4..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(seen["AWS_SECRET_ACCESS_KEY"].as_str().unwrap().len(), 40);

        let session = env.registry.get_iam_session(key_id).await.unwrap().unwrap();
        assert_eq!(session.role_name, "fn-role");
        assert_eq!(session.session_name, "envy");
        assert_eq!(session.secret_access_key, seen["AWS_SECRET_ACCESS_KEY"]);
        assert_eq!(session.session_token, seen["AWS_SESSION_TOKEN"]);
        assert!(session.created_ms >= before && session.created_ms <= after);
        assert_eq!(session.expires_ms - session.created_ms, 3_600_000);
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn credentials_are_renewed_before_they_expire_and_expired_ones_are_deleted() {
    bounded(async {
        let env = Env::with(|c| c.session_ttl = Duration::from_secs(2)).await;
        env.create_python("renew", ENVIRONMENT).await;
        let event = json!({"keys": ["AWS_ACCESS_KEY_ID"]});
        let key = |i: &Invocation| ok(i)["AWS_ACCESS_KEY_ID"].as_str().unwrap().to_owned();
        let first = key(&env.invoke("renew", event.clone()).await);
        assert_eq!(key(&env.invoke("renew", event.clone()).await), first);
        // Less than a quarter of the lifetime left: the next invocation gets fresh credentials.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let second = key(&env.invoke("renew", event.clone()).await);
        assert_ne!(second, first);
        assert!(
            env.registry
                .get_iam_session(&second)
                .await
                .unwrap()
                .is_some()
        );
        // The old session expires and the sweeper deletes it.
        let started = Instant::now();
        while env
            .registry
            .get_iam_session(&first)
            .await
            .unwrap()
            .is_some()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "expired session kept"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_invocations_deploy_once() {
    bounded(async {
        let env = Env::new().await;
        env.create_python("once", ENVIRONMENT).await;
        let event = json!({"keys": ["AWS_ACCESS_KEY_ID"]});
        let invocations = futures_util::future::join_all(
            (0..4).map(|_| env.service.invoke("once", event.clone())),
        )
        .await;
        let keys: std::collections::HashSet<_> = invocations
            .iter()
            .map(|i| ok(i.as_ref().unwrap())["AWS_ACCESS_KEY_ID"].clone())
            .collect();
        assert_eq!(keys.len(), 1, "one deployment, one session");
        assert_eq!(env.code_dirs("once").len(), 1);
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn updates_redeploy_and_delete_removes() {
    bounded(async {
        let env = Env::new().await;
        env.create_python("changing", "def handle(e, c):\n    return 1\n")
            .await;
        assert_eq!(ok(&env.invoke("changing", json!({})).await), &json!(1));
        let old_dirs = env.code_dirs("changing");
        assert_eq!(old_dirs.len(), 1);

        // New code: the next invocation runs it, and the old code directory goes.
        let v2 = zip(&[(
            "handler.py",
            "def handle(e, c):\n    return 2\ndef other(e, c):\n    return 3\n",
            0o644,
        )]);
        env.registry
            .update_function_code("changing", &v2, &sha(&v2), &revision(), now_ms())
            .await
            .unwrap();
        assert_eq!(ok(&env.invoke("changing", json!({})).await), &json!(2));
        wait_until("old code removed", || !old_dirs[0].exists()).await;
        let dirs = env.code_dirs("changing");
        assert_eq!(dirs.len(), 1);

        // New configuration, same code: redeployed with it, the code directory reused.
        let mut record = env
            .registry
            .get_function("changing")
            .await
            .unwrap()
            .unwrap();
        record.handler = "handler.other".into();
        record.revision_id = revision();
        env.registry
            .update_function_configuration(&record)
            .await
            .unwrap();
        assert_eq!(ok(&env.invoke("changing", json!({})).await), &json!(3));
        assert_eq!(env.code_dirs("changing"), dirs, "same code, same directory");

        // Deleted: not found, workers and code gone.
        env.registry.delete_function("changing").await.unwrap();
        let error = env.service.invoke("changing", json!({})).await.unwrap_err();
        assert!(
            matches!(error, ServiceError::NotFound(ref n) if n == "changing"),
            "{error}"
        );
        wait_until("code removed after delete", || {
            env.code_dirs("changing").is_empty()
        })
        .await;
        assert!(matches!(
            env.service.invoke("never-created", json!({})).await,
            Err(ServiceError::NotFound(_))
        ));
        assert!(matches!(
            env.service.invoke("bad/name", json!({})).await,
            Err(ServiceError::NotFound(_))
        ));
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_function_stops_its_workers_without_an_invocation() {
    bounded(async {
        let env = Env::new().await;
        env.create_python(
            "gone",
            "import os\ndef handle(e, c):\n    return os.getpid()\n",
        )
        .await;
        let pid = ok(&env.invoke("gone", json!({})).await).as_u64().unwrap();
        assert!(is_running(pid));
        env.registry.delete_function("gone").await.unwrap();
        wait_until("worker stopped after delete", || !is_running(pid)).await;
        wait_until("code removed after delete", || {
            env.code_dirs("gone").is_empty()
        })
        .await;
        env.service.shutdown().await;
    })
    .await;
}

fn is_running(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

const FLAKY: &str = r#"
import os
def handle(event, context):
    path = os.path.join(os.environ["COUNT_DIR"], "attempts")
    with open(path, "a") as f:
        f.write(context.aws_request_id + "\n")
    with open(path) as f:
        n = len(f.readlines())
    if n <= event["fail_first"]:
        raise RuntimeError("attempt %d fails" % n)
    with open(os.path.join(os.environ["COUNT_DIR"], "done"), "w") as f:
        f.write(str(n))
    return n
"#;

async fn create_flaky(env: &Env, name: &str) -> PathBuf {
    let count_dir = env.dir.path().join(format!("count-{name}"));
    std::fs::create_dir(&count_dir).unwrap();
    let zip = zip(&[("handler.py", FLAKY, 0o644)]);
    let mut record = record(name, "python3.12", "handler.handle", &zip);
    record.environment =
        BTreeMap::from([("COUNT_DIR".to_owned(), count_dir.display().to_string())]);
    env.create(&record, &zip).await;
    count_dir
}

fn attempts(count_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(count_dir.join("attempts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn async_invocations_are_retried_twice() {
    bounded(async {
        let env = Env::new().await;
        let count_dir = create_flaky(&env, "flaky").await;
        let request_id = env
            .service
            .invoke_async("flaky", json!({"fail_first": 2}))
            .await
            .unwrap();
        wait_until("third attempt succeeded", || {
            count_dir.join("done").exists()
        })
        .await;
        // Same request id on every attempt, as Lambda does.
        assert_eq!(attempts(&count_dir), vec![request_id.to_string(); 3]);
        let logs = env.wait_for_log("flaky", "(attempt 2 of 3)").await;
        assert!(
            logs.iter()
                .any(|l| l.contains("(attempt 1 of 3): RuntimeError: attempt 1 fails"))
        );
        assert!(!logs.iter().any(|l| l.contains("failed after")));
        // No fourth attempt comes.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(attempts(&count_dir).len(), 3);
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn async_invocations_failing_every_attempt_are_logged_as_failed() {
    bounded(async {
        let env = Env::new().await;
        let count_dir = create_flaky(&env, "doomed").await;
        let request_id = env
            .service
            .invoke_async("doomed", json!({"fail_first": 100}))
            .await
            .unwrap();
        let logs = env.wait_for_log("doomed", "failed after 3 attempts").await;
        let failure = logs.iter().find(|l| l.contains("failed after")).unwrap();
        assert!(failure.contains(&request_id.to_string()), "{failure}");
        assert!(
            failure.contains("RuntimeError: attempt 3 fails"),
            "{failure}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(attempts(&count_dir).len(), 3);
        env.service.shutdown().await;
    })
    .await;
}

const SLEEPER: &str = r#"
import os, time
def handle(event, context):
    time.sleep(event.get("sleep", 0))
    open(os.path.join(os.environ["COUNT_DIR"], "slept"), "w").close()
    return "rested"
"#;

#[tokio::test]
async fn invoke_async_returns_at_once_and_the_queue_is_bounded() {
    bounded(async {
        let env = Env::with(|c| c.async_queue_capacity = 1).await;
        let count_dir = env.dir.path().join("count");
        std::fs::create_dir(&count_dir).unwrap();
        let zip = zip(&[("handler.py", SLEEPER, 0o644)]);
        let mut record = record("sleeper", "python3.12", "handler.handle", &zip);
        record.environment =
            BTreeMap::from([("COUNT_DIR".to_owned(), count_dir.display().to_string())]);
        env.create(&record, &zip).await;

        let started = Instant::now();
        env.service
            .invoke_async("sleeper", json!({"sleep": 1}))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(
            !count_dir.join("slept").exists(),
            "returned while the handler sleeps"
        );
        // The one place is taken until the first invocation ends.
        assert!(matches!(
            env.service.invoke_async("sleeper", json!({})).await,
            Err(ServiceError::QueueFull)
        ));
        assert!(matches!(
            env.service.invoke_async("nobody", json!({})).await,
            Err(ServiceError::NotFound(_))
        ));
        wait_until("handler finished", || count_dir.join("slept").exists()).await;
        let started = Instant::now();
        loop {
            match env.service.invoke_async("sleeper", json!({})).await {
                Ok(_) => break,
                Err(ServiceError::QueueFull) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(5),
                        "queue never freed"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        env.service.shutdown().await;
    })
    .await;
}

const PID_HANDLER: &str = r#"
import os, time
def handle(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("exit"):
        print("about to exit")
        os._exit(3)
    return os.getpid()
"#;

#[tokio::test]
async fn timeouts_and_crashes_fail_one_invocation_only() {
    bounded(async {
        let env = Env::new().await;
        let zip = zip(&[("handler.py", PID_HANDLER, 0o644)]);
        let mut record = record("fragile", "python3.12", "handler.handle", &zip);
        record.timeout_s = 1;
        env.create(&record, &zip).await;
        let first_pid = ok(&env.invoke("fragile", json!({})).await).clone();

        let timed_out = env.invoke("fragile", json!({"sleep": 30})).await;
        let error = timed_out.result.as_ref().unwrap_err();
        assert_eq!(error.error_type, "Sandbox.Timedout");
        assert!(timed_out.duration < Duration::from_secs(5));
        let logs = env
            .wait_for_log("fragile", "Task timed out after 1.00 seconds")
            .await;
        assert!(logs.iter().any(|l| l.contains("Status: timeout")));
        let second_pid = ok(&env.invoke("fragile", json!({})).await).clone();
        assert_ne!(second_pid, first_pid);

        let crashed = env.invoke("fragile", json!({"exit": true})).await;
        let error = crashed.result.as_ref().unwrap_err();
        assert_eq!(error.error_type, "Runtime.ExitError");
        env.wait_for_log("fragile", "about to exit").await;
        env.wait_for_log("fragile", "Runtime exited with error: exit status: 3")
            .await;
        let third_pid = ok(&env.invoke("fragile", json!({})).await).clone();
        assert_ne!(third_pid, second_pid);
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn zips_escaping_the_code_directory_are_refused() {
    bounded(async {
        let env = Env::new().await;
        for (name, entry) in [
            ("evil-parent", "../evil"),
            ("evil-deep", "a/../../evil"),
            ("evil-absolute", "/tmp/ferrule-evil-absolute"),
        ] {
            // The writer makes names relative: write a placeholder, then put the real name in
            // its place (same length; names are not covered by the checksums).
            let placeholder = format!("X{}", &entry[1..]);
            let mut zip = zip(&[("handler.py", ECHO, 0o644), (&placeholder, "pwned", 0o644)]);
            replace_all(&mut zip, placeholder.as_bytes(), entry.as_bytes());
            env.create(&record(name, "python3.12", "handler.handle", &zip), &zip)
                .await;
            let error = env.service.invoke(name, json!({})).await.unwrap_err();
            assert!(matches!(error, ServiceError::BadCode(_)), "{name}: {error}");
            assert!(
                error.to_string().contains("outside the code directory"),
                "{error}"
            );
            let logs = env.wait_for_log(name, "Deploying").await;
            assert!(
                logs.iter()
                    .any(|l| l.contains("outside the code directory")),
                "{logs:#?}"
            );
            assert!(env.code_dirs(name).is_empty(), "{:?}", env.code_dirs(name));
        }
        // Nothing written outside the code root.
        assert!(!env.dir.path().join("evil").exists());
        assert!(!env.code_root().join("evil").exists());
        assert!(!Path::new("/tmp/ferrule-evil-absolute").exists());

        // Not a zip at all.
        let garbage = b"definitely not a zip".to_vec();
        env.create(
            &record("garbage", "python3.12", "handler.handle", &garbage),
            &garbage,
        )
        .await;
        let error = env.service.invoke("garbage", json!({})).await.unwrap_err();
        assert!(matches!(error, ServiceError::BadCode(_)), "{error}");
        env.service.shutdown().await;
    })
    .await;
}

const SHELL_BOOTSTRAP: &str = r#"#!/bin/sh
# A provided-runtime worker in shell: argv is <code dir> <handler>; one request per line.
echo "shell bootstrap up in $1" >&2
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed 's/.*"id":\([0-9]*\).*/\1/')
  rid=$(printf '%s' "$line" | sed 's/.*"aws_request_id":"\([^"]*\)".*/\1/')
  echo "START RequestId: $rid" >&2
  echo "handled by shell" >&2
  echo "REPORT RequestId: $rid" >&2
  printf '{"id":%s,"ok":{"runtime":"shell","handler":"%s","function":"%s"}}\n' "$id" "$2" "$AWS_LAMBDA_FUNCTION_NAME"
done
"#;

const PYTHON_BOOTSTRAP: &str = r#"#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    request = json.loads(line)
    rid = request["context"]["aws_request_id"]
    sys.stderr.write("START RequestId: %s\n" % rid)
    sys.stderr.write("python bootstrap got %s\n" % json.dumps(request["event"]))
    sys.stderr.write("REPORT RequestId: %s\n" % rid)
    sys.stderr.flush()
    print(json.dumps({"id": request["id"], "ok": {"doubled": request["event"]["n"] * 2}}), flush=True)
"#;

#[tokio::test]
async fn provided_runtimes_run_the_zips_bootstrap() {
    bounded(async {
        let env = Env::new().await;
        let zip_sh = zip(&[("bootstrap", SHELL_BOOTSTRAP, 0o755)]);
        env.create(
            &record("shelly", "provided.al2023", "my.handler", &zip_sh),
            &zip_sh,
        )
        .await;
        let invocation = env.invoke("shelly", json!({"x": 1})).await;
        assert_eq!(
            ok(&invocation),
            &json!({"runtime": "shell", "handler": "my.handler", "function": "shelly"})
        );
        let logs = env.logs("shelly").await;
        assert!(
            logs.iter().any(|l| l.starts_with("shell bootstrap up in")),
            "{logs:#?}"
        );
        assert!(logs.contains(&"handled by shell".to_owned()));

        let zip_py = zip(&[
            ("bootstrap", PYTHON_BOOTSTRAP, 0o755),
            ("lib/data.txt", "kept", 0o600),
        ]);
        env.create(&record("pyboot", "provided", "unused", &zip_py), &zip_py)
            .await;
        let invocation = env.invoke("pyboot", json!({"n": 21})).await;
        assert_eq!(ok(&invocation), &json!({"doubled": 42}));
        assert!(
            env.logs("pyboot")
                .await
                .contains(&r#"python bootstrap got {"n": 21}"#.to_owned())
        );
        let dir = &env.code_dirs("pyboot")[0];
        assert_eq!(
            std::fs::read_to_string(dir.join("lib/data.txt")).unwrap(),
            "kept"
        );

        // A bootstrap without its exec bit cannot run.
        let zip_noexec = zip(&[("bootstrap", SHELL_BOOTSTRAP, 0o644)]);
        env.create(
            &record("noexec", "provided.al2", "h", &zip_noexec),
            &zip_noexec,
        )
        .await;
        let error = env.service.invoke("noexec", json!({})).await.unwrap_err();
        assert!(
            matches!(error, ServiceError::BadCode(ref m) if m.contains("bootstrap")),
            "{error}"
        );
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_an_error_in_the_logs() {
    bounded(async {
        let env = Env::new().await;
        let zip = zip(&[("bootstrap", "#!/nonexistent/interpreter\n", 0o755)]);
        env.create(&record("unstartable", "provided", "h", &zip), &zip)
            .await;
        let error = env
            .service
            .invoke("unstartable", json!({}))
            .await
            .unwrap_err();
        assert!(matches!(error, ServiceError::Spawn { .. }), "{error}");
        assert!(error.to_string().contains("unstartable"), "{error}");
        env.wait_for_log("unstartable", "[ERROR] Starting unstartable failed")
            .await;
        env.service.shutdown().await;
    })
    .await;
}

const SPAN: &str = r#"
import os, time
def handle(event, context):
    start = time.time()
    time.sleep(0.3)
    path = os.path.join(os.environ["COUNT_DIR"], context.aws_request_id)
    with open(path + ".tmp", "w") as f:
        f.write("%f %f" % (start, time.time()))
    os.rename(path + ".tmp", path)
"#;

#[tokio::test]
async fn async_invocations_respect_the_functions_concurrency() {
    bounded(async {
        let env = Env::with(|c| c.concurrency = 1).await;
        let count_dir = env.dir.path().join("spans");
        std::fs::create_dir(&count_dir).unwrap();
        let zip = zip(&[("handler.py", SPAN, 0o644)]);
        let mut record = record("serial", "python3.12", "handler.handle", &zip);
        record.environment =
            BTreeMap::from([("COUNT_DIR".to_owned(), count_dir.display().to_string())]);
        env.create(&record, &zip).await;
        for _ in 0..3 {
            env.service.invoke_async("serial", json!({})).await.unwrap();
        }
        let done = || -> Vec<_> {
            std::fs::read_dir(&count_dir)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                .collect()
        };
        wait_until("three invocations ran", || done().len() == 3).await;
        let mut spans: Vec<(f64, f64)> = done()
            .into_iter()
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap();
                let (a, b) = text.split_once(' ').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            })
            .collect();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "overlapping invocations: {spans:?}");
        }
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unsupported_runtimes_are_refused_and_logged() {
    bounded(async {
        let env = Env::new().await;
        let zip = zip(&[("index.js", "exports.handler = async () => 1;", 0o644)]);
        env.create(&record("nodey", "nodejs20.x", "index.handler", &zip), &zip)
            .await;
        let error = env.service.invoke("nodey", json!({})).await.unwrap_err();
        assert!(matches!(error, ServiceError::UnsupportedRuntime(ref r) if r == "nodejs20.x"));
        let logs = env.wait_for_log("nodey", "Deploying nodey failed").await;
        assert!(logs.iter().any(|l| l.contains("nodejs20.x")), "{logs:#?}");
        assert!(env.code_dirs("nodey").is_empty());
        // Asynchronously too: accepted (the function exists), then logged as failed.
        env.service.invoke_async("nodey", json!({})).await.unwrap();
        env.wait_for_log("nodey", "failed after 3 attempts").await;
        env.service.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_refuses_new_invocations() {
    bounded(async {
        let env = Env::new().await;
        env.create_python("late", ECHO).await;
        ok(&env.invoke("late", json!({})).await);
        env.service.shutdown().await;
        assert!(matches!(
            env.service.invoke("late", json!({})).await,
            Err(ServiceError::ShuttingDown)
        ));
        assert!(matches!(
            env.service.invoke_async("late", json!({})).await,
            Err(ServiceError::ShuttingDown)
        ));
    })
    .await;
}

#[test]
fn function_name_is_exported() {
    assert_eq!(
        function_name("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
        Some("f")
    );
}
