//! `ferrule serve`: wires settings, logging, metrics, TLS, the store, the broker and the
//! control-plane API together.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use ferrule_api::{ApiConfig, ApiState};
use ferrule_broker::client_auth::{self, RegistryClientVerifier, TrustStore};
use ferrule_broker::{AuthSettings, Broker, ListenerKind, ListenerSpec, RulesSettings};
use ferrule_functions::{FunctionService, ServiceConfig};
use ferrule_pki::{DevPki, Issuer};
use ferrule_store::{BrokerStore, Registry};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::functions::Functions;
use crate::settings::{JitrMode, LogFormat, ServeArgs, Settings};

/// Messages waiting for the topic rules before more are dropped (and counted).
const RULES_QUEUE: usize = 10_000;

/// Rule executions running at once.
const RULES_CONCURRENCY: usize = 64;

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let running = start(settings).await?;
        wait_for_signal().await;
        running.stop().await;
        Ok(())
    })
}

fn init_logging(s: &Settings) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&s.log).map_err(|e| anyhow::anyhow!("log: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match s.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("setting up logging: {e}"))
}

/// A started gateway: the addresses its listeners bound, and what [`Running::stop`] shuts down.
pub(crate) struct Running {
    /// Each listener's kind (`mqtts`, `mqtt`, `ws`, `wss`, `api`) and bound address, in that
    /// order (the disabled ones left out).
    pub(crate) bound: Vec<(&'static str, SocketAddr)>,
    api_stop: tokio::sync::oneshot::Sender<()>,
    api_task: tokio::task::JoinHandle<std::io::Result<()>>,
    broker: Broker,
    functions: Functions,
    registry: Registry,
    store: BrokerStore,
}

impl Running {
    /// The bound address of the listener of this kind, if it is on.
    pub(crate) fn addr(&self, kind: &str) -> Option<SocketAddr> {
        self.bound.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// Stops the API, the broker (five seconds' grace for connections), the function workers
    /// and the databases, in that order.
    pub(crate) async fn stop(self) {
        tracing::info!("shutting down");
        let _ = self.api_stop.send(());
        self.broker.shutdown(Duration::from_secs(5)).await;
        self.functions.0.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.api_task).await;
        self.registry.close().await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// Binds and starts everything `settings` asks for: the data dir, metrics, the store and
/// registry, TLS, the broker with its listeners, the function service and the API. Logging is
/// the caller's business.
pub(crate) async fn start(s: Settings) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    tokio::spawn(metrics_upkeep(metrics.clone()));

    let db = s.data_dir.join("ferrule.db");
    let store = BrokerStore::open_sqlite(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let registry = open_registry(&s, &db).await?;
    let trust = Arc::new(TrustStore::new());
    trust
        .load(&registry)
        .await
        .context("loading registered CA certificates")?;
    trust.spawn_refresh(registry.clone());
    let (chain, key) = server_identity(&s)?;
    let device_tls = Arc::new(
        client_auth::server_config(
            Arc::new(RegistryClientVerifier::new(trust.clone())),
            chain.clone(),
            key.clone_key(),
        )
        .context("the TLS certificate and key do not match or are unsupported")?,
    );
    let websocket_tls = Arc::new(anonymous_tls_config(chain, key)?);
    let broker = Broker::start(s.broker.clone(), Some(store.clone())).await?;
    broker
        .enable_auth(AuthSettings {
            registry: registry.clone(),
            trust,
            jitr_mode: match s.jitr_mode {
                JitrMode::Hold => ferrule_broker::JitrMode::Hold,
                JitrMode::Aws => ferrule_broker::JitrMode::Aws,
            },
            jitr_hold: s.jitr_hold,
            region: s.region.clone(),
            account_id: s.account_id.clone(),
            anonymous_policy: s.anonymous_policy.clone(),
        })
        .await?;
    // The API listener is bound first: functions are told its address.
    let api = tokio::net::TcpListener::bind(s.api_listen)
        .await
        .with_context(|| format!("binding the API listener to {}", s.api_listen))?;
    let api_addr = api.local_addr()?;
    let functions = Functions(FunctionService::start(
        registry.clone(),
        function_config(&s, api_addr),
    ));
    broker
        .enable_rules(RulesSettings {
            registry: registry.clone(),
            account_id: s.account_id.clone(),
            region: s.region.clone(),
            http_allow: s.rules_http_allow.clone(),
            functions: Some(Arc::new(functions.clone())),
            queue_capacity: RULES_QUEUE,
            concurrency: RULES_CONCURRENCY,
        })
        .await?;

    let mut bound: Vec<(&'static str, SocketAddr)> = Vec::new();
    let listeners = [
        (ListenerKind::Mqtts, Some(s.mqtts_listen)),
        (ListenerKind::Mqtt, s.mqtt_listen),
        (ListenerKind::Ws, s.ws_listen),
        (ListenerKind::Wss, s.wss_listen),
    ];
    for (kind, addr) in listeners {
        let Some(addr) = addr else { continue };
        // Devices authenticate with certificates on MQTT over TLS, as on AWS IoT; WebSocket
        // clients over TLS are anonymous, like those of the plain listeners.
        let tls = match kind {
            ListenerKind::Mqtts => Some(device_tls.clone()),
            ListenerKind::Wss => Some(websocket_tls.clone()),
            ListenerKind::Mqtt | ListenerKind::Ws => None,
        };
        let local = broker.listen(ListenerSpec { kind, addr, tls }).await?;
        bound.push((kind.as_str(), local));
    }
    bound.push(("api", api_addr));
    let mqtts_addr = bound
        .iter()
        .find(|(k, _)| *k == "mqtts")
        .map_or(s.mqtts_listen, |(_, a)| *a);
    let api_state = api_state(&s, registry.clone(), mqtts_addr, api_addr)?
        .with_functions(Arc::new(functions.clone()));
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The control plane's SigV4 layer covers its own routes only: /metrics and /health stay open.
    let app = ferrule_api::router(api_state).merge(router(metrics, broker.clone()));
    let api_task = tokio::spawn(async move {
        axum::serve(api, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = api_stop_rx.await;
            })
            .await
    });
    write_listeners(&s.data_dir, &bound)?;
    announce(&s, &bound);
    Ok(Running {
        bound,
        api_stop: api_stop_tx,
        api_task,
        broker,
        functions,
        registry,
        store,
    })
}

/// The device registry: PostgreSQL when `database_url` is set, else SQLite in the data dir's
/// database file (next to the broker's tables).
async fn open_registry(s: &Settings, db: &Path) -> anyhow::Result<Registry> {
    match &s.database_url {
        Some(url) => {
            let shown = redact_password(url);
            let registry = Registry::open_postgres(url)
                .await
                .with_context(|| format!("opening the PostgreSQL registry at {shown}"))?;
            tracing::info!(database = %shown, "registry on PostgreSQL");
            Ok(registry)
        }
        None => Registry::open_sqlite(db)
            .await
            .with_context(|| format!("opening the registry in {}", db.display())),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// The control plane's state: the issuing CA and the admin credentials (configured, or
/// generated once into `DATA_DIR/credentials`).
fn api_state(
    s: &Settings,
    registry: Registry,
    mqtts: SocketAddr,
    api: SocketAddr,
) -> anyhow::Result<ApiState> {
    let issuer = Arc::new(Issuer::load_or_create(&s.data_dir).context("loading the issuing CA")?);
    let credential = match &s.admin {
        Some(c) => c.clone(),
        None => {
            let path = s.data_dir.join("credentials");
            let (credential, created) = ferrule_api::credentials_file::load_or_create(&path)?;
            if created {
                tracing::info!(file = %path.display(), access_key_id = %credential.access_key_id, "generated admin credentials");
            }
            tracing::info!(
                "control plane: AWS_SHARED_CREDENTIALS_FILE={} AWS_DEFAULT_REGION={} aws iot list-certificates \
                 --endpoint-url http://{api}",
                path.display(),
                s.region
            );
            credential
        }
    };
    // DescribeEndpoint answers with a host name; devices use the mqtts port with it. A loopback
    // or wildcard listener is announced as localhost, which the development certificate names.
    let host = if mqtts.ip().is_loopback() || mqtts.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        mqtts.ip().to_string()
    };
    let config = ApiConfig {
        region: s.region.clone(),
        account_id: s.account_id.clone(),
        mqtt_endpoint: format!("{host}:{}", mqtts.port()),
        credentials: vec![credential],
    };
    Ok(ApiState::new(config, registry, issuer))
}

/// How functions run: the settings' concurrency, code under `DATA_DIR/functions`, and the
/// control plane's URL as their `AWS_ENDPOINT_URL` (a wildcard listener is reached on
/// loopback).
fn function_config(s: &Settings, api: SocketAddr) -> ServiceConfig {
    let endpoint = s.function_endpoint_url.clone().unwrap_or_else(|| {
        let ip = if api.ip().is_unspecified() {
            if api.is_ipv4() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            }
        } else {
            api.ip()
        };
        format!("http://{}", SocketAddr::new(ip, api.port()))
    });
    let mut config = ServiceConfig::new(
        s.region.clone(),
        s.account_id.clone(),
        endpoint,
        s.data_dir.join("functions"),
    );
    config.concurrency = s.function_concurrency;
    config
}

/// The broker's TLS certificate chain and key: configured, or the development PKI's.
fn server_identity(
    s: &Settings,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    Ok(match &s.tls {
        Some((cert, key)) => (
            ferrule_pki::load_cert_chain(cert)?,
            ferrule_pki::load_private_key(key)?,
        ),
        None => {
            let pki = DevPki::load_or_create(&s.data_dir)?;
            (pki.server_chain()?, pki.server_key()?)
        }
    })
}

/// TLS without client certificates, for the WebSocket-over-TLS listener.
fn anonymous_tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not match or are unsupported")
}

fn router(metrics: PrometheusHandle, broker: Broker) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route(
            "/health",
            get(move || {
                let st = broker.stats();
                std::future::ready(axum::Json(health_body(st)))
            }),
        )
}

fn health_body(st: ferrule_broker::BrokerStats) -> std::collections::BTreeMap<&'static str, usize> {
    [
        ("connections", st.connections),
        ("sessions", st.sessions),
        ("retained", st.retained),
    ]
    .into_iter()
    .collect()
}

async fn metrics_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// `DATA_DIR/listeners.toml` names the address each listener actually bound, so scripts and
/// tests that ask for port 0 can find it.
fn write_listeners(dir: &Path, bound: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    let body: String = bound
        .iter()
        .map(|(k, a)| format!("{k} = \"{a}\"\n"))
        .collect();
    let path = dir.join("listeners.toml");
    let tmp = dir.join("listeners.toml.tmp");
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn announce(s: &Settings, bound: &[(&str, SocketAddr)]) {
    let ca = s.data_dir.join("server-ca.pem");
    for (kind, addr) in bound {
        tracing::info!(listener = kind, %addr, "ready");
    }
    if let (None, Some((_, addr))) = (&s.tls, bound.iter().find(|(k, _)| *k == "mqtts")) {
        tracing::info!(
            "try: mosquitto_sub --cafile {} -h localhost -p {} -t 'hello/#' -v",
            ca.display(),
            addr.port()
        );
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact_password("postgres://u:secret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_password("postgres://h"), "postgres://h");
    }
}
