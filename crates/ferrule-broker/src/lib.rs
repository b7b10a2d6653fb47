//! Ferrule's MQTT broker: listeners (TCP, TLS, WebSocket), device identity against the
//! registry (mutual TLS, just-in-time registration, IoT policies, live revocation), lifecycle
//! and rejection events, sessions, routing, retained and offline messages, wills, and
//! write-behind persistence.
//!
//! Depends on the pure crates (`ferrule-mqtt`, `ferrule-policy`, `ferrule-pki`) and on
//! `ferrule-store` for the registry and persistence; it owns every socket and task. Order of
//! calls: [`Broker::start`] (loads persisted state), then optionally [`Broker::enable_auth`],
//! then [`Broker::listen`] once per listener, then [`Broker::shutdown`] to stop accepting,
//! disconnect clients with reason 0x8B and flush sessions to the store.

mod auth;
mod broker;
pub mod client_auth;
mod config;
mod connection;
mod events;
mod metrics;
mod persist;
mod rules;
mod session;
mod transport;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use ferrule_mqtt::{Properties, QoS, TopicName};
use ferrule_store::BrokerStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

pub use crate::auth::{AuthSettings, JitrMode};
pub use crate::config::BrokerConfig;
pub use crate::rules::{FunctionInvoker, InvokeFuture, RulesSettings};
pub use crate::transport::{ConnInfo, ListenerKind};

use crate::broker::{BrokerInner, now_ms};
use crate::persist::PersistOp;
use crate::session::{Kick, Message};
use crate::transport::{ByteStream, Transport};

/// Errors starting or running the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The persisted state could not be loaded.
    #[error("loading persisted broker state: {0}")]
    Store(#[from] ferrule_store::StoreError),
    /// A listener could not bind its address.
    #[error("binding the {kind} listener to {addr}: {source}")]
    Bind {
        /// Which listener.
        kind: ListenerKind,
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: io::Error,
    },
    /// A TLS listener was configured without TLS settings.
    #[error("the {0} listener needs a TLS configuration")]
    MissingTls(ListenerKind),
    /// [`Broker::enable_auth`] was called twice.
    #[error("device authorization is already enabled")]
    AuthAlreadyEnabled,
    /// [`Broker::enable_rules`] was called twice.
    #[error("the rules engine is already enabled")]
    RulesAlreadyEnabled,
    /// The rules could not be loaded from the registry.
    #[error("loading the topic rules: {0}")]
    Rules(#[from] ferrule_store::RegistryError),
}

/// One listener to run.
#[derive(Clone)]
pub struct ListenerSpec {
    /// What it speaks.
    pub kind: ListenerKind,
    /// Where it listens; port 0 picks a free port (see the address [`Broker::listen`] returns).
    pub addr: SocketAddr,
    /// TLS settings for `Mqtts` and `Wss`. The server config's client-certificate verifier
    /// decides which client certificates complete the handshake; who the client is, when the
    /// verifier is the registry's, is passed on in [`ConnInfo::identity`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Counts for status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerStats {
    /// Open client connections.
    pub connections: usize,
    /// Sessions, online and offline.
    pub sessions: usize,
    /// Retained messages.
    pub retained: usize,
}

/// A running broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerInner>,
}

