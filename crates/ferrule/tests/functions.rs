//! The function runtime through the real `aws lambda` and `aws logs` CLIs: synchronous and
//! asynchronous invocations, the handler's environment, what a timeout and a crash look like to
//! the caller and that the function keeps working after them, Lambda's two retries of a failed
//! asynchronous invocation, new code taking effect, and prints readable with
//! `aws logs filter-log-events`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Aws, CLIENT_TIMEOUT, REGION, Server, create_function, create_role, function_logs, str_of,
    zip_files,
};
use serde_json::{Value, json};

/// `aws lambda invoke` with `payload`: the CLI's answer and the response payload it wrote.
fn invoke(
    aws: &Aws,
    dir: &Path,
    function: &str,
    payload: &Value,
    extra: &[&str],
) -> (Value, Value) {
    let out = dir.join(format!("{function}-out.json"));
    let _ = std::fs::remove_file(&out);
    let payload = payload.to_string();
    let out_arg = out.display().to_string();
    let mut args = vec!["invoke", "--function-name", function, "--payload", &payload];
    args.extend(extra);
    args.push(&out_arg);
    let answer = aws.cli_ok("lambda", &args);
    let body = std::fs::read_to_string(&out).unwrap_or_default();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (answer, body)
}

fn start() -> (Server, tempfile::TempDir, Aws, String) {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let aws = server.aws();
    let role = create_role(&aws, "fn-role", &["iot:List*"]);
    (server, dir, aws, role)
}

const ECHO: &str = r#"import os

def handler(event, context):
    print('event: ' + repr(event))
    return {
        'event': event,
        'request_id': context.aws_request_id,
        'function_name': context.function_name,
        'remaining_ms_positive': context.get_remaining_time_in_millis() > 0,
        'env': {k: os.environ.get(k) for k in [
            'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_LAMBDA_FUNCTION_NAME', 'GREETING']},
        'has_credentials': all(os.environ.get(k) for k in [
            'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']),
        'endpoint': os.environ.get('AWS_ENDPOINT_URL'),
    }
"#;

#[test]
fn a_synchronous_invocation_returns_the_result_and_the_prints_reach_the_logs() {
    let (server, dir, aws, role) = start();
    let zip = zip_files(dir.path(), "echo", &[("app.py", ECHO)]);
    create_function(
        &aws,
        "echo",
        &zip,
        "app.handler",
        &role,
        5,
        &[("GREETING", "hej")],
    );

    let (answer, body) = invoke(&aws, dir.path(), "echo", &json!({"n": 7}), &[]);
    assert_eq!(answer["StatusCode"], 200, "{answer}");
    assert_eq!(answer["ExecutedVersion"], "$LATEST", "{answer}");
    assert!(answer.get("FunctionError").is_none(), "{answer}");
    assert_eq!(body["event"], json!({"n": 7}), "{body}");
    assert_eq!(body["function_name"], "echo", "{body}");
    assert_eq!(body["remaining_ms_positive"], true, "{body}");
    assert_eq!(
        body["env"],
        json!({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
               "AWS_LAMBDA_FUNCTION_NAME": "echo", "GREETING": "hej"}),
        "{body}"
    );
    assert_eq!(body["has_credentials"], true, "{body}");
    assert_eq!(
        body["endpoint"],
        format!("http://{}", server.api()),
        "{body}"
    );
    let request_id = str_of(&body["request_id"]).to_owned();

    let printed = function_logs(&aws, "echo", "event", 1, CLIENT_TIMEOUT);
    assert_eq!(printed, ["event: {'n': 7}"], "{printed:?}");
    let all = function_logs(&aws, "echo", "", 4, CLIENT_TIMEOUT);
    assert!(
        all.iter()
            .any(|l| l.starts_with(&format!("START RequestId: {request_id}"))),
        "{all:?}"
    );
    // Log tail in the response, base64 of the invocation's last 4 KB of log, as Lambda does.
    let (answer, _) = invoke(
        &aws,
        dir.path(),
        "echo",
        &json!({}),
        &["--log-type", "Tail"],
    );
    let tail = decode_base64(str_of(&answer["LogResult"]));
    assert!(tail.contains("START RequestId:"), "{tail}");
    assert!(tail.contains("REPORT RequestId:"), "{tail}");
    assert!(tail.contains("event: {}"), "{tail}");
}

const FLAKY: &str = r#"import os, time

def sleepy(event, context):
    time.sleep(event.get('sleep', 0))
    return 'woke'

def crash(event, context):
    if event.get('crash'):
        print('crashing now')
        os._exit(3)
    return 'alive'

def fails_twice(event, context):
    path = os.environ['COUNTER']
    n = int(open(path).read()) if os.path.exists(path) else 0
    open(path, 'w').write(str(n + 1))
    print('attempt ' + str(n + 1))
    if n < 2:
        raise RuntimeError('attempt ' + str(n + 1) + ' fails')
    return 'third time lucky'
"#;

