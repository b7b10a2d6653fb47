//! The idle scenario: how much resident memory the broker spends per idle connection. It
//! opens `connections` connections (plain TCP, or mTLS with a distinct certificate each),
//! CONNECTs each with the given keep alive, holds them all without sending anything, and reads
//! the broker's `VmRSS` from `/proc/PID/status` before the first and after the last CONNACK
//! (and again after closing them all, to show what the broker gives back).
//!
//! What the figure includes: everything the broker process keeps resident for a connection
//! (its task, buffers, TLS state, session, per-certificate cache entries), plus whatever the
//! allocator does not return; not the kernel's socket buffers, which are not the process's.
//!
//! Order of a run: check both processes' open-file limits, read the memory, connect
//! `concurrency` at a time until all are up (or the deadline), wait `settle`, read it again,
//! close everything, wait `settle`, read it a last time, report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::bail;
use ferrule_mqtt::ProtocolVersion;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use crate::conn::{Conn, connect_packet};
use crate::procfs::{self, Memory};
use crate::report::{Report, Value};
use crate::tls::{TlsClient, TlsConn};

/// File descriptors a process needs besides its connections (listeners, database, logs, ...).
const SPARE_FDS: u64 = 100;

/// A validated idle run.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    /// The broker (loopback, checked).
    pub(crate) addr: SocketAddr,
    /// Protocol of every connection.
    pub(crate) protocol: ProtocolVersion,
    /// Connections to open and hold.
    pub(crate) connections: u32,
    /// Connections being set up at the same time.
    pub(crate) concurrency: u32,
    /// Keep alive of every CONNECT, in seconds (0: none; nothing is sent while idle).
    pub(crate) keep_alive: u16,
    /// The broker's process id, whose `/proc/PID/status` is read.
    pub(crate) broker_pid: u32,
    /// How long to wait after the last CONNACK (and after closing) before reading memory.
    pub(crate) settle: Duration,
    /// The run stops by itself after this long.
    pub(crate) timeout: Duration,
    /// Makes client identifiers unique.
    pub(crate) run_id: String,
    /// mTLS with these client identities (one each), instead of plain TCP.
    pub(crate) tls: Option<Arc<TlsClient>>,
}

/// A connection held open.
#[derive(Debug)]
enum Held {
    Plain(Conn),
    Tls(Box<TlsConn>),
}

