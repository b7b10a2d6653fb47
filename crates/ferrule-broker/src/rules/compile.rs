//! Stored rules (the registry keeps `CreateTopicRule`'s payload as JSON text) compiled once, when
//! loaded: the SQL parsed, every action's substitution templates parsed, the FROM filters
//! indexed for the publish path.

use std::sync::Arc;

use ferrule_mqtt::{QoS, TopicTrie};
use ferrule_sql::{SqlVersion, Statement, Template};
use ferrule_store::RuleRecord;
use metrics::Counter;
use serde_json::Value;

/// One action of a rule, ready to run.
#[derive(Debug)]
pub(crate) enum Action {
    Republish {
        topic: Template,
        qos: QoS,
        headers: Box<RepublishHeaders>,
    },
    Lambda {
        function_arn: String,
    },
    Http {
        url: Template,
        headers: Vec<(String, Template)>,
    },
    /// Stored and listed like any other, but this broker cannot run it (S3, DynamoDB, ...).
    Unsupported {
        kind: String,
    },
}

impl Action {
    /// The action's key in the payload, for metrics and logs (`republish`, `http`, ...).
    pub(crate) fn kind(&self) -> &str {
        match self {
            Action::Republish { .. } => "republish",
            Action::Lambda { .. } => "lambda",
            Action::Http { .. } => "http",
            Action::Unsupported { kind } => kind,
        }
    }

    /// The name AWS's error-action payload gives it: `RepublishAction`, `LambdaAction`, ...
    pub(crate) fn aws_name(&self) -> String {
        let kind = self.kind();
        let mut chars = kind.chars();
        match chars.next() {
            Some(first) => format!("{}{}Action", first.to_ascii_uppercase(), chars.as_str()),
            None => "Action".to_owned(),
        }
    }

    fn compile(value: &Value, version: SqlVersion) -> Result<Action, String> {
        let Some((kind, body)) = value.as_object().and_then(|o| o.iter().next()) else {
            return Err("an action must be an object with one key".into());
        };
        let text = |field: &str| -> Result<String, String> {
            body.get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{kind}.{field} is missing"))
        };
        let template = |field: &str, text: &str| {
            Template::parse(text, version).map_err(|e| format!("{kind}.{field}: {e}"))
        };
        Ok(match kind.as_str() {
            "republish" => Action::Republish {
                topic: template("topic", &text("topic")?)?,
                qos: match body.get("qos").and_then(Value::as_u64).unwrap_or(0) {
                    0 => QoS::AtMostOnce,
                    _ => QoS::AtLeastOnce,
                },
                headers: Box::new(RepublishHeaders::compile(body.get("headers"), version)?),
            },
            "lambda" => Action::Lambda {
                function_arn: text("functionArn")?,
            },
            "http" => {
                let headers = body
                    .get("headers")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .map(|h| {
                                let key = h.get("key").and_then(Value::as_str).unwrap_or("");
                                let value = h.get("value").and_then(Value::as_str).unwrap_or("");
                                Ok((key.to_owned(), template("headers", value)?))
                            })
                            .collect::<Result<Vec<_>, String>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                Action::Http {
                    url: template("url", &text("url")?)?,
                    headers,
                }
            }
            other => Action::Unsupported {
                kind: other.to_owned(),
            },
        })
    }
}

/// The MQTT 5 properties a republish sets (`headers` in the action), each a substitution
/// template.
#[derive(Debug, Default)]
pub(crate) struct RepublishHeaders {
    /// `UTF8_DATA` or `UNSPECIFIED_BYTES`.
    pub(crate) payload_format_indicator: Option<Template>,
    pub(crate) content_type: Option<Template>,
    pub(crate) response_topic: Option<Template>,
    /// Base64 of the correlation data.
    pub(crate) correlation_data: Option<Template>,
    /// Seconds, as text.
    pub(crate) message_expiry: Option<Template>,
    pub(crate) user_properties: Vec<(Template, Template)>,
}

