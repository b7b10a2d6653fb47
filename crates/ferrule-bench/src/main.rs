//! `ferrule-bench`: a load generator for MQTT brokers, to compare Ferrule with its peers.
//!
//! What it is for: measuring throughput, loss and latency of publish/subscribe (directly, or
//! through a topic rule with JSON payloads), and the rate of connection setup, over plain TCP
//! or TLS with client certificates, the same way for every broker; and, for AWS IoT Core's
//! just-in-time registration, how long a new device waits for an operator to activate it; how
//! fast a revoked certificate loses its connection; and the broker's memory per idle
//! connection. The client side is the sans-IO `ferrule-mqtt` codec over
//! non-blocking sockets on a single-threaded runtime by default, so it costs little CPU and
//! leaves the rest of the machine to the broker.
//!
//! What it may depend on: `ferrule-mqtt`, `tokio`, `bytes`, `clap`, `anyhow`; `rustls` and
//! `tokio-rustls` (aws-lc-rs, as the broker uses) for TLS, `aws-lc-rs` for certificate ids,
//! `serde_json` for event bodies. Nothing of the broker itself: it must treat every broker
//! alike, and talks to a control plane only through an operator process it is given.
//!
//! Safety: it only ever connects to loopback addresses (see [`target`]), and every run stops by
//! itself, after its message count or `--timeout`, whichever comes first.
//!
//! Order of calls: parse flags into a plan (host checked here, before any socket exists), build
//! the runtime, run the scenario, print the report (a table, or one JSON line with `--json`).

mod conn;
mod connect;
mod histogram;
mod idle;
mod jitr;
mod procfs;
mod pubsub;
mod report;
mod revoke;
mod stats;
mod target;
mod tls;

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ferrule_mqtt::{ProtocolVersion, QoS, TopicName};

use crate::connect::ConnectPlan;
use crate::idle::IdlePlan;
use crate::jitr::JitrPlan;
use crate::pubsub::{Mode, PayloadFormat, PubSubPlan, STAMP_LEN};
use crate::revoke::RevokePlan;
use crate::tls::TlsClient;

/// Load generator for MQTT brokers on this machine (loopback only).
#[derive(Debug, Parser)]
#[command(name = "ferrule-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publishers -> broker -> subscribers: throughput, loss, duplicates and latency.
    Pubsub(PubSubArgs),
    /// Connection setup: CONNECT -> CONNACK per second and its latency, over TCP or mTLS.
    Connect(ConnectArgs),
    /// Just-in-time registration: CONNECT -> CONNACK of new devices activated by an operator.
    Jitr(JitrArgs),
    /// Revocation: connected mTLS devices whose certificates an operator revokes, until the
    /// broker closes each.
    Revoke(RevokeArgs),
    /// Idle connections: the broker's resident memory per held connection (plain or mTLS).
    Idle(IdleArgs),
}

/// Flags every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// Broker host: a loopback address (127.0.0.0/8, ::1) or `localhost`; others are refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port (MQTT over TCP, or over TLS with --cafile).
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// MQTT protocol version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
    /// Stop after this many seconds and report what was measured so far.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Print the report as one JSON line on stdout (the table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// Client runtime threads; 1 runs every connection on one thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

#[derive(Debug, Args)]
struct PubSubArgs {
    #[command(flatten)]
    common: Common,
    /// QoS of publishes and subscriptions: 0, 1 or 2.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Publishing connections; publisher N publishes to `{prefix}/pN`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    publishers: u32,
    /// Subscribing connections; each subscribes to `{prefix}/#` and so gets every message.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    subscribers: u32,
    /// Messages per publisher.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    messages: u32,
    /// Payload size in bytes (at least 16: send time, publisher and sequence number).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=16_777_216))]
    payload: u32,
    /// Topic prefix [default: bench/<random run id>].
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Messages per second per publisher; 0 = as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// QoS 1 and 2: unacknowledged PUBLISHes per publisher (lowered to the broker's receive
    /// maximum).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    inflight: u16,
    /// All publishers publish to one shared topic, `{prefix}/all`.
    #[arg(long, conflicts_with = "topic")]
    fan_in: bool,
    /// Publisher N's topic, with `{n}` replaced by N and `{run}` by the run id (e.g.
    /// `bench/{run}p{n}/data`) [default: `{prefix}/p{n}`].
    #[arg(long)]
    topic: Option<String>,
    /// The subscribers' topic filter (e.g. `out/#` for messages a topic rule republishes)
    /// [default: `{prefix}/#`].
    #[arg(long)]
    filter: Option<String>,
    /// How the send time, publisher and sequence number are written into payloads: `json`
    /// makes an object a topic rule can select from, `{"temp":25,"r":RUN,"p":N,"s":SEQ,"t":NS}`.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Binary)]
    payload_format: PayloadFormat,
    /// With `--payload-format json`: every Nth message of each publisher has temp 15 instead
    /// of 25 (fails `WHERE temp > 20`) and is not expected by the subscribers; 2 = half.
    #[arg(long, default_value_t = 0)]
    cold_every: u32,
    /// Retained messages: every message is published retained to a topic of its own
    /// (`{topic}/mSEQ`); once all are stored the subscribers connect, subscribe and receive
    /// them as retained messages. The topics are cleared at the end.
    #[arg(long, conflicts_with_all = ["fan_in", "persistent"])]
    retained: bool,
    /// Persistent sessions: the subscribers connect without a clean session, subscribe and
    /// disconnect; the messages are published while they are away, and queued by the broker;
    /// then the subscribers reconnect and receive them. Needs --qos 1 or 2. The sessions are
    /// removed at the end.
    #[arg(long)]
    persistent: bool,
}

