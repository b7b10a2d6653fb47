//! One client connection: CONNECT, the packet loop, and the end of the connection.
//!
//! Packet handling is synchronous: `handle` takes a decoded packet, updates the session and the
//! broker, and appends replies to the write buffer. The async `run` only moves bytes and waits.
//! The phases live apart: `connect` (CONNECT to CONNACK), `inbound` (packets from the client),
//! `outbound` (deliveries to it); this file drives them and ends the connection.

mod connect;
mod inbound;
mod outbound;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrule_mqtt::{
    ConnAck, Disconnect, Packet, Properties, ProtocolVersion, PubResp, ReasonCode, TopicName, Will,
    decode, encode,
};
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use crate::auth::{Authz, CLIENT_GONE, Grant, Rejection, Revoked};
use crate::broker::{BrokerInner, now_ms};
use crate::events::{self, CertFacts};
use crate::metrics::connection_closed;
use crate::session::{Kick, Message, Session, Signal};
use crate::transport::{ConnInfo, Transport};
use crate::{Accepted, ConnectionSlot, Established};

/// How long the last words to a client (a DISCONNECT or refusing CONNACK, then the close) may
/// take: a client that stopped reading must not keep its connection open.
const GOODBYE: Duration = Duration::from_secs(1);

/// Longest a publisher is paused for one congested subscriber. A subscriber that reads slowly
/// slows its publishers; one that stopped reading altogether only delays them this long, and its
/// queue then overflows (counted as dropped) until its keep-alive ends it.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Most bytes read from a client while its CONNECT is being decided; reading pauses beyond.
const PRE_CONNACK_BUFFER: usize = 64 * 1024;

/// Room made in the read buffer for each read from the client. An idle connection holds no
/// read buffer at all (see [`Transport::read_or_release`]).
const READ_CAPACITY: usize = 4096;

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client sent DISCONNECT; `will` unless its reason was 0x00.
    Disconnect {
        will: bool,
    },
    PeerClosed,
    Io(io::Error),
    KeepAlive,
    /// Taken over, removed, or the broker is shutting down.
    Kicked(Kick),
    /// The client broke the protocol or a limit.
    Violation {
        reason: ReasonCode,
        detail: String,
    },
    /// The client did what its policies forbid (MQTT 3.1.1 cannot be told otherwise).
    Forbidden(String),
    /// Its certificate stopped being ACTIVE, or its policies stopped allowing it to connect.
    Revoked(Revoked),
}

impl End {
    fn violation(reason: ReasonCode, detail: impl Into<String>) -> End {
        End::Violation {
            reason,
            detail: detail.into(),
        }
    }

    /// The DISCONNECT reason sent to an MQTT 5 client, if one is sent.
    fn reason(&self) -> Option<ReasonCode> {
        match self {
            End::Disconnect { .. } | End::PeerClosed | End::Io(_) => None,
            End::KeepAlive => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            End::Kicked(Kick::TakenOver) => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::Kicked(Kick::SessionRemoved) => Some(ReasonCode::ADMINISTRATIVE_ACTION),
            End::Kicked(Kick::ShuttingDown) => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Violation { reason, .. } => Some(*reason),
            End::Forbidden(_) | End::Revoked(_) => Some(ReasonCode::NOT_AUTHORIZED),
        }
    }

    /// What the MQTT 5 DISCONNECT's reason string says, if anything.
    fn detail(&self) -> Option<&str> {
        match self {
            End::Violation { detail, .. } | End::Forbidden(detail) => Some(detail),
            End::Revoked(r) => Some(&r.detail),
            _ => None,
        }
    }

    /// The lifecycle event's `disconnectReason` (reference 10.2).
    fn lifecycle_reason(&self) -> &'static str {
        match self {
            End::Disconnect { .. } => "CLIENT_INITIATED_DISCONNECT",
            End::PeerClosed | End::Io(_) => "CONNECTION_LOST",
            End::KeepAlive => "MQTT_KEEP_ALIVE_TIMEOUT",
            End::Kicked(Kick::TakenOver) => "DUPLICATE_CLIENTID",
            End::Kicked(Kick::SessionRemoved | Kick::ShuttingDown) => "SERVER_INITIATED_DISCONNECT",
            End::Violation { .. } => "CLIENT_ERROR",
            End::Forbidden(_) => "FORBIDDEN_ACCESS",
            End::Revoked(r) => r.lifecycle_reason,
        }
    }

    fn publishes_will(&self) -> bool {
        match self {
            End::Disconnect { will } => *will,
            // A revoked device's will is no longer trusted.
            End::Kicked(Kick::ShuttingDown) | End::Revoked(_) => false,
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
            End::Kicked(Kick::ShuttingDown) => "server_shutting_down",
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
            End::Forbidden(_) => "forbidden",
            End::Revoked(_) => "revoked",
        }
    }
}

