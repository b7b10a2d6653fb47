//! A small blocking MQTT client over TCP or TLS (rustls), on ferrule-mqtt's codec, for what the
//! command-line clients do not show: the exact reason code of a CONNACK, PUBACK, SUBACK or
//! DISCONNECT, the TLS alert a refused handshake ends with, the client's local port (which
//! rejection events name), and when the server closes the connection. It presents any
//! certificate bytes it is given, garbage included, as devices with broken firmware would.
//!
//! Every read has a deadline; a [`Conn`] closes its socket when dropped (no DISCONNECT: a
//! dropped `Conn` is a lost connection to the server).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ferrule_mqtt::{
    ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS,
    SubAck, Subscribe, Subscription, TopicFilter, TopicName, UnsubAck, Unsubscribe, decode, encode,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::pki::Cert;
use super::{CLIENT_TIMEOUT, Server};

/// Largest packet this client accepts.
const MAX_PACKET: u32 = 1 << 20;

/// The certificate chain (DER, leaf first) and key a TLS client presents.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    chain: Vec<Vec<u8>>,
    key: PathBuf,
}

impl Identity {
    /// Every certificate in `cert`'s PEM file (so a chain file sends the chain), and its key.
    pub(crate) fn of(cert: &Cert) -> Identity {
        let chain = CertificateDer::pem_file_iter(&cert.cert)
            .unwrap_or_else(|e| panic!("reading {}: {e:?}", cert.cert.display()))
            .map(|c| c.expect("a PEM certificate").as_ref().to_vec())
            .collect::<Vec<_>>();
        assert!(
            !chain.is_empty(),
            "no certificate in {}",
            cert.cert.display()
        );
        Identity {
            chain,
            key: cert.key.clone(),
        }
    }

    /// `cert`'s certificates with another key: the client cannot prove it holds the
    /// certificate's key.
    pub(crate) fn with_key(cert: &Cert, key: &Path) -> Identity {
        Identity {
            key: key.to_owned(),
            ..Identity::of(cert)
        }
    }

    /// `der` as the certificate, whatever it is, with the key in `key`.
    pub(crate) fn raw(der: Vec<u8>, key: &Path) -> Identity {
        Identity {
            chain: vec![der],
            key: key.to_owned(),
        }
    }
}

/// Which TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsVersion {
    Tls12,
    Tls13,
}

/// TLS settings: trust the server's development CA, connect as `localhost`.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    server_ca: PathBuf,
    identity: Option<Identity>,
    version: TlsVersion,
}

impl Tls {
    /// TLS 1.3 presenting `cert` (and whatever else is in its file).
    pub(crate) fn device(server: &Server, cert: &Cert) -> Tls {
        Tls {
            server_ca: server.ca(),
            identity: Some(Identity::of(cert)),
            version: TlsVersion::Tls13,
        }
    }

    /// TLS 1.3 presenting `identity`, or no certificate at all.
    pub(crate) fn with_identity(server: &Server, identity: Option<Identity>) -> Tls {
        Tls {
            server_ca: server.ca(),
            identity,
            version: TlsVersion::Tls13,
        }
    }

    pub(crate) fn version(mut self, version: TlsVersion) -> Tls {
        self.version = version;
        self
    }

