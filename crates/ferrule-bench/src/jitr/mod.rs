//! The just-in-time registration scenario (AWS IoT Core's JITR, with a broker that holds the
//! first connection until the certificate is activated): how long a brand-new device waits
//! between sending CONNECT and receiving CONNACK when an operator activates its certificate as
//! soon as the broker announces it, and its time to first publish (from its TCP connect to the
//! PUBACK of its first QoS 1 PUBLISH).
//!
//! Pieces: devices (`concurrency` at a time, each certificate of the pool used once) connect
//! over TLS with a certificate the broker has never seen, issued by a CA registered with
//! auto-registration; an events subscriber on a plain listener follows
//! `$aws/events/certificates/registered/+`; on each event for one of our certificates it asks
//! the [`operator`] child process to activate it (UpdateCertificate ACTIVE + AttachPolicy).
//!
//! Every time is taken in this process, on one clock, so the wait splits into CONNECT → event,
//! event → the operator's answer, and answer → CONNACK. The broker may send CONNACK before the
//! operator's answer reaches us (the change is in the registry before the API responds); such
//! a device counts 0 for the last phase and is counted in `connack_before_answer`.
//!
//! Order of a run: start the operator (wait for `ready`), subscribe to the events, start the
//! devices, route events and answers until every device has its CONNACK or failed, or the
//! deadline passes; then stop the operator and report.

pub(crate) mod operator;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use ferrule_mqtt::{Packet, ProtocolVersion, QoS, TopicFilter, TopicName};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout_at};

use self::operator::{Answer, Operator};
use crate::conn::{Conn, connect_packet};
use crate::histogram::Histogram;
use crate::pubsub::{KEEP_ALIVE_SECS, open_subscriber};
use crate::report::{Report, Value};
use crate::tls::{TlsClient, TlsConn};

/// Where the broker announces just-in-time registrations (`+` is the CA's id).
const REGISTERED_EVENTS: &str = "$aws/events/certificates/registered/+";

/// A validated JITR run.
#[derive(Debug, Clone)]
pub(crate) struct JitrPlan {
    /// The broker's MQTT-over-TLS listener (loopback, checked).
    pub(crate) addr: SocketAddr,
    /// A listener where an anonymous client may subscribe to `$aws/events/#`.
    pub(crate) events_addr: SocketAddr,
    /// Protocol of every connection.
    pub(crate) protocol: ProtocolVersion,
    /// Server trust and the device certificates, each used once.
    pub(crate) tls: Arc<TlsClient>,
    /// Devices to connect, at most the identities in `tls`.
    pub(crate) devices: u32,
    /// Devices connecting at the same time.
    pub(crate) concurrency: u32,
    /// The operator command and its arguments.
    pub(crate) operator: Vec<String>,
    /// The run stops by itself after this long.
    pub(crate) timeout: Duration,
    /// Makes client identifiers unique.
    pub(crate) run_id: String,
}

/// What one device saw.
#[derive(Debug)]
struct DeviceResult {
    index: usize,
    /// When the device began its TCP connect.
    began: Instant,
    handshake: Duration,
    connect_sent: Instant,
    /// When CONNACK arrived, or why it did not.
    connack: Result<Instant, String>,
    /// When the PUBACK of its first PUBLISH arrived, or why it did not.
    published: Result<Instant, String>,
}

/// What the run collected: the devices' results, and the times the events subscriber and the
/// operator saw, by certificate id.
#[derive(Debug, Default)]
struct Seen {
    done: Vec<DeviceResult>,
    event: HashMap<String, Instant>,
    /// Registered events per certificate that say the connection registered it
    /// (`certificateRegistrationTimestamp` null): more than one is a duplicate registration.
    registrations: HashMap<String, u32>,
    /// Registered events of our certificates after the first for the same certificate.
    repeated_events: u64,
    answer: HashMap<String, Instant>,
    update: Histogram,
    attach: Histogram,
    failures: Vec<String>,
    /// Activations asked for and answered (either way).
    asked: usize,
    answered: usize,
}

