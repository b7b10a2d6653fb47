//! Resource and action patterns: `*` matches any run of characters (including `/`), `?` exactly
//! one; `+` and `#` are plain characters. Resources may hold policy variables (`${iot:ClientId}`),
//! substituted before matching; a variable without a value makes the pattern match nothing.
//! A value that AWS refuses to substitute (one holding a wildcard character, or longer than 1024
//! characters) leaves the `${name}` text in place, as AWS documents for certificate variables.

use std::borrow::Cow;

use crate::eval::Context;

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(String),
    Star,
    Question,
    Var(String),
}

/// A parsed resource (or condition value) pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) source: String,
    tokens: Vec<Token>,
}

/// Characters that stop a variable's value from being substituted, as AWS documents.
const WILDCARD_CHARS: [char; 5] = ['*', '$', '+', '?', '#'];
/// Longest value substituted for a variable.
const MAX_VARIABLE_VALUE: usize = 1024;

impl Pattern {
    /// Parses `source`. With `variables` false (policy Version 2008-10-17) `${...}` is literal.
    pub(crate) fn parse(source: &str, variables: bool) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut rest = source;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unterminated policy variable in {source:?}"))?;
                let name = &rest[2..end];
                match name {
                    "*" | "?" | "$" => lit.push_str(name),
                    "" => return Err(format!("empty policy variable in {source:?}")),
                    _ => {
                        flush(&mut lit, &mut tokens);
                        tokens.push(Token::Var(name.to_owned()));
                    }
                }
                rest = &rest[end + 1..];
                continue;
            }
            match c {
                '*' => {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::Star);
                }
                '?' => {
                    flush(&mut lit, &mut tokens);
                    tokens.push(Token::Question);
                }
                _ => lit.push(c),
            }
            rest = &rest[c.len_utf8()..];
        }
        flush(&mut lit, &mut tokens);
        Ok(Pattern {
            source: source.to_owned(),
            tokens,
        })
    }

    /// Whether the pattern, with variables from `ctx`, matches `value`.
    pub(crate) fn matches(&self, value: &str, ctx: &Context, ignore_case: bool) -> bool {
        let mut resolved: Vec<Resolved<'_>> = Vec::with_capacity(self.tokens.len());
        for t in &self.tokens {
            resolved.push(match t {
                Token::Literal(s) => Resolved::Lit(Cow::Borrowed(s)),
                Token::Star => Resolved::Star,
                Token::Question => Resolved::One,
                Token::Var(name) => match substitute(ctx, name) {
                    Some(v) => Resolved::Lit(v),
                    None => return false,
                },
            });
        }
        if ignore_case {
            for t in &mut resolved {
                if let Resolved::Lit(s) = t {
                    *s = Cow::Owned(s.to_lowercase());
                }
            }
        }
        let toks: Vec<Tok<'_>> = resolved
            .iter()
            .map(|t| match t {
                Resolved::Lit(s) => Tok::Lit(s),
                Resolved::Star => Tok::Star,
                Resolved::One => Tok::One,
            })
            .collect();
        if ignore_case {
            return match_tokens(&toks, &value.to_lowercase());
        }
        match_tokens(&toks, value)
    }

    /// Lowercases the names of the pattern's variables (IAM's are case-insensitive).
    pub(crate) fn lowercase_variables(&mut self) {
        for t in &mut self.tokens {
            if let Token::Var(name) = t {
                *name = name.to_lowercase();
            }
        }
    }

    /// The pattern with variables substituted and no wildcards, if it is an exact value (used by
    /// the `...Equals` condition operators, which do not glob).
    pub(crate) fn resolve_exact(&self, ctx: &Context) -> Option<String> {
        let mut out = String::new();
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Star => out.push('*'),
                Token::Question => out.push('?'),
                Token::Var(name) => out.push_str(&substitute(ctx, name)?),
            }
        }
        Some(out)
    }
}

fn flush(lit: &mut String, tokens: &mut Vec<Token>) {
    if !lit.is_empty() {
        tokens.push(Token::Literal(std::mem::take(lit)));
    }
}

/// The text that stands for variable `name`: its first value; `None` (the pattern matches
/// nothing) when it has none. A value that holds a wildcard character or is too long is not
/// substituted: the `${name}` text stays, as AWS documents, so the pattern matches only that
/// literal text (almost always nothing, which is the point).
fn substitute<'c>(ctx: &'c Context, name: &str) -> Option<Cow<'c, str>> {
    let v = ctx.first(name)?;
    if v.chars().count() > MAX_VARIABLE_VALUE || v.contains(WILDCARD_CHARS) {
        return Some(Cow::Owned(format!("${{{name}}}")));
    }
    Some(Cow::Borrowed(v))
}

