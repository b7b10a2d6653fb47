//! The rules engine end to end: topic rules made with the real `aws iot create-topic-rule`,
//! run by `ferrule serve` on messages from real clients (`mosquitto_pub` over mqtts with a
//! registered device certificate, the test MQTT client on the plain listener) and on the
//! broker's own `$aws/events/...` messages, observed with `mosquitto_sub` and `/metrics`.
//!
//! Covered here: the SQL output (SELECT, WHERE, functions) and substitution templates of
//! `republish`; a rule on the JITR registered event; `lambda` failing for want of a function
//! runtime and the `errorAction` with AWS's payload; unsupported action types counted, not
//! failed over; disable, enable, replace and delete taking effect without a restart; the
//! per-rule counters. The `http` action is in `rules_http.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use common::{
    ACCOUNT, CLIENT_TIMEOUT, Conn, KeyAlg, Mqtt, Msg, Net, OUTPUT_TIMEOUT, Pki, QUIET,
    RELOAD_BOUND, ROLE, Server, Sub, action_count, all_listener_args, assert_error_payload,
    assert_ms_timestamp, count_on, create_rule, device_publish, json_of, lambda_action, metric_sum,
    metrics_text, mosquitto_pub_as, now_ms, provision_device, publisher, put_rule,
    registered_topic, republish_action, require_mosquitto, rule, unique, wait_metric,
    wait_rules_live,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// republish: SQL output and templates

/// A transform with a WHERE clause and a templated republish topic.
fn alerts_rule() -> Value {
    rule(
        "SELECT upper(name) AS NAME, topic(2) AS device, temp FROM 'sensors/+/data' \
         WHERE temp > 20",
        vec![republish_action("alerts/${topic(2)}", 1)],
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
            vec![republish_action("whoami/$$/${clientid()}", 0)],
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
            vec![republish_action("jitr/registered", 1)],
            None,
        ),
    );
    create_rule(
        &server,
        "jitr_this_ca",
        &rule(
            &format!("SELECT * FROM '{}'", registered_topic(&ca_id)),
            vec![republish_action("jitr/ca/${topic(5)}", 1)],
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
            vec![
                lambda_action(&function),
                republish_action("lambda-ok/${topic(2)}", 1),
            ],
            Some(republish_action("errors/r", 1)),
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
        message.contains("not found") && message.contains("on-reading"),
        "the error should say the function does not exist: {failure}"
    );
    // The failure is in the log store where AWS IoT users look: AWSIotLogsV2.
    let logged = wait_rule_log(&server, "on-reading");
    let entry: Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(entry["eventType"], "RuleExecution", "{entry}");
    assert_eq!(entry["status"], "Failure", "{entry}");
    assert_eq!(entry["logLevel"], "ERROR", "{entry}");
    assert_eq!(entry["ruleName"], "r", "{entry}");
    assert_eq!(entry["ruleAction"], "LambdaAction", "{entry}");
    assert_eq!(entry["topicName"], "lambda/dev3/in", "{entry}");
    assert_eq!(entry["clientId"], client_id.as_str(), "{entry}");
    assert_eq!(
        entry["resources"]["ResourceArn"],
        function.as_str(),
        "{entry}"
    );
    assert_eq!(entry["details"], failure["errorMessage"], "{entry}");

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
            vec![s3, republish_action("archive/out", 0)],
            Some(republish_action("errors/to_s3", 1)),
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
            vec![republish_action("toggle/out/a", 0)],
            None,
        ),
    );
    let mut born_disabled = rule(
        "SELECT * FROM 'toggle/in'",
        vec![republish_action("toggle/out/never", 0)],
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
            vec![republish_action("toggle/out/b", 0)],
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

/// The first `AWSIotLogsV2` entry matching `term`, read with `aws logs filter-log-events`.
fn wait_rule_log(server: &Server, term: &str) -> String {
    let aws = server.aws();
    let deadline = Instant::now() + OUTPUT_TIMEOUT;
    loop {
        let found = aws.cli(
            "logs",
            &[
                "filter-log-events",
                "--log-group-name",
                "AWSIotLogsV2",
                "--filter-pattern",
                term,
            ],
        );
        if let Ok(v) = &found
            && let Some(first) = v["events"].as_array().and_then(|e| e.first())
        {
            return first["message"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no AWSIotLogsV2 entry matching {term}: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
