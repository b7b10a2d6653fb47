//! Writing a function's log lines to its CloudWatch Logs group in the registry,
//! `/aws/lambda/<name>`, creating the group and the stream when they are missing (also when
//! someone deleted them meanwhile).
//!
//! A failure to write logs is reported with `tracing` and never fails an invocation.

use ferrule_store::{NewLogEvent, Registry, RegistryError};

use crate::service::now_ms;

/// `/aws/lambda/<name>`.
pub(crate) fn log_group_name(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

/// Appends `lines` to `stream` of the function's log group, all stamped now (the worker does not
/// time its lines; one batch is in order by construction).
pub(crate) async fn write(registry: &Registry, function: &str, stream: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let group = log_group_name(function);
    if let Err(e) = put(registry, &group, stream, lines).await {
        tracing::warn!(function, group, stream, error = %e, "could not store function logs");
    }
}

async fn put(
    registry: &Registry,
    group: &str,
    stream: &str,
    lines: &[String],
) -> Result<(), RegistryError> {
    let now = now_ms();
    let events: Vec<NewLogEvent> = lines
        .iter()
        .map(|line| NewLogEvent {
            timestamp_ms: now,
            message: line.clone(),
        })
        .collect();
    match registry.put_log_events(group, stream, &events, now).await {
        Err(RegistryError::NotFound { .. }) => {
            ignore_exists(registry.create_log_group(group, now).await)?;
            ignore_exists(registry.create_log_stream(group, stream, now).await)?;
            registry.put_log_events(group, stream, &events, now).await
        }
        other => other,
    }
}

/// Another writer may have created it first.
fn ignore_exists(result: Result<(), RegistryError>) -> Result<(), RegistryError> {
    match result {
        Err(RegistryError::AlreadyExists { .. }) => Ok(()),
        other => other,
    }
}
