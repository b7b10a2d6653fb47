//! One client connection: CONNECT, the packet loop, and the end of the connection.
//!
//! Packet handling is synchronous: `handle` takes a decoded packet, updates the session and the
//! broker, and appends replies to the write buffer. The async `run` only moves bytes and waits.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrule_mqtt::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS,
    ReasonCode, RetainHandling, SubAck, Subscribe, TopicName, UnsubAck, Unsubscribe, Will, decode, encode,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::broker::{BrokerInner, now_ms};
use crate::metrics::connection_closed;
use crate::session::{Delivery, Inflight, InflightState, Kick, Message, Session, SubOptions};
use crate::transport::{ConnInfo, Transport};

/// Most bytes gathered in the write buffer before it is written out.
const WRITE_CHUNK: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client sent DISCONNECT; `will` when its reason was 0x04.
    Disconnect { will: bool },
    PeerClosed,
    Io(io::Error),
    KeepAlive,
    Kicked(Kick),
    ShuttingDown,
    /// The client broke the protocol or a limit.
    Violation { reason: ReasonCode, detail: String },
}

impl End {
    fn violation(reason: ReasonCode, detail: impl Into<String>) -> End {
        End::Violation { reason, detail: detail.into() }
    }

    /// The DISCONNECT reason sent to an MQTT 5 client, if one is sent.
    fn reason(&self) -> Option<ReasonCode> {
        match self {
            End::Disconnect { .. } | End::PeerClosed | End::Io(_) => None,
            End::KeepAlive => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            End::Kicked(Kick::TakenOver) => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::Kicked(Kick::SessionRemoved) => Some(ReasonCode::ADMINISTRATIVE_ACTION),
            End::ShuttingDown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Violation { reason, .. } => Some(*reason),
        }
    }

    fn publishes_will(&self) -> bool {
        match self {
            End::Disconnect { will } => *will,
            End::ShuttingDown => false,
            _ => true,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            End::Disconnect { .. } => "client_disconnect",
            End::PeerClosed => "peer_closed",
            End::Io(_) => "io_error",
            End::KeepAlive => "keep_alive_timeout",
            End::Kicked(Kick::TakenOver) => "session_taken_over",
            End::Kicked(Kick::SessionRemoved) => "session_removed",
            End::ShuttingDown => "server_shutting_down",
            End::Violation { reason, .. } => match reason.0 {
                0x81 => "malformed_packet",
                0x82 => "protocol_error",
                0x90 => "topic_name_invalid",
                0x93 => "receive_maximum_exceeded",
                0x94 => "topic_alias_invalid",
                0x95 => "packet_too_large",
                0x99 => "payload_format_invalid",
                _ => "other_violation",
            },
        }
    }
}

/// Serves one client from its first byte to its last.
pub(crate) async fn serve(broker: Arc<BrokerInner>, mut transport: Transport, info: ConnInfo, over_limit: bool) {
    let mut rbuf = BytesMut::with_capacity(4096);
    let connect = match read_connect(&broker, &mut transport, &mut rbuf).await {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(peer = %info.peer, listener = %info.listener, reason = %why, "connection closed before CONNECT");
            connection_closed("no_connect");
            transport.close().await;
            return;
        }
    };
    let protocol = connect.protocol;
    let mut wbuf = BytesMut::with_capacity(4096);
    let refuse = |reason: ReasonCode, why: &str| {
        tracing::info!(peer = %info.peer, client_id = %connect.client_id, reason = %reason, "CONNECT refused: {why}");
        ConnAck {
            session_present: false,
            reason,
            properties: Properties { reason_string: Some(why.to_owned()), ..Properties::default() },
        }
    };
    let refusal = if over_limit {
        Some(refuse(ReasonCode::SERVER_BUSY, "the broker is at its connection limit"))
    } else if connect.properties.authentication_method.is_some() {
        Some(refuse(ReasonCode::BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported"))
    } else if connect.client_id.is_empty() && protocol == ProtocolVersion::V311 && !connect.clean_start {
        Some(refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, "an empty client id needs a clean session"))
    } else if let Some(w) = &connect.will {
        check_topic_limits(&broker, w.topic.as_str())
            .err()
            .map(|why| refuse(ReasonCode::TOPIC_NAME_INVALID, &format!("will topic: {why}")))
    } else {
        None
    };
    if let Some(connack) = refusal {
        connection_closed("connect_refused");
        if encode(&Packet::ConnAck(connack), protocol, &mut wbuf).is_ok() {
            let _ = transport.write(&mut wbuf).await;
        }
        transport.close().await;
        return;
    }
    let mut conn = Conn::accept(broker, info, connect, &mut wbuf);
    let end = conn.run(&mut transport, rbuf, wbuf).await;
    conn.finish(&mut transport, end).await;
}