/// Runs the scenario; a device that does not get its CONNACK is counted, not fatal.
pub(crate) async fn run(plan: JitrPlan) -> anyhow::Result<Report> {
    let devices = plan.devices as usize;
    if devices > plan.tls.identities.len() {
        bail!(
            "--devices {devices}: the certificate directory has only {} (each is used once)",
            plan.tls.identities.len()
        );
    }
    let deadline = Instant::now() + plan.timeout;
    let mut operator = Operator::start(&plan.operator, deadline).await?;
    let filter = TopicFilter::new(REGISTERED_EVENTS).map_err(|e| anyhow!("{e}"))?;
    let connect = connect_packet(
        format!("fb{}ops", plan.run_id),
        plan.protocol,
        KEEP_ALIVE_SECS,
    );
    let events = match open_subscriber(plan.events_addr, connect, filter, QoS::AtMostOnce, 1 << 20)
        .await
        .context("subscribing to the registered events")
    {
        Ok(events) => events,
        Err(e) => {
            operator.stop().await;
            return Err(e);
        }
    };

    let start = Instant::now();
    let ours: HashMap<&str, usize> = plan.tls.identities[..devices]
        .iter()
        .enumerate()
        .map(|(i, id)| (id.certificate_id.as_str(), i))
        .collect();
    let (result_tx, mut results) = mpsc::unbounded_channel();
    let next = Arc::new(AtomicU32::new(0));
    for _ in 0..plan.concurrency.min(plan.devices) {
        let (plan, next, result_tx) = (plan.clone(), next.clone(), result_tx.clone());
        tokio::spawn(async move { device_worker(&plan, &next, deadline, &result_tx).await });
    }
    drop(result_tx);

    let mut seen = Seen::default();
    let routed = route(
        events,
        &mut operator,
        &ours,
        &mut results,
        &mut seen,
        devices,
        deadline,
    )
    .await;
    let elapsed = start.elapsed();
    operator.stop().await;
    let timed_out = seen.done.len() < devices;
    Ok(report(&plan, &seen, elapsed, timed_out, routed.err()))
}

/// Routes events to the operator and collects answers and device results until every device
/// has reported or the deadline passes.
async fn route(
    mut events: Conn,
    operator: &mut Operator,
    ours: &HashMap<&str, usize>,
    results: &mut mpsc::UnboundedReceiver<DeviceResult>,
    seen: &mut Seen,
    devices: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    let outcome = loop {
        // Answers that arrive after their device's CONNACK are still waited for.
        if seen.done.len() == devices && seen.answered == seen.asked {
            break Ok(());
        }
        let ping_at = events.ping_at();
        tokio::select! {
            () = sleep_until(deadline) => break Ok(()),
            Some(result) = results.recv() => seen.done.push(result),
            answer = operator.answers.recv() => match answer {
                Some((at, Ok(Answer::Activated { certificate_id, update_us, attach_us }))) => {
                    seen.update.record(update_us.saturating_mul(1000));
                    seen.attach.record(attach_us.saturating_mul(1000));
                    seen.answer.insert(certificate_id, at);
                    seen.answered += 1;
                }
                Some((_, Ok(Answer::Failed { certificate_id, message }))) => {
                    seen.failures.push(format!("activating {certificate_id}: {message}"));
                    seen.answered += 1;
                }
                Some((_, Ok(Answer::Ready))) => {}
                Some((_, Err(e))) => break Err(anyhow!(e)),
                None => break Err(anyhow!("the operator exited during the run")),
            },
            io = events.pump() => {
                if let Err(e) = io {
                    break Err(e.context("the events subscription"));
                }
                let now = Instant::now();
                if let Err(e) = take_events(&mut events, operator, ours, seen, now) {
                    break Err(e);
                }
            }
            () = sleep_until(ping_at.unwrap_or(deadline)), if ping_at.is_some() => {
                if let Err(e) = events.queue_ping() {
                    break Err(e);
                }
            }
        }
    };
    events.close().await;
    outcome
}

/// Handles the buffered PUBLISHes: each registered event of one of our certificates, the
/// first time, is timed and passed to the operator.
fn take_events(
    events: &mut Conn,
    operator: &Operator,
    ours: &HashMap<&str, usize>,
    seen: &mut Seen,
    now: Instant,
) -> anyhow::Result<()> {
    while let Some(packet) = events.next_packet()? {
        let publish = match packet {
            Packet::Publish(publish) => publish,
            Packet::PingResp => continue,
            Packet::Disconnect(d) => bail!("the broker sent DISCONNECT: {}", d.reason),
            other => bail!("unexpected {} from the broker", other.kind()),
        };
        let Some((id, registering)) = registered_event(&publish.payload) else {
            continue;
        };
        if !ours.contains_key(id.as_str()) {
            continue;
        }
        if registering {
            *seen.registrations.entry(id.clone()).or_default() += 1;
        }
        match seen.event.entry(id) {
            Entry::Occupied(_) => seen.repeated_events += 1,
            Entry::Vacant(first) => {
                operator.activate(first.key())?;
                first.insert(now);
                seen.asked += 1;
            }
        }
    }
    Ok(())
}

