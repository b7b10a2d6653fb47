//! The demo's control-plane calls: `ferrule ca register`'s signed client
//! ([`crate::control::Client`]), run off the async threads, for IoT and Lambda (rest-json) and
//! IAM (query protocol).

use anyhow::Context;
use serde_json::Value;

use crate::control::Client;

/// The control plane, as one admin.
#[derive(Clone)]
pub(crate) struct Api(Client);

impl Api {
    pub(crate) fn new(client: Client) -> Api {
        Api(client)
    }

    /// A rest-json call to `service` (`iot`, `lambda`): the JSON answer (`Null` when empty).
    pub(crate) async fn json(
        &self,
        service: &'static str,
        method: &'static str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let client = self.0.clone();
        let (path, query, body) = (path.to_owned(), query.map(str::to_owned), body.cloned());
        let what = format!("{service} {method} {path}");
        tokio::task::spawn_blocking(move || {
            client.call_json(service, method, &path, query.as_deref(), body.as_ref())
        })
        .await
        .context("the API call's thread")?
        .with_context(|| what)
    }

    /// An IAM query-protocol call (`Action=ACTION&Version=2010-05-08&PARAMS`): the XML answer.
    pub(crate) async fn iam(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let mut form = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            form.push('&');
            form.push_str(&percent_encode(k));
            form.push('=');
            form.push_str(&percent_encode(v));
        }
        let client = self.0.clone();
        tokio::task::spawn_blocking(move || client.call_query("iam", &form))
            .await
            .context("the API call's thread")?
            .with_context(|| format!("iam {action}"))
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4 and the
/// query protocol expect.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a b/c:d~"), "a%20b%2Fc%3Ad~");
        assert_eq!(percent_encode("{\"A\":1}"), "%7B%22A%22%3A1%7D");
    }
}
