//! MQTT 5.0 properties: one struct for every packet type, checked against spec table 2.4.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{self, Reader, field_len, put_field, put_var_int, var_int_len};
use crate::error::{DecodeError, EncodeError};
use crate::topic::TopicName;

/// Property identifiers (MQTT 5.0 section 2.2.2.2).
pub mod id {
    /// Payload Format Indicator (byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (u32).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (string).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (string).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (variable byte integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (u32).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (string).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (u16).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (string).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (u32).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (string).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (string).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (string).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (u16).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (u16).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (u16).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (string pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (u32).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

use id::*;

/// The spec name of a property identifier, for error messages.
pub fn property_name(id: u8) -> &'static str {
    match id {
        PAYLOAD_FORMAT_INDICATOR => "Payload Format Indicator",
        MESSAGE_EXPIRY_INTERVAL => "Message Expiry Interval",
        CONTENT_TYPE => "Content Type",
        RESPONSE_TOPIC => "Response Topic",
        CORRELATION_DATA => "Correlation Data",
        SUBSCRIPTION_IDENTIFIER => "Subscription Identifier",
        SESSION_EXPIRY_INTERVAL => "Session Expiry Interval",
        ASSIGNED_CLIENT_IDENTIFIER => "Assigned Client Identifier",
        SERVER_KEEP_ALIVE => "Server Keep Alive",
        AUTHENTICATION_METHOD => "Authentication Method",
        AUTHENTICATION_DATA => "Authentication Data",
        REQUEST_PROBLEM_INFORMATION => "Request Problem Information",
        WILL_DELAY_INTERVAL => "Will Delay Interval",
        REQUEST_RESPONSE_INFORMATION => "Request Response Information",
        RESPONSE_INFORMATION => "Response Information",
        SERVER_REFERENCE => "Server Reference",
        REASON_STRING => "Reason String",
        RECEIVE_MAXIMUM => "Receive Maximum",
        TOPIC_ALIAS_MAXIMUM => "Topic Alias Maximum",
        TOPIC_ALIAS => "Topic Alias",
        MAXIMUM_QOS => "Maximum QoS",
        RETAIN_AVAILABLE => "Retain Available",
        USER_PROPERTY => "User Property",
        MAXIMUM_PACKET_SIZE => "Maximum Packet Size",
        WILDCARD_SUBSCRIPTION_AVAILABLE => "Wildcard Subscription Available",
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => "Subscription Identifier Available",
        SHARED_SUBSCRIPTION_AVAILABLE => "Shared Subscription Available",
        _ => "unknown",
    }
}

/// The largest subscription identifier (a variable byte integer).
pub const MAX_SUBSCRIPTION_IDENTIFIER: u32 = 268_435_455;

