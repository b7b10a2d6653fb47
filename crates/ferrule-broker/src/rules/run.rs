//! Running one rule on one message: the SQL, then every action with its output; when actions
//! fail, the error action with AWS's error payload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ferrule_mqtt::{Properties, TopicName};
use ferrule_sql::{Env, Output, Template};
use serde_json::json;

use super::compile::{Action, Outcomes, RepublishHeaders, Rule};
use super::{RuleInput, RulesSettings, http, log};
use crate::broker::BrokerInner;
use crate::session::Message;

/// What every rule execution shares.
pub(crate) struct RunContext {
    pub(crate) broker: Arc<BrokerInner>,
    pub(crate) settings: Arc<RulesSettings>,
    pub(crate) http: Arc<http::Client>,
    pub(crate) log: log::RuleLog,
}

/// How one action ended, when not well.
enum Failure {
    /// The action type is stored but cannot run here.
    Unsupported,
    Failed {
        resource: String,
        message: String,
    },
}

/// `newuuid()`, `traceid()` and `rand()` from the system's randomness.
struct SystemEnv;

impl Env for SystemEnv {
    fn new_uuid(&mut self) -> String {
        crate::events::session_identifier()
    }

    fn random(&mut self) -> f64 {
        let hex = ferrule_pki::random_hex(7);
        let n = u64::from_str_radix(&hex, 16).unwrap_or(0);
        // 56 random bits over 2^56: uniform in [0, 1).
        n as f64 / (1u64 << 56) as f64
    }
}

/// Evaluates `rule` on the message and runs its actions.
pub(crate) async fn run_rule(ctx: &RunContext, rule: &Rule, input: &RuleInput) {
    rule.matches.increment(1);
    let msg = &input.msg;
    let mut env = SystemEnv;
    let trace_id = trace_id();
    let sql_msg = ferrule_sql::Message {
        topic: msg.topic.as_str(),
        payload: &msg.payload,
        client_id: msg.publisher.as_deref(),
        principal: msg.principal.as_deref(),
        timestamp_ms: input.received_ms,
        trace_id: Some(&trace_id),
        account_id: &ctx.settings.account_id,
    };
    let output = match rule.statement.evaluate(&sql_msg, &mut env) {
        Ok(Some(output)) => output,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(rule = %rule.name, topic = %msg.topic, error = %e, "the rule's SQL gave no output for a message");
            rule.errors.increment(1);
            let details = format!("the rule's SQL failed on this message: {e}");
            ctx.log.failure(
                &ctx.settings.account_id,
                &failure(rule, &sql_msg, &trace_id, None, None, &details),
            );
            return;
        }
    };
    let mut failures = Vec::new();
    for (action, outcomes) in &rule.actions {
        let outcome = execute(ctx, action, &output, &sql_msg, msg.rule_hops, &mut env).await;
        count(outcomes, &outcome);
        match outcome {
            Ok(()) => {}
            Err(Failure::Unsupported) => tracing::warn!(
                rule = %rule.name, action = action.kind(),
                "this action type is stored but not supported by Ferrule; it did not run"
            ),
            Err(Failure::Failed { resource, message }) => {
                tracing::warn!(rule = %rule.name, action = action.kind(), resource = %resource, "rule action failed: {message}");
                ctx.log.failure(
                    &ctx.settings.account_id,
                    &failure(
                        rule,
                        &sql_msg,
                        &trace_id,
                        Some(action.aws_name()),
                        Some(&resource),
                        &message,
                    ),
                );
                failures.push(json!({
                    "failedAction": action.aws_name(),
                    "failedResource": resource,
                    "errorMessage": message,
                }));
            }
        }
    }
    if failures.is_empty() {
        return;
    }
    let Some((error_action, outcomes)) = &rule.error_action else {
        return;
    };
    let payload = json!({
        "ruleName": rule.name,
        "topic": msg.topic.as_str(),
        "cloudwatchTraceId": trace_id,
        "clientId": msg.publisher.as_deref().unwrap_or("n/a"),
        "base64OriginalPayload": ferrule_sql::base64_encode(&msg.payload),
        "failures": failures,
    });
    let output = Output::Json(payload.to_string().into_bytes());
    let outcome = execute(
        ctx,
        error_action,
        &output,
        &sql_msg,
        msg.rule_hops,
        &mut env,
    )
    .await;
    count(outcomes, &outcome);
    if let Err(Failure::Failed { resource, message }) = outcome {
        tracing::error!(rule = %rule.name, action = error_action.kind(), resource = %resource, "the rule's error action failed too: {message}");
        let details = format!("the error action failed too: {message}");
        ctx.log.failure(
            &ctx.settings.account_id,
            &failure(
                rule,
                &sql_msg,
                &trace_id,
                Some(error_action.aws_name()),
                Some(&resource),
                &details,
            ),
        );
    }
}

/// A failure entry for the rule log.
fn failure<'a>(
    rule: &'a Rule,
    msg: &'a ferrule_sql::Message<'a>,
    trace_id: &'a str,
    action: Option<String>,
    resource: Option<&'a str>,
    details: &'a str,
) -> log::Failure<'a> {
    log::Failure {
        rule: &rule.name,
        topic: msg.topic,
        client_id: msg.client_id,
        principal: msg.principal,
        trace_id,
        action,
        resource,
        details,
    }
}

fn count(outcomes: &Outcomes, outcome: &Result<(), Failure>) {
    match outcome {
        Ok(()) => &outcomes.success,
        Err(Failure::Unsupported) => &outcomes.unsupported,
        Err(Failure::Failed { .. }) => &outcomes.failure,
    }
    .increment(1);
}

