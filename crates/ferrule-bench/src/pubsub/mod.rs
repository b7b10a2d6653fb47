//! The publish/subscribe scenario: N publishers, M subscribers on `{prefix}/#`, every message
//! stamped with its send time, publisher and sequence number so that subscribers can measure
//! latency, loss and duplicates without talking to the publishers.
//!
//! Topics and the subscribers' filter can be given instead, and the stamp written as JSON with
//! a `temp` field, so that the messages reach the subscribers through a topic rule (publish to
//! `bench/{run}p{n}/data`, a rule republishes to `out/...`, subscribers on `out/#`); with
//! `cold_every` some messages are meant to fail the rule's WHERE clause and are not expected.
//!
//! The messages can also reach the subscribers from the broker's storage: retained (each
//! message retained on a topic of its own, the subscribers subscribing once all are stored), or
//! queued for persistent sessions whose subscribers are away (they come back once all are
//! published).
//!
//! Order of a run: connect and subscribe every subscriber, connect every publisher, start the
//! clock, run all publishers and subscribers as tasks until each has its count or the deadline
//! passes, then merge their statistics into a [`Report`]. [`run`] says how the stored modes
//! differ.

mod publisher;
mod stamp;
mod subscriber;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use ferrule_mqtt::{Packet, Properties, ProtocolVersion, Publish, QoS, TopicFilter, TopicName};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use self::publisher::{PubJob, PubStats, publish};
pub(crate) use self::stamp::{PayloadFormat, STAMP_LEN};
pub(crate) use self::subscriber::open_subscriber;
use self::subscriber::{SubJob, SubStats, subscribe};
use crate::conn::{Conn, connect_packet, persistent_connect};
use crate::report::{Report, Value};

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
    /// Publisher N's topic: this with `{n}` replaced by N and `{run}` by the run id, instead of
    /// `{prefix}/p{n}`.
    pub(crate) topic: Option<String>,
    /// The subscribers' filter, instead of `{prefix}/#`.
    pub(crate) filter: Option<String>,
    /// How payloads are stamped.
    pub(crate) format: PayloadFormat,
    /// JSON: every this many messages one is cold (fails `WHERE temp > 20`) and is not
    /// expected by the subscribers; 0 = none.
    pub(crate) cold_every: u32,
    /// Live, retained or persistent-session delivery.
    pub(crate) mode: Mode,
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

/// What the subscribers receive, and when they connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Subscribed before the publishers start: messages are delivered as they are published.
    Live,
    /// Every message is published retained to a topic of its own; the subscribers connect
    /// once all are stored and receive them as retained messages.
    Retained,
    /// The subscribers subscribe in persistent sessions and disconnect; the broker queues the
    /// messages for them and delivers them when they come back.
    Persistent,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Retained => "retained",
            Mode::Persistent => "persistent",
        }
    }
}