/// The `certificateId` of a registered event's JSON body, and whether the event announces the
/// registration itself (`certificateRegistrationTimestamp` null) rather than a certificate
/// registered earlier and still pending.
fn registered_event(payload: &[u8]) -> Option<(String, bool)> {
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let id = body.get("certificateId")?.as_str()?.to_owned();
    let registering = body
        .get("certificateRegistrationTimestamp")
        .is_none_or(serde_json::Value::is_null);
    Some((id, registering))
}

async fn device_worker(
    plan: &JitrPlan,
    next: &AtomicU32,
    deadline: Instant,
    results: &mpsc::UnboundedSender<DeviceResult>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.devices {
            return;
        }
        let index = i as usize;
        let result = match timeout_at(deadline, device(plan, index)).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                let now = Instant::now();
                DeviceResult {
                    index,
                    began: now,
                    handshake: Duration::ZERO,
                    connect_sent: now,
                    connack: Err(format!("{e:#}")),
                    published: Err("no connection".to_owned()),
                }
            }
            Err(_) => return,
        };
        if results.send(result).is_err() {
            return;
        }
    }
}

/// One device: TLS handshake, CONNECT, wait for CONNACK (held by the broker until the
/// certificate is activated), one QoS 1 PUBLISH and its PUBACK, DISCONNECT.
async fn device(plan: &JitrPlan, index: usize) -> anyhow::Result<DeviceResult> {
    let identity = &plan.tls.identities[index];
    let began = Instant::now();
    let mut conn =
        TlsConn::handshake(plan.addr, &plan.tls.server_name, identity, plan.protocol).await?;
    let connect_sent = Instant::now();
    let client_id = format!("fb{}j{index}", plan.run_id);
    let connect = connect_packet(client_id.clone(), plan.protocol, 0);
    conn.send_connect(connect).await?;
    let connack = match conn.recv_connack().await {
        Ok(_) => Ok(Instant::now()),
        Err(e) => Err(format!("{}: {e:#}", identity.name)),
    };
    let published = match &connack {
        Ok(_) => {
            let topic =
                TopicName::new(format!("bench/jitr/{client_id}")).map_err(|e| anyhow!("{e}"))?;
            match conn.publish_acked(topic, Bytes::from_static(b"{}")).await {
                Ok(()) => Ok(Instant::now()),
                Err(e) => Err(format!("{}: first PUBLISH: {e:#}", identity.name)),
            }
        }
        Err(_) => Err("no CONNACK".to_owned()),
    };
    conn.close().await;
    Ok(DeviceResult {
        index,
        began,
        handshake: connect_sent - began,
        connect_sent,
        connack,
        published,
    })
}

