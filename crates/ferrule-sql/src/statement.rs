//! A rule's SQL statement: parsed once, evaluated per message.

use std::fmt;

use crate::ast::{Item, Projection, Query};
use crate::error::{EvalError, ParseError};
use crate::eval::{Cx, Scope, eval, project, truthy};
use crate::json;
use crate::lexer::Lexer;
use crate::message::{Env, Message, Output};
use crate::parser::Parser;
use crate::value::Value;
use crate::version::SqlVersion;

/// A parsed `SELECT ... FROM '<topic filter>' [WHERE ...]` statement.
///
/// `Display` writes it back as canonical SQL (keywords in upper case, every operation in
/// parentheses) that parses to an equal statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    version: SqlVersion,
    query: Query<String>,
}

impl Statement {
    /// Parses `sql` as SQL version `version`. The error names the problem and its position.
    pub fn parse(sql: &str, version: SqlVersion) -> Result<Statement, ParseError> {
        let mut parser = Parser::new(Lexer::new(sql), version.is_v2())?;
        let query = parser.statement()?;
        Ok(Statement { version, query })
    }

    /// The FROM clause's topic filter: what the rule subscribes to, and `ListTopicRules`'
    /// `topicPattern`.
    pub fn topic_filter(&self) -> &str {
        &self.query.from
    }

    /// Whether the statement selects exactly `*` (with or without WHERE): its output is the
    /// payload, byte for byte, JSON or not.
    pub fn is_select_star(&self) -> bool {
        matches!(&self.query.projection, Projection::Items(items) if items[..] == [Item::Wildcard])
    }

    /// The SQL version the statement was parsed with.
    pub fn version(&self) -> SqlVersion {
        self.version
    }

    /// Runs the statement on one message. `Ok(None)` when the WHERE clause is not true (the
    /// rule's actions do not run); `Err` when the statement cannot give an output for this
    /// message (the rule's error action runs).
    ///
    /// A payload that is not JSON has no fields: names in the statement are Undefined, so a
    /// WHERE clause that tests a field is not true; `*` passes the bytes through and
    /// `encode(*, 'base64')` encodes them.
    pub fn evaluate(
        &self,
        msg: &Message<'_>,
        env: &mut dyn Env,
    ) -> Result<Option<Output>, EvalError> {
        let mut cx = Cx::new(msg, env, self.version);
        if let Some(c) = &self.query.condition {
            let holds = truthy(&eval(c, &mut cx, Scope::Message));
            if cx.exhausted() {
                return Err(EvalError::LimitExceeded);
            }
            if !holds {
                return Ok(None);
            }
        }
        if self.is_select_star() {
            let bytes = msg.payload.to_vec();
            return Ok(Some(if cx.payload_is_json() {
                Output::Json(bytes)
            } else {
                Output::Raw(bytes)
            }));
        }
        let v = project(&self.query.projection, &mut cx, Scope::Message);
        if cx.exhausted() {
            return Err(EvalError::LimitExceeded);
        }
        Ok(Some(match v {
            Value::Undefined => Output::Raw(Vec::new()),
            Value::Array(_) if !self.version.is_v2() => return Err(EvalError::TopLevelArray),
            v => Output::Json(json::to_text(&v).into_bytes()),
        }))
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.query)
    }
}
