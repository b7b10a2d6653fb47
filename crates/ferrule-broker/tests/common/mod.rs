//! Helpers shared by the broker's integration tests: a broker on a real socket with a real
//! SQLite store, and a small MQTT client built on `ferrule_mqtt` that speaks over TCP, TLS and
//! WebSocket.
//!
//! Every wait is bounded by [`WAIT`]; a test that would hang fails instead, naming what it was
//! waiting for.

// Each test file uses a different subset of these helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrule_broker::{Broker, BrokerConfig, ListenerKind, ListenerSpec};
use ferrule_mqtt::{
    ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS,
    ReasonCode, SubAck, Subscribe, Subscription, TopicFilter, TopicName, UnsubAck, Unsubscribe,
    Will, decode, encode,
};
use ferrule_store::BrokerStore;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(3);

/// A broker with one plain TCP listener.
pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
}

impl TestBroker {
    /// Starts a broker on a fresh in-memory SQLite store, so the write-behind path runs too.
    pub async fn start(config: BrokerConfig) -> TestBroker {
        let store = BrokerStore::open_in_memory()
            .await
            .expect("open an in-memory store");
        TestBroker::with_store(config, Some(store)).await
    }

    /// Starts a broker on the SQLite database file at `path` (created if missing).
    pub async fn start_sqlite(config: BrokerConfig, path: &Path) -> TestBroker {
        let store = BrokerStore::open_sqlite(path)
            .await
            .expect("open the SQLite store");
        TestBroker::with_store(config, Some(store)).await
    }

    /// Starts a broker with the given store (or none) and a TCP listener on a free port.
    pub async fn with_store(config: BrokerConfig, store: Option<BrokerStore>) -> TestBroker {
        let broker = Broker::start(config, store)
            .await
            .expect("start the broker");
        let addr = broker
            .listen(spec(ListenerKind::Mqtt, None))
            .await
            .expect("listen");
        TestBroker { broker, addr }
    }

    /// Connects a client and asserts the CONNACK is a success.
    pub async fn client(&self, opts: Opts) -> Client {
        let (client, ack) = Client::connect(self.addr, opts).await;
        assert_eq!(ack.reason, ReasonCode::SUCCESS, "CONNACK: {ack:?}");
        client
    }

    /// Waits until the broker counts exactly `n` open connections: a connection is only counted
    /// out once its end (session detach, will) has been fully processed.
    pub async fn wait_connections(&self, n: usize) {
        let waited = tokio::time::timeout(WAIT, async {
            while self.broker.stats().connections != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "broker still has {} connections, expected {n}",
            self.broker.stats().connections
        );
    }

    /// Waits until the broker holds exactly `n` sessions.
    pub async fn wait_sessions(&self, n: usize) {
        let waited = tokio::time::timeout(WAIT, async {
            while self.broker.stats().sessions != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "broker still has {} sessions, expected {n}",
            self.broker.stats().sessions
        );
    }
}

/// A listener on a free local port.
pub fn spec(kind: ListenerKind, tls: Option<Arc<rustls::ServerConfig>>) -> ListenerSpec {
    ListenerSpec {
        kind,
        addr: "127.0.0.1:0".parse().unwrap(),
        tls,
    }
}

/// The broker's defaults, with a short persistence interval so write-behind happens in tests.
pub fn config() -> BrokerConfig {
    BrokerConfig {
        persist_interval: Duration::from_millis(100),
        ..BrokerConfig::default()
    }
}

/// What a client puts in its CONNECT.
#[derive(Debug, Clone)]
pub struct Opts {
    pub protocol: ProtocolVersion,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Properties,
    pub will: Option<Will>,
}

impl Opts {
    /// MQTT 5, clean start, no session expiry, keep-alive 30 s.
    pub fn v5(client_id: &str) -> Opts {
        Opts {
            protocol: ProtocolVersion::V5,
            client_id: client_id.to_owned(),
            clean_start: true,
            keep_alive: 30,
            properties: Properties::default(),
            will: None,
        }
    }

    /// MQTT 3.1.1, clean session, keep-alive 30 s.
    pub fn v3(client_id: &str) -> Opts {
        Opts {
            protocol: ProtocolVersion::V311,
            ..Opts::v5(client_id)
        }
    }

    pub fn clean(mut self, clean_start: bool) -> Opts {
        self.clean_start = clean_start;
        self
    }

    /// MQTT 5 Session Expiry Interval.
    pub fn expiry(mut self, secs: u32) -> Opts {
        self.properties.session_expiry_interval = Some(secs);
        self
    }

    pub fn keep_alive(mut self, secs: u16) -> Opts {
        self.keep_alive = secs;
        self
    }

    pub fn will(mut self, will: Will) -> Opts {
        self.will = Some(will);
        self
    }

    pub fn props(mut self, f: impl FnOnce(&mut Properties)) -> Opts {
        f(&mut self.properties);
        self
    }
}

/// A will message.
pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: topic_name(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: Properties::default(),
    }
}

pub fn topic_name(t: &str) -> TopicName {
    TopicName::new(t).unwrap()
}

pub fn filter(f: &str) -> TopicFilter {
    TopicFilter::new(f).unwrap()
}

/// A PUBLISH without a packet id (the client fills it in) or properties.
pub fn message(topic: &str, payload: &str, qos: QoS, retain: bool) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: Some(topic_name(topic)),
        packet_id: None,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: Properties::default(),
    }
}

