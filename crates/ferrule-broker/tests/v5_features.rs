//! MQTT 5 features: topic aliases, flow control, packet size, message expiry, subscription
//! identifiers, no-local, shared subscriptions, request/response properties, reason strings.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Client, Opts, TestBroker, config, filter, message, text};
use ferrule_broker::BrokerConfig;
use ferrule_mqtt::{Packet, Properties, Publish, QoS, ReasonCode, Subscription};

fn aliased(topic: Option<&str>, alias: u16, payload: &str) -> Publish {
    let mut m = message(topic.unwrap_or("x"), payload, QoS::AtMostOnce, false);
    if topic.is_none() {
        m.topic = None;
    }
    m.properties.topic_alias = Some(alias);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_set_then_used_alone() {
    let b = TestBroker::start(BrokerConfig {
        topic_alias_maximum: 2,
        ..config()
    })
    .await;
    let mut sub = b.client(Opts::v3("sub")).await;
    sub.subscribe("alias/#", QoS::AtMostOnce).await;
    let (mut p, ack) = Client::connect(b.addr, Opts::v5("pub")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(2));

    p.publish_msg(aliased(Some("alias/one"), 1, "set")).await;
    p.publish_msg(aliased(None, 1, "used")).await;
    p.publish_msg(aliased(Some("alias/two"), 1, "moved")).await;
    p.publish_msg(aliased(None, 1, "used again")).await;
    for (topic, payload) in [
        ("alias/one", "set"),
        ("alias/one", "used"),
        ("alias/two", "moved"),
        ("alias/two", "used again"),
    ] {
        let m = sub.recv_publish().await;
        assert_eq!(
            (m.topic.as_ref().unwrap().as_str(), text(&m)),
            (topic, payload)
        );
    }

    // Above the maximum: DISCONNECT 0x94 with a reason string.
    p.publish_only(aliased(Some("alias/three"), 3, "too high"))
        .await;
    let d = p.expect_closed().await.expect("DISCONNECT");
    assert_eq!(d.reason, ReasonCode::TOPIC_ALIAS_INVALID);
    assert!(d.properties.reason_string.is_some_and(|s| !s.is_empty()));

    // An alias that was never set is a protocol error.
    let mut p = b.client(Opts::v5("pub2")).await;
    p.publish_only(aliased(None, 2, "unknown")).await;
    assert_eq!(p.expect_disconnect().await, ReasonCode::PROTOCOL_ERROR);
    sub.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_are_refused_when_the_maximum_is_zero() {
    let b = TestBroker::start(BrokerConfig {
        topic_alias_maximum: 0,
        ..config()
    })
    .await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish_only(aliased(Some("a"), 1, "no")).await;
    assert_eq!(p.expect_disconnect().await, ReasonCode::TOPIC_ALIAS_INVALID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_in_flight_than_the_clients_receive_maximum() {
    let b = TestBroker::start(config()).await;
    let mut sub = b
        .client(Opts::v5("slow").props(|p| p.receive_maximum = Some(2)))
        .await;
    sub.subscribe("rm", QoS::ExactlyOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    for i in 0..6 {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        p.publish("rm", &i.to_string(), qos, false).await;
    }
    let mut unacked = vec![sub.recv_publish().await, sub.recv_publish().await];
    for next in 2..6 {
        // The window is full: nothing more until something is acknowledged.
        sub.expect_silence(Duration::from_millis(150)).await;
        let done = unacked.remove(0);
        sub.ack(&done).await;
        let m = sub.recv_publish().await;
        assert_eq!(text(&m), next.to_string());
        unacked.push(m);
    }
    for m in unacked {
        sub.ack(&m).await;
    }
    sub.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_clients_maximum_packet_size_are_dropped() {
    let b = TestBroker::start(config()).await;
    let mut sub = b
        .client(Opts::v5("small").props(|p| p.maximum_packet_size = Some(128)))
        .await;
    sub.subscribe("mps", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("mps", &"x".repeat(200), QoS::AtLeastOnce, false)
        .await;
    p.publish("mps", "fits", QoS::AtLeastOnce, false).await;
    let m = sub.recv_publish().await;
    assert_eq!(text(&m), "fits");
    sub.ack(&m).await;
    // The dropped message does not hold a slot in the window either.
    let mut sub1 = b
        .client(Opts::v5("tiny").props(|p| {
            p.maximum_packet_size = Some(128);
            p.receive_maximum = Some(1);
        }))
        .await;
    sub1.subscribe("mps1", QoS::AtLeastOnce).await;
    p.publish("mps1", &"x".repeat(200), QoS::AtLeastOnce, false)
        .await;
    p.publish("mps1", "after", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&sub1.recv_publish().await), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_queued_messages_are_not_delivered_and_others_count_down() {
    let b = TestBroker::start(config()).await;
    let opts = Opts::v5("exp").clean(false).expiry(60);
    let mut sub = b.client(opts.clone()).await;
    sub.subscribe("exp", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut short = message("exp", "short", QoS::AtLeastOnce, false);
    short.properties.message_expiry_interval = Some(1);
    p.publish_msg(short).await;
    let mut long = message("exp", "long", QoS::AtLeastOnce, false);
    long.properties.message_expiry_interval = Some(10);
    p.publish_msg(long).await;
    p.publish("exp", "forever", QoS::AtLeastOnce, false).await;

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut sub = b.client(opts).await;
    let m = sub.recv_publish().await;
    assert_eq!(text(&m), "long");
    let left = m.properties.message_expiry_interval.unwrap();
    assert!(
        (1..=9).contains(&left),
        "expiry should count down from 10, is {left}"
    );
    sub.ack(&m).await;
    let m = sub.recv_publish().await;
    assert_eq!(
        (text(&m), m.properties.message_expiry_interval),
        ("forever", None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifiers_are_delivered() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("ids")).await;
    let with_id = |id: u32| Properties {
        subscription_identifiers: vec![id],
        ..Properties::default()
    };
    sub.subscribe_with(
        vec![Subscription::new(filter("si/+"), QoS::AtMostOnce)],
        with_id(5),
    )
    .await;
    sub.subscribe_with(
        vec![Subscription::new(filter("si/#"), QoS::AtMostOnce)],
        with_id(700),
    )
    .await;
    sub.subscribe("si/none", QoS::AtMostOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    p.publish("si/x", "both", QoS::AtMostOnce, true).await;
    p.publish("si/x/y", "one", QoS::AtMostOnce, false).await;
    let mut m = sub.recv_publish().await;
    m.properties.subscription_identifiers.sort();
    assert_eq!(
        (text(&m), &m.properties.subscription_identifiers[..]),
        ("both", &[5, 700][..])
    );
    let m = sub.recv_publish().await;
    assert_eq!(
        (text(&m), &m.properties.subscription_identifiers[..]),
        ("one", &[700][..])
    );

    // Retained messages sent at subscribe carry the new subscription's identifier.
    let mut late = b.client(Opts::v5("late")).await;
    late.subscribe_with(
        vec![Subscription::new(filter("si/x"), QoS::AtMostOnce)],
        with_id(9),
    )
    .await;
    let m = late.recv_publish().await;
    assert_eq!(m.properties.subscription_identifiers, vec![9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_hides_a_clients_own_messages() {
    let b = TestBroker::start(config()).await;
    let mut me = b.client(Opts::v5("me")).await;
    let sub = Subscription {
        no_local: true,
        ..Subscription::new(filter("nl/#"), QoS::AtMostOnce)
    };
    me.subscribe_with(vec![sub], Properties::default()).await;
    let mut echo = b.client(Opts::v5("echo")).await;
    echo.subscribe("nl/#", QoS::AtMostOnce).await;
    // QoS 1 throughout: each message is routed before the next is sent, so the order is fixed.
    me.publish("nl/a", "mine", QoS::AtLeastOnce, false).await;
    let mut other = b.client(Opts::v5("other")).await;
    other
        .publish("nl/a", "theirs", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&me.recv_publish().await), "theirs");
    // Without no-local a client does get its own messages.
    assert_eq!(text(&echo.recv_publish().await), "mine");
    echo.publish("nl/b", "echoed", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(text(&echo.recv_publish().await), "theirs");
    assert_eq!(text(&echo.recv_publish().await), "echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_deliver_each_message_once_per_group() {
    let b = TestBroker::start(config()).await;
    let mut g1 = b.client(Opts::v5("g1")).await;
    let mut g2 = b.client(Opts::v3("g2")).await;
    let mut h1 = b.client(Opts::v5("h1")).await;
    let mut plain = b.client(Opts::v5("plain")).await;
    g1.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
    g2.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
    h1.subscribe("$share/h/jobs/#", QoS::AtLeastOnce).await;
    plain.subscribe("jobs/+", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    const N: usize = 20;
    for i in 0..N {
        p.publish(
            &format!("jobs/{i}"),
            &i.to_string(),
            QoS::AtLeastOnce,
            false,
        )
        .await;
    }
    // The marker goes to everyone, so whatever a member got before it is all it gets.
    let mut group = Vec::new();
    let mut counts = Vec::new();
    for c in [&mut g1, &mut g2] {
        c.unsubscribe(&["$share/g/jobs/+"]).await;
        c.subscribe("done", QoS::AtMostOnce).await;
    }
    p.publish("done", "", QoS::AtMostOnce, false).await;
    for c in [&mut g1, &mut g2] {
        let mut n = 0;
        loop {
            let m = c.recv_publish().await;
            if m.topic.as_ref().unwrap().as_str() == "done" {
                break;
            }
            c.ack(&m).await;
            group.push(text(&m).parse::<usize>().unwrap());
            n += 1;
        }
        counts.push(n);
    }
    group.sort();
    assert_eq!(
        group,
        (0..N).collect::<Vec<_>>(),
        "each message to exactly one member of g"
    );
    assert!(
        counts.iter().all(|&n| n > 0),
        "one member got everything: {counts:?}"
    );
    for c in [&mut h1, &mut plain] {
        for i in 0..N {
            let m = c.recv_publish().await;
            assert_eq!(text(&m), i.to_string());
            c.ack(&m).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_skips_members_that_left() {
    let b = TestBroker::start(config()).await;
    let mut stay = b.client(Opts::v5("stay")).await;
    stay.subscribe("$share/g/s", QoS::AtLeastOnce).await;
    let mut leave = b.client(Opts::v5("leave")).await;
    leave.subscribe("$share/g/s", QoS::AtLeastOnce).await;
    leave.disconnect().await;
    b.wait_sessions(1).await;
    let mut p = b.client(Opts::v5("pub")).await;
    for i in 0..4 {
        p.publish("s", &i.to_string(), QoS::AtLeastOnce, false)
            .await;
    }
    for i in 0..4 {
        let m = stay.recv_publish().await;
        assert_eq!(text(&m), i.to_string());
        stay.ack(&m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_properties_pass_through() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("rr", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut m = message("rr", "{\"q\":1}", QoS::AtLeastOnce, false);
    m.properties.user_properties = vec![
        ("a".into(), "1".into()),
        ("a".into(), "2".into()),
        ("b".into(), "".into()),
    ];
    m.properties.response_topic = Some("rr/reply".into());
    m.properties.correlation_data = Some(Bytes::from_static(&[0, 1, 2, 255]));
    m.properties.content_type = Some("application/json".into());
    m.properties.payload_format_indicator = Some(1);
    let sent = m.properties.clone();
    p.publish_msg(m).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.properties, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_not_matching_its_format_indicator_is_refused() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("pf", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut m = message("pf", "", QoS::AtLeastOnce, false);
    m.payload = Bytes::from_static(&[0xff, 0xfe]);
    m.properties.payload_format_indicator = Some(1);
    assert_eq!(
        p.publish_msg(m).await,
        Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
    );
    p.publish("pf", "fine", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&sub.recv_publish().await), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscriptions_carry_a_reason_string_unless_asked_not_to() {
    let b = TestBroker::start(BrokerConfig {
        max_topic_levels: 3,
        ..config()
    })
    .await;
    let subs = || {
        vec![
            Subscription::new(filter("ok/1"), QoS::AtLeastOnce),
            Subscription::new(filter("a/b/c/d"), QoS::AtMostOnce),
        ]
    };
    let mut c = b.client(Opts::v5("c")).await;
    let ack = c.subscribe_with(subs(), Properties::default()).await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID]
    );
    assert!(
        ack.properties
            .reason_string
            .is_some_and(|s| s.contains("a/b/c/d"))
    );

    let mut quiet = b
        .client(Opts::v5("quiet").props(|p| p.request_problem_information = Some(0)))
        .await;
    let ack = quiet.subscribe_with(subs(), Properties::default()).await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID]
    );
    assert_eq!(ack.properties.reason_string, None);

    // A reason string that would make the SUBACK larger than the client accepts is left out.
    let mut small = b
        .client(Opts::v5("small").props(|p| p.maximum_packet_size = Some(16)))
        .await;
    let ack = small.subscribe_with(subs(), Properties::default()).await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID]
    );
    assert_eq!(ack.properties.reason_string, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_reports_each_filter_and_stops_delivery() {
    let b = TestBroker::start(config()).await;
    let mut c = b.client(Opts::v5("c")).await;
    c.subscribe("un/a", QoS::AtMostOnce).await;
    c.subscribe("un/b", QoS::AtMostOnce).await;
    let ack = c.unsubscribe(&["un/a", "un/never"]).await;
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
    let mut p = b.client(Opts::v5("p")).await;
    p.publish("un/a", "gone", QoS::AtMostOnce, false).await;
    p.publish("un/b", "kept", QoS::AtMostOnce, false).await;
    assert_eq!(text(&c.recv_publish().await), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_announces_the_brokers_limits() {
    let cfg = BrokerConfig {
        max_inflight: 10,
        max_packet_size: 4096,
        max_session_expiry: 100,
        ..config()
    };
    let b = TestBroker::start(cfg).await;
    let (_c, ack) = Client::connect(b.addr, Opts::v5("c").expiry(1000)).await;
    assert_eq!(ack.properties.receive_maximum, Some(10));
    assert_eq!(ack.properties.maximum_packet_size, Some(4096));
    assert_eq!(ack.properties.session_expiry_interval, Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_enforces_its_own_receive_maximum_for_qos2() {
    let b = TestBroker::start(BrokerConfig {
        max_inflight: 2,
        ..config()
    })
    .await;
    let mut p = b.client(Opts::v5("greedy")).await;
    for _ in 0..3 {
        p.publish_only(message("rm2", "x", QoS::ExactlyOnce, false))
            .await;
    }
    // Two PUBRECs, then DISCONNECT 0x93 for the third.
    let mut recs = 0;
    loop {
        match p.recv().await {
            Packet::PubRec(_) => recs += 1,
            Packet::Disconnect(d) => {
                assert_eq!(d.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(recs, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_expired_in_flight_does_not_block_the_window() {
    let b = TestBroker::start(config()).await;
    let opts = Opts::v5("window")
        .clean(false)
        .expiry(60)
        .props(|p| p.receive_maximum = Some(1));
    let mut sub = b.client(opts.clone()).await;
    sub.subscribe("win", QoS::AtLeastOnce).await;
    let mut p = b.client(Opts::v5("pub")).await;
    let mut brief = message("win", "brief", QoS::AtLeastOnce, false);
    brief.properties.message_expiry_interval = Some(1);
    p.publish_msg(brief).await;
    p.publish("win", "next", QoS::AtLeastOnce, false).await;
    assert_eq!(text(&sub.recv_publish().await), "brief");
    // Gone without acknowledging; back after the in-flight message expired.
    drop(sub);
    b.wait_connections(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sub = b.client(opts).await;
    let m = sub.recv_publish().await;
    assert_eq!((text(&m), m.dup), ("next", false));
}
