//! CloudWatch Logs filter patterns, the simple term syntax only: `ERROR timeout` (every term
//! appears), `"connection reset"` (a quoted phrase is one term), `?ERROR ?WARN` (at least one
//! of the `?` terms appears), `ERROR -retry` (the `-` term does not appear). Matching is
//! case-sensitive and on substrings, as on AWS. JSON (`{ ... }`), space-delimited (`[ ... ]`)
//! and regular-expression (`%...%`) patterns are refused.

use crate::registry::error::RegistryError;

/// A parsed filter pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FilterPattern {
    all: Vec<String>,
    any: Vec<String>,
    none: Vec<String>,
}

impl FilterPattern {
    /// Parses `pattern`; an empty or blank pattern matches every event.
    pub(super) fn parse(pattern: &str) -> Result<FilterPattern, RegistryError> {
        let trimmed = pattern.trim();
        if let Some(kind) = match trimmed.chars().next() {
            Some('{') => Some("JSON"),
            Some('[') => Some("space-delimited"),
            Some('%') => Some("regular-expression"),
            _ => None,
        } {
            return Err(invalid(format!(
                "filterPattern {pattern:?} is a {kind} pattern; Ferrule supports only terms \
                 (ERROR timeout), quoted phrases (\"connection reset\"), ?optional and -excluded terms"
            )));
        }
        let mut parsed = FilterPattern::default();
        let mut rest = trimmed;
        loop {
            rest = rest.trim_start();
            let Some(first) = rest.chars().next() else {
                break;
            };
            let (target, after_sigil) = match first {
                '?' => (&mut parsed.any, &rest[1..]),
                '-' if rest[1..].starts_with(|c: char| !c.is_whitespace()) => {
                    (&mut parsed.none, &rest[1..])
                }
                _ => (&mut parsed.all, rest),
            };
            let (term, remaining) = if let Some(quoted) = after_sigil.strip_prefix('"') {
                let end = quoted.find('"').ok_or_else(|| {
                    invalid(format!(
                        "filterPattern {pattern:?} has a quote that is never closed"
                    ))
                })?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                let end = after_sigil
                    .find(char::is_whitespace)
                    .unwrap_or(after_sigil.len());
                (&after_sigil[..end], &after_sigil[end..])
            };
            if term.is_empty() {
                return Err(invalid(format!(
                    "filterPattern {pattern:?} has an empty term"
                )));
            }
            target.push(term.to_owned());
            rest = remaining;
        }
        Ok(parsed)
    }

    /// Whether an event's message matches.
    pub(super) fn matches(&self, message: &str) -> bool {
        self.all.iter().all(|t| message.contains(t.as_str()))
            && (self.any.is_empty() || self.any.iter().any(|t| message.contains(t.as_str())))
            && !self.none.iter().any(|t| message.contains(t.as_str()))
    }
}

fn invalid(message: String) -> RegistryError {
    RegistryError::InvalidRequest(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FilterPattern {
        match FilterPattern::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    #[test]
    fn terms_phrases_and_optional_terms() {
        assert!(p("").matches("anything"));
        assert!(p("   ").matches(""));
        assert!(p("ERROR timeout").matches("ERROR: read timeout"));
        assert!(!p("ERROR timeout").matches("ERROR: refused"));
        assert!(!p("error").matches("ERROR"), "case-sensitive");
        assert!(p("\"read timeout\"").matches("a read timeout"));
        assert!(!p("\"read timeout\"").matches("timeout on read"));
        assert!(p("?ERROR ?WARN").matches("WARN low disk"));
        assert!(!p("?ERROR ?WARN").matches("INFO ok"));
        assert!(p("disk ?ERROR ?WARN").matches("WARN disk"));
        assert!(!p("disk ?ERROR ?WARN").matches("WARN net"));
        assert!(p("?\"a b\" ?c").matches("xa by"));
        assert!(p("ERROR -retry").matches("ERROR fatal"));
        assert!(!p("ERROR -retry").matches("ERROR will retry"));
        assert!(p("-").matches("a - b"), "a lone dash is a term");
        assert!(!p("-").matches("ab"));
        assert!(p("a - b").matches("a-b"), "a dash before a space is a term");
    }

    #[test]
    fn other_syntaxes_and_broken_quotes_are_refused() {
        for bad in [
            "{ $.level = \"ERROR\" }",
            "[ip, user]",
            "%ERR.*%",
            "\"unclosed",
            "\"\"",
            "?",
        ] {
            let e = FilterPattern::parse(bad).expect_err(bad);
            assert!(
                matches!(e, RegistryError::InvalidRequest(ref m) if m.contains("filterPattern")),
                "{bad:?}: {e}"
            );
        }
    }
}