    fn config(&self) -> Arc<ClientConfig> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.server_ca).expect("reading server-ca.pem") {
            roots
                .add(c.expect("a PEM certificate in server-ca.pem"))
                .expect("a usable server CA");
        }
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.version {
            TlsVersion::Tls12 => &[&rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let identity = self.identity.as_ref().map(|id| {
            let key = PrivateKeyDer::from_pem_file(&id.key)
                .unwrap_or_else(|e| panic!("reading the key {}: {e:?}", id.key.display()));
            let signing_key = provider
                .key_provider
                .load_private_key(key)
                .expect("a key rustls can sign with");
            let chain = id
                .chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect();
            // Handed over as is: rustls's own `with_client_auth_cert` would parse the
            // certificate (and refuse v1 certificates and garbage alike).
            Arc::new(rustls::sign::CertifiedKey::new(chain, signing_key))
        });
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("TLS versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some(key) => builder.with_client_cert_resolver(Arc::new(Fixed(key))),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

/// Always presents one certificate chain.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The server sent this TLS alert (rustls's name for it).
    Alert(String),
    /// Another TLS error.
    Tls(String),
    /// The server closed the connection (EOF, with or without close_notify).
    Closed,
    /// A socket error (reset, broken pipe).
    Io(String),
}

impl Ended {
    fn from_io(e: &io::Error) -> Ended {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return match tls {
                rustls::Error::AlertReceived(alert) => Ended::Alert(format!("{alert:?}")),
                other => Ended::Tls(other.to_string()),
            };
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Ended::Closed,
            _ => Ended::Io(e.to_string()),
        }
    }

    /// Whether it is a TLS alert from the server.
    pub(crate) fn is_alert(&self) -> bool {
        matches!(self, Ended::Alert(_))
    }
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A TLS handshake that failed from the client's side, and the client's port (which the
/// server's rejection event names).
#[derive(Debug, Clone)]
pub(crate) struct HandshakeFailed {
    pub(crate) ended: Ended,
    pub(crate) local_port: u16,
}

/// What [`Conn::recv`] got.
// Packets are passed by value, as ferrule-mqtt makes them; a test client does not mind the size.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Recv {
    Packet(Packet),
    Ended(Ended),
    Timeout,
}

/// How the server ended a connection: the DISCONNECT it sent first (MQTT 5), if any, and how
/// the socket ended.
#[derive(Debug)]
pub(crate) struct Closing {
    pub(crate) disconnect: Option<Disconnect>,
    pub(crate) ended: Ended,
    pub(crate) at: Instant,
}

/// One client connection.
pub(crate) struct Conn {
    stream: Stream,
    version: ProtocolVersion,
    inbuf: BytesMut,
    next_id: u16,
    local: SocketAddr,
    /// Packets read while waiting for something else.
    queue: VecDeque<Packet>,
    ended: Option<Ended>,
}

impl Conn {
    /// Plain TCP to `addr`.
    pub(crate) fn tcp(addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        tcp.set_nodelay(true).expect("nodelay");
        Conn::new(Stream::Tcp(tcp))
    }

    /// TLS to `addr` (as `localhost`) with `tls`, the handshake driven to completion from the
    /// client's side. `Err` if it failed: with TLS 1.2 a refused client certificate ends here;
    /// with TLS 1.3 the client finishes first and reads the server's alert afterwards.
    pub(crate) fn tls(addr: SocketAddr, tls: &Tls) -> Result<Conn, HandshakeFailed> {
        let mut tcp = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        tcp.set_nodelay(true).expect("nodelay");
        let local_port = tcp.local_addr().expect("local address").port();
        tcp.set_read_timeout(Some(CLIENT_TIMEOUT))
            .expect("read timeout");
        let name = ServerName::try_from("localhost").expect("a server name");
        let mut conn = ClientConnection::new(tls.config(), name).expect("a TLS client");
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                return Err(HandshakeFailed {
                    ended: Ended::from_io(&e),
                    local_port,
                });
            }
        }
        Ok(Conn::new(Stream::Tls(Box::new(StreamOwned::new(
            conn, tcp,
        )))))
    }

    fn new(stream: Stream) -> Conn {
        let local = stream.tcp().local_addr().expect("local address");
        Conn {
            stream,
            version: ProtocolVersion::V5,
            inbuf: BytesMut::new(),
            next_id: 0,
            local,
            queue: VecDeque::new(),
            ended: None,
        }
    }

    /// The client's port: rejection events report it as `sourcePort`.
    pub(crate) fn local_port(&self) -> u16 {
        self.local.port()
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// Sends one packet.
    pub(crate) fn send(&mut self, packet: &Packet) -> Result<(), Ended> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let mut buf = BytesMut::new();
        encode(packet, self.version, &mut buf).expect("a well-formed packet");
        let result = self
            .stream
            .write_all(&buf)
            .and_then(|()| self.stream.flush());
        result.map_err(|e| {
            let ended = Ended::from_io(&e);
            self.ended = Some(ended.clone());
            ended
        })
    }

    /// The next packet within `timeout` (queued ones first).
    pub(crate) fn recv(&mut self, timeout: Duration) -> Recv {
        if let Some(p) = self.queue.pop_front() {
            return Recv::Packet(p);
        }
        self.read_packet(Instant::now() + timeout)
    }

    fn read_packet(&mut self, deadline: Instant) -> Recv {
        loop {
            match decode(&mut self.inbuf, self.version, MAX_PACKET) {
                Ok(Some(p)) => return Recv::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("the server sent a malformed packet: {e}"),
            }
            if let Some(e) = &self.ended {
                return Recv::Ended(e.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            self.stream
                .tcp()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.ended = Some(Ended::Closed),
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.ended = Some(Ended::from_io(&e)),
            }
        }
    }

    /// Waits for a packet `pick` accepts, keeping the others queued.
    fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&Packet) -> Option<T>,
    ) -> Result<Option<T>, Ended> {
        if let Some(i) = self.queue.iter().position(|p| pick(p).is_some()) {
            let p = self.queue.remove(i).expect("index in range");
            return Ok(pick(&p));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_packet(deadline) {
                Recv::Packet(p) => match pick(&p) {
                    Some(t) => return Ok(Some(t)),
                    None => self.queue.push_back(p),
                },
                Recv::Ended(e) => return Err(e),
                Recv::Timeout => return Ok(None),
            }
        }
    }

    /// Sends CONNECT (`version`, `client_id`, clean start, keep alive 60 s) and waits up to
    /// `timeout` for the CONNACK, whatever its reason code. `Err` if the connection ended
    /// without one; panics if nothing came within `timeout`.
    pub(crate) fn connect(
        &mut self,
        version: ProtocolVersion,
        client_id: &str,
        timeout: Duration,
    ) -> Result<ConnAck, Ended> {
        self.version = version;
        let connect = Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        self.send(&Packet::Connect(connect))?;
        match self.wait_for(timeout, |p| match p {
            Packet::ConnAck(c) => Some(c.clone()),
            _ => None,
        })? {
            Some(c) => Ok(c),
            None => panic!("no CONNACK and no close within {timeout:?} for {client_id}"),
        }
    }

    /// PUBLISH; for QoS 1 waits for the PUBACK. `Ok(None)` for QoS 0.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<Option<PubResp>, Ended> {
        let qos = QoS::from_u8(qos).expect("QoS 0 or 1");
        assert!(qos != QoS::ExactlyOnce, "this client does QoS 0 and 1");
        let packet_id = (qos != QoS::AtMostOnce).then(|| self.packet_id());
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: Some(TopicName::new(topic).expect("a valid topic")),
            packet_id,
            payload: Bytes::copy_from_slice(payload),
            properties: Properties::default(),
        };
        self.send(&Packet::Publish(publish))?;
        let Some(id) = packet_id else {
            return Ok(None);
        };
        match self.wait_for(CLIENT_TIMEOUT, |p| match p {
            Packet::PubAck(a) if a.packet_id == id => Some(a.clone()),
            _ => None,
        })? {
            Some(ack) => Ok(Some(ack)),
            None => panic!("no PUBACK for {topic} within {CLIENT_TIMEOUT:?}"),
        }
    }

    /// SUBSCRIBE to `filters` (each with its QoS) in one packet; waits for the SUBACK.
    pub(crate) fn subscribe(&mut self, filters: &[(&str, u8)]) -> Result<SubAck, Ended> {
        let packet_id = self.packet_id();
        let subscribe = Subscribe {
            packet_id,
            filters: filters
                .iter()
                .map(|(f, q)| {
                    Subscription::new(
                        TopicFilter::new(f).expect("a valid filter"),
                        QoS::from_u8(*q).expect("a QoS"),
                    )
                })
                .collect(),
            properties: Properties::default(),
        };
        self.send(&Packet::Subscribe(subscribe))?;
        match self.wait_for(CLIENT_TIMEOUT, |p| match p {
            Packet::SubAck(a) if a.packet_id == packet_id => Some(a.clone()),
            _ => None,
        })? {
            Some(ack) => Ok(ack),
            None => panic!("no SUBACK for {filters:?} within {CLIENT_TIMEOUT:?}"),
        }
    }

    /// UNSUBSCRIBE from `filters`; waits for the UNSUBACK.
    pub(crate) fn unsubscribe(&mut self, filters: &[&str]) -> Result<UnsubAck, Ended> {
        let packet_id = self.packet_id();
        let unsubscribe = Unsubscribe {
            packet_id,
            filters: filters
                .iter()
                .map(|f| TopicFilter::new(f).expect("a valid filter"))
                .collect(),
            properties: Properties::default(),
        };
        self.send(&Packet::Unsubscribe(unsubscribe))?;
        match self.wait_for(CLIENT_TIMEOUT, |p| match p {
            Packet::UnsubAck(a) if a.packet_id == packet_id => Some(a.clone()),
            _ => None,
        })? {
            Some(ack) => Ok(ack),
            None => panic!("no UNSUBACK for {filters:?} within {CLIENT_TIMEOUT:?}"),
        }
    }

    /// The next PUBLISH within `timeout` (acknowledged if QoS 1); `None` on timeout or once
    /// the connection has ended.
    pub(crate) fn next_publish(&mut self, timeout: Duration) -> Option<Publish> {
        let got = self
            .wait_for(timeout, |p| match p {
                Packet::Publish(m) => Some(m.clone()),
                _ => None,
            })
            .ok()
            .flatten()?;
        if let Some(id) = got.packet_id {
            let _ = self.send(&Packet::PubAck(PubResp::new(id)));
        }
        Some(got)
    }

    /// Every PUBLISH that arrives within `window`, by topic and payload.
    pub(crate) fn publishes_within(&mut self, window: Duration) -> Vec<(String, String)> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Some(p) = self.next_publish(deadline.saturating_duration_since(Instant::now())) {
            got.push((
                p.topic.map(|t| t.as_str().to_owned()).unwrap_or_default(),
                String::from_utf8_lossy(&p.payload).into_owned(),
            ));
        }
        got
    }

    /// Waits until `deadline` for the server to end the connection. `None` if it is still
    /// open then. Packets other than DISCONNECT are skipped.
    pub(crate) fn wait_closed(&mut self, deadline: Instant) -> Option<Closing> {
        let mut disconnect = None;
        loop {
            let packet = match self.queue.pop_front() {
                Some(p) => Recv::Packet(p),
                None => self.read_packet(deadline),
            };
            match packet {
                Recv::Packet(Packet::Disconnect(d)) => disconnect = Some(d),
                Recv::Packet(_) => {}
                Recv::Ended(ended) => {
                    return Some(Closing {
                        disconnect,
                        ended,
                        at: Instant::now(),
                    });
                }
                Recv::Timeout => return None,
            }
        }
    }

    /// Whether the connection is still open after `window` (reading and dropping packets).
    pub(crate) fn still_open_after(&mut self, window: Duration) -> bool {
        self.wait_closed(Instant::now() + window).is_none()
    }

    /// A client-initiated DISCONNECT, then the socket is closed.
    pub(crate) fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect(Disconnect::default()));
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }
}

/// Connects a device over TLS to the `mqtts` listener with `cert` and asserts a successful
/// CONNACK.
pub(crate) fn connect_device(
    server: &Server,
    cert: &Cert,
    version: ProtocolVersion,
    client_id: &str,
) -> Conn {
    let mut conn = Conn::tls(server.mqtts(), &Tls::device(server, cert))
        .unwrap_or_else(|e| panic!("TLS handshake for {client_id} failed: {e:?}"));
    let ack = conn
        .connect(version, client_id, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{client_id}: connection ended before CONNACK: {e:?}"));
    assert_eq!(ack.reason.0, 0, "{client_id}: CONNECT refused: {ack:?}");
    conn
}

/// A client on the plain `mqtt` listener (anonymous), connected.
pub(crate) fn connect_plain(server: &Server, version: ProtocolVersion, client_id: &str) -> Conn {
    let mut conn = Conn::tcp(server.mqtt());
    let ack = conn
        .connect(version, client_id, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{client_id}: connection ended before CONNACK: {e:?}"));
    assert_eq!(ack.reason.0, 0, "{client_id}: CONNECT refused: {ack:?}");
    conn
}
