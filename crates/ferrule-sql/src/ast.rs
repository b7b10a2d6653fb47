//! The typed form of a statement, and its canonical text: `Display` writes SQL that parses back
//! to the same tree, with keywords in upper case and parentheses only where precedence needs
//! them (so the text never nests deeper than the text it was parsed from).

use std::fmt::{self, Display, Formatter};

use crate::functions::Func;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "OR",
            BinOp::And => "AND",
            BinOp::Eq => "=",
            BinOp::Ne => "<>",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "IN",
            BinOp::Contains => "CONTAINS",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

/// `IS [NOT] NULL` or `IS [NOT] UNDEFINED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsKind {
    Null,
    Undefined,
}

/// The target of `cast(x AS type)`; the synonyms AWS accepts map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CastType {
    String,
    Int,
    /// `Double`: Decimal with double precision (every version).
    Double,
    /// `Decimal` (2016-03-23).
    Decimal,
    /// `Bool`/`Boolean` (2016-03-23).
    Boolean,
}

impl CastType {
    /// Looks up a type keyword; `Err` names the version the keyword needs.
    pub(crate) fn lookup(name: &str, v2: bool) -> Option<Result<CastType, &'static str>> {
        let t = match name.to_ascii_lowercase().as_str() {
            "string" | "nvarchar" | "text" | "ntext" | "varchar" => CastType::String,
            "int" | "integer" => CastType::Int,
            "double" => CastType::Double,
            "decimal" => CastType::Decimal,
            "bool" | "boolean" => CastType::Boolean,
            _ => return None,
        };
        let needs_v2 = matches!(t, CastType::Decimal | CastType::Boolean);
        Some(if needs_v2 && !v2 {
            Err("2016-03-23")
        } else {
            Ok(t)
        })
    }

    fn name(self) -> &'static str {
        match self {
            CastType::String => "String",
            CastType::Int => "Int",
            CastType::Double => "Double",
            CastType::Decimal => "Decimal",
            CastType::Boolean => "Boolean",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Literal),
    Array(Vec<Expr>),
    Object(Vec<(String, Expr)>),
    /// `*` used as a value: the whole payload (or, in a nested query, the current element).
    Payload,
    Ident(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    Cast(Box<Expr>, CastType),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Is {
        expr: Box<Expr>,
        negated: bool,
        kind: IsKind,
    },
    Case {
        operand: Option<Box<Expr>>,
        arms: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Subquery(Box<Query<Expr>>),
}

/// What a query outputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Projection {
    /// `SELECT VALUE expr`.
    Value(Expr),
    /// `SELECT item, item, ...`.
    Items(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// `*` as an item: the payload's fields.
    Wildcard,
    /// `expr [AS alias]`; an alias `a.b` is the path `["a", "b"]` (a nested key).
    Expr {
        expr: Expr,
        alias: Option<Vec<String>>,
    },
}

/// `SELECT ... FROM from [WHERE condition]`: `from` is a topic filter at the top level and an
/// expression in a nested query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query<F> {
    pub(crate) projection: Projection,
    pub(crate) from: F,
    pub(crate) condition: Option<Expr>,
}

/// Words that cannot name a field. `VALUE`, `IS`, `IN`, `CONTAINS` and `UNDEFINED` are keywords
/// only where a name cannot stand, so payload fields with those names stay reachable.
pub(crate) const RESERVED: [&str; 14] = [
    "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END",
    "TRUE", "FALSE",
];

pub(crate) fn is_reserved(word: &str) -> bool {
    word.eq_ignore_ascii_case("NULL") || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_reserved(s)
}

/// A string literal in single quotes.
pub(crate) fn write_quoted(s: &str, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Dec(d) => f.write_str(&crate::json::format_decimal(*d)),
            Literal::Str(s) => write_quoted(s, f),
        }
    }
}

impl BinOp {
    /// Binding power, as in the parser: higher binds tighter.
    fn power(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::In
            | BinOp::Contains => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 6,
        }
    }
}

/// Binding power of unary minus, and of anything that needs no parentheses.
const NEG: u8 = 7;
const ATOM: u8 = 8;

impl Expr {
    /// How tightly the expression's text holds together (see [`BinOp::power`]).
    fn power(&self) -> u8 {
        match self {
            Expr::Binary(op, ..) => op.power(),
            Expr::Is { .. } => 4,
            Expr::Not(_) => 3,
            Expr::Neg(_) => NEG,
            _ => ATOM,
        }
    }

