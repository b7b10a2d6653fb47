//! IoT policies enforced on device connections, with policies made through the real `aws` CLI:
//! `iot:Subscribe` per filter on `topicfilter/...`, `iot:Publish` and `iot:RetainPublish` on
//! `topic/...`, `iot:Receive` per delivered message, `${iot:ClientId}` substitution,
//! `iot:Connect` on `client/...`, reserved `$aws/events/` and `$ferrule/` topics closed to
//! devices, `--anonymous-policy` for clients without certificates, and the lifecycle events
//! (`$aws/events/presence/...`, `$aws/events/subscriptions/...`) with AWS's payloads.
//!
//! Denials as the contract has them: SUBACK 0x80 (3.1.1) / 0x87 (5); a denied PUBLISH closes a
//! 3.1.1 connection, gets PUBACK 0x87 at QoS 1 and DISCONNECT 0x87 at QoS 0 in MQTT 5.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    CLIENT_TIMEOUT, Cert, Conn, Events, Mqtt, Server, Tls, arn, assert_ms_timestamp,
    connect_device, connect_plain, mosq_tls_args, mosquitto_pub_as, mosquitto_sub_line_buffered,
    now_ms, policy, provision_device, require_mosquitto, run,
};
use ferrule_mqtt::ProtocolVersion::{V5, V311};
use ferrule_mqtt::{ProtocolVersion, ReasonCode};
use serde_json::{Value, json};

/// A device under `CN=name` whose only policy is `document` (named `name`).
fn device_with_policy(server: &Server, name: &str, document: &Value) -> Cert {
    let fixture = server.fixture();
    let device = fixture
        .pki
        .device(name, &fixture.ca, common::KeyAlg::EcP256);
    let aws = server.aws();
    aws.register_cert(&device, "ACTIVE");
    aws.grant(name, document, &device.id());
    device
}

fn connect_all() -> Value {
    json!({ "Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", "*") })
}

fn codes(reasons: &[ReasonCode]) -> Vec<u8> {
    reasons.iter().map(|r| r.0).collect()
}

/// The admin's view: a plain-listener client subscribed to `filters`.
fn admin(server: &Server, filters: &[&str]) -> Conn {
    let mut a = connect_plain(server, V5, &common::unique("admin"));
    let subs: Vec<(&str, u8)> = filters.iter().map(|f| (*f, 1)).collect();
    let ack = a.subscribe(&subs).unwrap();
    assert!(ack.reasons.iter().all(|r| !r.is_error()), "{ack:?}");
    a
}

#[test]
fn subscribe_is_authorised_per_filter_against_topicfilter_resources() {
    require_mosquitto();
    let server = Server::start();
    let limited = device_with_policy(
        &server,
        "subscribe-limited",
        &policy(json!([
            connect_all(),
            { "Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter", "allowed/*") },
            { "Effect": "Allow", "Action": ["iot:Receive", "iot:Publish"], "Resource": arn("topic", "*") },
        ])),
    );
    let no_subscribe = device_with_policy(
        &server,
        "no-subscribe",
        &policy(json!([
            connect_all(),
            { "Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "*" },
        ])),
    );

    for (v, denied) in [(V311, 0x80), (V5, 0x87)] {
        let mut c = connect_device(&server, &limited, v, &format!("limited-{v:?}"));
        let ack = c
            .subscribe(&[("allowed/x", 1), ("denied/x", 1), ("allowed/#", 0)])
            .unwrap();
        assert_eq!(codes(&ack.reasons), [0x01, denied, 0x00], "{v:?}: {ack:?}");
        // The refused filter delivers nothing; the granted one does.
        let mut pubr = connect_plain(&server, V5, &format!("pub-{v:?}"));
        pubr.publish("denied/x", b"not for you", 1, false).unwrap();
        pubr.publish("allowed/x", b"for you", 1, false).unwrap();
        let got = c.publishes_within(Duration::from_millis(700));
        assert!(
            got.iter().all(|(t, _)| t != "denied/x"),
            "{v:?}: a message on a refused filter arrived: {got:?}"
        );
        assert!(
            got.iter().any(|(t, p)| t == "allowed/x" && p == "for you"),
            "{v:?}: {got:?}"
        );
        c.disconnect();

        let mut c = connect_device(&server, &no_subscribe, v, &format!("nosub-{v:?}"));
        let ack = c.subscribe(&[("anything/#", 1)]).unwrap();
        assert_eq!(codes(&ack.reasons), [denied], "{v:?}: {ack:?}");
        assert!(
            c.still_open_after(Duration::from_millis(200)),
            "a refused subscription closed the connection"
        );
        c.disconnect();
    }

    // mosquitto_sub gives up when every subscription is refused.
    let mut cmd = mosquitto_sub_line_buffered();
    cmd.args(mosq_tls_args(&server, Some(&no_subscribe), Mqtt::V311))
        .args(["-t", "anything/#", "-d", "-W", "5"]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("Subscribed (mid: 1): 128")
            || stderr.contains("All subscription requests were denied"),
        "{out:?}"
    );
}

