//! One subscriber: receives every message of the run on its filter (`{prefix}/#` unless told
//! otherwise), acknowledges QoS 1 and 2, and counts unique messages, duplicates and latency
//! (from each message's send time, or, for messages the broker kept for it, from when it
//! connected). It stops
//! when it has everything, when the publishers are done and nothing has arrived for a while,
//! or at the deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::bail;
use ferrule_mqtt::{
    Packet, Properties, PubResp, QoS, SubAck, Subscribe, Subscription, TopicFilter,
};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::stamp::{PayloadFormat, cold_before, is_cold, read_json_stamp, read_stamp};
use super::{Clock, DRAIN_IDLE};
use crate::conn::Conn;
use crate::histogram::Histogram;

/// Connects, subscribes to `filter` and waits for the SUBACK granting `qos`.
pub(crate) async fn open_subscriber(
    addr: SocketAddr,
    connect: ferrule_mqtt::Connect,
    filter: TopicFilter,
    qos: QoS,
    max_packet: u32,
) -> anyhow::Result<Conn> {
    let (mut conn, _) = Conn::open(addr, connect, max_packet).await?;
    conn.queue(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![Subscription::new(filter.clone(), qos)],
        properties: Properties::default(),
    }))?;
    conn.flush().await?;
    loop {
        match conn.recv().await? {
            Packet::SubAck(SubAck { reasons, .. }) => {
                return match reasons.first() {
                    Some(r) if r.0 == qos.as_u8() => Ok(conn),
                    Some(r) => bail!("SUBSCRIBE {filter} for QoS {}: {r}", qos.as_u8()),
                    None => bail!("SUBACK without a reason code"),
                };
            }
            Packet::Publish(_) | Packet::PingResp => {}
            other => bail!("expected SUBACK, got {}", other.kind()),
        }
    }
}

/// What one subscriber expects.
#[derive(Debug, Clone)]
pub(super) struct SubJob {
    pub(super) publishers: u32,
    pub(super) messages: u32,
    pub(super) format: PayloadFormat,
    /// JSON payloads of other runs are not counted as this run's.
    pub(super) run_id: Arc<str>,
    /// Every this many messages one is cold and not expected; 0 = none.
    pub(super) cold_every: u32,
    /// Latency is measured from this clock time instead of each message's send time: the
    /// messages were stored (retained, or queued for a session away) before it connected.
    pub(super) since_ns: Option<u64>,
}

#[derive(Debug, Default)]
pub(super) struct SubStats {
    pub(super) received: u64,
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) foreign: u64,
    /// Cold messages that arrived although a rule should have filtered them out.
    pub(super) cold: u64,
    pub(super) bytes: u64,
    pub(super) latency: Histogram,
    pub(super) last_ns: u64,
    pub(super) timed_out: bool,
}

impl SubStats {
    pub(super) fn merge(&mut self, other: &SubStats) {
        self.received += other.received;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.foreign += other.foreign;
        self.cold += other.cold;
        self.bytes += other.bytes;
        self.latency.merge(&other.latency);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.timed_out |= other.timed_out;
    }
}

pub(super) async fn subscribe(
    mut conn: Conn,
    job: SubJob,
    clock: Clock,
    deadline: Instant,
    done: watch::Receiver<Option<u64>>,
) -> (SubStats, Option<anyhow::Error>) {
    let mut stats = SubStats::default();
    let result = subscribe_loop(&mut conn, job, clock, deadline, done, &mut stats).await;
    conn.close().await;
    (stats, result.err())
}

async fn subscribe_loop(
    conn: &mut Conn,
    job: SubJob,
    clock: Clock,
    deadline: Instant,
    mut done: watch::Receiver<Option<u64>>,
    stats: &mut SubStats,
) -> anyhow::Result<()> {
    let per_publisher = (job.messages as usize).div_ceil(64) * 64;
    let mut seen = vec![0u64; per_publisher / 64 * job.publishers as usize];
    let messages = u64::from(job.messages);
    let expected = u64::from(job.publishers) * (messages - cold_before(messages, job.cold_every));
    let mut pubs_done: Option<u64> = None;
    loop {
        tokio::task::coop::consume_budget().await;
        if stats.unique == expected && conn.unwritten() == 0 {
            return Ok(());
        }
        let stop_at = match pubs_done {
            Some(t) => deadline.min(clock.instant(t.max(stats.last_ns)) + DRAIN_IDLE),
            None => deadline,
        };
        let ping_at = conn.ping_at();
        tokio::select! {
            biased;
            () = sleep_until(stop_at) => {
                stats.timed_out = stop_at == deadline;
                return Ok(());
            }
            changed = done.changed(), if pubs_done.is_none() => {
                pubs_done = match changed {
                    Ok(()) => *done.borrow_and_update(),
                    Err(_) => Some(clock.now_ns()),
                };
            }
            io = conn.pump() => {
                io?;
            }
            () = sleep_until(ping_at.unwrap_or(deadline)), if ping_at.is_some() => {
                conn.queue_ping()?;
            }
        }
        let now = clock.now_ns();
        while let Some(packet) = conn.next_packet()? {
            let publish = match packet {
                Packet::Publish(publish) => publish,
                Packet::PingResp => continue,
                Packet::PubRel(rel) => {
                    conn.queue(&Packet::PubComp(PubResp::new(rel.packet_id)))?;
                    continue;
                }
                Packet::Disconnect(d) => bail!("the broker sent DISCONNECT: {}", d.reason),
                other => bail!("unexpected {} from the broker", other.kind()),
            };
            match (publish.qos, publish.packet_id) {
                (QoS::ExactlyOnce, Some(id)) => conn.queue(&Packet::PubRec(PubResp::new(id)))?,
                (_, Some(id)) => conn.queue(&Packet::PubAck(PubResp::new(id)))?,
                (_, None) => {}
            }
            stats.received += 1;
            stats.bytes += publish.payload.len() as u64;
            stats.last_ns = now;
            let stamp = match job.format {
                PayloadFormat::Binary => read_stamp(&publish.payload),
                PayloadFormat::Json => read_json_stamp(&publish.payload, &job.run_id),
            };
            match stamp {
                Some(s) if s.publisher < job.publishers && s.seq < job.messages => {
                    if is_cold(s.seq, job.cold_every) {
                        stats.cold += 1;
                        continue;
                    }
                    let bit = s.publisher as usize * per_publisher + s.seq as usize;
                    let (word, mask) = (bit / 64, 1u64 << (bit % 64));
                    if seen[word] & mask != 0 {
                        stats.duplicates += 1;
                    } else {
                        seen[word] |= mask;
                        stats.unique += 1;
                        let from = job.since_ns.unwrap_or(s.sent_ns);
                        stats.latency.record(now.saturating_sub(from));
                    }
                }
                _ => stats.foreign += 1,
            }
        }
    }
}