/// Runs the scenario. Fails only if the connections cannot be set up; problems during the run
/// are reported in the [`Report`] next to what was measured.
///
/// Live: subscribers, then publishers, then all run at once. Retained: publishers run to the
/// end, then the subscribers connect and subscribe, then the retained topics are cleared.
/// Persistent: subscribers subscribe and disconnect, publishers run to the end, subscribers
/// reconnect to their sessions and drain them, then the sessions are removed.
pub(crate) async fn run(plan: PubSubPlan) -> anyhow::Result<Report> {
    let clock = Clock(Instant::now());
    let deadline = clock.0 + plan.timeout;
    let max_packet = u32::try_from(plan.payload + 64 * 1024).unwrap_or(u32::MAX);

    let filter = match &plan.filter {
        Some(f) => TopicFilter::new(f.clone()).map_err(|e| anyhow!("--filter {f:?}: {e}"))?,
        None => TopicFilter::new(format!("{}/#", plan.prefix))
            .map_err(|e| anyhow!("--topic-prefix {:?}: {e}", plan.prefix))?,
    };
    let mut subscribers = Vec::new();
    match plan.mode {
        Mode::Live => {
            subscribers = open_subscribers(&plan, &filter, max_packet, deadline, false).await?;
        }
        Mode::Persistent => {
            // Subscribed in sessions that outlive the connections, then away.
            let away = open_subscribers(&plan, &filter, max_packet, deadline, true).await?;
            let mut leaving = JoinSet::new();
            for conn in away {
                leaving.spawn(conn.disconnect());
            }
            leaving.join_all().await;
        }
        Mode::Retained => {}
    }

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

    let mut report = Report::new(format!(
        "pubsub: {} QoS {} {} -> {}{}{} on {}, {} -> {filter}",
        plan.protocol,
        plan.qos.as_u8(),
        plan.publishers,
        plan.subscribers,
        if plan.fan_in { " (fan-in)" } else { "" },
        match plan.mode {
            Mode::Live => "",
            Mode::Retained => " (retained)",
            Mode::Persistent => " (persistent sessions)",
        },
        plan.addr,
        publisher_topic(&plan, 0),
    ));
    let (done_tx, done_rx) = watch::channel(None);
    let cpu_start = crate::process_cpu_seconds();
    let start_ns = clock.now_ns();
    let run_id: Arc<str> = plan.run_id.as_str().into();
    let sub_job = |since_ns| SubJob {
        publishers: plan.publishers,
        messages: plan.messages,
        format: plan.format,
        run_id: run_id.clone(),
        cold_every: plan.cold_every,
        since_ns,
    };
    let mut sub_tasks = JoinSet::new();
    for conn in subscribers {
        let (job, done) = (sub_job(None), done_rx.clone());
        sub_tasks.spawn(async move { subscribe(conn, job, clock, deadline, done).await });
    }
    let mut pub_tasks = JoinSet::new();
    for (id, (conn, _)) in (0..).zip(publishers) {
        let topic = publisher_topic(&plan, id);
        let job = PubJob {
            id,
            protocol: plan.protocol,
            topic: TopicName::new(&topic).map_err(|e| anyhow!("topic {topic:?}: {e}"))?,
            qos: plan.qos,
            messages: plan.messages,
            payload: plan.payload,
            rate: plan.rate,
            window,
            format: plan.format,
            run_id: run_id.clone(),
            cold_every: plan.cold_every,
            retain: plan.mode == Mode::Retained,
            sync_at_end: plan.mode != Mode::Live,
        };
        pub_tasks.spawn(async move { publish(conn, job, clock, deadline).await });
    }
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

    // Stored messages: the subscribers come (back) now, and are timed from now.
    let since_ns = (plan.mode != Mode::Live).then(|| clock.now_ns());
    if plan.mode != Mode::Live {
        let back = match plan.mode {
            Mode::Persistent => resume_subscribers(&plan, max_packet, deadline).await,
            _ => open_subscribers(&plan, &filter, max_packet, deadline, false).await,
        };
        match back {
            Ok(back) => {
                for conn in back {
                    let (job, done) = (sub_job(since_ns), done_rx.clone());
                    sub_tasks
                        .spawn(async move { subscribe(conn, job, clock, deadline, done).await });
                }
            }
            Err(e) => report.error(format!("subscribers: {e:#}")),
        }
    }
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
    let end_ns = clock.now_ns();
    if let Err(e) = clean_up(&plan, max_packet).await {
        report.error(format!("cleaning up: {e:#}"));
    }

    fill_report(
        &mut report,
        &plan,
        window,
        &pubs,
        &subs,
        Span {
            start_ns,
            stored_ns: since_ns,
            end_ns,
        },
        cpu_seconds,
    );
    Ok(report)
}

/// Subscriber `i`'s client id.
fn subscriber_id(plan: &PubSubPlan, i: u32) -> String {
    format!("fb{}s{i}", plan.run_id)
}

/// Connects every subscriber and subscribes it to `filter`; `persistent` in a session that
/// outlives the connection.
async fn open_subscribers(
    plan: &PubSubPlan,
    filter: &TopicFilter,
    max_packet: u32,
    deadline: Instant,
    persistent: bool,
) -> anyhow::Result<Vec<Conn>> {
    let mut opening = JoinSet::new();
    for i in 0..plan.subscribers {
        let id = subscriber_id(plan, i);
        let connect = match persistent {
            true => persistent_connect(id, plan.protocol, KEEP_ALIVE_SECS, true),
            false => connect_packet(id, plan.protocol, KEEP_ALIVE_SECS),
        };
        let filter = filter.clone();
        let (addr, qos) = (plan.addr, plan.qos);
        opening.spawn(async move { open_subscriber(addr, connect, filter, qos, max_packet).await });
    }
    timeout_at(deadline, opening.join_all())
        .await
        .context("timed out connecting the subscribers")?
        .into_iter()
        .collect()
}

/// Reconnects every subscriber to the session it left; a broker that kept no session for it
/// is an error.
async fn resume_subscribers(
    plan: &PubSubPlan,
    max_packet: u32,
    deadline: Instant,
) -> anyhow::Result<Vec<Conn>> {
    let mut opening = JoinSet::new();
    for i in 0..plan.subscribers {
        let id = subscriber_id(plan, i);
        let connect = persistent_connect(id.clone(), plan.protocol, KEEP_ALIVE_SECS, false);
        let addr = plan.addr;
        opening.spawn(async move {
            let (conn, ack) = Conn::open(addr, connect, max_packet).await?;
            if !ack.session_present {
                bail!("{id}: the broker kept no session (CONNACK session present 0)");
            }
            Ok(conn)
        });
    }
    timeout_at(deadline, opening.join_all())
        .await
        .context("timed out reconnecting the subscribers")?
        .into_iter()
        .collect()
}

