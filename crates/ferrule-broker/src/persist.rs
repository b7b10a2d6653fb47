//! Write-behind of retained messages and persistent sessions to the store, and their reload.
//!
//! The publish path never waits on the database: it sends a `PersistOp` to one writer task.
//! Offline sessions that changed are written every `persist_interval`; all persistent sessions
//! are written at shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use ferrule_mqtt::{Packet, ProtocolVersion, Publish, QoS, TopicFilter, decode, encode};
use ferrule_store::{
    BrokerStore, QueuedRecord, RetainedChange, RetainedRecord, SessionRecord, SubscriptionRecord,
};
use tokio::sync::{mpsc, oneshot};

use crate::broker::{BrokerInner, now_ms};
use crate::session::{Delivery, Inflight, InflightState, Message, Session, SubOptions};

/// Work for the store writer.
#[derive(Debug)]
pub(crate) enum PersistOp {
    PutRetained(Arc<Message>),
    DeleteRetained(String),
    SaveSessions(Vec<SessionRecord>),
    DeleteSession(String),
    /// Closes the store once every earlier op is written, then answers and stops the writer;
    /// later ops are discarded.
    Close(oneshot::Sender<()>),
}

const BLOB_VERSION: u8 = 1;

/// Encodes a delivery as a blob: a small header (version, expiry, publisher) followed by the
/// MQTT 5 PUBLISH packet the receiver would get, which carries every property.
pub(crate) fn encode_delivery(d: &Delivery) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u8(BLOB_VERSION);
    buf.put_u64(d.msg.expires_at_ms.unwrap_or(0));
    match &d.msg.publisher {
        Some(p) => {
            buf.put_u8(1);
            buf.put_u16(p.len() as u16);
            buf.put_slice(&p.as_bytes()[..p.len().min(u16::MAX as usize)]);
        }
        None => buf.put_u8(0),
    }
    let mut properties = d.msg.properties.clone();
    properties.subscription_identifiers = d.subscription_ids.clone();
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: d.qos,
        retain: d.retain,
        topic: Some(d.msg.topic.clone()),
        packet_id: (d.qos != QoS::AtMostOnce).then_some(1),
        payload: d.msg.payload.clone(),
        properties,
    });
    // A message that was decoded from a client always re-encodes.
    if encode(&publish, ProtocolVersion::V5, &mut buf).is_err() {
        tracing::warn!(topic = %d.msg.topic, "message could not be encoded for the store");
    }
    buf.to_vec()
}

/// Decodes a blob made by [`encode_delivery`]; `None` if it is damaged.
pub(crate) fn decode_delivery(blob: &[u8], original_qos: Option<QoS>) -> Option<Delivery> {
    let mut buf = BytesMut::from(blob);
    if buf.remaining() < 10 || buf.get_u8() != BLOB_VERSION {
        return None;
    }
    let expires = buf.get_u64();
    let publisher: Option<Arc<str>> = match buf.get_u8() {
        0 => None,
        _ => {
            if buf.remaining() < 2 {
                return None;
            }
            let len = buf.get_u16() as usize;
            if buf.remaining() < len {
                return None;
            }
            let p = buf.split_to(len);
            Some(Arc::from(std::str::from_utf8(&p).ok()?))
        }
    };
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, ProtocolVersion::V5, u32::MAX) else {
        return None;
    };
    let mut properties = p.properties;
    let subscription_ids = std::mem::take(&mut properties.subscription_identifiers);
    let msg = Message {
        topic: p.topic?,
        payload: p.payload,
        qos: original_qos.unwrap_or(p.qos),
        retain: p.retain,
        properties,
        expires_at_ms: (expires != 0).then_some(expires),
        publisher,
        principal: None,
        rule_hops: 0,
    };
    Some(Delivery {
        msg: Arc::new(msg),
        qos: p.qos,
        retain: p.retain,
        subscription_ids,
    })
}

