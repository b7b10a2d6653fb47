//! Request parsing: one extractor, [`Call`], gathers what botocore may put anywhere (path
//! labels, query string, headers, JSON body), and its accessors turn raw text into typed
//! values, each failure an `InvalidRequestException` naming the member.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The inputs of one API call. The body was buffered by the authentication layer.
#[derive(Debug)]
pub(crate) struct Call {
    labels: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let labels = match RawPathParams::from_request_parts(&mut parts, state).await {
            Ok(params) => params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(e) => {
                return Err(ApiError::InvalidRequest(format!(
                    "the request path is not valid: {e}"
                )));
            }
        };
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
            ApiError::InvalidRequest(format!("the request body could not be read: {e}"))
        })?;
        Ok(Call {
            labels,
            query,
            headers: parts.headers,
            body,
        })
    }
}

/// Splits a raw query string into percent-decoded pairs. `+` is kept literally: botocore
/// encodes spaces as `%20` and `+` as `%2B`.
pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

impl Call {
    /// A path label (`{policyName}` and the like), percent-decoded.
    pub(crate) fn label(&self, name: &str) -> Result<&str, ApiError> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::missing(name))
    }

    /// A query parameter as text.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter: `true` or `false`, as botocore sends them.
    pub(crate) fn query_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.query(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::InvalidRequest(format!(
                    "{name} must be true or false, not {v:?}"
                ))),
            })
            .transpose()
    }

    /// An integer query parameter within `min..=max`.
    pub(crate) fn query_int(
        &self,
        name: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        self.query(name)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::InvalidRequest(format!(
                            "{name} must be an integer from {min} to {max}, not {v:?}"
                        ))
                    })
            })
            .transpose()
    }

    /// A query parameter that is one of an AWS enum's spellings.
    pub(crate) fn query_enum<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.query(name).map(|v| parse_enum(name, v)).transpose()
    }

    /// A header's value; non-UTF-8 is refused.
    pub(crate) fn header(&self, name: &str) -> Result<Option<&str>, ApiError> {
        self.headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::InvalidRequest(format!("the {name} header is not valid UTF-8"))
                })
            })
            .transpose()
    }

    /// A header that must be present and not empty.
    pub(crate) fn required_header(&self, name: &str) -> Result<&str, ApiError> {
        match self.header(name)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::InvalidRequest(format!(
                "the {name} header is required"
            ))),
        }
    }

    /// The size of the body in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The JSON body as `T`. No body counts as `{}`: botocore sends none when an operation has
    /// no body members set.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                ApiError::InvalidRequest(format!("the request body is not valid: {inner}"))
            } else {
                ApiError::InvalidRequest(format!("{path}: {inner}"))
            }
        })
    }
}

/// Parses an enum member, naming it in the error.
pub(crate) fn parse_enum<T>(name: &str, value: &str) -> Result<T, ApiError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| ApiError::InvalidRequest(format!("{name}: {e}")))
}