/// All MQTT 5.0 properties. Absent ones are `None` or empty; for MQTT 3.1.1 the whole struct is
/// empty on decode and ignored on encode. Which ones a packet may carry is checked on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: 0 = unspecified bytes, 1 = UTF-8 payload (PUBLISH, will).
    pub payload_format_indicator: Option<u8>,
    /// 0x02: seconds until the message expires (PUBLISH, will).
    pub message_expiry_interval: Option<u32>,
    /// 0x03: MIME type of the payload (PUBLISH, will).
    pub content_type: Option<String>,
    /// 0x08: topic name for a response (PUBLISH, will).
    pub response_topic: Option<String>,
    /// 0x09: request/response correlation (PUBLISH, will).
    pub correlation_data: Option<Bytes>,
    /// 0x0B: identifiers of matching subscriptions (PUBLISH: any number; SUBSCRIBE: at most one).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: seconds the session outlives the connection (CONNECT, CONNACK, DISCONNECT).
    pub session_expiry_interval: Option<u32>,
    /// 0x12: client identifier chosen by the server (CONNACK).
    pub assigned_client_identifier: Option<String>,
    /// 0x13: keep alive imposed by the server (CONNACK).
    pub server_keep_alive: Option<u16>,
    /// 0x15: extended authentication method (CONNECT, CONNACK, AUTH).
    pub authentication_method: Option<String>,
    /// 0x16: extended authentication data (CONNECT, CONNACK, AUTH).
    pub authentication_data: Option<Bytes>,
    /// 0x17: 0 or 1 (CONNECT).
    pub request_problem_information: Option<u8>,
    /// 0x18: seconds to delay the will (will).
    pub will_delay_interval: Option<u32>,
    /// 0x19: 0 or 1 (CONNECT).
    pub request_response_information: Option<u8>,
    /// 0x1A: basis for response topics (CONNACK).
    pub response_information: Option<String>,
    /// 0x1C: another server to use (CONNACK, DISCONNECT).
    pub server_reference: Option<String>,
    /// 0x1F: human-readable diagnostics (acks, DISCONNECT, AUTH).
    pub reason_string: Option<String>,
    /// 0x21: in-flight QoS 1/2 limit, non-zero (CONNECT, CONNACK).
    pub receive_maximum: Option<u16>,
    /// 0x22: highest topic alias accepted (CONNECT, CONNACK).
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: topic alias, non-zero (PUBLISH).
    pub topic_alias: Option<u16>,
    /// 0x24: 0 or 1 (CONNACK).
    pub maximum_qos: Option<u8>,
    /// 0x25: 0 or 1 (CONNACK).
    pub retain_available: Option<u8>,
    /// 0x26: name/value pairs, in order, repeats allowed (every packet).
    pub user_properties: Vec<(String, String)>,
    /// 0x27: largest packet accepted, non-zero (CONNECT, CONNACK).
    pub maximum_packet_size: Option<u32>,
    /// 0x28: 0 or 1 (CONNACK).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29: 0 or 1 (CONNACK).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A: 0 or 1 (CONNACK).
    pub shared_subscription_available: Option<u8>,
}

/// Where a property set appears; decides which properties are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropCtx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubResp(&'static str),
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < ids.len() {
        mask |= 1 << ids[i];
        i += 1;
    }
    mask
}

impl PropCtx {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            PropCtx::Connect => "CONNECT",
            PropCtx::Will => "will properties",
            PropCtx::ConnAck => "CONNACK",
            PropCtx::Publish => "PUBLISH",
            PropCtx::PubResp(kind) => kind,
            PropCtx::Subscribe => "SUBSCRIBE",
            PropCtx::SubAck => "SUBACK",
            PropCtx::Unsubscribe => "UNSUBSCRIBE",
            PropCtx::UnsubAck => "UNSUBACK",
            PropCtx::Disconnect => "DISCONNECT",
            PropCtx::Auth => "AUTH",
        }
    }

    /// Spec table 2.4, as a bit per allowed identifier.
    fn allowed(self) -> u64 {
        const MESSAGE: [u8; 6] = [
            PAYLOAD_FORMAT_INDICATOR,
            MESSAGE_EXPIRY_INTERVAL,
            CONTENT_TYPE,
            RESPONSE_TOPIC,
            CORRELATION_DATA,
            USER_PROPERTY,
        ];
        match self {
            PropCtx::Connect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REQUEST_PROBLEM_INFORMATION,
                REQUEST_RESPONSE_INFORMATION,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
            ]),
            PropCtx::Will => bits(&MESSAGE) | bits(&[WILL_DELAY_INTERVAL]),
            PropCtx::ConnAck => bits(&[
                SESSION_EXPIRY_INTERVAL,
                ASSIGNED_CLIENT_IDENTIFIER,
                SERVER_KEEP_ALIVE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                REASON_STRING,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ]),
            PropCtx::Publish => bits(&MESSAGE) | bits(&[SUBSCRIPTION_IDENTIFIER, TOPIC_ALIAS]),
            PropCtx::PubResp(_) | PropCtx::SubAck | PropCtx::UnsubAck => {
                bits(&[REASON_STRING, USER_PROPERTY])
            }
            PropCtx::Subscribe => bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
            PropCtx::Unsubscribe => bits(&[USER_PROPERTY]),
            PropCtx::Disconnect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                SERVER_REFERENCE,
                REASON_STRING,
                USER_PROPERTY,
            ]),
            PropCtx::Auth => bits(&[
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REASON_STRING,
                USER_PROPERTY,
            ]),
        }
    }
}

/// What is wrong with a property set, before it is attributed to decoding or encoding.
pub(crate) enum Problem {
    NotAllowed(u8),
    InvalidValue(u8),
    TooLong(u8, usize),
}

