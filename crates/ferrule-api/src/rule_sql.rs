//! The one place the control plane checks a topic rule's SQL statement:
//! [`parse_rule_sql`], called by [`crate::rule_payload::parse`] and nowhere else.
//!
//! What is here is a stand-in: it checks the statement's outline,
//! `SELECT <anything> FROM '<topic filter>' [WHERE <anything>]`, and the topic filter, which is
//! all the registry needs (`topicPattern`). The select list and the condition are not parsed.

/// What the control plane takes from a rule's SQL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSql {
    /// The topic filter of the `FROM` clause, as written between its quotes.
    pub(crate) topic_pattern: String,
}

/// Checks a rule's SQL statement (`version` is its `awsIotSqlVersion`, already one AWS
/// accepts) and returns what the registry keeps of it. The error is the message of an
/// `SqlParseException`, naming the line and column (both from 1) where the statement went
/// wrong.
///
/// STAND-IN until the `ferrule-sql` crate lands: the lead swaps this body for a call to
/// ferrule-sql's parser (which takes the version, and rejects bad select lists and
/// conditions too). This function is the single call site to change; keep it that way.
///
/// Until then: keywords are case-insensitive; string literals (`'...'`, `"..."`, with
/// backslash escapes) and parenthesised subqueries are skipped when looking for the top-level
/// `FROM`; the topic filter must be in single quotes and be a valid MQTT topic filter (`+` and
/// `#` only as whole levels, `#` only last; no NUL).
pub(crate) fn parse_rule_sql(sql: &str, _version: &str) -> Result<RuleSql, String> {
    let bytes = sql.as_bytes();
    let start = skip_space(bytes, 0);
    if !keyword_at(bytes, start, "SELECT") {
        return Err(at(sql, start, "Expected SELECT"));
    }
    let list_start = start + "SELECT".len();
    let from = find_top_level_from(sql, list_start)?;
    if sql[list_start..from].trim().is_empty() {
        return Err(at(
            sql,
            from,
            "Expected a select list (for example *) between SELECT and FROM",
        ));
    }
    let open = skip_space(bytes, from + "FROM".len());
    if bytes.get(open) != Some(&b'\'') {
        return Err(at(
            sql,
            open,
            "Expected the topic filter in single quotes after FROM",
        ));
    }
    let Some(len) = sql[open + 1..].find('\'') else {
        return Err(at(sql, open, "The topic filter's quote is never closed"));
    };
    let close = open + 1 + len;
    let topic_pattern = &sql[open + 1..close];
    check_topic_filter(topic_pattern)
        .map_err(|(offset, problem)| at(sql, open + 1 + offset, problem))?;
    let rest = skip_space(bytes, close + 1);
    if rest < bytes.len() {
        if !keyword_at(bytes, rest, "WHERE") {
            return Err(at(
                sql,
                rest,
                "Expected WHERE or the end of the statement after the topic filter",
            ));
        }
        if sql[rest + "WHERE".len()..].trim().is_empty() {
            return Err(at(sql, sql.len(), "Expected a condition after WHERE"));
        }
    }
    Ok(RuleSql {
        topic_pattern: topic_pattern.to_owned(),
    })
}

/// The byte offset of the first `FROM` at or after `from` outside strings and parentheses.
fn find_top_level_from(sql: &str, from: usize) -> Result<usize, String> {
    let bytes = sql.as_bytes();
    let mut depth = 0_usize;
    let mut opened = Vec::new();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => i = skip_string(sql, i, quote)?,
            b'(' => {
                depth += 1;
                opened.push(i);
            }
            b')' => {
                if depth == 0 {
                    return Err(at(sql, i, "Unbalanced ')'"));
                }
                depth -= 1;
                opened.pop();
            }
            _ if depth == 0 && keyword_at(bytes, i, "FROM") => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    match opened.last() {
        Some(&open) => Err(at(sql, open, "This '(' is never closed")),
        None => Err(at(
            sql,
            sql.len(),
            "Expected FROM followed by a topic filter",
        )),
    }
}

/// The offset of the quote that closes the string opened at `open`.
fn skip_string(sql: &str, open: usize, quote: u8) -> Result<usize, String> {
    let bytes = sql.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return Ok(i),
            _ => i += 1,
        }
    }
    Err(at(sql, open, "This string is never closed"))
}

