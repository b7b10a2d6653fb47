//! Strategies for arbitrary valid packets of either protocol version.

#![allow(dead_code, unreachable_pub)]

use bytes::{Bytes, BytesMut};
use ferrule_mqtt::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

pub fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,8}"
}

pub fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(
        prop::sample::select(vec!["a", "b", "", "$x", "dé", "sensor"]),
        1..4,
    )
    .prop_filter_map("empty topic", |levels| {
        TopicName::new(levels.join("/")).ok()
    })
}

pub fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    (
        vec(prop::sample::select(vec!["a", "b", "", "+", "$x"]), 1..4),
        any::<bool>(),
        option::weighted(0.2, "[a-z]{1,3}"),
    )
        .prop_filter_map("invalid filter", |(levels, hash, share)| {
            let mut filter = levels.join("/");
            if hash {
                filter.push_str("/#");
            }
            if let Some(group) = share {
                filter = format!("$share/{group}/{filter}");
            }
            TopicFilter::new(filter).ok()
        })
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    option::of(0u8..=1)
}

fn non_zero_u16() -> impl Strategy<Value = Option<u16>> {
    option::of(1u16..)
}

/// Every property set to something valid or absent, regardless of packet type.
pub fn all_properties() -> impl Strategy<Value = Properties> {
    let message = (
        flag(),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(topic_name().prop_map(|t| t.as_str().to_owned())),
        option::of(binary()),
        vec(1..=MAX_SUBSCRIPTION_IDENTIFIER, 0..3),
        non_zero_u16(),
        option::of(any::<u32>()),
    );
    let session = (
        option::of(any::<u32>()),
        option::of(text()),
        option::of(any::<u16>()),
        option::of((text(), option::of(binary()))),
        flag(),
        flag(),
        option::of(text()),
        option::of(text()),
        option::of(text()),
    );
    let limits = (
        non_zero_u16(),
        option::of(any::<u16>()),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        option::of(1u32..),
        flag(),
        flag(),
        flag(),
    );
    (message, session, limits).prop_map(|(m, s, l)| {
        let (auth_method, auth_data) = match s.3 {
            Some((method, data)) => (Some(method), data),
            None => (None, None),
        };
        Properties {
            payload_format_indicator: m.0,
            message_expiry_interval: m.1,
            content_type: m.2,
            response_topic: m.3,
            correlation_data: m.4,
            subscription_identifiers: m.5,
            topic_alias: m.6,
            will_delay_interval: m.7,
            session_expiry_interval: s.0,
            assigned_client_identifier: s.1,
            server_keep_alive: s.2,
            authentication_method: auth_method,
            authentication_data: auth_data,
            request_problem_information: s.4,
            request_response_information: s.5,
            response_information: s.6,
            server_reference: s.7,
            reason_string: s.8,
            receive_maximum: l.0,
            topic_alias_maximum: l.1,
            maximum_qos: l.2,
            retain_available: l.3,
            user_properties: l.4,
            maximum_packet_size: l.5,
            wildcard_subscription_available: l.6,
            subscription_identifier_available: l.7,
            shared_subscription_available: l.8,
        }
    })
}

/// Keeps only the properties spec table 2.4 allows in `kind` ("will" for will properties).
pub fn restrict(p: Properties, kind: &str) -> Properties {
    let mut out = Properties {
        user_properties: p.user_properties.clone(),
        ..Properties::default()
    };
    let message = |out: &mut Properties, p: &Properties| {
        out.payload_format_indicator = p.payload_format_indicator;
        out.message_expiry_interval = p.message_expiry_interval;
        out.content_type.clone_from(&p.content_type);
        out.response_topic.clone_from(&p.response_topic);
        out.correlation_data.clone_from(&p.correlation_data);
    };
    match kind {
        "CONNECT" => {
            out.session_expiry_interval = p.session_expiry_interval;
            out.authentication_method = p.authentication_method;
            out.authentication_data = p.authentication_data;
            out.request_problem_information = p.request_problem_information;
            out.request_response_information = p.request_response_information;
            out.receive_maximum = p.receive_maximum;
            out.topic_alias_maximum = p.topic_alias_maximum;
            out.maximum_packet_size = p.maximum_packet_size;
        }
        "will" => {
            message(&mut out, &p);
            out.will_delay_interval = p.will_delay_interval;
        }
        "CONNACK" => {
            out.session_expiry_interval = p.session_expiry_interval;
            out.assigned_client_identifier = p.assigned_client_identifier;
            out.server_keep_alive = p.server_keep_alive;
            out.authentication_method = p.authentication_method;
            out.authentication_data = p.authentication_data;
            out.response_information = p.response_information;
            out.server_reference = p.server_reference;
            out.reason_string = p.reason_string;
            out.receive_maximum = p.receive_maximum;
            out.topic_alias_maximum = p.topic_alias_maximum;
            out.maximum_qos = p.maximum_qos;
            out.retain_available = p.retain_available;
            out.maximum_packet_size = p.maximum_packet_size;
            out.wildcard_subscription_available = p.wildcard_subscription_available;
            out.subscription_identifier_available = p.subscription_identifier_available;
            out.shared_subscription_available = p.shared_subscription_available;
        }
        "PUBLISH" => {
            message(&mut out, &p);
            out.subscription_identifiers = p.subscription_identifiers;
            out.topic_alias = p.topic_alias;
        }
        "SUBSCRIBE" => {
            out.subscription_identifiers = p.subscription_identifiers.into_iter().take(1).collect();
        }
        "UNSUBSCRIBE" => {}
        "DISCONNECT" => {
            out.session_expiry_interval = p.session_expiry_interval;
            out.server_reference = p.server_reference;
            out.reason_string = p.reason_string;
        }
        "AUTH" => {
            out.authentication_method = p.authentication_method;
            out.authentication_data = p.authentication_data;
            out.reason_string = p.reason_string;
        }
        // PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
        _ => out.reason_string = p.reason_string,
    }
    out
}

