//! The publish/subscribe scenario: N publishers, M subscribers on `{prefix}/#`, every message
//! stamped with its send time, publisher and sequence number so that subscribers can measure
//! latency, loss and duplicates without talking to the publishers.
//!
//! Order of a run: connect and subscribe every subscriber, connect every publisher, start the
//! clock, run all publishers and subscribers as tasks until each has its count or the deadline
//! passes, then merge their statistics into a [`Report`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{BufMut, BytesMut};
use ferrule_mqtt::{
    Packet, Properties, ProtocolVersion, PubResp, Publish, QoS, SubAck, Subscribe, Subscription,
    TopicFilter, TopicName,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::conn::{Conn, connect_packet};
use crate::histogram::Histogram;
use crate::report::{Report, Value};

/// Send time (u64 ns), publisher (u32) and sequence number (u32), big-endian, then padding.
pub(crate) const STAMP_LEN: usize = 16;
/// Encode publishes until this much output is pending, then write.
const WRITE_BATCH: usize = 64 * 1024;
/// After the publishers are done, subscribers give up once nothing has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(2);
/// Keep alive requested in CONNECT; the connections ping when idle.
pub(crate) const KEEP_ALIVE_SECS: u16 = 60;

/// A validated pub/sub run.
#[derive(Debug, Clone)]
pub(crate) struct PubSubPlan {
    /// The broker (loopback, checked).
    pub(crate) addr: SocketAddr,
    /// Protocol of every connection.
    pub(crate) protocol: ProtocolVersion,
    /// QoS of the publishes and the subscriptions.
    pub(crate) qos: QoS,
    /// Number of publishing connections, at least 1.
    pub(crate) publishers: u32,
    /// Number of subscribing connections.
    pub(crate) subscribers: u32,
    /// Messages per publisher, at least 1.
    pub(crate) messages: u32,
    /// Payload size in bytes, at least [`STAMP_LEN`].
    pub(crate) payload: usize,
    /// Topics are `{prefix}/p{n}` (or `{prefix}/all` with `fan_in`); subscribers use `{prefix}/#`.
    pub(crate) prefix: String,
    /// Messages per second per publisher, 0 = as fast as possible.
    pub(crate) rate: u32,
    /// Unacknowledged QoS 1 publishes per publisher.
    pub(crate) inflight: u16,
    /// All publishers share one topic.
    pub(crate) fan_in: bool,
    /// The run stops by itself after this long.
    pub(crate) timeout: Duration,
    /// Makes client identifiers unique.
    pub(crate) run_id: String,
}

/// Nanoseconds since the start of the run, shared by every task of the process.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now_ns(self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(self, ns: u64) -> Instant {
        self.0 + Duration::from_nanos(ns)
    }
}

/// What a subscriber reads from the front of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    sent_ns: u64,
    publisher: u32,
    seq: u32,
}

fn write_payload(buf: &mut BytesMut, len: usize, stamp: Stamp) {
    buf.reserve(len);
    buf.put_u64(stamp.sent_ns);
    buf.put_u32(stamp.publisher);
    buf.put_u32(stamp.seq);
    buf.put_bytes(0, len.saturating_sub(STAMP_LEN));
}

fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let sent_ns = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
    let publisher = u32::from_be_bytes(payload.get(8..12)?.try_into().ok()?);
    let seq = u32::from_be_bytes(payload.get(12..16)?.try_into().ok()?);
    Some(Stamp {
        sent_ns,
        publisher,
        seq,
    })
}