fn report(
    plan: &JitrPlan,
    seen: &Seen,
    elapsed: Duration,
    timed_out: bool,
    error: Option<anyhow::Error>,
) -> Report {
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let mut hold = Histogram::default();
    let mut first_publish = Histogram::default();
    let mut to_event = Histogram::default();
    let mut to_answer = Histogram::default();
    let mut to_connack = Histogram::default();
    let mut handshake = Histogram::default();
    let (mut succeeded, mut failed, mut early) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for result in &seen.done {
        let (Ok(connack), Ok(published)) = (&result.connack, &result.published) else {
            failed += 1;
            if let Err(e) = result.connack.as_ref().and(result.published.as_ref()) {
                first_error.get_or_insert_with(|| e.clone());
            }
            continue;
        };
        let (connack, published) = (*connack, *published);
        succeeded += 1;
        first_publish.record(ns(published - result.began));
        handshake.record(ns(result.handshake));
        hold.record(ns(connack - result.connect_sent));
        let id = &plan.tls.identities[result.index].certificate_id;
        let event = seen.event.get(id);
        let answer = seen.answer.get(id);
        if let Some(event) = event {
            to_event.record(ns(event.saturating_duration_since(result.connect_sent)));
        }
        if let (Some(event), Some(answer)) = (event, answer) {
            to_answer.record(ns(answer.saturating_duration_since(*event)));
        }
        if let Some(answer) = answer {
            to_connack.record(ns(connack.saturating_duration_since(*answer)));
            if connack < *answer {
                early += 1;
            }
        }
    }

    let mut report = Report::new(format!(
        "jitr: {} devices ({} at a time) on {}, events from {}",
        plan.devices, plan.concurrency, plan.addr, plan.events_addr
    ));
    let protocol = if plan.protocol.is_v5() { "5" } else { "3.1.1" };
    report.add("scenario", "scenario", "", Value::Text("jitr".into()));
    report.add("broker", "broker", "", Value::Text(plan.addr.to_string()));
    report.add("protocol", "protocol", "", Value::Text(protocol.into()));
    report.add("devices", "devices", "", Value::Int(plan.devices.into()));
    report.add(
        "concurrency",
        "concurrency",
        "",
        Value::Int(plan.concurrency.into()),
    );
    report.add("succeeded", "succeeded", "", Value::Int(succeeded));
    report.add("failed", "failed", "", Value::Int(failed));
    let duplicates: u64 = seen
        .registrations
        .values()
        .map(|&n| u64::from(n.saturating_sub(1)))
        .sum();
    report.add(
        "duplicate_registrations",
        "duplicate registrations (registered events with a null registration time, beyond one per certificate)",
        "",
        Value::Int(duplicates),
    );
    report.add(
        "repeated_events",
        "registered events beyond the first per certificate",
        "",
        Value::Int(seen.repeated_events),
    );
    report.add(
        "elapsed_s",
        "elapsed",
        "s",
        Value::Num(elapsed.as_secs_f64()),
    );
    report.add_latency(
        [
            "first_publish_p50_us",
            "first_publish_p90_us",
            "first_publish_p99_us",
            "first_publish_max_us",
        ],
        "time to first publish (TCP connect -> PUBACK)",
        &first_publish,
    );
    report.add_p95(
        ["hold_p50_us", "hold_p95_us", "hold_max_us"],
        "CONNECT -> CONNACK",
        &hold,
    );
    report.add_p95(
        ["event_p50_us", "event_p95_us", "event_max_us"],
        "CONNECT -> registered event",
        &to_event,
    );
    report.add_p95(
        ["activate_p50_us", "activate_p95_us", "activate_max_us"],
        "event -> operator done",
        &to_answer,
    );
    report.add_p95(
        ["release_p50_us", "release_p95_us", "release_max_us"],
        "operator done -> CONNACK",
        &to_connack,
    );
    report.add(
        "connack_before_answer",
        "CONNACK before the operator's answer",
        "",
        Value::Int(early),
    );
    report.add_p95(
        ["update_p50_us", "update_p95_us", "update_max_us"],
        "operator: UpdateCertificate call",
        &seen.update,
    );
    report.add_p95(
        ["attach_p50_us", "attach_p95_us", "attach_max_us"],
        "operator: AttachPolicy call",
        &seen.attach,
    );
    report.add_p95(
        ["handshake_p50_us", "handshake_p95_us", "handshake_max_us"],
        "TCP + TLS handshake",
        &handshake,
    );
    report.add("timed_out", "timed out", "", Value::Bool(timed_out));
    if let Some(e) = first_error {
        report.error(format!("{failed} devices failed, the first: {e}"));
    }
    for failure in seen.failures.iter().take(3) {
        report.error(failure.clone());
    }
    if let Some(e) = error {
        report.error(format!("{e:#}"));
    }
    if timed_out {
        report.error(format!(
            "the run hit --timeout {}s with {} of {} devices done",
            plan.timeout.as_secs(),
            seen.done.len(),
            plan.devices
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_certificate_id_of_an_event() {
        let body = br#"{"certificateId":"ab12","caCertificateId":"cd","certificateStatus":"PENDING_ACTIVATION","certificateRegistrationTimestamp":null}"#;
        assert_eq!(registered_event(body), Some(("ab12".to_owned(), true)));
        let again =
            br#"{"certificateId":"ab12","certificateRegistrationTimestamp":"1764400000000"}"#;
        assert_eq!(registered_event(again), Some(("ab12".to_owned(), false)));
        assert_eq!(registered_event(b"{}"), None);
        assert_eq!(registered_event(b"not json"), None);
        assert_eq!(registered_event(br#"{"certificateId":3}"#), None);
    }
}
