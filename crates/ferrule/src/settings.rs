//! `ferrule serve` settings: flags, `FERRULE_*` environment variables and the TOML config file,
//! parsed once into typed values. A flag or variable beats the file; the file beats the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ferrule_broker::BrokerConfig;
use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How a device's first connection behaves during just-in-time registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JitrMode {
    /// Hold the first connection until the certificate is activated (bounded).
    Hold,
    /// Close the first connection, as AWS IoT does.
    Aws,
}

/// Every `serve` setting. Each field is a flag, an environment variable and a config-file key
/// (the flag's name with underscores).
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeArgs {
    /// TOML config file; its keys are the flag names with underscores.
    #[arg(long, env = "FERRULE_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Directory for the database, generated credentials and the development PKI.
    #[arg(long, env = "FERRULE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// MQTT over TLS listener [default: 127.0.0.1:8883].
    #[arg(long, env = "FERRULE_MQTTS_LISTEN")]
    pub(crate) mqtts_listen: Option<SocketAddr>,
    /// Plain MQTT over TCP listener, for local development and trusted networks [default: off].
    #[arg(long, env = "FERRULE_MQTT_LISTEN")]
    pub(crate) mqtt_listen: Option<SocketAddr>,
    /// MQTT over WebSocket listener [default: off].
    #[arg(long, env = "FERRULE_WS_LISTEN")]
    pub(crate) ws_listen: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS listener [default: off].
    #[arg(long, env = "FERRULE_WSS_LISTEN")]
    pub(crate) wss_listen: Option<SocketAddr>,
    /// HTTP listener for the control-plane API, /metrics and /health [default: 127.0.0.1:9000].
    #[arg(long, env = "FERRULE_API_LISTEN")]
    pub(crate) api_listen: Option<SocketAddr>,
    /// AWS region the API answers as [default: us-east-1].
    #[arg(long, env = "FERRULE_REGION")]
    pub(crate) region: Option<String>,
    /// AWS account id the API answers as [default: 123456789012].
    #[arg(long, env = "FERRULE_ACCOUNT_ID")]
    pub(crate) account_id: Option<String>,
    /// Just-in-time registration mode [default: hold].
    #[arg(long, env = "FERRULE_JITR_MODE")]
    pub(crate) jitr_mode: Option<JitrMode>,
    /// In hold mode, how long a just-registered device's first connection waits for its
    /// certificate to be activated, in milliseconds [default: 5000].
    #[arg(long, env = "FERRULE_JITR_HOLD_MS")]
    pub(crate) jitr_hold_ms: Option<u64>,
    /// Name of the IoT policy that governs clients of listeners without client certificates
    /// (plain MQTT, WebSocket) [default: none, full access].
    #[arg(long, env = "FERRULE_ANONYMOUS_POLICY")]
    pub(crate) anonymous_policy: Option<String>,
    /// URL prefix the rules' HTTP action may post to, e.g. `https://hooks.example.com/`
    /// (repeat the flag, or separate with commas) [default: none].
    #[arg(long, env = "FERRULE_RULES_HTTP_ALLOW", value_delimiter = ',')]
    pub(crate) rules_http_allow: Option<Vec<String>>,
    /// Invocations of one function that may run at once, each in its own warm worker process
    /// [default: 4].
    #[arg(long, env = "FERRULE_FUNCTION_CONCURRENCY")]
    pub(crate) function_concurrency: Option<usize>,
    /// The control-plane URL functions reach as AWS_ENDPOINT_URL [default: the API listener,
    /// with a wildcard address replaced by 127.0.0.1].
    #[arg(long, env = "FERRULE_FUNCTION_ENDPOINT_URL")]
    pub(crate) function_endpoint_url: Option<String>,
    /// PEM certificate chain for the TLS listeners; without it a development PKI is generated.
    #[arg(long, env = "FERRULE_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "FERRULE_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Admin access key id for the control-plane API; with --secret-access-key. Without both,
    /// credentials are generated once into DATA_DIR/credentials.
    #[arg(long, env = "FERRULE_ACCESS_KEY_ID", requires = "secret_access_key")]
    pub(crate) access_key_id: Option<String>,
    /// Admin secret access key for the control-plane API; with --access-key-id.
    #[arg(
        long,
        env = "FERRULE_SECRET_ACCESS_KEY",
        requires = "access_key_id",
        hide_env_values = true
    )]
    pub(crate) secret_access_key: Option<String>,
    /// PostgreSQL database for the registry (`postgres://user[:password]@host[:port]/db`)
    /// [default: SQLite in DATA_DIR/ferrule.db].
    #[arg(long, env = "FERRULE_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// Log line format [default: text].
    #[arg(long, env = "FERRULE_LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `ferrule_broker=debug` [default: info].
    #[arg(long, env = "FERRULE_LOG")]
    pub(crate) log: Option<String>,
    /// Largest packet accepted from a client, in bytes [default: 268435460].
    #[arg(long, env = "FERRULE_MAX_PACKET_SIZE")]
    pub(crate) max_packet_size: Option<u32>,
    /// Longest topic name or filter, in bytes [default: 65535].
    #[arg(long, env = "FERRULE_MAX_TOPIC_LENGTH")]
    pub(crate) max_topic_length: Option<usize>,
    /// Most levels in a topic name or filter [default: 128].
    #[arg(long, env = "FERRULE_MAX_TOPIC_LEVELS")]
    pub(crate) max_topic_levels: Option<usize>,
    /// Most simultaneous client connections [default: 100000].
    #[arg(long, env = "FERRULE_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Most unacknowledged QoS 1/2 messages in flight per client, each way [default: 1024].
    #[arg(long, env = "FERRULE_MAX_INFLIGHT")]
    pub(crate) max_inflight: Option<u16>,
    /// Most messages queued per session; more are dropped and counted [default: 1000].
    #[arg(long, env = "FERRULE_MAX_QUEUED_MESSAGES")]
    pub(crate) max_queued_messages: Option<usize>,
    /// Queue QoS 0 messages for offline persistent sessions [default: false].
    #[arg(long, env = "FERRULE_QUEUE_QOS0_OFFLINE")]
    pub(crate) queue_qos0_offline: Option<bool>,
    /// Largest keep-alive a client may use, in seconds; 0 for no limit [default: 0].
    #[arg(long, env = "FERRULE_MAX_KEEP_ALIVE")]
    pub(crate) max_keep_alive: Option<u16>,
    /// Largest session expiry, in seconds; also the expiry of MQTT 3.1.1 persistent sessions
    /// [default: 4294967295, never].
    #[arg(long, env = "FERRULE_MAX_SESSION_EXPIRY")]
    pub(crate) max_session_expiry: Option<u32>,
    /// Topic Alias Maximum announced to MQTT 5 clients [default: 64].
    #[arg(long, env = "FERRULE_TOPIC_ALIAS_MAXIMUM")]
    pub(crate) topic_alias_maximum: Option<u16>,
}

