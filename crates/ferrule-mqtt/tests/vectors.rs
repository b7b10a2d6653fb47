//! Byte-exact vectors: packets as real clients send them and as the spec draws them, the
//! 3.1.1 code mappings, and what the encoder refuses.

use bytes::{Bytes, BytesMut};
use ferrule_mqtt::ProtocolVersion::{V5, V311};
use ferrule_mqtt::*;

fn decode_all(bytes: &[u8], v: ProtocolVersion) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, v, u32::MAX)
        .expect("valid")
        .expect("complete");
    assert!(buf.is_empty(), "one packet, nothing left");
    packet
}

fn encoded(packet: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, v, &mut buf).expect("encodable");
    buf.to_vec()
}

/// Decodes `bytes`, checks the result, and checks it encodes back to the same bytes.
fn both_ways(bytes: &[u8], v: ProtocolVersion, expected: Packet) {
    assert_eq!(decode_all(bytes, v), expected);
    assert_eq!(encoded(&expected, v), bytes);
}

fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("valid topic")
}

fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).expect("valid filter")
}

#[test]
fn mosquitto_pub_v311_session() {
    // mosquitto_pub -i mosq-client -t test -m hi -q 1
    let connect = b"\x10\x17\x00\x04MQTT\x04\x02\x00\x3c\x00\x0bmosq-client";
    both_ways(
        connect,
        V5, // before CONNECT the broker passes V5; CONNECT carries its own level.
        Packet::Connect(Connect {
            protocol: V311,
            clean_start: true,
            keep_alive: 60,
            client_id: "mosq-client".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }),
    );
    both_ways(
        b"\x20\x02\x00\x00",
        V311,
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
    );
    both_ways(
        b"\x32\x0a\x00\x04test\x00\x01hi",
        V311,
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Some(topic("test")),
            packet_id: Some(1),
            payload: Bytes::from_static(b"hi"),
            properties: Properties::default(),
        }),
    );
    both_ways(b"\x40\x02\x00\x01", V311, Packet::PubAck(PubResp::new(1)));
    both_ways(b"\xe0\x00", V311, Packet::Disconnect(Disconnect::default()));
}

#[test]
fn mosquitto_sub_v311_subscribe_and_suback() {
    both_ways(
        b"\x82\x09\x00\x01\x00\x04test\x01",
        V311,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![Subscription::new(filter("test"), QoS::AtLeastOnce)],
            properties: Properties::default(),
        }),
    );
    both_ways(
        b"\x90\x03\x00\x01\x01",
        V311,
        Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode::GRANTED_QOS_1],
            properties: Properties::default(),
        }),
    );
    both_ways(b"\xc0\x00", V311, Packet::PingReq);
    both_ways(b"\xd0\x00", V311, Packet::PingResp);
}

#[test]
fn mqtt_3_1_connect_decodes_as_v311() {
    let bytes = b"\x10\x13\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x05hello";
    let Packet::Connect(connect) = decode_all(bytes, V5) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, V311);
    assert_eq!(connect.client_id, "hello");
}

#[test]
fn v5_connect_after_the_spec_figure() {
    // The variable header of MQTT 5.0 figure 3-6 (level 5, keep alive 10, properties: session
    // expiry interval 10) with flags 0xC2 (user name, password, clean start; the figure also
    // sets a will), then client id, user name and password.
    let bytes = b"\x10\x1f\x00\x04MQTT\x05\xc2\x00\x0a\x05\x11\x00\x00\x00\x0a\x00\x03dev\x00\x04user\x00\x02pw";
    both_ways(
        bytes,
        V5,
        Packet::Connect(Connect {
            protocol: V5,
            clean_start: true,
            keep_alive: 10,
            client_id: "dev".into(),
            will: None,
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"pw")),
            properties: Properties {
                session_expiry_interval: Some(10),
                ..Properties::default()
            },
        }),
    );
}