#[test]
fn publish_is_authorised_per_topic_and_denials_end_as_the_protocol_version_says() {
    require_mosquitto();
    let server = Server::start();
    let device = device_with_policy(
        &server,
        "publish-limited",
        &policy(json!([
            connect_all(),
            { "Effect": "Allow", "Action": "iot:Publish", "Resource": arn("topic", "ok/*") },
            { "Effect": "Allow", "Action": "iot:RetainPublish", "Resource": arn("topic", "ok/kept") },
        ])),
    );
    let mut watch = admin(&server, &["ok/#", "no/#"]);

    // MQTT 5, QoS 1: PUBACK 0x87, and the connection stays.
    let mut c = connect_device(&server, &device, V5, "pub5");
    let ack = c
        .publish("no/1", b"denied qos1", 1, false)
        .unwrap()
        .unwrap();
    assert_eq!(ack.reason.0, 0x87, "{ack:?}");
    let ack = c
        .publish("ok/1", b"allowed qos1", 1, false)
        .unwrap()
        .unwrap();
    assert!(!ack.reason.is_error(), "{ack:?}");
    // RetainPublish: needed on top of Publish for a retained message.
    let ack = c
        .publish("ok/other", b"retained?", 1, true)
        .unwrap()
        .unwrap();
    assert_eq!(
        ack.reason.0, 0x87,
        "retained publish without iot:RetainPublish: {ack:?}"
    );
    let ack = c.publish("ok/kept", b"kept", 1, true).unwrap().unwrap();
    assert!(!ack.reason.is_error(), "{ack:?}");
    // QoS 0: DISCONNECT 0x87, then the close.
    c.publish("no/2", b"denied qos0", 0, false).unwrap();
    let closing = c
        .wait_closed(Instant::now() + CLIENT_TIMEOUT)
        .expect("a denied QoS 0 publish closes an MQTT 5 connection");
    let d = closing.disconnect.expect("a DISCONNECT before the close");
    assert_eq!(d.reason.0, 0x87, "{d:?}");

    // MQTT 3.1.1: the connection is closed, at QoS 1 (no PUBACK) and at QoS 0.
    let mut c = connect_device(&server, &device, V311, "pub311-q1");
    let result = c.publish("no/3", b"denied 311 qos1", 1, false);
    assert!(
        result.is_err(),
        "3.1.1 denied QoS 1 publish was acknowledged: {result:?}"
    );
    let mut c = connect_device(&server, &device, V311, "pub311-q0");
    c.publish("no/4", b"denied 311 qos0", 0, false).unwrap();
    assert!(
        c.wait_closed(Instant::now() + CLIENT_TIMEOUT).is_some(),
        "3.1.1 denied QoS 0 publish left the connection open"
    );
    // mosquitto_pub too.
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "no/5",
        "mosquitto",
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "{out:?}");
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "ok/5",
        "mosquitto ok",
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "{out:?}");

    let got = watch.publishes_within(Duration::from_millis(800));
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["ok/1", "ok/kept", "ok/5"], "{got:?}");

    // Only the authorised retained message was kept.
    let mut late = connect_plain(&server, V5, "late");
    late.subscribe(&[("ok/other", 1), ("ok/kept", 1)]).unwrap();
    let got = late.publishes_within(Duration::from_millis(700));
    assert_eq!(got, [("ok/kept".to_owned(), "kept".to_owned())]);
}

