//! Sessions that outlive connections: redelivery, offline queues, clean start and expiry.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, Opts, TestBroker, config, text};
use ferrule_broker::BrokerConfig;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, PubResp, QoS, ReasonCode};

/// A persistent session's options for either version: clean session 0, or session expiry 60 s.
fn persistent(v: ProtocolVersion, id: &str) -> Opts {
    match v {
        ProtocolVersion::V311 => Opts::v3(id).clean(false),
        ProtocolVersion::V5 => Opts::v5(id).clean(false).expiry(60),
    }
}

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_is_redelivered_with_dup_and_the_same_ids() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    for v in VERSIONS {
        let id = format!("redeliver-{v}");
        let (mut sub, ack) = Client::connect(b.addr, persistent(v, &id)).await;
        assert!(!ack.session_present);
        sub.subscribe("rd/1", QoS::AtLeastOnce).await;
        for i in 0..3 {
            publ.publish("rd/1", &format!("m{i}"), QoS::AtLeastOnce, false)
                .await;
        }
        let mut first = Vec::new();
        for _ in 0..3 {
            let p = sub.recv_publish().await;
            assert!(!p.dup);
            first.push((text(&p).to_owned(), p.packet_id.unwrap()));
        }
        drop(sub);
        b.wait_connections(1).await;

        let (mut sub, ack) = Client::connect(b.addr, persistent(v, &id)).await;
        assert!(ack.session_present, "{v}: session present");
        for (payload, pid) in &first {
            let p = sub.recv_publish().await;
            assert!(p.dup, "{v}: redelivery has DUP set");
            assert_eq!((text(&p), p.packet_id.unwrap()), (payload.as_str(), *pid));
            sub.ack(&p).await;
        }
        sub.disconnect().await;
        b.wait_connections(1).await;

        // Acknowledged means gone: nothing comes back on the next reconnect.
        let (mut sub, ack) = Client::connect(b.addr, persistent(v, &id)).await;
        assert!(ack.session_present);
        sub.expect_silence(Duration::from_millis(200)).await;
        sub.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_resumes_where_it_stopped() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    for v in VERSIONS {
        let id = format!("q2-{v}");
        let mut sub = b.client(persistent(v, &id)).await;
        sub.subscribe("rd/2", QoS::ExactlyOnce).await;
        publ.publish("rd/2", "released", QoS::ExactlyOnce, false)
            .await;
        publ.publish("rd/2", "published", QoS::ExactlyOnce, false)
            .await;
        let m1 = sub.recv_publish().await;
        let m2 = sub.recv_publish().await;
        let (id1, id2) = (m1.packet_id.unwrap(), m2.packet_id.unwrap());
        sub.send(Packet::PubRec(PubResp::new(id1))).await;
        match sub.recv().await {
            Packet::PubRel(r) => assert_eq!(r.packet_id, id1),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        drop(sub);
        b.wait_connections(1).await;

        let (mut sub, ack) = Client::connect(b.addr, persistent(v, &id)).await;
        assert!(ack.session_present);
        // In the original order: the PUBREL for the first, the PUBLISH (DUP) for the second.
        match sub.recv().await {
            Packet::PubRel(r) => assert_eq!(r.packet_id, id1, "{v}"),
            other => panic!("{v}: expected PUBREL, got {other:?}"),
        }
        sub.send(Packet::PubComp(PubResp::new(id1))).await;
        let p = sub.recv_publish().await;
        assert!(p.dup);
        assert_eq!((text(&p), p.packet_id), ("published", Some(id2)));
        sub.ack(&p).await;
        sub.disconnect().await;
        b.wait_connections(1).await;
        let mut sub = b.client(persistent(v, &id)).await;
        sub.expect_silence(Duration::from_millis(200)).await;
        sub.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_offline_arrive_after_reconnect() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    for v in VERSIONS {
        let id = format!("offline-{v}");
        let mut sub = b.client(persistent(v, &id)).await;
        sub.subscribe("off/+", QoS::ExactlyOnce).await;
        sub.disconnect().await;
        b.wait_connections(1).await;

        publ.publish("off/a", "one", QoS::AtLeastOnce, false).await;
        publ.publish("off/b", "lost", QoS::AtMostOnce, false).await;
        publ.publish("off/c", "two", QoS::ExactlyOnce, false).await;

        let (mut sub, ack) = Client::connect(b.addr, persistent(v, &id)).await;
        assert!(ack.session_present, "{v}");
        let p = sub.recv_publish().await;
        assert_eq!((text(&p), p.qos, p.dup), ("one", QoS::AtLeastOnce, false));
        sub.ack(&p).await;
        let p = sub.recv_publish().await;
        assert_eq!((text(&p), p.qos), ("two", QoS::ExactlyOnce));
        sub.ack(&p).await;
        // QoS 0 is not queued for offline sessions by default.
        sub.expect_silence(Duration::from_millis(200)).await;
        sub.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_is_queued_offline_when_configured() {
    let b = TestBroker::start(BrokerConfig {
        queue_qos0_offline: true,
        ..config()
    })
    .await;
    let mut sub = b.client(persistent(ProtocolVersion::V5, "q0")).await;
    sub.subscribe("q0", QoS::AtMostOnce).await;
    sub.disconnect().await;
    b.wait_connections(0).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    publ.publish("q0", "kept", QoS::AtMostOnce, false).await;
    publ.publish("q0", "kept too", QoS::AtLeastOnce, false)
        .await;
    let mut sub = b.client(persistent(ProtocolVersion::V5, "q0")).await;
    let p = sub.recv_publish().await;
    assert_eq!((text(&p), p.qos), ("kept", QoS::AtMostOnce));
    let p = sub.recv_publish().await;
    assert_eq!((text(&p), p.qos), ("kept too", QoS::AtMostOnce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_queue_is_bounded() {
    let b = TestBroker::start(BrokerConfig {
        max_queued_messages: 3,
        ..config()
    })
    .await;
    let mut sub = b.client(persistent(ProtocolVersion::V5, "bounded")).await;
    sub.subscribe("bq", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    b.wait_connections(0).await;

    let mut publ = b.client(Opts::v5("pub")).await;
    for i in 0..5 {
        publ.publish("bq", &format!("m{i}"), QoS::AtLeastOnce, false)
            .await;
    }
    let mut sub = b.client(persistent(ProtocolVersion::V5, "bounded")).await;
    for i in 0..3 {
        let p = sub.recv_publish().await;
        assert_eq!(text(&p), format!("m{i}"));
        sub.ack(&p).await;
    }
    // m3 and m4 were dropped: the next message is one published now.
    publ.publish("bq", "now", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&sub.recv_publish().await), "now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_start_discards_the_stored_session() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    for v in VERSIONS {
        let id = format!("clean-{v}");
        let mut sub = b.client(persistent(v, &id)).await;
        sub.subscribe("cs", QoS::AtLeastOnce).await;
        sub.disconnect().await;
        b.wait_connections(1).await;
        publ.publish("cs", "queued", QoS::AtLeastOnce, false).await;

        let opts = persistent(v, &id).clean(true);
        let (mut sub, ack) = Client::connect(b.addr, opts).await;
        assert!(!ack.session_present, "{v}");
        // Neither the queued message nor the subscription survived.
        publ.publish("cs", "after", QoS::AtLeastOnce, false).await;
        sub.expect_silence(Duration::from_millis(200)).await;
        sub.disconnect().await;
        b.wait_connections(1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_zero_ends_the_session_at_disconnect() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("e0")).await;
    sub.subscribe("e0", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    b.wait_sessions(0).await;
    let (sub, ack) = Client::connect(b.addr, Opts::v5("e0").clean(false)).await;
    assert!(!ack.session_present);
    drop(sub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_session_expiry_ends_the_session_that_many_seconds_later() {
    // Without a store too: expiry must not depend on persistence.
    for store in [true, false] {
        let b = if store {
            TestBroker::start(config()).await
        } else {
            TestBroker::with_store(config(), None).await
        };
        let opts = Opts::v5("e1").clean(false).expiry(1);
        let mut sub = b.client(opts.clone()).await;
        sub.subscribe("e1", QoS::AtLeastOnce).await;
        sub.disconnect().await;

        // Within the expiry: resumed.
        let (sub, ack) = Client::connect(b.addr, opts.clone()).await;
        assert!(
            ack.session_present,
            "store {store}: resumed within the expiry"
        );
        sub.disconnect().await;
        b.wait_connections(0).await;

        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (sub, ack) = Client::connect(b.addr, opts.clone()).await;
        assert!(
            !ack.session_present,
            "store {store}: session gone after its expiry"
        );
        sub.disconnect().await;
        b.wait_connections(0).await;
        // And expired sessions are removed, not just hidden (the sweep runs every second).
        b.wait_sessions(0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_can_shorten_the_session_expiry() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("shorten").clean(false).expiry(60)).await;
    sub.subscribe("sh", QoS::AtLeastOnce).await;
    let props = Properties {
        session_expiry_interval: Some(0),
        ..Properties::default()
    };
    sub.disconnect_with(ReasonCode::NORMAL_DISCONNECTION, props)
        .await;
    b.wait_sessions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_may_not_make_a_zero_expiry_session_persistent() {
    let b = TestBroker::start(config()).await;
    let mut c = b.client(Opts::v5("zero")).await;
    let props = Properties {
        session_expiry_interval: Some(30),
        ..Properties::default()
    };
    c.send(Packet::Disconnect(ferrule_mqtt::Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: props,
    }))
    .await;
    assert_eq!(c.expect_disconnect().await, ReasonCode::PROTOCOL_ERROR);
    b.wait_sessions(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_keeps_its_subscriptions_across_versions() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("cross").clean(false).expiry(60)).await;
    sub.subscribe("x/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    b.wait_connections(0).await;
    let (mut sub, ack) = Client::connect(b.addr, Opts::v3("cross").clean(false)).await;
    assert!(ack.session_present);
    let mut publ = b.client(Opts::v5("pub")).await;
    publ.publish("x/y", "hello", QoS::AtLeastOnce, false).await;
    let p = sub.recv_publish().await;
    assert_eq!(text(&p), "hello");
    sub.ack(&p).await;
}
