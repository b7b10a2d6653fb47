//! IoT policies enforced by the broker, through the anonymous policy of a plain listener: the
//! same per-connection grant and cache as certificate clients, without TLS. Certificate
//! clients, just-in-time registration and revocation are tested end to end against the
//! `ferrule` binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, Opts, TestBroker, config, filter, text};
use ferrule_broker::client_auth::TrustStore;
use ferrule_broker::{AuthSettings, JitrMode};
use ferrule_mqtt::{Packet, QoS, ReasonCode, Subscription};
use ferrule_store::Registry;
use serde_json::Value;
use tempfile::TempDir;

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

struct Setup {
    b: TestBroker,
    registry: Registry,
    _dir: TempDir,
}

/// A broker whose anonymous clients are governed by the policy `anon`, created with
/// `document` (or not at all).
async fn setup(document: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_sqlite(&dir.path().join("registry.db"))
        .await
        .unwrap();
    if let Some(doc) = document {
        registry.create_policy("anon", doc, 1).await.unwrap();
    }
    let b = TestBroker::start(config()).await;
    b.broker
        .enable_auth(AuthSettings {
            registry: registry.clone(),
            trust: std::sync::Arc::new(TrustStore::new()),
            jitr_mode: JitrMode::Hold,
            jitr_hold: Duration::from_secs(5),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            anonymous_policy: Some("anon".into()),
        })
        .await
        .unwrap();
    Setup {
        b,
        registry,
        _dir: dir,
    }
}

