//! The rules engine end to end: topic rules made with the real `aws iot create-topic-rule`
//! (`file://` payloads), run by `ferrule serve` on messages from real clients (`mosquitto_pub`
//! over mqtts with a registered device certificate, the test MQTT client on the plain
//! listener) and on the broker's own `$aws/events/...` messages, observed with `mosquitto_sub`,
//! a recording HTTP server ([`Hook`]) and `/metrics`.
//!
//! Covered: the SQL output (SELECT, WHERE, functions) and substitution templates of
//! `republish`; `http` (body, headers, Content-Type, retries on 5xx, none on 4xx, the per-attempt
//! timeout, the `--rules-http-allow` prefixes from a flag, the environment and the config file);
//! `lambda` failing for want of a function runtime; `errorAction` with AWS's payload;
//! unsupported action types counted, not failed over; disable, enable, replace and delete
//! taking effect without a restart; the per-rule counters.
//!
//! Rules are loaded from the registry's change feed, so a new rule runs a moment after
//! `create-topic-rule` returns. [`wait_rules_live`] creates one more rule and waits until it
//! fires: the feed is applied in order, so every rule created before it is live by then.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    ACCOUNT, CLIENT_TIMEOUT, Cert, Conn, Hook, HookRequest, KeyAlg, Mqtt, Msg, Net, Pki, Reply,
    Server, Sub, all_listener_args, assert_ms_timestamp, connect_plain, http_get, metric_sum,
    mosq_tls_args, mosquitto_pub_as, now_ms, provision_device, registered_topic, require_mosquitto,
    run_ok, temp_file, unique,
};
use ferrule_mqtt::ProtocolVersion::V5;
use serde_json::{Value, json};

/// Any role ARN: the API requires one, the engine does not use it.
const ROLE: &str = "arn:aws:iam::123456789012:role/r";
/// How long a rule change may take to reach the engine. The contract says within a second;
/// the rest is slack for a loaded machine.
const RELOAD_BOUND: Duration = Duration::from_secs(5);
/// How long a test waits for an output it expects.
const OUTPUT_TIMEOUT: Duration = CLIENT_TIMEOUT;
/// How long a test watches for an output that must not come.
const QUIET: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------------------------
// Rule payloads and the control plane

fn republish(topic: &str, qos: u8) -> Value {
    json!({ "republish": { "roleArn": ROLE, "topic": topic, "qos": qos } })
}

fn lambda(function_arn: &str) -> Value {
    json!({ "lambda": { "functionArn": function_arn } })
}

fn http(url: &str, headers: &[(&str, &str)]) -> Value {
    let headers: Vec<Value> = headers
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    json!({ "http": { "url": url, "headers": headers } })
}

/// A CreateTopicRule payload, enabled, SQL version 2016-03-23.
fn rule(sql: &str, actions: Vec<Value>, error_action: Option<Value>) -> Value {
    let mut payload = json!({
        "sql": sql,
        "actions": actions,
        "ruleDisabled": false,
        "awsIotSqlVersion": "2016-03-23",
    });
    if let Some(e) = error_action {
        payload["errorAction"] = e;
    }
    payload
}

/// `aws iot OP --rule-name NAME --topic-rule-payload file://...` (create or replace).
fn put_rule(server: &Server, op: &str, name: &str, payload: &Value) {
    let path = server
        .scratch()
        .join(format!("{}.json", unique(&format!("rule-{name}"))));
    std::fs::write(&path, payload.to_string()).unwrap();
    let arg = format!("file://{}", path.display());
    server
        .aws()
        .ok(&[op, "--rule-name", name, "--topic-rule-payload", &arg]);
}

fn create_rule(server: &Server, name: &str, payload: &Value) {
    put_rule(server, "create-topic-rule", name, payload);
}