fn retained_record(msg: &Message) -> RetainedRecord {
    let d = Delivery {
        msg: Arc::new(Message {
            topic: msg.topic.clone(),
            payload: msg.payload.clone(),
            qos: msg.qos,
            retain: true,
            properties: msg.properties.clone(),
            expires_at_ms: msg.expires_at_ms,
            publisher: msg.publisher.clone(),
            principal: msg.principal.clone(),
            rule_hops: msg.rule_hops,
        }),
        qos: msg.qos,
        retain: true,
        subscription_ids: Vec::new(),
    };
    RetainedRecord {
        topic: msg.topic.to_string(),
        message: encode_delivery(&d),
        stored_at_ms: now_ms() as i64,
    }
}

/// Snapshots a persistent session for the store, clearing its dirty mark.
pub(crate) fn session_record(
    session: &Session,
    force_offline_at: Option<u64>,
) -> Option<SessionRecord> {
    let mut st = session.lock();
    if !st.is_persistent() || st.ended {
        return None;
    }
    st.dirty = false;
    st.in_store = true;
    let mut inflight: Vec<(&u16, &Inflight)> = st.inflight.iter().collect();
    inflight.sort_by_key(|(_, i)| i.seq);
    let queue = inflight
        .into_iter()
        .map(|(id, i)| QueuedRecord {
            message: encode_delivery(&i.delivery),
            packet_id: Some(*id),
            pubrel_pending: i.state == InflightState::Release,
        })
        .chain(st.queue.iter().map(|d| QueuedRecord {
            message: encode_delivery(d),
            packet_id: None,
            pubrel_pending: false,
        }))
        .collect();
    let subscriptions = st
        .subscriptions
        .iter()
        .map(|(f, o)| SubscriptionRecord {
            filter: f.as_str().to_owned(),
            options: o.to_byte(),
            subscription_id: o.subscription_id,
        })
        .collect();
    let disconnected = match (st.attached.is_some(), force_offline_at) {
        (true, Some(t)) => Some(t),
        _ => st.disconnected_at_ms,
    };
    Some(SessionRecord {
        client_id: session.client_id.to_string(),
        protocol_level: match st.protocol {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        },
        session_expiry_secs: st.expiry,
        disconnected_at_ms: disconnected.map(|t| t as i64),
        subscriptions,
        queue,
    })
}

/// Rebuilds a session from its record; damaged parts are skipped with a warning.
pub(crate) fn restore_session(rec: SessionRecord) -> Session {
    let protocol = if rec.protocol_level == 5 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let session = Session::new(
        Arc::from(rec.client_id.as_str()),
        protocol,
        rec.session_expiry_secs,
    );
    {
        let mut st = session.lock();
        st.in_store = true;
        st.disconnected_at_ms = Some(
            rec.disconnected_at_ms
                .map_or_else(now_ms, |t| t.max(0) as u64),
        );
        for s in rec.subscriptions {
            match (
                TopicFilter::new(s.filter.as_str()),
                SubOptions::from_byte(s.options, s.subscription_id),
            ) {
                (Ok(f), Some(o)) => {
                    st.subscriptions.insert(f, o);
                }
                _ => {
                    tracing::warn!(client_id = %rec.client_id, filter = %s.filter, "stored subscription is damaged; skipped")
                }
            }
        }
        for q in rec.queue {
            let Some(d) = decode_delivery(&q.message, None) else {
                tracing::warn!(client_id = %rec.client_id, "stored message is damaged; skipped");
                continue;
            };
            match q.packet_id {
                Some(id) => {
                    let seq = st.next_seq;
                    st.next_seq += 1;
                    let state = if q.pubrel_pending {
                        InflightState::Release
                    } else {
                        InflightState::Publish
                    };
                    st.inflight.insert(
                        id,
                        Inflight {
                            seq,
                            delivery: d,
                            state,
                        },
                    );
                }
                None => st.queue.push_back(d),
            }
        }
    }
    session
}

