//! Tokens to a typed tree by recursive descent. Precedence, loosest first: `OR`; `AND`; `NOT`;
//! comparisons (`= <> != < <= > >= IN CONTAINS IS`); `+ -`; `* / %`; unary `-`; `.field` and
//! `[index]`.
//!
//! Nesting is bounded ([`MAX_DEPTH`]) so that evaluating, printing and dropping a tree cannot
//! exhaust the stack, whatever the text.

use std::mem;

use crate::ast::{BinOp, CastType, Expr, IsKind, Item, Literal, Projection, Query, is_reserved};
use crate::error::{ParseError, Position};
use crate::functions::{Func, LookupError};
use crate::lexer::{Lexer, Tok, Token};
use crate::topic::check_filter;
use crate::value::whole_to_i64;

/// How deep expressions may nest (parentheses, chained operators, field steps).
pub(crate) const MAX_DEPTH: usize = 48;

type Result<T> = std::result::Result<T, ParseError>;

/// Binding powers: higher binds tighter.
const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_CMP: u8 = 4;
const BP_ADD: u8 = 5;
const BP_MUL: u8 = 6;
const BP_NEG: u8 = 7;

enum Infix {
    Bin(BinOp),
    Is,
}

fn infix(t: &Tok) -> Option<(Infix, u8)> {
    let bin = |op, bp| Some((Infix::Bin(op), bp));
    match t {
        Tok::Eq => bin(BinOp::Eq, BP_CMP),
        Tok::Ne => bin(BinOp::Ne, BP_CMP),
        Tok::Lt => bin(BinOp::Lt, BP_CMP),
        Tok::Le => bin(BinOp::Le, BP_CMP),
        Tok::Gt => bin(BinOp::Gt, BP_CMP),
        Tok::Ge => bin(BinOp::Ge, BP_CMP),
        Tok::Plus => bin(BinOp::Add, BP_ADD),
        Tok::Minus => bin(BinOp::Sub, BP_ADD),
        Tok::Star => bin(BinOp::Mul, BP_MUL),
        Tok::Slash => bin(BinOp::Div, BP_MUL),
        Tok::Percent => bin(BinOp::Mod, BP_MUL),
        Tok::Ident(w) if w.eq_ignore_ascii_case("OR") => bin(BinOp::Or, BP_OR),
        Tok::Ident(w) if w.eq_ignore_ascii_case("AND") => bin(BinOp::And, BP_AND),
        Tok::Ident(w) if w.eq_ignore_ascii_case("IN") => bin(BinOp::In, BP_CMP),
        Tok::Ident(w) if w.eq_ignore_ascii_case("CONTAINS") => bin(BinOp::Contains, BP_CMP),
        Tok::Ident(w) if w.eq_ignore_ascii_case("IS") => Some((Infix::Is, BP_CMP)),
        _ => None,
    }
}

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

    #[cold]
    #[inline(never)]
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

    #[inline(never)]
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
        let e = self.expr_bp(0)?;
        self.depth -= 1;
        Ok(e)
    }

    /// Precedence climbing: parses operators that bind at least as tightly as `min`. One
    /// function for every level keeps the stack shallow per level of nesting.
    fn expr_bp(&mut self, min: u8) -> Result<Expr> {
        let mut lhs = if self.tok.tok.is_kw("NOT") {
            self.bump()?;
            self.enter()?;
            let e = self.expr_bp(BP_NOT)?;
            self.depth -= 1;
            Expr::Not(Box::new(e))
        } else if self.tok.tok == Tok::Minus {
            self.bump()?;
            self.enter()?;
            let e = self.expr_bp(BP_NEG)?;
            self.depth -= 1;
            // A minus sign on a number is part of the literal.
            match e {
                Expr::Lit(Literal::Int(i)) if i != i64::MIN => Expr::Lit(Literal::Int(-i)),
                Expr::Lit(Literal::Dec(d)) => Expr::Lit(Literal::Dec(-d)),
                e => Expr::Neg(Box::new(e)),
            }
        } else {
            self.postfix()?
        };
        let base = self.depth;
        while let Some((op, bp)) = infix(&self.tok.tok) {
            if bp < min {
                break;
            }
            self.bump()?;
            self.enter()?;
            lhs = match op {
                Infix::Is => self.is_tail(lhs)?,
                Infix::Bin(op) => {
                    // Left-associative: the right side takes only tighter operators.
                    let rhs = self.expr_bp(bp + 1)?;
                    Expr::Binary(op, Box::new(lhs), Box::new(rhs))
                }
            };
        }
        self.depth = base;
        Ok(lhs)
    }

    /// `[NOT] NULL` or `[NOT] UNDEFINED` after `IS`.
    fn is_tail(&mut self, lhs: Expr) -> Result<Expr> {
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
        Ok(Expr::Is {
            expr: Box::new(lhs),
            negated,
            kind,
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

    /// One operand. The heavy cases are separate functions so that the frames on the path of
    /// nesting stay small.
    fn primary(&mut self) -> Result<Expr> {
        let lit = match &self.tok.tok {
            Tok::Int(i) => Expr::Lit(Literal::Int(*i)),
            Tok::Dec(d) => Expr::Lit(self.number(*d)),
            Tok::Str { value, .. } => Expr::Lit(Literal::Str(value.clone())),
            Tok::Star => Expr::Payload,
            Tok::LBracket => return self.array(),
            Tok::LBrace => return self.object(),
            Tok::LParen => return self.parenthesized(),
            Tok::Ident(_) => return self.word(),
            _ => return Err(self.expected("an expression")),
        };
        self.bump()?;
        Ok(lit)
    }

    fn array(&mut self) -> Result<Expr> {
        self.need_v2("Array literals")?;
        self.bump()?;
        let items = self.list(Tok::RBracket, "',' or ']'", Self::expr)?;
        Ok(Expr::Array(items))
    }

    fn object(&mut self) -> Result<Expr> {
        self.need_v2("Object literals")?;
        self.bump()?;
        let entries = self.list(Tok::RBrace, "',' or '}'", Self::entry)?;
        Ok(Expr::Object(entries))
    }

    /// `( expr )` or a nested query `( SELECT ... FROM expr [WHERE ...] )`.
    fn parenthesized(&mut self) -> Result<Expr> {
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

    /// A word: a keyword literal, CASE, a function call, or a field name.
    fn word(&mut self) -> Result<Expr> {
        let Tok::Ident(word) = &self.tok.tok else {
            return Err(self.expected("an expression"));
        };
        let lit = if word.eq_ignore_ascii_case("TRUE") {
            Literal::Bool(true)
        } else if word.eq_ignore_ascii_case("FALSE") {
            Literal::Bool(false)
        } else if word.eq_ignore_ascii_case("NULL") {
            Literal::Null
        } else if word.eq_ignore_ascii_case("CASE") {
            return self.case();
        } else if is_reserved(word) {
            return Err(self.expected("an expression"));
        } else if self.peek2()? != Tok::LParen {
            let name = word.clone();
            self.bump()?;
            return Ok(Expr::Ident(name));
        } else if word.eq_ignore_ascii_case("cast") {
            return self.cast();
        } else {
            return self.call();
        };
        self.bump()?;
        Ok(Expr::Lit(lit))
    }

    fn call(&mut self) -> Result<Expr> {
        let Tok::Ident(word) = &self.tok.tok else {
            return Err(self.expected("a function name"));
        };
        let func = Func::lookup(word, self.v2).map_err(|e| lookup_error(e, word, self.tok.pos))?;
        self.bump()?;
        self.bump()?; // '('
        let args = self.list(Tok::RParen, "',' or ')'", Self::expr)?;
        Ok(Expr::Call(func, args))
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

#[cold]
#[inline(never)]
fn lookup_error(e: LookupError, word: &str, pos: Position) -> ParseError {
    let m = match e {
        LookupError::Unknown => format!("Unknown function '{word}'"),
        LookupError::Unsupported => format!("Function '{word}' is not supported by this gateway"),
        LookupError::NeedsV2 => format!("Function '{word}' requires SQL version 2016-03-23"),
    };
    ParseError::new(m, pos)
}
