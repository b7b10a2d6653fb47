//! MQTT over TLS with a client certificate, for the mTLS scenarios: a pool of device identities
//! loaded once, and one connection driven through its phases (TCP + TLS handshake, CONNECT,
//! CONNACK, a first PUBLISH, DISCONNECT) so that each phase can be timed on its own.
//!
//! Unlike [`crate::conn::Conn`], which drives a plain socket by readiness, a [`TlsConn`] only
//! sets a connection up and tears it down: that is all the TLS scenarios need.
//!
//! Order of calls: [`TlsClient::load`] (server trust, identities), then per connection
//! [`TlsConn::handshake`], [`TlsConn::send_connect`], [`TlsConn::recv_connack`], optionally
//! [`TlsConn::publish_acked`], and [`TlsConn::close`].

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use ferrule_mqtt::{
    ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, TopicName,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How much room to make in the input buffer before each read.
const READ_CHUNK: usize = 4096;

/// One device: its certificate chain and key, ready to connect.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The file stem it was loaded from, for messages.
    pub(crate) name: String,
    /// Hex SHA-256 of the leaf certificate's DER: AWS IoT's certificate id.
    pub(crate) certificate_id: String,
    /// A client configuration presenting this identity.
    config: Arc<ClientConfig>,
}

/// The server to trust and the identities to present.
#[derive(Debug)]
pub(crate) struct TlsClient {
    /// The name the server certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    /// Every identity of the certificate directory, sorted by file name.
    pub(crate) identities: Vec<Identity>,
}

impl TlsClient {
    /// Trusts the CA certificates in `cafile` for the server, named `server_name`, and loads
    /// every `NAME.crt` (PEM chain, leaf first: the chain is sent as is) with its `NAME.key`
    /// (PEM private key) from `certs`.
    ///
    /// Session resumption is off: every connection is a full handshake, as a fleet of devices
    /// connecting for the first time would make, and as the broker must verify anyway.
    pub(crate) fn load(cafile: &Path, certs: &Path, server_name: &str) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cafile)
            .with_context(|| format!("--cafile {}", cafile.display()))?
        {
            let cert = cert.with_context(|| format!("--cafile {}", cafile.display()))?;
            roots.add(cert).with_context(|| {
                format!("--cafile {}: unusable CA certificate", cafile.display())
            })?;
        }
        if roots.is_empty() {
            bail!("--cafile {}: no certificate in it", cafile.display());
        }
        let roots = Arc::new(roots);
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| anyhow!("--server-name {server_name:?}: {e}"))?;

        let mut crts: Vec<PathBuf> = fs::read_dir(certs)
            .with_context(|| format!("--certs {}", certs.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("--certs {}", certs.display()))?;
        crts.retain(|p| p.extension().is_some_and(|e| e == "crt"));
        crts.sort();
        if crts.is_empty() {
            bail!("--certs {}: no NAME.crt files in it", certs.display());
        }
        let identities = crts
            .iter()
            .map(|crt| identity(crt, &roots))
            .collect::<anyhow::Result<_>>()?;
        Ok(TlsClient {
            server_name,
            identities,
        })
    }
}

