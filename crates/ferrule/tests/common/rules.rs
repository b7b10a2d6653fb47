//! Topic rules for the rules engine's tests: CreateTopicRule payloads, creating and replacing
//! rules through the real `aws iot` CLI (`file://` payloads), waiting until the engine has
//! loaded them ([`wait_rules_live`]), and reading what rules did: outputs, AWS's errorAction
//! payload, the per-rule counters on `/metrics`.
//!
//! Rules are loaded from the registry's change feed, so a new rule runs a moment after
//! `create-topic-rule` returns. [`wait_rules_live`] creates one more rule and waits until it
//! fires: the feed is applied in order, so every rule created before it is live by then.

use std::process::Command;
use std::time::{Duration, Instant};

use ferrule_mqtt::ProtocolVersion;
use serde_json::{Value, json};

use super::{
    CLIENT_TIMEOUT, Cert, Conn, Mqtt, Msg, Net, Server, Sub, connect_plain, http_get, metric_sum,
    mosq_tls_args, run_ok, unique,
};

/// Any role ARN: the API requires one, the engine does not use it.
pub(crate) const ROLE: &str = "arn:aws:iam::123456789012:role/r";
/// How long a rule change may take to reach the engine: it should take under a second, the
/// rest is slack for a loaded machine.
pub(crate) const RELOAD_BOUND: Duration = Duration::from_secs(5);
/// How long a test waits for an output it expects.
pub(crate) const OUTPUT_TIMEOUT: Duration = CLIENT_TIMEOUT;
/// How long a test watches for an output that must not come.
pub(crate) const QUIET: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------------------------
// Rule payloads and the control plane

pub(crate) fn republish_action(topic: &str, qos: u8) -> Value {
    json!({ "republish": { "roleArn": ROLE, "topic": topic, "qos": qos } })
}

pub(crate) fn lambda_action(function_arn: &str) -> Value {
    json!({ "lambda": { "functionArn": function_arn } })
}

pub(crate) fn http_action(url: &str, headers: &[(&str, &str)]) -> Value {
    let headers: Vec<Value> = headers
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    json!({ "http": { "url": url, "headers": headers } })
}

/// A CreateTopicRule payload, enabled, SQL version 2016-03-23.
pub(crate) fn rule(sql: &str, actions: Vec<Value>, error_action: Option<Value>) -> Value {
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
pub(crate) fn put_rule(server: &Server, op: &str, name: &str, payload: &Value) {
    let path = server
        .scratch()
        .join(format!("{}.json", unique(&format!("rule-{name}"))));
    std::fs::write(&path, payload.to_string()).unwrap();
    let arg = format!("file://{}", path.display());
    server
        .aws()
        .ok(&[op, "--rule-name", name, "--topic-rule-payload", &arg]);
}

pub(crate) fn create_rule(server: &Server, name: &str, payload: &Value) {
    put_rule(server, "create-topic-rule", name, payload);
}

/// Creates a sentinel rule and waits until it fires, which shows that the engine runs and
/// has applied every rule change made before it.
pub(crate) fn wait_rules_live(server: &Server) {
    let name = unique("ready").replace('-', "_");
    let (input, output) = (format!("ready/{name}"), format!("ready-out/{name}"));
    create_rule(
        server,
        &name,
        &rule(
            &format!("SELECT * FROM '{input}'"),
            vec![republish_action(&output, 0)],
            None,
        ),
    );
    let mut sub = Sub::start(server, Net::Tcp, Mqtt::V311, 0, &[&output], &[]);
    let mut publisher = connect_plain(server, ProtocolVersion::V5, &unique("ready-pub"));
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
pub(crate) fn device_publish(
    server: &Server,
    device: &Cert,
    client_id: &str,
    topic: &str,
    payload: &str,
) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(mosq_tls_args(server, Some(device), Mqtt::V311))
        .args(["-i", client_id, "-t", topic, "-m", payload, "-q", "1"]);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

/// A client on the plain listener.
pub(crate) fn publisher(server: &Server, client_id: &str) -> Conn {
    connect_plain(server, ProtocolVersion::V5, client_id)
}

pub(crate) fn json_of(msg: &Msg) -> Value {
    serde_json::from_str(&msg.payload)
        .unwrap_or_else(|e| panic!("the output on {} is not JSON ({e}): {msg:?}", msg.topic))
}

pub(crate) fn count_on(msgs: &[Msg], topic: &str) -> usize {
    msgs.iter().filter(|m| m.topic == topic).count()
}

pub(crate) fn metrics_text(server: &Server) -> String {
    let (status, text) = http_get(server.api(), "/metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    text
}

/// `ferrule_rule_actions_total` for one rule, action and outcome (`None` before the first).
pub(crate) fn action_count(text: &str, rule: &str, action: &str, outcome: &str) -> Option<f64> {
    metric_sum(
        text,
        "ferrule_rule_actions_total",
        &[("rule", rule), ("action", action), ("outcome", outcome)],
    )
}

/// Polls `/metrics` until `read` gives at least `at_least`; returns the text then.
pub(crate) fn wait_metric(
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
pub(crate) fn base64_decode(text: &str) -> Vec<u8> {
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
pub(crate) fn assert_error_payload(
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
