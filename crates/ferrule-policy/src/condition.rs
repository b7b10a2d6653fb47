//! `Condition` blocks: IAM's operators over context keys, with `ForAnyValue:` / `ForAllValues:`
//! set qualifiers and `...IfExists`. All conditions of a statement must hold.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::eval::Context;
use crate::pattern::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    IpAddress,
    ArnLike,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// One `operator: { key: values }` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    op: Op,
    negated: bool,
    set: SetQualifier,
    if_exists: bool,
    key: String,
    values: Vec<Pattern>,
}

fn parse_operator(name: &str) -> Option<(SetQualifier, Op, bool, bool)> {
    let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::None, name)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(r) if r != "Null" => (r, true),
        _ => (rest, false),
    };
    let (op, negated) = match rest {
        "StringEquals" => (Op::StringEquals, false),
        "StringNotEquals" => (Op::StringEquals, true),
        "StringEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, true),
        "StringLike" => (Op::StringLike, false),
        "StringNotLike" => (Op::StringLike, true),
        "NumericEquals" => (Op::NumericEquals, false),
        "NumericNotEquals" => (Op::NumericEquals, true),
        "NumericLessThan" => (Op::NumericLessThan, false),
        "NumericLessThanEquals" => (Op::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Op::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Op::NumericGreaterThanEquals, false),
        "Bool" => (Op::Bool, false),
        "IpAddress" => (Op::IpAddress, false),
        "NotIpAddress" => (Op::IpAddress, true),
        "ArnEquals" | "ArnLike" => (Op::ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (Op::ArnLike, true),
        "Null" => (Op::Null, false),
        _ => return None,
    };
    Some((set, op, negated, if_exists))
}

impl Condition {
    pub(crate) fn parse_block(
        block: &Map<String, Value>,
        variables: bool,
    ) -> Result<Vec<Condition>, String> {
        let mut out = Vec::new();
        for (operator, keys) in block {
            let (set, op, negated, if_exists) = parse_operator(operator)
                .ok_or_else(|| format!("unknown condition operator {operator:?}"))?;
            let Value::Object(keys) = keys else {
                return Err(format!("{operator} must map condition keys to values"));
            };
            for (key, values) in keys {
                let raw: Vec<String> = match values {
                    Value::String(s) => vec![s.clone()],
                    Value::Bool(b) => vec![b.to_string()],
                    Value::Number(n) => vec![n.to_string()],
                    Value::Array(list) if !list.is_empty() => list
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s.clone()),
                            Value::Bool(b) => Ok(b.to_string()),
                            Value::Number(n) => Ok(n.to_string()),
                            _ => Err(format!(
                                "{operator}.{key}: values must be strings, numbers or booleans"
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(format!(
                            "{operator}.{key}: needs a value or a non-empty array of values"
                        ));
                    }
                };
                if op == Op::IpAddress {
                    for r in &raw {
                        if parse_cidr(r).is_none() {
                            return Err(format!(
                                "{operator}.{key}: {r:?} is not an IP address or CIDR block"
                            ));
                        }
                    }
                }
                let values = raw
                    .iter()
                    .map(|r| Pattern::parse(r, variables))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{operator}.{key}: {e}"))?;
                out.push(Condition {
                    op,
                    negated,
                    set,
                    if_exists,
                    key: key.clone(),
                    values,
                });
            }
        }
        Ok(out)
    }

    /// Lowercases the condition key and the variables in its values (IAM's keys are
    /// case-insensitive).
    pub(crate) fn lowercase_keys(&mut self) {
        self.key = self.key.to_lowercase();
        self.values
            .iter_mut()
            .for_each(Pattern::lowercase_variables);
    }

    /// Whether this condition holds in `ctx`.
    pub(crate) fn holds(&self, ctx: &Context) -> bool {
        let request = ctx.values(&self.key);
        if self.op == Op::Null {
            let wants_absent = self.values.iter().any(|v| {
                v.resolve_exact(ctx)
                    .is_some_and(|s| s.eq_ignore_ascii_case("true"))
            });
            return request.is_empty() == wants_absent;
        }
        let satisfied = |v: &str| {
            let any = self.values.iter().any(|p| self.matches_one(v, p, ctx));
            any != self.negated
        };
        match self.set {
            SetQualifier::ForAnyValue => request.iter().any(|v| satisfied(v)),
            SetQualifier::ForAllValues => request.iter().all(|v| satisfied(v)),
            SetQualifier::None if request.is_empty() => self.if_exists || self.negated,
            SetQualifier::None => {
                if self.negated {
                    request.iter().all(|v| satisfied(v))
                } else {
                    request.iter().any(|v| satisfied(v))
                }
            }
        }
    }

