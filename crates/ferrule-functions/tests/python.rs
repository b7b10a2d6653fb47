//! The runtime against real `python3` worker processes.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrule_functions::{
    CommandRuntime, FunctionConfig, FunctionError, FunctionRuntime, Invocation, InvokeError, Pool,
    PythonRuntime, RequestId,
};
use serde_json::{Value, json};

/// Every test finishes within this, or fails.
const TEST_BOUND: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

/// A code directory under the system temp dir, removed on drop.
struct CodeDir(PathBuf);

impl CodeDir {
    fn new(files: &[(&str, &str)]) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrule-functions-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for CodeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(name: &str, code: &CodeDir) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        version: "$LATEST".into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        handler: "handler.handle".into(),
        code_dir: code.path().to_owned(),
        memory_mb: 256,
        timeout: Duration::from_secs(10),
        concurrency: 1,
        environment: BTreeMap::new(),
        runtime: Arc::new(PythonRuntime::default()),
    }
}

fn pool(config: FunctionConfig) -> Pool {
    Pool::new(config, 1).unwrap()
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

fn err(invocation: &Invocation) -> &FunctionError {
    match &invocation.result {
        Ok(value) => panic!("invocation succeeded with {value}"),
        Err(e) => e,
    }
}

/// Gone, or a zombie nobody has reaped yet: either way no longer running.
fn is_dead(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

async fn wait_dead(pid: u64) {
    for _ in 0..100 {
        if is_dead(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("worker {pid} is still running");
}

const PID_HANDLER: &str = r#"
import os, time
def handle(event, context):
    if event.get("sleep"):
        print("going to sleep")
    time.sleep(event.get("sleep", 0))
    if event.get("exit"):
        print("about to exit")
        os._exit(3)
    return os.getpid()
"#;

#[tokio::test]
async fn handler_returns_a_value() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            "def handle(event, context):\n    return {'sum': event['a'] + event['b'], 'none': None}\n",
        )]);
        let pool = pool(config("add", &code));
        let invocation = pool.invoke(json!({"a": 2, "b": 3})).await.unwrap();
        assert_eq!(ok(&invocation), &json!({"sum": 5, "none": None::<()>}));
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn event_and_context_reach_the_handler() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import time
def handle(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.2)
    second = context.get_remaining_time_in_millis()
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": [first, second],
    }
"#,
        )]);
        let pool = pool(config("ctx", &code));
        let event = json!({"certificateId": "abc", "awsAccountId": "123456789012", "n": [1, 2]});
        let id = RequestId::new("11111111-2222-4333-8444-555555555555");
        let invocation = pool
            .invoke_with_id(event.clone(), id.clone())
            .await
            .unwrap();
        let got = ok(&invocation);
        assert_eq!(got["event"], event);
        assert_eq!(got["function_name"], "ctx");
        assert_eq!(got["function_version"], "$LATEST");
        assert_eq!(
            got["invoked_function_arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:ctx"
        );
        assert_eq!(got["memory_limit_in_mb"], "256");
        assert_eq!(got["aws_request_id"], id.as_str());
        assert_eq!(invocation.request_id, id);
        assert_eq!(got["log_group_name"], "/aws/lambda/ctx");
        assert_eq!(got["log_stream_name"], invocation.log_stream_name.as_str());
        assert!(invocation.log_stream_name.contains("/[$LATEST]"));
        let first = got["remaining"][0].as_u64().unwrap();
        let second = got["remaining"][1].as_u64().unwrap();
        assert!(first <= 10_000 && first > 5_000, "{first}");
        assert!(second + 150 <= first, "{first} then {second}");
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn prints_are_log_lines_not_results() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os, sys
print("printed at import")
def handle(event, context):
    print("hello from the handler")
    print("to stderr", file=sys.stderr)
    os.write(1, b"raw write to fd 1\n")
    return event["n"]
"#,
        )]);
        let pool = pool(config("printer", &code));
        let first = pool.invoke(json!({"n": 1})).await.unwrap();
        assert_eq!(ok(&first), &json!(1));
        let logs = &first.log_lines;
        let position = |text: &str| logs.iter().position(|l| l.contains(text));
        let start = position("START RequestId: ").expect("START line");
        assert_eq!(
            logs[start],
            format!("START RequestId: {} Version: $LATEST", first.request_id)
        );
        assert!(position("printed at import").unwrap() < start);
        for line in ["hello from the handler", "to stderr", "raw write to fd 1"] {
            assert!(position(line).unwrap() > start, "{line}: {logs:#?}");
        }
        assert!(position(&format!("END RequestId: {}", first.request_id)).is_some());
        let report = logs.last().unwrap();
        assert!(
            report.starts_with(&format!(
                "REPORT RequestId: {}\tDuration: ",
                first.request_id
            )),
            "{report}"
        );
        assert!(report.contains("Memory Size: 256 MB") && report.contains("Init Duration"));

        let second = pool.invoke(json!({"n": 2})).await.unwrap();
        assert_eq!(ok(&second), &json!(2));
        assert_eq!(
            second
                .log_lines
                .iter()
                .filter(|l| l.contains("hello from"))
                .count(),
            1
        );
        assert!(
            !second
                .log_lines
                .iter()
                .any(|l| l.contains("printed at import"))
        );
        assert!(!second.log_lines.last().unwrap().contains("Init Duration"));
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn exception_gives_type_message_and_stack() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os
def inner():
    raise ValueError("boom")
