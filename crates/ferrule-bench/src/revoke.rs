//! The revoke scenario: how long a connected device keeps its connection after an operator
//! revokes its certificate (AWS IoT's UpdateCertificate REVOKED), i.e. how fast revocation
//! reaches the data plane.
//!
//! Pieces: `devices` connections over mTLS, each with its own registered ACTIVE certificate,
//! stay connected (keep alive 0, nothing sent) and wait for the broker to end them; the
//! [`operator`](crate::jitr::operator) child process (started before any device connects)
//! revokes the certificate ids it is given and answers `ok ID UPDATE_US 0`.
//!
//! Once every device is connected, the bench hands the certificates to the operator either one
//! at a time (the next only after the previous device was disconnected and the operator
//! answered, or `wait` passed) or all at once, and times, on its own clock, ask → connection
//! closed by the broker (DISCONNECT or end of stream) and operator's answer → closed. A device
//! closed before its answer arrived counts 0 for the second and is counted in
//! `closed_before_answer`; a device closed before it was asked is a broker fault, counted.
//!
//! Order of a run: start the operator (wait for `ready`), connect the devices, ask, collect
//! closes and answers until every device is done or `wait` has passed since its ask (or the
//! deadline), stop the operator, report.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail};
use ferrule_mqtt::ProtocolVersion;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::conn::connect_packet;
use crate::jitr::operator::{Answer, Operator};
use crate::report::{Report, Value};
use crate::stats::Percentiles;
use crate::tls::{Closed, TlsClient, TlsConn};

/// A validated revoke run.
#[derive(Debug, Clone)]
pub(crate) struct RevokePlan {
    /// The broker's MQTT-over-TLS listener (loopback, checked).
    pub(crate) addr: SocketAddr,
    /// Protocol of every connection.
    pub(crate) protocol: ProtocolVersion,
    /// Server trust and the device certificates, each used once.
    pub(crate) tls: Arc<TlsClient>,
    /// Devices to connect and revoke, at most the identities in `tls`.
    pub(crate) devices: u32,
    /// Devices connecting at the same time (the setup phase only).
    pub(crate) concurrency: u32,
    /// Hand every certificate to the operator at once instead of one at a time.
    pub(crate) all_at_once: bool,
    /// How long after its ask a device may take to be disconnected before it counts as not.
    pub(crate) wait: Duration,
    /// The operator command and its arguments.
    pub(crate) operator: Vec<String>,
    /// The run stops by itself after this long.
    pub(crate) timeout: Duration,
    /// Makes client identifiers unique.
    pub(crate) run_id: String,
}

/// What a device task reports.
#[derive(Debug)]
enum Event {
    Connected(usize),
    ConnectFailed(String),
    Closed(usize, Instant, Closed),
}

/// Everything observed, by device index.
#[derive(Debug, Default)]
struct Seen {
    connected: Vec<usize>,
    connect_failed: u64,
    first_connect_error: Option<String>,
    asked: HashMap<usize, Instant>,
    answered: HashMap<usize, Instant>,
    closed: HashMap<usize, (Instant, Closed)>,
    /// Closed before its certificate was handed to the operator.
    closed_unasked: u64,
    update_ns: Vec<u64>,
    failures: Vec<String>,
}

impl Seen {
    fn done(&self, index: usize) -> bool {
        self.closed.contains_key(&index) && self.answered.contains_key(&index)
    }
}

