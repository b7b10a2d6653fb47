//! The `TopicRulePayload` of CreateTopicRule and ReplaceTopicRule (the request body itself,
//! botocore's `payload` member), parsed once into a [`RulePayload`] or refused with AWS's
//! error: `SqlParseException` for the SQL, `InvalidRequestException` for everything else,
//! each message naming the member (`actions[1].republish.qos`).
//!
//! The actions Ferrule's rules engine runs (`republish`, `lambda`, `http`) are checked member
//! by member against botocore's model. Every other AWS action type is accepted as given (an
//! object under a key the model knows) and stored untouched, so rules written for AWS can be
//! registered, listed and read back even where Ferrule does not run them.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::Call;
use crate::rule_sql::{RuleSql, parse_rule_sql};

/// AWS's limit of actions per rule.
const MAX_ACTIONS: usize = 10;
/// AWS's limit on the size of a rule.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// What AWS uses when `awsIotSqlVersion` is left out.
pub(crate) const DEFAULT_SQL_VERSION: &str = "2015-10-08";
const SQL_VERSIONS: &[&str] = &["2015-10-08", "2016-03-23", "beta"];
/// The `Action` structure's members in botocore's model: the action types.
const ACTION_TYPES: &[&str] = &[
    "dynamoDB",
    "dynamoDBv2",
    "lambda",
    "sns",
    "sqs",
    "kinesis",
    "republish",
    "s3",
    "firehose",
    "cloudwatchMetric",
    "cloudwatchAlarm",
    "cloudwatchLogs",
    "elasticsearch",
    "salesforce",
    "iotAnalytics",
    "iotEvents",
    "iotSiteWise",
    "stepFunctions",
    "timestream",
    "http",
    "kafka",
    "openSearch",
    "location",
];
/// botocore's `Url` shape: at most 2000 characters.
const MAX_URL_CHARS: usize = 2000;
/// botocore's `HeaderList` and `UserProperties`: at most 100 entries.
const MAX_HEADERS: usize = 100;
/// botocore's `HeaderKey`: 1 to 256 characters.
const MAX_HEADER_KEY_CHARS: usize = 256;

/// The body as botocore sends it. Unknown members are ignored, as botocore never sends any.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    sql: String,
    actions: Vec<Value>,
    description: Option<String>,
    rule_disabled: Option<bool>,
    aws_iot_sql_version: Option<String>,
    error_action: Option<Value>,
}

/// A rule payload that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RulePayload {
    /// The SQL statement, as given.
    pub(crate) sql: String,
    /// What the SQL check found in it.
    pub(crate) parsed: RuleSql,
    /// The description, if one was given.
    pub(crate) description: Option<String>,
    /// Each an object with exactly one key, an action type; as given.
    pub(crate) actions: Vec<Map<String, Value>>,
    /// Like an action.
    pub(crate) error_action: Option<Map<String, Value>>,
    /// `ruleDisabled`, false when left out.
    pub(crate) disabled: bool,
    /// `awsIotSqlVersion`, [`DEFAULT_SQL_VERSION`] when left out.
    pub(crate) sql_version: String,
}

impl RulePayload {
    /// The JSON text the registry stores as the rule's payload: everything but
    /// `ruleDisabled`, which is a column of its own, with the SQL version filled in.
    pub(crate) fn stored_json(&self) -> String {
        let mut stored = Map::new();
        stored.insert("sql".to_owned(), self.sql.clone().into());
        if let Some(description) = &self.description {
            stored.insert("description".to_owned(), description.clone().into());
        }
        let actions = self.actions.iter().cloned().map(Value::Object).collect();
        stored.insert("actions".to_owned(), Value::Array(actions));
        if let Some(error_action) = &self.error_action {
            stored.insert(
                "errorAction".to_owned(),
                Value::Object(error_action.clone()),
            );
        }
        stored.insert(
            "awsIotSqlVersion".to_owned(),
            self.sql_version.clone().into(),
        );
        Value::Object(stored).to_string()
    }
}

