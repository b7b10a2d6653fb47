//! The packet structs. One shape serves both protocol versions: v5-only fields are empty for
//! MQTT 3.1.1, and reason codes are always v5 codes in memory.

use bytes::Bytes;

use crate::properties::Properties;
use crate::reason::{ProtocolVersion, QoS, ReasonCode, RetainHandling};
use crate::topic::{TopicFilter, TopicName};

/// CONNECT: the first packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version the client asks for (from the protocol level byte).
    pub protocol: ProtocolVersion,
    /// Clean Start (v5) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds, 0 = off.
    pub keep_alive: u16,
    /// Client identifier; may be empty (the broker decides whether to assign one).
    pub client_id: String,
    /// The will message, published if the connection ends abnormally.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<String>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// CONNECT properties (v5).
    pub properties: Properties,
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic to publish to.
    pub topic: TopicName,
    /// Message payload (at most 65,535 bytes: it is a binary field in CONNECT).
    pub payload: Bytes,
    /// Publish QoS.
    pub qos: QoS,
    /// Publish as retained.
    pub retain: bool,
    /// Will properties (v5): payload format, expiry, content type, response topic, correlation
    /// data, will delay, user properties.
    pub properties: Properties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (must be false with an error reason).
    pub session_present: bool,
    /// A v5 reason code; mapped to a 3.1.1 return code on encode (0x84 -> 1, 0x85 -> 2,
    /// 0x86 -> 4, 0x87/0x8A/0x8C -> 5, other errors -> 3) and back on decode.
    pub reason: ReasonCode,
    /// CONNACK properties (v5).
    pub properties: Properties,
}

/// PUBLISH: an application message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Re-delivery flag; only with QoS 1 or 2.
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// The topic; `None` when the wire topic was empty, which only v5 allows and only with a
    /// topic alias property.
    pub topic: Option<TopicName>,
    /// Packet identifier: `Some` (non-zero) iff `qos` is above 0.
    pub packet_id: Option<u16>,
    /// Application payload, split from the input without copying.
    pub payload: Bytes,
    /// PUBLISH properties (v5).
    pub properties: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResp {
    /// The packet identifier being acknowledged.
    pub packet_id: u16,
    /// Reason code (v5); not on the wire in 3.1.1.
    pub reason: ReasonCode,
    /// Properties (v5): reason string, user properties.
    pub properties: Properties,
}

impl PubResp {
    /// A successful acknowledgement without properties.
    pub fn new(packet_id: u16) -> PubResp {
        PubResp {
            packet_id,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier, non-zero.
    pub packet_id: u16,
    /// At least one subscription.
    pub filters: Vec<Subscription>,
    /// SUBSCRIBE properties (v5): at most one subscription identifier, user properties.
    pub properties: Properties,
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The filter, possibly `$share/{group}/...`.
    pub filter: TopicFilter,
    /// Maximum QoS requested.
    pub qos: QoS,
    /// Do not deliver the client's own publications (v5; not allowed on shared subscriptions).
    pub no_local: bool,
    /// Keep the retain flag as published (v5).
    pub retain_as_published: bool,
    /// When to send retained messages (v5).
    pub retain_handling: RetainHandling,
}

impl Subscription {
    /// A subscription with the 3.1.1 defaults for the v5-only options.
    pub fn new(filter: TopicFilter, qos: QoS) -> Subscription {
        Subscription {
            filter,
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// One per filter: a granted QoS (0x00..0x02) or an error. In 3.1.1 every error is 0x80.
    pub reasons: Vec<ReasonCode>,
    /// SUBACK properties (v5).
    pub properties: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, non-zero.
    pub packet_id: u16,
    /// At least one filter.
    pub filters: Vec<TopicFilter>,
    /// UNSUBSCRIBE properties (v5): user properties only.
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// One per filter (v5). 3.1.1 has none on the wire: dropped on encode, empty on decode.
    pub reasons: Vec<ReasonCode>,
    /// UNSUBACK properties (v5).
    pub properties: Properties,
}

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (v5); 3.1.1 DISCONNECT has an empty body.
    pub reason: ReasonCode,
    /// DISCONNECT properties (v5).
    pub properties: Properties,
}

impl Default for Disconnect {
    fn default() -> Self {
        Disconnect {
            reason: ReasonCode::NORMAL_DISCONNECTION,
            properties: Properties::default(),
        }
    }
}

/// AUTH (v5 only): extended authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, continue authentication or re-authenticate.
    pub reason: ReasonCode,
    /// AUTH properties: authentication method and data, reason string, user properties.
    pub properties: Properties,
}

/// Any MQTT control packet.
// Connect is the largest variant by far but arrives once per connection; the broker is written
// against unboxed variants, so the size difference is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Connect),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubResp),
    /// PUBREC.
    PubRec(PubResp),
    /// PUBREL.
    PubRel(PubResp),
    /// PUBCOMP.
    PubComp(PubResp),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (v5 only).
    Auth(Auth),
}

impl Packet {
    /// The packet type's spec name ("CONNECT", "PUBLISH", ...), for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }

    /// The packet type number (1..=15) from the fixed header.
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck(_) => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck(_) => 4,
            Packet::PubRec(_) => 5,
            Packet::PubRel(_) => 6,
            Packet::PubComp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::SubAck(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::UnsubAck(_) => 11,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }
}

/// The spec name of a packet type number.
pub(crate) fn kind_of(packet_type: u8) -> &'static str {
    match packet_type {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "reserved",
    }
}
