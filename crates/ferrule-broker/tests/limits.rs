//! Limits and bad input: each closes (or refuses) one connection, with the right reason, while
//! everyone else carries on.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{Client, Opts, TestBroker, config, filter, message, text, will};
use ferrule_broker::BrokerConfig;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, QoS, ReasonCode, Subscription, encode};

/// A client that stays subscribed to `#` through a test and must keep getting messages.
struct Bystander {
    sub: Client,
    publ: Client,
}

impl Bystander {
    async fn new(b: &TestBroker) -> Bystander {
        let mut sub = b.client(Opts::v5("bystander-sub")).await;
        sub.subscribe("still/#", QoS::AtLeastOnce).await;
        let publ = b.client(Opts::v3("bystander-pub")).await;
        Bystander { sub, publ }
    }

    async fn check(&mut self, round: &str) {
        self.publ
            .publish("still/here", round, QoS::AtLeastOnce, false)
            .await;
        let m = self.sub.recv_publish().await;
        assert_eq!(text(&m), round);
        self.sub.ack(&m).await;
    }
}

fn encoded(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf).unwrap();
    buf.to_vec()
}

/// A PUBLISH whose topic "ab" is replaced by the invalid UTF-8 bytes C3 28.
fn publish_with_bad_utf8(v: ProtocolVersion) -> Vec<u8> {
    let mut bytes = encoded(
        &Packet::Publish(message("ab", "x", QoS::AtMostOnce, false)),
        v,
    );
    assert_eq!(&bytes[2..6], b"\x00\x02ab");
    bytes[4..6].copy_from_slice(&[0xC3, 0x28]);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_only_their_connection() {
    let b = TestBroker::start(config()).await;
    let mut by = Bystander::new(&b).await;
    let cases: Vec<(&str, Vec<u8>, ReasonCode)> = vec![
        (
            "remaining length of five bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PINGREQ with reserved flags set",
            vec![0xC1, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "SUBSCRIBE with flags 0000",
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PUBLISH at QoS 3",
            vec![0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "topic that is not UTF-8",
            publish_with_bad_utf8(ProtocolVersion::V5),
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "reserved packet type 0",
            vec![0x00, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "PUBLISH with a wildcard topic",
            encoded(
                &Packet::Publish(message("ab", "x", QoS::AtMostOnce, false)),
                ProtocolVersion::V5,
            )
            .into_iter()
            .map(|c| if c == b'b' { b'+' } else { c })
            .collect(),
            ReasonCode::TOPIC_NAME_INVALID,
        ),
        (
            "CONNACK from a client",
            vec![0x20, 0x03, 0x00, 0x00, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        let mut c = b.client(Opts::v5(&format!("bad-{i}"))).await;
        c.send_raw(&bytes).await;
        let d = c
            .expect_closed()
            .await
            .unwrap_or_else(|| panic!("{what}: closed without DISCONNECT"));
        assert_eq!(d.reason, reason, "{what}");
        assert!(
            d.properties.reason_string.is_some(),
            "{what}: no reason string"
        );
        by.check(what).await;
    }
    // MQTT 3.1.1 has no DISCONNECT from the server: the connection just closes.
    for (i, bytes) in [
        vec![0xC1, 0x00],
        publish_with_bad_utf8(ProtocolVersion::V311),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = b.client(Opts::v3(&format!("bad3-{i}"))).await;
        c.send_raw(&bytes).await;
        assert!(c.expect_closed().await.is_none());
        by.check(&format!("v3 case {i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let b = TestBroker::start(config()).await;
    let mut c = b.client(Opts::v5("c")).await;
    let sub = Subscription::new(filter("$share/g/t"), QoS::AtMostOnce);
    let subscribe = ferrule_mqtt::Subscribe {
        packet_id: 1,
        filters: vec![sub],
        properties: Properties::default(),
    };
    // Our encoder refuses to write it, so set the no-local bit of the options byte by hand.
    let mut bytes = encoded(&Packet::Subscribe(subscribe), ProtocolVersion::V5);
    *bytes.last_mut().unwrap() |= 0b100;
    c.send_raw(&bytes).await;
    assert_eq!(c.expect_disconnect().await, ReasonCode::PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_connect_is_closed() {
    let b = TestBroker::start(config()).await;
    let mut by = Bystander::new(&b).await;
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x10, 0x04, 0x00, 0x02, b'X', b'X'],
        &[0xFF; 8],
    ] {
        let mut c = Client::tcp(b.addr).await;
        c.send_raw(bytes).await;
        assert!(c.expect_closed().await.is_none());
    }
    by.check("after garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_connect_is_dropped() {
    let b = TestBroker::start(BrokerConfig {
        connect_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut c = Client::tcp(b.addr).await;
    assert!(c.expect_closed().await.is_none());
    // Half a CONNECT is no better.
    let mut c = Client::tcp(b.addr).await;
    c.send_raw(&[0x10, 0x20, 0x00]).await;
    assert!(c.expect_closed().await.is_none());
    b.wait_connections(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_above_the_maximum_size_are_refused() {
    let b = TestBroker::start(BrokerConfig {
        max_packet_size: 1024,
        ..config()
    })
    .await;
    let mut by = Bystander::new(&b).await;
    let (mut c, ack) = Client::connect(b.addr, Opts::v5("big")).await;
    assert_eq!(ack.properties.maximum_packet_size, Some(1024));
    c.publish("fits", &"x".repeat(900), QoS::AtLeastOnce, false)
        .await;
    c.publish_only(message("big", &"x".repeat(2000), QoS::AtLeastOnce, false))
        .await;
    assert_eq!(c.expect_disconnect().await, ReasonCode::PACKET_TOO_LARGE);
    by.check("after a large packet").await;

    // The size is judged from the fixed header: the broker does not wait for the body.
    let mut c = b.client(Opts::v5("announced")).await;
    c.send_raw(&[0x30, 0x80, 0x80, 0x04]).await;
    assert_eq!(c.expect_disconnect().await, ReasonCode::PACKET_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_length_and_depth_limits() {
    let b = TestBroker::start(BrokerConfig {
        max_topic_length: 16,
        max_topic_levels: 3,
        ..config()
    })
    .await;
    let mut by = Bystander::new(&b).await;
    let too_long = "a".repeat(17);
    for topic in [too_long.as_str(), "a/b/c/d"] {
        let mut c = b.client(Opts::v5("p")).await;
        c.publish_only(message(topic, "x", QoS::AtLeastOnce, false))
            .await;
        let d = c.expect_closed().await.expect("DISCONNECT");
        assert_eq!(d.reason, ReasonCode::TOPIC_NAME_INVALID, "{topic}");
        assert!(d.properties.reason_string.is_some());

        let mut s = b.client(Opts::v5("s")).await;
        let ack = s
            .subscribe_with(
                vec![Subscription::new(filter(topic), QoS::AtMostOnce)],
                Properties::default(),
            )
            .await;
        assert_eq!(ack.reasons, vec![ReasonCode::TOPIC_FILTER_INVALID]);
        let mut s3 = b.client(Opts::v3("s3")).await;
        let ack = s3
            .subscribe_with(
                vec![Subscription::new(filter(topic), QoS::AtMostOnce)],
                Properties::default(),
            )
            .await;
        assert_eq!(
            ack.reasons,
            vec![ReasonCode::UNSPECIFIED_ERROR],
            "3.1.1 SUBACK failure is 0x80"
        );
    }
    // A shared subscription's `$share/group/` prefix does not count against the limits.
    let mut s = b.client(Opts::v5("shared")).await;
    s.subscribe("$share/group/a/b/c", QoS::AtMostOnce).await;

    // A will topic over the limit refuses the connection.
    let (mut c, ack) = Client::connect(
        b.addr,
        Opts::v5("w").will(will(&too_long, "x", QoS::AtMostOnce, false)),
    )
    .await;
    assert_eq!(ack.reason, ReasonCode::TOPIC_NAME_INVALID);
    assert!(ack.properties.reason_string.is_some());
    assert!(c.expect_closed().await.is_none());
    by.check("after topic limits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_as_busy() {
    let b = TestBroker::start(BrokerConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let first = b.client(Opts::v5("one")).await;
    let mut second = b.client(Opts::v3("two")).await;
    let (mut c, ack) = Client::connect(b.addr, Opts::v5("three")).await;
    assert_eq!(ack.reason, ReasonCode::SERVER_BUSY);
    assert!(ack.properties.reason_string.is_some());
    assert!(c.expect_closed().await.is_none());
    let (mut c, ack) = Client::connect(b.addr, Opts::v3("three")).await;
    assert_eq!(
        ack.reason,
        ReasonCode::SERVER_UNAVAILABLE,
        "3.1.1 return code 3"
    );
    assert!(c.expect_closed().await.is_none());
    // The refused ones were not counted; the ones in are unaffected.
    second.ping().await;
    first.disconnect().await;
    b.wait_connections(1).await;
    b.client(Opts::v5("three")).await.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_levels() {
    let b = TestBroker::start(config()).await;
    for level in [3u8, 6, 0] {
        // "MQTT" at level 3 is wrong too: 3.1 called itself "MQIsdp".
        let mut connect = vec![0x10, 0, 0x00, 0x04, b'M', b'Q', b'T', b'T'];
        connect.extend_from_slice(&[level, 0x02, 0x00, 0x1E, 0x00, 0x01, b'c']);
        connect[1] = (connect.len() - 2) as u8;
        let mut c = Client::tcp(b.addr).await;
        c.protocol = ProtocolVersion::V311;
        c.send_raw(&connect).await;
        match c.recv().await {
            Packet::ConnAck(ack) => assert_eq!(
                ack.reason,
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                "level {level}"
            ),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        assert!(c.expect_closed().await.is_none());
    }
    // A wrong protocol name is not answered at all.
    let mut c = Client::tcp(b.addr).await;
    c.send_raw(&[
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'X', b'X', 0x04, 0x02, 0x00, 0x1E, 0x00, 0x01, b'c',
    ])
    .await;
    assert!(c.expect_closed().await.is_none());

    // MQTT 3.1 ("MQIsdp", level 3) is spoken as 3.1.1.
    let mut c = Client::tcp(b.addr).await;
    c.protocol = ProtocolVersion::V311;
    let mut connect = vec![0x10, 0x11, 0x00, 0x06];
    connect.extend_from_slice(b"MQIsdp");
    connect.extend_from_slice(&[0x03, 0x02, 0x00, 0x1E, 0x00, 0x03, b'o', b'l', b'd']);
    c.send_raw(&connect).await;
    assert!(matches!(c.recv().await, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS));
    c.subscribe("old", QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_authentication_is_refused_with_a_reason() {
    let b = TestBroker::start(config()).await;
    let opts = Opts::v5("scram").props(|p| p.authentication_method = Some("SCRAM-SHA-1".into()));
    let (mut c, ack) = Client::connect(b.addr, opts).await;
    assert_eq!(ack.reason, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert!(ack.properties.reason_string.is_some());
    assert!(c.expect_closed().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_come_and_go() {
    let b = TestBroker::start(config()).await;
    let mut by = Bystander::new(&b).await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let opts = if i % 2 == 0 {
            Opts::v5(&format!("c{i}"))
        } else {
            Opts::v3(&format!("c{i}"))
        };
        clients.push(b.client(opts).await);
    }
    assert_eq!(b.broker.stats().connections, 102);
    for (i, c) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            c.disconnect().await;
        } else {
            drop(c);
        }
    }
    b.wait_connections(2).await;
    b.wait_sessions(2).await;
    by.check("after the crowd").await;
}