/// Parses and checks the body of CreateTopicRule or ReplaceTopicRule.
pub(crate) fn parse(call: &Call) -> Result<RulePayload, ApiError> {
    let size = call.body_len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "the rule is {size} bytes; a rule is at most {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    let wire: Wire = call.json()?;
    if wire.actions.len() > MAX_ACTIONS {
        return Err(invalid(
            "actions",
            format!(
                "a rule has at most {MAX_ACTIONS} actions; {} were given",
                wire.actions.len()
            ),
        ));
    }
    let sql_version = wire
        .aws_iot_sql_version
        .unwrap_or_else(|| DEFAULT_SQL_VERSION.to_owned());
    if !SQL_VERSIONS.contains(&sql_version.as_str()) {
        return Err(invalid(
            "awsIotSqlVersion",
            format!(
                "{sql_version:?} is not valid; expected one of {}",
                SQL_VERSIONS.join(", ")
            ),
        ));
    }
    let actions = wire
        .actions
        .iter()
        .enumerate()
        .map(|(i, action)| check_action(&format!("actions[{i}]"), action))
        .collect::<Result<Vec<_>, _>>()?;
    let error_action = wire
        .error_action
        .as_ref()
        .map(|action| check_action("errorAction", action))
        .transpose()?;
    // The SQL last: a payload with several problems reports the structural ones first.
    let parsed = parse_rule_sql(&wire.sql, &sql_version).map_err(ApiError::SqlParse)?;
    for (i, action) in actions.iter().enumerate() {
        check_templates(&format!("actions[{i}]"), action, &sql_version)?;
    }
    if let Some(action) = &error_action {
        check_templates("errorAction", action, &sql_version)?;
    }
    Ok(RulePayload {
        sql: wire.sql,
        parsed,
        description: wire.description,
        actions,
        error_action,
        disabled: wire.rule_disabled.unwrap_or(false),
        sql_version,
    })
}

/// Parses the substitution templates (`${...}`) of the action fields the rules engine renders,
/// so that a rule whose templates cannot run is refused now rather than failing on every
/// message.
fn check_templates(path: &str, action: &Map<String, Value>, version: &str) -> Result<(), ApiError> {
    let Ok(version) = version.parse::<ferrule_sql::SqlVersion>() else {
        return Ok(()); // already refused with its member's name
    };
    let Some((kind, fields)) = action.iter().next() else {
        return Ok(());
    };
    let mut texts: Vec<(String, &str)> = Vec::new();
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    match kind.as_str() {
        "republish" => texts.extend(text("topic").map(|t| (format!("{path}.{kind}.topic"), t))),
        "http" => {
            texts.extend(text("url").map(|t| (format!("{path}.{kind}.url"), t)));
            let headers = fields.get("headers").and_then(Value::as_array);
            for (i, header) in headers.into_iter().flatten().enumerate() {
                if let Some(value) = header.get("value").and_then(Value::as_str) {
                    texts.push((format!("{path}.{kind}.headers[{i}].value"), value));
                }
            }
        }
        _ => {}
    }
    for (member, text) in texts {
        ferrule_sql::Template::parse(text, version).map_err(|e| invalid(&member, e))?;
    }
    Ok(())
}

fn invalid(path: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest(format!("{path}: {problem}"))
}

/// Checks one `Action`: an object with exactly one key, a known action type, whose value is
/// an object (checked member by member for the types Ferrule runs).
fn check_action(path: &str, action: &Value) -> Result<Map<String, Value>, ApiError> {
    let object = as_object(path, action)?;
    let mut types = object.keys();
    let (Some(kind), None) = (types.next(), types.next()) else {
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        return Err(invalid(
            path,
            format!(
                "an action has exactly one action type as its key; this one has {} ({})",
                keys.len(),
                keys.join(", ")
            ),
        ));
    };
    if !ACTION_TYPES.contains(&kind.as_str()) {
        return Err(invalid(
            path,
            format!(
                "{kind:?} is not an action type; expected one of {}",
                ACTION_TYPES.join(", ")
            ),
        ));
    }
    let path = format!("{path}.{kind}");
    let fields = as_object(&path, &object[kind])?;
    match kind.as_str() {
        "republish" => check_republish(&path, fields)?,
        "lambda" => {
            required_text(&path, fields, "functionArn")?;
        }
        "http" => check_http(&path, fields)?,
        _ => {}
    }
    Ok(object.clone())
}