#[test]
fn receive_is_authorised_per_delivered_message() {
    let server = Server::start();
    let device = device_with_policy(
        &server,
        "receiver",
        &policy(json!([
            connect_all(),
            { "Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter", "a/*") },
            { "Effect": "Allow", "Action": "iot:Receive", "Resource": arn("topic", "a/*") },
            { "Effect": "Deny", "Action": "iot:Receive", "Resource": arn("topic", "a/secret") },
        ])),
    );
    for v in [V311, V5] {
        let mut sub = connect_device(&server, &device, v, &format!("receiver-{v:?}"));
        let ack = sub.subscribe(&[("a/#", 1)]).unwrap();
        assert_eq!(codes(&ack.reasons), [0x01], "{ack:?}");
        let mut p = connect_plain(&server, V5, &format!("sender-{v:?}"));
        // In order: had a/secret been delivered, it would come before a/open.
        p.publish("a/secret", b"secret", 1, false).unwrap();
        p.publish("a/open", b"open", 1, false).unwrap();
        let first = sub
            .next_publish(CLIENT_TIMEOUT)
            .expect("a/open is delivered");
        assert_eq!(first.topic.unwrap().as_str(), "a/open", "{v:?}");
        let rest = sub.publishes_within(Duration::from_millis(500));
        assert!(rest.is_empty(), "{v:?}: {rest:?}");
        assert!(sub.still_open_after(Duration::from_millis(10)));
        sub.disconnect();
        p.disconnect();
    }
}

#[test]
fn devices_cannot_publish_to_reserved_event_topics() {
    let server = Server::start();
    let device = provision_device(&server, "forger");
    let mut watch = admin(&server, &["$aws/events/#", "$ferrule/#"]);

    let mut c = connect_device(&server, &device, V5, "forger-5");
    for topic in [
        "$aws/events/presence/connected/forged",
        "$aws/events/certificates/registered/0000",
        "$ferrule/events/connections/rejected",
    ] {
        let ack = c.publish(topic, b"forged", 1, false).unwrap().unwrap();
        assert_eq!(ack.reason.0, 0x87, "{topic}: {ack:?}");
    }
    c.disconnect();
    let mut c = connect_device(&server, &device, V311, "forger-311");
    assert!(
        c.publish("$aws/events/presence/connected/forged", b"forged", 1, false)
            .is_err(),
        "an MQTT 3.1.1 device published to $aws/events"
    );
    let got = watch.publishes_within(Duration::from_millis(800));
    assert!(
        got.iter().all(|(_, p)| p != "forged"),
        "a forged event was delivered: {got:?}"
    );
}

