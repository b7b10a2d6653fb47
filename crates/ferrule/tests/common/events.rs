//! Watching what the server reports: an admin `mosquitto_sub` on the plain listener subscribed
//! to `$aws/events/#` and `$ferrule/events/#` ([`Events`]), the rejection counter on
//! `/metrics`, and rejection log lines.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{CLIENT_TIMEOUT, Mqtt, Net, Server, Sub, http_get};

/// Topic of Ferrule's rejection events.
pub(crate) const REJECTED_TOPIC: &str = "$ferrule/events/connections/rejected";

/// One event: its topic and JSON payload.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) topic: String,
    pub(crate) body: Value,
}

/// The admin subscriber: `mosquitto_sub -t '$aws/events/#' -t '$ferrule/events/#'` on the plain
/// listener (anonymous, full access).
pub(crate) struct Events {
    sub: Sub,
}

impl Events {
    /// Subscribes; returns once the SUBACK is in.
    pub(crate) fn start(server: &Server) -> Events {
        Events::start_on(server, &["$aws/events/#", "$ferrule/events/#"])
    }

    /// Subscribes to other filters (on the plain listener, MQTT 3.1.1).
    pub(crate) fn start_on(server: &Server, filters: &[&str]) -> Events {
        Events {
            sub: Sub::start(server, Net::Tcp, Mqtt::V311, 0, filters, &[]),
        }
    }

    fn parse(line: &str) -> Event {
        let rest = line
            .strip_prefix("MSG|")
            .unwrap_or_else(|| panic!("not a message line: {line:?}"));
        let mut f = rest.splitn(4, '|');
        let topic = f.next().unwrap_or_default().to_owned();
        let payload = f.nth(2).unwrap_or_default();
        let body = serde_json::from_str(payload).unwrap_or(Value::String(payload.to_owned()));
        Event { topic, body }
    }

    /// Takes the first event (seen or coming within `timeout`) that `pred` accepts; other
    /// events stay available.
    pub(crate) fn try_next(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        self.sub
            .proc
            .try_line(timeout, |l| {
                l.starts_with("MSG|") && pred(&Events::parse(l))
            })
            .map(|l| Events::parse(&l))
    }

    /// Like [`Events::try_next`]; panics with everything seen after `timeout`.
    pub(crate) fn next(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Event) -> bool,
    ) -> Event {
        match self.try_next(timeout, pred) {
            Some(e) => e,
            None => panic!(
                "no event with {what} within {timeout:?}; events seen:\n{}",
                self.sub.proc.seen().join("\n")
            ),
        }
    }

    /// The next event on exactly `topic`.
    pub(crate) fn on_topic(&mut self, topic: &str, timeout: Duration) -> Event {
        self.next(&format!("topic {topic}"), timeout, |e| e.topic == topic)
    }

    /// The next rejection event with reason `reason` that `pred` accepts.
    pub(crate) fn rejected(
        &mut self,
        reason: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.next(&format!("a rejection with reason {reason}"), timeout, |e| {
            e.topic == REJECTED_TOPIC && e.body["reason"] == reason && pred(&e.body)
        })
        .body
    }

    /// Every event received so far, taken or not (after collecting what arrives in `settle`).
    pub(crate) fn all_seen(&mut self, settle: Duration) -> Vec<Event> {
        self.sub.proc.drain(settle);
        self.sub
            .proc
            .seen()
            .iter()
            .filter(|l| l.starts_with("MSG|"))
            .map(|l| Events::parse(l))
            .collect()
    }

    /// Events not yet taken that arrive within `window`, without taking them.
    pub(crate) fn pending(&mut self, window: Duration) -> Vec<Event> {
        self.sub
            .proc
            .drain(window)
            .iter()
            .filter(|l| l.starts_with("MSG|"))
            .map(|l| Events::parse(l))
            .collect()
    }
}

/// `$aws/events/certificates/registered/<caCertificateId>`.
pub(crate) fn registered_topic(ca_id: &str) -> String {
    format!("$aws/events/certificates/registered/{ca_id}")
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("a sane clock")
}

/// Asserts that `v` is a JSON number of epoch milliseconds within `[from - slack, now + slack]`.
pub(crate) fn assert_ms_timestamp(v: &Value, from_ms: u64, what: &str) {
    let ms = v
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: not a whole JSON number of milliseconds: {v}"));
    let slack = 5_000;
    assert!(
        ms + slack >= from_ms && ms <= now_ms() + slack,
        "{what}: {ms} is not epoch milliseconds around now ({from_ms}..{})",
        now_ms()
    );
}

/// The sum of `NAME{...}` samples on `/metrics` whose labels include `label="value"`
/// (0 when there is none yet: counters appear on their first increment).
pub(crate) fn labelled_metric(server: &Server, name: &str, label: &str, value: &str) -> f64 {
    let (status, text) = http_get(server.api(), "/metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    let want = format!("{label}=\"{value}\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?.strip_prefix('{')?;
            let labels = labels.strip_suffix('}')?;
            let has = labels.split(',').any(|kv| kv.trim() == want);
            has.then(|| v.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// `ferrule_connections_rejected_total{reason="REASON"}`.
pub(crate) fn rejected_count(server: &Server, reason: &str) -> f64 {
    labelled_metric(
        server,
        "ferrule_connections_rejected_total",
        "reason",
        reason,
    )
}

/// Waits until the rejection counter for `reason` reaches `at_least`; returns its value.
pub(crate) fn wait_rejected_count(server: &Server, reason: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let n = rejected_count(server, reason);
        if n >= at_least {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "ferrule_connections_rejected_total{{reason=\"{reason}\"}} is {n}, expected at least \
             {at_least}, after {CLIENT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the server's log line for a rejection: `connection rejected` with
/// `reason=REASON` (the value bare or quoted).
pub(crate) fn wait_rejection_logged(server: &Server, reason: &str) {
    let bare = format!("reason={reason}");
    let quoted = format!("reason=\"{reason}\"");
    server.wait_for_log_line(
        &format!("a 'connection rejected' line with {bare}"),
        CLIENT_TIMEOUT,
        |l| {
            l.contains("connection rejected")
                && (l.contains(&bare) && !l.contains(&format!("{bare}_")) || l.contains(&quoted))
        },
    );
}