    /// Writes the expression, in parentheses if it binds less tightly than `min`.
    fn fmt_at(&self, min: u8, f: &mut Formatter<'_>) -> fmt::Result {
        if self.power() < min {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }

    /// Writes the expression as the base of `.x` or `[i]`.
    fn fmt_base(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let bare = match self {
            Expr::Lit(Literal::Int(i)) => *i >= 0,
            Expr::Lit(Literal::Dec(d)) => !d.is_sign_negative(),
            // `value[0]` right after SELECT would read as `SELECT VALUE [0]`.
            Expr::Ident(name) => !name.eq_ignore_ascii_case("VALUE"),
            e => e.power() == ATOM,
        };
        if bare {
            write!(f, "{self}")
        } else {
            write!(f, "({self})")
        }
    }
}

fn write_list<T: Display>(items: &[T], f: &mut Formatter<'_>) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Lit(l) => write!(f, "{l}"),
            Expr::Array(items) => {
                f.write_str("[")?;
                write_list(items, f)?;
                f.write_str("]")
            }
            Expr::Object(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(k, f)?;
                    write!(f, ": {v}")?;
                }
                f.write_str("}")
            }
            Expr::Payload => f.write_str("*"),
            Expr::Ident(name) => f.write_str(name),
            Expr::Field(base, name) => {
                base.fmt_base(f)?;
                write!(f, ".{name}")
            }
            Expr::Index(base, index) => {
                base.fmt_base(f)?;
                write!(f, "[{index}]")
            }
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                write_list(args, f)?;
                f.write_str(")")
            }
            Expr::Cast(e, t) => write!(f, "cast({e} AS {})", t.name()),
            Expr::Neg(e) => {
                f.write_str("-")?;
                e.fmt_at(NEG, f)
            }
            Expr::Not(e) => {
                f.write_str("NOT ")?;
                e.fmt_at(3, f)
            }
            Expr::Binary(op, l, r) => {
                // Left-associative: a right operand of the same power needs parentheses.
                l.fmt_at(op.power(), f)?;
                write!(f, " {} ", op.symbol())?;
                r.fmt_at(op.power() + 1, f)
            }
            Expr::Is {
                expr,
                negated,
                kind,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let what = match kind {
                    IsKind::Null => "NULL",
                    IsKind::Undefined => "UNDEFINED",
                };
                expr.fmt_at(4, f)?;
                write!(f, " IS {not}{what}")
            }
            Expr::Case {
                operand,
                arms,
                otherwise,
            } => {
                f.write_str("CASE")?;
                if let Some(op) = operand {
                    write!(f, " {op}")?;
                }
                for (when, then) in arms {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::Subquery(q) => write!(f, "({q})"),
        }
    }
}

impl Display for Item {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Item::Wildcard => f.write_str("*"),
            // A bare `*` item would read as the wildcard.
            Item::Expr {
                expr: Expr::Payload,
                alias: None,
            } => f.write_str("(*)"),
            Item::Expr { expr, alias } => {
                write!(f, "{expr}")?;
                match alias {
                    None => Ok(()),
                    Some(path) if path.iter().all(|s| is_plain_name(s)) => {
                        write!(f, " AS {}", path.join("."))
                    }
                    Some(path) => {
                        f.write_str(" AS ")?;
                        write_quoted(&path.join("."), f)
                    }
                }
            }
        }
    }
}

/// Whether `SELECT VALUE <text>` would read `value` as a field (see the parser's
/// `value_is_keyword`): the text starts with an operator or with `IN`, `IS` or `CONTAINS`.
fn value_reads_as_field(text: &str) -> bool {
    let word: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    text.starts_with(['-', '*'])
        || ["IN", "IS", "CONTAINS"]
            .iter()
            .any(|kw| word.eq_ignore_ascii_case(kw))
}

impl Display for Projection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Projection::Value(e) => {
                let text = e.to_string();
                if value_reads_as_field(&text) {
                    write!(f, "VALUE ({text})")
                } else {
                    write!(f, "VALUE {text}")
                }
            }
            Projection::Items(items) => write_list(items, f),
        }
    }
}

/// Writes the `FROM` operand.
pub(crate) trait FromClause {
    fn fmt_from(&self, f: &mut Formatter<'_>) -> fmt::Result;
}

impl FromClause for String {
    fn fmt_from(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_quoted(self, f)
    }
}

impl FromClause for Expr {
    fn fmt_from(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl<F: FromClause> Display for Query<F> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM ", self.projection)?;
        self.from.fmt_from(f)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        Ok(())
    }
}