def handle(event, context):
    if event.get("fail"):
        inner()
    return os.getpid()
"#,
        )]);
        let pool = pool(config("raiser", &code));
        let before = pool.invoke(json!({})).await.unwrap();
        let failed = pool.invoke(json!({"fail": true})).await.unwrap();
        let error = err(&failed);
        assert_eq!(error.error_type, "ValueError");
        assert_eq!(error.message, "boom");
        assert_eq!(error.stack.len(), 2, "{:#?}", error.stack);
        assert!(error.stack[0].contains("handler.py") && error.stack[0].contains("in handle"));
        assert!(error.stack[1].contains("raise ValueError(\"boom\")"));
        assert_eq!(
            error.to_payload(),
            json!({"errorMessage": "boom", "errorType": "ValueError", "stackTrace": error.stack})
        );
        assert!(
            failed
                .log_lines
                .iter()
                .any(|l| l == "[ERROR] ValueError: boom")
        );
        // A handled exception leaves the worker warm.
        let after = pool.invoke(json!({})).await.unwrap();
        assert_eq!(ok(&before), ok(&after));
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn import_error_is_reported_on_every_invocation() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", "import no_such_module_xyz\n")]);
        let pool = pool(config("broken", &code));
        for _ in 0..2 {
            let invocation = pool.invoke(json!({})).await.unwrap();
            let error = err(&invocation);
            assert_eq!(error.error_type, "Runtime.ImportModuleError");
            assert_eq!(
                error.message,
                "Unable to import module 'handler': No module named 'no_such_module_xyz'"
            );
            assert!(
                invocation
                    .log_lines
                    .iter()
                    .any(|l| l.starts_with("[ERROR] Runtime.ImportModuleError"))
            );
        }
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn missing_and_malformed_handlers() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", "x = 1\n")]);
        let mut missing = config("missing", &code);
        missing.handler = "handler.nope".into();
        let pool = pool(missing.clone());
        let invocation = pool.invoke(json!({})).await.unwrap();
        assert_eq!(err(&invocation).error_type, "Runtime.HandlerNotFound");
        assert_eq!(
            err(&invocation).message,
            "Handler 'nope' missing on module 'handler'"
        );
        pool.shutdown().await;

        missing.handler = "handler".into();
        let pool = self::pool(missing);
        let invocation = pool.invoke(json!({})).await.unwrap();
        assert_eq!(err(&invocation).error_type, "Runtime.MalformedHandlerName");
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unserialisable_result_is_a_marshal_error() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", "def handle(e, c):\n    return {1, 2}\n")]);
        let pool = pool(config("marshal", &code));
        let invocation = pool.invoke(json!({})).await.unwrap();
        let error = err(&invocation);
        assert_eq!(error.error_type, "Runtime.MarshalError");
        assert!(
            error
                .message
                .starts_with("Unable to marshal response: Object of type set")
        );
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn timeout_kills_the_worker_and_the_next_invocation_gets_a_fresh_one() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", PID_HANDLER)]);
        let mut config = config("slow", &code);
        config.timeout = Duration::from_secs(1);
        let pool = pool(config);
        let first = pool.invoke(json!({})).await.unwrap();
        let first_pid = ok(&first).as_u64().unwrap();

        let timed_out = pool.invoke(json!({"sleep": 30})).await.unwrap();
        let error = err(&timed_out);
        assert_eq!(error.error_type, "Sandbox.Timedout");
        assert_eq!(
            error.message,
            format!(
                "RequestId: {} Error: Task timed out after 1.00 seconds",
                timed_out.request_id
            )
        );
        assert!(timed_out.duration < Duration::from_secs(10));
        assert!(
            timed_out
                .log_lines
                .iter()
                .any(|l| l.ends_with("Task timed out after 1.00 seconds"))
        );
        assert!(
            timed_out
                .log_lines
                .last()
                .unwrap()
                .contains("Status: timeout")
        );
        assert!(timed_out.log_lines.iter().any(|l| l == "going to sleep"));
        wait_dead(first_pid).await;
        assert_eq!(pool.idle_workers(), 0);

        let next = pool.invoke(json!({})).await.unwrap();
        let next_pid = ok(&next).as_u64().unwrap();
        assert_ne!(next_pid, first_pid);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn worker_exiting_mid_invocation_is_an_exit_error_and_is_replaced() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", PID_HANDLER)]);
        let pool = pool(config("crasher", &code));
        let first = pool.invoke(json!({})).await.unwrap();
        let first_pid = ok(&first).as_u64().unwrap();

        let crashed = pool.invoke(json!({"exit": true})).await.unwrap();
        let error = err(&crashed);
        assert_eq!(error.error_type, "Runtime.ExitError");
        assert_eq!(
            error.message,
            format!(
                "RequestId: {} Error: Runtime exited with error: exit status: 3",
                crashed.request_id
            )
        );
        assert!(crashed.log_lines.iter().any(|l| l == "about to exit"));
        wait_dead(first_pid).await;

        let next = pool.invoke(json!({})).await.unwrap();
        assert_ne!(ok(&next).as_u64().unwrap(), first_pid);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_callers_wait() {
    bounded(async {
        // Each invocation marks itself running with a file, counts the running ones, sleeps and
        // unmarks itself: the count is the number of invocations running at that moment.
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os, time
def handle(event, context):
    running = event["dir"]
    mine = os.path.join(running, context.aws_request_id)
    open(mine, "w").close()
    count = len(os.listdir(running))
    time.sleep(0.3)
    os.remove(mine)
    return {"pid": os.getpid(), "running": count}
"#,
        )]);
        let running = code.path().join("running");
        std::fs::create_dir(&running).unwrap();
        let mut config = config("bounded", &code);
        config.concurrency = 2;
        let pool = Arc::new(pool(config));
        const N: usize = 6;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..N {
            let pool = pool.clone();
            let event = json!({"dir": running.display().to_string()});
            tasks.spawn(async move { pool.invoke(event).await.unwrap() });
        }
        let mut pids = HashSet::new();
        let mut max_running = 0;
        let mut done = 0;
        while let Some(invocation) = tasks.join_next().await {
            let invocation = invocation.unwrap();
            let got = ok(&invocation);
            pids.insert(got["pid"].as_u64().unwrap());
            max_running = max_running.max(got["running"].as_u64().unwrap());
            done += 1;
        }
        assert_eq!(done, N);
        // Never more than two at once, hence at least ceil(N / 2) rounds; at most two workers.
        assert!((1..=2).contains(&max_running), "{max_running}");
        assert!((1..=2).contains(&pids.len()), "{pids:?}");
        assert!(pool.idle_workers() <= 2);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_worker_stays_warm_between_invocations() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            "import os\ncount = 0\ndef handle(e, c):\n    global count\n    count += 1\n    return [os.getpid(), count]\n",
        )]);
        let pool = pool(config("warm", &code));
        let mut pids = HashSet::new();
        for expected in 1..=3 {
            let invocation = pool.invoke(json!({})).await.unwrap();
            let got = ok(&invocation);
            assert_eq!(got[1], expected);
            pids.insert(got[0].as_u64().unwrap());
        }
        assert_eq!(pids.len(), 1);
        assert_eq!(pool.idle_workers(), 1);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn environment_is_the_configured_one_and_the_host_does_not_leak() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            "import os\ndef handle(e, c):\n    return dict(os.environ)\n",
        )]);
        let mut config = config("env", &code);
        config.environment = BTreeMap::from([
            ("AWS_REGION".to_owned(), "eu-west-1".to_owned()),
            (
                "AWS_ENDPOINT_URL".to_owned(),
                "http://127.0.0.1:1".to_owned(),
            ),
            ("MY_SETTING".to_owned(), "x=y z".to_owned()),
        ]);
        let pool = pool(config);
        let invocation = pool.invoke(json!({})).await.unwrap();
        let env = ok(&invocation).as_object().unwrap();
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:1");
        assert_eq!(env["MY_SETTING"], "x=y z");
        assert_eq!(env["PYTHONUNBUFFERED"], "1");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "env");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/env");
        assert_eq!(
            env["AWS_LAMBDA_LOG_STREAM_NAME"],
            invocation.log_stream_name.as_str()
        );
        assert_eq!(env["_HANDLER"], "handler.handle");
        assert_eq!(env["LAMBDA_TASK_ROOT"], code.path().display().to_string());
        assert!(env.contains_key("PATH"));
        // Whatever else the host has must not reach the worker (a Python interpreter or pyenv
        // shim may add variables of its own, which are not leaks).
        let own = |k: &str| {
            [
                "PATH",
                "HOME",
                "LANG",
                "TZ",
                "LC_CTYPE",
                "PYTHONUNBUFFERED",
                "_HANDLER",
            ]
            .contains(&k)
                || k.starts_with("AWS_")
                || k.starts_with("LAMBDA_")
                || k.starts_with("PYENV")
                || k == "MY_SETTING"
        };
        let leaked: Vec<_> = std::env::vars()
            .filter(|(k, v)| !own(k) && env.get(k).is_some_and(|w| w == v.as_str()))
            .map(|(k, _)| k)
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn redeploying_starts_a_new_generation_and_stops_the_old_workers() {
    bounded(async {
        let v1 = CodeDir::new(&[(
            "handler.py",
            "import os\ndef handle(e, c):\n    return ['v1', os.getpid()]\n",
        )]);
        let v2 = CodeDir::new(&[(
            "handler.py",
            "import os\ndef handle(e, c):\n    return ['v2', os.getpid()]\n",
        )]);
        let runtime = FunctionRuntime::new();
        let first = runtime.deploy(config("gen", &v1)).unwrap();
        let invocation = runtime
            .invoke("gen", json!({}), RequestId::generate())
            .await
            .unwrap();
        assert_eq!(ok(&invocation)[0], "v1");
        let old_pid = ok(&invocation)[1].as_u64().unwrap();

        let second = runtime.deploy(config("gen", &v2)).unwrap();
        assert!(second > first);
        assert_eq!(runtime.pool("gen").unwrap().generation(), second);
        wait_dead(old_pid).await;
        let invocation = runtime
            .invoke("gen", json!({}), RequestId::generate())
            .await
            .unwrap();
        assert_eq!(ok(&invocation)[0], "v2");
        let new_pid = ok(&invocation)[1].as_u64().unwrap();

        assert!(matches!(
            runtime
                .invoke("nope", json!({}), RequestId::generate())
                .await,
            Err(InvokeError::NotFound(_))
        ));
        runtime.shutdown().await;
        wait_dead(new_pid).await;
        assert!(matches!(
            runtime
                .invoke("gen", json!({}), RequestId::generate())
                .await,
            Err(InvokeError::ShuttingDown(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn removed_function_is_not_found() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", PID_HANDLER)]);
        let runtime = FunctionRuntime::new();
        runtime.deploy(config("gone", &code)).unwrap();
        let invocation = runtime
            .invoke("gone", json!({}), RequestId::generate())
            .await
            .unwrap();
        let pid = ok(&invocation).as_u64().unwrap();
        assert!(runtime.remove("gone"));
        assert!(!runtime.remove("gone"));
        wait_dead(pid).await;
        assert!(matches!(
            runtime
                .invoke("gone", json!({}), RequestId::generate())
                .await,
            Err(InvokeError::NotFound(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn missing_interpreter_is_a_spawn_error() {
    bounded(async {
        let code = CodeDir::new(&[("handler.py", PID_HANDLER)]);
        let mut config = config("nointerp", &code);
        config.runtime = Arc::new(PythonRuntime::new("python3.12", "/nonexistent/python3"));
        let pool = pool(config);
        assert!(matches!(
            pool.invoke(json!({})).await,
            Err(InvokeError::Spawn { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn any_executable_speaking_the_protocol_is_a_runtime() {
    bounded(async {
        // A runtime that is not the Python bootstrap: a tiny echo worker, itself a script.
        let code = CodeDir::new(&[(
            "worker.py",
            r#"
import json, sys
code_dir, handler = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    request = json.loads(line)
    rid = request["context"]["aws_request_id"]
    print("echo worker for " + handler, file=sys.stderr)
    print("REPORT RequestId: " + rid, file=sys.stderr, flush=True)
    print(json.dumps({"id": request["id"], "ok": {"echo": request["event"]}}), flush=True)
"#,
        )]);
        let mut config = config("echo", &code);
        config.handler = "whatever".into();
        config.runtime = Arc::new(CommandRuntime::new(
            "provided",
            "python3",
            vec![code.path().join("worker.py").into_os_string()],
        ));
        let pool = pool(config);
        let invocation = pool.invoke(json!({"x": 1})).await.unwrap();
        assert_eq!(ok(&invocation), &json!({"echo": {"x": 1}}));
        assert_eq!(invocation.log_lines[0], "echo worker for whatever");
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_output_is_bounded() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os, sys
def handle(event, context):
    if event == "big-result":
        return "x" * (7 * 1024 * 1024)
    if event == "long-line":
        sys.stderr.write("y" * (1024 * 1024) + "\n")
    if event == "many-lines":
        for _ in range(6000):
            print("z" * 1000)
    return os.getpid()
"#,
        )]);
        let pool = pool(config("big", &code));
        let big = pool.invoke(json!("big-result")).await.unwrap();
        assert_eq!(err(&big).error_type, "Function.ResponseSizeTooLarge");

        let long = pool.invoke(json!("long-line")).await.unwrap();
        let longest = long.log_lines.iter().map(String::len).max().unwrap();
        assert_eq!(longest, 256 * 1024);

        let many = pool.invoke(json!("many-lines")).await.unwrap();
        let kept = many.log_lines.iter().filter(|l| l.starts_with('z')).count();
        assert!(kept < 6000 && kept > 3000, "{kept}");
        assert!(
            many.log_lines
                .iter()
                .any(|l| l.starts_with("[ferrule] ") && l.contains("log lines dropped"))
        );
        assert!(
            many.log_lines
                .last()
                .unwrap()
                .starts_with("REPORT RequestId: ")
        );
        // None of this cost the worker: all three ran in the same process.
        assert_eq!(ok(&long), ok(&many));
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_during_a_redeploy_run_the_new_code() {
    bounded(async {
        let handler = |version: &str| {
            format!(
                r#"
import os, time
def handle(event, context):
    if event.get("started"):
        open(event["started"], "w").close()
        time.sleep(1)
    return ["{version}", os.getpid()]
"#
            )
        };
        let v1 = CodeDir::new(&[("handler.py", &handler("v1"))]);
        let v2 = CodeDir::new(&[("handler.py", &handler("v2"))]);
        let started = v1.path().join("started");
        let runtime = Arc::new(FunctionRuntime::new());
        runtime.deploy(config("swap", &v1)).unwrap();

        let running = {
            let runtime = runtime.clone();
            let event = json!({"started": started.display().to_string()});
            tokio::spawn(async move {
                runtime
                    .invoke("swap", event, RequestId::generate())
                    .await
                    .unwrap()
            })
        };
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Concurrency 1: this caller waits behind the running invocation.
        let waiting = {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                runtime
                    .invoke("swap", json!({}), RequestId::generate())
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        runtime.deploy(config("swap", &v2)).unwrap();

        let running = running.await.unwrap();
        let waiting = waiting.await.unwrap();
        assert_eq!(ok(&running)[0], "v1");
        assert_eq!(ok(&waiting)[0], "v2");
        // The old generation's worker stops once its invocation is done.
        wait_dead(ok(&running)[1].as_u64().unwrap()).await;
        runtime.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_worker_that_died_while_idle_is_replaced_before_the_next_invocation() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os, threading
def handle(event, context):
    if event.get("die_later"):
        threading.Timer(0.1, lambda: os._exit(1)).start()
    return os.getpid()
"#,
        )]);
        let pool = pool(config("idle-death", &code));
        let first = pool.invoke(json!({"die_later": true})).await.unwrap();
        let first_pid = ok(&first).as_u64().unwrap();
        wait_dead(first_pid).await;
        let next = pool.invoke(json!({})).await.unwrap();
        assert_ne!(ok(&next).as_u64().unwrap(), first_pid);
        pool.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_invocations_finish_then_stops_the_workers() {
    bounded(async {
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import os, time
def handle(event, context):
    if event.get("started"):
        open(event["started"], "w").close()
        time.sleep(0.5)
    return os.getpid()
"#,
        )]);
        let started = code.path().join("started");
        let runtime = Arc::new(FunctionRuntime::new());
        runtime.deploy(config("draining", &code)).unwrap();
        let warm = runtime
            .invoke("draining", json!({}), RequestId::generate())
            .await
            .unwrap();
        let pid = ok(&warm).as_u64().unwrap();
        let running = {
            let runtime = runtime.clone();
            let event = json!({"started": started.display().to_string()});
            tokio::spawn(async move {
                runtime
                    .invoke("draining", event, RequestId::generate())
                    .await
                    .unwrap()
            })
        };
        while !started.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        runtime.shutdown().await;
        let finished = running.await.unwrap();
        assert_eq!(ok(&finished).as_u64().unwrap(), pid);
        wait_dead(pid).await;
    })
    .await;
}