/// Runs the scenario. Fails only if the connections cannot be set up; problems during the run
/// are reported in the [`Report`] next to what was measured.
pub(crate) async fn run(plan: PubSubPlan) -> anyhow::Result<Report> {
    let clock = Clock(Instant::now());
    let deadline = clock.0 + plan.timeout;
    let max_packet = u32::try_from(plan.payload + 64 * 1024).unwrap_or(u32::MAX);

    let filter = TopicFilter::new(format!("{}/#", plan.prefix))
        .map_err(|e| anyhow!("--topic-prefix {:?}: {e}", plan.prefix))?;
    let mut opening = JoinSet::new();
    for i in 0..plan.subscribers {
        let connect = connect_packet(
            format!("fb{}s{i}", plan.run_id),
            plan.protocol,
            KEEP_ALIVE_SECS,
        );
        let filter = filter.clone();
        let (addr, qos) = (plan.addr, plan.qos);
        opening.spawn(async move { open_subscriber(addr, connect, filter, qos, max_packet).await });
    }
    let subscribers = timeout_at(deadline, opening.join_all())
        .await
        .context("timed out connecting the subscribers")?
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut opening = JoinSet::new();
    for i in 0..plan.publishers {
        let connect = connect_packet(
            format!("fb{}p{i}", plan.run_id),
            plan.protocol,
            KEEP_ALIVE_SECS,
        );
        let addr = plan.addr;
        opening.spawn(async move { Conn::open(addr, connect, max_packet).await });
    }
    let publishers = timeout_at(deadline, opening.join_all())
        .await
        .context("timed out connecting the publishers")?
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut window = usize::from(plan.inflight);
    for (_, ack) in &publishers {
        if let Some(max_qos) = ack.properties.maximum_qos
            && max_qos < plan.qos.as_u8()
        {
            bail!("the broker's CONNACK allows QoS {max_qos} at most");
        }
        if let Some(receive_max) = ack.properties.receive_maximum {
            window = window.min(usize::from(receive_max));
        }
    }

    let (done_tx, done_rx) = watch::channel(None);
    let cpu_start = crate::process_cpu_seconds();
    let start_ns = clock.now_ns();
    let mut sub_tasks = JoinSet::new();
    for conn in subscribers {
        let job = SubJob {
            publishers: plan.publishers,
            messages: plan.messages,
        };
        let done = done_rx.clone();
        sub_tasks.spawn(async move { subscribe(conn, job, clock, deadline, done).await });
    }
    let mut pub_tasks = JoinSet::new();
    for (id, (conn, _)) in (0..).zip(publishers) {
        let topic = if plan.fan_in {
            format!("{}/all", plan.prefix)
        } else {
            format!("{}/p{id}", plan.prefix)
        };
        let job = PubJob {
            id,
            protocol: plan.protocol,
            topic: TopicName::new(&topic).map_err(|e| anyhow!("topic {topic:?}: {e}"))?,
            qos: plan.qos,
            messages: plan.messages,
            payload: plan.payload,
            rate: plan.rate,
            window,
        };
        pub_tasks.spawn(async move { publish(conn, job, clock, deadline).await });
    }

    let mut report = Report::new(format!(
        "pubsub: {} QoS {} {} -> {}{} on {}",
        plan.protocol,
        plan.qos.as_u8(),
        plan.publishers,
        plan.subscribers,
        if plan.fan_in { " (fan-in)" } else { "" },
        plan.addr,
    ));
    let mut pubs = PubStats::default();
    for (stats, error) in pub_tasks.join_all().await {
        pubs.merge(&stats);
        if let Some(e) = error {
            report.error(format!("publisher: {e:#}"));
        }
    }
    let pubs_done_ns = clock.now_ns();
    // Subscribers only stop waiting early on this; if they all ended already nobody listens.
    let _ = done_tx.send(Some(pubs_done_ns));
    let mut subs = SubStats::default();
    for (stats, error) in sub_tasks.join_all().await {
        subs.merge(&stats);
        if let Some(e) = error {
            report.error(format!("subscriber: {e:#}"));
        }
    }
    let cpu_seconds = crate::process_cpu_seconds()
        .zip(cpu_start)
        .map(|(end, start)| end - start);

    fill_report(
        &mut report,
        &plan,
        window,
        &pubs,
        &subs,
        Span {
            start_ns,
            end_ns: clock.now_ns(),
        },
        cpu_seconds,
    );
    Ok(report)
}

/// Points in time of the run, in clock nanoseconds.
struct Span {
    start_ns: u64,
    end_ns: u64,
}

