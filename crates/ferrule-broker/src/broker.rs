//! The broker's shared state: sessions, the subscription index, retained messages, and routing.
//!
//! Lock order, to keep it deadlock-free: the session map, then one session, then the
//! subscription trie. Routing reads the trie, releases it, and only then locks sessions; the
//! retained map is never held together with another lock. Publishing (wills included) takes
//! all of these, so code that ends a session hands its will back to be published only once it
//! holds no lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrule_mqtt::{ProtocolVersion, QoS, TopicFilter, TopicName, TopicTrie};
use tokio::sync::{Notify, mpsc, watch};

use crate::auth::Auth;
use crate::config::BrokerConfig;
use crate::metrics::Metrics;
use crate::persist::PersistOp;
use crate::rules::RulesEngine;
use crate::session::{Attached, Delivery, Enqueued, Kick, Message, Session, Signal, SubOptions};

/// One subscription in the routing index.
#[derive(Debug, Clone)]
pub(crate) struct SubEntry {
    pub(crate) session: Arc<Session>,
    pub(crate) filter: TopicFilter,
    pub(crate) opts: SubOptions,
    /// For a shared subscription, the group's round-robin position, one counter shared by every
    /// member's entry: a counter per broker would let messages to other groups step in between
    /// and pin a group to one member.
    pub(crate) group_turn: Option<Arc<AtomicUsize>>,
}

impl SubEntry {
    /// The entry for `session`'s subscription to `filter`, joining the group's turn counter if
    /// other members already subscribed.
    fn new(
        trie: &TopicTrie<SubEntry>,
        session: &Arc<Session>,
        filter: &TopicFilter,
        opts: SubOptions,
    ) -> SubEntry {
        let group_turn = filter.is_shared().then(|| {
            trie.get(filter.match_filter())
                .iter()
                .find(|e| e.filter == *filter)
                .and_then(|e| e.group_turn.clone())
                .unwrap_or_default()
        });
        SubEntry {
            session: session.clone(),
            filter: filter.clone(),
            opts,
            group_turn,
        }
    }
}

pub(crate) struct BrokerInner {
    pub(crate) config: BrokerConfig,
    pub(crate) metrics: Metrics,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    subs: RwLock<TopicTrie<SubEntry>>,
    retained: RwLock<HashMap<TopicName, Arc<Message>>>,
    pub(crate) persist: Option<mpsc::UnboundedSender<PersistOp>>,
    pub(crate) shutdown: watch::Sender<bool>,
    generation: AtomicU64,
    /// Open client connections, all listeners together.
    pub(crate) connections: AtomicUsize,
    /// Woken whenever a connection ends, so shutdown can wait for the last one.
    pub(crate) connection_ended: Notify,
    /// Device authorization, once enabled; without it every client has full access.
    pub(crate) auth: OnceLock<Arc<Auth>>,
    /// The rules engine, once enabled.
    pub(crate) rules: OnceLock<Arc<RulesEngine>>,
}

/// How often offline sessions and retained messages are checked for expiry. A reconnect checks
/// its own session exactly (see [`BrokerInner::attach`]) and reads skip expired retained
/// messages; the sweep frees memory and the store.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// Wall-clock milliseconds since the Unix epoch: expiry times must survive a restart.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// The outcome of attaching a new connection to its session.
pub(crate) struct AttachOutcome {
    pub(crate) session: Arc<Session>,
    pub(crate) session_present: bool,
    pub(crate) generation: u64,
    /// Wakes the connection for deliveries, and kicks it.
    pub(crate) signal: Arc<Signal>,
}

impl BrokerInner {
    pub(crate) fn new(
        config: BrokerConfig,
        persist: Option<mpsc::UnboundedSender<PersistOp>>,
    ) -> BrokerInner {
        BrokerInner {
            config,
            metrics: Metrics::new(),
            sessions: Mutex::new(HashMap::new()),
            subs: RwLock::new(TopicTrie::new()),
            retained: RwLock::new(HashMap::new()),
            persist,
            shutdown: watch::Sender::new(false),
            generation: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            connection_ended: Notify::new(),
            auth: OnceLock::new(),
            rules: OnceLock::new(),
        }
    }

