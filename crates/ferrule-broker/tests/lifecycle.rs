//! How connections begin and end: wills, keep-alive, session takeover, client identifiers.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, Opts, TestBroker, config, text, will};
use ferrule_broker::BrokerConfig;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, QoS, ReasonCode};

/// A subscriber to `topic` that is ready before anything else happens.
async fn watcher(b: &TestBroker, topic: &str) -> Client {
    let mut w = b.client(Opts::v5(&format!("watch-{topic}"))).await;
    w.subscribe(topic, QoS::AtLeastOnce).await;
    w
}

/// Proves that nothing was published to `topic` before now: a marker published now must be the
/// next message the watcher gets.
async fn assert_nothing_before_marker(b: &TestBroker, w: &mut Client, topic: &str) {
    let mut m = b.client(Opts::v5("marker")).await;
    m.publish(topic, "marker", QoS::AtLeastOnce, false).await;
    let p = w.recv_publish().await;
    assert_eq!(
        text(&p),
        "marker",
        "something was published to {topic} before the marker"
    );
    w.ack(&p).await;
    m.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_the_connection_drops() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/drop").await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let opts = match v {
            ProtocolVersion::V311 => Opts::v3("dropper"),
            ProtocolVersion::V5 => Opts::v5("dropper"),
        };
        let c = b
            .client(opts.will(will(
                "will/drop",
                &format!("gone {v}"),
                QoS::AtLeastOnce,
                false,
            )))
            .await;
        drop(c);
        let p = w.recv_publish().await;
        assert_eq!(
            (text(&p), p.qos),
            (format!("gone {v}").as_str(), QoS::AtLeastOnce)
        );
        w.ack(&p).await;
        b.wait_connections(1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_not_published_on_a_normal_disconnect() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/normal").await;
    let c = b
        .client(Opts::v3("polite").will(will("will/normal", "no", QoS::AtMostOnce, false)))
        .await;
    c.disconnect().await;
    let c = b
        .client(Opts::v5("polite5").will(will("will/normal", "no", QoS::AtMostOnce, false)))
        .await;
    c.disconnect().await;
    b.wait_connections(1).await;
    assert_nothing_before_marker(&b, &mut w, "will/normal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_on_disconnect_with_will() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/asked").await;
    let c = b
        .client(Opts::v5("asker").will(will("will/asked", "as asked", QoS::AtMostOnce, false)))
        .await;
    c.disconnect_with(ReasonCode::DISCONNECT_WITH_WILL, Properties::default())
        .await;
    assert_eq!(text(&w.recv_publish().await), "as asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_will_becomes_the_retained_message() {
    let b = TestBroker::start(config()).await;
    let c = b
        .client(Opts::v5("rw").will(will("will/retained", "last words", QoS::AtLeastOnce, true)))
        .await;
    drop(c);
    b.wait_connections(0).await;
    let mut late = b.client(Opts::v5("late")).await;
    late.subscribe("will/retained", QoS::AtLeastOnce).await;
    let p = late.recv_publish().await;
    assert_eq!((text(&p), p.retain), ("last words", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_will_is_cancelled_by_a_reconnect() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/delay").await;
    let mut lw = will("will/delay", "cancelled", QoS::AtLeastOnce, false);
    lw.properties.will_delay_interval = Some(1);
    let opts = Opts::v5("delayer").clean(false).expiry(30).will(lw);
    drop(b.client(opts.clone()).await);
    b.wait_connections(1).await;
    let (c, ack) = Client::connect(
        b.addr,
        opts.clone()
            .will(will("will/delay", "x", QoS::AtMostOnce, false)),
    )
    .await;
    assert!(ack.session_present);
    // Past the delay: the first will must not have been published.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_nothing_before_marker(&b, &mut w, "will/delay").await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_will_is_published_after_the_delay() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/later").await;
    let mut lw = will("will/later", "later", QoS::AtLeastOnce, false);
    lw.properties.will_delay_interval = Some(1);
    let dropped_at = Instant::now();
    drop(
        b.client(Opts::v5("later").clean(false).expiry(30).will(lw))
            .await,
    );
    let p = w.recv_publish().await;
    assert_eq!(text(&p), "later");
    assert!(
        dropped_at.elapsed() >= Duration::from_millis(900),
        "the will came before its delay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_will_is_published_when_the_session_ends_first() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/ends").await;
    let mut lw = will("will/ends", "session over", QoS::AtLeastOnce, false);
    lw.properties.will_delay_interval = Some(60);
    // Session expiry 0: the session ends with the connection, and the will goes with it.
    drop(b.client(Opts::v5("ends").will(lw)).await);
    assert_eq!(text(&w.recv_publish().await), "session over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alives() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/ka").await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let opts = match v {
            ProtocolVersion::V311 => Opts::v3("silent"),
            ProtocolVersion::V5 => Opts::v5("silent"),
        };
        let opts = opts
            .keep_alive(1)
            .will(will("will/ka", "timed out", QoS::AtMostOnce, false));
        let started = Instant::now();
        let mut c = b.client(opts).await;
        let disconnect = c.expect_closed().await;
        let took = started.elapsed();
        match v {
            ProtocolVersion::V5 => {
                assert_eq!(disconnect.unwrap().reason, ReasonCode::KEEP_ALIVE_TIMEOUT)
            }
            ProtocolVersion::V311 => assert!(disconnect.is_none()),
        }
        assert!(
            took >= Duration::from_millis(1000),
            "{v}: closed after {took:?}, before the keep-alive ran out"
        );
        assert!(
            took < Duration::from_millis(2500),
            "{v}: closed only after {took:?}"
        );
        assert_eq!(text(&w.recv_publish().await), "timed out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_a_client_alive() {
    let b = TestBroker::start(config()).await;
    let mut c = b.client(Opts::v5("pinger").keep_alive(1)).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.ping().await;
    }
    // Three seconds on, twice the allowance: still connected and served.
    c.subscribe("alive", QoS::AtMostOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keep_alive_caps_what_the_client_asks_for() {
    let b = TestBroker::start(BrokerConfig {
        max_keep_alive: 5,
        ..config()
    })
    .await;
    let (_c, ack) = Client::connect(b.addr, Opts::v5("big").keep_alive(600)).await;
    assert_eq!(ack.properties.server_keep_alive, Some(5));
    let (_c, ack) = Client::connect(b.addr, Opts::v5("zero").keep_alive(0)).await;
    assert_eq!(ack.properties.server_keep_alive, Some(5));
    let (_c, ack) = Client::connect(b.addr, Opts::v5("small").keep_alive(2)).await;
    assert_eq!(ack.properties.server_keep_alive, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_takes_the_session_over() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let opts = match v {
            ProtocolVersion::V311 => Opts::v3("twin").clean(false),
            ProtocolVersion::V5 => Opts::v5("twin").clean(false).expiry(60),
        };
        let mut first = b.client(opts.clone()).await;
        first.subscribe("twin", QoS::AtLeastOnce).await;
        let (mut second, ack) = Client::connect(b.addr, opts).await;
        assert!(ack.session_present, "{v}");
        let reason = first.expect_closed().await.map(|d| d.reason);
        match v {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::SESSION_TAKEN_OVER)),
            ProtocolVersion::V311 => assert_eq!(reason, None),
        }
        // The subscription made on the first connection now serves the second.
        publ.publish("twin", &format!("to {v}"), QoS::AtLeastOnce, false)
            .await;
        let p = second.recv_publish().await;
        assert_eq!(text(&p), format!("to {v}"));
        second.ack(&p).await;
        // Clean up for the next round: end the session.
        second.disconnect().await;
        b.wait_connections(1).await;
        b.client(Opts::v5("twin")).await.disconnect().await;
        b.wait_connections(1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_keeps_messages_in_flight() {
    let b = TestBroker::start(config()).await;
    let opts = Opts::v5("flight").clean(false).expiry(60);
    let mut first = b.client(opts.clone()).await;
    first.subscribe("flight", QoS::AtLeastOnce).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    publ.publish("flight", "unacked", QoS::AtLeastOnce, false)
        .await;
    let p = first.recv_publish().await;
    let mut second = b.client(opts).await;
    let again = second.recv_publish().await;
    assert_eq!(
        (text(&again), again.dup, again.packet_id),
        ("unacked", true, p.packet_id)
    );
    second.ack(&again).await;
    assert_eq!(
        first.expect_disconnect().await,
        ReasonCode::SESSION_TAKEN_OVER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_gets_one_assigned() {
    let b = TestBroker::start(config()).await;
    let (mut a, ack_a) = Client::connect(b.addr, Opts::v5("")).await;
    let (mut c, ack_c) = Client::connect(b.addr, Opts::v5("")).await;
    assert_eq!(ack_a.reason, ReasonCode::SUCCESS);
    let id_a = ack_a
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    let id_c = ack_c
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id_a.is_empty());
    assert_ne!(id_a, id_c, "two clients got the same id");
    // Both are real, separate clients.
    a.subscribe("assigned", QoS::AtMostOnce).await;
    c.publish("assigned", "hi", QoS::AtMostOnce, false).await;
    assert_eq!(text(&a.recv_publish().await), "hi");

    // 3.1.1: allowed with a clean session, refused (return code 2) without.
    let (_v3, ack) = Client::connect(b.addr, Opts::v3("")).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    let (mut v3, ack) = Client::connect(b.addr, Opts::v3("").clean(false)).await;
    assert_eq!(ack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(!ack.session_present);
    assert!(v3.expect_closed().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_assigned_ids_are_distinct() {
    let b = TestBroker::start(config()).await;
    let mut ids = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..50 {
        let (c, ack) = Client::connect(b.addr, Opts::v5("")).await;
        assert!(ids.insert(ack.properties.assigned_client_identifier.unwrap()));
        clients.push(c);
    }
    b.wait_sessions(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_before_connect_and_second_connect_close_the_connection() {
    let b = TestBroker::start(config()).await;
    let mut c = Client::tcp(b.addr).await;
    c.send(Packet::PingReq).await;
    assert!(c.expect_closed().await.is_none());

    let mut c = b.client(Opts::v5("twice")).await;
    let connect = ferrule_mqtt::Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 30,
        client_id: "twice".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    c.send(Packet::Connect(connect)).await;
    assert_eq!(c.expect_disconnect().await, ReasonCode::PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_on_disconnect_with_an_error_reason() {
    // Only 0x00 (normal disconnection) deletes the will; any other reason keeps it.
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/error").await;
    let c = b
        .client(Opts::v5("failing").will(will("will/error", "failed", QoS::AtMostOnce, false)))
        .await;
    c.disconnect_with(ReasonCode::UNSPECIFIED_ERROR, Properties::default())
        .await;
    assert_eq!(text(&w.recv_publish().await), "failed");
}

/// Fills the socket toward `topic`'s subscriber until the broker can no longer write to it.
async fn flood(b: &TestBroker, topic: &str) {
    let mut p = b.client(Opts::v5("flooder")).await;
    let big = "x".repeat(64 * 1024);
    for _ in 0..200 {
        p.publish_only(common::message(topic, &big, QoS::AtMostOnce, false))
            .await;
    }
    // Every PUBLISH before the PINGREQ has been routed once the PINGRESP is back.
    p.ping().await;
    p.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_ends_a_connection_stuck_writing_to_a_client_that_stopped_reading() {
    let b = TestBroker::start(config()).await;
    let opts = Opts::v5("stuck").clean(false).expiry(60).keep_alive(0);
    let mut stuck = b.client(opts.clone()).await;
    stuck.subscribe("flood", QoS::AtMostOnce).await;
    flood(&b, "flood").await;
    let mut fresh = b.client(opts).await;
    // The stuck connection is gone: only the new one is left.
    b.wait_connections(1).await;
    fresh.ping().await;
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_ends_a_connection_stuck_writing_to_a_client_that_stopped_reading() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/stuck").await;
    let opts =
        Opts::v5("stuck")
            .keep_alive(1)
            .will(will("will/stuck", "stuck", QoS::AtMostOnce, false));
    let mut stuck = b.client(opts).await;
    stuck.subscribe("flood", QoS::AtMostOnce).await;
    flood(&b, "flood").await;
    // Keep-alive (1.5 s) plus a bounded goodbye: the will shows the connection ended.
    assert_eq!(text(&w.recv_publish().await), "stuck");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_will_is_published_at_once_when_a_clean_start_ends_the_session() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/clean").await;
    let mut lw = will("will/clean", "offline", QoS::AtLeastOnce, false);
    lw.properties.will_delay_interval = Some(60);
    drop(
        b.client(Opts::v5("presence").clean(false).expiry(300).will(lw))
            .await,
    );
    b.wait_connections(1).await;
    // Back with a clean start: the old session ends, so its will goes out now, before the
    // client's own "online" and not a minute later.
    let mut c = b.client(Opts::v5("presence")).await;
    c.publish("will/clean", "online", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&w.recv_publish().await), "offline");
    assert_eq!(text(&w.recv_publish().await), "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_will_is_published_when_the_session_expires_first() {
    let b = TestBroker::start(config()).await;
    let mut w = watcher(&b, "will/expiry").await;
    let mut lw = will("will/expiry", "expired", QoS::AtLeastOnce, false);
    lw.properties.will_delay_interval = Some(60);
    drop(
        b.client(Opts::v5("short").clean(false).expiry(1).will(lw))
            .await,
    );
    assert_eq!(text(&w.recv_publish().await), "expired");
}