impl Broker {
    /// Starts a broker, restoring retained messages and persistent sessions from `store` if given.
    pub async fn start(
        config: BrokerConfig,
        store: Option<BrokerStore>,
    ) -> Result<Broker, BrokerError> {
        let inner = match store {
            None => Arc::new(BrokerInner::new(config, None)),
            Some(store) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let interval = config.persist_interval;
                let inner = Arc::new(BrokerInner::new(config, Some(tx)));
                let (retained, sessions) = persist::load(&inner, &store).await?;
                tracing::info!(retained, sessions, "restored persisted state");
                tokio::spawn(persist::run_writer(
                    Arc::downgrade(&inner),
                    store,
                    rx,
                    interval,
                ));
                inner
            }
        };
        tokio::spawn(broker::sweep_expired(Arc::downgrade(&inner)));
        Ok(Broker { inner })
    }

    /// From now on, authenticates and authorizes clients against the registry: certificates
    /// presented on listeners whose verifier is the registry's
    /// ([`client_auth::RegistryClientVerifier`]) follow AWS IoT's decision table with
    /// just-in-time registration; clients without certificates are governed by
    /// [`AuthSettings::anonymous_policy`]; every PUBLISH, SUBSCRIBE and delivery is checked
    /// against the connection's policies, which follow the registry's change feed. Call it
    /// before [`Broker::listen`]; without it every client has full access.
    pub async fn enable_auth(&self, settings: AuthSettings) -> Result<(), BrokerError> {
        if self.inner.auth.get().is_some() {
            return Err(BrokerError::AuthAlreadyEnabled);
        }
        let auth = Arc::new(auth::Auth::new(settings).await);
        self.inner
            .auth
            .set(auth.clone())
            .map_err(|_| BrokerError::AuthAlreadyEnabled)?;
        auth::spawn_watcher(auth, self.inner.shutdown.subscribe());
        Ok(())
    }

    /// Starts the rules engine: from now on every published message (the broker's own events
    /// included) whose topic an enabled topic rule listens to is queued for that rule.
    pub async fn enable_rules(&self, settings: RulesSettings) -> Result<(), BrokerError> {
        if self.inner.rules.get().is_some() {
            return Err(BrokerError::RulesAlreadyEnabled);
        }
        let engine = rules::RulesEngine::start(&self.inner, settings).await?;
        self.inner
            .rules
            .set(engine)
            .map_err(|_| BrokerError::RulesAlreadyEnabled)
    }

    /// Binds a listener and starts accepting on it. Returns the bound address.
    pub async fn listen(&self, spec: ListenerSpec) -> Result<SocketAddr, BrokerError> {
        let bind_err = |source| BrokerError::Bind {
            kind: spec.kind,
            addr: spec.addr,
            source,
        };
        if spec.kind.is_tls() && spec.tls.is_none() {
            return Err(BrokerError::MissingTls(spec.kind));
        }
        let listener = bind(spec.addr).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        tracing::info!(kind = %spec.kind, addr = %local, "listening");
        tokio::spawn(accept_loop(self.inner.clone(), listener, spec));
        Ok(local)
    }

    /// Publishes a message from the broker itself (events, tests).
    pub fn publish(&self, topic: TopicName, payload: Bytes, qos: QoS, retain: bool) -> usize {
        let msg = Arc::new(Message {
            topic,
            payload,
            qos,
            retain,
            properties: Properties::default(),
            expires_at_ms: None,
            publisher: None,
            principal: None,
            rule_hops: 0,
        });
        self.inner.publish(&msg)
    }

    /// Current counts.
    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            connections: self.inner.connections.load(Ordering::Relaxed),
            sessions: self.inner.session_count(),
            retained: self.inner.retained_count(),
        }
    }

    /// Stops accepting, disconnects every client (MQTT 5 reason 0x8B), writes persistent
    /// sessions and pending retained changes to the store and closes it. Waits at most `grace`
    /// for clients.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        // Attached connections are told through their session; one attaching now sees the flag.
        for session in self.inner.all_sessions() {
            if let Some(a) = &session.lock().attached {
                a.signal.kick(Kick::ShuttingDown);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.inner.connections.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            let _ = tokio::time::timeout(
                Duration::from_millis(20),
                self.inner.connection_ended.notified(),
            )
            .await;
        }
        let left = self.inner.connections.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(
                connections = left,
                "connections still open after the shutdown grace period"
            );
        }
        if self.inner.persist.is_some() {
            let now = now_ms();
            let records: Vec<_> = self
                .inner
                .all_sessions()
                .iter()
                .filter_map(|s| persist::session_record(s, Some(now)))
                .collect();
            let n = records.len();
            self.inner.persist(PersistOp::SaveSessions(records));
            // Close, not just flush: a writer left running would keep saving sessions behind
            // the back of whatever opens the store next.
            let (done_tx, done_rx) = oneshot::channel();
            self.inner.persist(PersistOp::Close(done_tx));
            let _ = done_rx.await;
            tracing::info!(sessions = n, "persistent sessions saved");
        }
    }
}

/// Pending connections a listener queues before accepting them (the kernel caps it at
/// `net.core.somaxconn`): thousands of devices reconnecting at once after an outage must not
/// overflow it into SYN retries. tokio's own `bind` queues 1,024.
const ACCEPT_BACKLOG: u32 = 8192;

/// A listening socket on `addr`, with `SO_REUSEADDR` (a restart need not wait for old
/// connections' TIME_WAIT) and a deep accept queue.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Decrements the connection count however the connection task ends.
pub(crate) struct ConnectionSlot(Arc<BrokerInner>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections.decrement(1.0);
        self.0.connection_ended.notify_waiters();
    }
}

async fn accept_loop(broker: Arc<BrokerInner>, listener: TcpListener, spec: ListenerSpec) {
    let mut shutdown = broker.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(kind = %spec.kind, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let open = broker.connections.fetch_add(1, Ordering::AcqRel);
        broker.metrics.connections.increment(1.0);
        broker.metrics.connections_total.increment(1);
        let slot = ConnectionSlot(broker.clone());
        let over_limit = open >= broker.config.max_connections;
        tokio::spawn(connection::serve(Box::new(Accepted {
            broker: broker.clone(),
            spec: spec.clone(),
            tcp,
            peer,
            slot,
            over_limit,
        })));
    }
    tracing::debug!(kind = %spec.kind, "listener stopped");
}