async fn read_connect(broker: &BrokerInner, transport: &mut Transport, rbuf: &mut BytesMut) -> Result<Connect, String> {
    let deadline = Instant::now() + broker.config.connect_timeout;
    loop {
        match decode(rbuf, ProtocolVersion::V5, broker.config.max_packet_size) {
            Ok(Some(Packet::Connect(c))) => return Ok(c),
            Ok(Some(other)) => return Err(format!("first packet was {}, not CONNECT", other.kind())),
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

fn check_topic_limits(broker: &BrokerInner, topic: &str) -> Result<(), String> {
    if topic.len() > broker.config.max_topic_length {
        return Err(format!("longer than {} bytes", broker.config.max_topic_length));
    }
    if topic.split('/').count() > broker.config.max_topic_levels {
        return Err(format!("more than {} levels", broker.config.max_topic_levels));
    }
    Ok(())
}

fn assigned_client_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    format!("ferrule-{:016x}", h.finish())
}

struct Conn {
    broker: Arc<BrokerInner>,
    info: ConnInfo,
    protocol: ProtocolVersion,
    client_id: Arc<str>,
    session: Arc<Session>,
    generation: u64,
    kick: Option<oneshot::Receiver<Kick>>,
    keep_alive: u16,
    will: Option<Will>,
    /// Largest in-flight window toward the client: its Receive Maximum and our limit.
    window: usize,
    client_max_packet: usize,
    topic_aliases: HashMap<u16, TopicName>,
}

impl Conn {
    /// Attaches the session and writes CONNACK plus any redelivery into `wbuf`.
    fn accept(broker: Arc<BrokerInner>, info: ConnInfo, connect: Connect, wbuf: &mut BytesMut) -> Conn {
        let protocol = connect.protocol;
        let cfg = &broker.config;
        let mut props = Properties::default();
        let (client_id, assigned): (Arc<str>, bool) = if connect.client_id.is_empty() {
            (Arc::from(assigned_client_id()), true)
        } else {
            (Arc::from(connect.client_id.as_str()), false)
        };
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
        let client_max_packet = connect.properties.maximum_packet_size.map_or(usize::MAX, |m| m as usize);

        let outcome = broker.attach(&client_id, protocol, connect.clean_start, expiry, now_ms());
        let session_present = outcome.session_present;
        tracing::info!(
            client_id = %client_id, peer = %info.peer, listener = %info.listener, ?protocol,
            clean_start = connect.clean_start, session_present, keep_alive, "client connected"
        );
        let connack = ConnAck { session_present, reason: ReasonCode::SUCCESS, properties: props };
        let conn = Conn {
            protocol,
            client_id,
            session: outcome.session,
            generation: outcome.generation,
            kick: Some(outcome.kick),
            keep_alive,
            will: connect.will,
            window,
            client_max_packet,
            topic_aliases: HashMap::new(),
            broker,
            info,
        };
        conn.send(&Packet::ConnAck(connack), wbuf);
        if session_present {
            conn.redeliver(wbuf);
        }
        conn
    }

    fn send(&self, packet: &Packet, wbuf: &mut BytesMut) {
        if let Err(e) = encode(packet, self.protocol, wbuf) {
            tracing::error!(client_id = %self.client_id, packet = packet.kind(), error = %e, "could not encode packet");
        }
    }

    /// Resends what was in flight when the previous connection ended, in the original order.
    fn redeliver(&self, wbuf: &mut BytesMut) {
        let st = self.session.lock();
        let mut inflight: Vec<(u16, &Inflight)> = st.inflight.iter().map(|(id, i)| (*id, i)).collect();
        inflight.sort_by_key(|(_, i)| i.seq);
        let now = now_ms();
        for (id, i) in inflight {
            match i.state {
                InflightState::Publish => {
                    if let Some(p) = self.outgoing(&i.delivery, Some(id), true, now) {
                        self.send(&Packet::Publish(p), wbuf);
                    }
                }
                InflightState::Release => self.send(&Packet::PubRel(ack(id, ReasonCode::SUCCESS)), wbuf),
            }
        }
    }

    async fn run(&mut self, transport: &mut Transport, mut rbuf: BytesMut, mut wbuf: BytesMut) -> End {
        let mut shutdown = self.broker.shutdown.subscribe();
        let Some(mut kick) = self.kick.take() else {
            return End::violation(ReasonCode::UNSPECIFIED_ERROR, "connection without a session slot");
        };
        let idle_limit = Duration::from_millis(u64::from(self.keep_alive) * 1500);
        let mut last_rx = Instant::now();
        loop {
            loop {
                match decode(&mut rbuf, self.protocol, self.broker.config.max_packet_size) {
                    Ok(Some(packet)) => {
                        if let Some(end) = self.handle(packet, &mut wbuf) {
                            if !wbuf.is_empty() {
                                let _ = transport.write(&mut wbuf).await;
                            }
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return End::violation(e.reason_code(), e.to_string()),
                }
            }
            let more = self.pump(&mut wbuf);
            if !wbuf.is_empty() {
                let n = wbuf.len();
                if let Err(e) = transport.write(&mut wbuf).await {
                    return End::Io(e);
                }
                self.broker.metrics.bytes_out.increment(n as u64);
            }
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            if *shutdown.borrow() {
                return End::ShuttingDown;
            }
            tokio::select! {
                k = &mut kick => return End::Kicked(k.unwrap_or(Kick::SessionRemoved)),
                _ = shutdown.changed() => return End::ShuttingDown,
                r = transport.read(&mut rbuf) => match r {
                    Ok(0) => return End::PeerClosed,
                    Ok(n) => {
                        self.broker.metrics.bytes_in.increment(n as u64);
                        last_rx = Instant::now();
                    }
                    Err(e) => return End::Io(e),
                },
                _ = self.session.notify.notified() => {}
                _ = tokio::time::sleep_until(last_rx + idle_limit), if self.keep_alive > 0 => return End::KeepAlive,
            }
        }
    }

    /// Moves queued deliveries into the write buffer while the in-flight window allows.
    /// Returns true when more are waiting and the buffer is full.
    fn pump(&self, wbuf: &mut BytesMut) -> bool {
        let mut st = self.session.lock();
        if st.queue.is_empty() {
            return false;
        }
        let now = now_ms();
        while let Some(front) = st.queue.front() {
            if front.qos != QoS::AtMostOnce && st.inflight.len() >= self.window {
                return false;
            }
            if wbuf.len() >= WRITE_CHUNK {
                return true;
            }
            let Some(d) = st.queue.pop_front() else { break };
            if d.msg.is_expired(now) {
                self.broker.metrics.dropped_expired.increment(1);
                continue;
            }
            let packet_id = if d.qos == QoS::AtMostOnce {
                None
            } else {
                match st.alloc_packet_id() {
                    Some(id) => Some(id),
                    None => {
                        st.queue.push_front(d);
                        return false;
                    }
                }
            };
            let Some(publish) = self.outgoing(&d, packet_id, false, now) else { continue };
            let before = wbuf.len();
            self.send(&Packet::Publish(publish), wbuf);
            if wbuf.len() - before > self.client_max_packet {
                // MQTT 5: a message larger than the client's Maximum Packet Size is discarded.
                wbuf.truncate(before);
                self.broker.metrics.dropped_too_large.increment(1);
                continue;
            }
            self.broker.metrics.message_out(d.qos);
            if let Some(id) = packet_id {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.inflight.insert(id, Inflight { seq, delivery: d, state: InflightState::Publish });
            }
        }
        false
    }

    /// The PUBLISH this client gets for a delivery; `None` if it expired.
    fn outgoing(&self, d: &Delivery, packet_id: Option<u16>, dup: bool, now: u64) -> Option<Publish> {
        let properties = match self.protocol {
            ProtocolVersion::V311 => Properties::default(),
            ProtocolVersion::V5 => {
                let mut p = d.msg.properties.clone();
                if let Some(at) = d.msg.expires_at_ms {
                    if at <= now {
                        return None;
                    }
                    p.message_expiry_interval = Some((at - now).div_ceil(1000) as u32);
                }
                p.subscription_identifiers = d.subscription_ids.clone();
                p
            }
        };
        Some(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: Some(d.msg.topic.clone()),
            packet_id,
            payload: d.msg.payload.clone(),
            properties,
        })
    }

    /// Handles one packet from the client. `Some` ends the connection.
    fn handle(&mut self, packet: Packet, wbuf: &mut BytesMut) -> Option<End> {
        match packet {
            Packet::Publish(p) => return self.on_publish(p, wbuf),
            Packet::PubAck(a) => {
                let mut st = self.session.lock();
                if st.inflight.get(&a.packet_id).is_some_and(|i| i.state == InflightState::Publish) {
                    st.inflight.remove(&a.packet_id);
                }
            }
            Packet::PubRec(a) => {
                let mut st = self.session.lock();
                let known = st.inflight.get(&a.packet_id).is_some_and(|i| i.state == InflightState::Publish);
                if a.reason.is_error() {
                    if known {
                        st.inflight.remove(&a.packet_id);
                    }
                } else {
                    if let Some(i) = st.inflight.get_mut(&a.packet_id) {
                        i.state = InflightState::Release;
                    }
                    drop(st);
                    let reason = if known { ReasonCode::SUCCESS } else { ReasonCode::PACKET_IDENTIFIER_NOT_FOUND };
                    self.send(&Packet::PubRel(ack(a.packet_id, reason)), wbuf);
                }
            }
            Packet::PubComp(a) => {
                let mut st = self.session.lock();
                if st.inflight.get(&a.packet_id).is_some_and(|i| i.state == InflightState::Release) {
                    st.inflight.remove(&a.packet_id);
                }
            }
            Packet::PubRel(a) => {
                let known = self.session.lock().incoming_qos2.remove(&a.packet_id);
                let reason = if known { ReasonCode::SUCCESS } else { ReasonCode::PACKET_IDENTIFIER_NOT_FOUND };
                self.send(&Packet::PubComp(ack(a.packet_id, reason)), wbuf);
            }
            Packet::Subscribe(s) => return self.on_subscribe(s, wbuf),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, wbuf),
            Packet::PingReq => self.send(&Packet::PingResp, wbuf),
            Packet::Disconnect(d) => return Some(self.on_disconnect(d)),
            Packet::Auth(Auth { .. }) => {
                return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "AUTH without enhanced authentication"));
            }
            Packet::Connect(_) => return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "second CONNECT")),
            other => {
                return Some(End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("{} is sent by servers, not clients", other.kind()),
                ));
            }
        }
        None
    }

    fn on_publish(&mut self, p: Publish, wbuf: &mut BytesMut) -> Option<End> {
        let mut properties = p.properties;
        let topic = match (p.topic, properties.topic_alias.take()) {
            (topic, Some(alias)) => {
                if alias == 0 || alias > self.broker.config.topic_alias_maximum {
                    return Some(End::violation(
                        ReasonCode::TOPIC_ALIAS_INVALID,
                        format!("topic alias {alias} is outside 1..={}", self.broker.config.topic_alias_maximum),
                    ));
                }
                match topic {
                    Some(t) => {
                        self.topic_aliases.insert(alias, t.clone());
                        t
                    }
                    None => match self.topic_aliases.get(&alias) {
                        Some(t) => t.clone(),
                        None => {
                            return Some(End::violation(
                                ReasonCode::PROTOCOL_ERROR,
                                format!("topic alias {alias} was never set"),
                            ));
                        }
                    },
                }
            }
            (Some(t), None) => t,
            (None, None) => return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "PUBLISH without a topic")),
        };
        if let Err(why) = check_topic_limits(&self.broker, topic.as_str()) {
            return Some(End::violation(ReasonCode::TOPIC_NAME_INVALID, format!("topic {why}")));
        }
        if let Some(rt) = &properties.response_topic {
            if TopicName::new(rt.as_str()).is_err() {
                return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "response topic is not a valid topic name"));
            }
        }
        self.broker.metrics.message_in(p.qos);
        let format_ok = properties.payload_format_indicator != Some(1) || std::str::from_utf8(&p.payload).is_ok();

        if p.qos == QoS::ExactlyOnce {
            let id = p.packet_id.unwrap_or(0);
            let mut st = self.session.lock();
            if st.incoming_qos2.contains(&id) {
                // A retransmission: the message was already routed.
                drop(st);
                self.send(&Packet::PubRec(ack(id, ReasonCode::SUCCESS)), wbuf);
                return None;
            }
            if st.incoming_qos2.len() >= usize::from(self.broker.config.max_inflight) {
                return Some(End::violation(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    format!("more than {} QoS 2 messages awaiting PUBREL", self.broker.config.max_inflight),
                ));
            }
            if format_ok {
                st.incoming_qos2.insert(id);
            }
        }
        if !format_ok {
            if p.qos == QoS::AtMostOnce {
                return Some(End::violation(ReasonCode::PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as its format says"));
            }
            let a = ack(p.packet_id.unwrap_or(0), ReasonCode::PAYLOAD_FORMAT_INVALID);
            self.send(&if p.qos == QoS::AtLeastOnce { Packet::PubAck(a) } else { Packet::PubRec(a) }, wbuf);
            return None;
        }
        let expires_at_ms = properties.message_expiry_interval.map(|s| now_ms() + u64::from(s) * 1000);
        properties.message_expiry_interval = None;
        properties.subscription_identifiers.clear();
        let msg = Arc::new(Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at_ms,
            publisher: Some(self.client_id.clone()),
        });
        if msg.retain {
            self.broker.retain(&msg);
        }
        let receivers = self.broker.route(&msg);
        let reason = if receivers == 0 && self.protocol == ProtocolVersion::V5 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        match (p.qos, p.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(ack(id, reason)), wbuf),
            (QoS::ExactlyOnce, Some(id)) => self.send(&Packet::PubRec(ack(id, reason)), wbuf),
            _ => {}
        }
        None
    }

    fn on_subscribe(&mut self, s: Subscribe, wbuf: &mut BytesMut) -> Option<End> {
        if s.properties.subscription_identifiers.len() > 1 {
            return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "more than one subscription identifier"));
        }
        let sub_id = s.properties.subscription_identifiers.first().copied();
        let now = now_ms();
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained: Vec<(Arc<Message>, SubOptions)> = Vec::new();
        for sub in s.filters {
            if sub.no_local && sub.filter.share_group().is_some() {
                return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "no-local on a shared subscription"));
            }
            if let Err(why) = check_topic_limits(&self.broker, sub.filter.as_str()) {
                tracing::info!(client_id = %self.client_id, filter = %sub.filter, "subscription refused: filter {why}");
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            let opts = SubOptions {
                qos: sub.qos,
                no_local: sub.no_local,
                retain_as_published: sub.retain_as_published,
                retain_handling: sub.retain_handling,
                subscription_id: sub_id,
            };
            let existed = {
                let mut st = self.session.lock();
                st.dirty = true;
                st.subscriptions.insert(sub.filter.clone(), opts).is_some()
            };
            self.broker.index_subscription(&self.session, &sub.filter, opts);
            let send_retained = sub.filter.share_group().is_none()
                && match sub.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained.extend(self.broker.retained_matching(&sub.filter, now).into_iter().map(|m| (m, opts)));
            }
            reasons.push(ReasonCode(sub.qos as u8));
        }
        tracing::debug!(client_id = %self.client_id, ?reasons, "subscribed");
        self.send(&Packet::SubAck(SubAck { packet_id: s.packet_id, reasons, properties: Properties::default() }), wbuf);
        for (msg, opts) in retained {
            let d = Delivery {
                qos: opts.qos.min(msg.qos),
                retain: true,
                subscription_ids: opts.subscription_id.into_iter().collect(),
                msg,
            };
            // Straight into the queue, bypassing the offline-QoS-0 rule: the client is here.
            let mut st = self.session.lock();
            if st.queue.len() < self.broker.config.max_queued_messages {
                st.queue.push_back(d);
            } else {
                self.broker.metrics.dropped_queue_full.increment(1);
            }
        }
        None
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, wbuf: &mut BytesMut) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for filter in &u.filters {
            let existed = {
                let mut st = self.session.lock();
                st.dirty = true;
                st.subscriptions.remove(filter).is_some()
            };
            if existed {
                self.broker.unindex_subscription(&self.session, filter);
            }
            reasons.push(if existed { ReasonCode::SUCCESS } else { ReasonCode::NO_SUBSCRIPTION_EXISTED });
        }
        self.send(
            &Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: Properties::default() }),
            wbuf,
        );
    }

    fn on_disconnect(&mut self, d: Disconnect) -> End {
        if let Some(new_expiry) = d.properties.session_expiry_interval {
            let mut st = self.session.lock();
            if st.expiry == 0 && new_expiry != 0 {
                return End::violation(ReasonCode::PROTOCOL_ERROR, "session expiry set on DISCONNECT after CONNECT had 0");
            }
            st.expiry = new_expiry.min(self.broker.config.max_session_expiry);
        }
        End::Disconnect { will: d.reason == ReasonCode::DISCONNECT_WITH_WILL }
    }

    /// Says goodbye, releases the session and publishes the will when due.
    async fn finish(mut self, transport: &mut Transport, end: End) {
        if let (ProtocolVersion::V5, Some(reason)) = (self.protocol, end.reason()) {
            let mut wbuf = BytesMut::new();
            let mut properties = Properties::default();
            if let End::Violation { detail, .. } = &end {
                properties.reason_string = Some(detail.clone());
            }
            self.send(&Packet::Disconnect(Disconnect { reason, properties }), &mut wbuf);
            let _ = tokio::time::timeout(Duration::from_secs(1), transport.write(&mut wbuf)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), transport.close()).await;
        match &end {
            End::Violation { reason, detail } => tracing::warn!(
                client_id = %self.client_id, peer = %self.info.peer, reason = %reason, "connection closed: {detail}"
            ),
            End::Io(e) => tracing::info!(client_id = %self.client_id, error = %e, "connection lost"),
            other => tracing::info!(client_id = %self.client_id, reason = other.label(), "client disconnected"),
        }
        connection_closed(end.label());
        let expiry = self.session.lock().expiry;
        self.broker.detach(&self.session, self.generation);
        if end.publishes_will() {
            if let Some(will) = self.will.take() {
                publish_will(&self.broker, &self.session, self.generation, &self.client_id, will, expiry);
            }
        }
    }
}