impl RepublishHeaders {
    fn compile(headers: Option<&Value>, version: SqlVersion) -> Result<RepublishHeaders, String> {
        let Some(headers) = headers.filter(|h| !h.is_null()) else {
            return Ok(RepublishHeaders::default());
        };
        let field = |name: &str| -> Result<Option<Template>, String> {
            headers
                .get(name)
                .and_then(Value::as_str)
                .map(|t| {
                    Template::parse(t, version)
                        .map_err(|e| format!("republish.headers.{name}: {e}"))
                })
                .transpose()
        };
        let mut user_properties = Vec::new();
        for p in headers
            .get("userProperties")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let part = |name: &str| {
                Template::parse(p.get(name).and_then(Value::as_str).unwrap_or(""), version)
                    .map_err(|e| format!("republish.headers.userProperties.{name}: {e}"))
            };
            user_properties.push((part("key")?, part("value")?));
        }
        Ok(RepublishHeaders {
            payload_format_indicator: field("payloadFormatIndicator")?,
            content_type: field("contentType")?,
            response_topic: field("responseTopic")?,
            correlation_data: field("correlationData")?,
            message_expiry: field("messageExpiry")?,
            user_properties,
        })
    }
}

/// An action's outcome counters, made when the rule is compiled so that running it looks
/// nothing up.
#[derive(Debug)]
pub(crate) struct Outcomes {
    pub(crate) success: Counter,
    pub(crate) failure: Counter,
    pub(crate) unsupported: Counter,
}

impl Outcomes {
    fn new(rule: &str, action: &Action) -> Outcomes {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                "ferrule_rule_actions_total",
                "rule" => rule.to_owned(),
                "action" => action.kind().to_owned(),
                "outcome" => outcome
            )
        };
        Outcomes {
            success: counter("success"),
            failure: counter("failure"),
            unsupported: counter("unsupported"),
        }
    }
}

/// A rule ready to run.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) statement: Statement,
    pub(crate) actions: Vec<(Action, Outcomes)>,
    pub(crate) error_action: Option<(Action, Outcomes)>,
    /// Messages that matched the FROM filter.
    pub(crate) matches: Counter,
    /// Messages the SQL could give no output for.
    pub(crate) errors: Counter,
}

impl Rule {
    fn compile(record: &RuleRecord) -> Result<Rule, String> {
        let payload: Value =
            serde_json::from_str(&record.payload).map_err(|e| format!("payload: {e}"))?;
        let version = payload
            .get("awsIotSqlVersion")
            .and_then(Value::as_str)
            .unwrap_or("2015-10-08")
            .parse::<SqlVersion>()
            .map_err(|e| e.to_string())?;
        let sql = payload
            .get("sql")
            .and_then(Value::as_str)
            .ok_or("sql is missing")?;
        let statement = Statement::parse(sql, version).map_err(|e| format!("sql: {e}"))?;
        let actions = payload
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| Action::compile(v, version))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let error_action = payload
            .get("errorAction")
            .filter(|v| !v.is_null())
            .map(|v| Action::compile(v, version))
            .transpose()?;
        let name = record.name.as_str();
        let with_counters = |a: Action| {
            let outcomes = Outcomes::new(name, &a);
            (a, outcomes)
        };
        Ok(Rule {
            name: name.to_owned(),
            statement,
            actions: actions.into_iter().map(with_counters).collect(),
            error_action: error_action.map(with_counters),
            matches: metrics::counter!("ferrule_rule_matches_total", "rule" => name.to_owned()),
            errors: metrics::counter!("ferrule_rule_errors_total", "rule" => name.to_owned()),
        })
    }
}

/// The enabled rules, and their FROM filters indexed for matching topics.
pub(crate) struct RuleSet {
    rules: Vec<Arc<Rule>>,
    index: TopicTrie<usize>,
}

impl RuleSet {
    pub(crate) fn compile(records: Vec<RuleRecord>) -> RuleSet {
        let mut rules = Vec::new();
        let mut index = TopicTrie::new();
        for record in records.iter().filter(|r| !r.disabled) {
            match Rule::compile(record) {
                Ok(rule) => {
                    index.insert(rule.statement.topic_filter(), rules.len());
                    rules.push(Arc::new(rule));
                }
                Err(e) => {
                    tracing::error!(rule = %record.name, error = %e, "stored topic rule does not compile; it will not run")
                }
            }
        }
        RuleSet { rules, index }
    }

    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule listens to `topic`.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.index.has_match(topic)
    }

    /// The rules that listen to `topic`.
    pub(crate) fn matching(&self, topic: &str) -> Vec<Arc<Rule>> {
        let mut out = Vec::new();
        self.index.for_each_match(topic, |&i| {
            if let Some(rule) = self.rules.get(i) {
                out.push(rule.clone());
            }
        });
        out
    }
}