/// A connection just accepted: what its task starts from. Boxed and consumed by the handshake,
/// so that the task of an established connection does not carry it.
pub(crate) struct Accepted {
    broker: Arc<BrokerInner>,
    spec: ListenerSpec,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    over_limit: bool,
}

/// A connection whose TLS and WebSocket handshakes are done.
pub(crate) struct Established {
    pub(crate) broker: Arc<BrokerInner>,
    pub(crate) transport: Transport,
    pub(crate) info: ConnInfo,
    /// Held for the life of the connection: dropping it counts the connection as ended.
    pub(crate) slot: ConnectionSlot,
    /// More connections are open than `max_connections` allows: CONNECT will be refused.
    pub(crate) over_limit: bool,
}

impl Accepted {
    /// The handshakes, within the connect timeout; `None` (logged and counted) when they fail.
    pub(crate) async fn establish(self) -> Option<Established> {
        let Accepted {
            broker,
            spec,
            tcp,
            peer,
            slot,
            over_limit,
        } = self;
        let timeout = broker.config.connect_timeout;
        match tokio::time::timeout(timeout, establish(&broker, &spec, tcp, peer)).await {
            Ok(Ok((transport, info))) => Some(Established {
                broker,
                transport,
                info,
                slot,
                over_limit,
            }),
            Ok(Err(e)) => {
                tracing::info!(peer = %peer, kind = %spec.kind, error = %e, "handshake failed");
                metrics::connection_closed("handshake_failed");
                None
            }
            Err(_) => {
                tracing::info!(peer = %peer, kind = %spec.kind, "handshake timed out");
                metrics::connection_closed("handshake_timeout");
                None
            }
        }
    }
}

/// TLS and WebSocket handshakes, as the listener kind asks. A client certificate refused by
/// the registry's verifier is reported (log, counter, event) here, where the peer is known.
async fn establish(
    broker: &BrokerInner,
    spec: &ListenerSpec,
    tcp: TcpStream,
    peer: SocketAddr,
) -> io::Result<(Transport, ConnInfo)> {
    let mut info = ConnInfo {
        peer,
        listener: spec.kind,
        tls_version: None,
        identity: None,
    };
    let stream: Box<dyn ByteStream> = match (&spec.tls, spec.kind.is_tls()) {
        (Some(tls), true) => {
            let accept = tokio_rustls::TlsAcceptor::from(tls.clone()).accept(tcp);
            let (result, outcome) = client_auth::with_handshake_slot(accept).await;
            let tls = match result {
                Ok(tls) => tls,
                Err(e) => {
                    report_handshake_failure(broker, &info, &e, outcome);
                    return Err(e);
                }
            };
            let (_, conn) = tls.get_ref();
            info.tls_version = conn.protocol_version().and_then(|v| v.as_str());
            if let Some(client_auth::HandshakeOutcome::Accepted(identity)) = outcome {
                info.identity = Some(identity);
            }
            Box::new(tls)
        }
        _ => Box::new(tcp),
    };
    let transport = if spec.kind.is_websocket() {
        transport::accept_websocket(stream).await?
    } else {
        Transport::Stream(stream)
    };
    Ok((transport, info))
}

/// Makes a failed TLS handshake visible as a rejected connection when it failed over the
/// client certificate. Other failures (a client that distrusts the server, a port scan) are
/// only logged by the caller.
fn report_handshake_failure(
    broker: &BrokerInner,
    info: &ConnInfo,
    error: &io::Error,
    outcome: Option<client_auth::HandshakeOutcome>,
) {
    use crate::events::{CertFacts, connection_rejected};
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match outcome {
        Some(client_auth::HandshakeOutcome::Refused {
            refusal,
            certificate,
        }) => {
            let mut facts = certificate
                .as_deref()
                .map(CertFacts::of_certificate)
                .unwrap_or_default();
            if facts.id.is_none() {
                facts.id = refusal.certificate_id().map(str::to_owned);
            }
            connection_rejected(
                broker,
                info,
                None,
                refusal.reason(),
                &refusal.to_string(),
                &facts,
            );
        }
        // The certificate was fine, but the client did not prove it holds its key.
        Some(client_auth::HandshakeOutcome::Accepted(identity)) => connection_rejected(
            broker,
            info,
            None,
            "handshake_signature_invalid",
            &format!("TLS handshake failed after the certificate was accepted: {error}"),
            &CertFacts::of_identity(&identity),
        ),
        None if matches!(rustls_error, Some(rustls::Error::NoCertificatesPresented)) => {
            connection_rejected(
                broker,
                info,
                None,
                "no_client_certificate",
                "the client presented no certificate; this listener requires one",
                &CertFacts::default(),
            )
        }
        None => {}
    }
}