/// Serves one client from its first byte to its last.
///
/// The phases before and after the packet loop (handshakes, CONNECT, the admission, the
/// goodbye) are boxed: the task's own future then holds only what a connection needs while it
/// waits for its client, which is most of its life (memory per idle connection).
pub(crate) async fn serve(accepted: Box<Accepted>) {
    let Some(mut opened) = Box::pin(open(accepted)).await else {
        return;
    };
    let Opened {
        conn,
        transport,
        rbuf,
        wbuf,
        ..
    } = &mut opened;
    let end = conn.run(transport, rbuf, wbuf).await;
    Box::pin(opened.conn.finish(&mut opened.transport, end)).await;
}

/// An accepted connection, ready for its packet loop.
struct Opened {
    conn: Conn,
    transport: Transport,
    /// Bytes the client sent after CONNECT.
    rbuf: BytesMut,
    /// The CONNACK, and what is redelivered after it.
    wbuf: BytesMut,
    /// Dropped last, when the connection is over.
    _slot: ConnectionSlot,
}

/// From the first byte to CONNACK: the handshakes, then reads CONNECT and decides it. `None`
/// when the connection was refused or lost, and is closed.
async fn open(accepted: Box<Accepted>) -> Option<Opened> {
    let Established {
        broker,
        transport: mut stream,
        info,
        slot,
        over_limit,
    } = accepted.establish().await?;
    let transport = &mut stream;
    let mut rbuf = BytesMut::with_capacity(READ_CAPACITY);
    let mut shutdown = broker.shutdown.subscribe();
    let connect = tokio::select! {
        c = connect::read_connect(&broker, transport, &mut rbuf) => c,
        _ = shutdown.wait_for(|down| *down) => Err("the broker is shutting down".to_owned()),
    };
    let connect = match connect {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(peer = %info.peer, listener = %info.listener, reason = %why, "connection closed before CONNECT");
            connection_closed("no_connect");
            let _ = tokio::time::timeout(GOODBYE, transport.close()).await;
            return None;
        }
    };
    let protocol = connect.protocol;
    let max = connect
        .properties
        .maximum_packet_size
        .map_or(usize::MAX, |m| m as usize);
    if let Some(connack) = connect::refusal(&broker, &info, &connect, over_limit) {
        connection_closed("connect_refused");
        refuse(transport, Some(connack), protocol, max).await;
        return None;
    }
    let client_id = connect::client_id(&connect);
    let grant = match broker.auth().cloned() {
        None => None,
        Some(auth) => {
            // Read on while the decision is made (a held connection can wait seconds): a client
            // that leaves ends its hold, and what it sends before CONNACK stays buffered, up to
            // a bound, for after.
            let (gone_tx, gone_rx) = tokio::sync::watch::channel(false);
            let admit = auth.admit(&broker, &info, &client_id, &connect, gone_rx);
            tokio::pin!(admit);
            let mut reading = true;
            let admitted = loop {
                tokio::select! {
                    a = &mut admit => break Some(a),
                    _ = shutdown.wait_for(|down| *down) => break None,
                    r = transport.read(&mut rbuf), if reading => match r {
                        Ok(0) | Err(_) => {
                            reading = false;
                            let _ = gone_tx.send(true);
                        }
                        Ok(n) => {
                            broker.metrics.bytes_in.increment(n as u64);
                            reading = rbuf.len() < PRE_CONNACK_BUFFER;
                        }
                    },
                }
            };
            match admitted {
                Some(Ok(grant)) => grant,
                Some(Err(rejection)) => {
                    reject(&broker, &info, &client_id, &rejection);
                    let connack = (!rejection.silent).then(|| ConnAck {
                        session_present: false,
                        reason: rejection.code,
                        properties: Properties {
                            reason_string: Some(format!(
                                "{}: {}",
                                rejection.reason, rejection.message
                            )),
                            ..Properties::default()
                        },
                    });
                    refuse(transport, connack, protocol, max).await;
                    return None;
                }
                None => {
                    connection_closed("server_shutting_down");
                    let connack = ConnAck {
                        session_present: false,
                        reason: ReasonCode::SERVER_SHUTTING_DOWN,
                        properties: Properties::default(),
                    };
                    refuse(transport, Some(connack), protocol, max).await;
                    return None;
                }
            }
        }
    };
    // Who the certificate identifies is in the grant now; the parsed certificate is not kept
    // for the life of the connection.
    let info = ConnInfo {
        identity: None,
        ..info
    };
    let mut wbuf = BytesMut::new();
    let conn = Conn::accept(broker, info, connect, client_id, grant, &mut wbuf);
    Some(Opened {
        conn,
        transport: stream,
        rbuf,
        wbuf,
        _slot: slot,
    })
}