/// Runs the scenario; a device that is not disconnected is counted, not fatal.
pub(crate) async fn run(plan: RevokePlan) -> anyhow::Result<Report> {
    let devices = plan.devices as usize;
    if devices > plan.tls.identities.len() {
        bail!(
            "--devices {devices}: the certificate directory has only {} (each is used once)",
            plan.tls.identities.len()
        );
    }
    let deadline = Instant::now() + plan.timeout;
    let mut operator = Operator::start(&plan.operator, deadline).await?;
    let by_id: HashMap<&str, usize> = plan.tls.identities[..devices]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.certificate_id.as_str(), i))
        .collect();

    let (event_tx, mut events) = mpsc::unbounded_channel();
    let next = Arc::new(AtomicU32::new(0));
    for _ in 0..plan.concurrency.min(plan.devices) {
        let (plan, next, event_tx) = (plan.clone(), next.clone(), event_tx.clone());
        tokio::spawn(async move { connect_worker(&plan, &next, deadline, &event_tx).await });
    }
    drop(event_tx);

    let mut seen = Seen::default();
    let connecting = Instant::now();
    let outcome = async {
        // Setup: until every device is connected or failed.
        collect(
            &mut events,
            &mut operator,
            &by_id,
            &mut seen,
            deadline,
            |s| s.connected.len() + s.connect_failed as usize >= devices,
        )
        .await?;
        let setup = connecting.elapsed();
        let mut order = seen.connected.clone();
        order.sort_unstable();
        if plan.all_at_once {
            for &i in &order {
                seen.asked.insert(i, Instant::now());
                operator.ask(&plan.tls.identities[i].certificate_id)?;
            }
            let until = (Instant::now() + plan.wait).min(deadline);
            collect(&mut events, &mut operator, &by_id, &mut seen, until, |s| {
                order.iter().all(|&i| s.done(i))
            })
            .await?;
        } else {
            for &i in &order {
                seen.asked.insert(i, Instant::now());
                operator.ask(&plan.tls.identities[i].certificate_id)?;
                let until = (Instant::now() + plan.wait).min(deadline);
                collect(&mut events, &mut operator, &by_id, &mut seen, until, |s| {
                    s.done(i)
                })
                .await?;
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        anyhow::Ok(setup)
    }
    .await;
    operator.stop().await;
    let (setup, error) = match outcome {
        Ok(setup) => (Some(setup), None),
        Err(e) => (None, Some(e)),
    };
    Ok(report(&plan, &seen, setup, error))
}

/// Takes device events and operator answers until `done` holds or `until` passes.
async fn collect(
    events: &mut mpsc::UnboundedReceiver<Event>,
    operator: &mut Operator,
    by_id: &HashMap<&str, usize>,
    seen: &mut Seen,
    until: Instant,
    done: impl Fn(&Seen) -> bool,
) -> anyhow::Result<()> {
    while !done(seen) {
        tokio::select! {
            () = sleep_until(until) => return Ok(()),
            event = events.recv() => match event {
                Some(Event::Connected(i)) => seen.connected.push(i),
                Some(Event::ConnectFailed(e)) => {
                    seen.connect_failed += 1;
                    seen.first_connect_error.get_or_insert(e);
                }
                Some(Event::Closed(i, at, how)) => {
                    if !seen.asked.contains_key(&i) {
                        seen.closed_unasked += 1;
                    }
                    seen.closed.insert(i, (at, how));
                }
                // Every device task has ended; nothing more can close.
                None => return Ok(()),
            },
            answer = operator.answers.recv() => match answer {
                Some((at, Ok(Answer::Activated { certificate_id, update_us, .. }))) => {
                    if let Some(&i) = by_id.get(certificate_id.as_str()) {
                        seen.answered.insert(i, at);
                        seen.update_ns.push(update_us.saturating_mul(1000));
                    }
                }
                Some((at, Ok(Answer::Failed { certificate_id, message }))) => {
                    if let Some(&i) = by_id.get(certificate_id.as_str()) {
                        seen.answered.insert(i, at);
                    }
                    seen.failures.push(format!("revoking {certificate_id}: {message}"));
                }
                Some((_, Ok(Answer::Ready))) => {}
                Some((_, Err(e))) => return Err(anyhow!(e)),
                None => return Err(anyhow!("the operator exited during the run")),
            },
        }
    }
    Ok(())
}

/// Connects devices one after another; each connected device gets its own task that waits
/// for the broker to close it.
async fn connect_worker(
    plan: &RevokePlan,
    next: &AtomicU32,
    deadline: Instant,
    events: &mpsc::UnboundedSender<Event>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.devices {
            return;
        }
        let index = i as usize;
        let event = match timeout_at(deadline, device(plan, index)).await {
            Ok(Ok(mut conn)) => {
                let events = events.clone();
                tokio::spawn(async move {
                    let how = conn.wait_closed().await;
                    let _ = events.send(Event::Closed(index, Instant::now(), how));
                });
                Event::Connected(index)
            }
            Ok(Err(e)) => Event::ConnectFailed(format!("{e:#}")),
            Err(_) => return,
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

/// One device: TLS handshake with its own certificate, CONNECT (keep alive 0), CONNACK.
async fn device(plan: &RevokePlan, index: usize) -> anyhow::Result<TlsConn> {
    let identity = &plan.tls.identities[index];
    let mut conn =
        TlsConn::handshake(plan.addr, &plan.tls.server_name, identity, plan.protocol).await?;
    let connect = connect_packet(format!("fb{}r{index}", plan.run_id), plan.protocol, 0);
    conn.send_connect(connect).await?;
    conn.recv_connack().await?;
    Ok(conn)
}

/// The per-device figures of a run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Ask → closed, of devices closed within `wait` of their ask.
    from_ask: Vec<u64>,
    /// Answer → closed (0 when closed first), of the same devices when answered.
    from_answer: Vec<u64>,
    closed_before_answer: u64,
    /// Asked but not closed within `wait`.
    not_disconnected: u64,
    by_disconnect: u64,
    by_eof: u64,
    by_error: u64,
}

fn tally(seen: &Seen, wait: Duration) -> Tally {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let mut t = Tally::default();
    let mut asked: Vec<_> = seen.asked.iter().collect();
    asked.sort_unstable_by_key(|(i, _)| **i);
    for (i, &ask) in asked {
        let Some((closed, how)) = seen.closed.get(i) else {
            t.not_disconnected += 1;
            continue;
        };
        let took = closed.saturating_duration_since(ask);
        if took > wait {
            t.not_disconnected += 1;
            continue;
        }
        t.from_ask.push(ns(took));
        match how {
            Closed::Disconnect => t.by_disconnect += 1,
            Closed::Eof => t.by_eof += 1,
            Closed::Error(_) => t.by_error += 1,
        }
        if let Some(&answer) = seen.answered.get(i) {
            if *closed < answer {
                t.closed_before_answer += 1;
            }
            t.from_answer
                .push(ns(closed.saturating_duration_since(answer)));
        }
    }
    t
}

fn add_percentiles(report: &mut Report, keys: [&'static str; 4], label: &str, samples: &[u64]) {
    let p = Percentiles::of(samples);
    let values = [
        p.map(|p| p.p50),
        p.map(|p| p.p95),
        p.map(|p| p.p99),
        p.map(|p| p.max),
    ];
    for ((key, which), value) in keys
        .into_iter()
        .zip(["p50", "p95", "p99", "max"])
        .zip(values)
    {
        report.add(
            key,
            &format!("{label} {which}"),
            "us",
            value.map_or(Value::Missing, |ns| Value::Num(ns as f64 / 1e3)),
        );
    }
}

fn report(
    plan: &RevokePlan,
    seen: &Seen,
    setup: Option<Duration>,
    error: Option<anyhow::Error>,
) -> Report {
    let t = tally(seen, plan.wait);
    let order = if plan.all_at_once {
        "all at once"
    } else {
        "one at a time"
    };
    let mut report = Report::new(format!(
        "revoke: {} devices on {}, revoked {order}",
        plan.devices, plan.addr
    ));
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };
    report.add("scenario", "scenario", "", Value::Text("revoke".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("order", "revoked", "", Value::Text(order.into()));
    report.add("devices", "devices", "", Value::Int(plan.devices.into()));
    report.add(
        "connected",
        "connected",
        "",
        Value::Int(seen.connected.len() as u64),
    );
    report.add(
        "connect_failed",
        "failed to connect",
        "",
        Value::Int(seen.connect_failed),
    );
    report.add(
        "setup_s",
        "setup (all connected)",
        "s",
        setup.map_or(Value::Missing, |d| Value::Num(d.as_secs_f64())),
    );
    report.add(
        "asked",
        "revocations asked",
        "",
        Value::Int(seen.asked.len() as u64),
    );
    report.add(
        "disconnected",
        "disconnected within the wait",
        "",
        Value::Int(t.from_ask.len() as u64),
    );
    report.add(
        "not_disconnected",
        "not disconnected within the wait",
        "",
        Value::Int(t.not_disconnected),
    );
    report.add(
        "wait_ms",
        "wait",
        "ms",
        Value::Int(plan.wait.as_millis() as u64),
    );
    report.add(
        "closed_unasked",
        "closed before being revoked",
        "",
        Value::Int(seen.closed_unasked),
    );
    report.add(
        "by_disconnect",
        "closed by DISCONNECT",
        "",
        Value::Int(t.by_disconnect),
    );
    report.add(
        "by_eof",
        "closed by end of stream",
        "",
        Value::Int(t.by_eof),
    );
    report.add(
        "by_error",
        "closed by a read error",
        "",
        Value::Int(t.by_error),
    );
    add_percentiles(
        &mut report,
        ["ask_p50_us", "ask_p95_us", "ask_p99_us", "ask_max_us"],
        "ask -> closed",
        &t.from_ask,
    );
    add_percentiles(
        &mut report,
        [
            "answer_p50_us",
            "answer_p95_us",
            "answer_p99_us",
            "answer_max_us",
        ],
        "operator's answer -> closed",
        &t.from_answer,
    );
    report.add(
        "closed_before_answer",
        "closed before the operator's answer",
        "",
        Value::Int(t.closed_before_answer),
    );
    add_percentiles(
        &mut report,
        [
            "update_p50_us",
            "update_p95_us",
            "update_p99_us",
            "update_max_us",
        ],
        "operator: UpdateCertificate call",
        &seen.update_ns,
    );
    if let Some(e) = &seen.first_connect_error {
        report.error(format!(
            "{} devices failed to connect, the first: {e}",
            seen.connect_failed
        ));
    }
    for failure in seen.failures.iter().take(3) {
        report.error(failure.clone());
    }
    if let Some(e) = error {
        report.error(format!("{e:#}"));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_splits_devices_by_outcome() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut seen = Seen::default();
        // 0: closed by DISCONNECT 5 ms after the ask, 2 ms after the answer.
        seen.asked.insert(0, t0);
        seen.answered.insert(0, t0 + ms(3));
        seen.closed.insert(0, (t0 + ms(5), Closed::Disconnect));
        // 1: closed (EOF) before the operator's answer arrived.
        seen.asked.insert(1, t0);
        seen.answered.insert(1, t0 + ms(9));
        seen.closed.insert(1, (t0 + ms(4), Closed::Eof));
        // 2: closed, but after the wait; 3: never closed.
        seen.asked.insert(2, t0);
        seen.closed.insert(2, (t0 + ms(2000), Closed::Eof));
        seen.asked.insert(3, t0);
        let t = tally(&seen, ms(1000));
        assert_eq!(
            t,
            Tally {
                from_ask: vec![5_000_000, 4_000_000],
                from_answer: vec![2_000_000, 0],
                closed_before_answer: 1,
                not_disconnected: 2,
                by_disconnect: 1,
                by_eof: 1,
                by_error: 0,
            }
        );
    }
}