    pub(crate) fn auth(&self) -> Option<&Arc<Auth>> {
        self.auth.get()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn persist(&self, op: PersistOp) {
        if let Some(tx) = &self.persist {
            // The writer only stops after shutdown has flushed; a send after that has nothing
            // left to protect.
            let _ = tx.send(op);
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions().len()
    }

    pub(crate) fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions().values().cloned().collect()
    }

    /// Puts a session restored from the store back into the indexes.
    pub(crate) fn restore_session(&self, session: Arc<Session>) {
        let subs: Vec<(TopicFilter, SubOptions)> = session
            .lock()
            .subscriptions
            .iter()
            .map(|(f, o)| (f.clone(), *o))
            .collect();
        let mut trie = write(&self.subs);
        for (filter, opts) in subs {
            let entry = SubEntry::new(&trie, &session, &filter, opts);
            trie.insert(filter.match_filter(), entry);
        }
        drop(trie);
        self.sessions().insert(session.client_id.clone(), session);
        self.metrics.sessions.set(self.session_count() as f64);
    }

    /// Attaches a connection to the session of `client_id`, taking it over from any connection
    /// already attached, and starting a new session when asked to or when there is none.
    pub(crate) fn attach(
        &self,
        client_id: &Arc<str>,
        protocol: ProtocolVersion,
        clean_start: bool,
        expiry: u32,
        now_ms: u64,
    ) -> AttachOutcome {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(Signal::default());
        let attached = Attached {
            generation,
            signal: signal.clone(),
        };
        let mut ended_will = None;
        let mut sessions = self.sessions();
        if let Some(existing) = sessions.get(client_id).cloned() {
            let mut st = existing.lock();
            // The sweep may not have reached a session that expired a moment ago; it is gone all
            // the same.
            let expired = st.has_expired(now_ms);
            if let Some(old) = st.attached.take() {
                old.signal.kick(Kick::TakenOver);
            }
            if !clean_start && !expired {
                if st.pending_will.take().is_some() {
                    tracing::debug!(client_id = %client_id, "client came back: delayed will cancelled");
                }
                st.attached = Some(attached);
                st.protocol = protocol;
                st.expiry = expiry;
                st.disconnected_at_ms = None;
                st.dirty = true;
                drop(st);
                existing.set_online(true);
                return AttachOutcome {
                    session: existing,
                    session_present: true,
                    generation,
                    signal,
                };
            }
            drop(st);
            sessions.remove(client_id);
            ended_will = self.retire(&existing);
        }
        let session = Arc::new(Session::new(client_id.clone(), protocol, expiry));
        {
            let mut st = session.lock();
            st.attached = Some(attached);
        }
        session.set_online(true);
        sessions.insert(client_id.clone(), session.clone());
        self.metrics.sessions.set(sessions.len() as f64);
        drop(sessions);
        if let Some(will) = ended_will {
            self.publish(&will);
        }
        AttachOutcome {
            session,
            session_present: false,
            generation,
            signal,
        }
    }

    /// Detaches connection `generation` from its session; ends the session if it does not outlive
    /// the connection. Returns false if another connection had already taken the session over.
    pub(crate) fn detach(&self, session: &Arc<Session>, generation: u64) -> bool {
        let mut st = session.lock();
        match &st.attached {
            Some(a) if a.generation == generation => {}
            _ => return false,
        }
        st.attached = None;
        session.set_online(false);
        st.disconnected_at_ms = Some(now_ms());
        st.dirty = true;
        let ends = st.expiry == 0;
        drop(st);
        // Nobody drains an offline queue: publishers waiting on it go on.
        session
            .stalled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        session.drained.notify_waiters();
        if ends {
            self.end_session(session);
        }
        true
    }

    /// Removes a session from the broker and the store.
    pub(crate) fn end_session(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions();
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
        self.metrics.sessions.set(sessions.len() as f64);
        drop(sessions);
        if let Some(will) = self.retire(session) {
            self.publish(&will);
        }
    }

    /// Marks a session ended and removes its subscriptions and stored record. Returns its
    /// delayed will, which the caller publishes once it holds no lock.
    #[must_use]
    fn retire(&self, session: &Arc<Session>) -> Option<Arc<Message>> {
        let mut st = session.lock();
        st.ended = true;
        let will = st.pending_will.take();
        // Not `is_persistent()`: a stored session may have had its expiry lowered to 0 since.
        let in_store = st.in_store;
        let filters: Vec<TopicFilter> = st.subscriptions.drain().map(|(f, _)| f).collect();
        st.queue.clear();
        st.inflight.clear();
        if let Some(a) = st.attached.take() {
            a.signal.kick(Kick::SessionRemoved);
        }
        drop(st);
        session.drained.notify_waiters();
        let mut trie = write(&self.subs);
        for f in &filters {
            trie.remove(f.match_filter(), |e: &SubEntry| {
                Arc::ptr_eq(&e.session, session)
            });
        }
        drop(trie);
        if in_store {
            self.persist(PersistOp::DeleteSession(session.client_id.to_string()));
        }
        will
    }

    /// Ends offline sessions whose expiry has passed.
    pub(crate) fn expire_sessions(&self, now_ms: u64) {
        let expired: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| s.lock().has_expired(now_ms))
            .cloned()
            .collect();
        for s in expired {
            tracing::debug!(client_id = %s.client_id, "session expired");
            self.end_session(&s);
        }
    }