/// Allows connecting, everything on `ok/...` except receiving `ok/secret`, and watching events.
fn ok_policy() -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/*"}},
        {{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["{ARN}:topic/ok/*","{ARN}:topic/$aws/events/*","{ARN}:topic/$ferrule/*"]}},
        {{"Effect":"Allow","Action":"iot:Subscribe","Resource":["{ARN}:topicfilter/ok/*","{ARN}:topicfilter/$aws/events/*","{ARN}:topicfilter/$ferrule/*"]}},
        {{"Effect":"Deny","Action":"iot:Receive","Resource":"{ARN}:topic/ok/secret"}}]}}"#
    )
}

fn subscription(f: &str) -> Subscription {
    Subscription::new(filter(f), QoS::AtLeastOnce)
}

fn json(p: &ferrule_mqtt::Publish) -> Value {
    serde_json::from_str(text(p)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_and_receive_follow_the_policy() {
    let s = setup(Some(&ok_policy())).await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    let ack = sub
        .subscribe_with(
            vec![subscription("ok/#"), subscription("other/#")],
            Default::default(),
        )
        .await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED]
    );

    let mut publ = s.b.client(Opts::v5("pub")).await;
    assert_eq!(
        publ.publish("ok/secret", "hidden", QoS::AtLeastOnce, false)
            .await,
        Some(ReasonCode::SUCCESS),
        "routed to the subscriber, dropped at delivery"
    );
    assert_eq!(
        publ.publish("ok/open", "seen", QoS::AtLeastOnce, false)
            .await,
        Some(ReasonCode::SUCCESS)
    );
    // Denied iot:Publish: MQTT 5 QoS 1 gets 0x87 and stays connected.
    assert_eq!(
        publ.publish("other/x", "no", QoS::AtLeastOnce, false).await,
        Some(ReasonCode::NOT_AUTHORIZED)
    );
    // iot:Receive denied on ok/secret: only ok/open arrives.
    let got = sub.recv_publish().await;
    assert_eq!(
        (got.topic.as_ref().unwrap().as_str(), text(&got)),
        ("ok/open", "seen")
    );
    sub.expect_silence(Duration::from_millis(200)).await;

    // MQTT 5 QoS 0 cannot be answered: DISCONNECT 0x87.
    publ.publish("other/x", "no", QoS::AtMostOnce, false).await;
    assert_eq!(publ.expect_disconnect().await, ReasonCode::NOT_AUTHORIZED);

    // MQTT 3.1.1 cannot be told at all: the connection is closed; SUBACK says 0x80.
    let mut v3 = s.b.client(Opts::v3("v3")).await;
    let ack = v3
        .subscribe_with(vec![subscription("other/#")], Default::default())
        .await;
    assert_eq!(ack.reasons, vec![ReasonCode::UNSPECIFIED_ERROR]);
    v3.publish_only(common::message("other/x", "no", QoS::AtLeastOnce, false))
        .await;
    v3.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_topics_cannot_be_published_even_with_full_permissions() {
    let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    let s = setup(Some(everything)).await;
    let mut c = s.b.client(Opts::v5("forger")).await;
    for topic in [
        "$aws/events/certificates/registered/abc",
        "$aws/events/presence/connected/x",
        "$ferrule/events/connections/rejected",
    ] {
        assert_eq!(
            c.publish(topic, "{}", QoS::AtLeastOnce, false).await,
            Some(ReasonCode::NOT_AUTHORIZED),
            "{topic}"
        );
    }
    // Nothing may be retained on a reserved topic, even one clients publish requests to.
    assert_eq!(
        c.publish("$aws/things/t/shadow/update", "{}", QoS::AtLeastOnce, true)
            .await,
        Some(ReasonCode::NOT_AUTHORIZED)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_carry_aws_payloads() {
    let s = setup(Some(&ok_policy())).await;
    let mut admin = s.b.client(Opts::v5("admin")).await;
    admin.subscribe("$aws/events/#", QoS::AtMostOnce).await;
    let own = json(&admin.recv_publish().await);
    assert_eq!(
        (&own["eventType"], &own["clientId"]),
        (&"subscribed".into(), &"admin".into())
    );

    let mut dev = s.b.client(Opts::v5("dev-1")).await;
    let connected = admin.recv_publish().await;
    assert_eq!(
        connected.topic.as_ref().unwrap().as_str(),
        "$aws/events/presence/connected/dev-1"
    );
    let c = json(&connected);
    assert_eq!(c["clientId"], "dev-1");
    assert_eq!(c["eventType"], "connected");
    assert_eq!(c["principalIdentifier"], "anonymous");
    assert_eq!(c["ipAddress"], "127.0.0.1");
    assert!(c["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let session = c["sessionIdentifier"].as_str().unwrap().to_owned();
    assert_eq!(session.len(), 36);

    dev.subscribe("ok/a", QoS::AtMostOnce).await;
    let subscribed = json(&admin.recv_publish().await);
    assert_eq!(subscribed["eventType"], "subscribed");
    assert_eq!(subscribed["topics"], serde_json::json!(["ok/a"]));
    assert_eq!(subscribed["sessionIdentifier"], session.as_str());

    dev.send(Packet::Disconnect(ferrule_mqtt::Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: Default::default(),
    }))
    .await;
    let gone = admin.recv_publish().await;
    assert_eq!(
        gone.topic.as_ref().unwrap().as_str(),
        "$aws/events/presence/disconnected/dev-1"
    );
    let d = json(&gone);
    assert_eq!(d["disconnectReason"], "CLIENT_INITIATED_DISCONNECT");
    assert_eq!(d["clientInitiatedDisconnect"], true);
    assert_eq!(d["versionNumber"], c["versionNumber"]);
    assert_eq!(d["sessionIdentifier"], session.as_str());

    // A client that just goes away: CONNECTION_LOST.
    let dev2 = s.b.client(Opts::v5("dev-2")).await;
    let _ = admin.recv_publish().await;
    drop(dev2);
    let lost = json(&admin.recv_publish().await);
    assert_eq!(lost["clientId"], "dev-2");
    assert_eq!(lost["disconnectReason"], "CONNECTION_LOST");
    assert_eq!(lost["clientInitiatedDisconnect"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_policy_refuses_and_says_why() {
    let s = setup(None).await;
    let (_, ack) = Client::connect(s.b.addr, Opts::v5("nobody")).await;
    assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED);
    let why = ack.properties.reason_string.unwrap_or_default();
    assert!(why.starts_with("not_authorized:"), "{why}");

    // Created later, it takes effect without a restart.
    s.registry
        .create_policy("anon", &ok_policy(), 2)
        .await
        .unwrap();
    let mut ok = None;
    for _ in 0..50 {
        let (c, ack) = Client::connect(s.b.addr, Opts::v5("somebody")).await;
        if ack.reason == ReasonCode::SUCCESS {
            ok = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok.is_some(), "the new anonymous policy was never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_connection_is_announced() {
    let only_events = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/admin"}},
        {{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":"*"}}]}}"#
    );
    let s = setup(Some(&only_events)).await;
    let mut admin = s.b.client(Opts::v5("admin")).await;
    admin
        .subscribe("$ferrule/events/connections/rejected", QoS::AtMostOnce)
        .await;
    let (_, ack) = Client::connect(s.b.addr, Opts::v3("intruder")).await;
    assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED);
    let e = json(&admin.recv_publish().await);
    assert_eq!(e["eventType"], "rejected");
    assert_eq!(e["reason"], "not_authorized");
    assert_eq!(e["clientId"], "intruder");
    assert_eq!(e["listener"], "mqtt");
    assert_eq!(e["sourceIp"], "127.0.0.1");
    assert!(e["sourcePort"].as_u64().unwrap() > 0);
    assert_eq!(e["certificateId"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_reach_live_connections_within_a_second() {
    let s = setup(Some(&ok_policy())).await;
    let mut admin = s.b.client(Opts::v5("admin")).await;
    admin
        .subscribe("$aws/events/subscriptions/#", QoS::AtMostOnce)
        .await;
    let mut sub = s.b.client(Opts::v5("sub")).await;
    sub.subscribe("ok/#", QoS::AtMostOnce).await;
    for who in ["admin", "sub"] {
        let e = json(&admin.recv_publish().await);
        assert_eq!(
            (&e["eventType"], &e["clientId"]),
            (&"subscribed".into(), &who.into())
        );
    }
    let mut publ = s.b.client(Opts::v5("pub")).await;

    // A new default version without iot:Subscribe on ok/*: the subscription is dropped.
    let no_subscribe = ok_policy().replace("topicfilter/ok/*", "topicfilter/elsewhere/*");
    let started = std::time::Instant::now();
    s.registry
        .create_policy_version("anon", &no_subscribe, true, 3)
        .await
        .unwrap();
    let dropped = json(&admin.recv_publish().await);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(dropped["eventType"], "unsubscribed");
    assert_eq!(dropped["clientId"], "sub");
    assert_eq!(dropped["topics"], serde_json::json!(["ok/#"]));
    publ.publish("ok/a", "after", QoS::AtMostOnce, false).await;
    sub.expect_silence(Duration::from_millis(200)).await;

    // A version that no longer allows iot:Connect: connected clients are cut off.
    let no_connect = no_subscribe.replace("client/*", "client/nobody");
    let started = std::time::Instant::now();
    s.registry
        .create_policy_version("anon", &no_connect, true, 4)
        .await
        .unwrap();
    assert_eq!(sub.expect_disconnect().await, ReasonCode::NOT_AUTHORIZED);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