macro_rules! merge_fields {
    ($a:ident, $b:ident, $($f:ident),* $(,)?) => { $( if $a.$f.is_none() { $a.$f = $b.$f; } )* };
}

impl ServeArgs {
    /// Fills every unset field from `file`.
    fn merge(mut self, file: ServeArgs) -> ServeArgs {
        merge_fields!(
            self,
            file,
            data_dir,
            mqtts_listen,
            mqtt_listen,
            ws_listen,
            wss_listen,
            api_listen,
            region,
            account_id,
            jitr_mode,
            jitr_hold_ms,
            anonymous_policy,
            rules_http_allow,
            function_concurrency,
            function_endpoint_url,
            tls_cert,
            tls_key,
            access_key_id,
            secret_access_key,
            database_url,
            log_format,
            log,
            max_packet_size,
            max_topic_length,
            max_topic_levels,
            max_connections,
            max_inflight,
            max_queued_messages,
            queue_qos0_offline,
            max_keep_alive,
            max_session_expiry,
            topic_alias_maximum,
        );
        self
    }
}

/// Settings after merging and validation.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) mqtts_listen: SocketAddr,
    pub(crate) mqtt_listen: Option<SocketAddr>,
    pub(crate) ws_listen: Option<SocketAddr>,
    pub(crate) wss_listen: Option<SocketAddr>,
    pub(crate) api_listen: SocketAddr,
    pub(crate) region: String,
    pub(crate) account_id: String,
    /// Configured admin credentials; `None`: generated into the data dir.
    pub(crate) admin: Option<ferrule_api::Credential>,
    /// `None`: the registry is SQLite in the data dir.
    pub(crate) database_url: Option<String>,
    pub(crate) jitr_mode: JitrMode,
    pub(crate) jitr_hold: Duration,
    pub(crate) anonymous_policy: Option<String>,
    pub(crate) rules_http_allow: Vec<String>,
    pub(crate) function_concurrency: usize,
    /// `None`: derived from the API listener's bound address.
    pub(crate) function_endpoint_url: Option<String>,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) log_format: LogFormat,
    pub(crate) log: String,
    pub(crate) broker: BrokerConfig,
}

