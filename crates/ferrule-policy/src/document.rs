//! Policy documents: JSON text in, a typed [`Policy`] out, or an error naming the problem.

use serde_json::{Map, Value};

use crate::condition::Condition;
use crate::pattern::Pattern;

/// Most characters in a policy document, whitespace not counted (AWS IoT's limit).
pub const MAX_POLICY_CHARS: usize = 2048;

/// Why a policy document was refused. The message is what `MalformedPolicyException` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON at all.
    #[error("the policy document is not valid JSON: {0}")]
    Json(String),
    /// Too long.
    #[error(
        "the policy document has {0} characters without whitespace; the maximum is {MAX_POLICY_CHARS}"
    )]
    TooLarge(usize),
    /// Valid JSON, but not a policy.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid(msg.into())
}

/// The policy language version. Variables are substituted only in `2012-10-17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `2008-10-17`: `${...}` is literal text.
    V2008_10_17,
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants what the statement names.
    Allow,
    /// Refuses what the statement names, whatever else allows it.
    Deny,
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement id, if any.
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    pub(crate) actions: Vec<Pattern>,
    /// `NotAction`: the statement applies to actions matching none of `actions`.
    pub(crate) not_action: bool,
    pub(crate) resources: Vec<Pattern>,
    /// `NotResource`: the statement applies to resources matching none of `resources`.
    pub(crate) not_resource: bool,
    pub(crate) conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The language version.
    pub version: PolicyVersion,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// The grammar a document is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// An AWS IoT policy: `iot:` actions, at most [`MAX_POLICY_CHARS`].
    Iot,
    /// An IAM identity policy: any service's actions; condition keys and policy variables
    /// ignore case.
    Identity,
}

impl Policy {
    /// Parses and validates an AWS IoT policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let size = text.chars().filter(|c| !c.is_whitespace()).count();
        if size > MAX_POLICY_CHARS {
            return Err(PolicyError::TooLarge(size));
        }
        Policy::parse_in(text, Dialect::Iot)
    }

    /// Parses an IAM identity policy (a user's or role's inline policy), for evaluating
    /// requests to the control plane: actions of any service (`iot:Update*`, `lambda:*`,
    /// `logs:CreateLogGroup`), matched ignoring case as IAM does. Condition keys and policy
    /// variables ignore case in IAM too, so this parser lowercases the document's; the
    /// [`Context`](crate::Context) it is evaluated with must hold lowercase keys
    /// (`aws:sourceip`, `aws:username`). No size limit: IAM's are checked when the document
    /// is stored.
    pub fn parse_identity(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_in(text, Dialect::Identity)
    }

    fn parse_in(text: &str, dialect: Dialect) -> Result<Policy, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(doc) = value else {
            return Err(invalid("the policy document must be a JSON object"));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Statement" | "Id") {
                return Err(invalid(format!("unknown top-level field {key:?}")));
            }
        }
        let version = match doc.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(v) => {
                return Err(invalid(format!(
                    "Version {v} is not \"2012-10-17\" or \"2008-10-17\""
                )));
            }
        };
        if doc.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(invalid("Id must be a string"));
        }
        let statements = match doc.get("Statement") {
            None => return Err(invalid("the policy document has no Statement")),
            Some(Value::Object(s)) => vec![parse_statement(s, 0, version, dialect)?],
            Some(Value::Array(list)) if list.is_empty() => {
                return Err(invalid("Statement is empty"));
            }
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Value::Object(s) => parse_statement(s, i, version, dialect),
                    _ => Err(invalid(format!("Statement[{i}] must be an object"))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(
                    "Statement must be an object or an array of objects",
                ));
            }
        };
        Ok(Policy {
            version,
            statements,
        })
    }
}

