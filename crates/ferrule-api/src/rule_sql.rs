//! The one place the control plane checks a topic rule's SQL statement:
//! [`parse_rule_sql`], called by [`crate::rule_payload::parse`] and nowhere else. The statement
//! is parsed by `ferrule-sql`, the same parser the rules engine runs, so a rule the API accepts
//! is a rule the broker can run.

use ferrule_sql::{SqlVersion, Statement};

/// What the control plane takes from a rule's SQL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSql {
    /// The topic filter of the `FROM` clause, as written between its quotes.
    pub(crate) topic_pattern: String,
}

/// Checks a rule's SQL statement (`version` is its `awsIotSqlVersion`, already one AWS
/// accepts) and returns what the registry keeps of it. The error is the message of an
/// `SqlParseException`, naming the problem and where (line:column, both from 1) the statement
/// went wrong.
pub(crate) fn parse_rule_sql(sql: &str, version: &str) -> Result<RuleSql, String> {
    let version: SqlVersion = version.parse().map_err(|e| format!("{e}"))?;
    let statement = Statement::parse(sql, version).map_err(|e| e.to_string())?;
    Ok(RuleSql {
        topic_pattern: statement.topic_filter().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(sql: &str) -> String {
        match parse_rule_sql(sql, "2016-03-23") {
            Ok(parsed) => parsed.topic_pattern,
            Err(e) => panic!("{sql:?} refused: {e}"),
        }
    }

    fn refused(sql: &str) -> String {
        match parse_rule_sql(sql, "2016-03-23") {
            Ok(parsed) => panic!("{sql:?} accepted: {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_from_filter_is_extracted() {
        assert_eq!(topic("SELECT * FROM 'a/b'"), "a/b");
        assert_eq!(
            topic("select temp from 'sensors/+/temp' where temp > 30"),
            "sensors/+/temp"
        );
        assert_eq!(topic("  SeLeCt\n*\nFrOm\n'#'\n"), "#");
        assert_eq!(
            topic("SELECT * FROM '$aws/events/presence/connected/+'"),
            "$aws/events/presence/connected/+"
        );
        assert_eq!(topic("SELECT 'FROM x' AS f FROM 't1' WHERE a = 'x'"), "t1");
    }

    #[test]
    fn errors_say_what_and_where() {
        for (sql, position) in [
            ("", "1:1"),
            ("  DELETE FROM 't'", "1:3"),
            ("SELECT * FROM t", "1:15"),
            ("SELECT *\nFROM 'a/b", "2:6"),
        ] {
            let e = refused(sql);
            assert!(e.contains(position), "{sql:?}: {e}");
        }
        assert!(refused("SELECT * FROM 'a/#/b'").contains("#"));
        assert!(refused("SELECT nosuchfunction(x) FROM 'a'").contains("nosuchfunction"));
    }
}