/// A PUBLISH's payload as text.
pub fn text(p: &Publish) -> &str {
    std::str::from_utf8(&p.payload).expect("UTF-8 payload")
}

/// The client's end of a byte stream: TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Io {
    Stream(Box<dyn Stream>),
    Ws(Box<WebSocketStream<Box<dyn Stream>>>),
}

/// What the next read produced.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test helper; `Packet` is large because CONNECT is
pub enum Next {
    Packet(Packet),
    /// Nothing arrived within the wait.
    Timeout,
    /// The broker closed the connection.
    Closed,
}

/// A test MQTT client. Packets that arrive while a helper waits for a specific one (a PUBACK,
/// say) are kept and returned by later reads, in order.
pub struct Client {
    io: Io,
    rbuf: BytesMut,
    pending: VecDeque<Packet>,
    /// The version packets are encoded and decoded with; set by [`Client::handshake`].
    pub protocol: ProtocolVersion,
    next_id: u16,
    eof: bool,
}

impl Client {
    /// Opens a TCP connection without sending anything.
    pub async fn tcp(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr)
            .await
            .expect("connect to the broker");
        tcp.set_nodelay(true).unwrap();
        Client::over(Box::new(tcp))
    }

    /// A client over an established stream (TCP, TLS).
    pub fn over(stream: Box<dyn Stream>) -> Client {
        Client::new(Io::Stream(stream))
    }

    /// Completes a WebSocket handshake over `stream`, offering the `mqtt` subprotocol.
    pub async fn websocket(stream: Box<dyn Stream>, url: &str) -> (Client, Response) {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("WebSocket handshake timed out")
            .expect("WebSocket handshake");
        (Client::new(Io::Ws(Box::new(ws))), resp)
    }

    /// A client over a WebSocket that is already open.
    pub fn new_ws(ws: WebSocketStream<Box<dyn Stream>>) -> Client {
        Client::new(Io::Ws(Box::new(ws)))
    }

    fn new(io: Io) -> Client {
        Client {
            io,
            rbuf: BytesMut::new(),
            pending: VecDeque::new(),
            protocol: ProtocolVersion::V5,
            next_id: 1,
            eof: false,
        }
    }

    /// Opens a TCP connection and sends CONNECT; returns the client and the CONNACK.
    pub async fn connect(addr: SocketAddr, opts: Opts) -> (Client, ConnAck) {
        let mut c = Client::tcp(addr).await;
        let ack = c.handshake(opts).await;
        (c, ack)
    }

    /// Sends CONNECT and returns the CONNACK.
    pub async fn handshake(&mut self, opts: Opts) -> ConnAck {
        self.protocol = opts.protocol;
        self.send(Packet::Connect(Connect {
            protocol: opts.protocol,
            clean_start: opts.clean_start,
            keep_alive: opts.keep_alive,
            client_id: opts.client_id,
            will: opts.will,
            username: None,
            password: None,
            properties: opts.properties,
        }))
        .await;
        match self.recv().await {
            Packet::ConnAck(ack) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Encodes and sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        encode(&packet, self.protocol, &mut buf)
            .unwrap_or_else(|e| panic!("encode {packet:?}: {e}"));
        self.send_raw(&buf).await;
    }

    /// Sends bytes as they are. A broker that already closed the connection is not an error.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = match &mut self.io {
            Io::Stream(s) => s.write_all(bytes).await.map_err(|e| e.to_string()),
            Io::Ws(ws) => ws
                .send(Message::Binary(Bytes::copy_from_slice(bytes)))
                .await
                .map_err(|e| e.to_string()),
        };
    }

    /// The next packet, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Next {
        if let Some(p) = self.pending.pop_front() {
            return Next::Packet(p);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match decode(&mut self.rbuf, self.protocol, u32::MAX) {
                Ok(Some(p)) => return Next::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("the broker sent a malformed packet: {e}"),
            }
            if self.eof {
                return Next::Closed;
            }
            match tokio::time::timeout_at(deadline, read_more(&mut self.io, &mut self.rbuf)).await {
                Err(_) => return Next::Timeout,
                Ok(0) => self.eof = true,
                Ok(_) => {}
            }
        }
    }

    /// The next packet; panics if none arrives within [`WAIT`].
    pub async fn recv(&mut self) -> Packet {
        match self.next(WAIT).await {
            Next::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Waits for the first packet `pick` accepts, keeping the others for later reads.
    pub async fn recv_where<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Packet) -> Option<T>,
    ) -> T {
        let mut skipped = VecDeque::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(wait).await {
                Next::Packet(p) => {
                    if let Some(t) = pick(&p) {
                        skipped.extend(self.pending.drain(..));
                        self.pending = skipped;
                        return t;
                    }
                    skipped.push_back(p);
                }
                other => panic!("waiting for {what}: {other:?} (received meanwhile: {skipped:?})"),
            }
        }
    }

    /// Asserts that nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        match self.next(wait).await {
            Next::Timeout => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    /// Waits for the broker to close the connection; returns the DISCONNECT it sent first, if
    /// any. Any other packet fails the test.
    pub async fn expect_closed(&mut self) -> Option<Disconnect> {
        let mut disconnect = None;
        loop {
            match self.next(WAIT).await {
                Next::Closed => return disconnect,
                Next::Packet(Packet::Disconnect(d)) if disconnect.is_none() => disconnect = Some(d),
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// Waits for the broker to close the connection, discarding whatever bytes it sends first
    /// (for connections that do not speak MQTT, such as TLS alerts to a plain client).
    pub async fn expect_eof(&mut self) {
        let closed = tokio::time::timeout(WAIT, async {
            while read_more(&mut self.io, &mut self.rbuf).await > 0 {
                self.rbuf.clear();
            }
        })
        .await;
        assert!(closed.is_ok(), "the connection is still open");
        self.eof = true;
    }

    /// Waits for a DISCONNECT and the close after it; returns its reason code.
    pub async fn expect_disconnect(&mut self) -> ReasonCode {
        match self.expect_closed().await {
            Some(d) => d.reason,
            None => panic!("the connection closed without a DISCONNECT"),
        }
    }

    fn alloc_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Sends a PUBLISH (allocating a packet id for QoS 1/2) without waiting; returns the id.
    pub async fn publish_only(&mut self, mut p: Publish) -> Option<u16> {
        if p.qos != QoS::AtMostOnce && p.packet_id.is_none() {
            p.packet_id = Some(self.alloc_id());
        }
        let id = p.packet_id;
        self.send(Packet::Publish(p)).await;
        id
    }

    /// Publishes and completes the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP). Returns the
    /// reason code of the PUBACK or PUBREC.
    pub async fn publish_msg(&mut self, p: Publish) -> Option<ReasonCode> {
        let qos = p.qos;
        let id = self.publish_only(p).await?;
        match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(
                self.recv_where("PUBACK", |p| match p {
                    Packet::PubAck(a) if a.packet_id == id => Some(a.reason),
                    _ => None,
                })
                .await,
            ),
            QoS::ExactlyOnce => {
                let rec = self
                    .recv_where("PUBREC", |p| match p {
                        Packet::PubRec(a) if a.packet_id == id => Some(a.reason),
                        _ => None,
                    })
                    .await;
                if rec.is_error() {
                    return Some(rec);
                }
                self.send(Packet::PubRel(PubResp::new(id))).await;
                let comp = self
                    .recv_where("PUBCOMP", |p| match p {
                        Packet::PubComp(a) if a.packet_id == id => Some(a.reason),
                        _ => None,
                    })
                    .await;
                assert_eq!(comp, ReasonCode::SUCCESS, "PUBCOMP reason");
                Some(rec)
            }
        }
    }

    /// Publishes a text message and completes the QoS flow.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &str,
        qos: QoS,
        retain: bool,
    ) -> Option<ReasonCode> {
        self.publish_msg(message(topic, payload, qos, retain)).await
    }

    /// Acknowledges a received PUBLISH as its QoS asks: PUBACK, or PUBREC, PUBREL, PUBCOMP.
    pub async fn ack(&mut self, p: &Publish) {
        let Some(id) = p.packet_id else { return };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(Packet::PubAck(PubResp::new(id))).await,
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(PubResp::new(id))).await;
                let rel = self
                    .recv_where("PUBREL", |p| match p {
                        Packet::PubRel(a) if a.packet_id == id => Some(a.reason),
                        _ => None,
                    })
                    .await;
                assert_eq!(rel, ReasonCode::SUCCESS, "PUBREL reason");
                self.send(Packet::PubComp(PubResp::new(id))).await;
            }
        }
    }

    /// Subscribes with the given subscriptions and SUBSCRIBE properties; returns the SUBACK.
    pub async fn subscribe_with(
        &mut self,
        filters: Vec<Subscription>,
        properties: Properties,
    ) -> SubAck {
        let packet_id = self.alloc_id();
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        }))
        .await;
        self.recv_where("SUBACK", |p| match p {
            Packet::SubAck(a) if a.packet_id == packet_id => Some(a.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes to one filter and asserts it was granted `qos`.
    pub async fn subscribe(&mut self, f: &str, qos: QoS) {
        let ack = self
            .subscribe_with(
                vec![Subscription::new(filter(f), qos)],
                Properties::default(),
            )
            .await;
        assert_eq!(
            ack.reasons,
            vec![ReasonCode::granted(qos)],
            "SUBACK for {f}"
        );
    }

    pub async fn unsubscribe(&mut self, filters: &[&str]) -> UnsubAck {
        let packet_id = self.alloc_id();
        let filters = filters.iter().map(|f| filter(f)).collect();
        self.send(Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties: Properties::default(),
        }))
        .await;
        self.recv_where("UNSUBACK", |p| match p {
            Packet::UnsubAck(a) if a.packet_id == packet_id => Some(a.clone()),
            _ => None,
        })
        .await
    }

    /// PINGREQ, then waits for PINGRESP.
    pub async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        self.recv_where("PINGRESP", |p| matches!(p, Packet::PingResp).then_some(()))
            .await;
    }

    /// A normal DISCONNECT, then waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::default())).await;
        assert!(
            self.expect_closed().await.is_none(),
            "the broker answered DISCONNECT with DISCONNECT"
        );
    }

    /// DISCONNECT with a reason code and properties, then waits for the broker to close.
    pub async fn disconnect_with(mut self, reason: ReasonCode, properties: Properties) {
        self.send(Packet::Disconnect(Disconnect { reason, properties }))
            .await;
        let _ = self.expect_closed().await;
    }
}

/// Reads what is available; 0 means the peer closed (a WebSocket close frame included).
async fn read_more(io: &mut Io, buf: &mut BytesMut) -> usize {
    match io {
        Io::Stream(s) => s.read_buf(buf).await.unwrap_or(0),
        Io::Ws(ws) => loop {
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => {
                    buf.extend_from_slice(&data);
                    if !data.is_empty() {
                        return data.len();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return 0,
                Some(Ok(_)) => {}
            }
        },
    }
}
