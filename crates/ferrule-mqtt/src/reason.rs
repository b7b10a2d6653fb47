//! Small wire enums: protocol level, QoS, retain handling and v5 reason codes.

use std::fmt;

/// The MQTT protocol version negotiated by CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (wire level 4). MQTT 3.1 (level 3, "MQIsdp") decodes to this too.
    V311,
    /// MQTT 5.0 (wire level 5).
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte written in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// Whether this is MQTT 5.0, i.e. whether properties and reason codes are on the wire.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V311 => "MQTT 3.1.1",
            ProtocolVersion::V5 => "MQTT 5.0",
        })
    }
}

/// Quality of service of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged by PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// QoS 2: four-way handshake, delivered once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a wire value, `None` for 3 and above.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Subscription option: whether retained messages are sent when the subscription is made (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription did not already exist.
    SendIfNew = 1,
    /// Do not send retained messages at the time of the subscribe.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The retain handling for a wire value, `None` for 3 and above.
    pub fn from_u8(value: u8) -> Option<RetainHandling> {
        match value {
            0 => Some(RetainHandling::SendAtSubscribe),
            1 => Some(RetainHandling::SendIfNew),
            2 => Some(RetainHandling::DoNotSend),
            _ => None,
        }
    }
}

/// An MQTT 5.0 reason code. In memory every packet carries v5 codes; the encoder maps them for
/// MQTT 3.1.1 where the packet has an equivalent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $( $(#[$doc])* pub const $name: ReasonCode = ReasonCode($value); )*
        }

        /// The spec name of a reason code value, first name wins for shared values.
        fn spec_name(code: u8) -> Option<&'static str> {
            #[allow(unreachable_patterns)] // 0x00..0x02 have several names
            match code {
                $( $value => Some($text), )*
                _ => None,
            }
        }
    };
}

reason_codes! {
    /// 0x00 Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH).
    SUCCESS = 0x00, "Success";
    /// 0x00 Normal disconnection (DISCONNECT).
    NORMAL_DISCONNECTION = 0x00, "Normal disconnection";
    /// 0x00 Granted QoS 0 (SUBACK).
    GRANTED_QOS_0 = 0x00, "Granted QoS 0";
    /// 0x01 Granted QoS 1 (SUBACK).
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    /// 0x02 Granted QoS 2 (SUBACK).
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    /// 0x04 Disconnect with Will Message (DISCONNECT).
    DISCONNECT_WITH_WILL = 0x04, "Disconnect with Will Message";
    /// 0x10 No matching subscribers (PUBACK, PUBREC).
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    /// 0x11 No subscription existed (UNSUBACK).
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    /// 0x18 Continue authentication (AUTH).
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    /// 0x19 Re-authenticate (AUTH).
    REAUTHENTICATE = 0x19, "Re-authenticate";
    /// 0x80 Unspecified error.
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    /// 0x81 Malformed Packet.
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    /// 0x82 Protocol Error.
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    /// 0x83 Implementation specific error.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    /// 0x84 Unsupported Protocol Version (CONNACK).
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    /// 0x85 Client Identifier not valid (CONNACK).
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    /// 0x86 Bad User Name or Password (CONNACK).
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    /// 0x87 Not authorized.
    NOT_AUTHORIZED = 0x87, "Not authorized";
    /// 0x88 Server unavailable (CONNACK).
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    /// 0x89 Server busy.
    SERVER_BUSY = 0x89, "Server busy";
    /// 0x8A Banned (CONNACK).
    BANNED = 0x8A, "Banned";
    /// 0x8B Server shutting down (DISCONNECT).
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    /// 0x8C Bad authentication method.
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    /// 0x8D Keep Alive timeout (DISCONNECT).
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    /// 0x8E Session taken over (DISCONNECT).
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    /// 0x8F Topic Filter invalid.
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    /// 0x90 Topic Name invalid.
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    /// 0x91 Packet Identifier in use.
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    /// 0x92 Packet Identifier not found.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    /// 0x93 Receive Maximum exceeded (DISCONNECT).
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    /// 0x94 Topic Alias invalid (DISCONNECT).
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    /// 0x95 Packet too large.
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    /// 0x96 Message rate too high (DISCONNECT).
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    /// 0x97 Quota exceeded.
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    /// 0x98 Administrative action (DISCONNECT).
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    /// 0x99 Payload format invalid.
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    /// 0x9A Retain not supported.
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    /// 0x9B QoS not supported.
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    /// 0x9C Use another server.
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    /// 0x9D Server moved.
    SERVER_MOVED = 0x9D, "Server moved";
    /// 0x9E Shared Subscriptions not supported.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    /// 0x9F Connection rate exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    /// 0xA0 Maximum connect time (DISCONNECT).
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    /// 0xA1 Subscription Identifiers not supported.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    /// 0xA2 Wildcard Subscriptions not supported.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// Whether the code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The granted-QoS SUBACK code for `qos`.
    pub fn granted(qos: QoS) -> ReasonCode {
        ReasonCode(qos.as_u8())
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode(0x{:02X} {})", self.0, self)
    }
}