#[test]
fn client_id_policy_variable_and_connect_resource() {
    let server = Server::start();
    let device = device_with_policy(
        &server,
        "sensor",
        &policy(json!([
            { "Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", "sensor-*") },
            { "Effect": "Allow", "Action": "iot:Publish",
              "Resource": arn("topic", "devices/${iot:ClientId}/*") },
            { "Effect": "Allow", "Action": "iot:Subscribe",
              "Resource": arn("topicfilter", "devices/${iot:ClientId}/*") },
            { "Effect": "Allow", "Action": "iot:Receive",
              "Resource": arn("topic", "devices/${iot:ClientId}/*") },
        ])),
    );
    for (id, other) in [("sensor-1", "sensor-2"), ("sensor-2", "sensor-1")] {
        let mut c = connect_device(&server, &device, V5, id);
        let ack = c
            .subscribe(&[
                (&format!("devices/{id}/#"), 1),
                (&format!("devices/{other}/#"), 1),
            ])
            .unwrap();
        assert_eq!(codes(&ack.reasons), [0x01, 0x87], "{id}: {ack:?}");
        let ok = c
            .publish(&format!("devices/{id}/t"), b"mine", 1, false)
            .unwrap()
            .unwrap();
        assert!(!ok.reason.is_error(), "{id}: {ok:?}");
        let echo = c
            .next_publish(CLIENT_TIMEOUT)
            .expect("its own message back");
        assert_eq!(echo.topic.unwrap().as_str(), format!("devices/{id}/t"));
        let denied = c
            .publish(&format!("devices/{other}/t"), b"theirs", 1, false)
            .unwrap()
            .unwrap();
        assert_eq!(denied.reason.0, 0x87, "{id}: {denied:?}");
        c.disconnect();
    }
    // iot:Connect on client/sensor-* only.
    let mut c = Conn::tls(server.mqtts(), &Tls::device(&server, &device)).unwrap();
    let ack = c.connect(V5, "actuator-1", CLIENT_TIMEOUT).unwrap();
    assert_eq!(ack.reason.0, 0x87, "{ack:?}");
}