#[test]
fn v5_connect_with_will_and_properties() {
    // As a client might order the properties; the encoder writes them by ascending identifier.
    let client_order: &[u8] = &[
        0x10, 0x2C, // CONNECT, remaining length 44
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, // protocol
        0x2E, // will retain, will QoS 1, will flag, clean start
        0x00, 0x1E, // keep alive 30
        0x08, 0x21, 0x00, 0x14, 0x22, 0x00, 0x0A, 0x17,
        0x01, // receive max 20, alias max 10, problem info 1
        0x00, 0x02, b'c', b'1', // client id
        0x07, 0x18, 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, // will delay 5, payload format 1
        0x00, 0x05, b'w', b'/', b'b', b'y', b'e', // will topic
        0x00, 0x04, b'g', b'o', b'n', b'e', // will payload
    ];
    let mut canonical = client_order.to_vec();
    canonical[13..21].copy_from_slice(&[0x17, 0x01, 0x21, 0x00, 0x14, 0x22, 0x00, 0x0A]);
    canonical[26..33].copy_from_slice(&[0x01, 0x01, 0x18, 0x00, 0x00, 0x00, 0x05]);
    let expected = decode_all(client_order, V5);
    both_ways(
        &canonical,
        V5,
        Packet::Connect(Connect {
            protocol: V5,
            clean_start: true,
            keep_alive: 30,
            client_id: "c1".into(),
            will: Some(Will {
                topic: topic("w/bye"),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties {
                    will_delay_interval: Some(5),
                    payload_format_indicator: Some(1),
                    ..Properties::default()
                },
            }),
            username: None,
            password: None,
            properties: Properties {
                receive_maximum: Some(20),
                topic_alias_maximum: Some(10),
                request_problem_information: Some(1),
                ..Properties::default()
            },
        }),
    );
    assert_eq!(decode_all(&canonical, V5), expected);
}

#[test]
fn v5_short_forms() {
    both_ways(b"\x40\x02\x00\x07", V5, Packet::PubAck(PubResp::new(7)));
    let no_subscribers = PubResp {
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..PubResp::new(7)
    };
    both_ways(
        b"\x40\x03\x00\x07\x10",
        V5,
        Packet::PubAck(no_subscribers.clone()),
    );
    // The long form with an explicit empty property block decodes to the same value.
    assert_eq!(
        decode_all(b"\x40\x04\x00\x07\x10\x00", V5),
        Packet::PubAck(no_subscribers)
    );
    assert_eq!(
        decode_all(b"\x50\x04\x00\x07\x00\x00", V5),
        Packet::PubRec(PubResp::new(7))
    );
    both_ways(b"\xe0\x00", V5, Packet::Disconnect(Disconnect::default()));
    both_ways(
        b"\xe0\x01\x04",
        V5,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::DISCONNECT_WITH_WILL,
            properties: Properties::default(),
        }),
    );
    both_ways(
        b"\xf0\x00",
        V5,
        Packet::Auth(Auth {
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
    );
    both_ways(
        b"\x20\x03\x01\x00\x00",
        V5,
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
    );
}

#[test]
fn v5_publish_with_topic_alias_only() {
    let bytes = b"\x30\x08\x00\x00\x03\x23\x00\x05hi";
    let properties = Properties {
        topic_alias: Some(5),
        ..Properties::default()
    };
    both_ways(
        bytes,
        V5,
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: None,
            packet_id: None,
            payload: Bytes::from_static(b"hi"),
            properties,
        }),
    );
}

#[test]
fn v311_connack_return_codes() {
    let cases = [
        (ReasonCode::SUCCESS, 0),
        (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode::SERVER_UNAVAILABLE, 3),
        (ReasonCode::SERVER_BUSY, 3),
        (ReasonCode::SERVER_SHUTTING_DOWN, 3),
        (ReasonCode::QUOTA_EXCEEDED, 3),
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode::NOT_AUTHORIZED, 5),
        (ReasonCode::BANNED, 5),
        (ReasonCode::BAD_AUTHENTICATION_METHOD, 5),
    ];
    for (reason, code) in cases {
        let packet = Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties: Properties::default(),
        });
        let bytes = encoded(&packet, V311);
        assert_eq!(bytes, [0x20, 0x02, 0x00, code], "{reason:?}");
        let Packet::ConnAck(back) = decode_all(&bytes, V311) else {
            panic!("not a CONNACK");
        };
        let canonical = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87][usize::from(code)];
        assert_eq!(back.reason, ReasonCode(canonical));
    }
}

