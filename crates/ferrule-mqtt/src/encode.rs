//! Encoding: validate, size, then write in one pass into the caller's buffer.

use bytes::{BufMut, BytesMut};

use crate::codec::{
    MAX_REMAINING_LENGTH, check_field, field_len, put_field, put_var_int, var_int_len,
};
use crate::error::EncodeError;
use crate::packet::*;
use crate::properties::{PropCtx, Properties};
use crate::reason::{ProtocolVersion, QoS, ReasonCode, ReasonSet, connack_v311_code};

/// Appends `packet` to `buf`, as MQTT 3.1.1 or 5.0 per `protocol` (CONNECT uses its own
/// `protocol` field). Properties are written only for v5; v5-only fields (reason codes of acks,
/// subscription options) are dropped for 3.1.1. On error nothing is appended.
pub fn encode(
    packet: &Packet,
    protocol: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    validate(packet, protocol)?;
    let remaining = remaining_len(packet, protocol);
    if remaining > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge { len: remaining });
    }
    buf.reserve(1 + var_int_len(remaining) + remaining);
    buf.put_u8(first_byte(packet));
    put_var_int(buf, remaining);
    let start = buf.len();
    write_body(packet, protocol, buf);
    debug_assert_eq!(buf.len() - start, remaining, "{} length", packet.kind());
    Ok(())
}

/// The number of bytes [`encode`] appends for `packet`, when it succeeds.
pub fn encoded_len(packet: &Packet, protocol: ProtocolVersion) -> usize {
    let remaining = remaining_len(packet, protocol);
    1 + var_int_len(remaining) + remaining
}

