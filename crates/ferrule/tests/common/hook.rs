//! A recording HTTP/1.1 server on `127.0.0.1:0` ([`Hook`]) standing in for the endpoint of a
//! topic rule's `http` action: it records every request (method, path, headers, body) and
//! answers with a scripted sequence of replies, so a test sees what the rules engine sent and
//! how often it tried.
//!
//! One thread accepts; each connection gets its own thread. Every read has a timeout and every
//! thread checks the stop flag, so dropping a [`Hook`] ends them all promptly.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long one request may take to arrive in full.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head or body the hook reads.
const MAX_REQUEST: usize = 1 << 20;
/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// How the hook answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// This status with an empty body, then the connection is closed.
    Status(u16),
    /// Nothing: the request is read and the connection held open until the client gives up.
    Silent,
}

/// One request the hook received.
#[derive(Debug, Clone)]
pub(crate) struct HookRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    /// In the order received, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

impl HookRequest {
    /// The first header called `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics (showing it) if it is not.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the request body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

struct Shared {
    requests: Mutex<Vec<HookRequest>>,
    replies: Vec<Reply>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<HookRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The recording HTTP server. Stopped when dropped.
pub(crate) struct Hook {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Hook {
    /// Listens on `127.0.0.1:0`; the n-th request gets `replies[n]`, and the last reply repeats.
    pub(crate) fn start(replies: &[Reply]) -> Hook {
        assert!(!replies.is_empty(), "a hook needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the hook listener");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking hook listener");
        let addr = listener.local_addr().expect("the hook's address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            replies: replies.to_vec(),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        Hook {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Always answers `status`.
    pub(crate) fn answering(status: u16) -> Hook {
        Hook::start(&[Reply::Status(status)])
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        assert!(path.starts_with('/'), "{path:?}");
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<HookRequest> {
        self.shared.lock().clone()
    }

    /// Waits until at least `n` requests have arrived; returns all of them. Panics after
    /// `timeout`, saying what did arrive.
    pub(crate) fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<HookRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the hook at {} received {} request(s), expected {n}, within {timeout:?}: {got:?}",
                self.addr,
                got.len()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut handlers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                handlers.push(thread::spawn(move || serve(stream, &shared)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(POLL),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// Reads one request off a connection and answers it. Every answer closes the connection, so
/// each attempt of a client shows up as a connection of its own.
fn serve(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut buf = Vec::new();
    let Some(request) = read_request(&mut stream, &mut buf, shared) else {
        return;
    };
    let reply = {
        let mut log = shared.lock();
        let n = log.len();
        log.push(request);
        shared.replies[n.min(shared.replies.len() - 1)]
    };
    match reply {
        Reply::Status(status) => {
            let answer = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
        }
        Reply::Silent => {
            // Hold the connection until the client closes it (or the hook stops).
            let mut sink = [0u8; 1024];
            while !shared.stop.load(Ordering::SeqCst) {
                match stream.read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Reads more bytes into `buf`; `false` once the peer closed, the hook stopped, or `deadline`
/// passed with nothing to read.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared, deadline: Instant) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if shared.stop.load(Ordering::SeqCst) || buf.len() > MAX_REQUEST {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if is_timeout(&e) => {
                if Instant::now() > deadline {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request from `buf` and the stream: the head, then a `Content-Length` or chunked body.
/// `None` if the connection ends first. A connection may stay idle as long as the hook runs;
/// a request, once begun, must complete within [`REQUEST_TIMEOUT`].
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Option<HookRequest> {
    let mut deadline = Instant::now() + REQUEST_TIMEOUT;
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.is_empty() {
            // Idle between requests: keep waiting while the hook runs.
            deadline = Instant::now() + REQUEST_TIMEOUT;
        }
        if !fill(stream, buf, shared, deadline) {
            return None;
        }
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(stream, buf, shared, deadline)?
    } else {
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            if !fill(stream, buf, shared, deadline) {
                return None;
            }
        }
        buf.drain(..len).collect()
    };
    Some(HookRequest {
        method,
        path,
        headers,
        body,
        at,
    })
}

fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shared: &Shared,
    deadline: Instant,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            if !fill(stream, buf, shared, deadline) {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (usually none), then the blank line.
            while find(buf, b"\r\n").is_none() {
                if !fill(stream, buf, shared, deadline) {
                    return None;
                }
            }
            let end = find(buf, b"\r\n").unwrap_or(0);
            buf.drain(..end + 2);
            return Some(body);
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf, shared, deadline) {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}