/// Shows the spec name; where several names share a value (0x00..0x02) the generic one.
impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match spec_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "Unknown reason code 0x{:02X}", self.0),
        }
    }
}

/// Which reason codes the spec allows per packet type (v5 section 2.4 and each packet's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasonSet {
    ConnAck,
    PubAckRec,
    PubRelComp,
    SubAck,
    UnsubAck,
    Disconnect,
    Auth,
}

impl ReasonSet {
    pub(crate) fn allows(self, code: ReasonCode) -> bool {
        let allowed: &[u8] = match self {
            ReasonSet::ConnAck => &[
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
                0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
            ],
            ReasonSet::PubAckRec => &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
            ReasonSet::PubRelComp => &[0x00, 0x92],
            ReasonSet::SubAck => &[
                0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
            ],
            ReasonSet::UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
            ReasonSet::Disconnect => &[
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
                0xA2,
            ],
            ReasonSet::Auth => &[0x00, 0x18, 0x19],
        };
        allowed.contains(&code.0)
    }

    /// Every code in the set, for tests and generators.
    pub(crate) fn all(self) -> Vec<ReasonCode> {
        (0..=u8::MAX)
            .map(ReasonCode)
            .filter(|c| self.allows(*c))
            .collect()
    }
}

/// Reason codes the spec allows in a packet of the given kind (`"CONNACK"`, `"PUBACK"`, ...),
/// empty for kinds that carry none. Useful for generators and for the broker's own checks.
pub fn allowed_reason_codes(kind: &str) -> Vec<ReasonCode> {
    let set = match kind {
        "CONNACK" => ReasonSet::ConnAck,
        "PUBACK" | "PUBREC" => ReasonSet::PubAckRec,
        "PUBREL" | "PUBCOMP" => ReasonSet::PubRelComp,
        "SUBACK" => ReasonSet::SubAck,
        "UNSUBACK" => ReasonSet::UnsubAck,
        "DISCONNECT" => ReasonSet::Disconnect,
        "AUTH" => ReasonSet::Auth,
        _ => return Vec::new(),
    };
    set.all()
}

/// MQTT 3.1.1 CONNACK return code for a v5 reason code, `None` for non-error codes other than 0.
pub(crate) fn connack_v311_code(reason: ReasonCode) -> Option<u8> {
    Some(match reason.0 {
        0x00 => 0,
        0x84 => 1,
        0x85 => 2,
        0x86 => 4,
        0x87 | 0x8A | 0x8C => 5,
        c if c >= 0x80 => 3,
        _ => return None,
    })
}

/// The v5 reason code for an MQTT 3.1.1 CONNACK return code.
pub(crate) fn connack_from_v311(code: u8) -> Option<ReasonCode> {
    Some(match code {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(ReasonCode::SUCCESS.to_string(), "Success");
        assert_eq!(ReasonCode::BANNED.to_string(), "Banned");
        assert_eq!(ReasonCode(0x42).to_string(), "Unknown reason code 0x42");
        assert!(ReasonCode::UNSPECIFIED_ERROR.is_error());
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.is_error());
    }

    #[test]
    fn v311_connack_mapping_round_trips_the_canonical_codes() {
        for code in 0..=5 {
            let reason = connack_from_v311(code).expect("codes 0..=5 exist");
            assert_eq!(connack_v311_code(reason), Some(code));
        }
        assert_eq!(connack_v311_code(ReasonCode::BANNED), Some(5));
        assert_eq!(connack_v311_code(ReasonCode::SERVER_BUSY), Some(3));
        assert_eq!(connack_v311_code(ReasonCode::QUOTA_EXCEEDED), Some(3));
        assert_eq!(connack_v311_code(ReasonCode(0x10)), None);
    }
}