/// Runs the scenario; failures of single connections are counted, not fatal.
pub(crate) async fn run(plan: IdlePlan) -> anyhow::Result<Report> {
    let needed = u64::from(plan.connections) + SPARE_FDS;
    for (who, pid) in [
        ("ferrule-bench", "self".to_owned()),
        ("the broker", plan.broker_pid.to_string()),
    ] {
        if let Some(limit) = procfs::open_files_limit(&pid)?
            && limit < needed
        {
            bail!(
                "{who} (/proc/{pid}/limits) may open {limit} files, fewer than the {needed} \
                 that {} connections need: raise `ulimit -n` in the shell that starts it",
                plan.connections
            );
        }
    }
    if let Some(tls) = &plan.tls
        && tls.identities.len() < plan.connections as usize
    {
        bail!(
            "--connections {}: the certificate directory has only {} (each is used once)",
            plan.connections,
            tls.identities.len()
        );
    }

    let before = procfs::memory(plan.broker_pid)?;
    let start = Instant::now();
    let deadline = start + plan.timeout;
    let next = Arc::new(AtomicU32::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..plan.concurrency.min(plan.connections) {
        let (next, plan) = (next.clone(), plan.clone());
        workers.spawn(async move { worker(&plan, &next, deadline).await });
    }
    let (mut held, mut failed, mut first_error) = (Vec::new(), 0u64, None);
    for (ok, errors) in workers.join_all().await {
        held.extend(ok);
        failed += errors.len() as u64;
        if first_error.is_none() {
            first_error = errors.into_iter().next();
        }
    }
    let setup = start.elapsed();
    tokio::time::sleep(plan.settle).await;
    let during = procfs::memory(plan.broker_pid)?;
    let connected = held.len() as u64;
    for conn in held {
        match conn {
            Held::Plain(conn) => conn.close().await,
            Held::Tls(conn) => conn.close().await,
        }
    }
    tokio::time::sleep(plan.settle).await;
    let after = procfs::memory(plan.broker_pid).ok();

    let mut report = Report::new(format!(
        "idle{}: {} connections held on {}",
        if plan.tls.is_some() { " (mTLS)" } else { "" },
        plan.connections,
        plan.addr
    ));
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };
    report.add("scenario", "scenario", "", Value::Text("idle".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("tls", "mTLS", "", Value::Bool(plan.tls.is_some()));
    report.add(
        "keep_alive_s",
        "keep alive",
        "s",
        Value::Int(plan.keep_alive.into()),
    );
    report.add(
        "connections",
        "connections",
        "",
        Value::Int(plan.connections.into()),
    );
    report.add("connected", "connected and held", "", Value::Int(connected));
    report.add("failed", "failed", "", Value::Int(failed));
    report.add("setup_s", "setup", "s", Value::Num(setup.as_secs_f64()));
    report.add(
        "settle_s",
        "settle before reading",
        "s",
        Value::Num(plan.settle.as_secs_f64()),
    );
    report.add(
        "rss_before_kib",
        "broker VmRSS before",
        "KiB",
        Value::Int(before.rss_kib),
    );
    report.add(
        "rss_held_kib",
        "broker VmRSS, all held",
        "KiB",
        Value::Int(during.rss_kib),
    );
    report.add(
        "rss_after_kib",
        "broker VmRSS after closing",
        "KiB",
        after.map_or(Value::Missing, |m| Value::Int(m.rss_kib)),
    );
    report.add(
        "kib_per_conn",
        "VmRSS per held connection",
        "KiB",
        per_connection(before.rss_kib, during.rss_kib, connected),
    );
    report.add(
        "anon_kib_per_conn",
        "RssAnon per held connection",
        "KiB",
        anon_per_connection(before, during, connected),
    );
    if let Some(e) = first_error {
        report.error(format!("{failed} connections failed, the first: {e}"));
    }
    if connected < u64::from(plan.connections) && failed == 0 {
        report.error(format!(
            "the run hit --timeout {}s with {connected} of {} connected",
            plan.timeout.as_secs(),
            plan.connections
        ));
    }
    Ok(report)
}

/// KiB per connection of the growth from `before` to `during` (negative if it shrank).
fn per_connection(before: u64, during: u64, connections: u64) -> Value {
    if connections == 0 {
        return Value::Missing;
    }
    Value::Num((during as f64 - before as f64) / connections as f64)
}

fn anon_per_connection(before: Memory, during: Memory, connections: u64) -> Value {
    match (before.anon_kib, during.anon_kib) {
        (Some(b), Some(d)) => per_connection(b, d, connections),
        _ => Value::Missing,
    }
}

async fn worker(plan: &IdlePlan, next: &AtomicU32, deadline: Instant) -> (Vec<Held>, Vec<String>) {
    let (mut held, mut errors) = (Vec::new(), Vec::new());
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.connections {
            return (held, errors);
        }
        let connect = connect_packet(
            format!("fb{}i{i}", plan.run_id),
            plan.protocol,
            plan.keep_alive,
        );
        let attempt = match &plan.tls {
            None => {
                timeout_at(deadline, async {
                    let (conn, _) = Conn::open(plan.addr, connect, 64 * 1024).await?;
                    anyhow::Ok(Held::Plain(conn))
                })
                .await
            }
            Some(tls) => {
                timeout_at(deadline, async {
                    let identity = &tls.identities[i as usize];
                    let mut conn =
                        TlsConn::handshake(plan.addr, &tls.server_name, identity, plan.protocol)
                            .await?;
                    conn.send_connect(connect).await?;
                    conn.recv_connack().await?;
                    anyhow::Ok(Held::Tls(Box::new(conn)))
                })
                .await
            }
        };
        match attempt {
            Ok(Ok(conn)) => held.push(conn),
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(_) => return (held, errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_is_the_growth_shared_out() {
        let num = |v: Value| match v {
            Value::Num(x) => Some(x),
            _ => None,
        };
        assert_eq!(num(per_connection(10_000, 14_000, 2_000)), Some(2.0));
        assert_eq!(num(per_connection(10_000, 9_000, 1_000)), Some(-1.0));
        assert!(matches!(per_connection(1, 2, 0), Value::Missing));
        let m = |rss, anon| Memory {
            rss_kib: rss,
            anon_kib: anon,
        };
        assert_eq!(
            num(anon_per_connection(m(1, Some(100)), m(2, Some(300)), 100)),
            Some(2.0)
        );
        assert!(matches!(
            anon_per_connection(m(1, None), m(2, Some(3)), 1),
            Value::Missing
        ));
    }
}