impl Problem {
    fn decode_error(self, ctx: PropCtx) -> DecodeError {
        match self {
            Problem::NotAllowed(id) => DecodeError::PropertyNotAllowed {
                id,
                kind: ctx.kind(),
            },
            // Decoded fields cannot be longer than their u16 prefix allows.
            Problem::InvalidValue(id) | Problem::TooLong(id, _) => {
                DecodeError::InvalidPropertyValue(id)
            }
        }
    }

    fn encode_error(self, ctx: PropCtx) -> EncodeError {
        match self {
            Problem::NotAllowed(id) => EncodeError::PropertyNotAllowed {
                id,
                kind: ctx.kind(),
            },
            Problem::InvalidValue(id) => EncodeError::InvalidPropertyValue(id),
            Problem::TooLong(id, len) => EncodeError::FieldTooLong {
                what: property_name(id),
                len,
            },
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, id: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.present() == 0
    }

    /// A bit per identifier that is present.
    fn present(&self) -> u64 {
        fn bit(present: bool, id: u8) -> u64 {
            u64::from(present) << id
        }
        bit(
            self.payload_format_indicator.is_some(),
            PAYLOAD_FORMAT_INDICATOR,
        ) | bit(
            self.message_expiry_interval.is_some(),
            MESSAGE_EXPIRY_INTERVAL,
        ) | bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.response_topic.is_some(), RESPONSE_TOPIC)
            | bit(self.correlation_data.is_some(), CORRELATION_DATA)
            | bit(
                !self.subscription_identifiers.is_empty(),
                SUBSCRIPTION_IDENTIFIER,
            )
            | bit(
                self.session_expiry_interval.is_some(),
                SESSION_EXPIRY_INTERVAL,
            )
            | bit(
                self.assigned_client_identifier.is_some(),
                ASSIGNED_CLIENT_IDENTIFIER,
            )
            | bit(self.server_keep_alive.is_some(), SERVER_KEEP_ALIVE)
            | bit(self.authentication_method.is_some(), AUTHENTICATION_METHOD)
            | bit(self.authentication_data.is_some(), AUTHENTICATION_DATA)
            | bit(
                self.request_problem_information.is_some(),
                REQUEST_PROBLEM_INFORMATION,
            )
            | bit(self.will_delay_interval.is_some(), WILL_DELAY_INTERVAL)
            | bit(
                self.request_response_information.is_some(),
                REQUEST_RESPONSE_INFORMATION,
            )
            | bit(self.response_information.is_some(), RESPONSE_INFORMATION)
            | bit(self.server_reference.is_some(), SERVER_REFERENCE)
            | bit(self.reason_string.is_some(), REASON_STRING)
            | bit(self.receive_maximum.is_some(), RECEIVE_MAXIMUM)
            | bit(self.topic_alias_maximum.is_some(), TOPIC_ALIAS_MAXIMUM)
            | bit(self.topic_alias.is_some(), TOPIC_ALIAS)
            | bit(self.maximum_qos.is_some(), MAXIMUM_QOS)
            | bit(self.retain_available.is_some(), RETAIN_AVAILABLE)
            | bit(!self.user_properties.is_empty(), USER_PROPERTY)
            | bit(self.maximum_packet_size.is_some(), MAXIMUM_PACKET_SIZE)
            | bit(
                self.wildcard_subscription_available.is_some(),
                WILDCARD_SUBSCRIPTION_AVAILABLE,
            )
            | bit(
                self.subscription_identifier_available.is_some(),
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            )
            | bit(
                self.shared_subscription_available.is_some(),
                SHARED_SUBSCRIPTION_AVAILABLE,
            )
    }

