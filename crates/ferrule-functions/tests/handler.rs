//! What a handler sees and returns, against real `python3` workers: results, event and context,
//! logs, errors, environment, warmth, bounded output, other runtimes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::*;
use ferrule_functions::{CommandRuntime, RequestId};
use serde_json::json;

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
        let code = CodeDir::new(&[(
            "handler.py",
            r#"
import decimal
def handle(event, context):
    return {"set": {1, 2}, "nan": float("nan"), "dec": decimal.Decimal("1.5")}[event]
"#,
        )]);
        let pool = pool(config("marshal", &code));
        let invocation = pool.invoke(json!("set")).await.unwrap();
        let error = err(&invocation);
        assert_eq!(error.error_type, "Runtime.MarshalError");
        assert!(
            error
                .message
                .starts_with("Unable to marshal response: Object of type set")
        );
        // NaN is not JSON: refused in the worker, not breaking the protocol.
        let invocation = pool.invoke(json!("nan")).await.unwrap();
        assert_eq!(err(&invocation).error_type, "Runtime.MarshalError");
        // Decimals are numbers, as AWS's encoder makes them.
        let invocation = pool.invoke(json!("dec")).await.unwrap();
        assert_eq!(ok(&invocation), &json!(1.5));
        assert_eq!(pool.idle_workers(), 1);
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
