//! AWS IoT SQL's value model and its documented conversions ("Data types" page): Int, Decimal,
//! Boolean, String, Array, Object, Null, and Undefined (a missing field; never written to JSON).
//!
//! Int is an `i64` and Decimal an `f64`; AWS keeps 34 digits. Int arithmetic that overflows
//! becomes Decimal.

use std::collections::HashMap;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Undefined,
    Null,
    Bool(bool),
    Int(i64),
    Decimal(f64),
    String(String),
    Array(Vec<Value>),
    /// Keys are unique; the order is the order of first insertion.
    Object(Vec<(String, Value)>),
}

impl Value {
    pub(crate) fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// Roughly how many bytes the value holds; what evaluation is charged for producing it.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Value::String(s) => 8 + s.len(),
            Value::Array(items) => 8 + items.iter().map(Value::weight).sum::<usize>(),
            Value::Object(entries) => {
                8 + entries
                    .iter()
                    .map(|(k, v)| k.len() + v.weight())
                    .sum::<usize>()
            }
            _ => 8,
        }
    }

    /// `obj.key`: Undefined unless this is an object with that key.
    pub(crate) fn field(&self, key: &str) -> Value {
        match self {
            Value::Object(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map_or(Value::Undefined, |(_, v)| v.clone()),
            _ => Value::Undefined,
        }
    }
}

/// A Decimal result. Not finite (NaN, overflow) is Undefined ("imaginary results are returned as
/// Undefined"). With `whole_as_int` (SQL 2016-03-23) a whole number such as `10.0` is the Int
/// `10`, as AWS documents for that version.
pub(crate) fn decimal(f: f64, whole_as_int: bool) -> Value {
    if !f.is_finite() {
        return Value::Undefined;
    }
    if whole_as_int && let Some(i) = whole_to_i64(f) {
        return Value::Int(i);
    }
    Value::Decimal(f)
}

/// `f` as an `i64` when it is a whole number in range.
pub(crate) fn whole_to_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; the open upper bound keeps the cast exact.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

/// A whole-number result (`floor`, `ceil`, `round`, `cast(.. AS Int)`): Int when it fits,
/// otherwise Decimal.
pub(crate) fn integral(f: f64) -> Value {
    match whole_to_i64(f) {
        Some(i) => Value::Int(i),
        None if f.is_finite() => Value::Decimal(f),
        None => Value::Undefined,
    }
}

/// Builds an object with unique keys. Small objects are searched linearly; an index is built
/// once an object grows, so a payload with many keys stays linear to read.
#[derive(Default)]
pub(crate) struct ObjectBuilder {
    entries: Vec<(String, Value)>,
    index: Option<HashMap<String, usize>>,
}

const INDEX_AT: usize = 16;

impl ObjectBuilder {
    pub(crate) fn from_entries(entries: Vec<(String, Value)>) -> ObjectBuilder {
        let mut b = ObjectBuilder::default();
        for (k, v) in entries {
            b.insert(k, v);
        }
        b
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    /// Sets `key`; an existing key keeps its place and takes the new value.
    pub(crate) fn insert(&mut self, key: String, v: Value) {
        if let Some(i) = self.position(&key) {
            self.entries[i].1 = v;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.entries.len());
        } else if self.entries.len() >= INDEX_AT {
            let mut index: HashMap<String, usize> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            index.insert(key.clone(), self.entries.len());
            self.index = Some(index);
        }
        self.entries.push((key, v));
    }

