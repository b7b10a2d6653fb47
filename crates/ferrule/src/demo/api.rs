//! A minimal SigV4-signed client for the control plane, enough for the demo's calls: IoT and
//! Lambda on rest-json, IAM on the query protocol. One HTTP/1.1 request per connection
//! (`connection: close`), plain HTTP to the in-process API listener.
//!
//! The signature is made by the same code the server verifies with
//! ([`ferrule_api::sigv4::authorization_header`]), over the bytes actually sent.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ferrule_api::Credential;
use ferrule_api::sigv4::{SignedRequest, authorization_header, format_amz_date};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response read.
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// The control plane at one address, as one admin.
#[derive(Clone)]
pub(crate) struct Api {
    addr: SocketAddr,
    region: String,
    credential: Credential,
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr, region: String, credential: Credential) -> Api {
        Api {
            addr,
            region,
            credential,
        }
    }

    /// A rest-json call (IoT, Lambda): the JSON answer (`Null` when empty), or the service's
    /// error as `Code: message`.
    pub(crate) async fn json(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map(Value::to_string).unwrap_or_default().into_bytes();
        let content_type = (!body.is_empty()).then_some("application/json");
        let answer = self
            .send(service, method, path, query, content_type, body)
            .await?;
        if !(200..300).contains(&answer.status) {
            let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let code = json["__type"]
                .as_str()
                .or_else(|| json["code"].as_str())
                .or_else(|| json["Type"].as_str())
                .unwrap_or("Error");
            let message = json["message"]
                .as_str()
                .or_else(|| json["Message"].as_str())
                .map_or_else(
                    || {
                        String::from_utf8_lossy(&answer.body)
                            .chars()
                            .take(300)
                            .collect()
                    },
                    str::to_owned,
                );
            bail!(
                "{service} {method} {path}: HTTP {}: {code}: {message}",
                answer.status
            );
        }
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .with_context(|| format!("{service} {method} {path}: the answer is not JSON"))
    }

    /// An IAM query-protocol call (`Action=...&Version=2010-05-08&...`): the XML answer, or the
    /// service's error as `Code: message`.
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
        let answer = self
            .send(
                "iam",
                "POST",
                "/",
                None,
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                form.into_bytes(),
            )
            .await?;
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        if !(200..300).contains(&answer.status) {
            let code = xml_text(&text, "Code").unwrap_or("Error");
            let message = xml_text(&text, "Message").unwrap_or_default();
            bail!("iam {action}: HTTP {}: {code}: {message}", answer.status);
        }
        Ok(text)
    }

    async fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let amz_date = format_amz_date(unix_now());
        let mut headers = HeaderMap::new();
        let mut signed = vec!["host", "x-amz-date"];
        headers.insert(
            HeaderName::from_static("host"),
            HeaderValue::from_str(&self.addr.to_string()).context("the API address")?,
        );
        headers.insert(
            HeaderName::from_static("x-amz-date"),
            HeaderValue::from_str(&amz_date).context("the request date")?,
        );
        if let Some(ct) = content_type {
            headers.insert(
                HeaderName::from_static("content-type"),
                HeaderValue::from_str(ct).context("the content type")?,
            );
            signed.push("content-type");
        }
        let authorization = authorization_header(
            &SignedRequest {
                method,
                raw_path: path,
                raw_query: query,
                headers: &headers,
                body: &body,
            },
            &signed,
            &self.credential.access_key_id,
            &self.credential.secret_access_key,
            &self.region,
            service,
            &amz_date,
        );
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in &headers {
            head.push_str(name.as_str());
            head.push_str(": ");
            head.push_str(value.to_str().unwrap_or_default());
            head.push_str("\r\n");
        }
        head.push_str(&format!(
            "authorization: {authorization}\r\ncontent-length: {}\r\naccept: */*\r\n\
             user-agent: ferrule-demo/{}\r\nconnection: close\r\n\r\n",
            body.len(),
            env!("CARGO_PKG_VERSION")
        ));
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);

        let mut stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to the API at {}", self.addr))?;
        stream
            .write_all(&request)
            .await
            .context("sending the request to the API")?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .context("reading the API's answer")?;
        parse_response(&raw)
    }
}

/// Parses an HTTP/1.1 response read to the end of the connection.
fn parse_response(raw: &[u8]) -> anyhow::Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the API closed the connection before the end of the headers")?;
    let head = std::str::from_utf8(&raw[..end]).context("the API's headers are not text")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .context("the API closed the connection before the end of the body")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a truncated chunk size")?;
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .context("a bad chunk size")?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).context("a truncated chunk")?);
        raw = raw.get(size + 2..).context("a truncated chunk")?;
    }
}

/// The text of the first `<tag>...</tag>` in `xml` (the demo reads a role's `Arn` and an
/// error's `Code` and `Message`; no entities are expected in them).
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let a = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.status, a.body.as_slice()), (200, b"{}".as_slice()));
        let a = parse_response(b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.status, a.body.as_slice()), (404, b"abc".as_slice()));
    }

    #[test]
    fn encoding_and_xml() {
        assert_eq!(percent_encode("a b/c:d~"), "a%20b%2Fc%3Ad~");
        assert_eq!(xml_text("<R><Arn>x:y</Arn></R>", "Arn"), Some("x:y"));
        assert_eq!(xml_text("<R></R>", "Arn"), None);
    }
}
