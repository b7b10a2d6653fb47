//! One MQTT client connection: a TCP socket, an input and an output buffer, and the
//! `ferrule-mqtt` codec between them. Nothing here knows about scenarios.
//!
//! Order of calls: [`Conn::open`] (CONNECT, then waits for CONNACK), then any mix of
//! [`Conn::queue`] (encode into the output buffer), [`Conn::pump`] (wait for the socket, then
//! read what is there and write what fits), [`Conn::next_packet`] (decode one buffered packet),
//! and finally [`Conn::close`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, BytesMut};
use ferrule_mqtt::{ConnAck, Connect, Disconnect, Packet, Properties, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How much room to make in the input buffer before each read.
const READ_CHUNK: usize = 64 * 1024;

/// A connected, accepted MQTT client.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    protocol: ProtocolVersion,
    max_packet: u32,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// When a PINGREQ is due if nothing else has been written by then.
    ping_at: Option<Instant>,
    ping_every: Option<Duration>,
}

/// The CONNECT the benchmark sends: clean session, no credentials, no will (see
/// [`persistent_connect`] for the other kind of session).
pub(crate) fn connect_packet(
    client_id: String,
    protocol: ProtocolVersion,
    keep_alive: u16,
) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive,
        client_id,
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

/// How long a persistent session outlives its connection (MQTT 5; 3.1.1 sessions do not
/// expire): long enough for a run, short enough that a crashed run cleans up after itself.
const SESSION_EXPIRY_SECS: u32 = 600;

/// A CONNECT for a persistent session: `clean_start` false on 3.1.1 (a new session is made
/// when none exists); on MQTT 5 `clean_start` as given and a session expiry interval.
pub(crate) fn persistent_connect(
    client_id: String,
    protocol: ProtocolVersion,
    keep_alive: u16,
    clean_start: bool,
) -> Connect {
    let mut connect = connect_packet(client_id, protocol, keep_alive);
    if protocol.is_v5() {
        connect.clean_start = clean_start;
        connect.properties.session_expiry_interval = Some(SESSION_EXPIRY_SECS);
    } else {
        connect.clean_start = false;
    }
    connect
}

impl Conn {
    /// Opens a TCP connection, sends `connect` and waits for a successful CONNACK.
    /// `max_packet` bounds every packet accepted from the broker.
    pub(crate) async fn open(
        addr: SocketAddr,
        connect: Connect,
        max_packet: u32,
    ) -> anyhow::Result<(Conn, ConnAck)> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let mut conn = Conn {
            stream,
            protocol: connect.protocol,
            max_packet,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            ping_at: None,
            ping_every: None,
        };
        let keep_alive = connect.keep_alive;
        let client_id = connect.client_id.clone();
        conn.queue(&Packet::Connect(connect))?;
        conn.flush().await?;
        let ack = match conn.recv().await? {
            Packet::ConnAck(ack) => ack,
            other => bail!("{client_id}: expected CONNACK, got {}", other.kind()),
        };
        if ack.reason.is_error() {
            bail!("{client_id}: the broker refused CONNECT: {}", ack.reason);
        }
        let keep_alive = ack.properties.server_keep_alive.unwrap_or(keep_alive);
        if keep_alive > 0 {
            let every = Duration::from_secs(u64::from(keep_alive)) / 2;
            conn.ping_every = Some(every);
            conn.ping_at = Some(Instant::now() + every);
        }
        Ok((conn, ack))
    }

    /// Encodes `packet` at the end of the output buffer.
    pub(crate) fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        ferrule_mqtt::encode(packet, self.protocol, &mut self.wbuf)
            .map_err(|e| anyhow!("encoding {}: {e}", packet.kind()))
    }

    /// Bytes queued but not yet written to the socket.
    pub(crate) fn unwritten(&self) -> usize {
        self.wbuf.len()
    }

    /// Decodes the next whole packet from the input buffer, `None` if more bytes are needed.
    pub(crate) fn next_packet(&mut self) -> anyhow::Result<Option<Packet>> {
        ferrule_mqtt::decode(&mut self.rbuf, self.protocol, self.max_packet)
            .map_err(|e| anyhow!("malformed packet from the broker: {e}"))
    }

    /// When a PINGREQ must be queued unless something else is written first; never when the
    /// connection has no keep alive.
    pub(crate) fn ping_at(&self) -> Option<Instant> {
        self.ping_at
    }

    /// Queues a PINGREQ (the PINGRESP is read and ignored by [`Conn::pump`]'s caller).
    pub(crate) fn queue_ping(&mut self) -> anyhow::Result<()> {
        self.queue(&Packet::PingReq)?;
        self.ping_at = self.ping_every.map(|every| Instant::now() + every);
        Ok(())
    }

    /// Writes the whole output buffer.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream
                .write_all_buf(&mut self.wbuf)
                .await
                .context("writing to the broker")?;
            self.wrote();
        }
        Ok(())
    }

    /// Reads until one whole packet is buffered and returns it.
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = self.next_packet()? {
                return Ok(packet);
            }
            self.rbuf.reserve(READ_CHUNK);
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

    /// Waits until the socket is readable (or writable, while output is pending), then reads
    /// what is available and writes what the socket takes, without blocking. Returns whether
    /// bytes were read. Cancel safe: the only await point precedes all IO.
    pub(crate) async fn pump(&mut self) -> anyhow::Result<bool> {
        let interest = if self.wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = self
            .stream
            .ready(interest)
            .await
            .context("waiting on the socket")?;
        let mut read = false;
        if ready.is_readable() || ready.is_read_closed() {
            self.rbuf.reserve(READ_CHUNK);
            match self.stream.try_read_buf(&mut self.rbuf) {
                Ok(0) => bail!("the broker closed the connection"),
                Ok(_) => read = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("reading from the broker"),
            }
        }
        if ready.is_writable() && !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.advance(n);
                    self.wrote();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("writing to the broker"),
            }
        }
        Ok(read)
    }

    /// Drops output not yet written (at the end of a run it is late), sends DISCONNECT (best
    /// effort, bounded to one second) and closes the socket.
    pub(crate) async fn close(mut self) {
        self.wbuf.clear();
        if self
            .queue(&Packet::Disconnect(Disconnect::default()))
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
        }
        let _ = self.stream.shutdown().await;
    }

    /// Round trip: a PINGREQ, and its PINGRESP. The broker handles a connection's packets in
    /// order, so everything written before has been handled once this returns. Other packets
    /// arriving meanwhile are an error: call it when nothing else is due.
    pub(crate) async fn sync(&mut self) -> anyhow::Result<()> {
        self.queue_ping()?;
        self.flush().await?;
        match self.recv().await? {
            Packet::PingResp => Ok(()),
            other => bail!("expected PINGRESP, got {}", other.kind()),
        }
    }

    /// Sends DISCONNECT and waits (at most two seconds) until the broker closes the
    /// connection, so that the broker has let go of the session when this returns.
    pub(crate) async fn disconnect(mut self) {
        self.wbuf.clear();
        if self
            .queue(&Packet::Disconnect(Disconnect::default()))
            .is_err()
        {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            self.flush().await?;
            loop {
                self.rbuf.clear();
                self.rbuf.reserve(READ_CHUNK);
                if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                    return anyhow::Ok(());
                }
            }
        })
        .await;
    }

    fn wrote(&mut self) {
        if let Some(every) = self.ping_every {
            self.ping_at = Some(Instant::now() + every);
        }
    }
}
