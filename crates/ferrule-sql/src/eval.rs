//! Evaluating expressions and queries against one message, with AWS's operator tables: what each
//! operator gives for each pair of operand types, Undefined wherever the tables say so.

use std::cell::{Cell, OnceCell};
use std::cmp::Ordering;

use crate::ast::{BinOp, CastType, Expr, IsKind, Item, Literal, Projection, Query};
use crate::base64;
use crate::functions::{self, Func};
use crate::json;
use crate::message::{Env, Message};
use crate::value::{
    Num, ObjectBuilder, Value, decimal, integral, parse_decimal_string, sql_eq, to_bool, to_num,
    to_string,
};
use crate::version::SqlVersion;

static UNDEFINED: Value = Value::Undefined;

/// How much one evaluation may produce, in [`Value::weight`] units (about bytes). Values come
/// from the device, and a few operations multiply them (`replace` with an empty pattern,
/// `transform`, literals that repeat `*`); past this the evaluation stops with
/// [`crate::EvalError::LimitExceeded`] instead of exhausting memory.
pub(crate) const MAX_WORK: usize = 32 << 20;

/// Everything an expression can see besides the payload fields.
pub(crate) struct Cx<'m, 'e> {
    pub(crate) msg: &'m Message<'m>,
    pub(crate) env: &'e mut dyn Env,
    pub(crate) version: SqlVersion,
    /// The payload as JSON, parsed on first use; `None` when it is not JSON.
    payload: OnceCell<Option<Value>>,
    /// What is left of [`MAX_WORK`]; when it runs out, every expression is Undefined.
    budget: Cell<usize>,
    exhausted: Cell<bool>,
}

impl<'m, 'e> Cx<'m, 'e> {
    pub(crate) fn new(msg: &'m Message<'m>, env: &'e mut dyn Env, version: SqlVersion) -> Self {
        Cx {
            msg,
            env,
            version,
            payload: OnceCell::new(),
            budget: Cell::new(MAX_WORK),
            exhausted: Cell::new(false),
        }
    }

    /// Takes `weight` from the budget; false (from now on) once it is used up.
    pub(crate) fn charge(&self, weight: usize) -> bool {
        match self.budget.get().checked_sub(weight) {
            Some(left) if !self.exhausted.get() => {
                self.budget.set(left);
                true
            }
            _ => {
                self.exhausted.set(true);
                false
            }
        }
    }

    /// Whether the budget ran out (the evaluation's result is not to be used).
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    pub(crate) fn v2(&self) -> bool {
        self.version.is_v2()
    }

    fn parsed(&self) -> &Option<Value> {
        let v2 = self.v2();
        self.payload
            .get_or_init(|| json::parse(self.msg.payload, v2))
    }

    /// Whether the payload is JSON (otherwise it is binary).
    pub(crate) fn payload_is_json(&self) -> bool {
        self.parsed().is_some()
    }

    /// The payload as a value; Undefined for a binary payload, whose fields do not exist.
    fn payload(&self) -> &Value {
        self.parsed().as_ref().unwrap_or(&UNDEFINED)
    }
}

/// What names resolve against: the message payload, or the current element of a nested query.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'r> {
    Message,
    Element(&'r Value),
}

fn root<'a>(cx: &'a Cx<'_, '_>, scope: Scope<'a>) -> &'a Value {
    match scope {
        Scope::Message => cx.payload(),
        Scope::Element(v) => v,
    }
}

/// A WHERE clause or searched CASE condition holds only when it is true (or the string "true");
/// Undefined, Null and everything else do not.
pub(crate) fn truthy(v: &Value) -> bool {
    to_bool(v) == Some(true)
}

/// The result of following a field path without copying what it passes through.
enum Path<'v> {
    /// Not a plain path over stored values: evaluate it.
    Computed,
    Found(&'v Value),
    Missing,
}

