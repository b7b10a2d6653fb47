//! Session state that outlives a connection: subscriptions, the message queue, messages in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ferrule_mqtt::{Properties, ProtocolVersion, QoS, RetainHandling, TopicFilter, TopicName};
use tokio::sync::Notify;

/// A published message as the broker routes it. Shared by every delivery of it.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) topic: TopicName,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// Properties forwarded to MQTT 5 receivers: payload format, content type, response topic,
    /// correlation data, user properties. Expiry is kept as `expires_at_ms` instead.
    pub(crate) properties: Properties,
    /// Wall-clock expiry in Unix milliseconds (MQTT 5 message expiry), if any.
    pub(crate) expires_at_ms: Option<u64>,
    /// The publishing client, for no-local subscriptions.
    pub(crate) publisher: Option<Arc<str>>,
    /// The publisher's certificate id, for the rules' `principal()`.
    pub(crate) principal: Option<Arc<str>>,
    /// How many rule republishes led to this message (see `rules::MAX_RULE_HOPS`).
    pub(crate) rule_hops: u8,
}

impl Message {
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|t| t <= now_ms)
    }
}

/// One message on its way to one session, with what that session's subscriptions made of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) msg: Arc<Message>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) subscription_ids: Vec<u32>,
}

/// Options of one subscription, as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    pub(crate) qos: QoS,
    pub(crate) no_local: bool,
    pub(crate) retain_as_published: bool,
    pub(crate) retain_handling: RetainHandling,
    pub(crate) subscription_id: Option<u32>,
}

impl SubOptions {
    /// The MQTT 5 subscription-options byte, which is also how the store keeps them.
    pub(crate) fn to_byte(self) -> u8 {
        self.qos as u8
            | u8::from(self.no_local) << 2
            | u8::from(self.retain_as_published) << 3
            | (self.retain_handling as u8) << 4
    }

    pub(crate) fn from_byte(b: u8, subscription_id: Option<u32>) -> Option<SubOptions> {
        let retain_handling = match (b >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return None,
        };
        Some(SubOptions {
            qos: QoS::from_u8(b & 0b11)?,
            no_local: b & 0b100 != 0,
            retain_as_published: b & 0b1000 != 0,
            retain_handling,
            subscription_id,
        })
    }
}

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflightState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish,
    /// PUBREL sent; waiting for PUBCOMP.
    Release,
}

#[derive(Debug, Clone)]
pub(crate) struct Inflight {
    /// Send order, so redelivery after a reconnect keeps it.
    pub(crate) seq: u64,
    pub(crate) delivery: Delivery,
    pub(crate) state: InflightState,
}

/// Why the broker tells a connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    TakenOver,
    SessionRemoved,
    /// The broker is shutting down.
    ShuttingDown,
}

/// How the broker reaches the connection attached to a session: deliveries wake it, and a kick
/// tells it to end. One per connection: a connection being taken over must not swallow the
/// wake-up meant for its successor.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Deliveries and kicks: what the packet loop waits on.
    notify: Notify,
    /// Kicks only, for the waits outside the loop (a write, congested subscribers): were they to
    /// wait on `notify`, they could take a delivery's wake-up from the loop.
    kicked: Notify,
    /// 0 until kicked, then 1 + the `Kick` (the first kick wins).
    kick: AtomicU8,
}

impl Signal {
    /// A delivery was queued.
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    /// Tells the connection to end, unless it was told already.
    pub(crate) fn kick(&self, why: Kick) {
        let code = 1 + why as u8;
        let _ = self
            .kick
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        // Every waiter of both: the packet loop's wait stays registered while a write waits.
        self.notify.notify_waiters();
        self.kicked.notify_waiters();
    }

    pub(crate) fn kicked(&self) -> Option<Kick> {
        match self.kick.load(Ordering::Acquire) {
            0 => None,
            1 => Some(Kick::TakenOver),
            2 => Some(Kick::SessionRemoved),
            _ => Some(Kick::ShuttingDown),
        }
    }

    /// Completes on the next wake or kick (or at once, if a wake came while nobody waited).
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Completes when the connection is kicked.
    pub(crate) async fn wait_kicked(&self) -> Kick {
        loop {
            let notified = self.kicked.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(k) = self.kicked() {
                return k;
            }
            notified.await;
        }
    }
}

/// The connection currently attached to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub(crate) generation: u64,
    pub(crate) signal: Arc<Signal>,
}

impl Drop for Attached {
    /// A connection no longer attached must end: taken over, removed, shut down (said before)
    /// or, when nobody said why, its session is gone.
    fn drop(&mut self) {
        self.signal.kick(Kick::SessionRemoved);
    }
}

/// Hashes packet identifiers, which the broker hands out itself (and a client's are bounded by
/// its window): no flooding to defend against, so one multiplication instead of SipHash, which
/// was 5 % of the broker's CPU per QoS 1 delivery.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PacketIdHasher(u64);

impl Hasher for PacketIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: consecutive ids land on unrelated buckets and tags.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Packet identifiers to `V`, hashed with [`PacketIdHasher`].
pub(crate) type PacketIdMap<V> = HashMap<u16, V, BuildHasherDefault<PacketIdHasher>>;