    fn matches_one(&self, v: &str, p: &Pattern, ctx: &Context) -> bool {
        let exact = || p.resolve_exact(ctx);
        let num = |s: &str| s.trim().parse::<f64>().ok();
        match self.op {
            Op::StringEquals => exact().is_some_and(|e| e == v),
            Op::StringEqualsIgnoreCase => {
                exact().is_some_and(|e| e.to_lowercase() == v.to_lowercase())
            }
            Op::StringLike | Op::ArnLike => p.matches(v, ctx, false),
            Op::Bool => exact().is_some_and(|e| e.eq_ignore_ascii_case(v)),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => {
                let (Some(a), Some(b)) = (num(v), exact().as_deref().and_then(num)) else {
                    return false;
                };
                match self.op {
                    Op::NumericEquals => a == b,
                    Op::NumericLessThan => a < b,
                    Op::NumericLessThanEquals => a <= b,
                    Op::NumericGreaterThan => a > b,
                    _ => a >= b,
                }
            }
            Op::IpAddress => {
                let (Ok(ip), Some((net, bits))) =
                    (v.parse::<IpAddr>(), exact().as_deref().and_then(parse_cidr))
                else {
                    return false;
                };
                in_network(ip, net, bits)
            }
            Op::Null => false,
        }
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// Whether `ip` lies in `net`/`bits`; an IPv4 address never lies in an IPv6 network or the other
/// way round. An IPv4 address written as IPv4-mapped IPv6 (`::ffff:10.1.2.3`, what a dual-stack
/// listener reports for an IPv4 peer) is the IPv4 address it stands for, and so is a mapped
/// network of /96 or longer.
fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (net, bits) = match net.to_canonical() {
        IpAddr::V4(v4) if net.is_ipv6() && bits >= 96 => (IpAddr::V4(v4), bits - 96),
        _ => (net, bits),
    };
    match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(json: &str) -> Vec<Condition> {
        let v: Value = serde_json::from_str(json).expect("json");
        let Value::Object(m) = v else {
            panic!("object")
        };
        Condition::parse_block(&m, true).expect("parses")
    }

    fn holds(json: &str, ctx: &Context) -> bool {
        cond(json).iter().all(|c| c.holds(ctx))
    }

    #[test]
    fn string_operators() {
        let mut ctx = Context::default();
        ctx.set("iot:ClientId", "dev-1");
        assert!(holds(r#"{"StringEquals":{"iot:ClientId":"dev-1"}}"#, &ctx));
        assert!(!holds(r#"{"StringEquals":{"iot:ClientId":"dev-*"}}"#, &ctx));
        assert!(holds(r#"{"StringLike":{"iot:ClientId":"dev-*"}}"#, &ctx));
        assert!(holds(
            r#"{"StringNotEquals":{"iot:ClientId":["a","b"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"StringNotLike":{"iot:ClientId":"dev-?"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"StringEqualsIgnoreCase":{"iot:ClientId":"DEV-1"}}"#,
            &ctx
        ));
        // Missing keys: positive operators fail, negated ones and IfExists hold.
        assert!(!holds(r#"{"StringEquals":{"iot:Other":"x"}}"#, &ctx));
        assert!(holds(r#"{"StringNotEquals":{"iot:Other":"x"}}"#, &ctx));
        assert!(holds(r#"{"StringEqualsIfExists":{"iot:Other":"x"}}"#, &ctx));
    }

    #[test]
    fn set_qualifiers_bool_null_numbers_ips() {
        let mut ctx = Context::default();
        ctx.set_multi("iot:ConnectAttributes", ["PersistentConnect", "LastWill"]);
        ctx.set("iot:Connection.Thing.IsAttached", "true");
        ctx.set("aws:SourceIp", "10.1.2.3");
        ctx.set("n", "5");
        assert!(holds(
            r#"{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":["LastWill"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"ForAllValues:StringEquals":{"iot:ConnectAttributes":["LastWill"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"iot:ConnectAttributes":["LastWill","PersistentConnect"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"absent":["x"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"ForAnyValue:StringEquals":{"absent":["x"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"Bool":{"iot:Connection.Thing.IsAttached":true}}"#,
            &ctx
        ));
        assert!(holds(r#"{"Null":{"absent":"true","n":"false"}}"#, &ctx));
        assert!(holds(
            r#"{"NumericLessThan":{"n":10},"NumericGreaterThanEquals":{"n":"5"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"NotIpAddress":{"aws:SourceIp":["192.168.0.0/16"]}}"#,
            &ctx
        ));
        assert!(!holds(r#"{"IpAddress":{"aws:SourceIp":"10.1.2.4"}}"#, &ctx));
    }

    #[test]
    fn ipv4_mapped_addresses_compare_as_ipv4() {
        let mut ctx = Context::default();
        ctx.set("aws:SourceIp", "::ffff:10.1.2.3");
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &ctx
        ));
        assert!(holds(r#"{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}"#, &ctx));
        assert!(!holds(
            r#"{"IpAddress":{"aws:SourceIp":"192.168.0.0/16"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"NotIpAddress":{"aws:SourceIp":"192.168.0.0/16"}}"#,
            &ctx
        ));
        ctx.set("aws:SourceIp", "10.1.2.3");
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":"::ffff:10.0.0.0/104"}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"IpAddress":{"aws:SourceIp":"::ffff:11.0.0.0/104"}}"#,
            &ctx
        ));
    }

    #[test]
    fn bad_blocks_are_refused() {
        let bad = [
            r#"{"StringSomething":{"a":"b"}}"#,
            r#"{"StringEquals":"a"}"#,
            r#"{"StringEquals":{"a":[]}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"not-an-ip"}}"#,
            r#"{"StringEquals":{"a":[{"x":1}]}}"#,
        ];
        for b in bad {
            let v: Value = serde_json::from_str(b).expect("json");
            let Value::Object(m) = v else {
                panic!("object")
            };
            assert!(Condition::parse_block(&m, true).is_err(), "{b}");
        }
    }
}
