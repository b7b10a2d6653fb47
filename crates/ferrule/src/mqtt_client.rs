//! A small MQTT 3.1.1 client over the `ferrule-mqtt` codec, for the command line: plain TCP
//! (`ferrule events`, the demo's subscriber) or TLS presenting a device certificate chain
//! (device certificate, then its CA), as JITR devices do (the demo's device).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use bytes::{Bytes, BytesMut};
use ferrule_mqtt::{
    ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS,
    SubAck, Subscribe, Subscription, TopicFilter, TopicName,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Largest packet accepted from the broker.
const MAX_PACKET: u32 = 1024 * 1024;

/// Keep alive, in seconds. A client waiting for messages pings at half of it.
const KEEP_ALIVE: u16 = 60;

/// One MQTT 3.1.1 connection over any byte stream.
pub(crate) struct Client<S> {
    stream: S,
    rbuf: BytesMut,
}

/// The device's TLS connection.
pub(crate) type TlsClient = Client<tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens a plain TCP connection (the connection is not yet MQTT: call [`Client::connect`]).
pub(crate) async fn tcp(addr: SocketAddr) -> anyhow::Result<Client<TcpStream>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    Ok(Client::new(stream))
}

/// A TLS client configuration that trusts the PEM CA certificates in `server_ca` and presents
/// `chain_pem` (leaf first) with `key_pem`.
pub(crate) fn tls_config(
    server_ca: &[u8],
    chain_pem: &str,
    key_pem: &str,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca) {
        roots
            .add(cert.context("the server CA file")?)
            .context("the server CA certificate")?;
    }
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the device certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("the device key")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the device certificate and key")?;
    Ok(Arc::new(config))
}

/// Opens a TCP connection and completes the TLS handshake as `config`'s identity, checking the
/// server's certificate for `localhost`.
pub(crate) async fn tls(addr: SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<TlsClient> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
    let name = ServerName::try_from("localhost").map_err(|e| anyhow!("server name: {e}"))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("the TLS handshake")?;
    Ok(Client::new(stream))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream,
            rbuf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// Sends CONNECT (clean session) and waits for CONNACK; a refusal is an error.
    pub(crate) async fn connect(&mut self, client_id: &str) -> anyhow::Result<ConnAck> {
        self.send(&Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: KEEP_ALIVE,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }))
        .await?;
        let ack = match self.recv().await.context("waiting for CONNACK")? {
            Packet::ConnAck(ack) => ack,
            other => bail!("expected CONNACK, got {}", other.kind()),
        };
        if ack.reason.is_error() {
            bail!("the broker refused CONNECT: {}", ack.reason);
        }
        Ok(ack)
    }

    /// Subscribes to `filters` at QoS 1 in one SUBSCRIBE and waits for SUBACK; a refused
    /// filter is an error naming it.
    pub(crate) async fn subscribe(&mut self, filters: &[&str]) -> anyhow::Result<SubAck> {
        let mut subscriptions = Vec::with_capacity(filters.len());
        for filter in filters {
            let parsed =
                TopicFilter::new(filter).map_err(|e| anyhow!("topic filter {filter}: {e}"))?;
            subscriptions.push(Subscription::new(parsed, QoS::AtLeastOnce));
        }
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: subscriptions,
            properties: Properties::default(),
        }))
        .await?;
        let ack = loop {
            match self.recv().await.context("waiting for SUBACK")? {
                Packet::SubAck(ack) => break ack,
                // Retained messages may come before the SUBACK; they are not what we wait for.
                Packet::Publish(_) => {}
                other => bail!("expected SUBACK, got {}", other.kind()),
            }
        };
        if let Some((filter, reason)) = filters
            .iter()
            .zip(&ack.reasons)
            .find(|(_, reason)| reason.is_error())
        {
            bail!("the broker refused the subscription to {filter}: {reason}");
        }
        Ok(ack)
    }

    /// Publishes at QoS 1 and waits for PUBACK.
    pub(crate) async fn publish_qos1(&mut self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        let name = TopicName::new(topic).map_err(|e| anyhow!("topic {topic}: {e}"))?;
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Some(name),
            packet_id: Some(1),
            payload: Bytes::copy_from_slice(payload),
            properties: Properties::default(),
        }))
        .await?;
        loop {
            match self.recv().await.context("waiting for PUBACK")? {
                Packet::PubAck(ack) if ack.packet_id == 1 => {
                    if ack.reason.is_error() {
                        bail!("the broker refused the message: {}", ack.reason);
                    }
                    return Ok(());
                }
                Packet::PingResp => {}
                other => bail!("expected PUBACK, got {}", other.kind()),
            }
        }
    }

    /// Waits for the next PUBLISH (acknowledging it at QoS 1): its topic and payload. While
    /// nothing arrives it pings the broker, so it can wait indefinitely.
    pub(crate) async fn next_message(&mut self) -> anyhow::Result<(String, Bytes)> {
        let ping_every = std::time::Duration::from_secs(u64::from(KEEP_ALIVE / 2));
        loop {
            // `recv` only appends to the read buffer, so giving up on it loses nothing.
            let Ok(packet) = tokio::time::timeout(ping_every, self.recv()).await else {
                self.send(&Packet::PingReq).await?;
                continue;
            };
            match packet.context("waiting for a message")? {
                Packet::Publish(p) => {
                    if let Some(id) = p.packet_id {
                        self.send(&Packet::PubAck(PubResp::new(id))).await?;
                    }
                    let topic = p.topic.map(|t| t.as_str().to_owned()).unwrap_or_default();
                    return Ok((topic, p.payload));
                }
                Packet::PingResp => {}
                other => bail!("expected PUBLISH, got {}", other.kind()),
            }
        }
    }

    /// Sends DISCONNECT and closes (best effort).
    pub(crate) async fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect(Disconnect::default())).await;
        let _ = self.stream.shutdown().await;
    }

    async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        ferrule_mqtt::encode(packet, ProtocolVersion::V311, &mut out)
            .map_err(|e| anyhow!("encoding {}: {e}", packet.kind()))?;
        self.stream
            .write_all(&out)
            .await
            .context("writing to the broker")?;
        self.stream.flush().await.context("writing to the broker")
    }

    async fn recv(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) =
                ferrule_mqtt::decode(&mut self.rbuf, ProtocolVersion::V311, MAX_PACKET)
                    .map_err(|e| anyhow!("malformed packet from the broker: {e}"))?
            {
                return Ok(packet);
            }
            self.rbuf.reserve(8 * 1024);
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .context("reading from the broker")?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
        }
    }
}