#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) protocol: ProtocolVersion,
    /// Seconds the session lives after its connection closes; `u32::MAX` is forever.
    pub(crate) expiry: u32,
    pub(crate) subscriptions: HashMap<TopicFilter, SubOptions>,
    pub(crate) queue: VecDeque<Delivery>,
    pub(crate) inflight: PacketIdMap<Inflight>,
    pub(crate) next_seq: u64,
    /// QoS 2 packet ids received and PUBREC'd, waiting for the client's PUBREL.
    pub(crate) incoming_qos2: HashSet<u16, BuildHasherDefault<PacketIdHasher>>,
    pub(crate) next_packet_id: u16,
    pub(crate) attached: Option<Attached>,
    pub(crate) disconnected_at_ms: Option<u64>,
    /// Changed since it was last written to the store.
    pub(crate) dirty: bool,
    /// A record of it may be in the store (it was saved or restored), so ending it must delete
    /// that record even if the session is no longer persistent.
    pub(crate) in_store: bool,
    /// Removed from the broker; late deliveries to it are discarded.
    pub(crate) ended: bool,
    /// A will waiting out its delay: cancelled if a connection resumes the session, published
    /// early if the session ends first.
    pub(crate) pending_will: Option<Arc<Message>>,
}

impl SessionState {
    /// Allocates a packet id not in flight. `None` when all 65535 are in use.
    pub(crate) fn alloc_packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.expiry > 0
    }

    /// Whether the session is offline and its expiry interval has passed at `now_ms`.
    pub(crate) fn has_expired(&self, now_ms: u64) -> bool {
        self.attached.is_none()
            && self.expiry != u32::MAX
            && self
                .disconnected_at_ms
                .is_some_and(|t| t.saturating_add(u64::from(self.expiry) * 1000) <= now_ms)
    }
}

/// A session, shared by the broker's indexes and the connection attached to it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client_id: Arc<str>,
    state: Mutex<SessionState>,
    /// Mirrors `state.attached.is_some()` for lock-free checks when picking a shared subscriber.
    pub(crate) online: AtomicBool,
    /// Woken when the queue falls to its low watermark, the session goes offline or ends:
    /// publishers paused by [`Enqueued::Congested`] wait on it.
    pub(crate) drained: Notify,
    /// A publisher waited its longest pause for this session in vain: until its
    /// queue drains, publishers no longer pause for it (its overflow is dropped instead), so one
    /// stuck subscriber cannot slow every publisher again and again.
    pub(crate) stalled: AtomicBool,
}

impl Session {
    pub(crate) fn new(client_id: Arc<str>, protocol: ProtocolVersion, expiry: u32) -> Session {
        Session {
            client_id,
            state: Mutex::new(SessionState {
                protocol,
                expiry,
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                inflight: PacketIdMap::default(),
                next_seq: 0,
                incoming_qos2: HashSet::default(),
                next_packet_id: 1,
                attached: None,
                disconnected_at_ms: None,
                dirty: false,
                in_store: false,
                ended: false,
                pending_will: None,
            }),
            online: AtomicBool::new(false),
            drained: Notify::new(),
            stalled: AtomicBool::new(false),
        }
    }

    /// Locks the state. A panic while holding the lock is a bug elsewhere; the state is still
    /// consistent enough to serve (every mutation is a single step), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }
}

/// What happened to a delivery offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    Queued,
    /// Not queued: QoS 0 for an offline session, or the session ended.
    Skipped,
    /// Queued, but the session's queue is past its high watermark: the publisher should pause
    /// until it drains, so that a slow subscriber slows its publishers instead of losing
    /// messages.
    Congested,
    /// The session's queue is full.
    Dropped,
}

/// The queue length at which an online session asks its publishers to pause.
pub(crate) fn high_watermark(max_queued: usize) -> usize {
    (max_queued / 2).max(1)
}

/// The queue length at which paused publishers resume.
pub(crate) fn low_watermark(max_queued: usize) -> usize {
    max_queued / 4
}

impl Session {
    /// Whether publishers paused by this session may go on: its queue is at the low watermark,
    /// or nobody is connected to drain it.
    pub(crate) fn is_drained(&self, max_queued: usize) -> bool {
        let st = self.lock();
        st.ended || st.attached.is_none() || st.queue.len() <= low_watermark(max_queued)
    }

    /// Queues a delivery and wakes the attached connection.
    pub(crate) fn enqueue(
        &self,
        d: Delivery,
        max_queued: usize,
        queue_qos0_offline: bool,
    ) -> Enqueued {
        let mut st = self.lock();
        if st.ended {
            return Enqueued::Skipped;
        }
        let wake = st.attached.as_ref().map(|a| a.signal.clone());
        let online = wake.is_some();
        if !online && d.qos == QoS::AtMostOnce && !queue_qos0_offline {
            return Enqueued::Skipped;
        }
        if st.queue.len() >= max_queued {
            return Enqueued::Dropped;
        }
        st.queue.push_back(d);
        if !online {
            st.dirty = true;
        }
        let congested = online
            && st.queue.len() >= high_watermark(max_queued)
            && !self.stalled.load(Ordering::Relaxed);
        drop(st);
        if let Some(signal) = wake {
            signal.wake();
        }
        if congested {
            Enqueued::Congested
        } else {
            Enqueued::Queued
        }
    }
}
