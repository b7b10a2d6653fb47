//! CloudWatch Logs on the JSON 1.1 protocol: `POST /` with
//! `X-Amz-Target: Logs_20140328.<Operation>` and a JSON body, answered with a JSON body or
//! `{"__type": ..., "message": ...}` and status 400 (see [`Json11Error`]).
//!
//! Operations: CreateLogGroup, DeleteLogGroup, DescribeLogGroups, PutRetentionPolicy,
//! CreateLogStream, DescribeLogStreams, PutLogEvents, GetLogEvents, FilterLogEvents. Member
//! names, limits and defaults are botocore's `logs` model (2014-03-28). Timestamps are epoch
//! milliseconds, as that model says. Storage is the registry's (`ferrule_store`); the function
//! runtime writes to it directly.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ferrule_store::{
    LogEventsQuery, LogFilterQuery, LogGroupRecord, LogStreamOrder, LogStreamRecord, NewLogEvent,
    PageRequest, RegistryError,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::strip_nulls;
use crate::ApiState;
use crate::error::{ApiError, JSON_11, Json11Error};

/// The `X-Amz-Target` prefix of CloudWatch Logs operations.
pub(super) const TARGET_PREFIX: &str = "Logs_20140328.";

type LogsReply = Result<Value, Json11Error>;

/// `DescribeLimit`: 1 to 50, default 50.
const MAX_DESCRIBE: i64 = 50;
/// `EventsLimit`: 1 to 10000, default 10000.
const MAX_EVENTS: i64 = 10_000;
/// PutLogEvents' largest batch.
const MAX_BATCH: usize = 10_000;
/// FilterLogEvents' largest `logStreamNames`.
const MAX_STREAM_NAMES: usize = 100;
/// The retention periods PutRetentionPolicy accepts (the model's `Days` documentation).
const RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Runs the operation `op` (the target after [`TARGET_PREFIX`]) on a JSON body.
pub(super) async fn handle(st: &ApiState, op: &str, body: &[u8]) -> Response {
    let result: LogsReply = async {
        match op {
            "CreateLogGroup" => create_log_group(st, parse(body)?).await,
            "DeleteLogGroup" => delete_log_group(st, parse(body)?).await,
            "DescribeLogGroups" => describe_log_groups(st, parse(body)?).await,
            "PutRetentionPolicy" => put_retention_policy(st, parse(body)?).await,
            "CreateLogStream" => create_log_stream(st, parse(body)?).await,
            "DescribeLogStreams" => describe_log_streams(st, parse(body)?).await,
            "PutLogEvents" => put_log_events(st, parse(body)?).await,
            "GetLogEvents" => get_log_events(st, parse(body)?).await,
            "FilterLogEvents" => filter_log_events(st, parse(body)?).await,
            other => Err(Json11Error(ApiError::UnknownOperation {
                method: "POST".to_owned(),
                path: format!("/ (X-Amz-Target: {TARGET_PREFIX}{other})"),
            })),
        }
    }
    .await;
    match result {
        Ok(mut value) => {
            strip_nulls(&mut value);
            let mut response = value.to_string().into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_11));
            response
        }
        Err(e) => e.into_response(),
    }
}

/// The body as `T`; no body counts as `{}`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Json11Error> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        Json11Error(ApiError::InvalidRequest(format!(
            "the request body is not valid: {e}"
        )))
    })
}

fn invalid(message: String) -> Json11Error {
    Json11Error(ApiError::InvalidRequest(message))
}

/// AWS's messages for the registry's "not found" and "already exists".
fn logs_error(e: RegistryError) -> Json11Error {
    let message = match &e {
        RegistryError::NotFound {
            kind: "Log group", ..
        } => "The specified log group does not exist.",
        RegistryError::NotFound {
            kind: "Log stream", ..
        } => "The specified log stream does not exist.",
        RegistryError::AlreadyExists {
            kind: "Log group", ..
        } => "The specified log group already exists",
        RegistryError::AlreadyExists {
            kind: "Log stream", ..
        } => "The specified log stream already exists",
        _ => return Json11Error(e.into()),
    };
    let api = match e {
        RegistryError::NotFound { .. } => ApiError::ResourceNotFound(message.to_owned()),
        _ => ApiError::ResourceAlreadyExists {
            message: message.to_owned(),
            resource_id: String::new(),
            resource_arn: String::new(),
        },
    };
    Json11Error(api)
}

/// `LogGroupName`: 1 to 512 of `[\.\-_/#A-Za-z0-9]`.
fn group_name(member: &str, name: Option<String>) -> Result<String, Json11Error> {
    let name = name.ok_or_else(|| Json11Error(ApiError::missing(member)))?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#');
    if name.is_empty() || name.len() > 512 || !name.chars().all(allowed) {
        return Err(invalid(format!(
            "{member} {name:?} is not valid: it must be 1 to 512 characters matching \
             [\\.\\-_/#A-Za-z0-9]+"
        )));
    }
    Ok(name)
}

