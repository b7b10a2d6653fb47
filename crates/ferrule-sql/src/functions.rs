//! The built-in functions: names, the SQL version each needs, and what each returns for every
//! argument type (AWS's "Functions" page). Functions called with arguments they cannot use,
//! including the wrong number of them, return Undefined, as AWS documents; an unknown name is a
//! parse error.

use crate::base64;
use crate::eval::Cx;
use crate::json;
use crate::value::{
    Num, ObjectBuilder, Value, decimal, integral, parse_decimal_string, sql_eq, to_int_down,
    to_int_round, to_num, to_string,
};

macro_rules! functions {
    ($($variant:ident = $name:literal, $min:literal ..= $max:expr, $v2:literal;)*) => {
        /// A built-in function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Func {
            $($variant,)*
        }

        const TABLE: &[(Func, &str, usize, usize, bool)] = &[
            $((Func::$variant, $name, $min, $max, $v2),)*
        ];
    };
}

functions! {
    Abs = "abs", 1..=1, false;
    AccountId = "accountid", 0..=0, false;
    Acos = "acos", 1..=1, false;
    Asin = "asin", 1..=1, false;
    Atan = "atan", 1..=1, false;
    Atan2 = "atan2", 2..=2, false;
    BitAnd = "bitand", 2..=2, false;
    BitNot = "bitnot", 1..=1, false;
    BitOr = "bitor", 2..=2, false;
    BitXor = "bitxor", 2..=2, false;
    Ceil = "ceil", 1..=1, false;
    Chr = "chr", 1..=1, false;
    ClientId = "clientid", 0..=0, false;
    Concat = "concat", 0..=usize::MAX, false;
    Cos = "cos", 1..=1, false;
    Cosh = "cosh", 1..=1, false;
    Decode = "decode", 2..=2, true;
    Encode = "encode", 2..=2, true;
    EndsWith = "endswith", 2..=2, false;
    Exp = "exp", 1..=1, false;
    Floor = "floor", 1..=1, false;
    Get = "get", 2..=2, false;
    IndexOf = "indexof", 2..=2, true;
    IsNull = "isNull", 1..=1, false;
    IsUndefined = "isUndefined", 1..=1, true;
    Length = "length", 1..=1, true;
    Ln = "ln", 1..=1, false;
    Log = "log", 1..=1, false;
    Lower = "lower", 1..=1, false;
    Lpad = "lpad", 2..=2, false;
    Ltrim = "ltrim", 1..=1, false;
    Mod = "mod", 2..=2, false;
    Nanvl = "nanvl", 2..=2, false;
    NewUuid = "newuuid", 0..=0, false;
    NumBytes = "numbytes", 1..=1, true;
    Power = "power", 2..=2, false;
    Principal = "principal", 0..=0, false;
    Rand = "rand", 0..=0, false;
    Remainder = "remainder", 2..=2, false;
    Replace = "replace", 3..=3, false;
    Round = "round", 1..=1, false;
    Rpad = "rpad", 2..=2, false;
    Rtrim = "rtrim", 1..=1, false;
    Sign = "sign", 1..=1, false;
    Sin = "sin", 1..=1, false;
    Sinh = "sinh", 1..=1, false;
    SqlVersion = "sql_version", 0..=0, false;
    Sqrt = "sqrt", 1..=1, false;
    StartsWith = "startswith", 2..=2, false;
    Substring = "substring", 2..=3, false;
    Tan = "tan", 1..=1, false;
    Tanh = "tanh", 1..=1, false;
    Timestamp = "timestamp", 0..=0, false;
    Topic = "topic", 0..=1, false;
    TraceId = "traceid", 0..=0, false;
    Transform = "transform", 3..=3, true;
    Trim = "trim", 1..=1, false;
    Trunc = "trunc", 2..=2, false;
    Upper = "upper", 1..=1, false;
}