fn check_republish(path: &str, fields: &Map<String, Value>) -> Result<(), ApiError> {
    required_text(path, fields, "roleArn")?;
    required_text(path, fields, "topic")?;
    if let Some(qos) = fields.get("qos")
        && !matches!(qos.as_u64(), Some(0 | 1))
    {
        return Err(invalid(
            &format!("{path}.qos"),
            format!("must be 0 or 1, not {qos}"),
        ));
    }
    let Some(headers) = fields.get("headers") else {
        return Ok(());
    };
    let path = format!("{path}.headers");
    let headers = as_object(&path, headers)?;
    for member in [
        "payloadFormatIndicator",
        "contentType",
        "responseTopic",
        "correlationData",
        "messageExpiry",
    ] {
        optional_text(&path, headers, member)?;
    }
    if let Some(properties) = headers.get("userProperties") {
        let path = format!("{path}.userProperties");
        let properties = as_array(&path, properties, 1, MAX_HEADERS)?;
        for (i, property) in properties.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let property = as_object(&path, property)?;
            required_text(&path, property, "key")?;
            required_text(&path, property, "value")?;
        }
    }
    Ok(())
}

fn check_http(path: &str, fields: &Map<String, Value>) -> Result<(), ApiError> {
    let url = required_text(path, fields, "url")?;
    check_url(&format!("{path}.url"), url)?;
    if let Some(confirmation) = optional_text(path, fields, "confirmationUrl")? {
        let member = format!("{path}.confirmationUrl");
        check_url(&member, confirmation)?;
        if !url.starts_with(confirmation) {
            return Err(invalid(
                &member,
                format!("{confirmation:?} must be a prefix of the url {url:?}"),
            ));
        }
    }
    if let Some(headers) = fields.get("headers") {
        let path = format!("{path}.headers");
        let headers = as_array(&path, headers, 0, MAX_HEADERS)?;
        for (i, header) in headers.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let header = as_object(&path, header)?;
            let key = required_text(&path, header, "key")?;
            if key.chars().count() > MAX_HEADER_KEY_CHARS {
                return Err(invalid(
                    &format!("{path}.key"),
                    format!("a header name is at most {MAX_HEADER_KEY_CHARS} characters"),
                ));
            }
            required_text(&path, header, "value")?;
        }
    }
    if let Some(auth) = fields.get("auth") {
        let path = format!("{path}.auth");
        let auth = as_object(&path, auth)?;
        if let Some(sigv4) = auth.get("sigv4") {
            let path = format!("{path}.sigv4");
            let sigv4 = as_object(&path, sigv4)?;
            for member in ["signingRegion", "serviceName", "roleArn"] {
                required_text(&path, sigv4, member)?;
            }
        }
    }
    if let Some(batching) = fields.get("enableBatching")
        && !batching.is_boolean()
    {
        return Err(invalid(
            &format!("{path}.enableBatching"),
            "must be true or false",
        ));
    }
    if let Some(config) = fields.get("batchConfig") {
        as_object(&format!("{path}.batchConfig"), config)?;
    }
    Ok(())
}

/// An absolute HTTP(S) URL of at most 2000 characters. AWS accepts HTTPS only; Ferrule also
/// takes plain HTTP, for endpoints inside the network it runs in.
fn check_url(path: &str, url: &str) -> Result<(), ApiError> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid(
            path,
            format!("a URL is at most {MAX_URL_CHARS} characters"),
        ));
    }
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if host.is_none_or(str::is_empty) {
        return Err(invalid(
            path,
            format!("{url:?} is not an absolute https:// (or http://) URL"),
        ));
    }
    Ok(())
}

fn as_object<'a>(path: &str, value: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| invalid(path, format!("expected an object, not {value}")))
}

fn as_array<'a>(
    path: &str,
    value: &'a Value,
    min: usize,
    max: usize,
) -> Result<&'a Vec<Value>, ApiError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid(path, format!("expected a list, not {value}")))?;
    if !(min..=max).contains(&items.len()) {
        return Err(invalid(
            path,
            format!("has {} entries; expected {min} to {max}", items.len()),
        ));
    }
    Ok(items)
}

/// A member that must be a non-empty string.
fn required_text<'a>(
    path: &str,
    fields: &'a Map<String, Value>,
    member: &str,
) -> Result<&'a str, ApiError> {
    match optional_text(path, fields, member)? {
        Some(text) if !text.is_empty() => Ok(text),
        Some(_) => Err(invalid(&format!("{path}.{member}"), "must not be empty")),
        None => Err(invalid(path, format!("{member} is required"))),
    }
}

fn optional_text<'a>(
    path: &str,
    fields: &'a Map<String, Value>,
    member: &str,
) -> Result<Option<&'a str>, ApiError> {
    match fields.get(member) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(invalid(
            &format!("{path}.{member}"),
            format!("expected a string, not {other}"),
        )),
    }
}