#[test]
fn v311_drops_what_it_cannot_say() {
    let suback = Packet::SubAck(SubAck {
        packet_id: 3,
        reasons: vec![
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::QUOTA_EXCEEDED,
        ],
        properties: Properties {
            reason_string: Some("no".into()),
            ..Properties::default()
        },
    });
    assert_eq!(encoded(&suback, V311), b"\x90\x05\x00\x03\x02\x80\x80");
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 3,
        reasons: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
        properties: Properties::default(),
    });
    assert_eq!(encoded(&unsuback, V311), b"\xb0\x02\x00\x03");
    let puback = Packet::PubAck(PubResp {
        reason: ReasonCode::NOT_AUTHORIZED,
        ..PubResp::new(9)
    });
    assert_eq!(encoded(&puback, V311), b"\x40\x02\x00\x09");
    let disconnect = Packet::Disconnect(Disconnect {
        reason: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: Properties::default(),
    });
    assert_eq!(encoded(&disconnect, V311), b"\xe0\x00");
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![Subscription {
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
            ..Subscription::new(filter("a/+"), QoS::ExactlyOnce)
        }],
        properties: Properties::default(),
    });
    assert_eq!(
        encoded(&subscribe, V311),
        b"\x82\x08\x00\x01\x00\x03a/+\x02"
    );
    assert_eq!(
        encoded(&subscribe, V5),
        b"\x82\x09\x00\x01\x00\x00\x03a/+\x2e"
    );
}

#[test]
fn zero_copy_payload() {
    let mut buf = BytesMut::from(&b"\x30\x0b\x00\x04testhello\xc0\x00"[..]);
    let Some(Packet::Publish(publish)) = decode(&mut buf, V311, u32::MAX).expect("valid") else {
        panic!("not a PUBLISH");
    };
    assert_eq!(&publish.payload[..], b"hello");
    assert_eq!(decode(&mut buf, V311, u32::MAX), Ok(Some(Packet::PingReq)));
}

fn publish(qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Some(topic("t")),
        packet_id,
        payload: Bytes::new(),
        properties: Properties::default(),
    }
}