    /// Adds or replaces one subscription in the index.
    pub(crate) fn index_subscription(
        &self,
        session: &Arc<Session>,
        filter: &TopicFilter,
        opts: SubOptions,
    ) {
        let mut trie = write(&self.subs);
        trie.remove(filter.match_filter(), |e: &SubEntry| {
            Arc::ptr_eq(&e.session, session) && e.filter == *filter
        });
        let entry = SubEntry::new(&trie, session, filter, opts);
        trie.insert(filter.match_filter(), entry);
    }

    pub(crate) fn unindex_subscription(&self, session: &Arc<Session>, filter: &TopicFilter) {
        write(&self.subs).remove(filter.match_filter(), |e: &SubEntry| {
            Arc::ptr_eq(&e.session, session) && e.filter == *filter
        });
    }

    /// Publishes a message: stores it as the topic's retained message if flagged so, then routes
    /// it. Returns how many sessions received it.
    /// Whether a message on `topic` would reach anyone: a subscription or a topic rule. The
    /// broker's own events are only built when one would.
    pub(crate) fn has_audience(&self, topic: &str) -> bool {
        self.rules.get().is_some_and(|r| r.listens_to(topic)) || read(&self.subs).has_match(topic)
    }

    pub(crate) fn publish(&self, msg: &Arc<Message>) -> usize {
        self.publish_from(msg, &mut Vec::new())
    }

    /// Publishes for a client connection, collecting the online sessions whose queues are past
    /// their high watermark: the connection pauses reading until they drain.
    pub(crate) fn publish_from(
        &self,
        msg: &Arc<Message>,
        congested: &mut Vec<Arc<Session>>,
    ) -> usize {
        if msg.retain {
            self.retain(msg);
        }
        if let Some(rules) = self.rules.get() {
            rules.offer(msg);
        }
        self.route(msg, congested)
    }