/// Answers a refused CONNECT (or, with `None`, just closes) and closes the connection.
async fn refuse(
    transport: &mut Transport,
    connack: Option<ConnAck>,
    protocol: ProtocolVersion,
    max: usize,
) {
    if let Some(connack) = connack {
        let mut wbuf = BytesMut::new();
        if encode(
            &fit_diagnostics(Packet::ConnAck(connack), protocol, max),
            protocol,
            &mut wbuf,
        )
        .is_ok()
        {
            let _ = tokio::time::timeout(GOODBYE, transport.write(&mut wbuf)).await;
        }
    }
    let _ = tokio::time::timeout(GOODBYE, transport.close()).await;
}

/// Makes an authorization refusal visible: log, counter and rejection event.
fn reject(broker: &BrokerInner, info: &ConnInfo, client_id: &str, rejection: &Rejection) {
    if rejection.reason == CLIENT_GONE {
        tracing::info!(client_id, peer = %info.peer, "{}", rejection.message);
        connection_closed("client_gone");
        return;
    }
    connection_closed("connect_refused");
    let facts = info
        .identity
        .as_deref()
        .map(CertFacts::of_identity)
        .unwrap_or_default();
    events::connection_rejected(
        broker,
        info,
        Some(client_id),
        rejection.reason,
        &rejection.message,
        &facts,
    );
}

/// What lifecycle events say about a connection.
struct LifecycleIds {
    session_identifier: events::SessionId,
    principal: Cow<'static, str>,
    version: u64,
}

struct Conn {
    broker: Arc<BrokerInner>,
    info: ConnInfo,
    protocol: ProtocolVersion,
    client_id: Arc<str>,
    session: Arc<Session>,
    generation: u64,
    /// Wakes it for deliveries; says when it must end.
    signal: Arc<Signal>,
    keep_alive: u16,
    /// Boxed: most clients have none, and a will is several hundred bytes.
    will: Option<Box<Will>>,
    /// Largest in-flight window toward the client: its Receive Maximum and our limit.
    window: usize,
    client_max_packet: usize,
    /// Boxed when first used: most clients use no topic aliases.
    #[expect(
        clippy::box_collection,
        reason = "an empty map's 48 bytes would sit in every connection's task"
    )]
    topic_aliases: Option<Box<HashMap<u16, TopicName>>>,
    /// MQTT 5 Request Problem Information: whether reason strings may go in acks.
    problem_info: bool,
    /// The connection ended in the middle of a write (the client stopped reading): the stream
    /// may hold half a packet and cannot take a goodbye.
    write_interrupted: bool,
    /// Subscribers whose queues this connection's publishes filled past the high watermark; it
    /// reads nothing more until they drain (or [`MAX_PAUSE`] passes).
    congested: Vec<Arc<Session>>,
    /// Its policies, when the broker authorizes; `None` is full access. Boxed: an anonymous
    /// client with full access, which has none, does not carry its room.
    authz: Option<Box<Authz>>,
    /// Its certificate's id, for the rules' `principal()`.
    principal: Option<Arc<str>>,
    lifecycle: LifecycleIds,
}

impl Conn {
    fn send(&self, packet: &Packet, wbuf: &mut BytesMut) {
        if let Err(e) = encode(packet, self.protocol, wbuf) {
            tracing::error!(client_id = %self.client_id, packet = packet.kind(), error = %e, "could not encode packet");
        }
    }

