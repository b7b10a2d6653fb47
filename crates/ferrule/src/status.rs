//! `ferrule status`: what a running Ferrule is doing, in one screen — its listeners, the
//! clients connected, and the CA and device certificates in its registry by status.
//!
//! It reads the listeners a `ferrule serve` wrote into its data dir (`listeners.toml`), asks
//! `/health` for the connection counts, and pages through `ListCACertificates` and
//! `ListCertificates` with the same signed client as `ferrule ca register`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::control::Client;

/// `ferrule status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The data dir of the running `ferrule serve`: its listeners and generated credentials.
    #[arg(long, value_name = "DIR", default_value = "ferrule-data")]
    data_dir: PathBuf,
    /// The control-plane API, if not the one named in DATA_DIR/listeners.toml.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The region to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, then us-east-1).
    #[arg(long)]
    region: Option<String>,
}

/// Most pages read of one list: 250 items a page, so a registry of a million certificates.
const MAX_PAGES: usize = 4000;

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let listeners = read_listeners(&args.data_dir)?;
    let endpoint = match &args.endpoint {
        Some(url) => url.clone(),
        None => match listeners.iter().find(|(kind, _)| kind == "api") {
            Some((_, addr)) => format!("http://{addr}"),
            None => bail!(
                "{} names no api listener; pass --endpoint",
                args.data_dir.join("listeners.toml").display()
            ),
        },
    };
    let client = Client::new(&endpoint, Some(&args.data_dir), args.region.as_deref())?;
    let health = client
        .call("GET", "/health", None, None)
        .context("reading /health")?;
    let cas = count_by_status(&client, "/cacertificates", "certificates")?;
    let certs = count_by_status(&client, "/certificates", "certificates")?;

    println!(
        "Ferrule at {endpoint} (data dir {})",
        args.data_dir.display()
    );
    println!("Listeners:");
    for (kind, addr) in &listeners {
        println!("  {kind:<6} {addr}");
    }
    let n = |key: &str| health[key].as_u64().unwrap_or(0);
    println!(
        "Clients: {} connected, {} sessions, {} retained messages",
        n("connections"),
        n("sessions"),
        n("retained")
    );
    println!("CA certificates: {}", summary(&cas));
    println!("Device certificates: {}", summary(&certs));
    Ok(())
}

/// `listeners.toml`: `kind = "addr"` lines, in the order serve wrote them.
fn read_listeners(data_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let path = data_dir.join("listeners.toml");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is `ferrule serve --data-dir {}` running?)",
            path.display(),
            data_dir.display()
        )
    })?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut out: Vec<(String, String)> = table
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|a| (k, a.to_owned())))
        .collect();
    let rank = |k: &str| {
        ["mqtts", "mqtt", "ws", "wss", "api"]
            .iter()
            .position(|x| *x == k)
            .unwrap_or(usize::MAX)
    };
    out.sort_by_key(|(k, _)| rank(k));
    Ok(out)
}

/// Every item of a paged IoT list, counted by its `status`.
fn count_by_status(
    client: &Client,
    path: &str,
    member: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let query = match &marker {
            Some(m) => format!("pageSize=250&marker={}", encode(m)),
            None => "pageSize=250".to_owned(),
        };
        let page = client
            .call("GET", path, Some(&query), None)
            .with_context(|| format!("listing {path}"))?;
        for item in page[member].as_array().into_iter().flatten() {
            let status = item["status"].as_str().unwrap_or("UNKNOWN").to_owned();
            *counts.entry(status).or_insert(0) += 1;
        }
        match page["nextMarker"].as_str() {
            Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
            _ => return Ok(counts),
        }
    }
    bail!("listing {path} did not end after {MAX_PAGES} pages")
}

/// `12 (ACTIVE 10, PENDING_ACTIVATION 2)`, or `none`.
fn summary(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return "none".to_owned();
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// Percent-encodes a page marker for the query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{encode, summary};

    #[test]
    fn summaries_count_every_status() {
        assert_eq!(summary(&BTreeMap::new()), "none");
        let counts: BTreeMap<String, u64> = [("ACTIVE".to_owned(), 10), ("REVOKED".to_owned(), 1)]
            .into_iter()
            .collect();
        assert_eq!(summary(&counts), "11 (ACTIVE 10, REVOKED 1)");
    }

    #[test]
    fn markers_are_percent_encoded() {
        assert_eq!(encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
