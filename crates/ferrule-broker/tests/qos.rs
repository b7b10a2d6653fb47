//! Publish → subscribe at every QoS, in both protocol versions and across them.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{Opts, TestBroker, config, message, text};
use ferrule_mqtt::{Packet, ProtocolVersion, PubResp, QoS, ReasonCode};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn opts(v: ProtocolVersion, id: &str) -> Opts {
    match v {
        ProtocolVersion::V311 => Opts::v3(id),
        ProtocolVersion::V5 => Opts::v5(id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos_crosses_every_pair_of_versions() {
    let b = TestBroker::start(config()).await;
    for pub_v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for sub_v in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let mut sub = b.client(opts(sub_v, &format!("sub-{sub_v}-{pub_v}"))).await;
            sub.subscribe("t/qos", QoS::ExactlyOnce).await;
            let mut publ = b.client(opts(pub_v, &format!("pub-{sub_v}-{pub_v}"))).await;
            for qos in QOS {
                let mut m = message(
                    "t/qos",
                    &format!("{pub_v} to {sub_v} at {qos:?}"),
                    qos,
                    false,
                );
                // v5 properties must not leak into a 3.1.1 packet: the payload would be off.
                m.properties.user_properties.push(("k".into(), "v".into()));
                m.properties.content_type = Some("text/plain".into());
                let reason = publ.publish_msg(m).await;
                assert_eq!(
                    reason,
                    (qos != QoS::AtMostOnce).then_some(ReasonCode::SUCCESS)
                );
                let got = sub.recv_publish().await;
                assert_eq!(text(&got), format!("{pub_v} to {sub_v} at {qos:?}"));
                assert_eq!(got.qos, qos);
                assert_eq!(got.packet_id.is_some(), qos != QoS::AtMostOnce);
                assert!(!got.dup && !got.retain);
                if sub_v == ProtocolVersion::V5 && pub_v == ProtocolVersion::V5 {
                    assert_eq!(
                        got.properties.user_properties,
                        vec![("k".to_owned(), "v".to_owned())]
                    );
                    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
                }
                sub.ack(&got).await;
            }
            publ.disconnect().await;
            sub.disconnect().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_inbound_handshake_delivers_once() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("q2/in", QoS::ExactlyOnce).await;
    let mut publ = b.client(Opts::v5("pub")).await;

    let mut m = message("q2/in", "once", QoS::ExactlyOnce, false);
    m.packet_id = Some(7);
    publ.send(Packet::Publish(m.clone())).await;
    match publ.recv().await {
        Packet::PubRec(r) => assert_eq!((r.packet_id, r.reason), (7, ReasonCode::SUCCESS)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // The publisher did not see the PUBREC and sends again with DUP: acknowledged, not re-routed.
    m.dup = true;
    publ.send(Packet::Publish(m)).await;
    match publ.recv().await {
        Packet::PubRec(r) => assert_eq!(r.packet_id, 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publ.send(Packet::PubRel(PubResp::new(7))).await;
    match publ.recv().await {
        Packet::PubComp(c) => assert_eq!((c.packet_id, c.reason), (7, ReasonCode::SUCCESS)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // A PUBREL for an id that is no longer pending is answered with "not found".
    publ.send(Packet::PubRel(PubResp::new(7))).await;
    match publ.recv().await {
        Packet::PubComp(c) => assert_eq!(c.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    let got = sub.recv_publish().await;
    assert_eq!((text(&got), got.qos), ("once", QoS::ExactlyOnce));
    sub.ack(&got).await;
    // The packet id is free again: the same id carries a new message.
    publ.publish("q2/in", "again", QoS::ExactlyOnce, false)
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(text(&got), "again");
    sub.ack(&got).await;
    sub.expect_silence(std::time::Duration::from_millis(100))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_outbound_handshake_both_versions() {
    let b = TestBroker::start(config()).await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut sub = b.client(opts(v, &format!("sub-{v}"))).await;
        sub.subscribe("q2/out", QoS::ExactlyOnce).await;
        let mut publ = b.client(opts(v, &format!("pub-{v}"))).await;
        for i in 0..3 {
            publ.publish("q2/out", &format!("m{i}"), QoS::ExactlyOnce, false)
                .await;
            let got = sub.recv_publish().await;
            assert_eq!(
                (text(&got), got.qos),
                (format!("m{i}").as_str(), QoS::ExactlyOnce)
            );
            let id = got.packet_id.unwrap();
            sub.send(Packet::PubRec(PubResp::new(id))).await;
            match sub.recv().await {
                Packet::PubRel(r) => assert_eq!((r.packet_id, r.reason), (id, ReasonCode::SUCCESS)),
                other => panic!("expected PUBREL, got {other:?}"),
            }
            sub.send(Packet::PubComp(PubResp::new(id))).await;
        }
        sub.disconnect().await;
        publ.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_qos_is_the_lower_of_message_and_subscription() {
    let b = TestBroker::start(config()).await;
    let mut s0 = b.client(Opts::v5("s0")).await;
    s0.subscribe("dg", QoS::AtMostOnce).await;
    let mut s1 = b.client(Opts::v3("s1")).await;
    s1.subscribe("dg", QoS::AtLeastOnce).await;
    let mut s2 = b.client(Opts::v5("s2")).await;
    s2.subscribe("dg", QoS::ExactlyOnce).await;
    let mut publ = b.client(Opts::v5("pub")).await;

    for (qos, expect) in [
        (
            QoS::ExactlyOnce,
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce],
        ),
        (
            QoS::AtLeastOnce,
            [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::AtLeastOnce],
        ),
        (QoS::AtMostOnce, [QoS::AtMostOnce; 3]),
    ] {
        publ.publish("dg", "x", qos, false).await;
        for (sub, want) in [&mut s0, &mut s1, &mut s2].into_iter().zip(expect) {
            let got = sub.recv_publish().await;
            assert_eq!(got.qos, want, "message at {qos:?}");
            assert_eq!(got.packet_id.is_some(), want != QoS::AtMostOnce);
            sub.ack(&got).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("ov/+", QoS::AtMostOnce).await;
    sub.subscribe("ov/#", QoS::AtLeastOnce).await;
    sub.subscribe("ov/x", QoS::AtMostOnce).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    publ.publish("ov/x", "one", QoS::ExactlyOnce, false).await;
    publ.publish("ov/y", "two", QoS::AtMostOnce, false).await;
    let got = sub.recv_publish().await;
    assert_eq!((text(&got), got.qos), ("one", QoS::AtLeastOnce));
    sub.ack(&got).await;
    assert_eq!(text(&sub.recv_publish().await), "two");
    sub.expect_silence(std::time::Duration::from_millis(100))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_match_and_dollar_topics_stay_out_of_them() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v3("sub")).await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    sub.subscribe("a/+/c", QoS::AtMostOnce).await;
    let mut publ = b.client(Opts::v3("pub")).await;
    publ.publish("$SYS/x", "hidden", QoS::AtMostOnce, false)
        .await;
    publ.publish("a/b/c", "abc", QoS::AtMostOnce, false).await;
    publ.publish("a/b/c/d", "abcd", QoS::AtMostOnce, false)
        .await;
    assert_eq!(text(&sub.recv_publish().await), "abc");
    assert_eq!(text(&sub.recv_publish().await), "abcd");
    sub.expect_silence(std::time::Duration::from_millis(100))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_puback_says_when_nobody_subscribed() {
    let b = TestBroker::start(config()).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    assert_eq!(
        publ.publish("nobody", "x", QoS::AtLeastOnce, false).await,
        Some(ReasonCode::NO_MATCHING_SUBSCRIBERS)
    );
    assert_eq!(
        publ.publish("nobody", "x", QoS::ExactlyOnce, false).await,
        Some(ReasonCode::NO_MATCHING_SUBSCRIBERS)
    );
    let mut v3 = b.client(Opts::v3("v3")).await;
    assert_eq!(
        v3.publish("nobody", "x", QoS::AtLeastOnce, false).await,
        Some(ReasonCode::SUCCESS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_and_many_messages_arrive_in_order() {
    let b = TestBroker::start(config()).await;
    let mut sub = b.client(Opts::v5("sub")).await;
    sub.subscribe("bulk", QoS::AtLeastOnce).await;
    let mut publ = b.client(Opts::v5("pub")).await;
    let big = Bytes::from(vec![b'z'; 300_000]);
    let mut m = message("bulk", "", QoS::AtLeastOnce, false);
    m.payload = big.clone();
    publ.publish_msg(m).await;
    for i in 0..200 {
        publ.publish_only(message("bulk", &i.to_string(), QoS::AtLeastOnce, false))
            .await;
    }
    let got = sub.recv_publish().await;
    assert_eq!(got.payload, big);
    sub.ack(&got).await;
    for i in 0..200 {
        let got = sub.recv_publish().await;
        assert_eq!(text(&got), i.to_string());
        sub.ack(&got).await;
    }
}