/// A token after substitution: variables have become literal text.
enum Resolved<'a> {
    Lit(Cow<'a, str>),
    Star,
    One,
}

#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Lit(&'a str),
    Star,
    One,
}

/// Glob matching by backtracking on the last `*`: linear in practice, no recursion.
fn match_tokens(toks: &[Tok<'_>], value: &str) -> bool {
    let (mut ti, mut vi) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if ti < toks.len() {
            match toks[ti] {
                Tok::Star => {
                    backtrack = Some((ti, vi));
                    ti += 1;
                    continue;
                }
                Tok::One => {
                    if let Some(c) = value[vi..].chars().next() {
                        vi += c.len_utf8();
                        ti += 1;
                        continue;
                    }
                }
                Tok::Lit(s) => {
                    if value[vi..].starts_with(s) {
                        vi += s.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if vi == value.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character.
        match backtrack {
            Some((star, at)) => match value[at..].chars().next() {
                Some(c) => {
                    let next = at + c.len_utf8();
                    backtrack = Some((star, next));
                    ti = star + 1;
                    vi = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Matches `value` against a glob with `*` and `?` and no variables (actions, ARNs).
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match Pattern::parse(pattern, false) {
        Ok(p) => p.matches(value, &Context::default(), false),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("topic/a/*", "topic/a/b/c"));
        assert!(glob_match("topic/a/*", "topic/a/"));
        assert!(!glob_match("topic/a/*", "topic/a"));
        assert!(glob_match("topic/?", "topic/x"));
        assert!(!glob_match("topic/?", "topic/xy"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(glob_match("topicfilter/a/+/b", "topicfilter/a/+/b"));
        assert!(!glob_match("topicfilter/a/+/b", "topicfilter/a/x/b"));
        assert!(glob_match("??", "éé"));
    }

    #[test]
    fn variables_substitute_and_escapes_are_literal() {
        let mut ctx = Context::default();
        ctx.set("iot:ClientId", "dev-1");
        let p = Pattern::parse("client/${iot:ClientId}", true).expect("parses");
        assert!(p.matches("client/dev-1", &ctx, false));
        assert!(!p.matches("client/dev-2", &ctx, false));
        let missing =
            Pattern::parse("client/${iot:Connection.Thing.ThingName}", true).expect("parses");
        assert!(!missing.matches("client/", &ctx, false));
        let esc = Pattern::parse("topic/${*}/x", true).expect("parses");
        assert!(esc.matches("topic/*/x", &ctx, false));
        assert!(!esc.matches("topic/y/x", &ctx, false));
        let old = Pattern::parse("client/${iot:ClientId}", false).expect("parses");
        assert!(old.matches("client/${iot:ClientId}", &ctx, false));
    }

    #[test]
    fn wildcard_values_are_not_substituted() {
        let mut ctx = Context::default();
        ctx.set("iot:ClientId", "+");
        let p = Pattern::parse("topicfilter/${iot:ClientId}/x", true).expect("parses");
        assert!(!p.matches("topicfilter/+/x", &ctx, false));
        // The variable's text stays, as AWS documents.
        assert!(p.matches("topicfilter/${iot:ClientId}/x", &ctx, false));
        assert_eq!(
            p.resolve_exact(&ctx).as_deref(),
            Some("topicfilter/${iot:ClientId}/x")
        );
    }

    #[test]
    fn the_length_limit_counts_characters() {
        let p =
            Pattern::parse("topic/${iot:Certificate.Subject.CommonName}", true).expect("parses");
        let mut ctx = Context::default();
        let longest = "é".repeat(MAX_VARIABLE_VALUE);
        ctx.set("iot:Certificate.Subject.CommonName", longest.clone());
        assert!(p.matches(&format!("topic/{longest}"), &ctx, false));
        let too_long = "é".repeat(MAX_VARIABLE_VALUE + 1);
        ctx.set("iot:Certificate.Subject.CommonName", too_long.clone());
        assert!(!p.matches(&format!("topic/{too_long}"), &ctx, false));
        assert!(p.matches("topic/${iot:Certificate.Subject.CommonName}", &ctx, false));
    }

    #[test]
    fn unterminated_variable_is_an_error() {
        assert!(Pattern::parse("client/${iot:ClientId", true).is_err());
    }
}