fn ack(packet_id: u16, reason: ReasonCode) -> PubResp {
    PubResp { packet_id, reason, properties: Properties::default() }
}

/// Publishes a will now, or after its delay unless the client reconnects first. A session that
/// expires sooner than the delay brings the will forward (MQTT 5, 3.1.3.2.2).
fn publish_will(broker: &Arc<BrokerInner>, session: &Arc<Session>, generation: u64, client_id: &Arc<str>, will: Will, expiry: u32) {
    let mut properties = will.properties;
    let delay = properties.will_delay_interval.take().unwrap_or(0).min(expiry);
    let expires_at_ms = properties.message_expiry_interval.take().map(|s| now_ms() + u64::from(s) * 1000);
    let msg = Arc::new(Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties,
        expires_at_ms,
        publisher: Some(client_id.clone()),
    });
    fn fire(broker: &BrokerInner, msg: &Arc<Message>) {
        tracing::debug!(topic = %msg.topic, "publishing will");
        if msg.retain {
            broker.retain(msg);
        }
        broker.route(msg);
    }
    if delay == 0 {
        fire(broker, &msg);
        return;
    }
    let broker = Arc::downgrade(broker);
    let session = Arc::downgrade(session);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        let Some(broker) = broker.upgrade() else { return };
        let came_back = session.upgrade().is_some_and(|s| s.lock().last_generation != generation);
        if !came_back {
            fire(&broker, &msg);
        }
    });
}
