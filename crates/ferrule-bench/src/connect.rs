//! The connect scenario: how fast the broker accepts new MQTT connections. Each of
//! `concurrency` workers repeatedly opens a TCP connection, sends CONNECT and waits for CONNACK,
//! until `connections` have been attempted; the latency of one connection is TCP connect +
//! CONNECT -> CONNACK.
//!
//! With TLS ([`ConnectPlan::tls`]) each connection also makes a full TLS handshake with a client
//! certificate, taking the identities of the pool in turn; its latency is TCP connect + TLS
//! handshake + CONNECT -> CONNACK, and the two phases are reported on their own too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferrule_mqtt::ProtocolVersion;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::conn::{Conn, connect_packet};
use crate::histogram::Histogram;
use crate::pubsub::KEEP_ALIVE_SECS;
use crate::report::{Report, Value};
use crate::tls::{TlsClient, TlsConn};

/// A validated connect run.
#[derive(Debug, Clone)]
pub(crate) struct ConnectPlan {
    /// The broker (loopback, checked).
    pub(crate) addr: SocketAddr,
    /// Protocol of every connection.
    pub(crate) protocol: ProtocolVersion,
    /// Connections to open in total, at least 1.
    pub(crate) connections: u32,
    /// Connections being set up at the same time, at least 1.
    pub(crate) concurrency: u32,
    /// Keep every connection open until all are set up, instead of closing each at once.
    pub(crate) hold: bool,
    /// The run stops by itself after this long.
    pub(crate) timeout: Duration,
    /// Makes client identifiers unique.
    pub(crate) run_id: String,
    /// MQTT over TLS with these client identities, instead of plain TCP.
    pub(crate) tls: Option<Arc<TlsClient>>,
}

#[derive(Debug, Default)]
struct Outcome {
    succeeded: u64,
    failed: u64,
    first_error: Option<String>,
    latency: Histogram,
    /// TLS only: TCP connect.
    tcp: Histogram,
    /// TLS only: TCP connect + TLS handshake, as the client sees it.
    handshake: Histogram,
    /// TLS only: CONNECT sent -> CONNACK received.
    connack: Histogram,
    /// TLS only: what the first connection negotiated.
    negotiated: Option<String>,
    held: Vec<Held>,
    timed_out: bool,
}

/// A connection kept open until the end of a `hold` run.
#[derive(Debug)]
enum Held {
    Plain(Conn),
    Tls(Box<TlsConn>),
}

impl Held {
    async fn close(self) {
        match self {
            Held::Plain(conn) => conn.close().await,
            Held::Tls(conn) => conn.close().await,
        }
    }
}

