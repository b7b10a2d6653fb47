//! JSON text to [`Value`] and back, keeping the order of object keys (AWS's outputs keep the
//! payload's order, and `serde_json::Map` sorts unless a workspace-wide feature is turned on).
//!
//! The reader follows RFC 8259 exactly and refuses anything else, so "is this payload JSON?" has
//! one answer. A payload that is not JSON is a binary payload.

use crate::value::{ObjectBuilder, Value, decimal};

/// Nesting deeper than this is refused (a payload is device input; recursion must be bounded).
pub(crate) const MAX_DEPTH: usize = 128;

/// Parses a whole payload. `None` when it is not exactly one JSON value (surrounding whitespace
/// allowed). `whole_as_int` is SQL version 2016-03-23's rule that `10.0` is the Int `10`.
pub(crate) fn parse(bytes: &[u8], whole_as_int: bool) -> Option<Value> {
    let mut r = Reader {
        b: bytes,
        i: 0,
        whole_as_int,
        depth: 0,
    };
    let v = r.value()?;
    r.ws();
    (r.i == r.b.len()).then_some(v)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    whole_as_int: bool,
    depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, word: &[u8], v: Value) -> Option<Value> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match self.peek()? {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'"' => self.string().map(Value::String),
            b't' => self.keyword(b"true", Value::Bool(true)),
            b'f' => self.keyword(b"false", Value::Bool(false)),
            b'n' => self.keyword(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Option<Value>) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn object(&mut self) -> Option<Value> {
        self.i += 1; // '{'
        let mut obj = ObjectBuilder::default();
        self.ws();
        if self.eat(b'}') {
            return Some(Value::Object(obj.finish()));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return None;
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return None;
            }
            let v = self.value()?;
            obj.insert(key, v);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Some(Value::Object(obj.finish()));
            }
            return None;
        }
    }

    fn array(&mut self) -> Option<Value> {
        self.i += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Some(Value::Array(items));
            }
            return None;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut n = 0u32;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1; // '"'
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return None,
                _ => out.push(c),
            }
        }
    }

    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return None;
            }
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        } else {
            char::from_u32(hi)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        self.eat(b'-');
        let int_start = self.i;
        let n = self.digits();
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut integral = true;
        if self.eat(b'.') {
            integral = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            integral = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        // Only ASCII digits, signs, '.', 'e' were consumed.
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        if integral && let Ok(i) = text.parse::<i64>() {
            return Some(Value::Int(i));
        }
        let f: f64 = text.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        Some(decimal(f, self.whole_as_int))
    }
}

/// Appends the JSON text of `v`. `Undefined` inside arrays and objects is left out; at the top
/// level it writes nothing (AWS: "Undefined is converted to an empty string").
pub(crate) fn write(v: &Value, out: &mut String) {
    match v {
        Value::Undefined => {}
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Decimal(f) => out.push_str(&format_decimal(*f)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            let mut first = true;
            for item in items.iter().filter(|v| !v.is_undefined()) {
                if !first {
                    out.push(',');
                }
                first = false;
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(entries) => {
            out.push('{');
            let mut first = true;
            for (k, v) in entries.iter().filter(|(_, v)| !v.is_undefined()) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_string(k, out);
                out.push(':');
                write(v, out);
            }
            out.push('}');
        }
    }
}

/// The JSON text of `v`.
pub(crate) fn to_text(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// A finite decimal as JSON number text (shortest form that reads back to the same `f64`:
/// `10.0`, `2.5`, `1e300`).
pub(crate) fn format_decimal(f: f64) -> String {
    match serde_json::Number::from_f64(f) {
        Some(n) => n.to_string(),
        // Values are finite by construction; `null` keeps the output JSON if that ever breaks.
        None => "null".to_owned(),
    }
}

pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rt(s: &str) -> String {
        to_text(&parse(s.as_bytes(), false).unwrap())
    }

    #[test]
    fn keeps_key_order_and_last_duplicate() {
        assert_eq!(rt(r#"{"b":1,"a":2,"b":3}"#), r#"{"b":3,"a":2}"#);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            rt("[0,-0,10.0,1e2,-1.5E-3,12345678901234567890]"),
            "[0,0,10.0,100.0,-0.0015,1.2345678901234567e+19]"
        );
        assert!(parse(b"01", false).is_none());
        assert!(parse(b"1.", false).is_none());
        assert!(parse(b"1e400", false).is_none());
        assert_eq!(to_text(&parse(b"10.0", true).unwrap()), "10");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            rt(r#""a\"\\\/\u00e9\ud83d\ude00\n""#),
            "\"a\\\"\\\\/é😀\\n\""
        );
        assert!(parse(br#""\ud800""#, false).is_none());
        assert!(parse(b"\"a\x01\"", false).is_none());
        assert!(parse(b"\"\xff\"", false).is_none());
    }

    #[test]
    fn refuses_non_json() {
        for s in [
            "",
            "  ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "tru",
            "nul",
            "{} x",
            "'a'",
            "{a:1}",
        ] {
            assert!(parse(s.as_bytes(), false).is_none(), "{s}");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes(), false).is_some());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(deep.as_bytes(), false).is_none());
    }
}
