//! Malformed input for every packet type: each byte string must be rejected with the named error
//! and reason code.

use bytes::BytesMut;
use ferrule_mqtt::DecodeError::*;
use ferrule_mqtt::ProtocolVersion::{V5, V311};
use ferrule_mqtt::*;

/// A packet: first byte, remaining length computed from `body`.
fn pkt(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string.
fn s(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

/// A property block: length then the properties.
fn props(body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// CONNECT with the given protocol name, level, flags and trailing payload.
fn connect(name: &[u8], level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    pkt(0x10, &cat(&[&s(name), &[level, flags, 0, 60], rest]))
}

/// A v5 CONNECT with client id "c" and the given properties.
fn connect5(properties: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 5, 0x02, &cat(&[&props(properties), &s(b"c")]))
}

/// A v5 QoS 0 PUBLISH to "t" with the given properties.
fn publish5(properties: &[u8]) -> Vec<u8> {
    pkt(0x30, &cat(&[&s(b"t"), &props(properties), b"payload"]))
}

/// A v5 SUBSCRIBE of "a" with the given properties and options.
fn subscribe5(properties: &[u8], options: u8) -> Vec<u8> {
    pkt(
        0x82,
        &cat(&[&[0, 1], &props(properties), &s(b"a"), &[options]]),
    )
}

struct Case {
    name: &'static str,
    v: ProtocolVersion,
    bytes: Vec<u8>,
    error: DecodeError,
    reason: u8,
}

fn case(
    name: &'static str,
    v: ProtocolVersion,
    bytes: Vec<u8>,
    error: DecodeError,
    reason: u8,
) -> Case {
    Case {
        name,
        v,
        bytes,
        error,
        reason,
    }
}

#[rustfmt::skip] // One case per line reads as a table.
fn cases() -> Vec<Case> {
    let pub_resp_kinds = [
        (0x40, "PUBACK"),
        (0x50, "PUBREC"),
        (0x62, "PUBREL"),
        (0x70, "PUBCOMP"),
    ];
    let mut cases = vec![
        // Fixed header.
        case("type 0", V5, vec![0x00, 0x00], InvalidPacketType(0), 0x81),
        case("AUTH in 3.1.1", V311, vec![0xF0, 0x00], InvalidPacketType(15), 0x81),
        case("5-byte remaining length", V5, vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], MalformedRemainingLength, 0x81),
        case("4 continuation bytes", V5, vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF], MalformedRemainingLength, 0x81),
        case("non-minimal remaining length", V5, vec![0xC0, 0x80, 0x00], MalformedRemainingLength, 0x81),
        case("PINGREQ flags", V311, vec![0xC1, 0x00], InvalidFlags { kind: "PINGREQ", flags: 1 }, 0x81),
        case("PINGRESP flags", V5, vec![0xD8, 0x00], InvalidFlags { kind: "PINGRESP", flags: 8 }, 0x81),
        case("CONNECT flags", V5, vec![0x12, 0x00], InvalidFlags { kind: "CONNECT", flags: 2 }, 0x81),
        case("CONNACK flags", V5, vec![0x21, 0x02, 0, 0], InvalidFlags { kind: "CONNACK", flags: 1 }, 0x81),
        case("SUBSCRIBE flags 0", V311, pkt(0x80, &cat(&[&[0, 1], &s(b"a"), &[0]])), InvalidFlags { kind: "SUBSCRIBE", flags: 0 }, 0x81),
        case("SUBACK flags", V311, vec![0x92, 0x03, 0, 1, 0], InvalidFlags { kind: "SUBACK", flags: 2 }, 0x81),
        case("UNSUBSCRIBE flags 0", V311, pkt(0xA0, &cat(&[&[0, 1], &s(b"a")])), InvalidFlags { kind: "UNSUBSCRIBE", flags: 0 }, 0x81),
        case("UNSUBACK flags", V311, vec![0xB2, 0x02, 0, 1], InvalidFlags { kind: "UNSUBACK", flags: 2 }, 0x81),
        case("DISCONNECT flags", V311, vec![0xE2, 0x00], InvalidFlags { kind: "DISCONNECT", flags: 2 }, 0x81),
        case("AUTH flags", V5, vec![0xF1, 0x00], InvalidFlags { kind: "AUTH", flags: 1 }, 0x81),
        case("PUBLISH QoS 3", V311, pkt(0x36, &cat(&[&s(b"t"), &[0, 1]])), InvalidQoS { what: "PUBLISH" }, 0x81),
        case("PUBLISH QoS 0 with DUP", V311, pkt(0x38, &s(b"t")), InvalidFlags { kind: "PUBLISH", flags: 8 }, 0x81),
        // CONNECT.
        case("protocol name", V5, connect(b"MQTX", 4, 0x02, &s(b"c")), InvalidProtocolName, 0x81),
        case("protocol name case", V5, connect(b"mqtt", 4, 0x02, &s(b"c")), InvalidProtocolName, 0x81),
        case("level 6", V5, connect(b"MQTT", 6, 0x02, &s(b"c")), UnsupportedProtocolVersion(6), 0x84),
        case("level 3 needs MQIsdp", V5, connect(b"MQTT", 3, 0x02, &s(b"c")), UnsupportedProtocolVersion(3), 0x84),
        case("MQIsdp level 4", V5, connect(b"MQIsdp", 4, 0x02, &s(b"c")), UnsupportedProtocolVersion(4), 0x84),
        case("reserved connect flag", V5, connect(b"MQTT", 4, 0x03, &s(b"c")), Malformed("CONNECT reserved flag is set"), 0x81),
        case("will QoS without will", V5, connect(b"MQTT", 4, 0x0A, &s(b"c")), Malformed("will QoS or will retain set without the will flag"), 0x81),
        case("will retain without will", V5, connect(b"MQTT", 4, 0x22, &s(b"c")), Malformed("will QoS or will retain set without the will flag"), 0x81),
        case("will QoS 3", V5, connect(b"MQTT", 4, 0x1C, &cat(&[&s(b"c"), &s(b"t"), &s(b"m")])), InvalidQoS { what: "will" }, 0x81),
        case("3.1.1 password without user name", V5, connect(b"MQTT", 4, 0x42, &cat(&[&s(b"c"), &s(b"pw")])), Malformed("password flag set without user name flag"), 0x81),
        case("client id longer than packet", V5, connect(b"MQTT", 4, 0x02, &[0, 10, b'a', b'b']), Truncated { what: "client identifier" }, 0x81),
        case("no keep alive", V5, pkt(0x10, &cat(&[&s(b"MQTT"), &[4, 2, 0]])), Truncated { what: "keep alive" }, 0x81),
        case("client id invalid UTF-8", V5, connect(b"MQTT", 4, 0x02, &s(&[0xC3, 0x28])), InvalidUtf8 { what: "client identifier" }, 0x81),
        case("client id surrogate", V5, connect(b"MQTT", 4, 0x02, &s(&[0xED, 0xA0, 0x80])), InvalidUtf8 { what: "client identifier" }, 0x81),
        case("client id NUL", V5, connect(b"MQTT", 4, 0x02, &s(b"a\0b")), NulInString { what: "client identifier" }, 0x81),
        case("user name NUL", V5, connect(b"MQTT", 4, 0x82, &cat(&[&s(b"c"), &s(b"\0")])), NulInString { what: "user name" }, 0x81),
        case("missing user name", V5, connect(b"MQTT", 4, 0x82, &s(b"c")), Truncated { what: "user name" }, 0x81),
        case("will topic wildcard", V5, connect(b"MQTT", 4, 0x06, &cat(&[&s(b"c"), &s(b"a/#"), &s(b"m")])), InvalidTopicName(TopicError::WildcardInName('#')), 0x90),
        case("will topic empty", V5, connect(b"MQTT", 4, 0x06, &cat(&[&s(b"c"), &s(b""), &s(b"m")])), InvalidTopicName(TopicError::Empty), 0x90),
        case("CONNECT trailing bytes", V5, connect(b"MQTT", 4, 0x02, &cat(&[&s(b"c"), &[0]])), TrailingBytes { kind: "CONNECT" }, 0x81),
        case("duplicate session expiry", V5, connect5(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]), DuplicateProperty(0x11), 0x82),
        case("topic alias in CONNECT", V5, connect5(&[0x23, 0, 1]), PropertyNotAllowed { id: 0x23, kind: "CONNECT" }, 0x81),
        case("will delay in CONNECT", V5, connect5(&[0x18, 0, 0, 0, 1]), PropertyNotAllowed { id: 0x18, kind: "CONNECT" }, 0x81),
        case("receive maximum 0", V5, connect5(&[0x21, 0, 0]), InvalidPropertyValue(0x21), 0x82),
        case("maximum packet size 0", V5, connect5(&[0x27, 0, 0, 0, 0]), InvalidPropertyValue(0x27), 0x82),
        case("request problem information 2", V5, connect5(&[0x17, 2]), InvalidPropertyValue(0x17), 0x82),
        case("request response information 2", V5, connect5(&[0x19, 2]), InvalidPropertyValue(0x19), 0x82),
        case("auth data without method", V5, connect5(&[0x16, 0, 1, 7]), InvalidPropertyValue(0x16), 0x82),
        case("unknown property", V5, connect5(&[0x7F, 0]), UnknownProperty(0x7F), 0x81),
        case("property id 0", V5, connect5(&[0x00]), UnknownProperty(0), 0x81),
        case("property value cut by property length", V5, connect5(&[0x11, 0, 0]), Truncated { what: "Session Expiry Interval" }, 0x81),
        case("property length past body", V5, connect(b"MQTT", 5, 0x02, &[20, 0x11, 0, 0, 0, 1]), Truncated { what: "properties" }, 0x81),
        case("user property NUL", V5, connect5(&cat(&[&[0x26], &s(b"k"), &s(b"\0")])), NulInString { what: "User Property" }, 0x81),
        case("will property in will not allowed", V5, connect(b"MQTT", 5, 0x06, &cat(&[&props(&[]), &s(b"c"), &props(&[0x11, 0, 0, 0, 1]), &s(b"t"), &s(b"m")])), PropertyNotAllowed { id: 0x11, kind: "will properties" }, 0x81),
        // CONNACK.
        case("CONNACK reserved flags", V311, vec![0x20, 0x02, 0x02, 0x00], Malformed("CONNACK reserved flags are set"), 0x81),
        case("CONNACK return code 6", V311, vec![0x20, 0x02, 0x00, 0x06], InvalidReasonCode { kind: "CONNACK", code: 6 }, 0x81),
        case("CONNACK v5 reason 0x10", V5, vec![0x20, 0x03, 0x00, 0x10, 0x00], InvalidReasonCode { kind: "CONNACK", code: 0x10 }, 0x81),
        case("CONNACK session present with error", V311, vec![0x20, 0x02, 0x01, 0x05], ProtocolError("CONNACK with an error sets session present"), 0x82),
        case("CONNACK truncated", V311, vec![0x20, 0x01, 0x00], Truncated { what: "return code" }, 0x81),
        case("CONNACK trailing", V311, vec![0x20, 0x03, 0x00, 0x00, 0x00], TrailingBytes { kind: "CONNACK" }, 0x81),
        case("CONNACK v5 without properties", V5, vec![0x20, 0x02, 0x00, 0x00], Truncated { what: "property length" }, 0x81),
        case("CONNACK maximum QoS 2", V5, vec![0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02], InvalidPropertyValue(0x24), 0x82),
        // PUBLISH.
        case("topic with +", V311, pkt(0x30, &s(b"a/+")), InvalidTopicName(TopicError::WildcardInName('+')), 0x90),
        case("topic with #", V5, pkt(0x30, &cat(&[&s(b"#"), &[0]])), InvalidTopicName(TopicError::WildcardInName('#')), 0x90),
        case("empty topic in 3.1.1", V311, pkt(0x30, &s(b"")), InvalidTopicName(TopicError::Empty), 0x90),
        case("empty topic without alias", V5, pkt(0x30, &cat(&[&s(b""), &[0]])), ProtocolError("PUBLISH with an empty topic name and no topic alias"), 0x82),
        case("topic NUL", V311, pkt(0x30, &s(b"a\0")), NulInString { what: "topic name" }, 0x81),
        case("topic invalid UTF-8", V311, pkt(0x30, &s(&[0xFF])), InvalidUtf8 { what: "topic name" }, 0x81),
        case("topic longer than packet", V311, pkt(0x30, &[0, 9, b't']), Truncated { what: "topic name" }, 0x81),
        case("QoS 1 packet id 0", V311, pkt(0x32, &cat(&[&s(b"t"), &[0, 0]])), ZeroPacketId { kind: "PUBLISH" }, 0x81),
        case("QoS 2 packet id missing", V311, pkt(0x34, &cat(&[&s(b"t"), &[0]])), Truncated { what: "packet identifier" }, 0x81),
        case("topic alias 0", V5, publish5(&[0x23, 0, 0]), InvalidPropertyValue(0x23), 0x82),
        case("payload format 2", V5, publish5(&[0x01, 2]), InvalidPropertyValue(0x01), 0x82),
        case("subscription identifier 0", V5, publish5(&[0x0B, 0]), InvalidPropertyValue(0x0B), 0x82),
        case("session expiry in PUBLISH", V5, publish5(&[0x11, 0, 0, 0, 1]), PropertyNotAllowed { id: 0x11, kind: "PUBLISH" }, 0x81),
        case("will delay in PUBLISH", V5, publish5(&[0x18, 0, 0, 0, 1]), PropertyNotAllowed { id: 0x18, kind: "PUBLISH" }, 0x81),
        case("duplicate message expiry", V5, publish5(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1]), DuplicateProperty(0x02), 0x82),
        case("duplicate topic alias", V5, publish5(&[0x23, 0, 1, 0x23, 0, 2]), DuplicateProperty(0x23), 0x82),
        case("response topic with wildcard", V5, publish5(&cat(&[&[0x08], &s(b"r/+")])), InvalidPropertyValue(0x08), 0x82),
        case("malformed subscription identifier", V5, publish5(&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), MalformedVarInt { what: "Subscription Identifier" }, 0x81),
        case("malformed property length", V5, pkt(0x30, &cat(&[&s(b"t"), &[0xFF, 0xFF, 0xFF, 0xFF, 0x01]])), MalformedVarInt { what: "property length" }, 0x81),
        case("property length cut off", V5, pkt(0x30, &cat(&[&s(b"t"), &[0x80]])), Truncated { what: "property length" }, 0x81),
        // SUBSCRIBE.
        case("SUBSCRIBE without filters", V311, pkt(0x82, &[0, 1]), ProtocolError("SUBSCRIBE without topic filters"), 0x82),
        case("SUBSCRIBE v5 without filters", V5, pkt(0x82, &[0, 1, 0]), ProtocolError("SUBSCRIBE without topic filters"), 0x82),
        case("SUBSCRIBE packet id 0", V311, pkt(0x82, &cat(&[&[0, 0], &s(b"a"), &[0]])), ZeroPacketId { kind: "SUBSCRIBE" }, 0x81),
        case("3.1.1 options above QoS", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x04]])), Malformed("reserved subscription option bits are set"), 0x81),
        case("v5 reserved option bits", V5, subscribe5(&[], 0x40), Malformed("reserved subscription option bits are set"), 0x81),
        case("retain handling 3", V5, subscribe5(&[], 0x30), Malformed("retain handling is 3"), 0x81),
        case("subscription QoS 3", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"a"), &[0x03]])), InvalidQoS { what: "subscription options" }, 0x81),
        case("filter # not last", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"a/#/b"), &[0]])), InvalidTopicFilter(TopicError::InvalidWildcard { level: 1, text: "#".into(), problem: "'#' must be the last level" }), 0x81),
        case("filter partial +", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"a+"), &[0]])), InvalidTopicFilter(TopicError::InvalidWildcard { level: 0, text: "a+".into(), problem: "'+' must occupy a whole level" }), 0x81),
        case("filter empty", V311, pkt(0x82, &cat(&[&[0, 1], &s(b""), &[0]])), InvalidTopicFilter(TopicError::Empty), 0x81),
        case("share group with wildcard", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"$share/g+/a"), &[0]])), InvalidTopicFilter(TopicError::InvalidShare { problem: "the share name contains a wildcard" }), 0x81),
        case("options byte missing", V311, pkt(0x82, &cat(&[&[0, 1], &s(b"a")])), Truncated { what: "subscription options" }, 0x81),
        case("no local on shared", V5, pkt(0x82, &cat(&[&[0, 1, 0], &s(b"$share/g/a"), &[0x04]])), ProtocolError("no local set on a shared subscription"), 0x82),
        case("two subscription identifiers", V5, subscribe5(&[0x0B, 1, 0x0B, 2], 0), DuplicateProperty(0x0B), 0x82),
        case("reason string in SUBSCRIBE", V5, subscribe5(&cat(&[&[0x1F], &s(b"x")]), 0), PropertyNotAllowed { id: 0x1F, kind: "SUBSCRIBE" }, 0x81),
        // SUBACK.
        case("SUBACK 3.1.1 code 3", V311, vec![0x90, 0x03, 0, 1, 0x03], InvalidReasonCode { kind: "SUBACK", code: 3 }, 0x81),
        case("SUBACK 3.1.1 code 0x87", V311, vec![0x90, 0x03, 0, 1, 0x87], InvalidReasonCode { kind: "SUBACK", code: 0x87 }, 0x81),
        case("SUBACK v5 code 0x04", V5, vec![0x90, 0x04, 0, 1, 0, 0x04], InvalidReasonCode { kind: "SUBACK", code: 4 }, 0x81),
        case("SUBACK without codes", V311, vec![0x90, 0x02, 0, 1], ProtocolError("SUBACK without return codes"), 0x82),
        case("SUBACK packet id 0", V311, vec![0x90, 0x03, 0, 0, 0], ZeroPacketId { kind: "SUBACK" }, 0x81),
        // UNSUBSCRIBE.
        case("UNSUBSCRIBE without filters", V311, pkt(0xA2, &[0, 1]), ProtocolError("UNSUBSCRIBE without topic filters"), 0x82),
        case("UNSUBSCRIBE invalid filter", V311, pkt(0xA2, &cat(&[&[0, 1], &s(b"#/a")])), InvalidTopicFilter(TopicError::InvalidWildcard { level: 0, text: "#".into(), problem: "'#' must be the last level" }), 0x81),
        case("UNSUBSCRIBE packet id 0", V311, pkt(0xA2, &cat(&[&[0, 0], &s(b"a")])), ZeroPacketId { kind: "UNSUBSCRIBE" }, 0x81),
        case("UNSUBSCRIBE subscription identifier", V5, pkt(0xA2, &cat(&[&[0, 1], &props(&[0x0B, 1]), &s(b"a")])), PropertyNotAllowed { id: 0x0B, kind: "UNSUBSCRIBE" }, 0x81),
        // UNSUBACK.
        case("UNSUBACK 3.1.1 trailing", V311, vec![0xB0, 0x03, 0, 1, 0], TrailingBytes { kind: "UNSUBACK" }, 0x81),
        case("UNSUBACK v5 without reasons", V5, vec![0xB0, 0x03, 0, 1, 0], ProtocolError("UNSUBACK without reason codes"), 0x82),
        case("UNSUBACK v5 reason 0x04", V5, vec![0xB0, 0x04, 0, 1, 0, 0x04], InvalidReasonCode { kind: "UNSUBACK", code: 4 }, 0x81),
        case("UNSUBACK packet id 0", V311, vec![0xB0, 0x02, 0, 0], ZeroPacketId { kind: "UNSUBACK" }, 0x81),
        // PINGREQ, PINGRESP.
        case("PINGREQ body", V311, vec![0xC0, 0x01, 0x00], TrailingBytes { kind: "PINGREQ" }, 0x81),
        case("PINGRESP body", V5, vec![0xD0, 0x01, 0x00], TrailingBytes { kind: "PINGRESP" }, 0x81),
        // DISCONNECT.
        case("DISCONNECT 3.1.1 body", V311, vec![0xE0, 0x01, 0x00], TrailingBytes { kind: "DISCONNECT" }, 0x81),
        case("DISCONNECT reason 0x01", V5, vec![0xE0, 0x01, 0x01], InvalidReasonCode { kind: "DISCONNECT", code: 1 }, 0x81),
        case("DISCONNECT duplicate reason string", V5, pkt(0xE0, &cat(&[&[0x80], &props(&cat(&[&[0x1F], &s(b"a"), &[0x1F], &s(b"b")]))])), DuplicateProperty(0x1F), 0x82),
        case("DISCONNECT assigned client id", V5, pkt(0xE0, &cat(&[&[0x80], &props(&cat(&[&[0x12], &s(b"a")]))])), PropertyNotAllowed { id: 0x12, kind: "DISCONNECT" }, 0x81),
        case("DISCONNECT trailing", V5, pkt(0xE0, &[0x00, 0x00, 0x00]), TrailingBytes { kind: "DISCONNECT" }, 0x81),
        // AUTH.
        case("AUTH reason 0x01", V5, vec![0xF0, 0x01, 0x01], InvalidReasonCode { kind: "AUTH", code: 1 }, 0x81),
        case("AUTH topic alias", V5, pkt(0xF0, &[0x18, 0x03, 0x23, 0, 1]), PropertyNotAllowed { id: 0x23, kind: "AUTH" }, 0x81),
        case("AUTH trailing", V5, pkt(0xF0, &[0x18, 0x00, 0x00]), TrailingBytes { kind: "AUTH" }, 0x81),
    ];
    for (first, kind) in pub_resp_kinds {
        cases.extend([
            case(kind, V311, vec![first, 0x03, 0, 1, 0], TrailingBytes { kind }, 0x81),
            case(kind, V311, vec![first, 0x02, 0, 0], ZeroPacketId { kind }, 0x81),
            case(kind, V5, vec![first, 0x01, 0], Truncated { what: "packet identifier" }, 0x81),
            case(kind, V5, vec![first, 0x03, 0, 1, 0x01], InvalidReasonCode { kind, code: 1 }, 0x81),
            case(kind, V5, pkt(first, &[0, 1, 0, 3, 0x23, 0, 1]), PropertyNotAllowed { id: 0x23, kind }, 0x81),
            case(kind, V5, pkt(first, &[0, 1, 0, 0, 9]), TrailingBytes { kind }, 0x81),
            case(kind, V311, vec![first ^ 0x02, 0x02, 0, 1], InvalidFlags { kind, flags: (first ^ 0x02) & 0x0F }, 0x81),
        ]);
    }
    cases.push(case(
        "PUBACK v5 reason 0x92",
        V5,
        vec![0x40, 0x03, 0, 1, 0x92],
        InvalidReasonCode {
            kind: "PUBACK",
            code: 0x92,
        },
        0x81,
    ));
    cases.push(case(
        "PUBREL v5 reason 0x10",
        V5,
        vec![0x62, 0x03, 0, 1, 0x10],
        InvalidReasonCode {
            kind: "PUBREL",
            code: 0x10,
        },
        0x81,
    ));
    cases
}

