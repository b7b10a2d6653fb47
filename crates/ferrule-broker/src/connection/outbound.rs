//! Deliveries to the client: redelivery after a reconnect, and the in-flight window.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode};

use super::{Conn, ack};
use crate::broker::now_ms;
use crate::session::{Delivery, Inflight, InflightState, SessionState, low_watermark};

/// Most bytes gathered in the write buffer before it is written out.
const WRITE_CHUNK: usize = 64 * 1024;

impl Conn {
    /// Resends what was in flight when the previous connection ended, in the original order.
    /// Messages that expired meanwhile, or that are too large for this connection, are dropped
    /// from the window rather than left in it forever.
    pub(super) fn redeliver(&self, wbuf: &mut BytesMut) {
        let mut st = self.session.lock();
        let mut inflight: Vec<(u16, u64, InflightState)> = st
            .inflight
            .iter()
            .map(|(id, i)| (*id, i.seq, i.state))
            .collect();
        inflight.sort_by_key(|&(_, seq, _)| seq);
        let now = now_ms();
        for (id, _, state) in inflight {
            match state {
                InflightState::Publish => {
                    let sent = st
                        .inflight
                        .get(&id)
                        .and_then(|i| self.outgoing(&i.delivery, Some(id), true, now))
                        .is_some_and(|p| self.send_publish(p, wbuf));
                    if !sent {
                        st.inflight.remove(&id);
                    }
                }
                InflightState::Release => {
                    self.send(&Packet::PubRel(ack(id, ReasonCode::SUCCESS)), wbuf)
                }
            }
        }
    }

    /// Appends a PUBLISH unless it exceeds the client's Maximum Packet Size, in which case MQTT 5
    /// says to discard it. Returns whether it was appended.
    pub(super) fn send_publish(&self, publish: Publish, wbuf: &mut BytesMut) -> bool {
        let before = wbuf.len();
        self.send(&Packet::Publish(publish), wbuf);
        if wbuf.len() - before > self.client_max_packet {
            wbuf.truncate(before);
            self.broker.metrics.dropped_too_large.increment(1);
            return false;
        }
        true
    }

    /// Moves queued deliveries into the write buffer while the in-flight window allows.
    /// Returns true when more are waiting and the buffer is full.
    pub(super) fn pump(&mut self, wbuf: &mut BytesMut) -> bool {
        let session = self.session.clone();
        let mut st = session.lock();
        if st.queue.is_empty() {
            return false;
        }
        // Taken over: what is queued now belongs to the new connection, which would never resend
        // messages this one moved into the window.
        if st
            .attached
            .as_ref()
            .is_none_or(|a| a.generation != self.generation)
        {
            return false;
        }
        // An idle connection gave its write buffer back; size the new one for what is queued
        // (up to a chunk) rather than letting it grow by doubling, a copy each time.
        if wbuf.capacity() == 0
            && let Some(front) = st.queue.front()
        {
            let each = front.msg.topic.as_str().len() + front.msg.payload.len() + 16;
            wbuf.reserve(each.saturating_mul(st.queue.len()).min(WRITE_CHUNK));
        }
        let now = now_ms();
        let low = low_watermark(self.broker.config.max_queued_messages);
        let paused_publishers = st.queue.len() > low;
        let more = self.fill(&mut st, wbuf, now);
        if paused_publishers && st.queue.len() <= low {
            self.session.stalled.store(false, Ordering::Relaxed);
            self.session.drained.notify_waiters();
        }
        more
    }

    fn fill(&mut self, st: &mut SessionState, wbuf: &mut BytesMut, now: u64) -> bool {
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
            if let Some(authz) = &mut self.authz
                && !authz.may_receive(&d.msg.topic)
            {
                self.broker.metrics.dropped_not_authorized.increment(1);
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
            let Some(publish) = self.outgoing(&d, packet_id, false, now) else {
                continue;
            };
            if !self.send_publish(publish, wbuf) {
                continue;
            }
            self.broker.metrics.message_out(d.qos);
            if let Some(id) = packet_id {
                let seq = st.next_seq;
                st.next_seq += 1;
                st.inflight.insert(
                    id,
                    Inflight {
                        seq,
                        delivery: d,
                        state: InflightState::Publish,
                    },
                );
            }
        }
        false
    }

    /// The PUBLISH this client gets for a delivery; `None` if it expired.
    pub(super) fn outgoing(
        &self,
        d: &Delivery,
        packet_id: Option<u16>,
        dup: bool,
        now: u64,
    ) -> Option<Publish> {
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
}
