//! The rules engine inside the broker: rules stored in a real registry, messages from real
//! clients, a function invoker registered by the test (the function runtime is the binary's
//! business), and a local HTTP server for the HTTP action.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Opts, TestBroker, config, text};
use ferrule_broker::{FunctionInvoker, InvokeFuture, RulesSettings};
use ferrule_mqtt::QoS;
use ferrule_store::{Registry, RuleRecord};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Records invocations; fails them while `fail` says why.
#[derive(Default)]
struct Functions {
    calls: Mutex<Vec<(String, Value)>>,
    fail: Mutex<Option<String>>,
}

impl FunctionInvoker for Functions {
    fn invoke(&self, function_arn: &str, event: Vec<u8>) -> InvokeFuture<'_> {
        let arn = function_arn.to_owned();
        Box::pin(async move {
            if let Some(why) = self.fail.lock().unwrap().clone() {
                return Err(why);
            }
            let event = serde_json::from_slice(&event).map_err(|e| e.to_string())?;
            self.calls.lock().unwrap().push((arn, event));
            Ok(())
        })
    }
}

struct Setup {
    b: TestBroker,
    registry: Registry,
    functions: Arc<Functions>,
    _dir: TempDir,
}

async fn setup(http_allow: Vec<String>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_sqlite(&dir.path().join("registry.db"))
        .await
        .unwrap();
    let functions = Arc::new(Functions::default());
    let b = TestBroker::start(config()).await;
    b.broker
        .enable_rules(RulesSettings {
            registry: registry.clone(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            http_allow,
            functions: Some(functions.clone()),
            queue_capacity: 1000,
            concurrency: 8,
        })
        .await
        .unwrap();
    Setup {
        b,
        registry,
        functions,
        _dir: dir,
    }
}

async fn add_rule(registry: &Registry, name: &str, payload: Value) {
    let sql = payload["sql"].as_str().unwrap();
    let from = sql.split('\'').nth(1).unwrap().to_owned();
    registry
        .create_rule(&RuleRecord {
            name: name.into(),
            topic_pattern: from,
            payload: payload.to_string(),
            disabled: false,
            created_ms: 1,
        })
        .await
        .unwrap();
}

fn republish(topic: &str) -> Value {
    json!({"republish": {"roleArn": "arn:aws:iam::123456789012:role/r", "topic": topic, "qos": 0}})
}

/// Waits until `f` says yes, for at most two seconds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_action_gets_the_output_of_the_sql() {
    let s = setup(Vec::new()).await;
    add_rule(
        &s.registry,
        "to_function",
        json!({
            "sql": "SELECT *, clientid() AS client, topic(2) AS device FROM 'in/+' WHERE a > 0",
            "actions": [{"lambda": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}}],
            "awsIotSqlVersion": "2016-03-23"
        }),
    )
    .await;
    // Loaded from the change feed, without a restart.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = s.b.client(Opts::v5("dev-9")).await;
    c.publish("in/d1", r#"{"a":1}"#, QoS::AtLeastOnce, false)
        .await;
    c.publish("in/d1", r#"{"a":0}"#, QoS::AtLeastOnce, false)
        .await;
    eventually("an invocation", || {
        !s.functions.calls.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = s.functions.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].0,
        "arn:aws:lambda:us-east-1:123456789012:function:f"
    );
    assert_eq!(
        calls[0].1,
        json!({"a": 1, "client": "dev-9", "device": "d1"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_action_runs_the_error_action_with_aws_payload() {
    let s = setup(Vec::new()).await;
    *s.functions.fail.lock().unwrap() = Some("the function is broken".into());
    add_rule(
        &s.registry,
        "fails",
        json!({
            "sql": "SELECT * FROM 'work/#'",
            "actions": [
                {"lambda": {"functionArn": "arn:aws:lambda:us-east-1:123456789012:function:broken"}},
                republish("done/${topic(2)}")
            ],
            "errorAction": republish("errors/${topic(2)}"),
            "awsIotSqlVersion": "2016-03-23"
        }),
    )
    .await;
    let mut sub = s.b.client(Opts::v5("watcher")).await;
    sub.subscribe("errors/#", QoS::AtMostOnce).await;
    sub.subscribe("done/#", QoS::AtMostOnce).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("dev-1")).await;
    dev.publish("work/a", r#"{"x":1}"#, QoS::AtMostOnce, false)
        .await;
    let mut got = [sub.recv_publish().await, sub.recv_publish().await];
    got.sort_by_key(|p| p.topic.as_ref().unwrap().as_str().to_owned());
    // The other action still ran.
    assert_eq!(got[0].topic.as_ref().unwrap().as_str(), "done/a");
    assert_eq!(text(&got[0]), r#"{"x":1}"#);
    assert_eq!(got[1].topic.as_ref().unwrap().as_str(), "errors/a");
    let e: Value = serde_json::from_str(text(&got[1])).unwrap();
    assert_eq!(e["ruleName"], "fails");
    assert_eq!(e["topic"], "work/a");
    assert_eq!(e["clientId"], "dev-1");
    assert_eq!(e["base64OriginalPayload"], "eyJ4IjoxfQ==");
    assert_eq!(e["cloudwatchTraceId"].as_str().unwrap().len(), 36);
    assert_eq!(
        e["failures"],
        json!([{
            "failedAction": "LambdaAction",
            "failedResource": "arn:aws:lambda:us-east-1:123456789012:function:broken",
            "errorMessage": "the function is broken"
        }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_republishing_onto_its_own_filter_stops_after_eight_hops() {
    let s = setup(Vec::new()).await;
    add_rule(
        &s.registry,
        "echo",
        json!({"sql": "SELECT * FROM 'loop/#'", "actions": [republish("loop/again")]}),
    )
    .await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    sub.subscribe("loop/#", QoS::AtMostOnce).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("dev")).await;
    dev.publish("loop/start", "x", QoS::AtMostOnce, false).await;
    let mut n = 0;
    while let common::Next::Packet(_) = sub.next(Duration::from_millis(500)).await {
        n += 1;
        assert!(n < 100, "the loop does not stop");
    }
    assert_eq!(n, 1 + 8, "the original and eight republishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_action_posts_the_output_and_retries_server_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push((head, String::from_utf8(body).unwrap()));
            let status = if i == 0 { "503 Busy" } else { "200 OK" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    let allowed = format!("http://127.0.0.1:{port}/");
    let s = setup(vec![allowed.clone()]).await;
    add_rule(
        &s.registry,
        "hook",
        json!({
            "sql": "SELECT temp FROM 'hook/+'",
            "actions": [{"http": {
                "url": format!("{allowed}devices/${{topic(2)}}"),
                "headers": [{"key": "X-Device", "value": "${topic(2)}"}]
            }}],
            "awsIotSqlVersion": "2016-03-23"
        }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("dev")).await;
    dev.publish(
        "hook/d7",
        r#"{"temp":21,"other":1}"#,
        QoS::AtMostOnce,
        false,
    )
    .await;
    eventually("two requests", || requests.lock().unwrap().len() == 2).await;
    for (head, body) in requests.lock().unwrap().iter() {
        assert!(head.starts_with("POST /devices/d7 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("X-Device: d7\r\n"), "{head}");
        assert!(
            head.contains("Content-Type: application/json\r\n"),
            "{head}"
        );
        assert_eq!(body, r#"{"temp":21}"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_url_not_allowed_fails_without_a_request() {
    let s = setup(vec!["http://127.0.0.1:1/only-here/".into()]).await;
    add_rule(
        &s.registry,
        "elsewhere",
        json!({
            "sql": "SELECT * FROM 'out'",
            "actions": [{"http": {"url": "http://127.0.0.1:1/somewhere-else"}}],
            "errorAction": republish("errors/http")
        }),
    )
    .await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    sub.subscribe("errors/#", QoS::AtMostOnce).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("dev")).await;
    dev.publish("out", "{}", QoS::AtMostOnce, false).await;
    let e: Value = serde_json::from_str(text(&sub.recv_publish().await)).unwrap();
    assert_eq!(e["failures"][0]["failedAction"], "HttpAction");
    let message = e["failures"][0]["errorMessage"].as_str().unwrap();
    assert!(message.contains("rules_http_allow"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_rule_stops_it() {
    let s = setup(Vec::new()).await;
    add_rule(
        &s.registry,
        "toggle",
        json!({"sql": "SELECT * FROM 'a'", "actions": [republish("b")]}),
    )
    .await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    sub.subscribe("b", QoS::AtMostOnce).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("dev")).await;
    dev.publish("a", "1", QoS::AtMostOnce, false).await;
    assert_eq!(text(&sub.recv_publish().await), "1");
    s.registry.set_rule_disabled("toggle", true).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    dev.publish("a", "2", QoS::AtMostOnce, false).await;
    sub.expect_silence(Duration::from_millis(300)).await;
    s.registry.set_rule_disabled("toggle", false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    dev.publish("a", "3", QoS::AtMostOnce, false).await;
    assert_eq!(text(&sub.recv_publish().await), "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_headers_become_mqtt5_properties() {
    let s = setup(Vec::new()).await;
    add_rule(
        &s.registry,
        "with_headers",
        json!({
            "sql": "SELECT * FROM 'req/+'",
            "actions": [{"republish": {
                "roleArn": "arn:aws:iam::123456789012:role/r",
                "topic": "resp/${topic(2)}",
                "headers": {
                    "payloadFormatIndicator": "UTF8_DATA",
                    "contentType": "application/json",
                    "responseTopic": "back/${topic(2)}",
                    "correlationData": "Y29ycmVsYXRl",
                    "messageExpiry": "60",
                    "userProperties": [{"key": "from", "value": "${clientid()}"}]
                }
            }}],
            "awsIotSqlVersion": "2016-03-23"
        }),
    )
    .await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    sub.subscribe("resp/#", QoS::AtMostOnce).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dev = s.b.client(Opts::v5("asker")).await;
    dev.publish("req/7", "{}", QoS::AtMostOnce, false).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.topic.as_ref().unwrap().as_str(), "resp/7");
    let p = &got.properties;
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.response_topic.as_deref(), Some("back/7"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"correlate"[..]));
    assert!(
        p.message_expiry_interval
            .is_some_and(|s| (58..=60).contains(&s)),
        "{p:?}"
    );
    assert_eq!(p.user_properties, vec![("from".into(), "asker".into())]);
}
