//! Substitution templates in action fields: `${expr}` is replaced by the expression's value,
//! evaluated against the original message (not the SELECT output, so aliases are not visible);
//! `$$` stands for one `$`, as in `$$aws/things/...`.

use std::fmt;

use crate::ast::Expr;
use crate::error::{ParseError, Position};
use crate::eval::{Cx, Scope, eval};
use crate::json;
use crate::lexer::{Lexer, Tok};
use crate::message::{Env, Message};
use crate::parser::Parser;
use crate::value::Value;
use crate::version::SqlVersion;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A parsed template. `Display` writes it back (with `$` as `$$`), parsing to an equal template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    version: SqlVersion,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an expression that is not valid SQL is an error with its position in
    /// `text`.
    pub fn parse(text: &str, version: SqlVersion) -> Result<Template, ParseError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut offset = 0;
        let mut pos = Position::START;
        while let Some(c) = text[offset..].chars().next() {
            let next = text[offset + c.len_utf8()..].chars().next();
            match (c, next) {
                ('$', Some('$')) => {
                    literal.push('$');
                    offset += 2;
                    pos.column += 2;
                }
                ('$', Some('{')) => {
                    let start = pos;
                    pos.column += 2;
                    let lexer = Lexer::at(text, offset + 2, pos);
                    let mut parser = Parser::new(lexer, version.is_v2())?;
                    let expr = parser.expr()?;
                    let (tok, lexer) = parser.current();
                    if tok.tok != Tok::RBrace {
                        return Err(ParseError::new(
                            format!(
                                "Expected '}}' to close the '${{' at {start} but found {}",
                                tok.tok.describe()
                            ),
                            tok.pos,
                        ));
                    }
                    (offset, pos) = lexer.cursor();
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Expr(expr));
                }
                _ => {
                    literal.push(c);
                    offset += c.len_utf8();
                    if c == '\n' {
                        pos.line += 1;
                        pos.column = 1;
                    } else {
                        pos.column += 1;
                    }
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { version, parts })
    }

    /// The text with every `${expr}` replaced: strings as they are, Undefined as nothing, other
    /// values as JSON text.
    pub fn render(&self, msg: &Message<'_>, env: &mut dyn Env) -> String {
        let mut cx = Cx::new(msg, env, self.version);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => match eval(e, &mut cx, Scope::Message) {
                    Value::String(s) => out.push_str(&s),
                    v => json::write(&v, &mut out),
                },
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(&t.replace('$', "$$"))?,
                Part::Expr(e) => write!(f, "${{{e}}}")?,
            }
        }
        Ok(())
    }
}

/// Parses and renders `template` in one step, with SQL version 2016-03-23. A rule's actions
/// should parse their templates once, with the rule's version ([`Template::parse`]).
pub fn render_template(
    template: &str,
    msg: &Message<'_>,
    env: &mut dyn Env,
) -> Result<String, ParseError> {
    Ok(Template::parse(template, SqlVersion::default())?.render(msg, env))
}