fn parse_addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Settings {
    /// Reads the config file named by `args` (if any) and resolves every setting.
    pub(crate) fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => read_config(path)?,
            None => ServeArgs::default(),
        };
        let a = args.merge(file);
        let d = BrokerConfig::default();
        let account_id = a.account_id.unwrap_or_else(|| "123456789012".into());
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!("account_id: {account_id:?} is not a 12-digit AWS account id");
        }
        let broker = BrokerConfig {
            max_packet_size: a.max_packet_size.unwrap_or(d.max_packet_size),
            max_topic_length: a.max_topic_length.unwrap_or(d.max_topic_length),
            max_topic_levels: a.max_topic_levels.unwrap_or(d.max_topic_levels),
            max_connections: a.max_connections.unwrap_or(d.max_connections),
            max_inflight: a.max_inflight.unwrap_or(d.max_inflight),
            max_queued_messages: a.max_queued_messages.unwrap_or(d.max_queued_messages),
            queue_qos0_offline: a.queue_qos0_offline.unwrap_or(d.queue_qos0_offline),
            max_keep_alive: a.max_keep_alive.unwrap_or(d.max_keep_alive),
            max_session_expiry: a.max_session_expiry.unwrap_or(d.max_session_expiry),
            topic_alias_maximum: a.topic_alias_maximum.unwrap_or(d.topic_alias_maximum),
            connect_timeout: Duration::from_secs(10),
            persist_interval: Duration::from_secs(1),
        };
        if broker.max_packet_size < 64 {
            anyhow::bail!(
                "max_packet_size: {} is too small; it must be at least 64 bytes",
                broker.max_packet_size
            );
        }
        if broker.max_inflight == 0 {
            anyhow::bail!("max_inflight: must be at least 1");
        }
        if broker.max_topic_levels == 0 || broker.max_topic_length == 0 {
            anyhow::bail!("max_topic_levels and max_topic_length must be at least 1");
        }
        let jitr_hold = Duration::from_millis(a.jitr_hold_ms.unwrap_or(5000));
        if jitr_hold > Duration::from_secs(300) {
            anyhow::bail!(
                "jitr_hold_ms: {} is longer than the 300000 ms a device can sensibly wait for CONNACK",
                jitr_hold.as_millis()
            );
        }
        let anonymous_policy = match a.anonymous_policy {
            Some(name) if name.is_empty() => {
                anyhow::bail!("anonymous_policy: must name an IoT policy, or be left unset")
            }
            other => other,
        };
        let rules_http_allow = a.rules_http_allow.unwrap_or_default();
        for prefix in &rules_http_allow {
            let rest = prefix
                .strip_prefix("https://")
                .or_else(|| prefix.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
                anyhow::bail!(
                    "rules_http_allow: {prefix:?} is not an http:// or https:// URL prefix with a host"
                );
            }
        }
        let function_concurrency = a.function_concurrency.unwrap_or(4);
        if !(1..=256).contains(&function_concurrency) {
            anyhow::bail!(
                "function_concurrency: {function_concurrency} is out of range; it must be 1 to 256"
            );
        }
        if let Some(url) = &a.function_endpoint_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
                anyhow::bail!(
                    "function_endpoint_url: {url:?} is not an http:// or https:// URL with a host"
                );
            }
        }
        let admin = match (a.access_key_id, a.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => {
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    anyhow::bail!("access_key_id and secret_access_key must not be empty");
                }
                Some(ferrule_api::Credential {
                    access_key_id,
                    secret_access_key,
                })
            }
            (None, None) => None,
            _ => anyhow::bail!("access_key_id and secret_access_key must be given together"),
        };
        if let Some(url) = &a.database_url
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            anyhow::bail!(
                "database_url: only PostgreSQL is supported (postgres://...); leave it unset for SQLite"
            );
        }
        Ok(Settings {
            data_dir: a.data_dir.unwrap_or_else(|| PathBuf::from("ferrule-data")),
            mqtts_listen: a
                .mqtts_listen
                .unwrap_or_else(|| parse_addr("127.0.0.1:8883")),
            mqtt_listen: a.mqtt_listen,
            ws_listen: a.ws_listen,
            wss_listen: a.wss_listen,
            api_listen: a.api_listen.unwrap_or_else(|| parse_addr("127.0.0.1:9000")),
            region: a.region.unwrap_or_else(|| "us-east-1".into()),
            account_id,
            jitr_mode: a.jitr_mode.unwrap_or(JitrMode::Hold),
            jitr_hold,
            anonymous_policy,
            rules_http_allow,
            function_concurrency,
            function_endpoint_url: a.function_endpoint_url,
            tls: a.tls_cert.zip(a.tls_key),
            admin,
            database_url: a.database_url,
            log_format: a.log_format.unwrap_or(LogFormat::Text),
            log: a.log.unwrap_or_else(|| "info".into()),
            broker,
        })
    }
}