fn path<'v>(e: &Expr, root: &'v Value) -> Path<'v> {
    match e {
        Expr::Payload => Path::Found(root),
        Expr::Ident(name) => found(field_ref(root, name)),
        Expr::Field(base, name) => match path(base, root) {
            Path::Found(v) => found(field_ref(v, name)),
            other => other,
        },
        Expr::Index(base, index) => {
            if !matches!(**index, Expr::Lit(Literal::Int(_) | Literal::Str(_))) {
                return Path::Computed;
            }
            match path(base, root) {
                Path::Found(v) => match (v, &**index) {
                    (Value::Array(items), Expr::Lit(Literal::Int(i))) => {
                        found(usize::try_from(*i).ok().and_then(|i| items.get(i)))
                    }
                    (Value::Object(_), Expr::Lit(Literal::Str(k))) => found(field_ref(v, k)),
                    (Value::Object(_), _) => Path::Missing,
                    // Conversions and characters of strings: `get` decides.
                    _ => Path::Computed,
                },
                other => other,
            }
        }
        _ => Path::Computed,
    }
}

fn found(v: Option<&Value>) -> Path<'_> {
    v.map_or(Path::Missing, Path::Found)
}

fn field_ref<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

pub(crate) fn eval(e: &Expr, cx: &mut Cx<'_, '_>, scope: Scope<'_>) -> Value {
    if cx.exhausted() {
        return Value::Undefined;
    }
    let v = eval_node(e, cx, scope);
    if cx.charge(v.weight()) {
        v
    } else {
        Value::Undefined
    }
}

fn eval_node(e: &Expr, cx: &mut Cx<'_, '_>, scope: Scope<'_>) -> Value {
    match path(e, root(cx, scope)) {
        Path::Found(v) => return v.clone(),
        Path::Missing => return Value::Undefined,
        Path::Computed => {}
    }
    let v2 = cx.v2();
    match e {
        Expr::Lit(l) => match l {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Dec(d) => Value::Decimal(*d),
            Literal::Str(s) => Value::String(s.clone()),
        },
        Expr::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| eval(i, cx, scope))
                .filter(|v| !v.is_undefined())
                .collect(),
        ),
        Expr::Object(entries) => {
            let mut b = ObjectBuilder::default();
            for (k, v) in entries {
                let v = eval(v, cx, scope);
                if !v.is_undefined() {
                    b.insert(k.clone(), v);
                }
            }
            Value::Object(b.finish())
        }
        // Paths resolve above; these are paths over computed values.
        Expr::Payload | Expr::Ident(_) => Value::Undefined,
        Expr::Field(base, name) => eval(base, cx, scope).field(name),
        Expr::Index(base, index) => {
            let b = eval(base, cx, scope);
            functions::get(&b, &eval(index, cx, scope))
        }
        Expr::Call(Func::Encode, args)
            if matches!(scope, Scope::Message) && args.first() == Some(&Expr::Payload) =>
        {
            // `encode(*, ..)` encodes the payload's bytes, JSON or not.
            let scheme = args.get(1).map(|s| eval(s, cx, scope));
            match (args.len(), scheme) {
                (2, Some(Value::String(s))) if s == "base64" => {
                    Value::String(base64::encode(cx.msg.payload))
                }
                _ => Value::Undefined,
            }
        }
        Expr::Call(f, args) => {
            let values = args.iter().map(|a| eval(a, cx, scope)).collect();
            functions::call(*f, values, cx)
        }
        Expr::Cast(e, t) => cast(&eval(e, cx, scope), *t, v2),
        Expr::Neg(e) => match eval(e, cx, scope) {
            Value::Int(i) => i
                .checked_neg()
                .map_or_else(|| decimal(-(i as f64), v2), Value::Int),
            Value::Decimal(d) => Value::Decimal(-d),
            Value::String(s) => {
                parse_decimal_string(&s).map_or(Value::Undefined, |d| decimal(-d, v2))
            }
            _ => Value::Undefined,
        },
        Expr::Not(e) => to_bool(&eval(e, cx, scope)).map_or(Value::Undefined, |b| Value::Bool(!b)),
        Expr::Binary(op, l, r) => {
            let l = eval(l, cx, scope);
            let r = eval(r, cx, scope);
            binary(*op, &l, &r, v2)
        }
        Expr::Is {
            expr,
            negated,
            kind,
        } => {
            let v = eval(expr, cx, scope);
            let is = match kind {
                IsKind::Null => matches!(v, Value::Null),
                IsKind::Undefined => v.is_undefined(),
            };
            Value::Bool(is != *negated)
        }
        Expr::Case {
            operand,
            arms,
            otherwise,
        } => {
            let subject = match operand {
                Some(op) => match eval(op, cx, scope) {
                    Value::Undefined => return Value::Undefined,
                    v => Some(v),
                },
                None => None,
            };
            for (when, then) in arms {
                let w = eval(when, cx, scope);
                let hit = match &subject {
                    Some(s) => sql_eq(s, &w) == Some(true),
                    None => truthy(&w),
                };
                if hit {
                    return eval(then, cx, scope);
                }
            }
            otherwise
                .as_ref()
                .map_or(Value::Undefined, |e| eval(e, cx, scope))
        }
        Expr::Subquery(q) => subquery(q, cx, scope),
    }
}