#[test]
fn anonymous_clients_have_full_access_by_default_and_the_anonymous_policy_when_set() {
    let mut server = Server::start();
    server.wait_for_log_line(
        "a startup warning about anonymous clients' full access",
        CLIENT_TIMEOUT,
        |l| l.contains("WARN") && l.to_lowercase().contains("anonymous"),
    );
    let mut c = connect_plain(&server, V5, "anon-full");
    let ack = c
        .subscribe(&[("$aws/events/#", 0), ("anything/#", 1)])
        .unwrap();
    assert_eq!(codes(&ack.reasons), [0x00, 0x01], "{ack:?}");
    c.disconnect();

    server.aws().create_policy(
        "AnonymousPolicy",
        &policy(json!([
            connect_all(),
            { "Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": arn("topic", "public/*") },
            { "Effect": "Allow", "Action": "iot:Subscribe", "Resource": arn("topicfilter", "public/*") },
        ])),
    );
    server.restart_adding_args(&["--anonymous-policy", "AnonymousPolicy"]);
    let mut c = connect_plain(&server, V5, "anon-limited");
    let ack = c.subscribe(&[("public/#", 1), ("private/#", 1)]).unwrap();
    assert_eq!(codes(&ack.reasons), [0x01, 0x87], "{ack:?}");
    let ok = c.publish("public/x", b"hi", 1, false).unwrap().unwrap();
    assert!(!ok.reason.is_error(), "{ok:?}");
    let denied = c.publish("private/x", b"no", 1, false).unwrap().unwrap();
    assert_eq!(denied.reason.0, 0x87, "{denied:?}");
    // Devices keep their own policies.
    let mut d = connect_device(&server, server.default_device(), V5, "device-unaffected");
    let ack = d.subscribe(&[("private/#", 1)]).unwrap();
    assert_eq!(codes(&ack.reasons), [0x01], "{ack:?}");
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn lifecycle_events_for_presence_and_subscriptions_have_aws_payloads() {
    let server = Server::start();
    let device = provision_device(&server, "lifecycle");
    let cert_id = device.id();
    let mut events = Events::start_on(
        &server,
        &["$aws/events/presence/#", "$aws/events/subscriptions/#"],
    );
    let from = now_ms();

    let client_id = "lifecycle-1";
    let mut c = connect_device(&server, &device, ProtocolVersion::V5, client_id);
    let connected = events
        .on_topic(
            &format!("$aws/events/presence/connected/{client_id}"),
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(
        keys(&connected),
        set(&[
            "clientId",
            "timestamp",
            "eventType",
            "sessionIdentifier",
            "principalIdentifier",
            "ipAddress",
            "versionNumber"
        ]),
        "{connected}"
    );
    assert_eq!(connected["clientId"], client_id);
    assert_eq!(connected["eventType"], "connected");
    assert_eq!(connected["principalIdentifier"], cert_id.as_str());
    assert_eq!(connected["ipAddress"], "127.0.0.1");
    assert!(connected["versionNumber"].is_u64(), "{connected}");
    assert_ms_timestamp(&connected["timestamp"], from, "connected timestamp");
    let session = connected["sessionIdentifier"]
        .as_str()
        .expect("a session id")
        .to_owned();
    assert!(!session.is_empty());

    c.subscribe(&[("life/a", 1), ("life/b/#", 0)]).unwrap();
    let subscribed = events
        .on_topic(
            &format!("$aws/events/subscriptions/subscribed/{client_id}"),
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(
        keys(&subscribed),
        set(&[
            "clientId",
            "timestamp",
            "eventType",
            "sessionIdentifier",
            "principalIdentifier",
            "topics"
        ]),
        "{subscribed}"
    );
    assert_eq!(subscribed["eventType"], "subscribed");
    assert_eq!(subscribed["clientId"], client_id);
    assert_eq!(subscribed["sessionIdentifier"], session.as_str());
    assert_eq!(subscribed["principalIdentifier"], cert_id.as_str());
    assert_eq!(subscribed["topics"], json!(["life/a", "life/b/#"]));
    assert_ms_timestamp(&subscribed["timestamp"], from, "subscribed timestamp");

    c.unsubscribe(&["life/a"]).unwrap();
    let unsubscribed = events
        .on_topic(
            &format!("$aws/events/subscriptions/unsubscribed/{client_id}"),
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(keys(&unsubscribed), keys(&subscribed), "{unsubscribed}");
    assert_eq!(unsubscribed["eventType"], "unsubscribed");
    assert_eq!(unsubscribed["topics"], json!(["life/a"]));
    assert_eq!(unsubscribed["sessionIdentifier"], session.as_str());

    c.disconnect();
    let disconnected = events
        .on_topic(
            &format!("$aws/events/presence/disconnected/{client_id}"),
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(
        keys(&disconnected),
        set(&[
            "clientId",
            "timestamp",
            "eventType",
            "sessionIdentifier",
            "principalIdentifier",
            "clientInitiatedDisconnect",
            "disconnectReason",
            "versionNumber",
        ]),
        "{disconnected}"
    );
    assert_eq!(disconnected["eventType"], "disconnected");
    assert_eq!(disconnected["clientInitiatedDisconnect"], true);
    assert_eq!(
        disconnected["disconnectReason"],
        "CLIENT_INITIATED_DISCONNECT"
    );
    assert_eq!(disconnected["sessionIdentifier"], session.as_str());
    assert_eq!(disconnected["principalIdentifier"], cert_id.as_str());
    assert_eq!(disconnected["versionNumber"], connected["versionNumber"]);

    // A connection that just drops: CONNECTION_LOST, not client-initiated.
    let c = connect_device(&server, &device, ProtocolVersion::V311, "lifecycle-2");
    let connected = events
        .on_topic("$aws/events/presence/connected/lifecycle-2", CLIENT_TIMEOUT)
        .body;
    drop(c);
    let lost = events
        .on_topic(
            "$aws/events/presence/disconnected/lifecycle-2",
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(lost["clientInitiatedDisconnect"], false, "{lost}");
    assert_eq!(lost["disconnectReason"], "CONNECTION_LOST", "{lost}");
    assert_eq!(lost["sessionIdentifier"], connected["sessionIdentifier"]);
    assert_ne!(
        lost["sessionIdentifier"],
        session.as_str(),
        "a new connection, a new session id"
    );
}
