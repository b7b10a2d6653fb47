//! Resource and action patterns: `*` matches any run of characters (including `/`), `?` exactly
//! one; `+` and `#` are plain characters. Resources may hold policy variables (`${iot:ClientId}`),
//! substituted before matching; a variable without a value makes the pattern match nothing.

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
        let mut resolved: Vec<Tok<'_>> = Vec::with_capacity(self.tokens.len());
        for t in &self.tokens {
            match t {
                Token::Literal(s) => resolved.push(Tok::Lit(s)),
                Token::Star => resolved.push(Tok::Star),
                Token::Question => resolved.push(Tok::One),
                Token::Var(name) => match substitute(ctx, name) {
                    Some(v) => resolved.push(Tok::Lit(v)),
                    None => return false,
                },
            }
        }
        if ignore_case {
            let lowered: Vec<String> = resolved
                .iter()
                .map(|t| match t {
                    Tok::Lit(s) => s.to_lowercase(),
                    _ => String::new(),
                })
                .collect();
            let toks: Vec<Tok<'_>> = resolved
                .iter()
                .zip(&lowered)
                .map(|(t, l)| match t {
                    Tok::Lit(_) => Tok::Lit(l),
                    Tok::Star => Tok::Star,
                    Tok::One => Tok::One,
                })
                .collect();
            return match_tokens(&toks, &value.to_lowercase());
        }
        match_tokens(&resolved, value)
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
                Token::Var(name) => out.push_str(substitute(ctx, name)?),
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

fn substitute<'c>(ctx: &'c Context, name: &str) -> Option<&'c str> {
    let v = ctx.first(name)?;
    if v.len() > MAX_VARIABLE_VALUE || v.contains(WILDCARD_CHARS) {
        return None;
    }
    Some(v)
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
    }

    #[test]
    fn unterminated_variable_is_an_error() {
        assert!(Pattern::parse("client/${iot:ClientId", true).is_err());
    }
}