/// The group from `logGroupName`, or from `logGroupIdentifier` (a name or a log group ARN).
fn group_of(name: Option<String>, identifier: Option<String>) -> Result<String, Json11Error> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(invalid(
            "logGroupName and logGroupIdentifier cannot both be given".to_owned(),
        )),
        (None, Some(id)) => {
            let name = match id.split_once(":log-group:") {
                Some((_, rest)) if id.starts_with("arn:") => {
                    rest.strip_suffix(":*").unwrap_or(rest).to_owned()
                }
                _ => id,
            };
            group_name("logGroupIdentifier", Some(name))
        }
        (name, None) => group_name("logGroupName", name),
    }
}

/// `LogStreamName`: 1 to 512 characters, no `:` or `*`.
fn stream_name(member: &str, name: Option<String>) -> Result<String, Json11Error> {
    let name = name.ok_or_else(|| Json11Error(ApiError::missing(member)))?;
    if name.is_empty() || name.chars().count() > 512 || name.contains([':', '*']) {
        return Err(invalid(format!(
            "{member} {name:?} is not valid: it must be 1 to 512 characters without ':' or '*'"
        )));
    }
    Ok(name)
}

fn limit(value: Option<i64>, max: i64) -> Result<usize, Json11Error> {
    match value {
        None => Ok(usize::try_from(max).unwrap_or(1)),
        Some(n) if (1..=max).contains(&n) => Ok(usize::try_from(n).unwrap_or(1)),
        Some(n) => Err(invalid(format!(
            "limit {n} is not valid: it must be between 1 and {max}"
        ))),
    }
}

fn token(value: Option<String>) -> Result<Option<String>, Json11Error> {
    match value {
        Some(t) if t.is_empty() => Err(invalid("nextToken must not be empty".to_owned())),
        other => Ok(other),
    }
}

fn group_arn(st: &ApiState, name: &str) -> String {
    let c = st.config();
    format!(
        "arn:aws:logs:{}:{}:log-group:{name}",
        c.region, c.account_id
    )
}

// ----- groups -----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupInput {
    log_group_name: Option<String>,
}

async fn create_log_group(st: &ApiState, input: GroupInput) -> LogsReply {
    let name = group_name("logGroupName", input.log_group_name)?;
    st.registry()
        .create_log_group(&name, crate::now_ms())
        .await
        .map_err(logs_error)?;
    Ok(json!({}))
}

