//! AWS IoT SQL: the language of topic rules and of the substitution templates in their actions.
//!
//! What it is for: the control plane parses a rule's SQL when the rule is created (a
//! [`ParseError`] becomes `SqlParseException`), and learns the topic filter the rule listens
//! to; the rules engine evaluates the statement on every matching message to decide whether the
//! actions run and with what payload, and renders the actions' `${...}` templates.
//!
//! What it may depend on: `serde_json` and `thiserror`. No IO, no clock, no randomness of its
//! own: the message carries its timestamp, and an [`Env`] supplies `newuuid()` and `rand()`.
//!
//! Order of calls: [`Statement::parse`] once per rule (with the rule's [`SqlVersion`]) and
//! [`Template::parse`] once per action field; [`Statement::topic_filter`] to subscribe; then per
//! message, [`Statement::evaluate`] and, if it gives an [`Output`], [`Template::render`] for
//! each action field.
//!
//! # Semantics
//!
//! Values are AWS's: Int, Decimal, String, Boolean, Array, Object, Null and Undefined (a
//! missing field; Undefined items are left out of the output, and out of array and object
//! literals). Operators and functions follow AWS's documented conversion tables and give
//! Undefined where those tables do (comparing with Undefined, a string that is not a number in
//! arithmetic, dividing by zero, a function called with arguments it cannot use or with the
//! wrong number of them). A WHERE clause holds only when it is true (or the string `"true"`).
//! Names of fields are case-sensitive; keywords and function names are not.
//!
//! An item without `AS` is keyed by its field name (`a.b` gives `b`) or, for any other
//! expression, `_<n>` for the n-th item. `AS a.b` makes a nested key. A payload that is not JSON
//! has no fields: `*` passes its bytes through and `encode(*, 'base64')` encodes them; any
//! name is Undefined.
//!
//! The versions differ as [`SqlVersion`] describes.
//!
//! Where this crate differs from AWS, deliberately:
//!
//! - Int is 64-bit (overflow becomes Decimal) and Decimal is a double; AWS keeps 34 digits.
//! - `SELECT *` outputs the payload's bytes unchanged, JSON or not.
//! - One evaluation may produce about 32 MiB ([`EvalError::LimitExceeded`] past that).
//! - Functions that need other services or libraries (`aws_lambda`, `get_thing_shadow`,
//!   `get_dynamodb`, `get_secret`, `machinelearning_predict`, the hashes, `regexp_*`,
//!   `parse_time`, `time_to_epoch`, `sourceip`, `get_mqtt_property`, ...) are parse errors that
//!   say so; the `SET` clause is not supported; `FROM` is required.
//! - Beyond what AWS documents, `IS [NOT] NULL`, `IS [NOT] UNDEFINED`, searched `CASE WHEN`,
//!   `!=` (as `<>`), bare keys in object literals and quoted aliases (`AS 'my-key'`) are
//!   accepted. `||` is refused with a pointer to `concat()`.
//! - After `SELECT`, `value` followed by an operator, `,`, `AS` or `FROM` is a field named
//!   `value`; otherwise `VALUE` is the keyword.

mod ast;
mod base64;
mod error;
mod eval;
mod functions;
mod json;
mod lexer;
mod message;
mod parser;
mod statement;
mod template;
mod topic;
mod value;
mod version;

pub use error::{EvalError, ParseError, Position};

/// Standard base64 with padding (RFC 4648), as `encode(x, 'base64')` gives it; the rules
/// engine uses it for the error action's `base64OriginalPayload`.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::encode(bytes)
}

/// The bytes of standard base64 text (RFC 4648, padding optional), as `decode(x, 'base64')`
/// reads it; `None` if it is not base64. The republish action decodes `correlationData` with
/// it.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::decode(text)
}
pub use message::{Env, Message, Output};
pub use statement::Statement;
pub use template::{Template, render_template};
pub use version::{SqlVersion, UnknownSqlVersion};