fn binary(op: BinOp, l: &Value, r: &Value, v2: bool) -> Value {
    match op {
        BinOp::And | BinOp::Or => match (to_bool(l), to_bool(r)) {
            (Some(a), Some(b)) => Value::Bool(if op == BinOp::And { a && b } else { a || b }),
            _ => Value::Undefined,
        },
        BinOp::Eq => sql_eq(l, r).map_or(Value::Undefined, Value::Bool),
        BinOp::Ne => sql_eq(l, r).map_or(Value::Undefined, |b| Value::Bool(!b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (to_num(l), to_num(r)) {
                (Some(Num::Int(a)), Some(Num::Int(b))) => Some(a.cmp(&b)),
                (Some(a), Some(b)) => a.as_f64().partial_cmp(&b.as_f64()),
                _ => None,
            };
            ord.map_or(Value::Undefined, |o| {
                Value::Bool(match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Le => o != Ordering::Greater,
                    BinOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                })
            })
        }
        BinOp::In => functions::is_in(l, r),
        BinOp::Contains => functions::contains(l, r),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arith(op, l, r, v2),
    }
}

/// `+ - * / %`. `+` with a String on either side concatenates string forms; otherwise Int with
/// Int stays Int (overflow becomes Decimal), any Decimal or numeric String makes a Decimal, and
/// dividing by zero is Undefined.
pub(crate) fn arith(op: BinOp, l: &Value, r: &Value, v2: bool) -> Value {
    if op == BinOp::Add && (matches!(l, Value::String(_)) || matches!(r, Value::String(_))) {
        return match (to_string(l), to_string(r)) {
            (Some(a), Some(b)) => Value::String(a + &b),
            _ => Value::Undefined,
        };
    }
    let (a, b) = match (l, r) {
        // `+` does not convert strings to numbers (they concatenate, above).
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => {
            (to_num(l), to_num(r))
        }
        _ if op == BinOp::Add => return Value::Undefined,
        _ => (to_num(l), to_num(r)),
    };
    let (Some(a), Some(b)) = (a, b) else {
        return Value::Undefined;
    };
    if let (Num::Int(x), Num::Int(y)) = (a, b) {
        let exact = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            _ if y == 0 => return Value::Undefined,
            BinOp::Div => x.checked_div(y),
            _ => x.checked_rem(y),
        };
        if let Some(i) = exact {
            return Value::Int(i);
        }
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    decimal(
        match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            _ if y == 0.0 => return Value::Undefined,
            BinOp::Div => x / y,
            _ => x % y,
        },
        v2,
    )
}