    async fn run(
        &mut self,
        transport: &mut Transport,
        rbuf: &mut BytesMut,
        wbuf: &mut BytesMut,
    ) -> End {
        // Shutdown kicks attached connections; one that attached as it began is told here.
        if *self.broker.shutdown.borrow() {
            return End::Kicked(Kick::ShuttingDown);
        }
        // What the loop waits for is made once and lives across its turns: waits made on each
        // turn would register and unregister a timer and waiters per message. Deliveries, kicks
        // and shutdown all arrive through the one `signal`. The rare waits (a stalled write,
        // congested subscribers, the goodbye) are boxed, so an idle connection's task holds none.
        let signal = self.signal.clone();
        let woken = signal.notified();
        tokio::pin!(woken);
        let grant: Option<Arc<Grant>> = self.authz.as_ref().map(|a| a.grant().clone());
        // Boxed: a connection without a grant (full access) carries none.
        let mut grant_changed = grant.as_deref().map(|g| Box::pin(g.changed.notified()));
        let idle_limit = Duration::from_millis(u64::from(self.keep_alive) * 1500);
        let keep_alive = self.keep_alive > 0;
        let mut last_rx = Instant::now();
        // Moved only when it fires: a read just notes its time in `last_rx`.
        let silence = tokio::time::sleep_until(last_rx + idle_limit);
        tokio::pin!(silence);
        loop {
            // Checked on every turn: a steady stream of packets must not hide a kick.
            if let Some(k) = signal.kicked() {
                return End::Kicked(k);
            }
            if let Some(end) = self.handle_received(rbuf, wbuf) {
                if !wbuf.is_empty() {
                    let last_words = tokio::time::timeout(GOODBYE, transport.write(wbuf));
                    let _ = Box::pin(last_words).await;
                }
                return end;
            }
            let more = self.pump(wbuf);
            if !wbuf.is_empty() {
                let n = wbuf.len();
                match transport.write_now(wbuf).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let stall = keep_alive.then_some(idle_limit);
                        match Box::pin(finish_write(transport, wbuf, &signal, stall)).await {
                            Ok(()) => {}
                            Err(WriteEnd::Failed(e)) => return End::Io(e),
                            Err(WriteEnd::Interrupted(end)) => {
                                self.write_interrupted = true;
                                return end;
                            }
                        }
                    }
                    Err(e) => return End::Io(e),
                }
                self.broker.metrics.bytes_out.increment(n as u64);
            }
            if !self.congested.is_empty() {
                if let Some(end) = Box::pin(self.wait_for_subscribers(&signal)).await {
                    return end;
                }
                // The pause was ours, not the client's silence: its keep-alive clock restarts.
                last_rx = Instant::now();
                continue;
            }
            // Biased, so that a steady stream of deliveries (`more`, `woken`) never starves
            // reading the client's packets or the keep-alive check.
            tokio::select! {
                biased;
                r = transport.read_or_release(rbuf, wbuf, READ_CAPACITY, !more) => match r {
                    Ok(0) => return End::PeerClosed,
                    Ok(n) => {
                        self.broker.metrics.bytes_in.increment(n as u64);
                        last_rx = Instant::now();
                    }
                    Err(e) => return End::Io(e),
                },
                () = &mut silence, if keep_alive => {
                    let due = last_rx + idle_limit;
                    if Instant::now() >= due {
                        return End::KeepAlive;
                    }
                    silence.as_mut().reset(due);
                }
                () = &mut woken => {
                    if let Some(k) = signal.kicked() {
                        return End::Kicked(k);
                    }
                    woken.set(signal.notified());
                }
                () = grant_change(&mut grant_changed) => {
                    // Waiting again before reading the grant: a change from now on is not missed.
                    grant_changed = grant.as_deref().map(|g| Box::pin(g.changed.notified()));
                    if let Some(end) = self.on_grant_changed() {
                        return end;
                    }
                }
                _ = std::future::ready(()), if more => {}
            }
        }
    }

    /// Handles every whole packet in `rbuf`, appending replies to `wbuf`; `Some` when the
    /// connection ends. (Not inline in `run`: a decoded packet is large, and no packet is held
    /// while the connection waits.)
    fn handle_received(&mut self, rbuf: &mut BytesMut, wbuf: &mut BytesMut) -> Option<End> {
        loop {
            match decode(rbuf, self.protocol, self.broker.config.max_packet_size) {
                Ok(Some(packet)) => {
                    if let Some(end) = self.handle(packet, wbuf) {
                        return Some(end);
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(End::violation(e.reason_code(), e.to_string())),
            }
        }
    }

    /// Waits until the subscribers this connection's publishes congested have drained (or
    /// [`MAX_PAUSE`] passes); `Some` when the connection must end meanwhile.
    async fn wait_for_subscribers(&mut self, signal: &Signal) -> Option<End> {
        let deadline = Instant::now() + MAX_PAUSE;
        while let Some(sub) = self.congested.pop() {
            if Arc::ptr_eq(&sub, &self.session) {
                continue; // our own queue drains only when this task runs
            }
            let max_queued = self.broker.config.max_queued_messages;
            loop {
                let drained = sub.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if sub.is_drained(max_queued) {
                    break;
                }
                tokio::select! {
                    _ = drained => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::debug!(client_id = %sub.client_id, "subscriber is not draining; publishers go on without it");
                        sub.stalled.store(true, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                    k = signal.wait_kicked() => return Some(End::Kicked(k)),
                }
            }
        }
        None
    }

    /// Sends an MQTT 5 client the DISCONNECT `end` calls for and closes the stream, each step
    /// bounded so that a client that stopped reading cannot hold the connection open.
    async fn goodbye(&self, transport: &mut Transport, end: &End) {
        if let (ProtocolVersion::V5, Some(reason)) = (self.protocol, end.reason()) {
            let mut wbuf = BytesMut::new();
            let properties = Properties {
                reason_string: end.detail().map(str::to_owned),
                ..Properties::default()
            };
            let disconnect = Packet::Disconnect(Disconnect { reason, properties });
            self.send(
                &fit_diagnostics(disconnect, self.protocol, self.client_max_packet),
                &mut wbuf,
            );
            let _ = tokio::time::timeout(GOODBYE, transport.write(&mut wbuf)).await;
        }
        let _ = tokio::time::timeout(GOODBYE, transport.close()).await;
    }

    fn lifecycle_event(&self) -> events::Lifecycle<'_> {
        events::Lifecycle {
            client_id: &self.client_id,
            session_identifier: self.lifecycle.session_identifier,
            principal: &self.lifecycle.principal,
            version: self.lifecycle.version,
        }
    }

    /// The watcher changed this connection's grant: a revoked grant ends the connection; new
    /// policies drop the subscriptions they no longer allow (deliveries are checked against
    /// `iot:Receive` one by one anyway).
    fn on_grant_changed(&mut self) -> Option<End> {
        let authz = self.authz.as_mut()?;
        if let Some(revoked) = authz.grant().revoked() {
            return Some(End::Revoked(revoked));
        }
        if !authz.refresh() {
            return None;
        }
        let filters: Vec<ferrule_mqtt::TopicFilter> =
            self.session.lock().subscriptions.keys().cloned().collect();
        let mut dropped = Vec::new();
        for filter in filters {
            if authz.may_subscribe(filter.as_str()) {
                continue;
            }
            let existed = {
                let mut st = self.session.lock();
                st.dirty = true;
                st.subscriptions.remove(&filter).is_some()
            };
            if existed {
                self.broker.unindex_subscription(&self.session, &filter);
                dropped.push(filter.to_string());
            }
        }
        if !dropped.is_empty() {
            tracing::info!(client_id = %self.client_id, filters = ?dropped, "subscriptions no longer allowed by policy were removed");
            self.lifecycle_event()
                .subscriptions(&self.broker, false, &dropped);
        }
        None
    }

    /// Says goodbye, releases the session and publishes the will when due.
    async fn finish(mut self, transport: &mut Transport, end: End) {
        // After an interrupted write the stream may end in half a packet and is not being read:
        // the socket is simply dropped.
        if !self.write_interrupted {
            self.goodbye(transport, &end).await;
        }
        match &end {
            End::Violation { reason, detail } => tracing::warn!(
                client_id = %self.client_id, peer = %self.info.peer, reason = %reason, "connection closed: {detail}"
            ),
            End::Io(e) => {
                tracing::info!(client_id = %self.client_id, error = %e, "connection lost")
            }
            End::Forbidden(detail) => tracing::info!(
                client_id = %self.client_id, peer = %self.info.peer, "connection closed: {detail}"
            ),
            End::Revoked(r) => tracing::info!(
                client_id = %self.client_id, peer = %self.info.peer, reason = r.lifecycle_reason, "connection closed: {}", r.detail
            ),
            other => {
                tracing::info!(client_id = %self.client_id, reason = other.label(), "client disconnected")
            }
        }
        connection_closed(end.label());
        if let (Some(auth), Some(authz)) = (self.broker.auth(), &self.authz) {
            auth.forget(authz.grant());
        }
        self.lifecycle_event().disconnected(
            &self.broker,
            matches!(end, End::Disconnect { .. }),
            end.lifecycle_reason(),
        );
        let expiry = self.session.lock().expiry;
        self.broker.detach(&self.session, self.generation);
        if end.publishes_will()
            && let Some(will) = self.will.take()
        {
            publish_will(&self.broker, &self.session, &self.client_id, *will, expiry);
        }
    }
}

/// How a write that had to wait ended, when not with everything written.
enum WriteEnd {
    Failed(io::Error),
    /// The connection ends in the middle of the write.
    Interrupted(End),
}

/// Writes the rest of `wbuf` once the socket takes it. A client that stops reading must not pin
/// its task in a write: a kick (takeover, shutdown) or a write stalled for `stall` (a whole
/// keep-alive allowance) ends the connection.
async fn finish_write(
    transport: &mut Transport,
    wbuf: &mut BytesMut,
    signal: &Signal,
    stall: Option<Duration>,
) -> Result<(), WriteEnd> {
    let stalled = Instant::now() + stall.unwrap_or_default();
    tokio::select! {
        r = transport.write(wbuf) => r.map_err(WriteEnd::Failed),
        k = signal.wait_kicked() => Err(WriteEnd::Interrupted(End::Kicked(k))),
        _ = tokio::time::sleep_until(stalled), if stall.is_some() => Err(WriteEnd::Interrupted(End::KeepAlive)),
    }
}

/// Completes when the grant changes; never without one.
async fn grant_change(changed: &mut Option<Pin<Box<Notified<'_>>>>) {
    match changed {
        Some(n) => n.as_mut().await,
        None => std::future::pending().await,
    }
}

fn ack(packet_id: u16, reason: ReasonCode) -> PubResp {
    PubResp {
        packet_id,
        reason,
        properties: Properties::default(),
    }
}

/// Drops the diagnostic properties (reason string, user properties) of a CONNACK, SUBACK or
/// DISCONNECT that would exceed the client's Maximum Packet Size: MQTT 5 lets the server leave
/// them out, but never lets it send a larger packet.
fn fit_diagnostics(mut packet: Packet, protocol: ProtocolVersion, max: usize) -> Packet {
    if ferrule_mqtt::encoded_len(&packet, protocol) > max {
        let properties = match &mut packet {
            Packet::ConnAck(p) => &mut p.properties,
            Packet::SubAck(p) => &mut p.properties,
            Packet::Disconnect(p) => &mut p.properties,
            _ => return packet,
        };
        properties.reason_string = None;
        properties.user_properties.clear();
    }
    packet
}

/// Publishes a will now, or hands it to [`BrokerInner::delay_will`]. A session that expires
/// sooner than the delay brings the will forward (MQTT 5, 3.1.3.2.2).
fn publish_will(
    broker: &Arc<BrokerInner>,
    session: &Arc<Session>,
    client_id: &Arc<str>,
    will: Will,
    expiry: u32,
) {
    let mut properties = will.properties;
    let delay = properties
        .will_delay_interval
        .take()
        .unwrap_or(0)
        .min(expiry);
    let expires_at_ms = properties
        .message_expiry_interval
        .take()
        .map(|s| now_ms() + u64::from(s) * 1000);
    let msg = Arc::new(Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties,
        expires_at_ms,
        publisher: Some(client_id.clone()),
        principal: None,
        rule_hops: 0,
    });
    if delay == 0 {
        tracing::debug!(client_id = %client_id, topic = %msg.topic, "publishing will");
        broker.publish(&msg);
    } else {
        broker.delay_will(session, msg, Duration::from_secs(u64::from(delay)));
    }
}
