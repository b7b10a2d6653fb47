//! Incremental, strict decoding: `Ok(None)` until a whole packet is buffered, then one packet.

use bytes::BytesMut;

use crate::codec::{Reader, VarInt, read_var_int};
use crate::error::DecodeError;
use crate::packet::*;
use crate::properties::{PropCtx, Properties};
use crate::reason::{
    ProtocolVersion, QoS, ReasonCode, ReasonSet, RetainHandling, connack_from_v311,
};
use crate::topic::{TopicFilter, TopicName};

/// Most that `decode` reserves ahead for an incomplete packet.
const RESERVE_LIMIT: usize = 64 * 1024;

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)`, consuming nothing, while the fixed header or the body is incomplete, and
/// `Ok(Some(packet))` after consuming exactly that packet. `protocol` is the connection's
/// negotiated version (pass [`ProtocolVersion::V5`] before CONNECT; CONNECT carries its own
/// level). `max_packet_size` bounds the whole packet, fixed header included, and is checked as
/// soon as the fixed header is readable, before the body arrives. On error the connection must
/// be closed; what is left in `buf` is unspecified.
pub fn decode(
    buf: &mut BytesMut,
    protocol: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (remaining, len_bytes) = match read_var_int(&buf[1..]) {
        VarInt::Value(value, len) => (value as usize, len),
        VarInt::Incomplete => return Ok(None),
        VarInt::Malformed => return Err(DecodeError::MalformedRemainingLength),
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    check_flags(packet_type, flags, protocol)?;
    let size = 1 + len_bytes + remaining;
    if size > max_packet_size as usize {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        // Room for the rest, but not on the peer's word alone for huge packets.
        buf.reserve((size - buf.len()).min(RESERVE_LIMIT));
        return Ok(None);
    }
    let mut frame = buf.split_to(size);
    let body = frame.split_off(1 + len_bytes).freeze();
    decode_body(packet_type, flags, Reader::new(body), protocol).map(Some)
}

/// Rejects reserved packet types and fixed-header flags that the packet type does not allow.
fn check_flags(packet_type: u8, flags: u8, protocol: ProtocolVersion) -> Result<(), DecodeError> {
    let expected = match packet_type {
        0 => return Err(DecodeError::InvalidPacketType(0)),
        15 if !protocol.is_v5() => return Err(DecodeError::InvalidPacketType(15)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS { what: "PUBLISH" });
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::InvalidFlags {
                    kind: "PUBLISH",
                    flags,
                });
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::InvalidFlags {
            kind: kind_of(packet_type),
            flags,
        });
    }
    Ok(())
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    mut r: Reader,
    v: ProtocolVersion,
) -> Result<Packet, DecodeError> {
    let packet = match packet_type {
        1 => Packet::Connect(connect(&mut r)?),
        2 => Packet::ConnAck(connack(&mut r, v)?),
        3 => Packet::Publish(publish(flags, &mut r, v)?),
        4 => Packet::PubAck(pub_resp(&mut r, v, "PUBACK", ReasonSet::PubAckRec)?),
        5 => Packet::PubRec(pub_resp(&mut r, v, "PUBREC", ReasonSet::PubAckRec)?),
        6 => Packet::PubRel(pub_resp(&mut r, v, "PUBREL", ReasonSet::PubRelComp)?),
        7 => Packet::PubComp(pub_resp(&mut r, v, "PUBCOMP", ReasonSet::PubRelComp)?),
        8 => Packet::Subscribe(subscribe(&mut r, v)?),
        9 => Packet::SubAck(suback(&mut r, v)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r, v)?),
        11 => Packet::UnsubAck(unsuback(&mut r, v)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(&mut r, v)?),
        15 => Packet::Auth(auth(&mut r)?),
        other => return Err(DecodeError::InvalidPacketType(other)),
    };
    r.finish(packet.kind())?;
    Ok(packet)
}

fn packet_id(r: &mut Reader, kind: &'static str) -> Result<u16, DecodeError> {
    match r.u16("packet identifier")? {
        0 => Err(DecodeError::ZeroPacketId { kind }),
        id => Ok(id),
    }
}

fn properties(r: &mut Reader, v: ProtocolVersion, ctx: PropCtx) -> Result<Properties, DecodeError> {
    if v.is_v5() {
        Properties::decode(r, ctx)
    } else {
        Ok(Properties::default())
    }
}

fn reason(r: &mut Reader, kind: &'static str, set: ReasonSet) -> Result<ReasonCode, DecodeError> {
    let code = ReasonCode(r.u8("reason code")?);
    if set.allows(code) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode { kind, code: code.0 })
    }
}

fn topic_name(r: &mut Reader, what: &'static str) -> Result<TopicName, DecodeError> {
    r.with_str(what, |s| TopicName::new(s))?
        .map_err(DecodeError::InvalidTopicName)
}

fn topic_filter(r: &mut Reader) -> Result<TopicFilter, DecodeError> {
    r.with_str("topic filter", |s| TopicFilter::new(s))?
        .map_err(DecodeError::InvalidTopicFilter)
}

fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V311,
        (b"MQTT" | b"MQIsdp", level) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let flags = r.u8("connect flags")?;
    if flags & 0b0000_0001 != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag is set"));
    }
    let clean_start = flags & 0b0000_0010 != 0;
    let has_will = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let has_password = flags & 0b0100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS { what: "will" })?;
    if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::Malformed(
            "will QoS or will retain set without the will flag",
        ));
    }
    if has_password && !has_username && !protocol.is_v5() {
        return Err(DecodeError::Malformed(
            "password flag set without user name flag",
        ));
    }
    let keep_alive = r.u16("keep alive")?;
    let connect_properties = properties(r, protocol, PropCtx::Connect)?;
    let client_id = r.string("client identifier")?;
    let will = if has_will {
        let will_properties = properties(r, protocol, PropCtx::Will)?;
        let topic = topic_name(r, "will topic")?;
        let payload = r.binary("will payload")?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary("password")?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties: connect_properties,
    })
}

fn connack(r: &mut Reader, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("connect acknowledge flags")?;
    if flags & 0b1111_1110 != 0 {
        return Err(DecodeError::Malformed("CONNACK reserved flags are set"));
    }
    let session_present = flags & 1 != 0;
    let reason = if v.is_v5() {
        reason(r, "CONNACK", ReasonSet::ConnAck)?
    } else {
        let code = r.u8("return code")?;
        connack_from_v311(code).ok_or(DecodeError::InvalidReasonCode {
            kind: "CONNACK",
            code,
        })?
    };
    if session_present && reason.is_error() {
        return Err(DecodeError::ProtocolError(
            "CONNACK with an error sets session present",
        ));
    }
    let properties = properties(r, v, PropCtx::ConnAck)?;
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

fn publish(flags: u8, r: &mut Reader, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let dup = flags & 0b1000 != 0;
    let qos =
        QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS { what: "PUBLISH" })?;
    let retain = flags & 0b0001 != 0;
    let topic = r.with_str("topic name", |s| {
        if s.is_empty() {
            Ok(None)
        } else {
            TopicName::new(s).map(Some)
        }
    })?;
    let topic = topic.map_err(DecodeError::InvalidTopicName)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(r, "PUBLISH")?)
    };
    let properties = properties(r, v, PropCtx::Publish)?;
    if topic.is_none() {
        if !v.is_v5() {
            return Err(DecodeError::InvalidTopicName(crate::TopicError::Empty));
        }
        if properties.topic_alias.is_none() {
            return Err(DecodeError::ProtocolError(
                "PUBLISH with an empty topic name and no topic alias",
            ));
        }
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
        properties,
    })
}

fn pub_resp(
    r: &mut Reader,
    v: ProtocolVersion,
    kind: &'static str,
    set: ReasonSet,
) -> Result<PubResp, DecodeError> {
    let packet_id = packet_id(r, kind)?;
    // v5 may omit the reason code (remaining length 2) and the properties (remaining length 3).
    let reason = if v.is_v5() && !r.is_empty() {
        reason(r, kind, set)?
    } else {
        ReasonCode::SUCCESS
    };
    let properties = if v.is_v5() && !r.is_empty() {
        Properties::decode(r, PropCtx::PubResp(kind))?
    } else {
        Properties::default()
    };
    Ok(PubResp {
        packet_id,
        reason,
        properties,
    })
}

fn subscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r, "SUBSCRIBE")?;
    let properties = properties(r, v, PropCtx::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(r)?;
        let options = r.u8("subscription options")?;
        let reserved = if v.is_v5() { 0b1100_0000 } else { 0b1111_1100 };
        if options & reserved != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits are set",
            ));
        }
        let qos = QoS::from_u8(options & 0b11).ok_or(DecodeError::InvalidQoS {
            what: "subscription options",
        })?;
        let retain_handling = RetainHandling::from_u8((options >> 4) & 0b11)
            .ok_or(DecodeError::Malformed("retain handling is 3"))?;
        let no_local = options & 0b0100 != 0;
        if no_local && filter.is_shared() {
            return Err(DecodeError::ProtocolError(
                "no local set on a shared subscription",
            ));
        }
        filters.push(Subscription {
            filter,
            qos,
            no_local,
            retain_as_published: options & 0b1000 != 0,
            retain_handling,
        });
    }
    if filters.is_empty() {
        return Err(DecodeError::ProtocolError(
            "SUBSCRIBE without topic filters",
        ));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn suback(r: &mut Reader, v: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r, "SUBACK")?;
    let properties = properties(r, v, PropCtx::SubAck)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = if v.is_v5() {
            reason(r, "SUBACK", ReasonSet::SubAck)?
        } else {
            match r.u8("return code")? {
                code @ (0x00..=0x02 | 0x80) => ReasonCode(code),
                code => {
                    return Err(DecodeError::InvalidReasonCode {
                        kind: "SUBACK",
                        code,
                    });
                }
            }
        };
        reasons.push(code);
    }
    if reasons.is_empty() {
        return Err(DecodeError::ProtocolError("SUBACK without return codes"));
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

fn unsubscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r, "UNSUBSCRIBE")?;
    let properties = properties(r, v, PropCtx::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(r)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::ProtocolError(
            "UNSUBSCRIBE without topic filters",
        ));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn unsuback(r: &mut Reader, v: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r, "UNSUBACK")?;
    let mut reasons = Vec::new();
    let properties = if v.is_v5() {
        let properties = Properties::decode(r, PropCtx::UnsubAck)?;
        while !r.is_empty() {
            reasons.push(reason(r, "UNSUBACK", ReasonSet::UnsubAck)?);
        }
        if reasons.is_empty() {
            return Err(DecodeError::ProtocolError("UNSUBACK without reason codes"));
        }
        properties
    } else {
        Properties::default()
    };
    Ok(UnsubAck {
        packet_id,
        reasons,
        properties,
    })
}

fn disconnect(r: &mut Reader, v: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    let mut packet = Disconnect::default();
    // v5 may omit the reason code (remaining length 0) and the properties (remaining length 1).
    if v.is_v5() && !r.is_empty() {
        packet.reason = reason(r, "DISCONNECT", ReasonSet::Disconnect)?;
        if !r.is_empty() {
            packet.properties = Properties::decode(r, PropCtx::Disconnect)?;
        }
    }
    Ok(packet)
}

fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let mut packet = Auth {
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    };
    if !r.is_empty() {
        packet.reason = reason(r, "AUTH", ReasonSet::Auth)?;
        if !r.is_empty() {
            packet.properties = Properties::decode(r, PropCtx::Auth)?;
        }
    }
    Ok(packet)
}
