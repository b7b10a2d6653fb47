//! The CONNECT phase: reading CONNECT, refusing it, or attaching the session and answering
//! CONNACK.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::BytesMut;
use ferrule_mqtt::{
    ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion, ReasonCode, decode, encode,
};
use tokio::time::Instant;

use super::{Conn, LifecycleIds};
use crate::auth::{Authz, Grant, Principal};
use crate::broker::{BrokerInner, now_ms};
use crate::events;
use crate::transport::{ConnInfo, Transport};

/// Why CONNECT is refused, as the CONNACK to answer with (and then close); `None` to accept.
pub(super) fn refusal(
    broker: &BrokerInner,
    info: &ConnInfo,
    connect: &Connect,
    over_limit: bool,
) -> Option<ConnAck> {
    let refuse = |reason: ReasonCode, why: &str| {
        tracing::info!(peer = %info.peer, client_id = %connect.client_id, reason = %reason, "CONNECT refused: {why}");
        ConnAck {
            session_present: false,
            reason,
            properties: Properties {
                reason_string: Some(why.to_owned()),
                ..Properties::default()
            },
        }
    };
    if over_limit {
        Some(refuse(
            ReasonCode::SERVER_BUSY,
            "the broker is at its connection limit",
        ))
    } else if connect.properties.authentication_method.is_some() {
        Some(refuse(
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        ))
    } else if connect.client_id.is_empty()
        && connect.protocol == ProtocolVersion::V311
        && !connect.clean_start
    {
        Some(refuse(
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "an empty client id needs a clean session",
        ))
    } else if let Some(w) = &connect.will {
        check_topic_limits(broker, w.topic.as_str())
            .err()
            .map(|why| {
                refuse(
                    ReasonCode::TOPIC_NAME_INVALID,
                    &format!("will topic: {why}"),
                )
            })
    } else {
        None
    }
}

/// Reads until the first packet, which must be CONNECT. Answers an unsupported protocol level
/// itself (return code 1); any other failure is for the caller to log.
pub(super) async fn read_connect(
    broker: &BrokerInner,
    transport: &mut Transport,
    rbuf: &mut BytesMut,
) -> Result<Connect, String> {
    let deadline = Instant::now() + broker.config.connect_timeout;
    loop {
        match decode(rbuf, ProtocolVersion::V5, broker.config.max_packet_size) {
            Ok(Some(Packet::Connect(c))) => return Ok(c),
            Ok(Some(other)) => {
                return Err(format!("first packet was {}, not CONNECT", other.kind()));
            }
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocolVersion(level)) => {
                // Answer in 3.1.1 form, which every version can read: return code 1.
                let mut wbuf = BytesMut::new();
                let ack = ConnAck {
                    session_present: false,
                    reason: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                    properties: Properties::default(),
                };
                if encode(&Packet::ConnAck(ack), ProtocolVersion::V311, &mut wbuf).is_ok() {
                    let _ = transport.write(&mut wbuf).await;
                }
                return Err(format!("unsupported protocol level {level}"));
            }
            Err(e) => return Err(format!("bad CONNECT: {e}")),
        }
        match tokio::time::timeout_at(deadline, transport.read(rbuf)).await {
            Err(_) => return Err("no CONNECT within the connect timeout".into()),
            Ok(Ok(0)) => return Err("peer closed".into()),
            Ok(Ok(n)) => broker.metrics.bytes_in.increment(n as u64),
            Ok(Err(e)) => return Err(format!("read error: {e}")),
        }
    }
}

pub(super) fn check_topic_limits(broker: &BrokerInner, topic: &str) -> Result<(), String> {
    if topic.len() > broker.config.max_topic_length {
        return Err(format!(
            "longer than {} bytes",
            broker.config.max_topic_length
        ));
    }
    if topic.split('/').count() > broker.config.max_topic_levels {
        return Err(format!(
            "more than {} levels",
            broker.config.max_topic_levels
        ));
    }
    Ok(())
}

