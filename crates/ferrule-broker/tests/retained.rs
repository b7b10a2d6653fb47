//! Retained messages: set, replace, clear, and how subscriptions receive them.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Client, Opts, TestBroker, config, filter, message, text, topic_name};
use ferrule_mqtt::{Properties, QoS, ReasonCode, RetainHandling, Subscription};

/// Subscribes a fresh client to `f` and collects the retained messages it gets, until a marker
/// published on `marker_topic` (which `f` must match) shows nothing more is coming.
async fn retained_for(b: &TestBroker, f: &str, marker_topic: &str) -> Vec<(String, String, bool)> {
    // Fresh ids each time, so no call waits on the previous call's connections going away.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut c = b.client(Opts::v5(&format!("reader-{n}"))).await;
    c.subscribe(f, QoS::AtLeastOnce).await;
    let mut m = b.client(Opts::v5(&format!("marker-{n}"))).await;
    m.publish(marker_topic, "marker", QoS::AtMostOnce, false)
        .await;
    let mut got = Vec::new();
    loop {
        let p = c.recv_publish().await;
        c.ack(&p).await;
        if text(&p) == "marker" {
            break;
        }
        got.push((
            p.topic.as_ref().unwrap().to_string(),
            text(&p).to_owned(),
            p.retain,
        ));
    }
    c.disconnect().await;
    m.disconnect().await;
    got.sort();
    got
}