/// Creates a sentinel rule and waits until it fires, which shows that the engine runs and
/// has applied every rule change made before it.
fn wait_rules_live(server: &Server) {
    let name = unique("ready").replace('-', "_");
    let (input, output) = (format!("ready/{name}"), format!("ready-out/{name}"));
    create_rule(
        server,
        &name,
        &rule(
            &format!("SELECT * FROM '{input}'"),
            vec![republish(&output, 0)],
            None,
        ),
    );
    let mut sub = Sub::start(server, Net::Tcp, Mqtt::V311, 0, &[&output], &[]);
    let mut publisher = connect_plain(server, V5, &unique("ready-pub"));
    let deadline = Instant::now() + RELOAD_BOUND;
    loop {
        publisher.publish(&input, b"{}", 0, false).unwrap();
        if sub.try_next(Duration::from_millis(250)).is_some() {
            publisher.disconnect();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sentinel rule {name} did not fire within {RELOAD_BOUND:?} of its creation: \
             the rules engine is not running rules"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Clients, outputs, metrics

/// `mosquitto_pub -i CLIENT_ID` over mqtts presenting `device`, QoS 1; must succeed.
fn device_publish(server: &Server, device: &Cert, client_id: &str, topic: &str, payload: &str) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_tls_args(server, Some(device), Mqtt::V311))
        .args(["-i", client_id, "-t", topic, "-m", payload, "-q", "1"]);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// A client on the plain listener.
fn publisher(server: &Server, client_id: &str) -> Conn {
    connect_plain(server, V5, client_id)
}

fn json_of(msg: &Msg) -> Value {
    serde_json::from_str(&msg.payload)
        .unwrap_or_else(|e| panic!("the output on {} is not JSON ({e}): {msg:?}", msg.topic))
}

fn count_on(msgs: &[Msg], topic: &str) -> usize {
    msgs.iter().filter(|m| m.topic == topic).count()
}

fn metrics_text(server: &Server) -> String {
    let (status, text) = http_get(server.api(), "/metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    text
}

/// `ferrule_rule_actions_total` for one rule, action and outcome (`None` before the first).
fn action_count(text: &str, rule: &str, action: &str, outcome: &str) -> Option<f64> {
    metric_sum(
        text,
        "ferrule_rule_actions_total",
        &[("rule", rule), ("action", action), ("outcome", outcome)],
    )
}

/// Polls `/metrics` until `read` gives at least `at_least`; returns the text then.
fn wait_metric(
    server: &Server,
    what: &str,
    at_least: f64,
    read: impl Fn(&str) -> Option<f64>,
) -> String {
    let deadline = Instant::now() + OUTPUT_TIMEOUT;
    loop {
        let text = metrics_text(server);
        if read(&text).unwrap_or(0.0) >= at_least {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not reach {at_least} within {OUTPUT_TIMEOUT:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Standard base64 (with padding), as `base64OriginalPayload` carries it.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    assert_eq!(text.len() % 4, 0, "not padded base64: {text:?}");
    let digits = text.trim_end_matches('=');
    assert!(text.len() - digits.len() <= 2, "bad padding: {text:?}");
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in digits.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {text:?}"));
        acc = (acc << 6) | u32::try_from(v).unwrap();
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).unwrap());
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Asserts an errorAction message is AWS's payload for one failed action of `rule` on a
/// message `original` published on `topic` by `client_id`; returns the failure entry.
fn assert_error_payload(
    msg: &Msg,
    rule: &str,
    topic: &str,
    client_id: &str,
    original: &[u8],
    failed_action: &str,
    failed_resource: &str,
) -> Value {
    let body = json_of(msg);
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = body
            .as_object()
            .unwrap_or_else(|| panic!("the error payload is not an object: {body}"))
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    };
    assert_eq!(
        keys,
        [
            "base64OriginalPayload",
            "clientId",
            "cloudwatchTraceId",
            "failures",
            "ruleName",
            "topic"
        ],
        "error payload fields: {body}"
    );
    assert_eq!(body["ruleName"], rule, "{body}");
    assert_eq!(body["topic"], topic, "{body}");
    assert_eq!(body["clientId"], client_id, "{body}");
    assert!(
        body["cloudwatchTraceId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "cloudwatchTraceId: {body}"
    );
    let encoded = body["base64OriginalPayload"]
        .as_str()
        .unwrap_or_else(|| panic!("base64OriginalPayload is not a string: {body}"));
    assert_eq!(
        base64_decode(encoded),
        original,
        "base64OriginalPayload does not decode to the original payload: {body}"
    );
    let failures = body["failures"]
        .as_array()
        .unwrap_or_else(|| panic!("failures is not an array: {body}"));
    assert_eq!(failures.len(), 1, "one action failed: {body}");
    let failure = failures[0].clone();
    assert_eq!(failure["failedAction"], failed_action, "{body}");
    assert_eq!(failure["failedResource"], failed_resource, "{body}");
    assert!(
        failure["errorMessage"]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty()),
        "errorMessage: {body}"
    );
    failure
}

// ---------------------------------------------------------------------------------------------
// republish: SQL output and templates

/// The brief's rule: transform, filter, and a templated topic.
fn alerts_rule() -> Value {
    rule(
        "SELECT upper(name) AS NAME, topic(2) AS device, temp FROM 'sensors/+/data' \
         WHERE temp > 20",
        vec![republish("alerts/${topic(2)}", 1)],
        None,
    )
}

#[test]
fn republish_sends_the_select_output_of_messages_where_holds_and_nothing_else() {
    require_mosquitto();
    let server = Server::start();
    let device = provision_device(&server, "rules-dev1");
    create_rule(&server, "alerts", &alerts_rule());
    // Functions of the message's context; a template with a function and an escaped `$`.
    create_rule(
        &server,
        "whoami",
        &rule(
            "SELECT clientid() AS client, principal() AS principal, timestamp() AS ts, \
             concat(topic(1), topic(2)) AS joined FROM 'sensors/+/data' WHERE temp > 20",
            vec![republish("whoami/$$/${clientid()}", 0)],
            None,
        ),
    );
    wait_rules_live(&server);
    let mut sub = Sub::start(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        &["alerts/#", "whoami/#"],
        &[],
    );

    let client_id = unique("dev1");
    let from = now_ms();
    device_publish(
        &server,
        &device,
        &client_id,
        "sensors/dev1/data",
        r#"{"name":"x","temp":25}"#,
    );
    device_publish(
        &server,
        &device,
        &client_id,
        "sensors/dev1/data",
        r#"{"name":"y","temp":10}"#,
    );
    // A later hot message from another sensor: once its output is in, the cold one has had
    // its chance to (wrongly) produce one.
    device_publish(
        &server,
        &device,
        &unique("barrier"),
        "sensors/barrier/data",
        r#"{"name":"b","temp":99}"#,
    );

    let alert = sub.next_on("alerts/dev1", OUTPUT_TIMEOUT);
    assert_eq!(
        json_of(&alert),
        json!({ "NAME": "X", "device": "dev1", "temp": 25 }),
        "{alert:?}"
    );
    assert_eq!(alert.qos, 1, "republished at QoS 1: {alert:?}");
    assert!(!alert.retain, "{alert:?}");
    let barrier = sub.next_on("alerts/barrier", OUTPUT_TIMEOUT);
    assert_eq!(json_of(&barrier)["NAME"], "B", "{barrier:?}");

    let who = sub.next_on(&format!("whoami/$/{client_id}"), OUTPUT_TIMEOUT);
    let who = json_of(&who);
    assert_eq!(who["client"], client_id.as_str(), "clientid(): {who}");
    assert_eq!(
        who["principal"],
        device.id(),
        "principal() is the certificate id: {who}"
    );
    assert_eq!(who["joined"], "sensorsdev1", "concat(): {who}");
    assert_ms_timestamp(&who["ts"], from, "timestamp()");

    let all = sub.all_seen(QUIET);
    assert_eq!(
        count_on(&all, "alerts/dev1"),
        1,
        "WHERE temp > 20 let the cold message through, or the hot one ran twice: {all:?}"
    );
    assert_eq!(
        count_on(&all, &format!("whoami/$/{client_id}")),
        1,
        "{all:?}"
    );
}

#[test]
fn metrics_count_matches_and_action_outcomes_per_rule() {
    require_mosquitto();
    let server = Server::start();
    let device = provision_device(&server, "rules-metrics");
    create_rule(&server, "alerts", &alerts_rule());
    wait_rules_live(&server);
    let mut sub = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["alerts/#"], &[]);
    let client_id = unique("metrics");
    for payload in [r#"{"name":"x","temp":25}"#, r#"{"name":"y","temp":10}"#] {
        device_publish(&server, &device, &client_id, "sensors/dev1/data", payload);
    }
    sub.next_on("alerts/dev1", OUTPUT_TIMEOUT);

    let matches = |t: &str| metric_sum(t, "ferrule_rule_matches_total", &[("rule", "alerts")]);
    wait_metric(
        &server,
        "ferrule_rule_matches_total{rule=\"alerts\"}",
        2.0,
        matches,
    );
    wait_metric(
        &server,
        "the republish successes of rule alerts",
        1.0,
        |t| action_count(t, "alerts", "republish", "success"),
    );
    // Settled: the exact counts.
    std::thread::sleep(Duration::from_millis(300));
    let text = metrics_text(&server);
    assert_eq!(
        matches(&text),
        Some(2.0),
        "both messages matched FROM (WHERE decides whether actions run):\n{text}"
    );
    assert_eq!(
        action_count(&text, "alerts", "republish", "success"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        action_count(&text, "alerts", "republish", "failure").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "ferrule_rules_dropped_total", &[]).unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "ferrule_rules_queue_depth", &[]),
        Some(0.0),
        "the queue gauge, drained:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rules on the broker's own events

#[test]
fn a_rule_on_the_registered_event_fires_on_a_devices_first_connection() {
    require_mosquitto();
    let mut args = all_listener_args();
    args.extend(["--jitr-mode", "aws"].map(OsString::from));
    let server = Server::start_with(args);
    let aws = server.aws();
    let pki = Pki::new();
    let ca = pki.ca(
        "rules-jitr-ca",
        "/O=Ferrule rules tests/CN=rules-jitr-ca",
        KeyAlg::EcP256,
    );
    let ca_id = aws.register_ca(&pki, &ca, true, true);
    create_rule(
        &server,
        "jitr_any_ca",
        &rule(
            "SELECT certificateId, caCertificateId \
             FROM '$aws/events/certificates/registered/+'",
            vec![republish("jitr/registered", 1)],
            None,
        ),
    );
    create_rule(
        &server,
        "jitr_this_ca",
        &rule(
            &format!("SELECT * FROM '{}'", registered_topic(&ca_id)),
            vec![republish("jitr/ca/${topic(5)}", 1)],
            None,
        ),
    );
    wait_rules_live(&server);
    let mut sub = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["jitr/#"], &[]);

    let device = pki.device("rules-jitr-device", &ca, KeyAlg::EcP256);
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "t/first",
        "1",
        CLIENT_TIMEOUT,
    );
    assert!(
        !out.status.success(),
        "aws mode closes a first connection: {out:?}"
    );

    let got = sub.next_on("jitr/registered", OUTPUT_TIMEOUT);
    assert_eq!(
        json_of(&got),
        json!({ "certificateId": device.id(), "caCertificateId": ca_id }),
        "{got:?}"
    );
    let whole = json_of(&sub.next_on(&format!("jitr/ca/{ca_id}"), OUTPUT_TIMEOUT));
    assert_eq!(whole["certificateId"], device.id(), "{whole}");
    assert_eq!(whole["caCertificateId"], ca_id, "{whole}");
    assert_eq!(whole["certificateStatus"], "PENDING_ACTIVATION", "{whole}");
    assert_eq!(whole["awsAccountId"], ACCOUNT, "{whole}");

    let all = sub.all_seen(QUIET);
    assert_eq!(count_on(&all, "jitr/registered"), 1, "{all:?}");
}

// ---------------------------------------------------------------------------------------------
// http

/// `--rules-http-allow PREFIX` for each prefix, after the listener flags.
fn server_allowing(prefixes: &[String]) -> Server {
    require_mosquitto();
    let mut args = all_listener_args();
    for p in prefixes {
        args.push("--rules-http-allow".into());
        args.push(p.into());
    }
    Server::start_with(args)
}

/// An http rule on `input` posting `SELECT *` to `url`, failing over to `errors/NAME`.
fn forward_rule(server: &Server, name: &str, input: &str, url: &str) {
    create_rule(
        server,
        name,
        &rule(
            &format!("SELECT * FROM '{input}'"),
            vec![http(url, &[])],
            Some(republish(&format!("errors/{name}"), 1)),
        ),
    );
}

fn assert_all_posts_of(requests: &[HookRequest], path: &str, body: &Value) {
    for r in requests {
        assert_eq!(r.method, "POST", "{r:?}");
        assert_eq!(r.path, path, "{r:?}");
        assert_eq!(&r.json(), body, "{r:?}");
    }
}

#[test]
fn http_posts_the_select_output_retries_5xx_not_4xx_and_only_to_allowed_prefixes() {
    let ok = Hook::answering(200);
    let flaky = Hook::start(&[Reply::Status(500), Reply::Status(500), Reply::Status(200)]);
    let missing = Hook::answering(404);
    // Allowed, but nothing listens there.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let server = server_allowing(&[
        ok.url("/in/"),
        flaky.url("/"),
        missing.url("/"),
        refused.clone(),
    ]);
    create_rule(
        &server,
        "hook_ok",
        &rule(
            "SELECT temp, topic(2) AS device, clientid() AS client FROM 'hooks/+/ok'",
            vec![http(
                &ok.url("/in/ok"),
                &[("x-ferrule-test", "rules-http"), ("x-second", "2")],
            )],
            Some(republish("errors/hook_ok", 1)),
        ),
    );
    forward_rule(&server, "hook_flaky", "hooks/flaky", &flaky.url("/flaky"));
    forward_rule(&server, "hook_4xx", "hooks/4xx", &missing.url("/missing"));
    // Same host and port as an allowed prefix, but outside it.
    let denied = ok.url("/out/denied");
    forward_rule(&server, "hook_denied", "hooks/denied", &denied);
    let refused_url = format!("{refused}refused");
    forward_rule(&server, "hook_refused", "hooks/refused", &refused_url);
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("hook-pub");
    let mut pubr = publisher(&server, &client_id);

    // 200: one POST of the SQL output, with the action's headers and a JSON content type.
    pubr.publish("hooks/dev7/ok", br#"{"temp":21.5,"junk":true}"#, 1, false)
        .unwrap();
    let got = ok.wait_requests(1, OUTPUT_TIMEOUT);
    let post = &got[0];
    assert_eq!(post.method, "POST", "{post:?}");
    assert_eq!(post.path, "/in/ok", "{post:?}");
    assert_eq!(
        post.json(),
        json!({ "temp": 21.5, "device": "dev7", "client": client_id }),
        "{post:?}"
    );
    assert_eq!(
        post.header("x-ferrule-test"),
        Some("rules-http"),
        "{post:?}"
    );
    assert_eq!(post.header("x-second"), Some("2"), "{post:?}");
    assert!(
        post.header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json")),
        "{post:?}"
    );

    // 500, 500, 200: three attempts in all, the same body each time, and no failure.
    pubr.publish("hooks/flaky", br#"{"n":2}"#, 1, false)
        .unwrap();
    let attempts = flaky.wait_requests(3, Duration::from_secs(20));
    assert_all_posts_of(&attempts, "/flaky", &json!({ "n": 2 }));

    // 404: one attempt, then the errorAction.
    let original = br#"{"n":3}"#;
    pubr.publish("hooks/4xx", original, 1, false).unwrap();
    let msg = errors.next_on("errors/hook_4xx", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "hook_4xx",
        "hooks/4xx",
        &client_id,
        original,
        "HttpAction",
        &missing.url("/missing"),
    );
    assert_all_posts_of(&missing.requests(), "/missing", &json!({ "n": 3 }));

    // Outside the allowed prefixes: no request at all, and the errorAction.
    pubr.publish("hooks/denied", br#"{"n":4}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/hook_denied", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "hook_denied",
        "hooks/denied",
        &client_id,
        br#"{"n":4}"#,
        "HttpAction",
        &denied,
    );

    // Connection refused: retried, then the errorAction.
    pubr.publish("hooks/refused", br#"{"n":5}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/hook_refused", Duration::from_secs(20));
    assert_error_payload(
        &msg,
        "hook_refused",
        "hooks/refused",
        &client_id,
        br#"{"n":5}"#,
        "HttpAction",
        &refused_url,
    );

    // Settled: exact request counts, and no errorAction for the actions that succeeded.
    let all = errors.all_seen(QUIET);
    assert_eq!(
        ok.requests().len(),
        1,
        "the denied URL was requested: {:?}",
        ok.requests()
    );
    assert_eq!(flaky.requests().len(), 3, "{:?}", flaky.requests());
    assert_eq!(
        missing.requests().len(),
        1,
        "a 4xx was retried: {:?}",
        missing.requests()
    );
    assert_eq!(count_on(&all, "errors/hook_ok"), 0, "{all:?}");
    assert_eq!(count_on(&all, "errors/hook_flaky"), 0, "{all:?}");
    for topic in [
        "errors/hook_4xx",
        "errors/hook_denied",
        "errors/hook_refused",
    ] {
        assert_eq!(count_on(&all, topic), 1, "one error message each: {all:?}");
    }
    let text = metrics_text(&server);
    assert_eq!(
        action_count(&text, "hook_flaky", "http", "success"),
        Some(1.0),
        "a retried action that succeeds counts once:\n{text}"
    );
    assert_eq!(
        action_count(&text, "hook_4xx", "http", "failure"),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn an_http_attempt_times_out_after_three_seconds_then_the_error_action_runs() {
    let silent = Hook::start(&[Reply::Silent]);
    let server = server_allowing(&[silent.url("/")]);
    forward_rule(&server, "hook_silent", "hooks/silent", &silent.url("/slow"));
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("silent-pub");
    let mut pubr = publisher(&server, &client_id);

    let sent = Instant::now();
    pubr.publish("hooks/silent", b"{}", 1, false).unwrap();
    let msg = errors.next_on("errors/hook_silent", Duration::from_secs(30));
    let waited = sent.elapsed();
    assert_error_payload(
        &msg,
        "hook_silent",
        "hooks/silent",
        &client_id,
        b"{}",
        "HttpAction",
        &silent.url("/slow"),
    );
    let attempts = silent.requests().len();
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} attempts: {:?}",
        silent.requests()
    );
    let per_attempt = Duration::from_secs(3);
    assert!(
        waited >= per_attempt.mul_f64(0.9),
        "the errorAction came {waited:?} after the publish: no attempt waited its 3 s"
    );
    let attempts_u32 = u32::try_from(attempts).unwrap();
    assert!(
        waited <= per_attempt * attempts_u32 + Duration::from_secs(6),
        "{attempts} attempt(s) took {waited:?}: an attempt outlived its 3 s timeout"
    );
}

#[test]
fn the_http_allow_list_also_comes_from_the_environment_and_the_config_file() {
    require_mosquitto();
    let a = Hook::answering(200);
    let b = Hook::answering(200);

    // FERRULE_RULES_HTTP_ALLOW, comma-separated.
    let allow = format!("{},{}", a.url("/env/"), b.url("/env/"));
    let server = Server::start_with_env(
        all_listener_args(),
        &[("FERRULE_RULES_HTTP_ALLOW", allow.as_str())],
    );
    forward_rule(&server, "env_a", "env/in", &a.url("/env/a"));
    forward_rule(&server, "env_b", "env/in", &b.url("/env/b"));
    wait_rules_live(&server);
    let mut pubr = publisher(&server, &unique("env-pub"));
    pubr.publish("env/in", br#"{"from":"env"}"#, 1, false)
        .unwrap();
    assert_all_posts_of(
        &a.wait_requests(1, OUTPUT_TIMEOUT),
        "/env/a",
        &json!({ "from": "env" }),
    );
    assert_all_posts_of(
        &b.wait_requests(1, OUTPUT_TIMEOUT),
        "/env/b",
        &json!({ "from": "env" }),
    );
    drop(pubr);
    drop(server);

    // rules_http_allow in the config file: only a's prefix.
    let config = format!("rules_http_allow = [\"{}\"]\n", a.url("/conf/"));
    let (_dir, config_path) = temp_file("ferrule.toml", config.as_bytes());
    let mut args = all_listener_args();
    args.extend([OsString::from("--config"), config_path.into_os_string()]);
    let server = Server::start_with(args);
    forward_rule(&server, "conf_a", "conf/in", &a.url("/conf/a"));
    forward_rule(&server, "conf_b", "conf/in", &b.url("/conf/b"));
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("conf-pub");
    let mut pubr = publisher(&server, &client_id);
    pubr.publish("conf/in", br#"{"from":"conf"}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/conf_b", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "conf_b",
        "conf/in",
        &client_id,
        br#"{"from":"conf"}"#,
        "HttpAction",
        &b.url("/conf/b"),
    );
    let to_a = a.wait_requests(2, OUTPUT_TIMEOUT);
    assert_all_posts_of(&to_a[1..], "/conf/a", &json!({ "from": "conf" }));
    let all = errors.all_seen(QUIET);
    assert_eq!(count_on(&all, "errors/conf_a"), 0, "{all:?}");
    assert_eq!(
        b.requests().len(),
        1,
        "b's URL is not allowed by the config file: {:?}",
        b.requests()
    );
}

// ---------------------------------------------------------------------------------------------
// lambda, errorAction, unsupported actions

#[test]
fn a_failing_lambda_action_runs_the_error_action_with_the_aws_payload() {
    require_mosquitto();
    let server = Server::start();
    let function = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:on-reading");
    create_rule(
        &server,
        "r",
        &rule(
            "SELECT * FROM 'lambda/+/in'",
            vec![lambda(&function), republish("lambda-ok/${topic(2)}", 1)],
            Some(republish("errors/r", 1)),
        ),
    );
    wait_rules_live(&server);
    let mut sub = Sub::start(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        &["errors/#", "lambda-ok/#"],
        &[],
    );
    let client_id = unique("lambda-dev");
    let mut pubr = publisher(&server, &client_id);
    let original = "{\"n\":1,\"s\":\"h\u{e9}llo \u{1F321}\"}".as_bytes();
    pubr.publish("lambda/dev3/in", original, 1, false).unwrap();

    // The other action still ran.
    let ok = sub.next_on("lambda-ok/dev3", OUTPUT_TIMEOUT);
    assert_eq!(
        json_of(&ok),
        serde_json::from_slice::<Value>(original).unwrap(),
        "{ok:?}"
    );
    let msg = sub.next_on("errors/r", OUTPUT_TIMEOUT);
    assert_eq!(msg.qos, 1, "{msg:?}");
    let failure = assert_error_payload(
        &msg,
        "r",
        "lambda/dev3/in",
        &client_id,
        original,
        "LambdaAction",
        &function,
    );
    let message = failure["errorMessage"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        message.contains("runtime"),
        "the error should say there is no function runtime: {failure}"
    );

    let all = sub.all_seen(QUIET);
    assert_eq!(
        count_on(&all, "errors/r"),
        1,
        "one error message per failed message: {all:?}"
    );
    let text = wait_metric(&server, "the lambda failures of rule r", 1.0, |t| {
        action_count(t, "r", "lambda", "failure")
    });
    assert_eq!(
        action_count(&text, "r", "lambda", "failure"),
        Some(1.0),
        "{text}"
    );
    // The republish action, and maybe the errorAction's republish: the contract does not say
    // whether the error action counts under the rule's actions.
    assert!(
        action_count(&text, "r", "republish", "success").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
}

#[test]
fn unsupported_action_types_are_counted_and_not_failed_over() {
    require_mosquitto();
    let server = Server::start();
    let s3 = json!({ "s3": { "roleArn": ROLE, "bucketName": "readings", "key": "${topic()}" } });
    create_rule(
        &server,
        "to_s3",
        &rule(
            "SELECT * FROM 'archive/in'",
            vec![s3, republish("archive/out", 0)],
            Some(republish("errors/to_s3", 1)),
        ),
    );
    wait_rules_live(&server);
    let mut sub = Sub::start(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        &["archive/out", "errors/#"],
        &[],
    );
    let mut pubr = publisher(&server, &unique("archive-pub"));
    pubr.publish("archive/in", br#"{"k":1}"#, 1, false).unwrap();
    sub.next_on("archive/out", OUTPUT_TIMEOUT);
    let text = wait_metric(&server, "the unsupported s3 action of to_s3", 1.0, |t| {
        action_count(t, "to_s3", "s3", "unsupported")
    });
    assert_eq!(
        action_count(&text, "to_s3", "s3", "unsupported"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        action_count(&text, "to_s3", "s3", "failure").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    let all = sub.all_seen(QUIET);
    assert_eq!(
        count_on(&all, "errors/to_s3"),
        0,
        "an unsupported action is not a failure: {all:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rule changes while running

/// Publishes numbered markers to `toggle/in` and watches where their outputs go.
struct Probe {
    publisher: Conn,
    sub: Sub,
    n: u32,
}

/// How long a probe waits for one marker's output.
const PROBE_WINDOW: Duration = Duration::from_millis(700);

impl Probe {
    /// Sends a new marker; returns its output if one comes within `window`.
    fn send(&mut self, window: Duration) -> Option<Msg> {
        self.n += 1;
        let marker = format!("m{}", self.n);
        let payload = json!({ "m": marker }).to_string();
        self.publisher
            .publish("toggle/in", payload.as_bytes(), 1, false)
            .unwrap();
        self.sub.try_next_where(window, |m| {
            serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["m"] == marker.as_str())
        })
    }

    /// Sends markers until one comes out on `topic`; returns that output.
    fn until_output_on(&mut self, topic: &str, after: &str) -> Msg {
        let deadline = Instant::now() + RELOAD_BOUND;
        loop {
            let got = self.send(PROBE_WINDOW);
            if let Some(m) = got.as_ref().filter(|m| m.topic == topic) {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no output on {topic} within {RELOAD_BOUND:?} of {after} (last: {got:?})"
            );
        }
    }

    /// Sends markers until one gets no output, then checks that the next two get none either.
    fn until_quiet(&mut self, after: &str) {
        let deadline = Instant::now() + RELOAD_BOUND;
        while let Some(m) = self.send(PROBE_WINDOW) {
            assert!(
                Instant::now() < deadline,
                "the rule still ran {RELOAD_BOUND:?} after {after}: {m:?}"
            );
        }
        for _ in 0..2 {
            let got = self.send(QUIET);
            assert!(got.is_none(), "the rule ran again after {after}: {got:?}");
        }
    }
}

#[test]
fn disable_enable_replace_and_delete_take_effect_without_a_restart() {
    require_mosquitto();
    let server = Server::start();
    let aws = server.aws();
    create_rule(
        &server,
        "toggled",
        &rule(
            "SELECT * FROM 'toggle/in'",
            vec![republish("toggle/out/a", 0)],
            None,
        ),
    );
    let mut born_disabled = rule(
        "SELECT * FROM 'toggle/in'",
        vec![republish("toggle/out/never", 0)],
        None,
    );
    born_disabled["ruleDisabled"] = json!(true);
    create_rule(&server, "born_disabled", &born_disabled);
    let mut probe = Probe {
        sub: Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["toggle/out/#"], &[]),
        publisher: publisher(&server, &unique("toggle-pub")),
        n: 0,
    };

    probe.until_output_on("toggle/out/a", "create-topic-rule");

    aws.ok(&["disable-topic-rule", "--rule-name", "toggled"]);
    probe.until_quiet("disable-topic-rule");

    aws.ok(&["enable-topic-rule", "--rule-name", "toggled"]);
    probe.until_output_on("toggle/out/a", "enable-topic-rule");

    put_rule(
        &server,
        "replace-topic-rule",
        "toggled",
        &rule(
            "SELECT *, 'v2' AS version FROM 'toggle/in'",
            vec![republish("toggle/out/b", 0)],
            None,
        ),
    );
    let replaced = probe.until_output_on("toggle/out/b", "replace-topic-rule");
    assert_eq!(json_of(&replaced)["version"], "v2", "{replaced:?}");
    // From then on only the new version runs.
    let next = probe.send(OUTPUT_TIMEOUT);
    assert_eq!(
        next.as_ref().map(|m| m.topic.as_str()),
        Some("toggle/out/b"),
        "{next:?}"
    );
    let last = format!("\"m{}\"", probe.n);
    let stale = probe.sub.try_next_where(QUIET, |m| {
        m.topic == "toggle/out/a" && m.payload.contains(&last)
    });
    assert!(stale.is_none(), "the replaced rule still ran: {stale:?}");

    aws.ok(&["delete-topic-rule", "--rule-name", "toggled"]);
    probe.until_quiet("delete-topic-rule");

    let all = probe.sub.all_seen(Duration::ZERO);
    assert_eq!(
        count_on(&all, "toggle/out/never"),
        0,
        "a rule created with ruleDisabled: true ran: {all:?}"
    );
}