    /// The value at `key`, inserting `Null` first if absent.
    pub(crate) fn entry(&mut self, key: String) -> &mut Value {
        let i = match self.position(&key) {
            Some(i) => i,
            None => {
                self.insert(key, Value::Null);
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    pub(crate) fn finish(self) -> Vec<(String, Value)> {
        self.entries
    }
}

/// A number for arithmetic and comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Int(i64),
    Dec(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(f) => f,
        }
    }
}

/// AWS's pattern for strings that convert to Decimal: `^-?\d+(\.\d+)?((?i)E-?\d+)?$`.
pub(crate) fn parse_decimal_string(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// "To Decimal" for operators and numeric functions: Int and Decimal as they are, a String
/// matching the pattern as Decimal, anything else nothing.
pub(crate) fn to_num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::Int(*i)),
        Value::Decimal(f) => Some(Num::Dec(*f)),
        Value::String(s) => parse_decimal_string(s).map(Num::Dec),
        _ => None,
    }
}

/// "To Int" (standard conversion, used by `get` and `topic(n)`): a Decimal is rounded to the
/// nearest Int; a String is converted to Decimal and truncated.
pub(crate) fn to_int_round(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Decimal(f) => Some(f.round() as i64),
        Value::String(s) => parse_decimal_string(s).map(|f| f.trunc() as i64),
        _ => None,
    }
}

/// The conversion the functions documented as "rounded down to the nearest Int" use
/// (`substring`, `lpad`, `bit*`, `chr`): toward zero, as Java's `RoundingMode.DOWN`. `as`
/// saturates, so huge indexes clamp instead of wrapping.
pub(crate) fn to_int_down(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Decimal(f) => Some(f.trunc() as i64),
        Value::String(s) => parse_decimal_string(s).map(|f| f.trunc() as i64),
        _ => None,
    }
}

/// "To Boolean": Booleans, and the strings "true"/"false" in any case.
pub(crate) fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// "To String": numbers in standard notation, Booleans lowercase, arrays and objects as JSON
/// text; Null and Undefined have none.
pub(crate) fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::Undefined | Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Decimal(f) => Some(crate::json::format_decimal(*f)),
        Value::Array(_) | Value::Object(_) => Some(crate::json::to_text(v)),
    }
}

/// The `=` operator: Undefined on either side is Undefined; Int and Decimal compare as numbers;
/// arrays compare item by item in order, objects key by key in any order; mismatched types are
/// not equal.
pub(crate) fn sql_eq(a: &Value, b: &Value) -> Option<bool> {
    use Value as V;
    Some(match (a, b) {
        (V::Undefined, _) | (_, V::Undefined) => return None,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Int(_) | V::Decimal(_), V::Int(_) | V::Decimal(_)) => {
            let (Some(x), Some(y)) = (to_num(a), to_num(b)) else {
                return Some(false);
            };
            x.as_f64() == y.as_f64()
        }
        (V::String(x), V::String(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Null, V::Null) => true,
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| sql_eq(p, q) == Some(true))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .find(|(k2, _)| k2 == k)
                        .is_some_and(|(_, v2)| sql_eq(v, v2) == Some(true))
                })
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_follow_the_documented_pattern() {
        for ok in ["0", "-1.2", "5E-12", "5e3", "12.50"] {
            assert!(parse_decimal_string(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", "+1", ".5", "5.", "1e", "1e+3", " 1", "0x10", "NaN", "1_000",
        ] {
            assert!(parse_decimal_string(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(decimal(10.0, true), Value::Int(10));
        assert_eq!(decimal(10.0, false), Value::Decimal(10.0));
        assert_eq!(decimal(2.5, true), Value::Decimal(2.5));
        assert_eq!(decimal(1e300, true), Value::Decimal(1e300));
        assert_eq!(decimal(f64::NAN, true), Value::Undefined);
        assert_eq!(integral(-3.0), Value::Int(-3));
    }

    #[test]
    fn object_builder_keeps_first_place_last_value() {
        let mut b = ObjectBuilder::default();
        for i in 0..40 {
            b.insert(format!("k{}", i % 20), Value::Int(i));
        }
        let e = b.finish();
        assert_eq!(e.len(), 20);
        assert_eq!(e[0], ("k0".to_owned(), Value::Int(20)));
        assert_eq!(e[19], ("k19".to_owned(), Value::Int(39)));
    }
}
