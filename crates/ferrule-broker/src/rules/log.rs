//! Rule failures in the log store, where AWS IoT users look for them: log group `AWSIotLogsV2`,
//! one JSON entry per failure in AWS IoT's log format (`eventType` `RuleExecution`, `status`
//! `Failure`, the rule, topic, client, action and its resource, and the reason in `details`).
//!
//! The rule path only queues an entry (bounded; when full the entry is dropped and counted):
//! a background task writes batches to the registry, so a slow database never slows the
//! rules. Entries also stay in the process log as warnings.

use std::time::Duration;

use ferrule_store::{NewLogEvent, Registry, RegistryError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// The log group AWS IoT writes its logs to.
pub(crate) const LOG_GROUP: &str = "AWSIotLogsV2";
/// Entries waiting to be written; beyond it they are dropped and counted.
const QUEUE: usize = 4096;
/// At most this many entries per write.
const BATCH: usize = 256;

/// One failure, before it is written.
pub(crate) struct Failure<'a> {
    pub(crate) rule: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) principal: Option<&'a str>,
    pub(crate) trace_id: &'a str,
    /// `LambdaAction`, `RepublishAction`...; `None` when the SQL failed.
    pub(crate) action: Option<String>,
    pub(crate) resource: Option<&'a str>,
    pub(crate) details: &'a str,
}

/// The queue in front of the writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RuleLog {
    tx: mpsc::Sender<NewLogEvent>,
    dropped: metrics::Counter,
}

impl RuleLog {
    /// Starts the writer; it stops when the broker shuts down, after writing what is queued.
    pub(crate) fn start(registry: Registry, shutdown: watch::Receiver<bool>) -> RuleLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(registry, rx, shutdown));
        RuleLog {
            tx,
            dropped: metrics::counter!("ferrule_rules_log_dropped_total"),
        }
    }

    /// Queues one failure entry.
    pub(crate) fn failure(&self, account_id: &str, f: &Failure<'_>) {
        let now = now_ms();
        let mut entry = json!({
            "timestamp": format_time(now),
            "logLevel": "ERROR",
            "traceId": f.trace_id,
            "accountId": account_id,
            "status": "Failure",
            "eventType": "RuleExecution",
            "clientId": f.client_id.unwrap_or("N/A"),
            "topicName": f.topic,
            "ruleName": f.rule,
            "principalId": f.principal.unwrap_or("N/A"),
            "details": f.details,
        });
        if let (Some(action), Value::Object(map)) = (&f.action, &mut entry) {
            map.insert("ruleAction".into(), Value::from(action.as_str()));
            if let Some(resource) = f.resource {
                map.insert("resources".into(), json!({ "ResourceArn": resource }));
            }
        }
        let event = NewLogEvent {
            timestamp_ms: now,
            message: entry.to_string(),
        };
        if self.tx.try_send(event).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// Writes queued entries in batches to `AWSIotLogsV2`, stream `rules`, creating both once.
/// At shutdown, writes what is still queued and stops.
async fn write(
    registry: Registry,
    mut rx: mpsc::Receiver<NewLogEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut writer = Writer {
        registry,
        ready: false,
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                false
            }
            () = shut_down(&mut shutdown) => true,
        };
        if stopping {
            rx.close();
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                writer.write(&batch).await;
                batch.clear();
            }
            return;
        }
        writer.write(&batch).await;
        batch.clear();
    }
}

async fn shut_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

struct Writer {
    registry: Registry,
    /// The group and stream exist (as far as we know).
    ready: bool,
}

impl Writer {
    const STREAM: &'static str = "rules";

    async fn write(&mut self, batch: &[NewLogEvent]) {
        if !self.ready {
            self.ready = ensure_stream(&self.registry, Self::STREAM).await;
        }
        if !self.ready {
            return;
        }
        let now = now_ms();
        if let Err(e) = self
            .registry
            .put_log_events(LOG_GROUP, Self::STREAM, batch, now)
            .await
        {
            tracing::warn!(error = %e, entries = batch.len(), "could not write rule failures to {LOG_GROUP}");
            // An operator may have deleted the group: create it again next time.
            self.ready = false;
        }
    }
}

/// Creates the group and the stream if they are missing; `false` if the registry failed.
async fn ensure_stream(registry: &Registry, stream: &str) -> bool {
    let now = now_ms();
    for result in [
        registry.create_log_group(LOG_GROUP, now).await,
        registry.create_log_stream(LOG_GROUP, stream, now).await,
    ] {
        match result {
            Ok(()) | Err(RegistryError::AlreadyExists { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not create the {LOG_GROUP} log stream");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return false;
            }
        }
    }
    true
}

fn now_ms() -> i64 {
    i64::try_from(crate::now_ms()).unwrap_or(i64::MAX)
}

/// `2026-11-29 10:15:02.123` (UTC), as AWS IoT's log entries write it.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::events::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn times_are_written_as_aws_iot_logs_write_them() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
        // 2026-11-29 10:15:02.123 UTC
        assert_eq!(format_time(1_795_947_302_123), "2026-11-29 10:15:02.123");
        // 2024-02-29 23:59:59.999 UTC, a leap day.
        assert_eq!(format_time(1_709_251_199_999), "2024-02-29 23:59:59.999");
    }
}
