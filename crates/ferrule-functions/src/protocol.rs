//! The worker line protocol: pure encoding and decoding, no IO.
//!
//! The host writes one request per line to the worker's stdin:
//!
//! ```text
//! {"id":N,"event":<json>,"context":{"function_name":..,"function_version":..,
//!  "invoked_function_arn":..,"memory_limit_in_mb":N,"aws_request_id":..,
//!  "log_group_name":..,"log_stream_name":..,"deadline_ms":<unix epoch ms>}}
//! ```
//!
//! and reads one response per line from its stdout:
//!
//! ```text
//! {"id":N,"ok":<json result>}
//! {"id":N,"error":{"errorMessage":..,"errorType":..,"stackTrace":[..]}}
//! ```
//!
//! A worker handles one request at a time. Everything it logs goes to stderr, one log line per
//! line; its last log line for an invocation is `REPORT RequestId: <aws_request_id>…`, written
//! before the response (the host waits briefly for it so that logs are attributed to the right
//! invocation). A worker exits when its stdin closes.

use serde_json::{Map, Value, json};

use crate::FunctionError;

/// The context fields sent with every request; the worker builds the handler's context from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeContext {
    /// The function's name.
    pub function_name: String,
    /// The function's version (`$LATEST`).
    pub function_version: String,
    /// The ARN the caller invoked.
    pub invoked_function_arn: String,
    /// The configured memory, in MB.
    pub memory_limit_in_mb: u32,
    /// This invocation's request id.
    pub aws_request_id: String,
    /// `/aws/lambda/<function name>`.
    pub log_group_name: String,
    /// The worker's log stream.
    pub log_stream_name: String,
    /// When the invocation times out, in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
}

/// A worker's answer to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerResponse {
    /// The handler returned this value.
    Ok(Value),
    /// The handler (or the runtime inside the worker) failed.
    Error(FunctionError),
}

/// A response line that does not follow the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed worker response: {0}")]
pub struct ProtocolError(pub(crate) String);

/// Encodes one request line, without the trailing newline.
pub fn encode_request(id: u64, event: &Value, context: &InvokeContext) -> String {
    json!({
        "id": id,
        "event": event,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "deadline_ms": context.deadline_ms,
        }
    })
    .to_string()
}

/// Decodes one response line into its request id and the response.
pub fn decode_response(line: &str) -> Result<(u64, WorkerResponse), ProtocolError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| ProtocolError(format!("not JSON ({e})")))?;
    let Value::Object(mut object) = value else {
        return Err(ProtocolError("not a JSON object".into()));
    };
    let id = object
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProtocolError("`id` is missing or not an unsigned integer".into()))?;
    if let Some(ok) = object.remove("ok") {
        return Ok((id, WorkerResponse::Ok(ok)));
    }
    match object.remove("error") {
        Some(Value::Object(error)) => Ok((id, WorkerResponse::Error(decode_error(error)))),
        Some(_) => Err(ProtocolError("`error` is not an object".into())),
        None => Err(ProtocolError("neither `ok` nor `error`".into())),
    }
}

fn decode_error(mut error: Map<String, Value>) -> FunctionError {
    let mut text = |key: &str| match error.remove(key) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let message = text("errorMessage");
    let error_type = text("errorType");
    let stack = match error.remove("stackTrace") {
        Some(Value::Array(frames)) => frames
            .into_iter()
            .map(|f| match f {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    FunctionError {
        error_type,
        message,
        stack,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn context() -> InvokeContext {
        InvokeContext {
            function_name: "f".into(),
            function_version: "$LATEST".into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            memory_limit_in_mb: 128,
            aws_request_id: "r".into(),
            log_group_name: "/aws/lambda/f".into(),
            log_stream_name: "s".into(),
            deadline_ms: 42,
        }
    }

    #[test]
    fn request_is_one_line_with_every_context_field() {
        let line = encode_request(7, &json!({"a": "x\ny"}), &context());
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["event"]["a"], "x\ny");
        assert_eq!(v["context"]["memory_limit_in_mb"], 128);
        assert_eq!(v["context"]["deadline_ms"], 42);
        assert_eq!(v["context"].as_object().unwrap().len(), 8);
    }

    #[test]
    fn decodes_ok_and_error() {
        assert_eq!(
            decode_response(r#"{"id":3,"ok":null}"#).unwrap(),
            (3, WorkerResponse::Ok(Value::Null))
        );
        let (id, response) = decode_response(
            r#"{"id":4,"error":{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a"]}}"#,
        )
        .unwrap();
        assert_eq!(id, 4);
        assert_eq!(
            response,
            WorkerResponse::Error(FunctionError {
                error_type: "ValueError".into(),
                message: "boom".into(),
                stack: vec!["a".into()],
            })
        );
    }

    #[test]
    fn rejects_malformed_responses() {
        for line in [
            "",
            "hello",
            "[]",
            r#"{"ok":1}"#,
            r#"{"id":1}"#,
            r#"{"id":1,"error":2}"#,
        ] {
            assert!(decode_response(line).is_err(), "{line}");
        }
    }
}