/// AWS functions that need services or libraries this crate does not have. Naming them gives a
/// clearer error than "unknown function".
const UNSUPPORTED: &[&str] = &[
    "aws_lambda",
    "get_dynamodb",
    "get_secret",
    "get_thing_shadow",
    "get_registry_data",
    "get_mqtt_property",
    "get_user_properties",
    "machinelearning_predict",
    "sourceip",
    "parse_time",
    "time_to_epoch",
    "regexp_matches",
    "regexp_replace",
    "regexp_substr",
    "md2",
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
];

/// Why a function name was refused.
pub(crate) enum LookupError {
    Unknown,
    Unsupported,
    NeedsV2,
}

impl Func {
    /// Finds a function by name (any case).
    pub(crate) fn lookup(name: &str, v2: bool) -> Result<Func, LookupError> {
        match TABLE.iter().find(|(_, n, ..)| n.eq_ignore_ascii_case(name)) {
            Some((_, _, _, _, true)) if !v2 => Err(LookupError::NeedsV2),
            Some((f, ..)) => Ok(*f),
            None if UNSUPPORTED.iter().any(|n| n.eq_ignore_ascii_case(name)) => {
                Err(LookupError::Unsupported)
            }
            None => Err(LookupError::Unknown),
        }
    }

    fn entry(self) -> (Func, &'static str, usize, usize, bool) {
        TABLE
            .iter()
            .copied()
            .find(|(f, ..)| *f == self)
            .unwrap_or((self, "", 0, 0, false))
    }

    pub(crate) fn name(self) -> &'static str {
        self.entry().1
    }

    fn arity_ok(self, n: usize) -> bool {
        let (_, _, min, max, _) = self.entry();
        (min..=max).contains(&n)
    }
}

