//! The HTTP action's client: one POST per connection (`Connection: close`), over TCP or TLS,
//! and only the status line of the answer is read. That is all the action needs, and it keeps
//! an HTTP client stack out of the broker.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;

use super::HTTP_TIMEOUT;

/// Where the system's trust anchors usually are (Debian, Ubuntu, Alpine; then Fedora, RHEL).
const SYSTEM_ROOTS: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Longest status line read from a server.
const MAX_STATUS_LINE: usize = 8 * 1024;

pub(crate) struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    /// A client trusting the system's certificate authorities for `https` URLs; without them,
    /// `https` URLs fail with a message saying so.
    pub(crate) fn new() -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for path in SYSTEM_ROOTS {
            if let Ok(certs) = ferrule_pki::load_cert_chain(std::path::Path::new(path)) {
                roots.add_parsable_certificates(certs);
                break;
            }
        }
        let tls = (!roots.is_empty())
            .then(|| {
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .ok()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            })
            .flatten()
            .map(|config| tokio_rustls::TlsConnector::from(Arc::new(config)));
        Client { tls }
    }

    /// POSTs `body` to `url` and returns the answer's status code.
    pub(crate) async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: &[u8],
    ) -> Result<u16, String> {
        match tokio::time::timeout(
            HTTP_TIMEOUT,
            self.exchange(url, headers, content_type, body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{url} did not answer within {} s",
                HTTP_TIMEOUT.as_secs()
            )),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: &[u8],
    ) -> Result<u16, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url}: only http and https URLs are supported")),
        };
        let host = uri.host().ok_or_else(|| format!("{url} has no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = request(path, authority, headers, content_type, body)?;
        // `[::1]` in a URL is `::1` to connect to.
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((connect_host, port))
            .await
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if https {
            let Some(tls) = &self.tls else {
                return Err(
                    "no trusted certificate authorities were found for https URLs".to_owned(),
                );
            };
            let name =
                ServerName::try_from(connect_host.to_owned()).map_err(|e| format!("{url}: {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {authority}: {e}"))?;
            send(stream, &request, url).await
        } else {
            send(tcp, &request, url).await
        }
    }
}

/// The request bytes. Header names and values that could break the request's framing are
/// refused.
fn request(
    path: &str,
    authority: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ferrule-rules\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    let mut has_content_type = false;
    for (key, value) in headers {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if key.is_empty() || bad(key) || bad(value) || key.contains(':') {
            return Err(format!("header {key:?} cannot be sent"));
        }
        let lower = key.to_ascii_lowercase();
        if lower == "content-length" || lower == "host" || lower == "connection" {
            continue;
        }
        has_content_type |= lower == "content-type";
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    if !has_content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Ok(bytes)
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    url: &str,
) -> Result<u16, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("sending to {url}: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("sending to {url}: {e}"))?;
    let mut line = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the answer of {url}: {e}"))?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&buf[..n]);
        if line.windows(2).any(|w| w == b"\r\n") || line.len() > MAX_STATUS_LINE {
            break;
        }
    }
    parse_status(&line).ok_or_else(|| format!("{url} did not answer with an HTTP status line"))
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..answer.len().min(64))?).ok()?;
    let mut parts = text.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_status, request};

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
    }

    #[test]
    fn headers_cannot_break_the_framing() {
        let ok = request(
            "/p?q=1",
            "h:8",
            &[("X-A".into(), "b".into())],
            "application/json",
            b"{}",
        )
        .unwrap_or_default();
        let text = String::from_utf8_lossy(&ok);
        assert!(
            text.starts_with("POST /p?q=1 HTTP/1.1\r\nHost: h:8\r\n"),
            "{text}"
        );
        assert!(text.contains("X-A: b\r\n") && text.contains("Content-Type: application/json\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
        assert!(request("/", "h", &[("X".into(), "a\r\nEvil: 1".into())], "t", b"").is_err());
        assert!(request("/", "h", &[("X\nY".into(), "a".into())], "t", b"").is_err());
    }
}