async fn delete_log_group(st: &ApiState, input: GroupInput) -> LogsReply {
    let name = group_name("logGroupName", input.log_group_name)?;
    st.registry()
        .delete_log_group(&name)
        .await
        .map_err(logs_error)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetentionInput {
    log_group_name: Option<String>,
    retention_in_days: Option<i64>,
}

async fn put_retention_policy(st: &ApiState, input: RetentionInput) -> LogsReply {
    let name = group_name("logGroupName", input.log_group_name)?;
    let days = input
        .retention_in_days
        .ok_or_else(|| Json11Error(ApiError::missing("retentionInDays")))?;
    if !RETENTION_DAYS.contains(&days) {
        return Err(invalid(format!(
            "retentionInDays {days} is not valid: it must be one of {RETENTION_DAYS:?}"
        )));
    }
    st.registry()
        .put_retention_policy(&name, Some(days))
        .await
        .map_err(logs_error)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeGroupsInput {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn group_json(st: &ApiState, g: &LogGroupRecord) -> Value {
    let arn = group_arn(st, &g.name);
    json!({
        "logGroupName": g.name,
        "creationTime": g.created_ms,
        "retentionInDays": g.retention_in_days,
        "metricFilterCount": 0,
        "arn": format!("{arn}:*"),
        "logGroupArn": arn,
        "storedBytes": 0,
        "logGroupClass": "STANDARD",
    })
}

async fn describe_log_groups(st: &ApiState, input: DescribeGroupsInput) -> LogsReply {
    if input.log_group_name_pattern.is_some() {
        return Err(invalid(
            "logGroupNamePattern is not supported by Ferrule; use logGroupNamePrefix".to_owned(),
        ));
    }
    let prefix = input
        .log_group_name_prefix
        .map(|p| group_name("logGroupNamePrefix", Some(p)))
        .transpose()?;
    let page = PageRequest {
        marker: token(input.next_token)?,
        page_size: limit(input.limit, MAX_DESCRIBE)?,
        ascending: true,
    };
    let groups = st
        .registry()
        .describe_log_groups(prefix.as_deref(), &page)
        .await
        .map_err(logs_error)?;
    let items: Vec<Value> = groups.items.iter().map(|g| group_json(st, g)).collect();
    Ok(json!({ "logGroups": items, "nextToken": groups.next_marker }))
}

// ----- streams -----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateStreamInput {
    log_group_name: Option<String>,
    log_stream_name: Option<String>,
}

async fn create_log_stream(st: &ApiState, input: CreateStreamInput) -> LogsReply {
    let group = group_name("logGroupName", input.log_group_name)?;
    let stream = stream_name("logStreamName", input.log_stream_name)?;
    st.registry()
        .create_log_stream(&group, &stream, crate::now_ms())
        .await
        .map_err(logs_error)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeStreamsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

fn stream_json(st: &ApiState, group: &str, s: &LogStreamRecord) -> Value {
    json!({
        "logStreamName": s.name,
        "creationTime": s.created_ms,
        "firstEventTimestamp": s.first_event_ms,
        "lastEventTimestamp": s.last_event_ms,
        "lastIngestionTime": s.last_ingestion_ms,
        "arn": format!("{}:log-stream:{}", group_arn(st, group), s.name),
        "storedBytes": 0,
    })
}

async fn describe_log_streams(st: &ApiState, input: DescribeStreamsInput) -> LogsReply {
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let prefix = input
        .log_stream_name_prefix
        .map(|p| stream_name("logStreamNamePrefix", Some(p)))
        .transpose()?;
    let order = match input.order_by.as_deref() {
        None | Some("LogStreamName") => LogStreamOrder::Name,
        Some("LastEventTime") => LogStreamOrder::LastEventTime,
        Some(other) => {
            return Err(invalid(format!(
                "orderBy {other:?} is not valid: it must be LogStreamName or LastEventTime"
            )));
        }
    };
    let page = PageRequest {
        marker: token(input.next_token)?,
        page_size: limit(input.limit, MAX_DESCRIBE)?,
        ascending: !input.descending.unwrap_or(false),
    };
    let streams = st
        .registry()
        .describe_log_streams(&group, prefix.as_deref(), order, &page)
        .await
        .map_err(logs_error)?;
    let items: Vec<Value> = streams
        .items
        .iter()
        .map(|s| stream_json(st, &group, s))
        .collect();
    Ok(json!({ "logStreams": items, "nextToken": streams.next_marker }))
}

// ----- events -----

#[derive(Deserialize)]
struct InputEvent {
    timestamp: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutEventsInput {
    log_group_name: Option<String>,
    log_stream_name: Option<String>,
    log_events: Option<Vec<InputEvent>>,
}

async fn put_log_events(st: &ApiState, input: PutEventsInput) -> LogsReply {
    let group = group_name("logGroupName", input.log_group_name)?;
    let stream = stream_name("logStreamName", input.log_stream_name)?;
    let raw = input
        .log_events
        .ok_or_else(|| Json11Error(ApiError::missing("logEvents")))?;
    if raw.is_empty() || raw.len() > MAX_BATCH {
        return Err(invalid(format!(
            "logEvents holds {} events; it must hold 1 to {MAX_BATCH}",
            raw.len()
        )));
    }
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(i, e)| match (e.timestamp, e.message) {
            (Some(timestamp_ms), Some(message)) => Ok(NewLogEvent {
                timestamp_ms,
                message,
            }),
            _ => Err(invalid(format!(
                "logEvents[{i}] needs both a timestamp and a message"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    st.registry()
        .put_log_events(&group, &stream, &events, crate::now_ms())
        .await
        .map_err(logs_error)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

async fn get_log_events(st: &ApiState, input: GetEventsInput) -> LogsReply {
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let stream = stream_name("logStreamName", input.log_stream_name)?;
    let query = LogEventsQuery {
        start_ms: input.start_time,
        end_ms: input.end_time,
        start_from_head: input.start_from_head.unwrap_or(false),
        limit: limit(input.limit, MAX_EVENTS)?,
        token: token(input.next_token)?,
    };
    let page = st
        .registry()
        .get_log_events(&group, &stream, &query)
        .await
        .map_err(logs_error)?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            json!({
                "timestamp": e.timestamp_ms,
                "message": e.message,
                "ingestionTime": e.ingestion_ms,
            })
        })
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": page.next_forward_token,
        "nextBackwardToken": page.next_backward_token,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

async fn filter_log_events(st: &ApiState, input: FilterEventsInput) -> LogsReply {
    let group = group_of(input.log_group_name, input.log_group_identifier)?;
    let stream_names = input
        .log_stream_names
        .map(|names| {
            if names.is_empty() || names.len() > MAX_STREAM_NAMES {
                return Err(invalid(format!(
                    "logStreamNames holds {} names; it must hold 1 to {MAX_STREAM_NAMES}",
                    names.len()
                )));
            }
            names
                .into_iter()
                .map(|n| stream_name("logStreamNames", Some(n)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let query = LogFilterQuery {
        stream_names,
        stream_prefix: input
            .log_stream_name_prefix
            .map(|p| stream_name("logStreamNamePrefix", Some(p)))
            .transpose()?,
        start_ms: input.start_time,
        end_ms: input.end_time,
        pattern: input.filter_pattern,
        limit: limit(input.limit, MAX_EVENTS)?,
        token: token(input.next_token)?,
    };
    let found = st
        .registry()
        .filter_log_events(&group, &query)
        .await
        .map_err(logs_error)?;
    let events: Vec<Value> = found
        .events
        .iter()
        .map(|e| {
            json!({
                "logStreamName": e.stream,
                "timestamp": e.timestamp_ms,
                "message": e.message,
                "ingestionTime": e.ingestion_ms,
                "eventId": e.id.to_string(),
            })
        })
        .collect();
    Ok(json!({
        "events": events,
        "searchedLogStreams": [],
        "nextToken": found.next_token,
    }))
}