#[test]
fn a_timeout_and_a_crash_are_function_errors_and_the_function_keeps_working() {
    let (_server, dir, aws, role) = start();
    let zip = zip_files(dir.path(), "flaky", &[("flaky.py", FLAKY)]);
    create_function(&aws, "sleepy", &zip, "flaky.sleepy", &role, 1, &[]);
    create_function(&aws, "crash", &zip, "flaky.crash", &role, 5, &[]);

    let (answer, body) = invoke(&aws, dir.path(), "sleepy", &json!({"sleep": 3}), &[]);
    assert_eq!(answer["StatusCode"], 200, "{answer}");
    assert_eq!(answer["FunctionError"], "Unhandled", "{answer}");
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    assert!(
        str_of(&body["errorMessage"]).contains("Task timed out after"),
        "{body}"
    );
    let (answer, body) = invoke(&aws, dir.path(), "sleepy", &json!({"sleep": 0}), &[]);
    assert!(answer.get("FunctionError").is_none(), "{answer}");
    assert_eq!(body, "woke");

    let (answer, body) = invoke(&aws, dir.path(), "crash", &json!({"crash": true}), &[]);
    assert_eq!(answer["FunctionError"], "Unhandled", "{answer}");
    assert!(str_of(&body["errorType"]).starts_with("Runtime."), "{body}");
    let (answer, body) = invoke(&aws, dir.path(), "crash", &json!({}), &[]);
    assert!(answer.get("FunctionError").is_none(), "{answer}");
    assert_eq!(body, "alive");
    let printed = function_logs(&aws, "crash", "crashing", 1, CLIENT_TIMEOUT);
    assert_eq!(printed, ["crashing now"], "{printed:?}");
}

#[test]
fn a_failed_asynchronous_invocation_is_retried_twice() {
    let (_server, dir, aws, role) = start();
    let zip = zip_files(dir.path(), "flaky", &[("flaky.py", FLAKY)]);
    let counter = dir.path().join("counter");
    create_function(
        &aws,
        "retried",
        &zip,
        "flaky.fails_twice",
        &role,
        5,
        &[("COUNTER", counter.to_str().unwrap())],
    );
    let (answer, body) = invoke(
        &aws,
        dir.path(),
        "retried",
        &json!({}),
        &["--invocation-type", "Event"],
    );
    assert_eq!(answer["StatusCode"], 202, "{answer}");
    assert_eq!(body, Value::Null);
    // The handler prints `attempt N`; the runtime logs each failure and the retry after it.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (lines, printed) = loop {
        let lines = function_logs(&aws, "retried", "attempt", 1, CLIENT_TIMEOUT);
        let printed: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("attempt "))
            .cloned()
            .collect();
        if printed.len() >= 3 || std::time::Instant::now() >= deadline {
            break (lines, printed);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        printed,
        ["attempt 1", "attempt 2", "attempt 3"],
        "{lines:?}"
    );
    let retries = lines.iter().filter(|l| l.contains("retrying in")).count();
    assert_eq!(retries, 2, "{lines:?}");
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "3");
    // No fourth attempt.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "3");
}

#[test]
fn new_code_and_configuration_take_effect_on_the_next_invocation() {
    let (_server, dir, aws, role) = start();
    let v1 = zip_files(
        dir.path(),
        "v1",
        &[("app.py", "def h(e, c):\n    return 'one'\n")],
    );
    let v2 = zip_files(
        dir.path(),
        "v2",
        &[(
            "app.py",
            "import os\ndef h(e, c):\n    return 'two ' + os.environ.get('MODE', '-')\n",
        )],
    );
    create_function(&aws, "versions", &v1, "app.h", &role, 5, &[]);
    let (_, body) = invoke(&aws, dir.path(), "versions", &json!({}), &[]);
    assert_eq!(body, "one");
    aws.cli_ok(
        "lambda",
        &[
            "update-function-code",
            "--function-name",
            "versions",
            "--zip-file",
            &format!("fileb://{}", v2.display()),
        ],
    );
    let (_, body) = invoke(&aws, dir.path(), "versions", &json!({}), &[]);
    assert_eq!(body, "two -");
    aws.cli_ok(
        "lambda",
        &[
            "update-function-configuration",
            "--function-name",
            "versions",
            "--environment",
            "Variables={MODE=fast}",
        ],
    );
    let (_, body) = invoke(&aws, dir.path(), "versions", &json!({}), &[]);
    assert_eq!(body, "two fast");
    aws.cli_ok(
        "lambda",
        &["delete-function", "--function-name", "versions"],
    );
    let err = aws
        .cli("lambda", &["get-function", "--function-name", "versions"])
        .unwrap_err();
    assert_eq!(err.code, "ResourceNotFoundException", "{err}");
}

/// Standard base64, for `LogResult`.
fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn functions_survive_a_restart_and_a_warm_worker_stops_with_the_server() {
    let (mut server, dir, aws, role) = start();
    let zip = zip_files(dir.path(), "echo", &[("app.py", ECHO)]);
    create_function(&aws, "kept", &zip, "app.handler", &role, 5, &[]);
    let (_, body) = invoke(&aws, dir.path(), "kept", &json!({"n": 1}), &[]);
    assert_eq!(body["event"], json!({"n": 1}), "{body}");
    let code_root = server.data_dir().join("functions");
    assert_eq!(workers_in(&code_root), 1, "one warm worker");
    // The warm worker is a child of the server; SIGTERM must stop both, cleanly.
    server.restart();
    assert_eq!(workers_in(&code_root), 0, "a worker outlived its server");
    let aws = server.aws();
    let (answer, body) = invoke(&aws, dir.path(), "kept", &json!({"n": 2}), &[]);
    assert!(answer.get("FunctionError").is_none(), "{answer}");
    assert_eq!(body["event"], json!({"n": 2}), "{body}");
    // The restarted server gives the function its own new address.
    assert_eq!(
        body["endpoint"],
        format!("http://{}", server.api()),
        "{body}"
    );
    let listed = aws.cli_ok("lambda", &["list-functions"]);
    let names: Vec<&str> = listed["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| str_of(&f["FunctionName"]))
        .collect();
    assert_eq!(names, ["kept"], "{listed}");
}

/// Processes whose working directory is under `root` (function workers run in their code
/// directory).
fn workers_in(root: &Path) -> usize {
    let Ok(root) = root.canonicalize() else {
        return 0;
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_link(e.path().join("cwd")).ok())
        .filter(|cwd| cwd.starts_with(&root))
        .count()
}