/// The client id a connection runs as: the one it sent, or one assigned to it (MQTT 5 sends
/// it back in CONNACK).
pub(super) fn client_id(connect: &Connect) -> Arc<str> {
    if connect.client_id.is_empty() {
        Arc::from(assigned_client_id())
    } else {
        Arc::from(connect.client_id.as_str())
    }
}

fn assigned_client_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    format!("ferrule-{:016x}", h.finish())
}

impl Conn {
    /// Attaches the session and writes CONNACK plus any redelivery into `wbuf`.
    pub(super) fn accept(
        broker: Arc<BrokerInner>,
        info: ConnInfo,
        connect: Connect,
        client_id: Arc<str>,
        grant: Option<Arc<Grant>>,
        wbuf: &mut BytesMut,
    ) -> Conn {
        let protocol = connect.protocol;
        let cfg = &broker.config;
        let mut props = Properties::default();
        let assigned = connect.client_id.is_empty();
        if assigned && protocol == ProtocolVersion::V5 {
            props.assigned_client_identifier = Some(client_id.to_string());
        }
        let asked_expiry = match protocol {
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
            ProtocolVersion::V311 if connect.clean_start => 0,
            ProtocolVersion::V311 => u32::MAX,
        };
        let expiry = asked_expiry.min(cfg.max_session_expiry);
        if expiry != asked_expiry && protocol == ProtocolVersion::V5 {
            props.session_expiry_interval = Some(expiry);
        }
        let mut keep_alive = connect.keep_alive;
        if cfg.max_keep_alive > 0 && (keep_alive == 0 || keep_alive > cfg.max_keep_alive) {
            keep_alive = cfg.max_keep_alive;
            if protocol == ProtocolVersion::V5 {
                props.server_keep_alive = Some(keep_alive);
            }
        }
        if protocol == ProtocolVersion::V5 {
            props.receive_maximum = Some(cfg.max_inflight);
            props.topic_alias_maximum = Some(cfg.topic_alias_maximum);
            if cfg.max_packet_size < ferrule_mqtt::MAX_REMAINING_LENGTH as u32 {
                props.maximum_packet_size = Some(cfg.max_packet_size);
            }
        }
        let client_receive_max = connect.properties.receive_maximum.unwrap_or(u16::MAX);
        let window = usize::from(client_receive_max.min(cfg.max_inflight));
        let client_max_packet = connect
            .properties
            .maximum_packet_size
            .map_or(usize::MAX, |m| m as usize);

        let outcome = broker.attach(&client_id, protocol, connect.clean_start, expiry, now_ms());
        let session_present = outcome.session_present;
        tracing::info!(
            client_id = %client_id, peer = %info.peer, listener = %info.listener, ?protocol,
            clean_start = connect.clean_start, session_present, keep_alive, "client connected"
        );
        let connack = ConnAck {
            session_present,
            reason: ReasonCode::SUCCESS,
            properties: props,
        };
        let principal = grant.as_ref().map_or(Cow::Borrowed("anonymous"), |g| {
            Cow::Owned(g.principal.identifier().to_owned())
        });
        let certificate_id = grant.as_ref().and_then(|g| match &g.principal {
            Principal::Certificate { id, .. } => Some(Arc::from(id.as_str())),
            Principal::Anonymous => None,
        });
        let authz = grant
            .zip(broker.auth())
            .map(|(grant, auth)| Box::new(Authz::new(grant, auth.arn_prefix.clone())));
        let conn = Conn {
            authz,
            principal: certificate_id,
            lifecycle: LifecycleIds {
                session_identifier: events::SessionId::new(),
                principal,
                version: outcome.generation,
            },
            protocol,
            client_id,
            session: outcome.session,
            generation: outcome.generation,
            signal: outcome.signal,
            keep_alive,
            will: connect.will.map(Box::new),
            window,
            client_max_packet,
            topic_aliases: None,
            problem_info: connect.properties.request_problem_information != Some(0),
            write_interrupted: false,
            congested: Vec::new(),
            broker,
            info,
        };
        conn.send(&Packet::ConnAck(connack), wbuf);
        conn.lifecycle_event().connected(&conn.broker, &conn.info);
        if session_present {
            conn.redeliver(wbuf);
        }
        conn
    }
}
