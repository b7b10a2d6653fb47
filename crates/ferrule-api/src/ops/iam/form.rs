//! The form body of a query-protocol request, decoded once.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// `name=value` pairs of an `application/x-www-form-urlencoded` body, decoded (`+` is a
/// space, `%XX` a byte, the result UTF-8).
#[derive(Debug, Default)]
pub(super) struct Form(BTreeMap<String, String>);

impl Form {
    /// Decodes a body. A bad `%` escape, bytes that are not UTF-8, or a name given twice is
    /// `MalformedQueryString`.
    pub(super) fn parse(body: &[u8]) -> Result<Form, ApiError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::MalformedQuery("the form body is not UTF-8".to_owned()))?;
        let mut params = BTreeMap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name)?;
            let value = decode(value)?;
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::MalformedQuery(format!(
                    "the form body gives {name} more than once"
                )));
            }
        }
        Ok(Form(params))
    }

    /// The value of `name`, if given.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Whether any member is `name` or starts with `name.` (lists, maps).
    pub(super) fn has_prefix(&self, name: &str) -> bool {
        self.0
            .keys()
            .any(|k| k == name || k.strip_prefix(name).is_some_and(|r| r.starts_with('.')))
    }

    /// The value of a required, non-empty member.
    pub(super) fn required(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(ApiError::InvalidRequest(format!(
                "1 validation error detected: Value '' at '{name}' failed to satisfy \
                 constraint: Member must have length greater than or equal to 1"
            ))),
            None => Err(ApiError::InvalidRequest(format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy \
                 constraint: Member must not be null"
            ))),
        }
    }

    /// An integer member within `min..=max`.
    pub(super) fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::InvalidRequest(format!(
                "1 validation error detected: Value '{raw}' at '{name}' failed to satisfy \
                 constraint: Member must be an integer from {min} to {max}"
            ))),
        }
    }
}

fn decode(raw: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    let bytes = spaced.as_bytes();
    // percent_encoding passes a bad escape through; AWS refuses it.
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(ApiError::MalformedQuery(format!(
                    "the form body has a bad percent escape in {raw:?}"
                )));
            }
        }
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::MalformedQuery("the form body is not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn decodes_plus_and_escapes() {
        let f = Form::parse(b"Action=GetRole&RoleName=a+b%2Bc&Empty=&Flag").unwrap();
        assert_eq!(f.get("Action"), Some("GetRole"));
        assert_eq!(f.get("RoleName"), Some("a b+c"));
        assert_eq!(f.get("Empty"), Some(""));
        assert_eq!(f.get("Flag"), Some(""));
        assert!(f.has_prefix("Empty"));
        assert!(!f.has_prefix("Emp"));
    }

    #[test]
    fn refuses_malformed_bodies() {
        for body in [&b"A=%zz"[..], b"A=%4", b"A=%ff", b"A=\xff", b"A=1&A=2"] {
            let e = Form::parse(body).unwrap_err();
            assert!(matches!(e, ApiError::MalformedQuery(_)), "{body:?}: {e:?}");
        }
    }
}
