//! TLS on the `mqtts` listener, with the real `openssl s_client` and `mosquitto_pub`/`_sub`:
//! TLS 1.2 and 1.3 both negotiate and carry MQTT, 1.1 is refused, the development certificate
//! verifies by name and by IP address, a client that trusts another CA cannot connect, and the
//! listener requires a registered client certificate (one registered under a CA or without one).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{
    CLIENT_TIMEOUT, Cert, Mqtt, Net, Pki, Server, Sub, mosquitto_pub_as, msg, publish,
    require_mosquitto, require_program, run, run_with_input, unique, wait_rejection_logged,
};

/// MQTT CONNECT (3.1.1, client id "x", clean session) followed by DISCONNECT.
const RAW_CONNECT_DISCONNECT: &[u8] = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x\xe0\x00";

/// `openssl s_client` pinned to one TLS version, presenting the server's default device
/// certificate, speaking a little raw MQTT; returns its (stdout, stderr) and whether it
/// succeeded.
fn s_client(server: &Server, version_flag: &str, extra: &[&str]) -> (bool, Vec<u8>, String) {
    s_client_as(server, Some(server.default_device()), version_flag, extra)
}

/// Like [`s_client`], presenting `cert` or no certificate.
fn s_client_as(
    server: &Server,
    cert: Option<&Cert>,
    version_flag: &str,
    extra: &[&str],
) -> (bool, Vec<u8>, String) {
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
    if let Some(c) = cert {
        cmd.arg("-cert").arg(&c.cert).arg("-key").arg(&c.key);
    }
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
    let device = server.default_device();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-L", &url, "--cafile"])
        .arg(server.ca())
        .arg("--cert")
        .arg(&device.cert)
        .arg("--key")
        .arg(&device.key)
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
    .arg("--cert")
    .arg(&device.cert)
    .arg("--key")
    .arg(&device.key)
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
    // A registered device: only the server's certificate is in question.
    let device = server.default_device();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "localhost",
        "-p",
        &server.mqtts().port().to_string(),
        "--cafile",
    ])
    .arg(&cert)
    .arg("--cert")
    .arg(&device.cert)
    .arg("--key")
    .arg(&device.key)
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

#[test]
fn a_client_without_a_certificate_is_refused_on_mqtts_but_not_on_the_plain_listener() {
    require_mosquitto();
    let server = Server::start();
    let topic = unique("nocert");
    let mut sub = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &[&topic], &[]);

    for v in [Mqtt::V311, Mqtt::V5] {
        let out = mosquitto_pub_as(&server, None, v, &topic, "no certificate", CLIENT_TIMEOUT);
        assert!(
            !out.status.success(),
            "{v:?}: publishing on mqtts without a client certificate succeeded: {out:?}"
        );
    }
    // openssl s_client sees the handshake fail and never gets a CONNACK.
    for flag in ["-tls1_2", "-tls1_3"] {
        let (ok, stdout, stderr) = s_client_as(&server, None, flag, &[]);
        assert!(
            !stdout.starts_with(b"\x20"),
            "{flag}: a CONNACK came back without a client certificate: {stdout:?}\n{stderr}"
        );
        assert!(
            !ok || stderr.contains("alert"),
            "{flag}: no sign of a refused handshake:\n{stderr}"
        );
    }
    wait_rejection_logged(&server, "no_client_certificate");
    assert!(
        sub.try_next(std::time::Duration::from_millis(300))
            .is_none(),
        "a message from a client without a certificate was delivered"
    );

    // With the registered device certificate the same publish goes through, and anonymous
    // clients on the plain listener keep full access.
    publish(
        &server,
        Net::Tls,
        Mqtt::V311,
        &topic,
        "with certificate",
        1,
        &[],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&topic, 1, false, "with certificate")
    );
    publish(&server, Net::Tcp, Mqtt::V5, &topic, "anonymous", 1, &[]);
    assert_eq!(sub.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "anonymous"));
}

#[test]
fn a_device_certificate_registered_without_a_ca_connects_once_active_with_a_policy() {
    require_mosquitto();
    let server = Server::start();
    // The fixture makes the allow-all policy.
    let _ = server.fixture();
    let aws = server.aws();
    let pki = Pki::new();
    let device = pki.self_signed_leaf("no-ca-device");
    let id = aws.register_cert_without_ca(&device, "ACTIVE");
    aws.attach_policy(common::ALLOW_ALL_POLICY, &id);
    let topic = unique("noca");
    let mut sub = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &[&topic], &[]);
    // `-h localhost` sends SNI, which certificates registered without a CA need on AWS.
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V5,
        &topic,
        "no CA",
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sub.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "no CA"));

    // INACTIVE: refused after the handshake (CONNACK 0x87, "not authorised").
    aws.update_certificate(&id, "INACTIVE");
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V5,
        &topic,
        "inactive",
        CLIENT_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(135), "{out:?}");
    wait_rejection_logged(&server, "certificate_inactive");
}