fn first_byte(packet: &Packet) -> u8 {
    let flags = match packet {
        Packet::Publish(p) => (u8::from(p.dup) << 3) | (p.qos.as_u8() << 1) | u8::from(p.retain),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    (packet.packet_type() << 4) | flags
}

fn props_len(properties: &Properties, v: ProtocolVersion) -> usize {
    if v.is_v5() { properties.wire_len() } else { 0 }
}

/// Whether a v5 ack may stop after the packet id (or, for DISCONNECT and AUTH, be empty).
fn short_form(reason: ReasonCode, properties: &Properties) -> bool {
    reason == ReasonCode::SUCCESS && properties.is_empty()
}

fn remaining_len(packet: &Packet, v: ProtocolVersion) -> usize {
    match packet {
        Packet::Connect(c) => {
            let v = c.protocol;
            let will = c.will.as_ref().map_or(0, |w| {
                props_len(&w.properties, v)
                    + field_len(w.topic.as_str().len())
                    + field_len(w.payload.len())
            });
            field_len(4)
                + 1
                + 1
                + 2
                + props_len(&c.properties, v)
                + field_len(c.client_id.len())
                + will
                + c.username.as_ref().map_or(0, |u| field_len(u.len()))
                + c.password.as_ref().map_or(0, |p| field_len(p.len()))
        }
        Packet::ConnAck(c) => 2 + props_len(&c.properties, v),
        Packet::Publish(p) => {
            field_len(p.topic.as_ref().map_or(0, |t| t.as_str().len()))
                + if p.packet_id.is_some() { 2 } else { 0 }
                + props_len(&p.properties, v)
                + p.payload.len()
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            if !v.is_v5() || short_form(r.reason, &r.properties) {
                2
            } else if r.properties.is_empty() {
                3
            } else {
                3 + r.properties.wire_len()
            }
        }
        Packet::Subscribe(s) => {
            2 + props_len(&s.properties, v)
                + s.filters
                    .iter()
                    .map(|f| field_len(f.filter.as_str().len()) + 1)
                    .sum::<usize>()
        }
        Packet::SubAck(s) => 2 + props_len(&s.properties, v) + s.reasons.len(),
        Packet::Unsubscribe(u) => {
            2 + props_len(&u.properties, v)
                + u.filters
                    .iter()
                    .map(|f| field_len(f.as_str().len()))
                    .sum::<usize>()
        }
        Packet::UnsubAck(u) => {
            if v.is_v5() {
                2 + u.properties.wire_len() + u.reasons.len()
            } else {
                2
            }
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => {
            if !v.is_v5() || short_form(d.reason, &d.properties) {
                0
            } else if d.properties.is_empty() {
                1
            } else {
                1 + d.properties.wire_len()
            }
        }
        Packet::Auth(a) => {
            if short_form(a.reason, &a.properties) {
                0
            } else {
                1 + a.properties.wire_len()
            }
        }
    }
}

fn check_props(
    properties: &Properties,
    v: ProtocolVersion,
    ctx: PropCtx,
) -> Result<(), EncodeError> {
    if v.is_v5() {
        properties.validate(ctx)
    } else {
        Ok(())
    }
}

fn check_id(id: u16, kind: &'static str) -> Result<(), EncodeError> {
    if id == 0 {
        Err(EncodeError::ZeroPacketId { kind })
    } else {
        Ok(())
    }
}

fn check_reason(
    reason: ReasonCode,
    v: ProtocolVersion,
    kind: &'static str,
    set: ReasonSet,
) -> Result<(), EncodeError> {
    if v.is_v5() && !set.allows(reason) {
        return Err(EncodeError::InvalidReasonCode {
            kind,
            code: reason.0,
        });
    }
    Ok(())
}

fn validate(packet: &Packet, v: ProtocolVersion) -> Result<(), EncodeError> {
    let kind = packet.kind();
    match packet {
        Packet::Connect(c) => {
            let v = c.protocol;
            check_props(&c.properties, v, PropCtx::Connect)?;
            check_field("client identifier", c.client_id.len())?;
            if let Some(w) = &c.will {
                check_props(&w.properties, v, PropCtx::Will)?;
                check_field("will payload", w.payload.len())?;
            }
            if let Some(u) = &c.username {
                check_field("user name", u.len())?;
            }
            if let Some(p) = &c.password {
                check_field("password", p.len())?;
                if c.username.is_none() && !v.is_v5() {
                    return Err(EncodeError::Invalid(
                        "MQTT 3.1.1 CONNECT with a password needs a user name",
                    ));
                }
            }
        }
        Packet::ConnAck(c) => {
            check_props(&c.properties, v, PropCtx::ConnAck)?;
            check_reason(c.reason, v, kind, ReasonSet::ConnAck)?;
            if !v.is_v5() && connack_v311_code(c.reason).is_none() {
                return Err(EncodeError::InvalidReasonCode {
                    kind,
                    code: c.reason.0,
                });
            }
            if c.session_present && c.reason.is_error() {
                return Err(EncodeError::Invalid(
                    "CONNACK with an error must not set session present",
                ));
            }
        }
        Packet::Publish(p) => {
            check_props(&p.properties, v, PropCtx::Publish)?;
            match (p.qos, p.packet_id) {
                (QoS::AtMostOnce, None) => {}
                (QoS::AtMostOnce, Some(_)) | (_, None) => {
                    return Err(EncodeError::PacketIdMismatch { qos: p.qos });
                }
                (_, Some(id)) => check_id(id, kind)?,
            }
            if p.dup && p.qos == QoS::AtMostOnce {
                return Err(EncodeError::Invalid("DUP set on a QoS 0 PUBLISH"));
            }
            if p.topic.is_none() && !(v.is_v5() && p.properties.topic_alias.is_some()) {
                return Err(EncodeError::MissingTopic);
            }
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            check_id(r.packet_id, kind)?;
            check_props(&r.properties, v, PropCtx::PubResp(kind))?;
            let set = match packet {
                Packet::PubAck(_) | Packet::PubRec(_) => ReasonSet::PubAckRec,
                _ => ReasonSet::PubRelComp,
            };
            check_reason(r.reason, v, kind, set)?;
        }
        Packet::Subscribe(s) => {
            check_id(s.packet_id, kind)?;
            check_props(&s.properties, v, PropCtx::Subscribe)?;
            if s.filters.is_empty() {
                return Err(EncodeError::EmptyList { kind });
            }
            if v.is_v5() && s.filters.iter().any(|f| f.no_local && f.filter.is_shared()) {
                return Err(EncodeError::Invalid(
                    "no local must not be set on a shared subscription",
                ));
            }
        }
        Packet::SubAck(s) => {
            check_id(s.packet_id, kind)?;
            check_props(&s.properties, v, PropCtx::SubAck)?;
            if s.reasons.is_empty() {
                return Err(EncodeError::EmptyList { kind });
            }
            for &reason in &s.reasons {
                check_reason(reason, v, kind, ReasonSet::SubAck)?;
                if !v.is_v5() && (0x03..0x80).contains(&reason.0) {
                    return Err(EncodeError::InvalidReasonCode {
                        kind,
                        code: reason.0,
                    });
                }
            }
        }
        Packet::Unsubscribe(u) => {
            check_id(u.packet_id, kind)?;
            check_props(&u.properties, v, PropCtx::Unsubscribe)?;
            if u.filters.is_empty() {
                return Err(EncodeError::EmptyList { kind });
            }
        }
        Packet::UnsubAck(u) => {
            check_id(u.packet_id, kind)?;
            check_props(&u.properties, v, PropCtx::UnsubAck)?;
            if v.is_v5() {
                if u.reasons.is_empty() {
                    return Err(EncodeError::EmptyList { kind });
                }
                for &reason in &u.reasons {
                    check_reason(reason, v, kind, ReasonSet::UnsubAck)?;
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            check_props(&d.properties, v, PropCtx::Disconnect)?;
            check_reason(d.reason, v, kind, ReasonSet::Disconnect)?;
        }
        Packet::Auth(a) => {
            if !v.is_v5() {
                return Err(EncodeError::NotInVersion { kind, protocol: v });
            }
            check_props(&a.properties, v, PropCtx::Auth)?;
            check_reason(a.reason, v, kind, ReasonSet::Auth)?;
        }
    }
    Ok(())
}

fn put_props(properties: &Properties, v: ProtocolVersion, buf: &mut BytesMut) {
    if v.is_v5() {
        properties.write(buf);
    }
}

/// Writes the variable header and payload; `validate` must have passed.
fn write_body(packet: &Packet, v: ProtocolVersion, buf: &mut BytesMut) {
    match packet {
        Packet::Connect(c) => {
            let v = c.protocol;
            put_field(buf, b"MQTT");
            buf.put_u8(v.level());
            let mut flags = 0u8;
            if c.clean_start {
                flags |= 0b0000_0010;
            }
            if let Some(w) = &c.will {
                flags |= 0b0000_0100 | (w.qos.as_u8() << 3);
                if w.retain {
                    flags |= 0b0010_0000;
                }
            }
            if c.password.is_some() {
                flags |= 0b0100_0000;
            }
            if c.username.is_some() {
                flags |= 0b1000_0000;
            }
            buf.put_u8(flags);
            buf.put_u16(c.keep_alive);
            put_props(&c.properties, v, buf);
            put_field(buf, c.client_id.as_bytes());
            if let Some(w) = &c.will {
                put_props(&w.properties, v, buf);
                put_field(buf, w.topic.as_str().as_bytes());
                put_field(buf, &w.payload);
            }
            if let Some(u) = &c.username {
                put_field(buf, u.as_bytes());
            }
            if let Some(p) = &c.password {
                put_field(buf, p);
            }
        }
        Packet::ConnAck(c) => {
            buf.put_u8(u8::from(c.session_present));
            let code = if v.is_v5() {
                c.reason.0
            } else {
                // Validation guarantees a mapping exists.
                connack_v311_code(c.reason).unwrap_or(3)
            };
            buf.put_u8(code);
            put_props(&c.properties, v, buf);
        }
        Packet::Publish(p) => {
            put_field(
                buf,
                p.topic.as_ref().map_or(&b""[..], |t| t.as_str().as_bytes()),
            );
            if let Some(id) = p.packet_id {
                buf.put_u16(id);
            }
            put_props(&p.properties, v, buf);
            buf.put_slice(&p.payload);
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            buf.put_u16(r.packet_id);
            if v.is_v5() && !short_form(r.reason, &r.properties) {
                buf.put_u8(r.reason.0);
                if !r.properties.is_empty() {
                    r.properties.write(buf);
                }
            }
        }
        Packet::Subscribe(s) => {
            buf.put_u16(s.packet_id);
            put_props(&s.properties, v, buf);
            for f in &s.filters {
                put_field(buf, f.filter.as_str().as_bytes());
                let mut options = f.qos.as_u8();
                if v.is_v5() {
                    options |= (u8::from(f.no_local) << 2)
                        | (u8::from(f.retain_as_published) << 3)
                        | ((f.retain_handling as u8) << 4);
                }
                buf.put_u8(options);
            }
        }
        Packet::SubAck(s) => {
            buf.put_u16(s.packet_id);
            put_props(&s.properties, v, buf);
            for reason in &s.reasons {
                let code = if !v.is_v5() && reason.is_error() {
                    0x80
                } else {
                    reason.0
                };
                buf.put_u8(code);
            }
        }
        Packet::Unsubscribe(u) => {
            buf.put_u16(u.packet_id);
            put_props(&u.properties, v, buf);
            for f in &u.filters {
                put_field(buf, f.as_str().as_bytes());
            }
        }
        Packet::UnsubAck(u) => {
            buf.put_u16(u.packet_id);
            if v.is_v5() {
                u.properties.write(buf);
                for reason in &u.reasons {
                    buf.put_u8(reason.0);
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v.is_v5() && !short_form(d.reason, &d.properties) {
                buf.put_u8(d.reason.0);
                if !d.properties.is_empty() {
                    d.properties.write(buf);
                }
            }
        }
        Packet::Auth(a) => {
            if !short_form(a.reason, &a.properties) {
                buf.put_u8(a.reason.0);
                a.properties.write(buf);
            }
        }
    }
}