/// A trace id per rule execution, in UUID form: a random prefix drawn once per process and a
/// counter, so that the rule path does not draw randomness per message.
fn trace_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| ferrule_pki::random_hex(10));
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff_ffff;
    format!(
        "{}-{}-{}-{}-{n:012x}",
        &prefix[0..8],
        &prefix[8..12],
        &prefix[12..16],
        &prefix[16..20]
    )
}

async fn execute(
    ctx: &RunContext,
    action: &Action,
    output: &Output,
    msg: &ferrule_sql::Message<'_>,
    hops: u8,
    env: &mut SystemEnv,
) -> Result<(), Failure> {
    match action {
        Action::Republish {
            topic,
            qos,
            headers,
        } => {
            let rendered = topic.render(msg, env);
            let name = TopicName::new(rendered.as_str()).map_err(|e| Failure::Failed {
                resource: rendered.clone(),
                message: format!("the republish topic {rendered:?} is not a valid topic: {e}"),
            })?;
            let (properties, expiry) =
                republish_properties(headers, msg, env).map_err(|message| Failure::Failed {
                    resource: rendered.clone(),
                    message,
                })?;
            let republished = Arc::new(Message {
                topic: name,
                payload: Bytes::copy_from_slice(output.as_bytes()),
                qos: *qos,
                retain: false,
                properties,
                expires_at_ms: expiry.map(|secs| crate::broker::now_ms() + u64::from(secs) * 1000),
                publisher: None,
                principal: None,
                rule_hops: hops.saturating_add(1),
            });
            ctx.broker.publish(&republished);
            Ok(())
        }
        Action::Lambda { function_arn } => {
            let failed = |message: String| Failure::Failed {
                resource: function_arn.clone(),
                message,
            };
            let Some(functions) = &ctx.settings.functions else {
                return Err(failed(
                    "no function runtime is configured, so the lambda action cannot run".into(),
                ));
            };
            if !output.is_json() {
                return Err(failed(
                    "the rule's output is not JSON, which a function event must be".into(),
                ));
            }
            functions
                .invoke(function_arn, output.as_bytes().to_vec())
                .await
                .map_err(failed)
        }
        Action::Http { url, headers } => {
            let url = url.render(msg, env);
            let failed = |message: String| Failure::Failed {
                resource: url.clone(),
                message,
            };
            if !ctx
                .settings
                .http_allow
                .iter()
                .any(|prefix| url.starts_with(prefix.as_str()))
            {
                return Err(failed(format!(
                    "{url} is not under a prefix allowed by rules_http_allow"
                )));
            }
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.render(msg, env)))
                .collect();
            let content_type = if output.is_json() {
                "application/json"
            } else {
                "application/octet-stream"
            };
            post_with_retries(&ctx.http, &url, &headers, content_type, output.as_bytes())
                .await
                .map_err(failed)
        }
        Action::Unsupported { .. } => Err(Failure::Unsupported),
    }
}

/// The MQTT 5 properties of a republished message, and its expiry in seconds, from the
/// action's headers rendered against the original message.
fn republish_properties(
    headers: &RepublishHeaders,
    msg: &ferrule_sql::Message<'_>,
    env: &mut SystemEnv,
) -> Result<(Properties, Option<u32>), String> {
    let mut render = |t: &Option<Template>| t.as_ref().map(|t| t.render(msg, env));
    let mut properties = Properties {
        payload_format_indicator: match render(&headers.payload_format_indicator).as_deref() {
            None => None,
            Some("UTF8_DATA") => Some(1),
            Some("UNSPECIFIED_BYTES") => Some(0),
            Some(other) => {
                return Err(format!(
                    "payloadFormatIndicator {other:?} is neither UTF8_DATA nor UNSPECIFIED_BYTES"
                ));
            }
        },
        content_type: render(&headers.content_type),
        response_topic: render(&headers.response_topic),
        ..Properties::default()
    };
    if let Some(topic) = &properties.response_topic
        && TopicName::new(topic.as_str()).is_err()
    {
        return Err(format!("responseTopic {topic:?} is not a valid topic name"));
    }
    if let Some(data) = render(&headers.correlation_data) {
        let bytes = ferrule_sql::base64_decode(&data)
            .ok_or_else(|| format!("correlationData {data:?} is not base64"))?;
        properties.correlation_data = Some(Bytes::from(bytes));
    }
    let expiry = match render(&headers.message_expiry) {
        None => None,
        Some(text) => Some(
            text.trim()
                .parse::<u32>()
                .map_err(|_| format!("messageExpiry {text:?} is not a number of seconds"))?,
        ),
    };
    for (key, value) in &headers.user_properties {
        properties
            .user_properties
            .push((key.render(msg, env), value.render(msg, env)));
    }
    Ok((properties, expiry))
}

/// Most attempts of one HTTP delivery.
const HTTP_ATTEMPTS: u32 = 3;

/// Posts, retrying a connection failure, a timeout or a 5xx answer with backoff (200 ms, then
/// 800 ms); a 4xx answer fails at once.
async fn post_with_retries(
    client: &http::Client,
    url: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..HTTP_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
        }
        match client.post(url, headers, content_type, body).await {
            Ok(status) if (200..300).contains(&status) => return Ok(()),
            Ok(status) if (400..500).contains(&status) => {
                return Err(format!("{url} answered HTTP {status}"));
            }
            Ok(status) => last = format!("{url} answered HTTP {status}"),
            Err(e) => last = e,
        }
    }
    Err(format!("{last} (after {HTTP_ATTEMPTS} attempts)"))
}
