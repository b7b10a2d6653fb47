//! `ferrule status` against a running server: its listeners, connected clients, and the CA and
//! device certificates by status, with the credentials from the server's data dir.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{CLIENT_TIMEOUT, Conn, KeyAlg, Pki, Server, ferrule_bin, run};
use ferrule_mqtt::ProtocolVersion;

fn status(server: &Server) -> String {
    let out = run(
        Command::new(ferrule_bin())
            .arg("status")
            .arg("--data-dir")
            .arg(server.data_dir()),
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn status_shows_listeners_clients_and_certificates_by_status() {
    let server = Server::start();
    let aws = server.aws();
    let pki = Pki::new();
    let ca = pki.ca("status-ca", "/CN=status-ca", KeyAlg::EcP256);
    aws.register_ca(&pki, &ca, true, true);
    let a = pki.device("status-a", &ca, KeyAlg::EcP256);
    let b = pki.device("status-b", &ca, KeyAlg::EcP256);
    let c = pki.device("status-c", &ca, KeyAlg::EcP256);
    aws.register_cert(&a, "ACTIVE");
    aws.register_cert(&b, "ACTIVE");
    let revoked = aws.register_cert(&c, "ACTIVE");
    aws.update_certificate(&revoked, "REVOKED");

    let mut conn = Conn::tcp(server.mqtt());
    conn.connect(ProtocolVersion::V311, "status-client", CLIENT_TIMEOUT)
        .unwrap();

    let text = status(&server);
    let api = format!("http://{}", server.api());
    assert!(text.starts_with(&format!("Ferrule at {api}")), "{text}");
    for (kind, addr) in [
        ("mqtts", server.mqtts()),
        ("mqtt", server.mqtt()),
        ("api", server.api()),
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [kind, &addr.to_string()]),
            "{kind} {addr}: {text}"
        );
    }
    assert!(text.contains("Clients: 1 connected, 1 sessions"), "{text}");
    // The fixture CA of the server's default device is registered too, once used.
    assert!(text.contains("CA certificates: "), "{text}");
    assert!(text.contains("ACTIVE"), "{text}");
    assert!(
        text.contains("Device certificates: 3 (ACTIVE 2, REVOKED 1)"),
        "{text}"
    );
}

#[test]
fn status_without_a_running_server_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(ferrule_bin())
            .arg("status")
            .arg("--data-dir")
            .arg(dir.path()),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listeners.toml"), "{stderr}");
    assert!(stderr.contains("ferrule serve"), "{stderr}");
}
