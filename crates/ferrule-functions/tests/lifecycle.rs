//! Worker lifecycle against real `python3` workers: timeouts, crashes, concurrency, generations,
//! removal and shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferrule_functions::{FunctionRuntime, InvokeError, PythonRuntime, RequestId};
use serde_json::json;

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
