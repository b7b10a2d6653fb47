//! `ferrule events`: the broker's announcements as they happen, one readable line each —
//! registrations (`$aws/events/certificates/registered/...`), connections and disconnections,
//! subscriptions, and refused connections with their reason (`$ferrule/events/...`).
//!
//! It is an ordinary MQTT 3.1.1 subscriber on the plain listener that `ferrule serve` names in
//! its data dir's `listeners.toml` (or `--host`/`--port`): `$aws/events/#` and
//! `$ferrule/events/#`. Under an `anonymous_policy`, that policy must allow subscribing to them.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::mqtt_client;

/// `ferrule events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Keep printing events until interrupted (the default unless --count is given).
    #[arg(long)]
    follow: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// The data dir of the running `ferrule serve`, whose listeners.toml names its plain MQTT
    /// listener.
    #[arg(long, value_name = "DIR", default_value = "ferrule-data")]
    data_dir: PathBuf,
    /// The plain MQTT listener's host, instead of the one in listeners.toml.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The plain MQTT listener's port, instead of the one in listeners.toml.
    #[arg(long)]
    port: Option<u16>,
    /// Print each event as its topic and raw JSON payload instead of a summary.
    #[arg(long)]
    json: bool,
}

/// The topics followed.
const TOPICS: [&str; 2] = ["$aws/events/#", "$ferrule/events/#"];

pub(crate) fn run(args: &EventsArgs) -> anyhow::Result<()> {
    let port = match args.port {
        Some(port) => port,
        None => plain_port(args)?,
    };
    let addr = (args.host.as_str(), port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}:{port}", args.host))?
        .next()
        .with_context(|| format!("{} has no address", args.host))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(follow(args, addr))
}

async fn follow(args: &EventsArgs, addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = mqtt_client::tcp(addr).await?;
    let client_id = format!("ferrule-events-{}", std::process::id());
    conn.connect(&client_id).await?;
    conn.subscribe(&TOPICS).await.context(
        "under an anonymous policy, that policy must allow iot:Subscribe on these topics",
    )?;
    eprintln!(
        "following {} on {addr} (Ctrl-C to stop)",
        TOPICS.join(" and ")
    );
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| seen < n) {
        let (topic, payload) = conn.next_message().await?;
        // Our own connection's and subscription's events are not news.
        if topic.starts_with("$aws/events/") && topic.rsplit('/').next() == Some(client_id.as_str())
        {
            continue;
        }
        let line = if args.json {
            format!("{topic} {}", String::from_utf8_lossy(&payload))
        } else {
            describe(&topic, &payload)
        };
        writeln!(out, "{line}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
        seen += 1;
    }
    conn.disconnect().await;
    Ok(())
}

/// The plain MQTT listener's port from `DATA_DIR/listeners.toml`.
fn plain_port(args: &EventsArgs) -> anyhow::Result<u16> {
    let path = args.data_dir.join("listeners.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is `ferrule serve --data-dir {}` running? or pass --port)",
            path.display(),
            args.data_dir.display()
        )
    })?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(addr) = table.get("mqtt").and_then(|v| v.as_str()) else {
        bail!(
            "{} names no plain MQTT listener: events are read by an MQTT subscriber, so start \
             `ferrule serve` with --mqtt-listen, or pass --port",
            path.display()
        );
    };
    let addr: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("{}: mqtt = {addr:?} is not an address", path.display()))?;
    Ok(addr.port())
}

/// One line for an event: the time, what happened, and its main facts.
fn describe(topic: &str, payload: &[u8]) -> String {
    let Ok(body) = serde_json::from_slice::<Value>(payload) else {
        return format!("{topic} {}", String::from_utf8_lossy(payload));
    };
    let s = |key: &str| match &body[key] {
        Value::String(v) => v.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let levels: Vec<&str> = topic.split('/').collect();
    let what = match levels.as_slice() {
        ["$aws", "events", "certificates", "registered", ca] => format!(
            "registered    certificate {} under CA {ca}: {}",
            s("certificateId"),
            s("certificateStatus")
        ),
        ["$aws", "events", "presence", "connected", client] => format!(
            "connected     {client} from {} (session {})",
            s("ipAddress"),
            s("sessionIdentifier")
        ),
        ["$aws", "events", "presence", "disconnected", client] => format!(
            "disconnected  {client}: {}{}",
            s("disconnectReason"),
            if body["clientInitiatedDisconnect"] == Value::Bool(true) {
                " (by the client)"
            } else {
                ""
            }
        ),
        [
            "$aws",
            "events",
            "subscriptions",
            kind @ ("subscribed" | "unsubscribed"),
            client,
        ] => {
            let topics: Vec<String> = body["topics"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            format!("{kind:<13} {client}: {}", topics.join(", "))
        }
        ["$ferrule", "events", "connections", "rejected"] => format!(
            "rejected      {}: {} (client {}, certificate {}, from {})",
            s("reason"),
            s("message"),
            s("clientId"),
            s("certificateId"),
            s("sourceIp")
        ),
        _ => format!("{topic} {body}"),
    };
    let time = body["timestamp"].as_i64().map(clock).unwrap_or_default();
    format!("{time} {what}")
}

/// `HH:MM:SS.mmm` (UTC) of a millisecond timestamp.
fn clock(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::{clock, describe};

    #[test]
    fn events_read_as_one_line_each() {
        let registered = br#"{"certificateId":"abc","caCertificateId":"ca1","timestamp":1795947302123,"certificateStatus":"PENDING_ACTIVATION","awsAccountId":"123456789012","certificateRegistrationTimestamp":null}"#;
        assert_eq!(
            describe("$aws/events/certificates/registered/ca1", registered),
            "10:15:02.123 registered    certificate abc under CA ca1: PENDING_ACTIVATION"
        );
        let rejected = br#"{"reason":"unknown_ca","message":"no registered CA signed it","clientId":"d1","certificateId":"x","sourceIp":"127.0.0.1","timestamp":0}"#;
        assert_eq!(
            describe("$ferrule/events/connections/rejected", rejected),
            "00:00:00.000 rejected      unknown_ca: no registered CA signed it (client d1, certificate x, from 127.0.0.1)"
        );
        assert_eq!(
            describe("$aws/events/other", b"not json"),
            "$aws/events/other not json"
        );
        assert_eq!(clock(86_399_999), "23:59:59.999");
    }
}
