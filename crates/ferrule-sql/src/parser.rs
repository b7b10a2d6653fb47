//! Tokens to a typed tree by recursive descent. Precedence, loosest first: `OR`; `AND`; `NOT`;
//! comparisons (`= <> != < <= > >= IN CONTAINS IS`); `+ -`; `* / %`; unary `-`; `.field` and
//! `[index]`.
//!
//! Nesting is bounded ([`MAX_DEPTH`]) so that evaluating, printing and dropping a tree cannot
//! exhaust the stack, whatever the text.

use std::mem;

use crate::ast::{BinOp, CastType, Expr, IsKind, Item, Literal, Projection, Query, is_reserved};
use crate::error::ParseError;
use crate::functions::{Func, LookupError};
use crate::lexer::{Lexer, Tok, Token};
use crate::topic::check_filter;
use crate::value::whole_to_i64;

/// How deep expressions may nest (parentheses, chained operators, field steps).
pub(crate) const MAX_DEPTH: usize = 64;

type Result<T> = std::result::Result<T, ParseError>;

pub(crate) struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Token,
    v2: bool,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(mut lexer: Lexer<'a>, v2: bool) -> Result<Parser<'a>> {
        let tok = lexer.next_token()?;
        Ok(Parser {
            lexer,
            tok,
            v2,
            depth: 0,
        })
    }

    /// The current (not yet consumed) token, and the lexer positioned just after it.
    pub(crate) fn current(&self) -> (&Token, &Lexer<'a>) {
        (&self.tok, &self.lexer)
    }

    fn bump(&mut self) -> Result<Token> {
        let next = self.lexer.next_token()?;
        Ok(mem::replace(&mut self.tok, next))
    }

    fn peek2(&self) -> Result<Tok> {
        self.lexer.clone().next_token().map(|t| t.tok)
    }

    fn expected(&self, what: &str) -> ParseError {
        ParseError::new(
            format!("Expected {what} but found {}", self.tok.tok.describe()),
            self.tok.pos,
        )
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token> {
        if self.tok.tok == tok {
            self.bump()
        } else {
            Err(self.expected(what))
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<Token> {
        if self.tok.tok.is_kw(kw) {
            self.bump()
        } else {
            Err(self.expected(kw))
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                format!("Expression is nested more than {MAX_DEPTH} levels deep"),
                self.tok.pos,
            ));
        }
        Ok(())
    }

    fn need_v2(&self, what: &str) -> Result<()> {
        if self.v2 {
            Ok(())
        } else {
            Err(ParseError::new(
                format!("{what} require SQL version 2016-03-23"),
                self.tok.pos,
            ))
        }
    }

    /// `SELECT ... FROM 'filter' [WHERE ...]`, the whole input.
    pub(crate) fn statement(&mut self) -> Result<Query<String>> {
        self.expect_kw("SELECT")?;
        let projection = self.projection()?;
        self.expect_kw("FROM")?;
        let from = match &self.tok.tok {
            Tok::Str {
                value,
                double: false,
            } => value.clone(),
            Tok::Str { double: true, .. } => {
                return Err(ParseError::new(
                    "The topic filter after FROM must be in single quotes, not double quotes",
                    self.tok.pos,
                ));
            }
            _ => return Err(self.expected("a topic filter in single quotes")),
        };
        check_filter(&from).map_err(|m| ParseError::new(m, self.tok.pos))?;
        self.bump()?;
        let condition = if self.tok.tok.is_kw("WHERE") {
            self.bump()?;
            Some(self.expr()?)
        } else {
            None
        };
        if self.tok.tok != Tok::Eof {
            return Err(self.expected(if condition.is_some() {
                "end of statement"
            } else {
                "WHERE or end of statement"
            }));
        }
        Ok(Query {
            projection,
            from,
            condition,
        })
    }

    /// Whether `VALUE` right after `SELECT` is the keyword rather than a field named `value`:
    /// it is a field when what follows could only continue a field expression or end the item.
    fn value_is_keyword(&self) -> Result<bool> {
        let next = self.peek2()?;
        let continues = matches!(
            next,
            Tok::Comma
                | Tok::Dot
                | Tok::Plus
                | Tok::Minus
                | Tok::Star
                | Tok::Slash
                | Tok::Percent
                | Tok::Eq
                | Tok::Ne
                | Tok::Lt
                | Tok::Le
                | Tok::Gt
                | Tok::Ge
                | Tok::RParen
                | Tok::Eof
        ) || ["FROM", "AS", "AND", "OR", "IS", "IN", "CONTAINS"]
            .iter()
            .any(|kw| next.is_kw(kw));
        Ok(!continues)
    }

    fn projection(&mut self) -> Result<Projection> {
        if self.tok.tok.is_kw("VALUE") && self.value_is_keyword()? {
            self.bump()?;
            let e = self.expr()?;
            if self.tok.tok.is_kw("AS") {
                return Err(ParseError::new(
                    "SELECT VALUE takes an expression without AS",
                    self.tok.pos,
                ));
            }
            if self.tok.tok == Tok::Comma {
                return Err(ParseError::new(
                    "SELECT VALUE takes exactly one expression",
                    self.tok.pos,
                ));
            }
            return Ok(Projection::Value(e));
        }
        let mut items = vec![self.item()?];
        while self.tok.tok == Tok::Comma {
            self.bump()?;
            items.push(self.item()?);
        }
        Ok(Projection::Items(items))
    }

    fn item(&mut self) -> Result<Item> {
        if self.tok.tok == Tok::Star {
            let next = self.peek2()?;
            if matches!(next, Tok::Comma | Tok::Eof) || next.is_kw("FROM") {
                self.bump()?;
                return Ok(Item::Wildcard);
            }
        }
        let expr = self.expr()?;
        let alias = if self.tok.tok.is_kw("AS") {
            self.bump()?;
            Some(self.alias()?)
        } else {
            None
        };
        Ok(Item::Expr { expr, alias })
    }

    fn alias(&mut self) -> Result<Vec<String>> {
        if let Tok::Str { value, .. } = &self.tok.tok {
            let name = value.clone();
            self.bump()?;
            return Ok(vec![name]);
        }
        let mut path = Vec::new();
        loop {
            match &self.tok.tok {
                Tok::Ident(name) => path.push(name.clone()),
                _ => return Err(self.expected("a name after AS")),
            }
            self.bump()?;
            if self.tok.tok != Tok::Dot {
                return Ok(path);
            }
            self.bump()?;
        }
    }

    pub(crate) fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let e = self.or()?;
        self.depth -= 1;
        Ok(e)
    }

    /// One left-associative level: `next (op next)*`.
    fn level(
        &mut self,
        next: fn(&mut Self) -> Result<Expr>,
        op: fn(&Tok) -> Option<BinOp>,
    ) -> Result<Expr> {
        let mut l = next(self)?;
        let base = self.depth;
        while let Some(op) = op(&self.tok.tok) {
            self.bump()?;
            self.enter()?;
            let r = next(self)?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
        self.depth = base;
        Ok(l)
    }

    fn or(&mut self) -> Result<Expr> {
        self.level(Self::and, |t| t.is_kw("OR").then_some(BinOp::Or))
    }

    fn and(&mut self) -> Result<Expr> {
        self.level(Self::not, |t| t.is_kw("AND").then_some(BinOp::And))
    }

    fn not(&mut self) -> Result<Expr> {
        if self.tok.tok.is_kw("NOT") {
            self.bump()?;
            self.enter()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let mut l = self.additive()?;
        let base = self.depth;
        loop {
            let op = match &self.tok.tok {
                Tok::Eq => BinOp::Eq,
                Tok::Ne => BinOp::Ne,
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                t if t.is_kw("IN") => BinOp::In,
                t if t.is_kw("CONTAINS") => BinOp::Contains,
                t if t.is_kw("IS") => {
                    self.bump()?;
                    self.enter()?;
                    let negated = self.tok.tok.is_kw("NOT");
                    if negated {
                        self.bump()?;
                    }
                    let kind = if self.tok.tok.is_kw("NULL") {
                        IsKind::Null
                    } else if self.tok.tok.is_kw("UNDEFINED") {
                        IsKind::Undefined
                    } else {
                        return Err(self.expected("NULL or UNDEFINED after IS"));
                    };
                    self.bump()?;
                    l = Expr::Is {
                        expr: Box::new(l),
                        negated,
                        kind,
                    };
                    continue;
                }
                _ => break,
            };
            self.bump()?;
            self.enter()?;
            let r = self.additive()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
        self.depth = base;
        Ok(l)
    }

    fn additive(&mut self) -> Result<Expr> {
        self.level(Self::multiplicative, |t| match t {
            Tok::Plus => Some(BinOp::Add),
            Tok::Minus => Some(BinOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        self.level(Self::unary, |t| match t {
            Tok::Star => Some(BinOp::Mul),
            Tok::Slash => Some(BinOp::Div),
            Tok::Percent => Some(BinOp::Mod),
            _ => None,
        })
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.tok.tok != Tok::Minus {
            return self.postfix();
        }
        self.bump()?;
        self.enter()?;
        let e = self.unary()?;
        self.depth -= 1;
        // A minus sign on a number is part of the literal.
        Ok(match e {
            Expr::Lit(Literal::Int(i)) if i != i64::MIN => Expr::Lit(Literal::Int(-i)),
            Expr::Lit(Literal::Dec(d)) => Expr::Lit(Literal::Dec(-d)),
            e => Expr::Neg(Box::new(e)),
        })
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        let base = self.depth;
        loop {
            match self.tok.tok {
                Tok::Dot => {
                    self.bump()?;
                    let Tok::Ident(name) = &self.tok.tok else {
                        return Err(self.expected(
                            "a field name after '.' (use get() for names that are not plain words)",
                        ));
                    };
                    let name = name.clone();
                    self.bump()?;
                    self.enter()?;
                    e = Expr::Field(Box::new(e), name);
                }
                Tok::LBracket => {
                    self.bump()?;
                    let index = self.expr()?;
                    self.expect(Tok::RBracket, "']'")?;
                    self.enter()?;
                    e = Expr::Index(Box::new(e), Box::new(index));
                }
                _ => break,
            }
        }
        self.depth = base;
        Ok(e)
    }

    fn number(&self, d: f64) -> Literal {
        match whole_to_i64(d) {
            Some(i) if self.v2 => Literal::Int(i),
            _ => Literal::Dec(d),
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let pos = self.tok.pos;
        match &self.tok.tok {
            Tok::Int(i) => {
                let i = *i;
                self.bump()?;
                Ok(Expr::Lit(Literal::Int(i)))
            }
            Tok::Dec(d) => {
                let lit = self.number(*d);
                self.bump()?;
                Ok(Expr::Lit(lit))
            }
            Tok::Str { value, .. } => {
                let s = value.clone();
                self.bump()?;
                Ok(Expr::Lit(Literal::Str(s)))
            }
            Tok::Star => {
                self.bump()?;
                Ok(Expr::Payload)
            }
            Tok::LBracket => {
                self.need_v2("Array literals")?;
                self.bump()?;
                let items = self.list(Tok::RBracket, "',' or ']'", Self::expr)?;
                Ok(Expr::Array(items))
            }
            Tok::LBrace => {
                self.need_v2("Object literals")?;
                self.bump()?;
                let entries = self.list(Tok::RBrace, "',' or '}'", Self::entry)?;
                Ok(Expr::Object(entries))
            }
            Tok::LParen => {
                self.bump()?;
                let e = if self.tok.tok.is_kw("SELECT") {
                    self.need_v2("Nested queries")?;
                    self.bump()?;
                    let projection = self.projection()?;
                    self.expect_kw("FROM")?;
                    let from = self.expr()?;
                    let condition = if self.tok.tok.is_kw("WHERE") {
                        self.bump()?;
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    Expr::Subquery(Box::new(Query {
                        projection,
                        from,
                        condition,
                    }))
                } else {
                    self.expr()?
                };
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::Ident(word) => {
                let word = word.clone();
                if word.eq_ignore_ascii_case("TRUE") || word.eq_ignore_ascii_case("FALSE") {
                    self.bump()?;
                    return Ok(Expr::Lit(Literal::Bool(word.eq_ignore_ascii_case("TRUE"))));
                }
                if word.eq_ignore_ascii_case("NULL") {
                    self.bump()?;
                    return Ok(Expr::Lit(Literal::Null));
                }
                if word.eq_ignore_ascii_case("CASE") {
                    return self.case();
                }
                if is_reserved(&word) {
                    return Err(self.expected("an expression"));
                }
                if self.peek2()? != Tok::LParen {
                    self.bump()?;
                    return Ok(Expr::Ident(word));
                }
                if word.eq_ignore_ascii_case("cast") {
                    return self.cast();
                }
                let func = Func::lookup(&word, self.v2).map_err(|e| {
                    let m = match e {
                        LookupError::Unknown => format!("Unknown function '{word}'"),
                        LookupError::Unsupported => {
                            format!("Function '{word}' is not supported by this gateway")
                        }
                        LookupError::NeedsV2 => {
                            format!("Function '{word}' requires SQL version 2016-03-23")
                        }
                    };
                    ParseError::new(m, pos)
                })?;
                self.bump()?;
                self.bump()?; // '('
                let args = self.list(Tok::RParen, "',' or ')'", Self::expr)?;
                Ok(Expr::Call(func, args))
            }
            _ => Err(self.expected("an expression")),
        }
    }

    /// Comma-separated items up to `close` (consumed); may be empty.
    fn list<T>(
        &mut self,
        close: Tok,
        what: &str,
        item: fn(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        if self.tok.tok == close {
            self.bump()?;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.tok.tok == Tok::Comma {
                self.bump()?;
            } else if self.tok.tok == close {
                self.bump()?;
                return Ok(out);
            } else {
                return Err(self.expected(what));
            }
        }
    }

    /// `'key': expr` (or `key: expr`) in an object literal.
    fn entry(&mut self) -> Result<(String, Expr)> {
        let key = match &self.tok.tok {
            Tok::Str { value, .. } | Tok::Ident(value) => value.clone(),
            _ => return Err(self.expected("a key in an object literal")),
        };
        self.bump()?;
        self.expect(Tok::Colon, "':'")?;
        Ok((key, self.expr()?))
    }

    fn cast(&mut self) -> Result<Expr> {
        self.bump()?; // cast
        self.bump()?; // '('
        let e = self.expr()?;
        self.expect_kw("AS")?;
        let pos = self.tok.pos;
        let Tok::Ident(name) = &self.tok.tok else {
            return Err(self.expected("a type after AS"));
        };
        let t = match CastType::lookup(name, self.v2) {
            Some(Ok(t)) => t,
            Some(Err(version)) => {
                return Err(ParseError::new(
                    format!("cast to {name} requires SQL version {version}"),
                    pos,
                ));
            }
            None => {
                return Err(ParseError::new(
                    format!(
                        "Unknown type '{name}' in cast; expected String, Int, Decimal, Double or Boolean"
                    ),
                    pos,
                ));
            }
        };
        self.bump()?;
        self.expect(Tok::RParen, "')'")?;
        Ok(Expr::Cast(Box::new(e), t))
    }

    fn case(&mut self) -> Result<Expr> {
        self.bump()?; // CASE
        let operand = if self.tok.tok.is_kw("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut arms = Vec::new();
        while self.tok.tok.is_kw("WHEN") {
            self.bump()?;
            let when = self.expr()?;
            self.expect_kw("THEN")?;
            arms.push((when, self.expr()?));
        }
        if arms.is_empty() {
            return Err(self.expected("WHEN"));
        }
        let otherwise = if self.tok.tok.is_kw("ELSE") {
            self.bump()?;
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_kw("END")?;
        Ok(Expr::Case {
            operand,
            arms,
            otherwise,
        })
    }
}
