//! TLS on the `mqtts` listener, with the real `openssl s_client` and `mosquitto_pub`/`_sub`:
//! TLS 1.2 and 1.3 both negotiate and carry MQTT, 1.1 is refused, the development certificate
//! verifies by name and by IP address, and a client that trusts another CA cannot connect.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{
    CLIENT_TIMEOUT, Mqtt, Net, Server, Sub, msg, publish, require_mosquitto, require_program, run,
    run_with_input, unique,
};

/// MQTT CONNECT (3.1.1, client id "x", clean session) followed by DISCONNECT.
const RAW_CONNECT_DISCONNECT: &[u8] = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x\xe0\x00";

/// `openssl s_client` pinned to one TLS version, speaking a little raw MQTT; returns its
/// (stdout, stderr) and whether it succeeded.
fn s_client(server: &Server, version_flag: &str, extra: &[&str]) -> (bool, Vec<u8>, String) {
    require_program("openssl", "openssl");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &server.mqtts().to_string(),
        "-servername",
        "localhost",
        "-CAfile",
    ])
    .arg(server.ca())
    .args(["-verify_return_error", version_flag, "-brief", "-ign_eof"])
    .args(extra);
    let out = run_with_input(&mut cmd, RAW_CONNECT_DISCONNECT, CLIENT_TIMEOUT);
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tls_1_2_and_1_3_are_both_negotiable_and_carry_mqtt() {
    let server = Server::start();
    for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, stdout, stderr) = s_client(&server, flag, &[]);
        assert!(ok, "openssl s_client {flag} failed:\n{stderr}");
        assert!(
            stderr.contains(&format!("Protocol version: {name}")),
            "{flag} did not negotiate {name}:\n{stderr}"
        );
        assert!(
            stderr.contains("Verification: OK"),
            "server certificate not verified against the dev CA:\n{stderr}"
        );
        // CONNACK, session present 0, return code 0.
        assert_eq!(
            stdout, b"\x20\x02\x00\x00",
            "{flag}: no CONNACK over TLS:\n{stderr}"
        );
    }
}

#[test]
fn tls_1_1_is_refused() {
    let server = Server::start();
    // SECLEVEL=0 lets this OpenSSL offer TLS 1.1 at all; the server must still refuse it.
    let (ok, stdout, stderr) = s_client(&server, "-tls1_1", &["-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok, "a TLS 1.1 handshake succeeded:\n{stderr}");
    assert!(stdout.is_empty(), "MQTT answered over TLS 1.1: {stdout:?}");
    server.wait_for_log("handshake failed", CLIENT_TIMEOUT);
}

#[test]
fn mosquitto_tls_version_flags_and_url_form() {
    require_mosquitto();
    let server = Server::start();
    let base = unique("tlsver");
    let mut sub = Sub::start(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&format!("{base}/#")],
        &["--tls-version", "tlsv1.3"],
    );
    // `--tls-version tlsv1.2` is a minimum for mosquitto; openssl above proves 1.2 itself.
    publish(
        &server,
        Net::Tls,
        Mqtt::V311,
        &format!("{base}/v12"),
        "min 1.2",
        1,
        &["--tls-version", "tlsv1.2"],
    );
    publish(
        &server,
        Net::Tls,
        Mqtt::V5,
        &format!("{base}/v13"),
        "min 1.3",
        1,
        &["--tls-version", "tlsv1.3"],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/v12"), 1, false, "min 1.2")
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/v13"), 1, false, "min 1.3")
    );

    // -L mqtts://host:port/topic
    let url = format!("mqtts://localhost:{}/{base}/url", server.mqtts().port());
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-L", &url, "--cafile"])
        .arg(server.ca())
        .args(["-m", "via url", "-q", "1"]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    assert!(out.status.success(), "mosquitto_pub -L {url}: {out:?}");
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/url"), 1, false, "via url")
    );

    // The certificate also names 127.0.0.1.
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &server.mqtts().port().to_string(),
        "--cafile",
    ])
    .arg(server.ca())
    .args(["-t", &format!("{base}/ip"), "-m", "by ip", "-q", "1"]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    assert!(
        out.status.success(),
        "TLS to 127.0.0.1 (an IP SAN) failed: {out:?}"
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/ip"), 1, false, "by ip")
    );
}

#[test]
fn a_client_that_does_not_trust_the_ca_cannot_connect() {
    require_mosquitto();
    require_program("openssl", "openssl");
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("other-ca.key");
    let cert = dir.path().join("other-ca.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
    ])
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-subj", "/CN=Some Other CA", "-days", "1"]);
    common::run_ok(&mut cmd, CLIENT_TIMEOUT);

    let topic = unique("untrusted");
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "localhost",
        "-p",
        &server.mqtts().port().to_string(),
        "--cafile",
    ])
    .arg(&cert)
    .args(["-t", &topic, "-m", "should not arrive", "-q", "1"]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "publishing while trusting another CA succeeded: {out:?}"
    );
    assert!(
        stderr.contains("TLS") || stderr.contains("certificate verify failed"),
        "unexpected error: {stderr}"
    );
    server.wait_for_log("handshake failed", CLIENT_TIMEOUT);

    // Plain MQTT to the TLS port fails too, and quickly.
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &server.mqtts().port().to_string(),
        "-t",
        &topic,
        "-m",
        "x",
        "-q",
        "1",
    ]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    assert!(
        !out.status.success(),
        "plain MQTT on the TLS listener succeeded: {out:?}"
    );
}
