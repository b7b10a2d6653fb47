//! Every way the `mqtts` listener refuses a device, one table: what the client sees (a TLS alert
//! during the handshake, or CONNACK 0x87 / return code 5 after it, then the close), the
//! `$ferrule/events/connections/rejected` event with the certificate's details, the
//! `ferrule_connections_rejected_total{reason}` counter and the `connection rejected` log line.
//!
//! Clients: the Rust client of `common::mqtt` (TLS 1.2 and 1.3 for handshake refusals, MQTT 5
//! after the handshake; it also presents garbage and SHA-1 certificates, which OpenSSL clients
//! would not send) and the real `mosquitto_pub` (MQTT 3.1.1) wherever OpenSSL can present the
//! certificate.
//!
//! Two states have no API: PENDING_TRANSFER (TransferCertificate is not implemented) is written to
//! the registry with `sqlite3` while the server is stopped; `unknown_certificate` (a certificate
//! the TLS trust snapshot still lists as registered without a CA, but the registry no longer
//! has) is made by deleting its row with `sqlite3` while the server runs, as when another node
//! deletes it.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    ALLOW_ALL_POLICY, CLIENT_TIMEOUT, CertInfo, Conn, Events, Identity, KeyAlg, Mqtt, Pki,
    REJECTED_TOPIC, Server, Tls, TlsVersion, all_listener_args, arn, assert_ms_timestamp,
    mosquitto_pub_as, now_ms, policy, registered_topic, rejected_count, require_mosquitto,
    require_program, run_ok, unique, wait_rejected_count, wait_rejection_logged,
};
use ferrule_mqtt::ProtocolVersion;
use serde_json::{Value, json};

/// Where the refusal happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// During the TLS handshake: the client gets an alert, no MQTT at all.
    Handshake,
    /// After the handshake, on CONNECT: CONNACK 0x87 (MQTT 5) / return code 5 (3.1.1).
    Connack,
}

/// What the event must say about a field.
#[derive(Debug, Clone)]
enum Want {
    Null,
    Is(String),
    /// Not pinned down by the contract (null or a value of the right shape).
    Any,
}

struct Case {
    reason: &'static str,
    stage: Stage,
    /// What the Rust client presents (`None`: no certificate).
    identity: Option<Identity>,
    /// What `mosquitto_pub` presents, when OpenSSL can present it.
    mosquitto: Option<Option<common::Cert>>,
    certificate_id: Want,
    ca_id: Want,
    /// Subject, issuer and validity the event must carry (`None`: all null).
    info: Option<CertInfo>,
    /// Also assert that nothing was registered and no registered event was published.
    nothing_registered: Option<(String, String)>,
}

fn sqlite(db: &Path, sql: &str) {
    require_program("sqlite3", "sqlite3");
    let mut cmd = Command::new("sqlite3");
    cmd.arg(db)
        .arg(format!("PRAGMA busy_timeout = 5000; {sql}"));
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

fn check_want(event: &Value, field: &str, want: &Want) {
    let got = &event[field];
    match want {
        Want::Null => assert!(got.is_null(), "{field} should be null: {event}"),
        Want::Is(v) => assert_eq!(got, v.as_str(), "{field}: {event}"),
        Want::Any => assert!(
            got.is_null()
                || got
                    .as_str()
                    .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())),
            "{field} should be null or a certificate id: {event}"
        ),
    }
}

