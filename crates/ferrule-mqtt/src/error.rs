//! Errors. Every [`DecodeError`] is the peer's fault and maps to the reason code to close the
//! connection with; every [`EncodeError`] is the caller's (the packet cannot be put on the wire).

use crate::properties::property_name;
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// Why bytes from the peer are not a valid packet. The connection should be closed, with
/// [`DecodeError::reason_code`] in a v5 DISCONNECT (or CONNACK, before the session exists).
/// After an error the contents of the input buffer are unspecified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The remaining length is longer than 4 bytes or not minimally encoded.
    #[error("malformed remaining length")]
    MalformedRemainingLength,
    /// The whole packet would exceed the maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// CONNECT names a protocol level this codec does not speak.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's protocol name is neither "MQTT" nor "MQIsdp" (for level 3).
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// The packet type nibble is reserved (0, or 15 = AUTH before MQTT 5.0).
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// The fixed header flags are wrong for the packet type.
    #[error("invalid fixed header flags 0b{flags:04b} for {kind}")]
    InvalidFlags {
        /// The packet type.
        kind: &'static str,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// A QoS field (PUBLISH, will, subscription) is 3.
    #[error("invalid QoS 3 in {what}")]
    InvalidQoS {
        /// Where.
        what: &'static str,
    },
    /// A string is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        what: &'static str,
    },
    /// A string contains U+0000.
    #[error("{what} contains the NUL character")]
    NulInString {
        /// Which field.
        what: &'static str,
    },
    /// A field runs past the end of the packet (or of its properties).
    #[error("packet ends inside {what}")]
    Truncated {
        /// Which field.
        what: &'static str,
    },
    /// The packet has bytes after its last field.
    #[error("{kind} has trailing bytes")]
    TrailingBytes {
        /// The packet type.
        kind: &'static str,
    },
    /// A variable byte integer other than the remaining length is malformed.
    #[error("malformed variable byte integer in {what}")]
    MalformedVarInt {
        /// Which field.
        what: &'static str,
    },
    /// A packet identifier is 0 where a non-zero one is required.
    #[error("{kind} has packet identifier 0")]
    ZeroPacketId {
        /// The packet type.
        kind: &'static str,
    },
    /// A topic name (PUBLISH, will, response topic) is invalid.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    /// A topic filter (SUBSCRIBE, UNSUBSCRIBE) is invalid.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    /// An unknown property identifier.
    #[error("unknown property identifier 0x{0:02X}")]
    UnknownProperty(u8),
    /// A property the packet type does not allow.
    #[error("property {} (0x{id:02X}) is not allowed in {kind}", property_name(*id))]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet type (or "will").
        kind: &'static str,
    },
    /// A property that may appear once appears twice.
    #[error("property {name} (0x{0:02X}) appears more than once", name = property_name(*.0))]
    DuplicateProperty(u8),
    /// A property value out of range (e.g. receive maximum 0, a boolean not 0 or 1).
    #[error("property {name} (0x{0:02X}) has an invalid value", name = property_name(*.0))]
    InvalidPropertyValue(u8),
    /// A reason code the packet type does not allow.
    #[error("reason code 0x{code:02X} is not valid in {kind}")]
    InvalidReasonCode {
        /// The packet type.
        kind: &'static str,
        /// The code.
        code: u8,
    },
    /// Another structural violation the spec calls a Malformed Packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// A violation the spec calls a Protocol Error.
    #[error("protocol error: {0}")]
    ProtocolError(&'static str),
}

impl DecodeError {
    /// The v5 reason code to close the connection with.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::InvalidTopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::ProtocolError(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::MalformedRemainingLength
            | DecodeError::InvalidProtocolName
            | DecodeError::InvalidPacketType(_)
            | DecodeError::InvalidFlags { .. }
            | DecodeError::InvalidQoS { .. }
            | DecodeError::InvalidUtf8 { .. }
            | DecodeError::NulInString { .. }
            | DecodeError::Truncated { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::MalformedVarInt { .. }
            | DecodeError::ZeroPacketId { .. }
            | DecodeError::InvalidTopicFilter(_)
            | DecodeError::UnknownProperty(_)
            | DecodeError::PropertyNotAllowed { .. }
            | DecodeError::InvalidReasonCode { .. }
            | DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
        }
    }
}

/// Why a packet cannot be encoded. These are the caller's mistakes: the packet is not valid for
/// the protocol version or exceeds a wire limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("{what} is {len} bytes long, the limit is 65535")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The remaining length would exceed 268,435,455.
    #[error("remaining length {len} exceeds the MQTT limit of 268435455")]
    PacketTooLarge {
        /// The remaining length the packet would have.
        len: usize,
    },
    /// The packet type does not exist in the protocol version (AUTH in 3.1.1).
    #[error("{kind} does not exist in {protocol}")]
    NotInVersion {
        /// The packet type.
        kind: &'static str,
        /// The version.
        protocol: crate::ProtocolVersion,
    },
    /// A QoS 1/2 PUBLISH without a packet identifier, or a QoS 0 PUBLISH with one.
    #[error("PUBLISH at {qos:?} {}", if *.qos == crate::QoS::AtMostOnce { "must not have a packet identifier" } else { "needs a packet identifier" })]
    PacketIdMismatch {
        /// The PUBLISH QoS.
        qos: crate::QoS,
    },
    /// A packet identifier is 0.
    #[error("{kind} has packet identifier 0")]
    ZeroPacketId {
        /// The packet type.
        kind: &'static str,
    },
    /// A PUBLISH without a topic name needs MQTT 5.0 and a topic alias.
    #[error("PUBLISH without a topic name needs MQTT 5.0 and a topic alias")]
    MissingTopic,
    /// A property the packet type does not allow.
    #[error("property {} (0x{id:02X}) is not allowed in {kind}", property_name(*id))]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet type (or "will").
        kind: &'static str,
    },
    /// A property value out of range, or repeated where it may not be.
    #[error("property {name} (0x{0:02X}) has an invalid value", name = property_name(*.0))]
    InvalidPropertyValue(u8),
    /// A reason code the packet type does not allow.
    #[error("reason code 0x{code:02X} is not valid in {kind}")]
    InvalidReasonCode {
        /// The packet type.
        kind: &'static str,
        /// The code.
        code: u8,
    },
    /// A list that must not be empty is empty (SUBSCRIBE filters, SUBACK reasons, ...).
    #[error("{kind} needs at least one entry")]
    EmptyList {
        /// The packet type.
        kind: &'static str,
    },
    /// Another combination the spec forbids.
    #[error("invalid packet: {0}")]
    Invalid(&'static str),
}
