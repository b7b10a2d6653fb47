//! The crate's two errors: one for text that is not a statement (the rule's author is at fault),
//! one for a statement that cannot produce an output for this message.

use std::fmt;

/// Where in the SQL (or template) text something is: 1-based line and column, counted in
/// characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Position {
    pub(crate) const START: Position = Position { line: 1, column: 1 };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Text that is not a valid statement or template. The author of the rule is at fault; the
/// control plane returns it as `SqlParseException` with this `Display` text, for example
/// `Expected FROM but found end of input at 1:18`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {position}")]
pub struct ParseError {
    /// What is wrong, without the position.
    pub message: String,
    /// Where it is.
    pub position: Position,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, position: Position) -> ParseError {
        ParseError {
            message: message.into(),
            position,
        }
    }
}

/// A valid statement that cannot produce an output for this message. The rules engine runs the
/// rule's `errorAction` instead of its actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// `SELECT VALUE` gave an array, and the statement uses SQL version `2015-10-08`, which
    /// cannot output an array at the top level.
    #[error("SQL version 2015-10-08 cannot output an array at the top level; use 2016-03-23")]
    TopLevelArray,
    /// The statement would produce more data than one evaluation may (about 32 MiB), for
    /// example `replace` with an empty pattern on a long string, or `transform` of a large
    /// object over a long array.
    #[error("the statement produces too much data for this message")]
    LimitExceeded,
}
