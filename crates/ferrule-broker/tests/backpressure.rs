//! A subscriber that reads slower than its publishers publish slows them down instead of losing
//! messages; one that stops reading delays them once, then loses its overflow.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Opts, TestBroker, config, message};
use ferrule_broker::BrokerConfig;
use ferrule_mqtt::{Packet, QoS};

const COUNT: usize = 2000;

fn numbered(i: usize, qos: QoS) -> ferrule_mqtt::Publish {
    let mut p = message("bp/data", "", qos, false);
    let mut payload = format!("{i:08}").into_bytes();
    payload.resize(2048, b'.');
    p.payload = Bytes::from(payload);
    p
}

async fn publish_all(b: &TestBroker, id: &str, qos: QoS) -> tokio::task::JoinHandle<()> {
    let mut publ = b.client(Opts::v5(id)).await;
    tokio::spawn(async move {
        for i in 0..COUNT {
            publ.publish_only(numbered(i, qos)).await;
        }
        // Drain the PUBACKs so the broker is never blocked writing to us, then leave.
        if qos != QoS::AtMostOnce {
            let mut acks = 0;
            while acks < COUNT {
                if let Packet::PubAck(_) = publ.recv().await {
                    acks += 1;
                }
            }
        }
        publ.disconnect().await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_loses_nothing() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let b = TestBroker::start(BrokerConfig {
            max_queued_messages: 50,
            ..config()
        })
        .await;
        let mut sub = b.client(Opts::v5("slow")).await;
        sub.subscribe("bp/#", qos).await;
        let publisher = publish_all(&b, "fast", qos).await;
        // Not reading at all for a while: socket buffers fill, then the session queue.
        tokio::time::sleep(Duration::from_millis(700)).await;
        for i in 0..COUNT {
            let p = sub.recv_publish().await;
            assert_eq!(
                &p.payload[..8],
                format!("{i:08}").as_bytes(),
                "{qos:?}: message {i}"
            );
            sub.ack(&p).await;
        }
        tokio::time::timeout(Duration::from_secs(10), publisher)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_delays_publishers_only_once() {
    let b = TestBroker::start(BrokerConfig {
        max_queued_messages: 50,
        ..config()
    })
    .await;
    // Subscribes, then never reads again.
    let mut stuck = b.client(Opts::v5("stuck")).await;
    stuck.subscribe("bp/#", QoS::AtLeastOnce).await;
    let mut live = b.client(Opts::v5("live")).await;
    live.subscribe("bp/#", QoS::AtLeastOnce).await;
    let started = tokio::time::Instant::now();
    let publisher = publish_all(&b, "fast", QoS::AtLeastOnce).await;
    for i in 0..COUNT {
        let p = live.recv_publish().await;
        assert_eq!(&p.payload[..8], format!("{i:08}").as_bytes(), "message {i}");
        live.ack(&p).await;
    }
    tokio::time::timeout(Duration::from_secs(10), publisher)
        .await
        .unwrap()
        .unwrap();
    // One pause of at most two seconds, not one per message batch (that would be minutes).
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    drop(stuck);
}