/// Calls `f` on evaluated arguments. `encode(*, ..)` is handled by the evaluator, which has the
/// raw payload.
pub(crate) fn call(f: Func, args: Vec<Value>, cx: &mut Cx<'_, '_>) -> Value {
    if !f.arity_ok(args.len()) {
        return Value::Undefined;
    }
    let v2 = cx.v2();
    let a = |i: usize| args.get(i).unwrap_or(&Value::Undefined);
    let string = |i: usize| to_string(a(i));
    let num = |i: usize| to_num(a(i));
    let float = |g: fn(f64) -> f64| num(0).map_or(Value::Undefined, |n| decimal(g(n.as_f64()), v2));
    match f {
        Func::Topic => topic(cx.msg.topic, args.first()),
        Func::ClientId => Value::String(cx.msg.client_id.unwrap_or("n/a").to_owned()),
        Func::Principal => opt_string(cx.msg.principal),
        Func::TraceId => opt_string(cx.msg.trace_id),
        Func::AccountId => Value::String(cx.msg.account_id.to_owned()),
        Func::Timestamp => Value::Int(cx.msg.timestamp_ms),
        Func::NewUuid => Value::String(cx.env.new_uuid()),
        Func::Rand => decimal(cx.env.random(), false),
        Func::SqlVersion => Value::String(cx.version.as_str().to_owned()),

        Func::IsNull => Value::Bool(matches!(a(0), Value::Null)),
        Func::IsUndefined => Value::Bool(a(0).is_undefined()),
        Func::Nanvl => match a(0) {
            Value::Undefined | Value::Null => a(1).clone(),
            v => v.clone(),
        },
        Func::Get => get(a(0), a(1)),
        Func::Concat => concat(args),
        Func::Transform => transform(a(0), a(1), a(2), cx),

        Func::Lower => string(0).map_or(Value::Undefined, |s| Value::String(s.to_lowercase())),
        Func::Upper => string(0).map_or(Value::Undefined, |s| Value::String(s.to_uppercase())),
        Func::Trim => trimmed(string(0), |s| s.trim_matches(is_space)),
        Func::Ltrim => trimmed(string(0), |s| s.trim_start_matches(is_space)),
        Func::Rtrim => trimmed(string(0), |s| s.trim_end_matches(is_space)),
        Func::Length => string(0).map_or(Value::Undefined, |s| count(s.chars().count())),
        Func::NumBytes => string(0).map_or(Value::Undefined, |s| count(s.len())),
        Func::Replace => match (string(0), string(1), string(2)) {
            (Some(s), Some(from), Some(to)) => {
                // An empty pattern matches between every character: the result can be far
                // larger than its inputs, so it is charged before it is made.
                let hits = if from.is_empty() {
                    s.chars().count() + 1
                } else {
                    s.matches(from.as_str()).count()
                };
                if cx.charge(hits.saturating_mul(to.len())) {
                    Value::String(s.replace(&from, &to))
                } else {
                    Value::Undefined
                }
            }
            _ => Value::Undefined,
        },
        Func::StartsWith => match (string(0), string(1)) {
            (Some(s), Some(p)) => Value::Bool(s.starts_with(&p)),
            _ => Value::Undefined,
        },
        Func::EndsWith => match (string(0), string(1)) {
            (Some(s), Some(p)) => Value::Bool(s.ends_with(&p)),
            _ => Value::Undefined,
        },
        Func::IndexOf => match (string(0), string(1)) {
            (Some(s), Some(p)) => match s.find(&p) {
                Some(byte) => count(s[..byte].chars().count()),
                None => Value::Int(-1),
            },
            _ => Value::Undefined,
        },
        Func::Substring => substring(&args),
        Func::Lpad | Func::Rpad => match (string(0), pad_width(a(1))) {
            (Some(s), Some(n)) => {
                let pad = " ".repeat(n);
                Value::String(if f == Func::Lpad { pad + &s } else { s + &pad })
            }
            _ => Value::Undefined,
        },
        Func::Chr => match to_int_down(a(0)) {
            Some(n @ 0..=127) => Value::String(
                char::from_u32(n as u32)
                    .map(String::from)
                    .unwrap_or_default(),
            ),
            _ => Value::Undefined,
        },

        Func::Abs => match num(0) {
            Some(Num::Int(i)) => i
                .checked_abs()
                .map_or_else(|| decimal((i as f64).abs(), v2), Value::Int),
            Some(n) => decimal(n.as_f64().abs(), v2),
            None => Value::Undefined,
        },
        Func::Ceil => rounded(num(0), f64::ceil),
        Func::Floor => rounded(num(0), f64::floor),
        Func::Round => rounded(num(0), f64::round),
        Func::Sign => match num(0) {
            Some(Num::Int(i)) => Value::Int(i.signum()),
            Some(Num::Dec(d)) => Value::Int(if d > 0.0 {
                1
            } else if d < 0.0 {
                -1
            } else {
                0
            }),
            None => Value::Undefined,
        },
        Func::Mod | Func::Remainder => crate::eval::arith(crate::ast::BinOp::Mod, a(0), a(1), v2),
        Func::Trunc => trunc(a(0), a(1), v2),
        Func::Power => match (num(0), num(1)) {
            (Some(x), Some(y)) => decimal(x.as_f64().powf(y.as_f64()), v2),
            _ => Value::Undefined,
        },
        Func::Atan2 => match (num(0), num(1)) {
            (Some(y), Some(x)) => decimal(y.as_f64().atan2(x.as_f64()), v2),
            _ => Value::Undefined,
        },
        Func::Sqrt => float(f64::sqrt),
        Func::Exp => float(f64::exp),
        Func::Ln => float(f64::ln),
        Func::Log => float(f64::log10),
        Func::Sin => float(f64::sin),
        Func::Cos => float(f64::cos),
        Func::Tan => float(f64::tan),
        Func::Asin => float(f64::asin),
        Func::Acos => float(f64::acos),
        Func::Atan => float(f64::atan),
        Func::Sinh => float(f64::sinh),
        Func::Cosh => float(f64::cosh),
        Func::Tanh => float(f64::tanh),
        Func::BitAnd | Func::BitOr | Func::BitXor => match (to_int_down(a(0)), to_int_down(a(1))) {
            (Some(x), Some(y)) => Value::Int(match f {
                Func::BitAnd => x & y,
                Func::BitOr => x | y,
                _ => x ^ y,
            }),
            _ => Value::Undefined,
        },
        Func::BitNot => to_int_down(a(0)).map_or(Value::Undefined, |x| Value::Int(!x)),

        Func::Encode => match (string(0), string(1)) {
            (Some(s), Some(scheme)) if scheme == "base64" => {
                Value::String(base64::encode(s.as_bytes()))
            }
            _ => Value::Undefined,
        },
        Func::Decode => decode(a(0), a(1), v2),
    }
}