#[derive(Debug, Args)]
struct ConnectArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open in total.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: u32,
    /// Connections being set up at the same time.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Keep every connection open until all are made (tests many concurrent sessions; mind
    /// `ulimit -n`), instead of closing each right after CONNACK.
    #[arg(long)]
    hold: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// MQTT over TLS with client certificates.
#[derive(Debug, Args)]
struct TlsArgs {
    /// Connect over TLS, trusting the server certificates these CA certificates (PEM) issued.
    #[arg(long, requires = "certs")]
    cafile: Option<PathBuf>,
    /// Client certificates: every NAME.crt in this directory (PEM chain, leaf first, sent as
    /// is) with its NAME.key (PEM private key), taken in turn.
    #[arg(long, requires = "cafile")]
    certs: Option<PathBuf>,
    /// The name the server certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

impl TlsArgs {
    fn load(&self) -> anyhow::Result<Option<Arc<TlsClient>>> {
        match (&self.cafile, &self.certs) {
            (Some(cafile), Some(certs)) => Ok(Some(Arc::new(TlsClient::load(
                cafile,
                certs,
                &self.server_name,
            )?))),
            _ => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
struct JitrArgs {
    #[command(flatten)]
    common: Common,
    /// A plain listener of the same broker where an anonymous client may subscribe to
    /// `$aws/events/certificates/registered/+`.
    #[arg(long)]
    events_port: u16,
    /// Devices to connect, each with its own certificate [default: every one in --certs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: Option<u32>,
    /// Devices connecting at the same time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    #[command(flatten)]
    tls: TlsArgs,
    /// The operator, after `--`: a command that prints `ready`, then for each certificate id
    /// read from stdin activates it and prints `ok ID UPDATE_US ATTACH_US` or `error ID MSG`.
    #[arg(last = true, required = true, num_args = 1..)]
    operator: Vec<String>,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    #[command(flatten)]
    common: Common,
    /// Devices to connect and revoke, each with its own registered ACTIVE certificate
    /// [default: every one in --certs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: Option<u32>,
    /// Devices connecting at the same time while setting up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Hand every certificate to the operator at once, instead of one at a time.
    #[arg(long)]
    all_at_once: bool,
    /// Milliseconds after its revocation was asked within which a device must be disconnected.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    wait_ms: u64,
    #[command(flatten)]
    tls: TlsArgs,
    /// The operator, after `--`: a command that prints `ready`, then for each certificate id
    /// read from stdin revokes it and prints `ok ID UPDATE_US 0` or `error ID MSG`.
    #[arg(last = true, required = true, num_args = 1..)]
    operator: Vec<String>,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold (mind `ulimit -n`, of this process and of the broker).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Connections being set up at the same time.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Keep alive of every CONNECT in seconds; 0 (none) or long, so nothing is sent while idle.
    #[arg(long, default_value_t = 0)]
    keep_alive: u16,
    /// The broker's process id: its /proc/PID/status is read (same machine).
    #[arg(long)]
    broker_pid: u32,
    /// Seconds to wait after the last CONNACK, and after closing, before reading memory.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    settle: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "3.1.1" | "311" | "4" => Ok(ProtocolVersion::V311),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err(format!("expected 3.1.1 or 5, not {s:?}")),
    }
}

/// Eight hex digits, different in every process.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = RandomState::new().hash_one((nanos, std::process::id()));
    format!("{:08x}", hash as u32)
}

/// CPU time (user + system) this process has used, from `/proc/self/stat`; `None` where that
/// does not exist. Linux reports it in clock ticks of 1/100 s on every architecture we run on.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

fn runtime(threads: u16) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(threads));
        builder
    };
    builder
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