/// `cast(v AS type)`: the standard conversions plus numbers to and from Booleans.
fn cast(v: &Value, t: CastType, v2: bool) -> Value {
    match t {
        CastType::String => to_string(v).map_or(Value::Undefined, Value::String),
        CastType::Int => match v {
            Value::Int(i) => Value::Int(*i),
            Value::Decimal(d) => integral(d.trunc()),
            Value::Bool(b) => Value::Int(i64::from(*b)),
            Value::String(s) => {
                parse_decimal_string(s).map_or(Value::Undefined, |d| integral(d.trunc()))
            }
            _ => Value::Undefined,
        },
        CastType::Decimal | CastType::Double => match v {
            Value::Int(i) => decimal(*i as f64, v2),
            Value::Decimal(d) => decimal(*d, v2),
            Value::Bool(b) => decimal(if *b { 1.0 } else { 0.0 }, v2),
            Value::String(s) => {
                parse_decimal_string(s).map_or(Value::Undefined, |d| decimal(d, v2))
            }
            _ => Value::Undefined,
        },
        CastType::Boolean => match v {
            Value::Int(i) => Value::Bool(*i != 0),
            Value::Decimal(d) => Value::Bool(*d != 0.0),
            other => to_bool(other).map_or(Value::Undefined, Value::Bool),
        },
    }
}

/// A nested query: over each item of an array (giving an array), or over one object (giving
/// one result). Anything else is Undefined.
fn subquery(q: &Query<Expr>, cx: &mut Cx<'_, '_>, scope: Scope<'_>) -> Value {
    match eval(&q.from, cx, scope) {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| run(q, item, cx))
                .filter(|v| !v.is_undefined())
                .collect(),
        ),
        obj @ Value::Object(_) => run(q, &obj, cx).unwrap_or(Value::Undefined),
        _ => Value::Undefined,
    }
}

fn run(q: &Query<Expr>, element: &Value, cx: &mut Cx<'_, '_>) -> Option<Value> {
    let scope = Scope::Element(element);
    if let Some(c) = &q.condition
        && !truthy(&eval(c, cx, scope))
    {
        return None;
    }
    Some(project(&q.projection, cx, scope))
}

/// The value a projection produces (an object for a list of items).
pub(crate) fn project(p: &Projection, cx: &mut Cx<'_, '_>, scope: Scope<'_>) -> Value {
    match p {
        Projection::Value(e) => eval(e, cx, scope),
        Projection::Items(items) => {
            let mut out = ObjectBuilder::default();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Item::Wildcard => {
                        let root = root(cx, scope);
                        if !cx.charge(root.weight()) {
                            break;
                        }
                        if let Value::Object(entries) = root {
                            for (k, v) in entries {
                                out.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    Item::Expr { expr, alias } => {
                        let v = eval(expr, cx, scope);
                        if v.is_undefined() {
                            continue;
                        }
                        match alias {
                            Some(path) => insert_path(&mut out, path, v),
                            None => out.insert(default_key(expr, i), v),
                        }
                    }
                }
            }
            Value::Object(out.finish())
        }
    }
}

/// The key of an item without `AS`: a field's own name (`a.b` gives `b`), otherwise `_<n>` for
/// the n-th item.
fn default_key(e: &Expr, index: usize) -> String {
    match e {
        Expr::Ident(name) | Expr::Field(_, name) => name.clone(),
        _ => format!("_{}", index + 1),
    }
}

/// Sets `path` (an alias `a.b.c`) in `out`, making objects on the way.
fn insert_path(out: &mut ObjectBuilder, path: &[String], v: Value) {
    match path {
        [] => {}
        [key] => out.insert(key.clone(), v),
        [key, rest @ ..] => {
            let slot = out.entry(key.clone());
            let entries = match std::mem::replace(slot, Value::Null) {
                Value::Object(entries) => entries,
                _ => Vec::new(),
            };
            let mut inner = ObjectBuilder::from_entries(entries);
            insert_path(&mut inner, rest, v);
            *slot = Value::Object(inner.finish());
        }
    }
}