fn read_config(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

/// `ferrule config default`: every key, commented, at its default.
pub(crate) const DEFAULT_CONFIG: &str = r#"# Ferrule configuration. Every key is also a `ferrule serve` flag (with dashes)
# and a FERRULE_* environment variable; flags and variables win over this file.

# Where the database, generated credentials and the development PKI live.
data_dir = "ferrule-data"

# Listeners. MQTT over TLS is always on; the others are off unless set.
mqtts_listen = "127.0.0.1:8883"
# mqtt_listen = "127.0.0.1:1883"
# ws_listen = "127.0.0.1:8080"
# wss_listen = "127.0.0.1:8443"
# Control-plane API, /metrics and /health (HTTP).
api_listen = "127.0.0.1:9000"

# Identity the API answers as.
region = "us-east-1"
account_id = "123456789012"

# Just-in-time registration: "hold" keeps a device's first connection open until its
# certificate is activated; "aws" closes it as AWS IoT does.
jitr_mode = "hold"

# In hold mode, how long (ms) a just-registered device's first connection waits for its
# certificate to be activated before it is refused.
jitr_hold_ms = 5000

# IoT policy (by name) governing clients of the listeners without client certificates
# (plain MQTT, WebSocket). Unset: they have full access, and a warning says so at start-up.
# anonymous_policy = "local-clients"

# URL prefixes the topic rules' HTTP action may post to; any other URL fails the action.
# rules_http_allow = ["https://hooks.example.com/"]

# Functions (aws lambda): invocations of one function that may run at once, each in its
# own warm worker process; and the control-plane URL functions get as AWS_ENDPOINT_URL
# (default: the API listener).
function_concurrency = 4
# function_endpoint_url = "http://127.0.0.1:9000"

# TLS certificate chain and key (PEM). Without them a development CA and server
# certificate are generated in data_dir, and data_dir/server-ca.pem is written for clients.
# tls_cert = "/etc/ferrule/server.pem"
# tls_key = "/etc/ferrule/server.key"

# Control-plane admin credentials (FERRULE_ACCESS_KEY_ID / FERRULE_SECRET_ACCESS_KEY).
# Without them, credentials are generated once into data_dir/credentials, an AWS
# shared-credentials file: AWS_SHARED_CREDENTIALS_FILE=data_dir/credentials aws iot ...
# access_key_id = "AKIA..."
# secret_access_key = "..."

# Registry database: PostgreSQL for several nodes; without it, SQLite in data_dir/ferrule.db.
# database_url = "postgres://ferrule@127.0.0.1:5432/ferrule"

# Logging: "text" or "json", and a filter such as "info" or "ferrule_broker=debug".
log_format = "text"
log = "info"

# Limits.
max_packet_size = 268435460
max_topic_length = 65535
max_topic_levels = 128
max_connections = 100000
max_inflight = 1024
max_queued_messages = 1000
queue_qos0_offline = false
max_keep_alive = 0
max_session_expiry = 4294967295
topic_alias_maximum = 64
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_matches_the_defaults() {
        let parsed: ServeArgs = toml::from_str(DEFAULT_CONFIG).expect("default config parses");
        let s = Settings::resolve(parsed).expect("default config resolves");
        assert_eq!(s.broker, BrokerConfig::default());
        assert_eq!(s.mqtts_listen.to_string(), "127.0.0.1:8883");
        assert_eq!(s.api_listen.to_string(), "127.0.0.1:9000");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = toml::from_str::<ServeArgs>("max_conections = 5\n").expect_err("unknown key");
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn ill_typed_key_names_the_key() {
        let err = toml::from_str::<ServeArgs>("max_inflight = \"lots\"\n").expect_err("bad type");
        assert!(err.to_string().contains("max_inflight"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: ServeArgs =
            toml::from_str("max_inflight = 5\nmax_connections = 7\n").expect("parses");
        let flags = ServeArgs {
            max_inflight: Some(9),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(flags.merge(file)).expect("resolves");
        assert_eq!(s.broker.max_inflight, 9);
        assert_eq!(s.broker.max_connections, 7);
    }

    #[test]
    fn admin_credentials_come_in_pairs() {
        let a = ServeArgs {
            access_key_id: Some("AKIA1".into()),
            ..ServeArgs::default()
        };
        let err = Settings::resolve(a).expect_err("half a pair");
        assert!(err.to_string().contains("together"), "{err}");
        let file: ServeArgs =
            toml::from_str("access_key_id = \"AKIA1\"\nsecret_access_key = \"s\"\n")
                .expect("parses");
        let s = Settings::resolve(file).expect("resolves");
        assert_eq!(s.admin.map(|c| c.access_key_id).as_deref(), Some("AKIA1"));
    }

    #[test]
    fn database_url_must_be_postgres() {
        let a = ServeArgs {
            database_url: Some("mysql://x".into()),
            ..ServeArgs::default()
        };
        assert!(
            Settings::resolve(a)
                .expect_err("not postgres")
                .to_string()
                .contains("database_url")
        );
        let a = ServeArgs {
            database_url: Some("postgres://u@h/db".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(a)
                .expect("postgres")
                .database_url
                .as_deref(),
            Some("postgres://u@h/db")
        );
    }

    #[test]
    fn bad_account_id_is_refused() {
        let a = ServeArgs {
            account_id: Some("12".into()),
            ..ServeArgs::default()
        };
        let err = Settings::resolve(a).expect_err("bad account id");
        assert!(err.to_string().contains("account_id"), "{err}");
    }
}
