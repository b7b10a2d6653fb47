//! A bare HTTP/1.1 GET for the API listener, and a Prometheus text reader.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::CLIENT_TIMEOUT;

/// `GET path` on the API listener with a bare HTTP/1.1 request; returns (status, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s =
        TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connecting to the API listener");
    s.set_read_timeout(Some(CLIENT_TIMEOUT))
        .expect("read timeout");
    s.set_write_timeout(Some(CLIENT_TIMEOUT))
        .expect("write timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("reading the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return out;
        };
        if n == 0 || rest.len() < n {
            return out;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
}

/// The value of the Prometheus sample whose name-and-labels part is exactly `series`
/// (e.g. `ferrule_messages_received_total{qos="1"}`).
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.rsplit_once(' ')
            .filter(|(name, _)| *name == series)
            .and_then(|(_, v)| v.parse().ok())
    })
}

/// The sum of the `name{...}` samples in `text` whose labels include every `label="value"` pair
/// in `labels`; `None` when no sample matches (counters appear on their first increment).
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(rest) = series.strip_prefix(name) else {
            continue;
        };
        let have: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            inner.split(',').map(str::trim).collect()
        } else {
            continue; // another metric whose name starts with `name`
        };
        if wanted.iter().all(|w| have.contains(&w.as_str()))
            && let Ok(v) = value.parse::<f64>()
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}
