//! The `awsIotSqlVersion` a statement is interpreted with.

use std::fmt;
use std::str::FromStr;

/// The SQL version of a rule. The differences this crate implements:
///
/// - `2016-03-23` (and `beta`): object and array literals, nested queries, `SELECT VALUE` of an
///   array, the functions `encode`, `decode`, `indexof`, `length`, `numbytes`, `isUndefined`
///   and `transform`, `cast` to `Decimal`/`Bool`/`Boolean`, and whole numbers such as `10.0`
///   are the Int `10`.
/// - `2015-10-08`: none of those; `10.0` stays a Decimal.
///
/// AWS's API defaults to `2015-10-08` when a rule names no version; this crate's callers choose
/// ([`SqlVersion::default`] is `2016-03-23`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SqlVersion {
    /// `2015-10-08`, the original version.
    V2015_10_08,
    /// `2016-03-23`.
    #[default]
    V2016_03_23,
    /// `beta`: here the same as `2016-03-23`.
    Beta,
}

impl SqlVersion {
    /// The version as AWS spells it (`awsIotSqlVersion`, and what `sql_version()` returns).
    pub fn as_str(self) -> &'static str {
        match self {
            SqlVersion::V2015_10_08 => "2015-10-08",
            SqlVersion::V2016_03_23 => "2016-03-23",
            SqlVersion::Beta => "beta",
        }
    }

    pub(crate) fn is_v2(self) -> bool {
        self != SqlVersion::V2015_10_08
    }
}

impl fmt::Display for SqlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `awsIotSqlVersion` that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SQL version '{0}'; expected 2015-10-08, 2016-03-23 or beta")]
pub struct UnknownSqlVersion(pub String);

impl FromStr for SqlVersion {
    type Err = UnknownSqlVersion;

    fn from_str(s: &str) -> Result<SqlVersion, UnknownSqlVersion> {
        match s {
            "2015-10-08" => Ok(SqlVersion::V2015_10_08),
            "2016-03-23" => Ok(SqlVersion::V2016_03_23),
            "beta" => Ok(SqlVersion::Beta),
            other => Err(UnknownSqlVersion(other.to_owned())),
        }
    }
}