fn fill_report(
    report: &mut Report,
    plan: &PubSubPlan,
    window: usize,
    pubs: &PubStats,
    subs: &SubStats,
    span: Span,
    cpu_seconds: Option<f64>,
) {
    let qos1 = plan.qos == QoS::AtLeastOnce;
    let expected = pubs.sent * u64::from(plan.subscribers);
    let last_ns = if subs.received > 0 {
        subs.last_ns
    } else {
        pubs.finished_ns.max(span.start_ns)
    };
    let elapsed = (last_ns.saturating_sub(span.start_ns)) as f64 / 1e9;
    let publish_elapsed = (pubs.finished_ns.max(span.start_ns) - span.start_ns).max(1) as f64 / 1e9;
    let per_second = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };

    report.add("scenario", "scenario", "", Value::Text("pubsub".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("qos", "QoS", "", Value::Int(plan.qos.as_u8().into()));
    report.add(
        "publishers",
        "publishers",
        "",
        Value::Int(plan.publishers.into()),
    );
    report.add(
        "subscribers",
        "subscribers",
        "",
        Value::Int(plan.subscribers.into()),
    );
    report.add(
        "fan_in",
        "fan-in (one shared topic)",
        "",
        Value::Bool(plan.fan_in),
    );
    report.add(
        "messages_per_publisher",
        "messages per publisher",
        "",
        Value::Int(plan.messages.into()),
    );
    report.add(
        "payload_bytes",
        "payload",
        "B",
        Value::Int(plan.payload as u64),
    );
    report.add(
        "rate_per_publisher",
        "rate per publisher (0 = max)",
        "msg/s",
        Value::Int(plan.rate.into()),
    );
    if qos1 {
        report.add(
            "inflight",
            "in-flight window",
            "",
            Value::Int(window as u64),
        );
    }
    report.add(
        "topic_prefix",
        "topic prefix",
        "",
        Value::Text(plan.prefix.clone()),
    );
    report.add("sent", "sent", "msg", Value::Int(pubs.sent));
    report.add(
        "expected",
        "expected deliveries",
        "msg",
        Value::Int(expected),
    );
    report.add("received", "received", "msg", Value::Int(subs.received));
    report.add(
        "lost",
        "lost",
        "msg",
        Value::Int(expected.saturating_sub(subs.unique)),
    );
    report.add(
        "duplicates",
        "duplicates",
        "msg",
        Value::Int(subs.duplicates),
    );
    report.add(
        "unexpected",
        "unexpected (not from this run)",
        "msg",
        Value::Int(subs.foreign),
    );
    report.add(
        "elapsed_s",
        "elapsed (to last receive)",
        "s",
        Value::Num(elapsed),
    );
    report.add(
        "publish_rate",
        "publish rate",
        "msg/s",
        Value::Num(pubs.sent as f64 / publish_elapsed),
    );
    report.add(
        "throughput_msgs",
        "throughput (received)",
        "msg/s",
        Value::Num(per_second(subs.received as f64)),
    );
    report.add(
        "throughput_mb",
        "throughput (received payload)",
        "MB/s",
        Value::Num(per_second(subs.bytes as f64) / 1e6),
    );
    report.add_latency(
        [
            "latency_p50_us",
            "latency_p90_us",
            "latency_p99_us",
            "latency_max_us",
        ],
        "latency",
        &subs.latency,
    );
    if qos1 {
        report.add_latency(
            [
                "puback_p50_us",
                "puback_p90_us",
                "puback_p99_us",
                "puback_max_us",
            ],
            "puback latency",
            &pubs.puback,
        );
        report.add(
            "puback_errors",
            "PUBACKs with an error",
            "",
            Value::Int(pubs.ack_errors),
        );
        report.add(
            "unknown_acks",
            "PUBACKs for no publish",
            "",
            Value::Int(pubs.unknown_acks),
        );
    }
    let timed_out = pubs.timed_out || subs.timed_out;
    report.add("timed_out", "timed out", "", Value::Bool(timed_out));
    let wall = (span.end_ns.saturating_sub(span.start_ns) as f64 / 1e9).max(1e-9);
    report.add(
        "client_cpu_pct",
        "client CPU (of one core)",
        "%",
        cpu_seconds.map_or(Value::Missing, |s| Value::Num(100.0 * s / wall)),
    );
    if timed_out {
        report.error(format!(
            "the run hit --timeout {}s before every message arrived",
            plan.timeout.as_secs()
        ));
    }
}

async fn open_subscriber(
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

/// What one publisher does.
#[derive(Debug)]
struct PubJob {
    id: u32,
    protocol: ProtocolVersion,
    topic: TopicName,
    qos: QoS,
    messages: u32,
    payload: usize,
    rate: u32,
    window: usize,
}

impl PubJob {
    /// How many messages may have been sent `elapsed_ns` after the start.
    fn allowed(&self, elapsed_ns: u64) -> u32 {
        if self.rate == 0 {
            return self.messages;
        }
        let due = u128::from(elapsed_ns) * u128::from(self.rate) / 1_000_000_000 + 1;
        u32::try_from(due).unwrap_or(u32::MAX).min(self.messages)
    }

    /// When message `seq` is due, in nanoseconds after the start.
    fn due_ns(&self, seq: u32) -> u64 {
        let ns = u128::from(seq) * 1_000_000_000 / u128::from(self.rate.max(1));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Default)]
struct PubStats {
    sent: u64,
    acked: u64,
    ack_errors: u64,
    unknown_acks: u64,
    puback: Histogram,
    finished_ns: u64,
    timed_out: bool,
}

impl PubStats {
    fn merge(&mut self, other: &PubStats) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.ack_errors += other.ack_errors;
        self.unknown_acks += other.unknown_acks;
        self.puback.merge(&other.puback);
        self.finished_ns = self.finished_ns.max(other.finished_ns);
        self.timed_out |= other.timed_out;
    }
}

async fn publish(
    mut conn: Conn,
    job: PubJob,
    clock: Clock,
    deadline: Instant,
) -> (PubStats, Option<anyhow::Error>) {
    let mut stats = PubStats::default();
    let result = publish_loop(&mut conn, &job, clock, deadline, &mut stats).await;
    stats.finished_ns = clock.now_ns();
    if stats.timed_out {
        // Publishes still in the output buffer never left; they are not sent.
        let publish_len =
            ferrule_mqtt::encoded_len(&Packet::Publish(sample_publish(&job)), job.protocol);
        let unsent = conn.unwritten().div_ceil(publish_len.max(1)) as u64;
        stats.sent = stats.sent.saturating_sub(unsent);
    }
    conn.close().await;
    (stats, result.err())
}

fn sample_publish(job: &PubJob) -> Publish {
    Publish {
        dup: false,
        qos: job.qos,
        retain: false,
        topic: Some(job.topic.clone()),
        packet_id: (job.qos != QoS::AtMostOnce).then_some(1),
        payload: bytes::Bytes::from(vec![0; job.payload]),
        properties: Properties::default(),
    }
}

async fn publish_loop(
    conn: &mut Conn,
    job: &PubJob,
    clock: Clock,
    deadline: Instant,
    stats: &mut PubStats,
) -> anyhow::Result<()> {
    let qos1 = job.qos == QoS::AtLeastOnce;
    // Send time + 1 of the unacknowledged publish with each packet id; 0 = free.
    let mut inflight: Vec<u64> = if qos1 { vec![0; 1 << 16] } else { Vec::new() };
    let mut in_flight = 0usize;
    let mut last_id: u16 = 0;
    let mut seq: u32 = 0;
    let mut scratch = BytesMut::new();
    let start_ns = clock.now_ns();
    loop {
        tokio::task::coop::consume_budget().await;
        let allowed = job.allowed(clock.now_ns() - start_ns);
        while seq < allowed && conn.unwritten() < WRITE_BATCH && in_flight < job.window {
            let sent_ns = clock.now_ns();
            let stamp = Stamp {
                sent_ns,
                publisher: job.id,
                seq,
            };
            write_payload(&mut scratch, job.payload, stamp);
            let packet_id = if qos1 {
                last_id = next_free_id(&inflight, last_id);
                inflight[usize::from(last_id)] = sent_ns + 1;
                in_flight += 1;
                Some(last_id)
            } else {
                None
            };
            conn.queue(&Packet::Publish(Publish {
                dup: false,
                qos: job.qos,
                retain: false,
                topic: Some(job.topic.clone()),
                packet_id,
                payload: scratch.split().freeze(),
                properties: Properties::default(),
            }))?;
            seq += 1;
            stats.sent += 1;
        }
        if seq == job.messages && conn.unwritten() == 0 && in_flight == 0 {
            return Ok(());
        }
        let next_slot = (job.rate > 0 && seq < job.messages && seq >= allowed)
            .then(|| clock.instant(start_ns + job.due_ns(seq)));
        let ping_at = conn.ping_at();
        tokio::select! {
            biased;
            () = sleep_until(deadline) => {
                stats.timed_out = true;
                return Ok(());
            }
            io = conn.pump() => {
                io?;
            }
            () = sleep_until(next_slot.unwrap_or(deadline)), if next_slot.is_some() => {}
            () = sleep_until(ping_at.unwrap_or(deadline)), if ping_at.is_some() => {
                conn.queue_ping()?;
            }
        }
        let now = clock.now_ns();
        while let Some(packet) = conn.next_packet()? {
            match packet {
                Packet::PubAck(ack) => match inflight.get_mut(usize::from(ack.packet_id)) {
                    Some(slot) if *slot != 0 => {
                        stats.puback.record(now.saturating_sub(*slot - 1));
                        *slot = 0;
                        in_flight -= 1;
                        stats.acked += 1;
                        if ack.reason.is_error() {
                            stats.ack_errors += 1;
                        }
                    }
                    _ => stats.unknown_acks += 1,
                },
                Packet::PingResp => {}
                Packet::Disconnect(d) => bail!("the broker sent DISCONNECT: {}", d.reason),
                other => bail!("unexpected {} from the broker", other.kind()),
            }
        }
    }
}

/// The next packet identifier after `last` that is not in flight. The window is smaller than
/// the identifier space, so one is always free.
fn next_free_id(inflight: &[u64], last: u16) -> u16 {
    let mut id = last;
    loop {
        id = id.wrapping_add(1).max(1);
        if inflight[usize::from(id)] == 0 || id == last {
            return id;
        }
    }
}

/// What one subscriber expects.
#[derive(Debug, Clone, Copy)]
struct SubJob {
    publishers: u32,
    messages: u32,
}

#[derive(Debug, Default)]
struct SubStats {
    received: u64,
    unique: u64,
    duplicates: u64,
    foreign: u64,
    bytes: u64,
    latency: Histogram,
    last_ns: u64,
    timed_out: bool,
}

impl SubStats {
    fn merge(&mut self, other: &SubStats) {
        self.received += other.received;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.foreign += other.foreign;
        self.bytes += other.bytes;
        self.latency.merge(&other.latency);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.timed_out |= other.timed_out;
    }
}

async fn subscribe(
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
    let expected = u64::from(job.publishers) * u64::from(job.messages);
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
                Packet::Disconnect(d) => bail!("the broker sent DISCONNECT: {}", d.reason),
                other => bail!("unexpected {} from the broker", other.kind()),
            };
            if let Some(id) = publish.packet_id {
                conn.queue(&Packet::PubAck(PubResp::new(id)))?;
            }
            stats.received += 1;
            stats.bytes += publish.payload.len() as u64;
            stats.last_ns = now;
            match read_stamp(&publish.payload) {
                Some(s) if s.publisher < job.publishers && s.seq < job.messages => {
                    let bit = s.publisher as usize * per_publisher + s.seq as usize;
                    let (word, mask) = (bit / 64, 1u64 << (bit % 64));
                    if seen[word] & mask != 0 {
                        stats.duplicates += 1;
                    } else {
                        seen[word] |= mask;
                        stats.unique += 1;
                        stats.latency.record(now.saturating_sub(s.sent_ns));
                    }
                }
                _ => stats.foreign += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let stamp = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            publisher: 7,
            seq: 99,
        };
        let mut buf = BytesMut::new();
        write_payload(&mut buf, 64, stamp);
        assert_eq!(buf.len(), 64);
        assert_eq!(read_stamp(&buf), Some(stamp));
        assert_eq!(read_stamp(&buf[..15]), None);
    }

    #[test]
    fn rate_limits_spread_messages() {
        let job = PubJob {
            id: 0,
            protocol: ProtocolVersion::V311,
            topic: TopicName::new("a").expect("valid topic"),
            qos: QoS::AtMostOnce,
            messages: 1000,
            payload: 16,
            rate: 100,
            window: 1,
        };
        assert_eq!(job.allowed(0), 1);
        assert_eq!(job.allowed(999_999_999), 100);
        assert_eq!(job.allowed(1_000_000_000), 101);
        assert_eq!(job.allowed(u64::MAX), 1000);
        assert_eq!(job.due_ns(100), 1_000_000_000);
    }

    #[test]
    fn packet_ids_skip_zero_and_those_in_flight() {
        let mut inflight = vec![0u64; 1 << 16];
        assert_eq!(next_free_id(&inflight, 0), 1);
        assert_eq!(next_free_id(&inflight, u16::MAX), 1);
        inflight[2] = 5;
        assert_eq!(next_free_id(&inflight, 1), 3);
    }
}
