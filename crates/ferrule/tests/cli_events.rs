//! `ferrule events` against a running server: a client's connection, its subscription and a
//! refused TLS connection, each as one readable line, found through the server's data dir.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Bg, CLIENT_TIMEOUT, Conn, Server, ferrule_bin, run};
use ferrule_mqtt::ProtocolVersion;

#[test]
fn events_prints_connections_subscriptions_and_refusals_as_they_happen() {
    let server = Server::start();
    let mut events = Bg::spawn(
        Command::new(ferrule_bin())
            .arg("events")
            .arg("--data-dir")
            .arg(server.data_dir())
            .args(["--count", "3"]),
    );
    events.line(CLIENT_TIMEOUT, "the subscription", |l| {
        l.starts_with("[stderr] following $aws/events/# and $ferrule/events/#")
    });

    let mut client = Conn::tcp(server.mqtt());
    client
        .connect(ProtocolVersion::V311, "events-client", CLIENT_TIMEOUT)
        .unwrap();
    let connected = events.line(CLIENT_TIMEOUT, "connected", |l| l.contains(" connected "));
    assert!(
        connected.contains("connected     events-client from 127.0.0.1 (session "),
        "{connected}"
    );
    client.subscribe(&[("a/b", 1)]).unwrap();
    let subscribed = events.line(CLIENT_TIMEOUT, "subscribed", |l| l.contains(" subscribed "));
    assert!(
        subscribed.ends_with("subscribed    events-client: a/b"),
        "{subscribed}"
    );
    // TLS without a client certificate: refused during the handshake.
    let _ = Conn::tls(server.mqtts(), &common::Tls::with_identity(&server, None));
    let rejected = events.line(CLIENT_TIMEOUT, "rejected", |l| l.contains(" rejected "));
    assert!(
        rejected.contains("rejected      no_client_certificate: "),
        "{rejected}"
    );
    assert!(
        events.wait(CLIENT_TIMEOUT).success(),
        "stops after --count events"
    );
}

#[test]
fn events_without_a_plain_listener_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("listeners.toml"),
        "mqtts = \"127.0.0.1:8883\"\napi = \"127.0.0.1:9000\"\n",
    )
    .unwrap();
    let out = run(
        Command::new(ferrule_bin())
            .arg("events")
            .arg("--data-dir")
            .arg(dir.path()),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--mqtt-listen"), "{stderr}");
}