/// Runs the scenario; failures of single connections are counted, not fatal.
pub(crate) async fn run(plan: ConnectPlan) -> anyhow::Result<Report> {
    let cpu_start = crate::process_cpu_seconds();
    let start = Instant::now();
    let deadline = start + plan.timeout;
    let next = Arc::new(AtomicU32::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.min(plan.connections) {
        let (next, plan) = (next.clone(), plan.clone());
        workers.spawn(async move { worker(&plan, &next, deadline).await });
    }
    let mut total = Outcome::default();
    let mut held = Vec::new();
    for outcome in workers.join_all().await {
        total.succeeded += outcome.succeeded;
        total.failed += outcome.failed;
        total.latency.merge(&outcome.latency);
        total.tcp.merge(&outcome.tcp);
        total.handshake.merge(&outcome.handshake);
        total.connack.merge(&outcome.connack);
        total.timed_out |= outcome.timed_out;
        if total.negotiated.is_none() {
            total.negotiated = outcome.negotiated;
        }
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
        held.extend(outcome.held);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_seconds = crate::process_cpu_seconds()
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    for conn in held {
        conn.close().await;
    }

    let mut report = Report::new(format!(
        "connect{}: {} x{} ({} at a time) on {}",
        if plan.tls.is_some() { " (TLS)" } else { "" },
        plan.protocol,
        plan.connections,
        plan.concurrency,
        plan.addr
    ));
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };
    report.add("scenario", "scenario", "", Value::Text("connect".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("tls", "TLS", "", Value::Bool(plan.tls.is_some()));
    if let Some(tls) = &plan.tls {
        report.add(
            "identities",
            "client certificates",
            "",
            Value::Int(tls.identities.len() as u64),
        );
        report.add(
            "negotiated",
            "negotiated",
            "",
            total.negotiated.map_or(Value::Missing, Value::Text),
        );
    }
    report.add(
        "connections",
        "connections",
        "",
        Value::Int(plan.connections.into()),
    );
    report.add(
        "concurrency",
        "concurrency",
        "",
        Value::Int(plan.concurrency.into()),
    );
    report.add(
        "hold",
        "held open until the end",
        "",
        Value::Bool(plan.hold),
    );
    report.add("succeeded", "succeeded", "", Value::Int(total.succeeded));
    report.add("failed", "failed", "", Value::Int(total.failed));
    report.add("elapsed_s", "elapsed", "s", Value::Num(elapsed));
    report.add(
        "connect_rate",
        "connection rate",
        "conn/s",
        Value::Num(if elapsed > 0.0 {
            total.succeeded as f64 / elapsed
        } else {
            0.0
        }),
    );
    report.add_latency(
        [
            "connect_p50_us",
            "connect_p90_us",
            "connect_p99_us",
            "connect_max_us",
        ],
        "connect latency",
        &total.latency,
    );
    if plan.tls.is_some() {
        report.add_latency(
            ["tcp_p50_us", "tcp_p90_us", "tcp_p99_us", "tcp_max_us"],
            "TCP connect",
            &total.tcp,
        );
        report.add_latency(
            [
                "handshake_p50_us",
                "handshake_p90_us",
                "handshake_p99_us",
                "handshake_max_us",
            ],
            "TCP + TLS handshake",
            &total.handshake,
        );
        report.add_latency(
            [
                "connack_p50_us",
                "connack_p90_us",
                "connack_p99_us",
                "connack_max_us",
            ],
            "CONNECT -> CONNACK",
            &total.connack,
        );
    }
    report.add("timed_out", "timed out", "", Value::Bool(total.timed_out));
    report.add(
        "client_cpu_pct",
        "client CPU (of one core)",
        "%",
        cpu_seconds.map_or(Value::Missing, |s| {
            Value::Num(100.0 * s / elapsed.max(1e-9))
        }),
    );
    if let Some(error) = total.first_error {
        report.error(format!(
            "{} connections failed, the first: {error}",
            total.failed
        ));
    }
    if total.timed_out {
        report.error(format!(
            "the run hit --timeout {}s before every connection was made",
            plan.timeout.as_secs()
        ));
    }
    Ok(report)
}

async fn worker(plan: &ConnectPlan, next: &AtomicU32, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.connections {
            return outcome;
        }
        let connect = connect_packet(
            format!("fb{}c{i}", plan.run_id),
            plan.protocol,
            KEEP_ALIVE_SECS,
        );
        let began = Instant::now();
        let attempt = match &plan.tls {
            None => timeout_at(deadline, plain(plan, connect)).await,
            Some(tls) => timeout_at(deadline, with_tls(plan, tls, i, connect, &mut outcome)).await,
        };
        match attempt {
            Ok(Ok(conn)) => {
                let nanos = began.elapsed().as_nanos();
                outcome
                    .latency
                    .record(u64::try_from(nanos).unwrap_or(u64::MAX));
                outcome.succeeded += 1;
                if plan.hold {
                    outcome.held.push(conn);
                } else {
                    conn.close().await;
                }
            }
            Ok(Err(e)) => {
                outcome.failed += 1;
                outcome.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(_) => {
                outcome.timed_out = true;
                return outcome;
            }
        }
    }
}

async fn plain(plan: &ConnectPlan, connect: ferrule_mqtt::Connect) -> anyhow::Result<Held> {
    let (conn, _) = Conn::open(plan.addr, connect, 64 * 1024).await?;
    Ok(Held::Plain(conn))
}

/// Connection `i` over TLS, with identity `i` modulo the pool; records both phases.
async fn with_tls(
    plan: &ConnectPlan,
    tls: &TlsClient,
    i: u32,
    connect: ferrule_mqtt::Connect,
    outcome: &mut Outcome,
) -> anyhow::Result<Held> {
    let identity = &tls.identities[i as usize % tls.identities.len()];
    let began = Instant::now();
    let mut conn = TlsConn::handshake(plan.addr, &tls.server_name, identity, plan.protocol).await?;
    let sent = Instant::now();
    conn.send_connect(connect).await?;
    conn.recv_connack()
        .await
        .map_err(|e| e.context(format!("CONNECT as {}", identity.name)))?;
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    outcome.tcp.record(nanos(conn.tcp_connect));
    outcome.handshake.record(nanos(sent - began));
    outcome.connack.record(nanos(sent.elapsed()));
    if outcome.negotiated.is_none() {
        outcome.negotiated = Some(conn.negotiated());
    }
    Ok(Held::Tls(Box::new(conn)))
}