/// Whether the keyword `word` (upper case) starts at `i` as a whole word, in any case.
fn keyword_at(bytes: &[u8], i: usize, word: &str) -> bool {
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let end = i + word.len();
    bytes
        .get(i..end)
        .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
        && (i == 0 || !is_word(&bytes[i - 1]))
        && !bytes.get(end).is_some_and(is_word)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Checks an MQTT topic filter; the error is the byte offset of the problem in the filter.
fn check_topic_filter(filter: &str) -> Result<(), (usize, &'static str)> {
    if filter.is_empty() {
        return Err((0, "The topic filter is empty"));
    }
    if let Some(nul) = filter.find('\0') {
        return Err((nul, "A topic filter cannot contain the NUL character"));
    }
    let mut offset = 0;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if let Some(i) = level.find('#')
            && (level != "#" || levels.peek().is_some())
        {
            return Err((
                offset + i,
                "'#' in a topic filter must be a whole level, and the last one",
            ));
        }
        if let Some(i) = level.find('+')
            && level != "+"
        {
            return Err((offset + i, "'+' in a topic filter must be a whole level"));
        }
        offset += level.len() + 1;
    }
    Ok(())
}

/// `problem` with the line and column of byte offset `pos` in `sql` (both from 1, columns in
/// characters).
fn at(sql: &str, pos: usize, problem: &str) -> String {
    let before = sql.get(..pos).unwrap_or(sql);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("{problem} at line {line}, column {column}")
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
        assert_eq!(topic("SELECT * FROM '+/+/#' WHERE a = 'x'"), "+/+/#");
        // FROM inside a string, an identifier or a subquery is not the statement's FROM.
        assert_eq!(
            topic("SELECT 'FROM x' AS f, fromage, \"from\" FROM 't1'"),
            "t1"
        );
        assert_eq!(
            topic("SELECT (SELECT VALUE v FROM items) AS vs FROM 'in' WHERE (a > (1))"),
            "in"
        );
        assert_eq!(topic(r"SELECT 'it\'s FROM' AS s FROM 't'"), "t");
        assert_eq!(topic("SELECT * FROM 'a//b/'"), "a//b/");
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(refused(""), "Expected SELECT at line 1, column 1");
        assert_eq!(
            refused("  DELETE FROM 't'"),
            "Expected SELECT at line 1, column 3"
        );
        assert_eq!(
            refused("SELECTX * FROM 't'"),
            "Expected SELECT at line 1, column 1"
        );
        assert_eq!(
            refused("SELECT FROM 't'"),
            "Expected a select list (for example *) between SELECT and FROM at line 1, column 8"
        );
        assert_eq!(
            refused("SELECT *"),
            "Expected FROM followed by a topic filter at line 1, column 9"
        );
        assert_eq!(
            refused("SELECT * FROM t"),
            "Expected the topic filter in single quotes after FROM at line 1, column 15"
        );
        assert_eq!(
            refused("SELECT * FROM \"t\""),
            "Expected the topic filter in single quotes after FROM at line 1, column 15"
        );
        assert_eq!(
            refused("SELECT *\nFROM 'a/b"),
            "The topic filter's quote is never closed at line 2, column 6"
        );
        assert_eq!(
            refused("SELECT * FROM 'a/b' WHEN x"),
            "Expected WHERE or the end of the statement after the topic filter at line 1, column 21"
        );
        assert_eq!(
            refused("SELECT * FROM 'a' WHERE  "),
            "Expected a condition after WHERE at line 1, column 26"
        );
        assert_eq!(
            refused("SELECT (a FROM 't'"),
            "This '(' is never closed at line 1, column 8"
        );
        assert_eq!(
            refused("SELECT a) FROM 't'"),
            "Unbalanced ')' at line 1, column 9"
        );
        assert_eq!(
            refused("SELECT 'oops FROM 't'"),
            "This string is never closed at line 1, column 21"
        );
    }

    #[test]
    fn the_filter_must_be_a_valid_topic_filter() {
        assert_eq!(
            refused("SELECT * FROM ''"),
            "The topic filter is empty at line 1, column 16"
        );
        assert_eq!(
            refused("SELECT * FROM 'a/#/b'"),
            "'#' in a topic filter must be a whole level, and the last one at line 1, column 18"
        );
        assert_eq!(
            refused("SELECT * FROM 'a/b#'"),
            "'#' in a topic filter must be a whole level, and the last one at line 1, column 19"
        );
        assert_eq!(
            refused("SELECT * FROM 'a/x+'"),
            "'+' in a topic filter must be a whole level at line 1, column 19"
        );
        assert_eq!(
            refused("SELECT * FROM 'é/+x'"),
            "'+' in a topic filter must be a whole level at line 1, column 18"
        );
        assert!(refused("SELECT * FROM 'a\0'").contains("NUL"));
    }
}