#[test]
fn encoder_refuses_invalid_packets() {
    let mut buf = BytesMut::new();
    let mut refuse = |packet: Packet, v: ProtocolVersion, expected: EncodeError| {
        assert_eq!(encode(&packet, v, &mut buf), Err(expected), "{packet:?}");
        assert!(buf.is_empty(), "nothing appended on error");
    };
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    });
    refuse(
        auth,
        V311,
        EncodeError::NotInVersion {
            kind: "AUTH",
            protocol: V311,
        },
    );
    refuse(
        Packet::Publish(publish(QoS::AtLeastOnce, None)),
        V5,
        EncodeError::PacketIdMismatch {
            qos: QoS::AtLeastOnce,
        },
    );
    refuse(
        Packet::Publish(publish(QoS::AtMostOnce, Some(1))),
        V5,
        EncodeError::PacketIdMismatch {
            qos: QoS::AtMostOnce,
        },
    );
    refuse(
        Packet::Publish(publish(QoS::ExactlyOnce, Some(0))),
        V5,
        EncodeError::ZeroPacketId { kind: "PUBLISH" },
    );
    refuse(
        Packet::Publish(Publish {
            dup: true,
            ..publish(QoS::AtMostOnce, None)
        }),
        V5,
        EncodeError::Invalid("DUP set on a QoS 0 PUBLISH"),
    );
    refuse(
        Packet::Publish(Publish {
            topic: None,
            ..publish(QoS::AtMostOnce, None)
        }),
        V5,
        EncodeError::MissingTopic,
    );
    let mut aliased = Publish {
        topic: None,
        ..publish(QoS::AtMostOnce, None)
    };
    aliased.properties.topic_alias = Some(1);
    refuse(Packet::Publish(aliased), V311, EncodeError::MissingTopic);
    let mut not_allowed = publish(QoS::AtMostOnce, None);
    not_allowed.properties.session_expiry_interval = Some(1);
    refuse(
        Packet::Publish(not_allowed),
        V5,
        EncodeError::PropertyNotAllowed {
            id: 0x11,
            kind: "PUBLISH",
        },
    );
    let huge = Publish {
        payload: Bytes::from(vec![0u8; MAX_REMAINING_LENGTH]),
        ..publish(QoS::AtMostOnce, None)
    };
    refuse(
        Packet::Publish(huge),
        V311,
        EncodeError::PacketTooLarge {
            len: MAX_REMAINING_LENGTH + 3,
        },
    );
    let connect = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 0,
        client_id: "x".repeat(70_000),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    refuse(
        Packet::Connect(connect.clone()),
        V311,
        EncodeError::FieldTooLong {
            what: "client identifier",
            len: 70_000,
        },
    );
    let password_only = Connect {
        client_id: "c".into(),
        password: Some(Bytes::from_static(b"pw")),
        ..connect
    };
    refuse(
        Packet::Connect(password_only.clone()),
        V311,
        EncodeError::Invalid("MQTT 3.1.1 CONNECT with a password needs a user name"),
    );
    assert!(
        encode(
            &Packet::Connect(Connect {
                protocol: V5,
                ..password_only
            }),
            V5,
            &mut BytesMut::new()
        )
        .is_ok()
    );
    refuse(
        Packet::PubAck(PubResp::new(0)),
        V311,
        EncodeError::ZeroPacketId { kind: "PUBACK" },
    );
    refuse(
        Packet::PubRel(PubResp {
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ..PubResp::new(1)
        }),
        V5,
        EncodeError::InvalidReasonCode {
            kind: "PUBREL",
            code: 0x10,
        },
    );
    refuse(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![],
            properties: Properties::default(),
        }),
        V5,
        EncodeError::EmptyList { kind: "SUBSCRIBE" },
    );
    let shared_no_local = Subscription {
        no_local: true,
        ..Subscription::new(filter("$share/g/a"), QoS::AtMostOnce)
    };
    refuse(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![shared_no_local],
            properties: Properties::default(),
        }),
        V5,
        EncodeError::Invalid("no local must not be set on a shared subscription"),
    );
    refuse(
        Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode(0x05)],
            properties: Properties::default(),
        }),
        V311,
        EncodeError::InvalidReasonCode {
            kind: "SUBACK",
            code: 5,
        },
    );
    refuse(
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::BANNED,
            properties: Properties::default(),
        }),
        V5,
        EncodeError::Invalid("CONNACK with an error must not set session present"),
    );
    let two_ids = Properties {
        subscription_identifiers: vec![1, 2],
        ..Properties::default()
    };
    refuse(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![Subscription::new(filter("a"), QoS::AtMostOnce)],
            properties: two_ids,
        }),
        V5,
        EncodeError::InvalidPropertyValue(0x0B),
    );
    let long_reason = Properties {
        reason_string: Some("r".repeat(65_536)),
        ..Properties::default()
    };
    refuse(
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::UNSPECIFIED_ERROR,
            properties: long_reason,
        }),
        V5,
        EncodeError::FieldTooLong {
            what: "Reason String",
            len: 65_536,
        },
    );
}

#[test]
fn encode_appends() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    encode(&Packet::PingReq, V311, &mut buf).expect("encodable");
    assert_eq!(&buf[..], b"xy\xc0\x00");
    assert_eq!(encoded_len(&Packet::PingReq, V311), 2);
}

#[test]
fn packet_kinds() {
    assert_eq!(Packet::PingReq.kind(), "PINGREQ");
    assert_eq!(Packet::PubRel(PubResp::new(1)).kind(), "PUBREL");
    assert_eq!(Packet::Disconnect(Disconnect::default()).packet_type(), 14);
}
