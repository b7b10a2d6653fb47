//! Topic rules: CreateTopicRule, GetTopicRule, ListTopicRules, ReplaceTopicRule,
//! DeleteTopicRule, EnableTopicRule, DisableTopicRule.
//!
//! The payload is checked by [`crate::rule_payload`] and stored whole; the registry's change
//! feed tells the broker's rules engine. A rule that does not exist is an
//! `UnauthorizedException` for every operation, as on AWS.

use axum::extract::State;
use ferrule_store::{PageRequest, RegistryError, RuleRecord};
use serde_json::{Map, Value, json};

use super::{Reply, Tag, check_name, empty, reply, secs, tag_pairs};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Call, parse_query};
use crate::rule_payload::{self, RulePayload};

const TAGS_HEADER: &str = "x-amz-tagging";
/// ListTopicRules' largest `maxResults` (botocore's `TopicRuleMaxResults`).
const MAX_PAGE_SIZE: i64 = 10_000;
/// Page size when the caller gives none: AWS's former quota of rules per account, so a
/// caller that does not paginate sees every rule of an account within it.
const DEFAULT_PAGE_SIZE: i64 = 1_000;

fn rule_name(call: &Call) -> Result<&str, ApiError> {
    let name = call.label("ruleName")?;
    check_name(
        "ruleName",
        name,
        128,
        |c| c.is_ascii_alphanumeric() || c == '_',
        "^[a-zA-Z0-9_]+$",
    )?;
    Ok(name)
}

/// AWS's answer for a rule that does not exist.
fn access_denied(name: &str) -> ApiError {
    ApiError::Unauthorized(format!("Access to topic rule '{name}' was denied"))
}

/// Maps the registry's "no such rule" to AWS's answer for it.
fn or_denied(name: &str) -> impl FnOnce(RegistryError) -> ApiError + '_ {
    move |e| match e {
        RegistryError::NotFound { .. } => access_denied(name),
        other => other.into(),
    }
}

fn record(name: &str, payload: &RulePayload) -> RuleRecord {
    RuleRecord {
        name: name.to_owned(),
        topic_pattern: payload.parsed.topic_pattern.clone(),
        payload: payload.stored_json(),
        disabled: payload.disabled,
        created_ms: crate::now_ms(),
    }
}

/// `x-amz-tagging: k1=v1&k2=v2` (percent-encoded as a query string may be).
fn header_tags(call: &Call) -> Result<Vec<(String, String)>, ApiError> {
    let Some(header) = call.header(TAGS_HEADER)? else {
        return Ok(Vec::new());
    };
    let tags: Vec<Tag> = parse_query(header)
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    tag_pairs(&tags)
}

pub(super) async fn create_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    let name = rule_name(&call)?;
    let tags = header_tags(&call)?;
    let payload = rule_payload::parse(&call)?;
    let arn = st.arns().rule(name);
    st.registry()
        .create_rule(&record(name, &payload))
        .await
        .map_err(|e| match e {
            RegistryError::AlreadyExists { .. } => ApiError::ResourceAlreadyExists {
                message: format!("Topic rule {name} already exists"),
                resource_id: name.to_owned(),
                resource_arn: arn.clone(),
            },
            other => other.into(),
        })?;
    if !tags.is_empty() {
        st.registry().tag_resource(&arn, &tags).await?;
    }
    empty()
}

pub(super) async fn get_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    let name = rule_name(&call)?;
    let rule = st
        .registry()
        .get_rule(name)
        .await?
        .ok_or_else(|| access_denied(name))?;
    let mut stored = stored_payload(&rule)?;
    let mut take = |member: &str| stored.remove(member).unwrap_or(Value::Null);
    reply(json!({
        "ruleArn": st.arns().rule(&rule.name),
        "rule": {
            "ruleName": rule.name,
            "sql": take("sql"),
            "description": take("description"),
            "createdAt": secs(rule.created_ms),
            "actions": take("actions"),
            "ruleDisabled": rule.disabled,
            "awsIotSqlVersion": take("awsIotSqlVersion"),
            "errorAction": take("errorAction"),
        },
    }))
}

/// The stored payload's members; the API wrote it, so anything else is a damaged database.
fn stored_payload(rule: &RuleRecord) -> Result<Map<String, Value>, ApiError> {
    serde_json::from_str(&rule.payload).map_err(|e| {
        tracing::error!(rule = %rule.name, error = %e, "a stored rule payload is not a JSON object");
        ApiError::Internal(format!(
            "the stored payload of the rule {} is not a JSON object: {e}",
            rule.name
        ))
    })
}

pub(super) async fn list_topic_rules(State(st): State<ApiState>, call: Call) -> Reply {
    let page_size = call
        .query_int("maxResults", 1, MAX_PAGE_SIZE)?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let page = PageRequest {
        marker: call
            .query("nextToken")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        page_size: usize::try_from(page_size).unwrap_or(1),
        ascending: true,
    };
    let topic = call.query("topic");
    let disabled = call.query_bool("ruleDisabled")?;
    let page = st.registry().list_rules(topic, disabled, &page).await?;
    let rules: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            json!({
                "ruleArn": st.arns().rule(&r.name),
                "ruleName": r.name,
                "topicPattern": r.topic_pattern,
                "createdAt": secs(r.created_ms),
                "ruleDisabled": r.disabled,
            })
        })
        .collect();
    reply(json!({ "rules": rules, "nextToken": page.next_marker }))
}

pub(super) async fn replace_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    let name = rule_name(&call)?;
    let payload = rule_payload::parse(&call)?;
    st.registry()
        .replace_rule(&record(name, &payload))
        .await
        .map_err(or_denied(name))?;
    empty()
}

pub(super) async fn delete_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    let name = rule_name(&call)?;
    st.registry()
        .delete_rule(name)
        .await
        .map_err(or_denied(name))?;
    empty()
}

pub(super) async fn enable_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    set_disabled(&st, &call, false).await
}

pub(super) async fn disable_topic_rule(State(st): State<ApiState>, call: Call) -> Reply {
    set_disabled(&st, &call, true).await
}

async fn set_disabled(st: &ApiState, call: &Call, disabled: bool) -> Reply {
    let name = rule_name(call)?;
    st.registry()
        .set_rule_disabled(name, disabled)
        .await
        .map_err(or_denied(name))?;
    empty()
}
