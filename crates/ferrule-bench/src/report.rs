//! A scenario's results as one ordered list of fields, printed either as a table for people or
//! as a single JSON line for scripts; both come from the same list so they cannot disagree.

use std::fmt::Write as _;

use crate::histogram::Histogram;

/// One reported value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A string.
    Text(String),
    /// A count.
    Int(u64),
    /// A measurement, printed with `.1` decimals in the table (full precision in JSON).
    Num(f64),
    /// A flag.
    Bool(bool),
    /// Not measured (no samples); `null` in JSON.
    Missing,
}

#[derive(Debug, Clone)]
struct Field {
    key: &'static str,
    label: String,
    unit: &'static str,
    value: Value,
}

/// The results of one run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    title: String,
    fields: Vec<Field>,
    errors: Vec<String>,
}

impl Report {
    /// An empty report headed `title`.
    pub(crate) fn new(title: impl Into<String>) -> Report {
        Report {
            title: title.into(),
            fields: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a field: `key` for JSON, `label` and `unit` for the table.
    pub(crate) fn add(&mut self, key: &'static str, label: &str, unit: &'static str, value: Value) {
        self.fields.push(Field {
            key,
            label: label.to_owned(),
            unit,
            value,
        });
    }

    /// Adds p50/p90/p99/max of `histogram` in microseconds under the four `keys`.
    pub(crate) fn add_latency(
        &mut self,
        keys: [&'static str; 4],
        label: &str,
        histogram: &Histogram,
    ) {
        let micros = |v: Option<u64>| v.map_or(Value::Missing, |ns| Value::Num(ns as f64 / 1e3));
        let labels = ["p50", "p90", "p99", "max"];
        let values = [
            histogram.quantile(0.50),
            histogram.quantile(0.90),
            histogram.quantile(0.99),
            histogram.max(),
        ];
        for ((key, which), value) in keys.into_iter().zip(labels).zip(values) {
            self.fields.push(Field {
                key,
                label: format!("{label} {which}"),
                unit: "us",
                value: micros(value),
            });
        }
    }

    /// Adds p50/p95/max of `histogram` in microseconds under the three `keys`: for runs of a
    /// few dozen samples, where a p99 would be the maximum.
    pub(crate) fn add_p95(&mut self, keys: [&'static str; 3], label: &str, histogram: &Histogram) {
        let values = [
            histogram.quantile(0.50),
            histogram.quantile(0.95),
            histogram.max(),
        ];
        for ((key, which), value) in keys.into_iter().zip(["p50", "p95", "max"]).zip(values) {
            self.fields.push(Field {
                key,
                label: format!("{label} {which}"),
                unit: "us",
                value: value.map_or(Value::Missing, |ns| Value::Num(ns as f64 / 1e3)),
            });
        }
    }

    /// Records a problem seen during the run; the run still reports what it measured.
    pub(crate) fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    /// The table for people.
    pub(crate) fn table(&self) -> String {
        let width = self.fields.iter().map(|f| f.label.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.title);
        for field in &self.fields {
            let value = match &field.value {
                Value::Text(s) => s.clone(),
                Value::Int(n) => n.to_string(),
                Value::Num(x) => format!("{x:.1}"),
                Value::Bool(b) => b.to_string(),
                Value::Missing => "-".to_owned(),
            };
            let unit = if field.unit.is_empty() { "" } else { " " };
            let _ = writeln!(
                out,
                "  {:<width$}  {value}{unit}{}",
                field.label, field.unit
            );
        }
        for error in &self.errors {
            let _ = writeln!(out, "  error: {error}");
        }
        out
    }

    /// One line of JSON for scripts: every field by key, plus `"errors": [...]`.
    pub(crate) fn json(&self) -> String {
        let mut out = String::from("{");
        for field in &self.fields {
            json_string(&mut out, field.key);
            out.push(':');
            match &field.value {
                Value::Text(s) => json_string(&mut out, s),
                Value::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Num(x) if x.is_finite() => {
                    let _ = write!(out, "{x:.3}");
                }
                Value::Num(_) | Value::Missing => out.push_str("null"),
                Value::Bool(b) => {
                    let _ = write!(out, "{b}");
                }
            }
            out.push(',');
        }
        out.push_str("\"errors\":[");
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(&mut out, error);
        }
        out.push_str("]}");
        out
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_escaped_line() {
        let mut r = Report::new("t");
        r.add("name", "name", "", Value::Text("a\"b\\c\nd".into()));
        r.add("n", "n", "", Value::Int(3));
        r.add("x", "x", "", Value::Num(1.5));
        r.add("none", "none", "", Value::Missing);
        r.add("ok", "ok", "", Value::Bool(true));
        r.error("boom");
        assert_eq!(
            r.json(),
            r#"{"name":"a\"b\\c\nd","n":3,"x":1.500,"none":null,"ok":true,"errors":["boom"]}"#
        );
        assert!(r.table().contains("error: boom"));
    }
}