fn identity(crt: &Path, roots: &Arc<RootCertStore>) -> anyhow::Result<Identity> {
    let key_path = crt.with_extension("key");
    let chain = CertificateDer::pem_file_iter(crt)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading {}", crt.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("{}: no certificate in it", crt.display());
    };
    let certificate_id = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(chain, key)
        .with_context(|| format!("{} and {}", crt.display(), key_path.display()))?;
    config.resumption = Resumption::disabled();
    let name = crt
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(Identity {
        name,
        certificate_id,
        config: Arc::new(config),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How the broker ended a connection, as [`TlsConn::wait_closed`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// It sent DISCONNECT (MQTT 5 names a reason; 3.1.1 brokers only close).
    Disconnect,
    /// The stream ended (TCP FIN, with or without TLS close_notify).
    Eof,
    /// Reading failed (e.g. a reset), with why.
    Error(String),
}

/// An MQTT connection over TLS, set up phase by phase.
#[derive(Debug)]
pub(crate) struct TlsConn {
    stream: TlsStream<TcpStream>,
    protocol: ProtocolVersion,
    rbuf: BytesMut,
    /// How long the TCP connect took, of the whole handshake.
    pub(crate) tcp_connect: Duration,
}

impl TlsConn {
    /// Opens a TCP connection to `addr` and completes the TLS handshake as `identity`.
    ///
    /// The client's side of a TLS 1.3 handshake ends when it has sent its Finished, before the
    /// server has checked the client certificate: that check lands in the next phase.
    pub(crate) async fn handshake(
        addr: SocketAddr,
        server_name: &ServerName<'static>,
        identity: &Identity,
        protocol: ProtocolVersion,
    ) -> anyhow::Result<TlsConn> {
        let began = Instant::now();
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let tcp_connect = began.elapsed();
        tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
        let stream = TlsConnector::from(identity.config.clone())
            .connect(server_name.clone(), tcp)
            .await
            .with_context(|| format!("TLS handshake as {}", identity.name))?;
        Ok(TlsConn {
            stream,
            protocol,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            tcp_connect,
        })
    }

    /// What was negotiated, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`.
    pub(crate) fn negotiated(&self) -> String {
        let (_, session) = self.stream.get_ref();
        let version = session
            .protocol_version()
            .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
        let group = session
            .negotiated_key_exchange_group()
            .map_or_else(|| "?".to_owned(), |g| format!("{:?}", g.name()));
        format!("{version} {suite} {group}")
    }

    /// Sends `connect` (one write and flush).
    pub(crate) async fn send_connect(&mut self, connect: Connect) -> anyhow::Result<()> {
        self.send(&Packet::Connect(connect)).await
    }

    /// Waits for the CONNACK; a refusal, or the broker closing the connection, is an error.
    pub(crate) async fn recv_connack(&mut self) -> anyhow::Result<ConnAck> {
        let ack = match self.recv("CONNACK").await? {
            Packet::ConnAck(ack) => ack,
            other => bail!("expected CONNACK, got {}", other.kind()),
        };
        if ack.reason.is_error() {
            bail!("the broker refused CONNECT: {}", ack.reason);
        }
        Ok(ack)
    }

    /// Publishes `payload` to `topic` at QoS 1 and waits for its PUBACK; a refusal, or the
    /// broker closing the connection first, is an error.
    pub(crate) async fn publish_acked(
        &mut self,
        topic: TopicName,
        payload: Bytes,
    ) -> anyhow::Result<()> {
        const PACKET_ID: u16 = 1;
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Some(topic),
            packet_id: Some(PACKET_ID),
            payload,
            properties: Properties::default(),
        }))
        .await?;
        match self.recv("PUBACK").await? {
            Packet::PubAck(ack) if ack.packet_id == PACKET_ID && !ack.reason.is_error() => Ok(()),
            Packet::PubAck(ack) if ack.packet_id == PACKET_ID => {
                bail!("the broker refused PUBLISH: {}", ack.reason)
            }
            other => bail!("expected PUBACK {PACKET_ID}, got {}", other.kind()),
        }
    }

    /// The next packet from the broker; `expected` names what the caller waits for, for the
    /// error when the broker closes the connection first.
    async fn recv(&mut self, expected: &str) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = ferrule_mqtt::decode(&mut self.rbuf, self.protocol, 64 * 1024)
                .map_err(|e| anyhow!("malformed packet from the broker: {e}"))?
            {
                return Ok(packet);
            }
            self.rbuf.reserve(READ_CHUNK);
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .context("reading from the broker")?;
            if n == 0 {
                bail!("the broker closed the connection before {expected}");
            }
        }
    }

    /// Reads until the broker ends the connection and says how: a DISCONNECT packet, the end
    /// of the stream (with or without close_notify), or a read error. Any other packet is
    /// skipped. Cancel safe only at the cost of losing buffered bytes: meant to be awaited once.
    pub(crate) async fn wait_closed(&mut self) -> Closed {
        loop {
            match ferrule_mqtt::decode(&mut self.rbuf, self.protocol, 64 * 1024) {
                Ok(Some(Packet::Disconnect(_))) => return Closed::Disconnect,
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => return Closed::Error(format!("malformed packet from the broker: {e}")),
            }
            self.rbuf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) => return Closed::Eof,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Closed::Eof,
                Err(e) => return Closed::Error(e.to_string()),
            }
        }
    }

    /// Sends DISCONNECT and close_notify, then closes (best effort, bounded to one second).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.send(&Packet::Disconnect(Disconnect::default())).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        ferrule_mqtt::encode(packet, self.protocol, &mut out)
            .map_err(|e| anyhow!("encoding {}: {e}", packet.kind()))?;
        self.stream
            .write_all(&out)
            .await
            .context("writing to the broker")?;
        self.stream.flush().await.context("writing to the broker")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab]), "000fab");
    }
}
