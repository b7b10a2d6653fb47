//! What survives `Broker::shutdown` and a new `Broker::start` on the same SQLite file, and how
//! shutdown treats connected clients.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Client, Opts, TestBroker, config, message, text};
use ferrule_mqtt::{Packet, Properties, PubResp, QoS, ReasonCode};
use ferrule_store::BrokerStore;

const GRACE: Duration = Duration::from_secs(2);

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("broker.db")
}

async fn restart(b: TestBroker, path: &Path) -> TestBroker {
    b.broker.shutdown(GRACE).await;
    TestBroker::start_sqlite(config(), path).await
}

/// The client ids of the sessions in the store, read through a second connection to the file.
async fn stored_sessions(path: &Path) -> Vec<String> {
    let store = BrokerStore::open_sqlite(path).await.unwrap();
    let ids = store
        .load_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.client_id)
        .collect();
    store.close().await;
    ids
}

async fn wait_stored(path: &Path, want: &[&str]) {
    let waited = tokio::time::timeout(common::WAIT, async {
        loop {
            if stored_sessions(path).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "store holds sessions {:?}, expected {want:?}",
        stored_sessions(path).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let b = TestBroker::start_sqlite(config(), &path).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut m = message("keep/props", "with props", QoS::AtLeastOnce, true);
    m.properties.content_type = Some("text/plain".into());
    m.properties.user_properties = vec![("k".into(), "v".into())];
    m.properties.message_expiry_interval = Some(600);
    p.publish_msg(m).await;
    p.publish("keep/plain", "old", QoS::AtMostOnce, true).await;
    p.publish("keep/plain", "new", QoS::ExactlyOnce, true).await;
    p.publish("keep/cleared", "soon gone", QoS::AtLeastOnce, true)
        .await;
    p.publish("keep/cleared", "", QoS::AtLeastOnce, true).await;

    let b = restart(b, &path).await;
    assert_eq!(b.broker.stats().retained, 2);
    let mut s = b.client(Opts::v5("sub")).await;
    s.subscribe("keep/#", QoS::ExactlyOnce).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = s.recv_publish().await;
        s.ack(&m).await;
        got.push(m);
    }
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(
        (text(&got[0]), got[0].qos, got[0].retain),
        ("new", QoS::ExactlyOnce, true)
    );
    assert_eq!(text(&got[1]), "with props");
    assert_eq!(
        got[1].properties.content_type.as_deref(),
        Some("text/plain")
    );
    assert_eq!(
        got[1].properties.user_properties,
        vec![("k".to_owned(), "v".to_owned())]
    );
    let left = got[1].properties.message_expiry_interval.unwrap();
    assert!(
        (590..=600).contains(&left),
        "expiry keeps counting across the restart: {left}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_with_subscriptions_and_queues_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let b = TestBroker::start_sqlite(config(), &path).await;
    let v3 = Opts::v3("dev-v3").clean(false);
    let v5 = Opts::v5("dev-v5").clean(false).expiry(3600);
    for opts in [&v3, &v5] {
        let mut c = b.client(opts.clone()).await;
        c.subscribe("cmd/+", QoS::AtLeastOnce).await;
        c.subscribe("cmd2/#", QoS::ExactlyOnce).await;
        c.disconnect().await;
    }
    b.wait_connections(0).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("cmd/a", "queued 1", QoS::AtLeastOnce, false)
        .await;
    p.publish("cmd2/b/c", "queued 2", QoS::ExactlyOnce, false)
        .await;
    // A connected persistent session is saved at shutdown as well.
    let mut online = b.client(Opts::v5("online").clean(false).expiry(3600)).await;
    online.subscribe("live", QoS::AtLeastOnce).await;

    let b = restart(b, &path).await;
    assert_eq!(
        online.expect_disconnect().await,
        ReasonCode::SERVER_SHUTTING_DOWN
    );
    let mut devices = Vec::new();
    for opts in [v3, v5] {
        let (mut c, ack) = Client::connect(b.addr, opts.clone()).await;
        assert!(ack.session_present, "{}", opts.client_id);
        let m = c.recv_publish().await;
        assert_eq!(
            (text(&m), m.qos, m.dup),
            ("queued 1", QoS::AtLeastOnce, false)
        );
        c.ack(&m).await;
        let m = c.recv_publish().await;
        assert_eq!((text(&m), m.qos), ("queued 2", QoS::ExactlyOnce));
        c.ack(&m).await;
        devices.push(c);
    }
    // The subscriptions still route.
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("cmd/z", "after restart", QoS::AtLeastOnce, false)
        .await;
    for c in &mut devices {
        let m = c.recv_publish().await;
        assert_eq!(text(&m), "after restart");
        c.ack(&m).await;
    }
    let (mut online, ack) =
        Client::connect(b.addr, Opts::v5("online").clean(false).expiry(3600)).await;
    assert!(ack.session_present);
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("live", "still subscribed", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&online.recv_publish().await), "still subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_flight_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let b = TestBroker::start_sqlite(config(), &path).await;
    let opts = Opts::v5("inflight").clean(false).expiry(3600);
    let mut c = b.client(opts.clone()).await;
    c.subscribe("if/#", QoS::ExactlyOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("if/1", "q1", QoS::AtLeastOnce, false).await;
    p.publish("if/2", "q2", QoS::ExactlyOnce, false).await;
    let m1 = c.recv_publish().await;
    let m2 = c.recv_publish().await;
    let id2 = m2.packet_id.unwrap();
    c.send(Packet::PubRec(PubResp::new(id2))).await;
    assert!(matches!(c.recv().await, Packet::PubRel(r) if r.packet_id == id2));
    drop(c);
    b.wait_connections(1).await;

    let b = restart(b, &path).await;
    let (mut c, ack) = Client::connect(b.addr, opts).await;
    assert!(ack.session_present);
    let again = c.recv_publish().await;
    assert_eq!(
        (text(&again), again.dup, again.packet_id),
        ("q1", true, m1.packet_id)
    );
    c.ack(&again).await;
    match c.recv().await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, id2),
        other => panic!("expected the PUBREL again, got {other:?}"),
    }
    c.send(Packet::PubComp(PubResp::new(id2))).await;
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_are_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let b = TestBroker::start_sqlite(config(), &path).await;
    // Three sessions reach the store while offline...
    for id in ["lowered", "cleaned", "kept"] {
        let mut c = b.client(Opts::v5(id).clean(false).expiry(3600)).await;
        c.subscribe("x", QoS::AtLeastOnce).await;
        c.disconnect().await;
    }
    wait_stored(&path, &["cleaned", "kept", "lowered"]).await;
    // ...then one lowers its expiry to 0 on DISCONNECT, one comes back with clean start.
    let c = b
        .client(Opts::v5("lowered").clean(false).expiry(3600))
        .await;
    let zero = Properties {
        session_expiry_interval: Some(0),
        ..Properties::default()
    };
    c.disconnect_with(ReasonCode::NORMAL_DISCONNECTION, zero)
        .await;
    b.client(Opts::v5("cleaned")).await.disconnect().await;
    b.wait_connections(0).await;
    wait_stored(&path, &["kept"]).await;

    let b = restart(b, &path).await;
    assert_eq!(b.broker.stats().sessions, 1);
    for (id, present) in [("lowered", false), ("cleaned", false), ("kept", true)] {
        let (c, ack) = Client::connect(b.addr, Opts::v5(id).clean(false).expiry(3600)).await;
        assert_eq!(ack.session_present, present, "{id}");
        c.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_counts_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let b = TestBroker::start_sqlite(config(), &path).await;
    let opts = Opts::v5("brief").clean(false).expiry(1);
    let mut c = b.client(opts.clone()).await;
    c.subscribe("x", QoS::AtLeastOnce).await;
    c.disconnect().await;
    b.wait_connections(0).await;
    b.broker.shutdown(GRACE).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let b = TestBroker::start_sqlite(config(), &path).await;
    let (_c, ack) = Client::connect(b.addr, opts).await;
    assert!(!ack.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_disconnects_clients_and_stops_listening() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_sqlite(config(), &db(&dir)).await;
    let mut w = b.client(Opts::v5("watcher")).await;
    w.subscribe("wills", QoS::AtMostOnce).await;
    let mut v5 = b
        .client(Opts::v5("v5").will(common::will("wills", "v5", QoS::AtMostOnce, false)))
        .await;
    let mut v3 = b.client(Opts::v3("v3")).await;
    b.broker.shutdown(GRACE).await;
    assert_eq!(b.broker.stats().connections, 0);
    assert_eq!(
        v5.expect_disconnect().await,
        ReasonCode::SERVER_SHUTTING_DOWN
    );
    assert!(v3.expect_closed().await.is_none());
    // The watcher was told to go too, and got no will on the way out.
    assert_eq!(
        w.expect_disconnect().await,
        ReasonCode::SERVER_SHUTTING_DOWN
    );
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(b.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_client_that_stopped_reading() {
    let b = TestBroker::start(config()).await;
    let mut stuck = b.client(Opts::v5("stuck").clean(false).expiry(60)).await;
    stuck.subscribe("flood", QoS::AtMostOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let big = "x".repeat(64 * 1024);
    for _ in 0..200 {
        p.publish_only(message("flood", &big, QoS::AtMostOnce, false))
            .await;
    }
    p.ping().await;
    let started = std::time::Instant::now();
    b.broker.shutdown(Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(b.broker.stats().connections, 0);
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_client_that_never_sent_connect() {
    let b = TestBroker::start(config()).await;
    let mut idle = Client::tcp(b.addr).await;
    b.wait_connections(1).await;
    let started = std::time::Instant::now();
    b.broker.shutdown(Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(idle.expect_closed().await.is_none());
}