    /// Checks presence against `ctx` and every value against its range; shared by both sides.
    fn check(&self, ctx: PropCtx) -> Result<(), Problem> {
        let not_allowed = self.present() & !ctx.allowed();
        if not_allowed != 0 {
            return Err(Problem::NotAllowed(not_allowed.trailing_zeros() as u8));
        }
        let flags = [
            (self.payload_format_indicator, PAYLOAD_FORMAT_INDICATOR),
            (
                self.request_problem_information,
                REQUEST_PROBLEM_INFORMATION,
            ),
            (
                self.request_response_information,
                REQUEST_RESPONSE_INFORMATION,
            ),
            (self.maximum_qos, MAXIMUM_QOS),
            (self.retain_available, RETAIN_AVAILABLE),
            (
                self.wildcard_subscription_available,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
            ),
            (
                self.subscription_identifier_available,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            ),
            (
                self.shared_subscription_available,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ),
        ];
        for (value, id) in flags {
            if value.is_some_and(|v| v > 1) {
                return Err(Problem::InvalidValue(id));
            }
        }
        let non_zero = [
            (self.receive_maximum.map(u32::from), RECEIVE_MAXIMUM),
            (self.topic_alias.map(u32::from), TOPIC_ALIAS),
            (self.maximum_packet_size, MAXIMUM_PACKET_SIZE),
        ];
        for (value, id) in non_zero {
            if value == Some(0) {
                return Err(Problem::InvalidValue(id));
            }
        }
        if self.subscription_identifiers.len() > 1 && ctx != PropCtx::Publish {
            return Err(Problem::InvalidValue(SUBSCRIPTION_IDENTIFIER));
        }
        if self
            .subscription_identifiers
            .iter()
            .any(|&sid| sid == 0 || sid > MAX_SUBSCRIPTION_IDENTIFIER)
        {
            return Err(Problem::InvalidValue(SUBSCRIPTION_IDENTIFIER));
        }
        if let Some(topic) = &self.response_topic
            && TopicName::validate(topic).is_err()
        {
            return Err(Problem::InvalidValue(RESPONSE_TOPIC));
        }
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(Problem::InvalidValue(AUTHENTICATION_DATA));
        }
        let fields = [
            (self.content_type.as_deref().map(str::len), CONTENT_TYPE),
            (self.response_topic.as_deref().map(str::len), RESPONSE_TOPIC),
            (
                self.correlation_data.as_ref().map(Bytes::len),
                CORRELATION_DATA,
            ),
            (
                self.assigned_client_identifier.as_deref().map(str::len),
                ASSIGNED_CLIENT_IDENTIFIER,
            ),
            (
                self.authentication_method.as_deref().map(str::len),
                AUTHENTICATION_METHOD,
            ),
            (
                self.authentication_data.as_ref().map(Bytes::len),
                AUTHENTICATION_DATA,
            ),
            (
                self.response_information.as_deref().map(str::len),
                RESPONSE_INFORMATION,
            ),
            (
                self.server_reference.as_deref().map(str::len),
                SERVER_REFERENCE,
            ),
            (self.reason_string.as_deref().map(str::len), REASON_STRING),
        ];
        for (len, id) in fields {
            if let Some(len) = len.filter(|&len| len > codec::MAX_FIELD_LEN) {
                return Err(Problem::TooLong(id, len));
            }
        }
        for (name, value) in &self.user_properties {
            let len = name.len().max(value.len());
            if len > codec::MAX_FIELD_LEN {
                return Err(Problem::TooLong(USER_PROPERTY, len));
            }
        }
        Ok(())
    }

    /// Reads a property length and the properties it covers.
    pub(crate) fn decode(r: &mut Reader, ctx: PropCtx) -> Result<Properties, DecodeError> {
        let len = r.var_int("property length")?;
        let mut r = Reader::new(r.take(len as usize, "properties")?);
        let mut p = Properties::default();
        while !r.is_empty() {
            let id = r.u8("property identifier")?;
            let what = property_name(id);
            match id {
                PAYLOAD_FORMAT_INDICATOR => {
                    set_once(&mut p.payload_format_indicator, r.u8(what)?, id)?
                }
                MESSAGE_EXPIRY_INTERVAL => {
                    set_once(&mut p.message_expiry_interval, r.u32(what)?, id)?
                }
                CONTENT_TYPE => set_once(&mut p.content_type, r.string(what)?, id)?,
                RESPONSE_TOPIC => set_once(&mut p.response_topic, r.string(what)?, id)?,
                CORRELATION_DATA => set_once(&mut p.correlation_data, r.binary(what)?, id)?,
                SUBSCRIPTION_IDENTIFIER => {
                    let value = r.var_int(what)?;
                    if ctx != PropCtx::Publish && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::DuplicateProperty(id));
                    }
                    p.subscription_identifiers.push(value);
                }
                SESSION_EXPIRY_INTERVAL => {
                    set_once(&mut p.session_expiry_interval, r.u32(what)?, id)?
                }
                ASSIGNED_CLIENT_IDENTIFIER => {
                    set_once(&mut p.assigned_client_identifier, r.string(what)?, id)?
                }
                SERVER_KEEP_ALIVE => set_once(&mut p.server_keep_alive, r.u16(what)?, id)?,
                AUTHENTICATION_METHOD => {
                    set_once(&mut p.authentication_method, r.string(what)?, id)?
                }
                AUTHENTICATION_DATA => set_once(&mut p.authentication_data, r.binary(what)?, id)?,
                REQUEST_PROBLEM_INFORMATION => {
                    set_once(&mut p.request_problem_information, r.u8(what)?, id)?
                }
                WILL_DELAY_INTERVAL => set_once(&mut p.will_delay_interval, r.u32(what)?, id)?,
                REQUEST_RESPONSE_INFORMATION => {
                    set_once(&mut p.request_response_information, r.u8(what)?, id)?
                }
                RESPONSE_INFORMATION => set_once(&mut p.response_information, r.string(what)?, id)?,
                SERVER_REFERENCE => set_once(&mut p.server_reference, r.string(what)?, id)?,
                REASON_STRING => set_once(&mut p.reason_string, r.string(what)?, id)?,
                RECEIVE_MAXIMUM => set_once(&mut p.receive_maximum, r.u16(what)?, id)?,
                TOPIC_ALIAS_MAXIMUM => set_once(&mut p.topic_alias_maximum, r.u16(what)?, id)?,
                TOPIC_ALIAS => set_once(&mut p.topic_alias, r.u16(what)?, id)?,
                MAXIMUM_QOS => set_once(&mut p.maximum_qos, r.u8(what)?, id)?,
                RETAIN_AVAILABLE => set_once(&mut p.retain_available, r.u8(what)?, id)?,
                USER_PROPERTY => {
                    let name = r.string(what)?;
                    let value = r.string(what)?;
                    p.user_properties.push((name, value));
                }
                MAXIMUM_PACKET_SIZE => set_once(&mut p.maximum_packet_size, r.u32(what)?, id)?,
                WILDCARD_SUBSCRIPTION_AVAILABLE => {
                    set_once(&mut p.wildcard_subscription_available, r.u8(what)?, id)?
                }
                SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                    set_once(&mut p.subscription_identifier_available, r.u8(what)?, id)?
                }
                SHARED_SUBSCRIPTION_AVAILABLE => {
                    set_once(&mut p.shared_subscription_available, r.u8(what)?, id)?
                }
                other => return Err(DecodeError::UnknownProperty(other)),
            }
        }
        p.check(ctx).map_err(|problem| problem.decode_error(ctx))?;
        Ok(p)
    }

    /// Checks the properties can be encoded in `ctx`.
    pub(crate) fn validate(&self, ctx: PropCtx) -> Result<(), EncodeError> {
        self.check(ctx).map_err(|problem| problem.encode_error(ctx))
    }

    /// Length of the properties without their length prefix.
    pub(crate) fn body_len(&self) -> usize {
        fn opt<T>(value: &Option<T>, len: impl FnOnce(&T) -> usize) -> usize {
            value.as_ref().map_or(0, |v| 1 + len(v))
        }
        let str_len = |s: &String| field_len(s.len());
        let bin_len = |b: &Bytes| field_len(b.len());
        opt(&self.payload_format_indicator, |_| 1)
            + opt(&self.message_expiry_interval, |_| 4)
            + opt(&self.content_type, str_len)
            + opt(&self.response_topic, str_len)
            + opt(&self.correlation_data, bin_len)
            + self
                .subscription_identifiers
                .iter()
                .map(|&sid| 1 + var_int_len(sid as usize))
                .sum::<usize>()
            + opt(&self.session_expiry_interval, |_| 4)
            + opt(&self.assigned_client_identifier, str_len)
            + opt(&self.server_keep_alive, |_| 2)
            + opt(&self.authentication_method, str_len)
            + opt(&self.authentication_data, bin_len)
            + opt(&self.request_problem_information, |_| 1)
            + opt(&self.will_delay_interval, |_| 4)
            + opt(&self.request_response_information, |_| 1)
            + opt(&self.response_information, str_len)
            + opt(&self.server_reference, str_len)
            + opt(&self.reason_string, str_len)
            + opt(&self.receive_maximum, |_| 2)
            + opt(&self.topic_alias_maximum, |_| 2)
            + opt(&self.topic_alias, |_| 2)
            + opt(&self.maximum_qos, |_| 1)
            + opt(&self.retain_available, |_| 1)
            + self
                .user_properties
                .iter()
                .map(|(k, v)| 1 + field_len(k.len()) + field_len(v.len()))
                .sum::<usize>()
            + opt(&self.maximum_packet_size, |_| 4)
            + opt(&self.wildcard_subscription_available, |_| 1)
            + opt(&self.subscription_identifier_available, |_| 1)
            + opt(&self.shared_subscription_available, |_| 1)
    }

    /// Length including the property length prefix.
    pub(crate) fn wire_len(&self) -> usize {
        let body = self.body_len();
        var_int_len(body) + body
    }

    /// Writes the property length and the properties; [`Properties::validate`] must have passed.
    pub(crate) fn write(&self, buf: &mut BytesMut) {
        put_var_int(buf, self.body_len());
        fn byte(buf: &mut BytesMut, id: u8, v: Option<u8>) {
            if let Some(v) = v {
                buf.put_u8(id);
                buf.put_u8(v);
            }
        }
        fn u16(buf: &mut BytesMut, id: u8, v: Option<u16>) {
            if let Some(v) = v {
                buf.put_u8(id);
                buf.put_u16(v);
            }
        }
        fn u32(buf: &mut BytesMut, id: u8, v: Option<u32>) {
            if let Some(v) = v {
                buf.put_u8(id);
                buf.put_u32(v);
            }
        }
        fn field(buf: &mut BytesMut, id: u8, v: Option<&[u8]>) {
            if let Some(v) = v {
                buf.put_u8(id);
                put_field(buf, v);
            }
        }
        fn s(v: &Option<String>) -> Option<&[u8]> {
            v.as_ref().map(|s| s.as_bytes())
        }
        fn b(v: &Option<Bytes>) -> Option<&[u8]> {
            v.as_ref().map(|b| &b[..])
        }
        byte(buf, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32(buf, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        field(buf, CONTENT_TYPE, s(&self.content_type));
        field(buf, RESPONSE_TOPIC, s(&self.response_topic));
        field(buf, CORRELATION_DATA, b(&self.correlation_data));
        for &sid in &self.subscription_identifiers {
            buf.put_u8(SUBSCRIPTION_IDENTIFIER);
            put_var_int(buf, sid as usize);
        }
        u32(buf, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        field(
            buf,
            ASSIGNED_CLIENT_IDENTIFIER,
            s(&self.assigned_client_identifier),
        );
        u16(buf, SERVER_KEEP_ALIVE, self.server_keep_alive);
        field(buf, AUTHENTICATION_METHOD, s(&self.authentication_method));
        field(buf, AUTHENTICATION_DATA, b(&self.authentication_data));
        byte(
            buf,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        u32(buf, WILL_DELAY_INTERVAL, self.will_delay_interval);
        byte(
            buf,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        field(buf, RESPONSE_INFORMATION, s(&self.response_information));
        field(buf, SERVER_REFERENCE, s(&self.server_reference));
        field(buf, REASON_STRING, s(&self.reason_string));
        u16(buf, RECEIVE_MAXIMUM, self.receive_maximum);
        u16(buf, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        u16(buf, TOPIC_ALIAS, self.topic_alias);
        byte(buf, MAXIMUM_QOS, self.maximum_qos);
        byte(buf, RETAIN_AVAILABLE, self.retain_available);
        for (name, value) in &self.user_properties {
            buf.put_u8(USER_PROPERTY);
            put_field(buf, name.as_bytes());
            put_field(buf, value.as_bytes());
        }
        u32(buf, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        byte(
            buf,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        byte(
            buf,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifier_available,
        );
        byte(
            buf,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}