fn opt_string(s: Option<&str>) -> Value {
    s.map_or(Value::Undefined, |s| Value::String(s.to_owned()))
}

fn count(n: usize) -> Value {
    i64::try_from(n).map_or(Value::Undefined, Value::Int)
}

/// Java's `String.trim` treats every character up to U+0020 as white space.
fn is_space(c: char) -> bool {
    c <= ' '
}

fn trimmed(s: Option<String>, f: impl Fn(&str) -> &str) -> Value {
    s.map_or(Value::Undefined, |s| Value::String(f(&s).to_owned()))
}

fn rounded(n: Option<Num>, g: fn(f64) -> f64) -> Value {
    match n {
        Some(Num::Int(i)) => Value::Int(i),
        Some(Num::Dec(d)) => integral(g(d)),
        None => Value::Undefined,
    }
}

/// `topic()` and `topic(n)`. Basic Ingest's `$aws/rules/<rule>/` prefix is not part of the topic.
fn topic(full: &str, n: Option<&Value>) -> Value {
    let topic = match full.strip_prefix("$aws/rules/") {
        Some(rest) => rest.split_once('/').map_or("", |(_, t)| t),
        None => full,
    };
    let Some(n) = n else {
        return Value::String(topic.to_owned());
    };
    match to_int_round(n) {
        Some(i) if i >= 1 => topic
            .split('/')
            .nth((i - 1) as usize)
            .map_or(Value::Undefined, |s| Value::String(s.to_owned())),
        _ => Value::Undefined,
    }
}

/// `get(collection, key)`; also what `a[i]` means.
pub(crate) fn get(coll: &Value, key: &Value) -> Value {
    match coll {
        Value::Array(items) => to_int_round(key)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| items.get(i))
            .map_or(Value::Undefined, Clone::clone),
        Value::String(s) => to_int_round(key)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| s.chars().nth(i))
            .map_or(Value::Undefined, |c| Value::String(c.to_string())),
        Value::Object(_) => match key {
            Value::String(k) => coll.field(k),
            _ => Value::Undefined,
        },
        _ => Value::Undefined,
    }
}

/// `concat(...)`: with an array among the arguments, one array of all of them (arrays spliced
/// in); otherwise the string forms joined, Undefined if one has none. One non-array argument is
/// converted to a string (AWS's example: `concat(1)` is `"1"`).
fn concat(args: Vec<Value>) -> Value {
    if args.is_empty() {
        return Value::Undefined;
    }
    if args.iter().any(|v| matches!(v, Value::Array(_))) {
        let mut out = Vec::new();
        for v in args {
            match v {
                Value::Array(items) => out.extend(items),
                Value::Undefined => {}
                v => out.push(v),
            }
        }
        return Value::Array(out);
    }
    let mut out = String::new();
    for v in &args {
        match to_string(v) {
            Some(s) => out.push_str(&s),
            None => return Value::Undefined,
        }
    }
    Value::String(out)
}

/// `transform('enrichArray', object, array)`: each object in the array with the object's keys
/// added. Elements that are not objects are passed through unchanged.
fn transform(mode: &Value, obj: &Value, arr: &Value, cx: &Cx<'_, '_>) -> Value {
    let (Value::String(mode), Value::Object(extra), Value::Array(items)) = (mode, obj, arr) else {
        return Value::Undefined;
    };
    if mode != "enrichArray" {
        return Value::Undefined;
    }
    // Every item gets a copy of the object: charged before the copies are made.
    if !cx.charge(items.len().saturating_mul(obj.weight())) {
        return Value::Undefined;
    }
    let out = items
        .iter()
        .map(|item| match item {
            Value::Object(entries) => {
                let mut b = ObjectBuilder::from_entries(entries.clone());
                for (k, v) in extra {
                    b.insert(k.clone(), v.clone());
                }
                Value::Object(b.finish())
            }
            other => other.clone(),
        })
        .collect();
    Value::Array(out)
}