/// Leaves the broker as the run found it: clears the retained topics, or removes the
/// persistent sessions (a clean-session CONNECT discards a session; with MQTT 5 the session
/// then ends with the connection).
async fn clean_up(plan: &PubSubPlan, max_packet: u32) -> anyhow::Result<()> {
    match plan.mode {
        Mode::Live => Ok(()),
        Mode::Retained => {
            let connect = connect_packet(
                format!("fb{}c", plan.run_id),
                plan.protocol,
                KEEP_ALIVE_SECS,
            );
            let (mut conn, _) = Conn::open(plan.addr, connect, max_packet).await?;
            for id in 0..plan.publishers {
                let base = publisher_topic(plan, id);
                for seq in 0..plan.messages {
                    let topic = TopicName::new(format!("{base}/m{seq}"))
                        .map_err(|e| anyhow!("topic {base}/m{seq}: {e}"))?;
                    // An empty retained message removes the topic's retained message.
                    conn.queue(&Packet::Publish(Publish {
                        dup: false,
                        qos: QoS::AtMostOnce,
                        retain: true,
                        topic: Some(topic),
                        packet_id: None,
                        payload: Bytes::new(),
                        properties: Properties::default(),
                    }))?;
                    if conn.unwritten() >= WRITE_BATCH {
                        conn.flush().await?;
                    }
                }
            }
            conn.sync().await?;
            conn.close().await;
            Ok(())
        }
        Mode::Persistent => {
            let mut leaving = JoinSet::new();
            for i in 0..plan.subscribers {
                let connect =
                    connect_packet(subscriber_id(plan, i), plan.protocol, KEEP_ALIVE_SECS);
                let addr = plan.addr;
                leaving.spawn(async move {
                    let (conn, _) = Conn::open(addr, connect, max_packet).await?;
                    conn.disconnect().await;
                    anyhow::Ok(())
                });
            }
            leaving.join_all().await.into_iter().collect()
        }
    }
}

/// The topic publisher `id` publishes to.
fn publisher_topic(plan: &PubSubPlan, id: u32) -> String {
    match &plan.topic {
        Some(template) => template
            .replace("{n}", &id.to_string())
            .replace("{run}", &plan.run_id),
        None if plan.fan_in => format!("{}/all", plan.prefix),
        None => format!("{}/p{id}", plan.prefix),
    }
}

/// Points in time of the run, in clock nanoseconds.
struct Span {
    start_ns: u64,
    /// When the subscribers came for stored (retained or queued) messages.
    stored_ns: Option<u64>,
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
    let acked = plan.qos != QoS::AtMostOnce;
    let expected = pubs.passing * u64::from(plan.subscribers);
    let last_ns = if subs.received > 0 {
        subs.last_ns
    } else {
        pubs.finished_ns.max(span.start_ns)
    };
    // Stored messages are received from when the subscribers came for them.
    let received_from = span.stored_ns.unwrap_or(span.start_ns);
    let elapsed = (last_ns.saturating_sub(received_from)) as f64 / 1e9;
    let publish_elapsed = (pubs.finished_ns.max(span.start_ns) - span.start_ns).max(1) as f64 / 1e9;
    let per_second = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };

    report.add("scenario", "scenario", "", Value::Text("pubsub".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("qos", "QoS", "", Value::Int(plan.qos.as_u8().into()));
    report.add("mode", "mode", "", Value::Text(plan.mode.as_str().into()));
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
    if acked {
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
    report.add(
        "topic",
        "topic of publisher 0",
        "",
        Value::Text(publisher_topic(plan, 0)),
    );
    let format = match plan.format {
        PayloadFormat::Binary => "binary",
        PayloadFormat::Json => "json",
    };
    report.add(
        "payload_format",
        "payload format",
        "",
        Value::Text(format.into()),
    );
    report.add("run_id", "run id", "", Value::Text(plan.run_id.clone()));
    report.add("sent", "sent", "msg", Value::Int(pubs.sent));
    if plan.cold_every > 0 {
        report.add(
            "cold_every",
            "one cold message (temp 15) every",
            "msg",
            Value::Int(plan.cold_every.into()),
        );
        report.add(
            "cold_sent",
            "cold messages sent (not expected)",
            "msg",
            Value::Int(pubs.sent - pubs.passing),
        );
        report.add(
            "cold_received",
            "cold messages received",
            "msg",
            Value::Int(subs.cold),
        );
    }
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
        if span.stored_ns.is_some() {
            "elapsed (subscribers connecting -> last receive)"
        } else {
            "elapsed (to last receive)"
        },
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
        if span.stored_ns.is_some() {
            "latency (from the subscribers connecting)"
        } else {
            "latency"
        },
        &subs.latency,
    );
    if acked {
        report.add_latency(
            [
                "puback_p50_us",
                "puback_p90_us",
                "puback_p99_us",
                "puback_max_us",
            ],
            "ack latency (PUBACK; PUBCOMP at QoS 2)",
            &pubs.puback,
        );
        report.add(
            "puback_errors",
            "acks with an error",
            "",
            Value::Int(pubs.ack_errors),
        );
        report.add(
            "unknown_acks",
            "acks for no publish",
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
