//! Byte transports under MQTT: TCP, TLS, and WebSocket (plain or over TLS), behind one type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

/// The kinds of listener the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// MQTT over plain TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerKind {
    /// Whether this listener speaks TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Mqtts | ListenerKind::Wss)
    }

    /// Whether MQTT travels in WebSocket frames.
    pub fn is_websocket(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }

    /// A short name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Mqtt => "mqtt",
            ListenerKind::Mqtts => "mqtts",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the broker knows about a client connection before it reads CONNECT.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener it came in on.
    pub listener: ListenerKind,
    /// The negotiated TLS version, for logs.
    pub tls_version: Option<&'static str>,
    /// Who the client certificate identifies, when the listener's verifier is the registry's
    /// ([`crate::client_auth::RegistryClientVerifier`]).
    pub identity: Option<std::sync::Arc<crate::client_auth::ClientIdentity>>,
}

pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// One client's byte pipe. MQTT packets may span WebSocket frames and frames may hold several
/// packets, so both variants are read as a byte stream.
pub(crate) enum Transport {
    Stream(Box<dyn ByteStream>),
    Ws(Box<WebSocketStream<Box<dyn ByteStream>>>),
}

impl Transport {
    /// Reads more bytes into `buf`; `Ok(0)` means the peer closed. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Transport::Stream(s) => s.read_buf(buf).await,
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    None => return Ok(0),
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(Message::Binary(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "WebSocket text frame: MQTT must travel in binary frames",
                        ));
                    }
                    Some(Ok(_)) => continue,
                }
            },
        }
    }

    /// Reads like [`Transport::read`], but, with `release`, holds no buffer memory while there
    /// is nothing to read: when a poll finds nothing, an empty `rbuf` and an empty `wbuf` give
    /// their memory back, and `rbuf` gets `capacity` bytes again when the client sends
    /// something. Busy connections, whose reads find bytes waiting, keep their buffers.
    /// Cancel-safe.
    pub(crate) fn read_or_release<'a>(
        &'a mut self,
        rbuf: &'a mut BytesMut,
        wbuf: &'a mut BytesMut,
        capacity: usize,
        release: bool,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        std::future::poll_fn(move |cx| {
            if rbuf.capacity() == 0 {
                rbuf.reserve(capacity);
            }
            // `read` is cancel-safe, so a fresh one per poll loses nothing.
            let polled = std::pin::pin!(self.read(rbuf)).poll(cx);
            if polled.is_pending() && release {
                if rbuf.is_empty() {
                    *rbuf = BytesMut::new();
                }
                if wbuf.is_empty() {
                    *wbuf = BytesMut::new();
                }
            }
            polled
        })
    }

    /// Writes what the socket takes of `buf` without waiting, flushes, and returns whether all
    /// of it went; what did not stays in `buf`, for [`Transport::write`]. Most writes find room
    /// in the socket, and then the connection's task needs no future for them.
    pub(crate) fn write_now<'a>(
        &'a mut self,
        buf: &'a mut BytesMut,
    ) -> impl Future<Output = io::Result<bool>> + 'a {
        std::future::poll_fn(move |cx| {
            // WebSocket frames go through their sink, which `write` drives.
            let Transport::Stream(s) = self else {
                return Poll::Ready(Ok(false));
            };
            let mut s = Pin::new(s);
            while !buf.is_empty() {
                match s.as_mut().poll_write(cx, buf) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => buf.advance(n),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Ready(Ok(false)),
                }
            }
            match s.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    buf.clear();
                    Poll::Ready(Ok(true))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Ready(Ok(false)),
            }
        })
    }

    /// Writes all of `buf` and leaves it empty. Cancel-safe in that what was not written yet
    /// stays in `buf`.
    pub(crate) async fn write(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Transport::Stream(s) => {
                s.write_all_buf(buf).await?;
                buf.clear();
                s.flush().await
            }
            Transport::Ws(ws) => ws
                .send(Message::Binary(buf.split().freeze()))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Closes the write side, ignoring errors: the connection is over either way.
    pub(crate) async fn close(&mut self) {
        match self {
            Transport::Stream(s) => {
                let _ = s.shutdown().await;
            }
            Transport::Ws(ws) => {
                let _ = ws.close(None).await;
            }
        }
    }
}

/// Completes the WebSocket upgrade, choosing the `mqtt` subprotocol when the client offers it.
pub(crate) async fn accept_websocket(stream: Box<dyn ByteStream>) -> io::Result<Transport> {
    let ws = tokio_tungstenite::accept_hdr_async(stream, choose_subprotocol)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Transport::Ws(Box::new(ws)))
}

// Clients send `Sec-WebSocket-Protocol: mqtt` (or the 3.1 name `mqttv3.1`). A client that offers
// protocols but neither of those is refused, as Mosquitto does; one that offers none is accepted.
#[allow(clippy::result_large_err)] // the signature is tungstenite's
fn choose_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if offered.is_empty() {
        return Ok(resp);
    }
    match offered.iter().find(|p| **p == "mqtt" || **p == "mqttv3.1") {
        Some(p) => {
            let value = HeaderValue::from_str(p).map_err(|_| refuse("bad subprotocol"))?;
            resp.headers_mut().insert("sec-websocket-protocol", value);
            Ok(resp)
        }
        None => Err(refuse("no supported subprotocol offered; use \"mqtt\"")),
    }
}

fn refuse(msg: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(msg.to_owned()));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}