/// `substring(s, start[, end])`: character indexes, 0-based, end exclusive, clamped to the
/// string; decimals are truncated (AWS's example: `substring("012345", 2.745)` is `"2345"`).
fn substring(args: &[Value]) -> Value {
    let Some(s) = args.first().and_then(to_string) else {
        return Value::Undefined;
    };
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let clamp = |v: &Value| to_int_down(v).map(|i| i.clamp(0, len) as usize);
    let Some(start) = args.get(1).and_then(clamp) else {
        return Value::Undefined;
    };
    let end = match args.get(2) {
        Some(v) => match clamp(v) {
            Some(e) => e,
            None => return Value::Undefined,
        },
        None => chars.len(),
    };
    if start >= end {
        return Value::String(String::new());
    }
    Value::String(chars[start..end].iter().collect())
}

/// The width argument of `lpad`/`rpad`, clamped to 0..=1000.
fn pad_width(v: &Value) -> Option<usize> {
    to_int_down(v).map(|n| n.clamp(0, 1000) as usize)
}

/// `trunc(x, places)`: cuts the decimal digits of `x`'s shortest decimal form, so
/// `trunc(0.29, 2)` is `0.29` rather than a binary-rounding artefact.
fn trunc(x: &Value, places: &Value, v2: bool) -> Value {
    if let (Value::Int(_), Value::Int(_)) = (x, places) {
        return x.clone();
    }
    let (Some(n), Some(p)) = (to_num(x), to_int_down(places)) else {
        return Value::Undefined;
    };
    let p = p.clamp(0, 34) as usize;
    let d = match n {
        Num::Int(i) => return Value::Int(i),
        Num::Dec(d) => d,
    };
    let text = format!("{d}");
    let cut = match text.split_once('.') {
        Some((whole, frac)) if frac.len() > p => {
            if p == 0 {
                whole.to_owned()
            } else {
                format!("{whole}.{}", &frac[..p])
            }
        }
        _ => text,
    };
    match parse_decimal_string(&cut) {
        Some(f) if f.fract() == 0.0 => integral(f),
        Some(f) => decimal(f, v2),
        None => Value::Undefined,
    }
}

/// `decode(value, 'base64')`: JSON if the decoded bytes are JSON, else the text; Null when the
/// value is not base64 or the bytes are not text.
fn decode(v: &Value, scheme: &Value, v2: bool) -> Value {
    let (Some(s), Value::String(scheme)) = (to_string(v), scheme) else {
        return Value::Undefined;
    };
    if scheme != "base64" {
        return Value::Undefined;
    }
    let Some(bytes) = base64::decode(&s) else {
        return Value::Null;
    };
    if let Some(v) = json::parse(&bytes, v2) {
        return v;
    }
    String::from_utf8(bytes).map_or(Value::Null, Value::String)
}

/// `x IN array`: whether an item of the array equals `x`.
pub(crate) fn is_in(x: &Value, arr: &Value) -> Value {
    match (x, arr) {
        (Value::Undefined, _) => Value::Undefined,
        (_, Value::Array(items)) => Value::Bool(items.iter().any(|i| sql_eq(x, i) == Some(true))),
        _ => Value::Undefined,
    }
}

/// `a CONTAINS b`: a substring of a string, or an item of an array.
pub(crate) fn contains(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (_, Value::Undefined) => Value::Undefined,
        (Value::String(s), Value::String(t)) => Value::Bool(s.contains(t.as_str())),
        (Value::Array(items), _) => Value::Bool(items.iter().any(|i| sql_eq(i, b) == Some(true))),
        _ => Value::Undefined,
    }
}