/// Checks one rejection event against the case.
fn check_event(case: &Case, event: &Value, port: u16, client_id: Option<&str>, from: u64) {
    assert_eq!(event["eventType"], "rejected", "{event}");
    assert_eq!(event["reason"], case.reason, "{event}");
    assert_ms_timestamp(&event["timestamp"], from, "timestamp");
    assert!(
        event["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {event}"
    );
    assert_eq!(event["listener"], "mqtts", "{event}");
    assert_eq!(event["sourceIp"], "127.0.0.1", "{event}");
    assert_eq!(event["sourcePort"], port, "{event}");
    match client_id {
        Some(id) => assert_eq!(event["clientId"], id, "{event}"),
        None => assert!(
            event["clientId"].is_null(),
            "clientId before any CONNECT: {event}"
        ),
    }
    check_want(event, "certificateId", &case.certificate_id);
    check_want(event, "caCertificateId", &case.ca_id);
    match &case.info {
        Some(info) => {
            assert_eq!(event["subject"], info.subject.as_str(), "{event}");
            assert_eq!(event["issuer"], info.issuer.as_str(), "{event}");
            assert_eq!(event["notBefore"], info.not_before.as_str(), "{event}");
            assert_eq!(event["notAfter"], info.not_after.as_str(), "{event}");
        }
        None => {
            for f in ["subject", "issuer", "notBefore", "notAfter"] {
                assert!(event[f].is_null(), "{f} should be null: {event}");
            }
        }
    }
}

/// Runs one case; returns how many refused connections it made.
fn run_case(server: &Server, events: &mut Events, case: &Case) -> u32 {
    let from = now_ms();
    let mut attempts = 0;
    let versions: &[TlsVersion] = match case.stage {
        Stage::Handshake => &[TlsVersion::Tls12, TlsVersion::Tls13],
        Stage::Connack => &[TlsVersion::Tls13],
    };
    for &version in versions {
        let tls = Tls::with_identity(server, case.identity.clone()).version(version);
        let client_id = unique(case.reason);
        attempts += 1;
        let (port, said_client_id) = match (case.stage, Conn::tls(server.mqtts(), &tls)) {
            (Stage::Handshake, Err(failed)) => {
                // TLS 1.2: the client waits for the server's Finished and gets the alert.
                assert!(
                    failed.ended.is_alert(),
                    "{} over {version:?}: the handshake failed without an alert: {:?}",
                    case.reason,
                    failed.ended
                );
                (failed.local_port, None)
            }
            (Stage::Handshake, Ok(mut conn)) => {
                // TLS 1.3: the client is done first and reads the alert afterwards, before it
                // has sent anything.
                assert_eq!(
                    version,
                    TlsVersion::Tls13,
                    "{}: TLS 1.2 handshake completed",
                    case.reason
                );
                let port = conn.local_port();
                match conn.recv(CLIENT_TIMEOUT) {
                    common::Recv::Ended(ended) => assert!(
                        ended.is_alert(),
                        "{} over TLS 1.3: ended without an alert: {ended:?}",
                        case.reason
                    ),
                    other => panic!(
                        "{} over TLS 1.3: expected the server's alert, got {other:?}",
                        case.reason
                    ),
                }
                (port, None)
            }
            (Stage::Connack, Err(failed)) => panic!(
                "{}: the handshake should succeed (the refusal comes on CONNECT): {:?}",
                case.reason, failed.ended
            ),
            (Stage::Connack, Ok(mut conn)) => {
                let port = conn.local_port();
                let ack = conn
                    .connect(ProtocolVersion::V5, &client_id, CLIENT_TIMEOUT)
                    .unwrap_or_else(|e| {
                        panic!("{}: closed without CONNACK 0x87: {e:?}", case.reason)
                    });
                assert_eq!(ack.reason.0, 0x87, "{}: {ack:?}", case.reason);
                assert!(
                    ack.properties.reason_string.is_some(),
                    "{}: CONNACK 0x87 without a reason string: {ack:?}",
                    case.reason
                );
                assert!(
                    conn.wait_closed(Instant::now() + CLIENT_TIMEOUT).is_some(),
                    "{}: the connection stayed open after CONNACK 0x87",
                    case.reason
                );
                (port, Some(client_id.as_str()))
            }
        };
        let event = events.rejected(case.reason, CLIENT_TIMEOUT, |e| e["sourcePort"] == port);
        check_event(case, &event, port, said_client_id, from);
    }

    if let Some(presented) = &case.mosquitto {
        attempts += 1;
        let out = mosquitto_pub_as(
            server,
            presented.as_ref(),
            Mqtt::V311,
            &format!("refused/{}", case.reason),
            "must not arrive",
            CLIENT_TIMEOUT,
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        match case.stage {
            Stage::Handshake => {
                assert!(
                    !out.status.success(),
                    "{}: mosquitto_pub connected: {out:?}",
                    case.reason
                );
                assert!(
                    !stderr.contains("connection refused") && !stderr.contains("not authori"),
                    "{}: mosquitto_pub got a CONNACK, not a TLS failure: {stderr}",
                    case.reason
                );
            }
            Stage::Connack => {
                assert_eq!(out.status.code(), Some(5), "{}: {out:?}", case.reason);
                assert!(
                    stderr.contains("not authorised"),
                    "{}: {stderr}",
                    case.reason
                );
            }
        }
        events.rejected(case.reason, CLIENT_TIMEOUT, |_| true);
    }
    wait_rejection_logged(server, case.reason);
    attempts
}

#[test]
fn every_refusal_has_its_reason_event_counter_and_log_line() {
    require_mosquitto();
    let mut args = all_listener_args();
    // Hold mode with a short hold: a PENDING_ACTIVATION certificate is refused with CONNACK 0x87.
    args.extend(["--jitr-mode", "hold", "--jitr-hold-ms", "300"].map(OsString::from));
    let mut server = Server::start_with(args);
    let pki = Pki::new();
    let aws = server.aws();
    let _ = server.fixture(); // the allow-all policy

    // CAs: the main one (ACTIVE, auto-registration), an INACTIVE one, one with
    // auto-registration disabled, and one never registered.
    let main = pki.ca("main-ca", "/O=Ferrule Tests/CN=Refusal CA", KeyAlg::Rsa2048);
    let main_id = aws.register_ca(&pki, &main, true, true);
    let inactive_ca = pki.ca(
        "inactive-ca",
        "/O=Ferrule Tests/CN=Inactive CA",
        KeyAlg::EcP256,
    );
    let inactive_ca_id = aws.register_ca(&pki, &inactive_ca, false, true);
    let disabled_ca = pki.ca(
        "disabled-ca",
        "/O=Ferrule Tests/CN=No Auto CA",
        KeyAlg::EcP256,
    );
    let disabled_ca_id = aws.register_ca(&pki, &disabled_ca, true, false);
    let stranger_ca = pki.ca(
        "stranger-ca",
        "/O=Elsewhere/CN=Unregistered CA",
        KeyAlg::EcP256,
    );

    // Device certificates for each case.
    let expired = pki.device_with_dates("expired", &main, "20200101000000Z", "20210101000000Z");
    let future = pki.device_with_dates("future", &main, "20900101000000Z", "20910101000000Z");
    let stranger = pki.device("stranger", &stranger_ca, KeyAlg::EcP256);
    let forged = pki.forged_device("forged", &main);
    let sha1 = pki.sha1_device("sha1", &main);
    let garbage = pki.garbage_cert("garbage");
    let under_inactive = pki.device("under-inactive-ca", &inactive_ca, KeyAlg::EcP256);
    let under_disabled = pki.device("under-disabled-ca", &disabled_ca, KeyAlg::EcP256);
    let inactive = pki.device("inactive", &main, KeyAlg::EcP256);
    let revoked = pki.device("revoked", &main, KeyAlg::EcP256);
    let transfer = pki.device("pending-transfer", &main, KeyAlg::EcP256);
    let pending = pki.device("pending-activation", &main, KeyAlg::EcP256);
    let unauthorized = pki.device("unauthorized", &main, KeyAlg::EcP256);
    let vanished = pki.self_signed_leaf("vanished");

    for (cert, status) in [
        (&inactive, "INACTIVE"),
        (&revoked, "REVOKED"),
        (&transfer, "ACTIVE"),
        (&unauthorized, "ACTIVE"),
    ] {
        aws.register_cert(cert, status);
    }
    // Policies that would let them in, so that only the status refuses them.
    for cert in [&inactive, &revoked, &transfer] {
        aws.attach_policy(ALLOW_ALL_POLICY, &cert.id());
    }
    // Connect is allowed for another client id only.
    aws.grant(
        "OtherClientOnly",
        &policy(json!([
            { "Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", "someone-else") },
            { "Effect": "Allow", "Action": ["iot:Publish", "iot:Subscribe", "iot:Receive"], "Resource": "*" },
        ])),
        &unauthorized.id(),
    );
    aws.register_cert_without_ca(&vanished, "ACTIVE");
    aws.attach_policy(ALLOW_ALL_POLICY, &vanished.id());

    // PENDING_TRANSFER has no API: written to the registry while the server is stopped.
    let transfer_id = transfer.id();
    server.restart_with(|data| {
        sqlite(
            &data.join("ferrule.db"),
            &format!(
                "UPDATE certificates SET status = 'PENDING_TRANSFER' WHERE id = '{transfer_id}';"
            ),
        );
    });
    let aws = server.aws();
    assert_eq!(
        aws.describe_certificate(&transfer_id)["status"],
        "PENDING_TRANSFER"
    );
    // The admin also watches where the refused clients would publish.
    let mut events = Events::start_on(
        &server,
        &["$aws/events/#", "$ferrule/events/#", "refused/#"],
    );

    // PENDING_ACTIVATION by JITR: the first connection registers it (and is refused when the
    // 300 ms hold runs out); the table's connections come after.
    let mut first = Conn::tls(server.mqtts(), &Tls::device(&server, &pending)).unwrap();
    let first_port = first.local_port();
    let ack = first
        .connect(ProtocolVersion::V5, "pending-first", CLIENT_TIMEOUT)
        .unwrap();
    assert_eq!(ack.reason.0, 0x87, "{ack:?}");
    events.on_topic(&registered_topic(&main_id), CLIENT_TIMEOUT);
    events.rejected("certificate_pending_activation", CLIENT_TIMEOUT, |e| {
        e["sourcePort"] == first_port
    });
    aws.attach_policy(ALLOW_ALL_POLICY, &pending.id());
    wait_rejected_count(&server, "certificate_pending_activation", 1.0);

    // unknown_certificate: the trust snapshot still lists it as registered without a CA, but
    // the registry has lost it.
    sqlite(
        &server.data_dir().join("ferrule.db"),
        &format!(
            "DELETE FROM policy_attachments WHERE target LIKE '%{id}'; DELETE FROM certificates WHERE id = '{id}';",
            id = vanished.id()
        ),
    );

    let id = |c: &common::Cert| Want::Is(c.id());
    let cases = vec![
        Case {
            reason: "no_client_certificate",
            stage: Stage::Handshake,
            identity: None,
            mosquitto: Some(None),
            certificate_id: Want::Null,
            ca_id: Want::Null,
            info: None,
            nothing_registered: None,
        },
        Case {
            reason: "unparseable_certificate",
            stage: Stage::Handshake,
            identity: Some(Identity::raw(
                std::fs::read(&garbage.cert).unwrap(),
                &garbage.key,
            )),
            mosquitto: None,
            certificate_id: Want::Any,
            ca_id: Want::Null,
            info: None,
            nothing_registered: None,
        },
        Case {
            reason: "ca_used_as_device_certificate",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&main.as_cert())),
            mosquitto: Some(Some(main.as_cert())),
            certificate_id: Want::Is(main_id.clone()),
            ca_id: Want::Any,
            info: Some(main.info()),
            nothing_registered: None,
        },
        Case {
            reason: "certificate_expired",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&expired)),
            mosquitto: Some(Some(expired.clone())),
            certificate_id: id(&expired),
            ca_id: Want::Any,
            info: Some(expired.info()),
            nothing_registered: None,
        },
        Case {
            reason: "certificate_not_yet_valid",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&future)),
            mosquitto: Some(Some(future.clone())),
            certificate_id: id(&future),
            ca_id: Want::Any,
            info: Some(future.info()),
            nothing_registered: None,
        },
        Case {
            reason: "unknown_ca",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&stranger)),
            mosquitto: Some(Some(stranger.clone())),
            certificate_id: id(&stranger),
            ca_id: Want::Null,
            info: Some(stranger.info()),
            nothing_registered: None,
        },
        Case {
            reason: "bad_signature",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&forged)),
            mosquitto: Some(Some(forged.clone())),
            certificate_id: id(&forged),
            ca_id: Want::Any,
            info: Some(forged.info()),
            nothing_registered: None,
        },
        Case {
            reason: "unsupported_algorithm",
            stage: Stage::Handshake,
            identity: Some(Identity::of(&sha1)),
            // OpenSSL at its default security level will not present a SHA-1 certificate.
            mosquitto: None,
            certificate_id: id(&sha1),
            ca_id: Want::Any,
            info: Some(sha1.info()),
            nothing_registered: None,
        },
        Case {
            // A registered ACTIVE certificate, presented by a client without its private key:
            // the certificate passes, the handshake's CertificateVerify does not.
            reason: "handshake_signature_invalid",
            stage: Stage::Handshake,
            identity: Some(Identity::with_key(&unauthorized, &revoked.key)),
            mosquitto: None,
            certificate_id: id(&unauthorized),
            ca_id: Want::Is(main_id.clone()),
            info: Some(unauthorized.info()),
            nothing_registered: None,
        },
        Case {
            reason: "ca_inactive",
            stage: Stage::Connack,
            identity: Some(Identity::of(&under_inactive)),
            mosquitto: Some(Some(under_inactive.clone())),
            certificate_id: id(&under_inactive),
            ca_id: Want::Is(inactive_ca_id.clone()),
            info: Some(under_inactive.info()),
            nothing_registered: Some((inactive_ca_id.clone(), under_inactive.id())),
        },
        Case {
            reason: "auto_registration_disabled",
            stage: Stage::Connack,
            identity: Some(Identity::of(&under_disabled)),
            mosquitto: Some(Some(under_disabled.clone())),
            certificate_id: id(&under_disabled),
            ca_id: Want::Is(disabled_ca_id.clone()),
            info: Some(under_disabled.info()),
            nothing_registered: Some((disabled_ca_id.clone(), under_disabled.id())),
        },
        Case {
            reason: "certificate_inactive",
            stage: Stage::Connack,
            identity: Some(Identity::of(&inactive)),
            mosquitto: Some(Some(inactive.clone())),
            certificate_id: id(&inactive),
            ca_id: Want::Is(main_id.clone()),
            info: Some(inactive.info()),
            nothing_registered: None,
        },
        Case {
            reason: "certificate_revoked",
            stage: Stage::Connack,
            identity: Some(Identity::of(&revoked)),
            mosquitto: Some(Some(revoked.clone())),
            certificate_id: id(&revoked),
            ca_id: Want::Is(main_id.clone()),
            info: Some(revoked.info()),
            nothing_registered: None,
        },
        Case {
            reason: "certificate_pending_transfer",
            stage: Stage::Connack,
            identity: Some(Identity::of(&transfer)),
            mosquitto: Some(Some(transfer.clone())),
            certificate_id: id(&transfer),
            ca_id: Want::Is(main_id.clone()),
            info: Some(transfer.info()),
            nothing_registered: None,
        },
        Case {
            reason: "certificate_pending_activation",
            stage: Stage::Connack,
            identity: Some(Identity::of(&pending)),
            mosquitto: Some(Some(pending.clone())),
            certificate_id: id(&pending),
            ca_id: Want::Is(main_id.clone()),
            info: Some(pending.info()),
            nothing_registered: None,
        },
        Case {
            reason: "not_authorized",
            stage: Stage::Connack,
            identity: Some(Identity::of(&unauthorized)),
            mosquitto: Some(Some(unauthorized.clone())),
            certificate_id: id(&unauthorized),
            ca_id: Want::Is(main_id.clone()),
            info: Some(unauthorized.info()),
            nothing_registered: None,
        },
        Case {
            reason: "unknown_certificate",
            stage: Stage::Connack,
            identity: Some(Identity::of(&vanished)),
            mosquitto: Some(Some(vanished.clone())),
            certificate_id: id(&vanished),
            ca_id: Want::Null,
            info: Some(vanished.info()),
            nothing_registered: None,
        },
    ];

    let mut reasons = std::collections::HashSet::new();
    for case in &cases {
        assert!(
            reasons.insert(case.reason),
            "{} twice in the table",
            case.reason
        );
        let before = rejected_count(&server, case.reason);
        let attempts = run_case(&server, &mut events, case);
        let expected = before + f64::from(attempts);
        let after = wait_rejected_count(&server, case.reason, expected);
        assert_eq!(
            after, expected,
            "ferrule_connections_rejected_total{{reason=\"{}\"}}: {before} before {attempts} refused \
             connection(s), {after} after",
            case.reason
        );
        if let Some((ca_id, cert_id)) = &case.nothing_registered {
            let listed = aws.list_certificates();
            assert!(
                listed
                    .iter()
                    .all(|c| c["certificateId"] != cert_id.as_str()),
                "{}: the certificate was registered: {listed:?}",
                case.reason
            );
            let seen = events.all_seen(Duration::from_millis(300));
            let topic = registered_topic(ca_id);
            assert!(
                seen.iter()
                    .filter(|e| e.topic.starts_with("$aws/events/certificates/registered/"))
                    .all(|e| e.topic != topic && e.body["certificateId"] != cert_id.as_str()),
                "{}: a registered event was published",
                case.reason
            );
        }
    }
    assert_eq!(reasons.len(), 17);

    // Nothing the refused clients sent was routed.
    let seen = events.all_seen(Duration::from_millis(300));
    let routed: Vec<&str> = seen
        .iter()
        .map(|e| e.topic.as_str())
        .filter(|t| t.starts_with("refused/"))
        .collect();
    assert!(
        routed.is_empty(),
        "refused clients' messages were routed: {routed:?}"
    );
    assert!(seen.iter().any(|e| e.topic == REJECTED_TOPIC));
    // And an ACTIVE device with a policy still gets in, and its message is routed.
    let mut ok = common::connect_device(
        &server,
        server.default_device(),
        ProtocolVersion::V5,
        "still-welcome",
    );
    let ack = ok.publish("refused/control", b"ok", 1, false).unwrap();
    assert!(
        ack.as_ref().is_some_and(|a| !a.reason.is_error()),
        "{ack:?}"
    );
    ok.disconnect();
    events.next("the control message", CLIENT_TIMEOUT, |e| {
        e.topic == "refused/control"
    });
}