#[test]
fn malformed_packets_are_rejected_with_the_named_error() {
    let mut failures = Vec::new();
    let cases = cases();
    for c in &cases {
        let mut buf = BytesMut::from(&c.bytes[..]);
        let got = decode(&mut buf, c.v, u32::MAX);
        match &got {
            Err(e) if *e == c.error && e.reason_code() == ReasonCode(c.reason) => {}
            _ => failures.push(format!(
                "{} ({:?}, {:02X?}): expected {:?} / 0x{:02X}, got {:?}",
                c.name, c.v, c.bytes, c.error, c.reason, got
            )),
        }
        // Every error also has a readable message.
        if let Err(e) = got {
            assert!(!e.to_string().is_empty());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn oversized_packet_is_rejected_from_the_fixed_header_alone() {
    // Remaining length 16,383 announced; only the header has arrived.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x7F][..]);
    let err = decode(&mut buf, V5, 1024).expect_err("too large");
    assert_eq!(
        err,
        PacketTooLarge {
            size: 16_386,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
}

#[test]
fn flags_are_checked_before_the_body_arrives() {
    let mut buf = BytesMut::from(&[0x60, 0x02][..]);
    assert_eq!(
        decode(&mut buf, V311, u32::MAX),
        Err(InvalidFlags {
            kind: "PUBREL",
            flags: 0
        })
    );
}

#[test]
fn lying_lengths_wait_for_more_bytes() {
    // The remaining length claims more than is buffered: that is "need more", not an error.
    let mut buf = BytesMut::from(&[0x30, 0x10, 0x00, 0x01, b't'][..]);
    assert_eq!(decode(&mut buf, V311, u32::MAX), Ok(None));
    assert_eq!(buf.len(), 5);
}