fn r(topic: &str, payload: &str) -> (String, String, bool) {
    (topic.to_owned(), payload.to_owned(), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_replace_and_clear() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v3("pub")).await;
    p.publish("ret/a", "first", QoS::AtLeastOnce, true).await;
    assert_eq!(
        retained_for(&b, "ret/a", "ret/a").await,
        vec![r("ret/a", "first")]
    );
    p.publish("ret/a", "second", QoS::AtLeastOnce, true).await;
    assert_eq!(
        retained_for(&b, "ret/a", "ret/a").await,
        vec![r("ret/a", "second")]
    );
    // A non-retained message leaves the retained one alone.
    p.publish("ret/a", "passing", QoS::AtLeastOnce, false).await;
    assert_eq!(
        retained_for(&b, "ret/a", "ret/a").await,
        vec![r("ret/a", "second")]
    );
    assert_eq!(b.broker.stats().retained, 1);
    p.publish("ret/a", "", QoS::AtLeastOnce, true).await;
    assert_eq!(retained_for(&b, "ret/a", "ret/a").await, vec![]);
    assert_eq!(b.broker.stats().retained, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_subscribers_get_retain_zero_and_clearing_is_delivered() {
    let b = TestBroker::start(config()).await;
    let mut live = b.client(Opts::v3("live")).await;
    live.subscribe("ret/live", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("ret/live", "x", QoS::AtLeastOnce, true).await;
    let got = live.recv_publish().await;
    assert_eq!((text(&got), got.retain), ("x", false));
    live.ack(&got).await;
    // The empty message that clears the topic still reaches current subscribers.
    p.publish("ret/live", "", QoS::AtLeastOnce, true).await;
    let got = live.recv_publish().await;
    assert!(got.payload.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_subscriber_gets_retained_at_the_lower_qos() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("ret/q", "q2", QoS::ExactlyOnce, true).await;
    let mut s = b.client(Opts::v3("s")).await;
    s.subscribe("ret/q", QoS::AtLeastOnce).await;
    let got = s.recv_publish().await;
    assert_eq!(
        (text(&got), got.qos, got.retain),
        ("q2", QoS::AtLeastOnce, true)
    );
    s.ack(&got).await;
    let mut s0 = b.client(Opts::v5("s0")).await;
    s0.subscribe("ret/q", QoS::AtMostOnce).await;
    let got = s0.recv_publish().await;
    assert_eq!(
        (got.qos, got.packet_id, got.retain),
        (QoS::AtMostOnce, None, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_gets_every_matching_retained_message() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    for (t, v) in [
        ("w/a", "1"),
        ("w/b", "2"),
        ("w/c/d", "3"),
        ("other/x", "4"),
        ("$SYS/w", "5"),
    ] {
        p.publish(t, v, QoS::AtLeastOnce, true).await;
    }
    p.disconnect().await;
    assert_eq!(
        retained_for(&b, "w/#", "w/marker").await,
        vec![r("w/a", "1"), r("w/b", "2"), r("w/c/d", "3")]
    );
    assert_eq!(
        retained_for(&b, "w/+", "w/marker").await,
        vec![r("w/a", "1"), r("w/b", "2")]
    );
    // `#` does not reach `$` topics.
    assert_eq!(
        retained_for(&b, "#", "w/marker").await,
        vec![
            r("other/x", "4"),
            r("w/a", "1"),
            r("w/b", "2"),
            r("w/c/d", "3")
        ]
    );
}

async fn subscribe_rh(c: &mut Client, f: &str, rh: RetainHandling) {
    let sub = Subscription {
        retain_handling: rh,
        ..Subscription::new(filter(f), QoS::AtMostOnce)
    };
    let ack = c.subscribe_with(vec![sub], Properties::default()).await;
    assert_eq!(ack.reasons, vec![ReasonCode::GRANTED_QOS_0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_options() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    // QoS 1: stored before anyone subscribes, so it never also arrives as a live message.
    p.publish("rh", "kept", QoS::AtLeastOnce, true).await;
    let mut c = b.client(Opts::v5("c")).await;

    // 0: sent at every subscribe, re-subscribing included.
    for _ in 0..2 {
        subscribe_rh(&mut c, "rh", RetainHandling::SendAtSubscribe).await;
        assert_eq!(text(&c.recv_publish().await), "kept");
    }
    c.unsubscribe(&["rh"]).await;
    // 1: sent only when the subscription is new.
    subscribe_rh(&mut c, "rh", RetainHandling::SendIfNew).await;
    assert_eq!(text(&c.recv_publish().await), "kept");
    subscribe_rh(&mut c, "rh", RetainHandling::SendIfNew).await;
    // 2: never.
    c.unsubscribe(&["rh"]).await;
    subscribe_rh(&mut c, "rh", RetainHandling::DoNotSend).await;
    // Neither of the last two subscribes sent anything: the next message is a live one.
    p.publish("rh", "live", QoS::AtMostOnce, false).await;
    assert_eq!(text(&c.recv_publish().await), "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published() {
    let b = TestBroker::start(config()).await;
    let mut c = b.client(Opts::v5("c")).await;
    let on = Subscription {
        retain_as_published: true,
        ..Subscription::new(filter("rap/on"), QoS::AtMostOnce)
    };
    let off = Subscription::new(filter("rap/off"), QoS::AtMostOnce);
    c.subscribe_with(vec![on, off], Properties::default()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("rap/on", "r", QoS::AtMostOnce, true).await;
    p.publish("rap/on", "n", QoS::AtMostOnce, false).await;
    p.publish("rap/off", "r", QoS::AtMostOnce, true).await;
    let flags: Vec<(String, bool)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let m = c.recv_publish().await;
            v.push((
                format!("{}:{}", m.topic.as_ref().unwrap(), text(&m)),
                m.retain,
            ));
        }
        v
    };
    assert_eq!(
        flags,
        vec![
            ("rap/on:r".into(), true),
            ("rap/on:n".into(), false),
            ("rap/off:r".into(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_get_no_retained_messages() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("sh/ret", "kept", QoS::AtLeastOnce, true).await;
    let mut c = b.client(Opts::v5("c")).await;
    c.subscribe("$share/g/sh/ret", QoS::AtMostOnce).await;
    p.publish("sh/ret", "live", QoS::AtMostOnce, false).await;
    assert_eq!(text(&c.recv_publish().await), "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_expires() {
    let b = TestBroker::start(config()).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut m = message("ret/exp", "brief", QoS::AtLeastOnce, true);
    m.properties.message_expiry_interval = Some(1);
    p.publish_msg(m).await;
    let mut m = message("ret/keep", "long", QoS::AtLeastOnce, true);
    m.properties.message_expiry_interval = Some(100);
    p.publish_msg(m).await;

    let mut c = b.client(Opts::v5("c")).await;
    c.subscribe("ret/keep", QoS::AtLeastOnce).await;
    let got = c.recv_publish().await;
    let left = got.properties.message_expiry_interval.unwrap();
    assert!((99..=100).contains(&left), "expiry left: {left}");
    c.ack(&got).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(retained_for(&b, "ret/exp", "ret/exp").await, vec![]);
    // And it is dropped, not just hidden.
    let gone = tokio::time::timeout(common::WAIT, async {
        while b.broker.stats().retained != 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(gone.await.is_ok(), "expired retained message still counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_api_publishes_retained_messages() {
    let b = TestBroker::start(config()).await;
    let n = b.broker.publish(
        topic_name("api/ret"),
        Bytes::from_static(b"from the broker"),
        QoS::AtLeastOnce,
        true,
    );
    assert_eq!(n, 0);
    assert_eq!(
        retained_for(&b, "api/#", "api/m").await,
        vec![r("api/ret", "from the broker")]
    );
}