    /// Holds a will for `delay`, then publishes it, unless a connection resumes the session
    /// first (which cancels it) or the session ends first (which publishes it at once): MQTT 5,
    /// 3.1.3.2.2.
    pub(crate) fn delay_will(
        self: &Arc<Self>,
        session: &Arc<Session>,
        will: Arc<Message>,
        delay: Duration,
    ) {
        {
            let mut st = session.lock();
            if st.attached.is_some() {
                // Taken over while this connection was ending: the client is back already.
                return;
            }
            if !st.ended {
                st.pending_will = Some(will.clone());
                drop(st);
                let broker = Arc::downgrade(self);
                let session = Arc::downgrade(session);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // A session that is gone was retired, which published the will.
                    let (Some(broker), Some(session)) = (broker.upgrade(), session.upgrade())
                    else {
                        return;
                    };
                    let due = session
                        .lock()
                        .pending_will
                        .take_if(|w| Arc::ptr_eq(w, &will));
                    if let Some(will) = due {
                        tracing::debug!(client_id = %session.client_id, topic = %will.topic, "publishing delayed will");
                        broker.publish(&will);
                    }
                });
                return;
            }
        }
        self.publish(&will);
    }

    /// Delivers a message to every matching subscription: one delivery per session (overlapping
    /// subscriptions merged, as Mosquitto does), one member per shared-subscription group.
    /// Returns how many sessions received it.
    pub(crate) fn route(&self, msg: &Arc<Message>, congested: &mut Vec<Arc<Session>>) -> usize {
        let mut direct: Vec<(Arc<Session>, SubOptions)> = Vec::new();
        let mut shared: Vec<SubEntry> = Vec::new();
        read(&self.subs).for_each_match(msg.topic.as_str(), |e: &SubEntry| {
            if e.filter.share_group().is_some() {
                shared.push(e.clone());
            } else if !(e.opts.no_local && msg.publisher.as_deref() == Some(&*e.session.client_id))
            {
                direct.push((e.session.clone(), e.opts));
            }
        });
        let mut delivered = 0;
        // Merge overlapping subscriptions of one session.
        direct.sort_by_key(|(s, _)| Arc::as_ptr(s) as usize);
        let mut i = 0;
        while i < direct.len() {
            let (session, first) = &direct[i];
            let mut qos = first.qos;
            let mut retain = first.retain_as_published;
            let mut ids: Vec<u32> = first.subscription_id.into_iter().collect();
            let mut j = i + 1;
            while j < direct.len() && Arc::ptr_eq(&direct[j].0, session) {
                let o = &direct[j].1;
                qos = qos.max(o.qos);
                retain |= o.retain_as_published;
                ids.extend(o.subscription_id);
                j += 1;
            }
            if self.offer(session, msg, qos, retain, ids, congested) {
                delivered += 1;
            }
            i = j;
        }
        if !shared.is_empty() {
            shared.sort_by(|a, b| a.filter.as_str().cmp(b.filter.as_str()));
            for group in shared.chunk_by(|a, b| a.filter == b.filter) {
                let start = group[0]
                    .group_turn
                    .as_ref()
                    .map_or(0, |t| t.fetch_add(1, Ordering::Relaxed));
                let pick = (0..group.len())
                    .map(|k| &group[(start + k) % group.len()])
                    .find(|e| e.session.is_online())
                    .unwrap_or(&group[start % group.len()]);
                let ids = pick.opts.subscription_id.into_iter().collect();
                if self.offer(
                    &pick.session,
                    msg,
                    pick.opts.qos,
                    pick.opts.retain_as_published,
                    ids,
                    congested,
                ) {
                    delivered += 1;
                }
            }
        }
        delivered
    }

    fn offer(
        &self,
        session: &Arc<Session>,
        msg: &Arc<Message>,
        sub_qos: QoS,
        rap: bool,
        ids: Vec<u32>,
        congested: &mut Vec<Arc<Session>>,
    ) -> bool {
        let d = Delivery {
            msg: msg.clone(),
            qos: sub_qos.min(msg.qos),
            retain: rap && msg.retain,
            subscription_ids: ids,
        };
        match session.enqueue(
            d,
            self.config.max_queued_messages,
            self.config.queue_qos0_offline,
        ) {
            Enqueued::Queued => true,
            Enqueued::Congested => {
                if !congested.iter().any(|c| Arc::ptr_eq(c, session)) {
                    congested.push(session.clone());
                }
                true
            }
            Enqueued::Skipped => false,
            Enqueued::Dropped => {
                self.metrics.dropped_queue_full.increment(1);
                tracing::debug!(client_id = %session.client_id, topic = %msg.topic, "queue full, message dropped");
                false
            }
        }
    }

    /// Stores, replaces or (with an empty payload) clears the retained message of a topic.
    pub(crate) fn retain(&self, msg: &Arc<Message>) {
        let mut retained = write(&self.retained);
        if msg.payload.is_empty() {
            if retained.remove(&msg.topic).is_some() {
                self.persist(PersistOp::DeleteRetained(msg.topic.to_string()));
            }
        } else {
            retained.insert(msg.topic.clone(), msg.clone());
            self.persist(PersistOp::PutRetained(msg.clone()));
        }
        self.metrics.retained.set(retained.len() as f64);
    }

    /// Removes retained messages whose message expiry has passed, from memory and the store.
    /// Reads already skip them; this keeps them from piling up.
    pub(crate) fn expire_retained(&self, now_ms: u64) {
        let expired: Vec<TopicName> = read(&self.retained)
            .values()
            .filter(|m| m.is_expired(now_ms))
            .map(|m| m.topic.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut retained = write(&self.retained);
        for topic in expired {
            // Replaced since the scan by a message that has not expired: keep it.
            if retained.get(&topic).is_some_and(|m| m.is_expired(now_ms)) {
                retained.remove(&topic);
                self.persist(PersistOp::DeleteRetained(topic.to_string()));
            }
        }
        self.metrics.retained.set(retained.len() as f64);
    }

    pub(crate) fn restore_retained(&self, msg: Arc<Message>) {
        let mut retained = write(&self.retained);
        retained.insert(msg.topic.clone(), msg);
        self.metrics.retained.set(retained.len() as f64);
    }

    /// Retained messages matching a filter, unexpired.
    pub(crate) fn retained_matching(&self, filter: &TopicFilter, now_ms: u64) -> Vec<Arc<Message>> {
        let retained = read(&self.retained);
        if !filter.has_wildcards() {
            return TopicName::new(filter.match_filter())
                .ok()
                .and_then(|t| retained.get(&t).cloned())
                .into_iter()
                .filter(|m| !m.is_expired(now_ms))
                .collect();
        }
        retained
            .values()
            .filter(|m| filter.matches(&m.topic) && !m.is_expired(now_ms))
            .cloned()
            .collect()
    }

    pub(crate) fn retained_count(&self) -> usize {
        read(&self.retained).len()
    }
}

/// Ends expired offline sessions and drops expired retained messages every [`EXPIRY_SWEEP`]
/// until the broker shuts down or is dropped. Runs with or without a store: expiry is part of
/// MQTT, not of persistence.
pub(crate) async fn sweep_expired(broker: Weak<BrokerInner>) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if *b.shutdown.borrow() {
            return;
        }
        let now = now_ms();
        b.expire_sessions(now);
        b.expire_retained(now);
    }
}