/// Loads retained messages and sessions into a fresh broker.
pub(crate) async fn load(
    broker: &BrokerInner,
    store: &BrokerStore,
) -> Result<(usize, usize), ferrule_store::StoreError> {
    let retained = store.load_retained().await?;
    let mut n_retained = 0;
    for r in retained {
        match decode_delivery(&r.message, None) {
            Some(d) => {
                broker.restore_retained(d.msg);
                n_retained += 1;
            }
            None => tracing::warn!(topic = %r.topic, "stored retained message is damaged; skipped"),
        }
    }
    let sessions = store.load_sessions().await?;
    let n_sessions = sessions.len();
    for rec in sessions {
        broker.restore_session(Arc::new(restore_session(rec)));
    }
    Ok((n_retained, n_sessions))
}

/// Most ops the writer takes from its queue for one round of writes.
const MAX_BATCH: usize = 4096;

/// The store writer: applies ops in order and, every `interval`, writes dirty offline sessions.
/// Ops that queued up while it was writing are taken together (see [`Batch`]).
pub(crate) async fn run_writer(
    broker: std::sync::Weak<BrokerInner>,
    store: BrokerStore,
    mut rx: mpsc::UnboundedReceiver<PersistOp>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            op = rx.recv() => {
                let Some(op) = op else { break };
                let mut batch = Batch::default();
                batch.add(op);
                while batch.ops < MAX_BATCH && batch.close.is_none() {
                    match rx.try_recv() {
                        Ok(op) => batch.add(op),
                        Err(_) => break,
                    }
                }
                if let Some(done) = batch.write(&store).await {
                    store.close().await;
                    let _ = done.send(());
                    tracing::debug!("store writer stopped");
                    return;
                }
            }
            _ = tick.tick() => {
                let Some(b) = broker.upgrade() else { continue };
                let dirty: Vec<SessionRecord> = b
                    .all_sessions()
                    .iter()
                    .filter(|s| { let st = s.lock(); st.dirty && st.attached.is_none() })
                    .filter_map(|s| session_record(s, None))
                    .collect();
                drop(b);
                if !dirty.is_empty() {
                    write_sessions(&store, SessionWrite::Save(dirty)).await;
                }
            }
        }
    }
}

/// Ops taken from the queue together. Retained changes are written in one transaction, and
/// only the last change of each topic (a burst that stores and clears a topic writes nothing
/// for it); session ops are applied after them, in their order. A `Close` ends the batch.
#[derive(Default)]
struct Batch {
    ops: usize,
    /// By topic: the message to store, or `None` to remove the topic's.
    retained: HashMap<String, Option<Arc<Message>>>,
    sessions: Vec<SessionWrite>,
    close: Option<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, op: PersistOp) {
        self.ops += 1;
        match op {
            PersistOp::PutRetained(m) => {
                self.retained.insert(m.topic.as_str().to_owned(), Some(m));
            }
            PersistOp::DeleteRetained(topic) => {
                self.retained.insert(topic, None);
            }
            PersistOp::SaveSessions(s) => self.sessions.push(SessionWrite::Save(s)),
            PersistOp::DeleteSession(c) => self.sessions.push(SessionWrite::Delete(c)),
            PersistOp::Close(done) => self.close = Some(done),
        }
    }

    /// Writes the batch; returns the `Close` it ended with, if any.
    async fn write(self, store: &BrokerStore) -> Option<oneshot::Sender<()>> {
        let changes: Vec<RetainedChange> = self
            .retained
            .into_iter()
            .map(|(topic, m)| match m {
                Some(m) => RetainedChange::Put(retained_record(&m)),
                None => RetainedChange::Delete(topic),
            })
            .collect();
        if let Err(e) = store.write_retained(&changes).await {
            tracing::error!(error = %e, "writing to the store failed");
        }
        for op in self.sessions {
            write_sessions(store, op).await;
        }
        self.close
    }
}

/// A session op of a [`Batch`].
enum SessionWrite {
    Save(Vec<SessionRecord>),
    Delete(String),
}

async fn write_sessions(store: &BrokerStore, op: SessionWrite) {
    let result = match op {
        SessionWrite::Save(s) => store.save_sessions(&s).await,
        SessionWrite::Delete(c) => store.delete_session(&c).await,
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "writing to the store failed");
    }
}