fn pubsub_plan(args: PubSubArgs, run_id: String) -> anyhow::Result<PubSubPlan> {
    let prefix = args
        .topic_prefix
        .unwrap_or_else(|| format!("bench/{run_id}"));
    TopicName::validate(&prefix).map_err(|e| anyhow::anyhow!("--topic-prefix {prefix:?}: {e}"))?;
    let qos = QoS::from_u8(args.qos).context("--qos must be 0, 1 or 2")?;
    if args.persistent && qos == QoS::AtMostOnce {
        anyhow::bail!(
            "--persistent needs --qos 1 or 2: brokers queue only those for a session away"
        );
    }
    if (args.retained || args.persistent) && args.subscribers == 0 {
        anyhow::bail!("--retained and --persistent need at least one subscriber");
    }
    if args.retained && args.cold_every > 0 {
        anyhow::bail!("--retained cannot be combined with --cold-every");
    }
    let mode = match (args.retained, args.persistent) {
        (true, _) => Mode::Retained,
        (false, true) => Mode::Persistent,
        (false, false) => Mode::Live,
    };
    let payload = usize::try_from(args.payload).context("--payload")?;
    debug_assert!(payload >= STAMP_LEN, "clap enforces the minimum");
    if args.cold_every > 0 && args.payload_format != PayloadFormat::Json {
        anyhow::bail!("--cold-every needs --payload-format json: only JSON payloads have a temp");
    }
    if let Some(template) = &args.topic {
        let sample = template.replace("{n}", "0").replace("{run}", &run_id);
        TopicName::validate(&sample).map_err(|e| anyhow::anyhow!("--topic {template:?}: {e}"))?;
    }
    Ok(PubSubPlan {
        addr: target::loopback_addr(&args.common.host, args.common.port)?,
        protocol: args.common.protocol,
        qos,
        publishers: args.publishers,
        subscribers: args.subscribers,
        messages: args.messages,
        payload,
        prefix,
        rate: args.rate,
        inflight: args.inflight,
        fan_in: args.fan_in,
        topic: args.topic,
        filter: args.filter,
        format: args.payload_format,
        cold_every: args.cold_every,
        mode,
        timeout: Duration::from_secs(args.common.timeout),
        run_id,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let run_id = run_id();
    let (report, json) = match cli.command {
        Command::Pubsub(args) => {
            let (threads, json) = (args.common.threads, args.common.json);
            let plan = pubsub_plan(args, run_id)?;
            (runtime(threads)?.block_on(pubsub::run(plan))?, json)
        }
        Command::Connect(args) => {
            let plan = ConnectPlan {
                addr: target::loopback_addr(&args.common.host, args.common.port)?,
                protocol: args.common.protocol,
                connections: args.connections,
                concurrency: args.concurrency,
                hold: args.hold,
                timeout: Duration::from_secs(args.common.timeout),
                run_id,
                tls: args.tls.load()?,
            };
            let report = runtime(args.common.threads)?.block_on(connect::run(plan))?;
            (report, args.common.json)
        }
        Command::Jitr(args) => {
            let tls = args
                .tls
                .load()?
                .context("jitr needs --cafile and --certs (devices connect over TLS)")?;
            let devices = match args.devices {
                Some(n) => n,
                None => u32::try_from(tls.identities.len()).context("too many certificates")?,
            };
            let plan = JitrPlan {
                addr: target::loopback_addr(&args.common.host, args.common.port)?,
                events_addr: target::loopback_addr(&args.common.host, args.events_port)?,
                protocol: args.common.protocol,
                tls,
                devices,
                concurrency: args.concurrency,
                operator: args.operator,
                timeout: Duration::from_secs(args.common.timeout),
                run_id,
            };
            let report = runtime(args.common.threads)?.block_on(jitr::run(plan))?;
            (report, args.common.json)
        }
        Command::Revoke(args) => {
            let tls = args
                .tls
                .load()?
                .context("revoke needs --cafile and --certs (devices connect over mTLS)")?;
            let devices = match args.devices {
                Some(n) => n,
                None => u32::try_from(tls.identities.len()).context("too many certificates")?,
            };
            let plan = RevokePlan {
                addr: target::loopback_addr(&args.common.host, args.common.port)?,
                protocol: args.common.protocol,
                tls,
                devices,
                concurrency: args.concurrency,
                all_at_once: args.all_at_once,
                wait: Duration::from_millis(args.wait_ms),
                operator: args.operator,
                timeout: Duration::from_secs(args.common.timeout),
                run_id,
            };
            let report = runtime(args.common.threads)?.block_on(revoke::run(plan))?;
            (report, args.common.json)
        }
        Command::Idle(args) => {
            let plan = IdlePlan {
                addr: target::loopback_addr(&args.common.host, args.common.port)?,
                protocol: args.common.protocol,
                connections: args.connections,
                concurrency: args.concurrency,
                keep_alive: args.keep_alive,
                broker_pid: args.broker_pid,
                settle: Duration::from_secs(args.settle),
                timeout: Duration::from_secs(args.common.timeout),
                run_id,
                tls: args.tls.load()?,
            };
            let report = runtime(args.common.threads)?.block_on(idle::run(plan))?;
            (report, args.common.json)
        }
    };
    if json {
        eprint!("{}", report.table());
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrule-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
