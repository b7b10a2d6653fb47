//! `Invoke`: `POST /2015-03-31/functions/{FunctionName}/invocations`.
//!
//! `X-Amz-Invocation-Type` chooses what happens once the function is known to exist and the
//! payload is JSON: `RequestResponse` (the default) runs it through the
//! [`FunctionHost`](crate::functions::FunctionHost) and answers 200 with its result, or with
//! its error payload and `X-Amz-Function-Error: Unhandled`; `Event` queues it and answers 202;
//! `DryRun` answers 204. `X-Amz-Log-Type: Tail` adds the last 4 KB of the invocation's log,
//! base64-encoded, as `X-Amz-Log-Result`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::LambdaError;
use super::names::LATEST;
use super::{LambdaReply, call, function_name, load};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Call;
use crate::functions::{HostError, HostInvocation};

/// Lambda's payload limits: 6 MB for synchronous requests and responses, 1 MB for events.
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;
/// How much of the log `X-Amz-Log-Type: Tail` returns.
const LOG_TAIL_BYTES: usize = 4096;

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

pub(in crate::ops) async fn invoke(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let kind = match req.header("x-amz-invocation-type")? {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(LambdaError::InvalidParameterValue(format!(
                "X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, not {other:?}"
            )));
        }
    };
    let tail = match req.header("x-amz-log-type")? {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(LambdaError::InvalidParameterValue(format!(
                "X-Amz-Log-Type must be None or Tail, not {other:?}"
            )));
        }
    };
    let limit = match kind {
        InvocationType::Event => MAX_EVENT_PAYLOAD,
        _ => MAX_SYNC_PAYLOAD,
    };
    if req.body_len() > limit {
        return Err(LambdaError::RequestTooLarge(format!(
            "Request must be smaller than {limit} bytes for the {} invocation type",
            match kind {
                InvocationType::Event => "Event",
                _ => "RequestResponse",
            }
        )));
    }
    load(&st, &name).await?;
    let event: Value = req.json().map_err(|e| {
        LambdaError::InvalidRequestContent(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        ))
    })?;
    if kind == InvocationType::DryRun {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let host = st.functions().cloned().ok_or_else(|| {
        LambdaError::Service(
            "The function runtime is not enabled on this Ferrule server, so functions cannot be \
             invoked"
                .to_owned(),
        )
    })?;
    let arn = super::function_arn(&st, &name);
    if kind == InvocationType::Event {
        host.invoke_event(name, event)
            .await
            .map_err(|e| host_error(e, &arn))?;
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let done = host
        .invoke(name, event)
        .await
        .map_err(|e| host_error(e, &arn))?;
    Ok(response(done, tail))
}

/// The 200 answer of a finished synchronous invocation.
fn response(done: HostInvocation, tail: bool) -> Response {
    let (payload, failed) = match done.result {
        Ok(value) => (value.to_string(), false),
        Err(error) => (error.to_string(), true),
    };
    let (payload, failed) = if payload.len() > MAX_SYNC_PAYLOAD {
        let error = json!({
            "errorMessage": format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size \
                 ({MAX_SYNC_PAYLOAD} bytes).",
                payload.len()
            ),
            "errorType": "Function.ResponseSizeTooLarge",
        });
        (error.to_string(), true)
    } else {
        (payload, failed)
    };
    let mut response = Body::from(payload).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-amz-executed-version", HeaderValue::from_static(LATEST));
    if failed {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if tail && let Ok(v) = HeaderValue::from_str(&log_tail(&done.log_lines)) {
        headers.insert("x-amz-log-result", v);
    }
    tracing::debug!(request_id = done.request_id, failed, "function invoked");
    response
}

/// base64 of the last [`LOG_TAIL_BYTES`] of the log, cut at a character boundary.
fn log_tail(lines: &[String]) -> String {
    let mut log = String::new();
    for line in lines {
        log.push_str(line);
        log.push('\n');
    }
    let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    ferrule_sql::base64_encode(&log.as_bytes()[start..])
}

fn host_error(e: HostError, arn: &str) -> LambdaError {
    match e {
        HostError::NotFound(_) => LambdaError::function_not_found(arn),
        HostError::TooManyRequests(m) => LambdaError::TooManyRequests(m),
        HostError::InvalidRuntime(m) => LambdaError::InvalidRuntime(m),
        HostError::InvalidZipFile(m) => LambdaError::InvalidZipFile(m),
        HostError::Unavailable(m) => {
            tracing::warn!(function = arn, reason = %m, "the function runtime failed");
            LambdaError::Service(m)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_tail_is_the_last_4_kb_on_a_character_boundary() {
        let short = vec!["START".to_owned(), "END".to_owned()];
        assert_eq!(
            ferrule_sql::base64_decode(&log_tail(&short)).unwrap(),
            b"START\nEND\n"
        );
        let long = vec!["é".repeat(3000), "last".to_owned()];
        let tail = ferrule_sql::base64_decode(&log_tail(&long)).unwrap();
        assert!(tail.len() <= LOG_TAIL_BYTES && tail.len() >= LOG_TAIL_BYTES - 1);
        let text = String::from_utf8(tail).unwrap();
        assert!(text.ends_with("éé\nlast\n"));
    }
}