pub fn properties(v: ProtocolVersion, kind: &'static str) -> BoxedStrategy<Properties> {
    match v {
        ProtocolVersion::V311 => Just(Properties::default()).boxed(),
        ProtocolVersion::V5 => all_properties()
            .prop_map(move |p| restrict(p, kind))
            .boxed(),
    }
}

fn reason(v: ProtocolVersion, kind: &str) -> BoxedStrategy<ReasonCode> {
    match v {
        ProtocolVersion::V5 => prop::sample::select(allowed_reason_codes(kind)).boxed(),
        ProtocolVersion::V311 => Just(ReasonCode::SUCCESS).boxed(),
    }
}

fn qos() -> impl Strategy<Value = QoS> {
    prop::sample::select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn packet_id() -> impl Strategy<Value = u16> {
    1u16..
}

fn will(v: ProtocolVersion) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        properties(v, "will"),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        option::of(will(v)),
        option::of(text()),
        option::of(binary()),
        properties(v, "CONNECT"),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // 3.1.1 allows a password only with a user name.
                let password = if v.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = match v {
        ProtocolVersion::V5 => reason(v, "CONNACK"),
        ProtocolVersion::V311 => prop::sample::select(vec![
            ReasonCode::SUCCESS,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            ReasonCode::SERVER_UNAVAILABLE,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ReasonCode::NOT_AUTHORIZED,
        ])
        .boxed(),
    };
    (any::<bool>(), reason, properties(v, "CONNACK")).prop_map(|(sp, reason, properties)| {
        Packet::ConnAck(ConnAck {
            session_present: sp && !reason.is_error(),
            reason,
            properties,
        })
    })
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        option::weighted(0.9, topic_name()),
        packet_id(),
        binary(),
        properties(v, "PUBLISH"),
        1u16..,
    )
        .prop_map(
            move |(qos, dup, retain, topic, id, payload, mut properties, alias)| {
                let topic = match topic {
                    None if v.is_v5() => {
                        properties.topic_alias.get_or_insert(alias);
                        None
                    }
                    None => Some(TopicName::new("fallback").expect("valid")),
                    some => some,
                };
                let at_most_once = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: (!at_most_once).then_some(id),
                    payload,
                    properties,
                })
            },
        )
}

fn pub_resp(v: ProtocolVersion, kind: &'static str) -> impl Strategy<Value = PubResp> {
    (packet_id(), reason(v, kind), properties(v, kind)).prop_map(
        |(packet_id, reason, properties)| PubResp {
            packet_id,
            reason,
            properties,
        },
    )
}

fn subscription(v: ProtocolVersion) -> impl Strategy<Value = Subscription> {
    (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            RetainHandling::SendAtSubscribe,
            RetainHandling::SendIfNew,
            RetainHandling::DoNotSend,
        ]),
    )
        .prop_map(move |(filter, qos, no_local, rap, rh)| {
            if v.is_v5() {
                Subscription {
                    no_local: no_local && !filter.is_shared(),
                    retain_as_published: rap,
                    retain_handling: rh,
                    filter,
                    qos,
                }
            } else {
                Subscription::new(filter, qos)
            }
        })
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(subscription(v), 1..4),
        properties(v, "SUBSCRIBE"),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = match v {
        ProtocolVersion::V5 => allowed_reason_codes("SUBACK"),
        ProtocolVersion::V311 => [0x00, 0x01, 0x02, 0x80].map(ReasonCode).to_vec(),
    };
    (
        packet_id(),
        vec(prop::sample::select(codes), 1..4),
        properties(v, "SUBACK"),
    )
        .prop_map(|(packet_id, reasons, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties,
            })
        })
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(topic_filter(), 1..4),
        properties(v, "UNSUBSCRIBE"),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reasons = match v {
        ProtocolVersion::V5 => vec(reason(v, "UNSUBACK"), 1..4).boxed(),
        ProtocolVersion::V311 => Just(Vec::new()).boxed(),
    };
    (packet_id(), reasons, properties(v, "UNSUBACK")).prop_map(
        |(packet_id, reasons, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reasons,
                properties,
            })
        },
    )
}

fn disconnect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (reason(v, "DISCONNECT"), properties(v, "DISCONNECT"))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason(ProtocolVersion::V5, "AUTH"),
        properties(ProtocolVersion::V5, "AUTH"),
    )
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any packet valid in `v`.
pub fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(v),
        connack(v),
        publish(v),
        pub_resp(v, "PUBACK").prop_map(Packet::PubAck),
        pub_resp(v, "PUBREC").prop_map(Packet::PubRec),
        pub_resp(v, "PUBREL").prop_map(Packet::PubRel),
        pub_resp(v, "PUBCOMP").prop_map(Packet::PubComp),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(v),
    ];
    match v {
        ProtocolVersion::V5 => prop_oneof![14 => common, 1 => auth()].boxed(),
        ProtocolVersion::V311 => common.boxed(),
    }
}

/// A protocol version and a packet valid in it.
pub fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    prop_oneof![
        packet(ProtocolVersion::V311).prop_map(|p| (ProtocolVersion::V311, p)),
        packet(ProtocolVersion::V5).prop_map(|p| (ProtocolVersion::V5, p)),
    ]
}

pub fn encode_to_vec(packet: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(packet, v, &mut buf).expect("valid packet encodes");
    buf
}