fn parse_statement(
    s: &Map<String, Value>,
    i: usize,
    version: PolicyVersion,
    dialect: Dialect,
) -> Result<Statement, PolicyError> {
    let at = |what: &str| format!("Statement[{i}].{what}");
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" | "Condition"
        ) {
            return Err(invalid(format!("{} is not a statement field", at(key))));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => return Err(invalid(format!("{} must be a string", at("Sid")))),
    };
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(e) => {
            return Err(invalid(format!(
                "{} is {e}, not \"Allow\" or \"Deny\"",
                at("Effect")
            )));
        }
        None => return Err(invalid(format!("{} is missing", at("Effect")))),
    };
    let (action_key, not_action) = one_of(s, "Action", "NotAction", i)?;
    let actions = strings(s, action_key, i)?
        .into_iter()
        .map(|a| {
            match dialect {
                Dialect::Iot => check_action(&a),
                Dialect::Identity => check_identity_action(&a),
            }
            .map_err(|why| invalid(format!("{}: {why}", at(action_key))))?;
            Pattern::parse(&a.to_ascii_lowercase(), false).map_err(invalid)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (resource_key, not_resource) = one_of(s, "Resource", "NotResource", i)?;
    let variables = version == PolicyVersion::V2012_10_17;
    let mut resources = strings(s, resource_key, i)?
        .into_iter()
        .map(|r| {
            if r != "*" && !r.starts_with("arn:") {
                return Err(invalid(format!(
                    "{}: {r:?} is not \"*\" or an ARN",
                    at(resource_key)
                )));
            }
            Pattern::parse(&r, variables).map_err(|e| invalid(format!("{}: {e}", at(resource_key))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(c)) => Condition::parse_block(c, variables)
            .map_err(|e| invalid(format!("{}: {e}", at("Condition"))))?,
        Some(_) => return Err(invalid(format!("{} must be an object", at("Condition")))),
    };
    if dialect == Dialect::Identity {
        resources.iter_mut().for_each(Pattern::lowercase_variables);
        conditions.iter_mut().for_each(Condition::lowercase_keys);
    }
    Ok(Statement {
        sid,
        effect,
        actions,
        not_action,
        resources,
        not_resource,
        conditions,
    })
}

fn one_of<'a>(
    s: &Map<String, Value>,
    a: &'a str,
    b: &'a str,
    i: usize,
) -> Result<(&'a str, bool), PolicyError> {
    match (s.contains_key(a), s.contains_key(b)) {
        (true, false) => Ok((a, false)),
        (false, true) => Ok((b, true)),
        (true, true) => Err(invalid(format!("Statement[{i}] has both {a} and {b}"))),
        (false, false) => Err(invalid(format!("Statement[{i}] has no {a}"))),
    }
}

fn strings(s: &Map<String, Value>, key: &str, i: usize) -> Result<Vec<String>, PolicyError> {
    let bad = || {
        invalid(format!(
            "Statement[{i}].{key} must be a string or a non-empty array of strings"
        ))
    };
    match s.get(key) {
        Some(Value::String(v)) => Ok(vec![v.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// Actions are `*`, or `iot:` followed by an action name that may hold `*` and `?`.
fn check_action(a: &str) -> Result<(), String> {
    if a == "*" {
        return Ok(());
    }
    let Some((service, name)) = a.split_once(':') else {
        return Err(format!("{a:?} is not of the form \"iot:Action\""));
    };
    if !service.eq_ignore_ascii_case("iot") && !service.eq_ignore_ascii_case("greengrass") {
        return Err(format!("{a:?}: AWS IoT policies hold iot: actions"));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
    {
        return Err(format!("{a:?} is not a valid action name"));
    }
    Ok(())
}

/// IAM actions: `*`, or `service:Action` where the name may hold `*` and `?`.
fn check_identity_action(a: &str) -> Result<(), String> {
    if a == "*" {
        return Ok(());
    }
    let Some((service, name)) = a.split_once(':') else {
        return Err(format!("{a:?} is not of the form \"service:Action\""));
    };
    let service_ok = !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?');
    if !service_ok || !name_ok {
        return Err(format!("{a:?} is not a valid action"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_canonical_jitr_policy() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["iot:Connect"],"Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]},
            {"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:us-east-1:123456789012:topic/foo/bar"]},
            {"Effect":"Allow","Action":["iot:Subscribe"],"Resource":["arn:aws:iot:us-east-1:123456789012:topicfilter/foo/*"]}]}"#;
        let p = Policy::parse(doc).expect("valid");
        assert_eq!(p.version, PolicyVersion::V2012_10_17);
        assert_eq!(p.statements.len(), 3);
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Version":"2012-10-17"}"#, "no Statement"),
            (
                r#"{"Version":"2012-10-17","Statement":[]}"#,
                "Statement is empty",
            ),
            (
                r#"{"Version":"2099-01-01","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
                "Version",
            ),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"iot:*","Resource":"*"}}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "has no Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*"}}"#,
                "has no Resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
                "iot: actions",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"topic/x"}}"#,
                "not \"*\" or an ARN",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
                "non-empty array",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Principal":"*"}}"#,
                "Principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"},"Extra":1}"#,
                "Extra",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{"StringWhatever":{"a":"b"}}}}"#,
                "StringWhatever",
            ),
        ];
        for (doc, needle) in cases {
            let err = Policy::parse(doc).expect_err(doc).to_string();
            assert!(err.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn size_limit_ignores_whitespace() {
        let body = format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"iot:*","Resource":"arn:aws:iot:r:1:topic/{}"}}}}"#,
            "a".repeat(1900)
        );
        assert!(Policy::parse(&body).is_ok());
        let spaced = body.replace(',', " ,   ");
        assert!(Policy::parse(&spaced).is_ok());
        let big = body.replace("aaaa", "aaaaaaaa");
        assert!(matches!(Policy::parse(&big), Err(PolicyError::TooLarge(_))));
    }
}
