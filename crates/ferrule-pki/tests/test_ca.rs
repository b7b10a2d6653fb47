//! `TestCa` certificates in real rustls handshakes, with and without client authentication.

mod common;

use ferrule_pki::{PkiError, TestCa};

#[test]
fn server_certificates_work_for_their_names() {
    let ca = TestCa::new("Test server CA").expect("ca");
    let (cert, key) = ca
        .issue_server(&["broker.test", "10.0.0.7"])
        .expect("issue");
    let server = common::server_config(common::certs(&cert), common::key(&key), None);
    let client = common::client_config(&ca.cert_pem(), None);
    common::handshake(client.clone(), server.clone(), "broker.test").expect("DNS name");
    common::handshake(client.clone(), server.clone(), "10.0.0.7").expect("IP address");
    let err = common::handshake(client, server, "other.test").expect_err("not one of its names");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[test]
fn client_certificates_pass_mutual_tls_only_with_their_ca() {
    let server_ca = TestCa::new("Test server CA").expect("ca");
    let device_ca = TestCa::new("Test device CA").expect("ca");
    let (server_cert, server_key) = server_ca.issue_server(&["localhost"]).expect("issue");
    let server = common::server_config(
        common::certs(&server_cert),
        common::key(&server_key),
        Some(&device_ca.cert_pem()),
    );

    let (device_cert, device_key) = device_ca.issue_client("device-1").expect("issue");
    let client = common::client_config(
        &server_ca.cert_pem(),
        Some((common::certs(&device_cert), common::key(&device_key))),
    );
    common::handshake(client, server.clone(), "localhost").expect("device of the trusted CA");

    let stranger = TestCa::new("Someone else's CA").expect("ca");
    let (cert, key) = stranger.issue_client("device-2").expect("issue");
    let client = common::client_config(
        &server_ca.cert_pem(),
        Some((common::certs(&cert), common::key(&key))),
    );
    let err = common::handshake(client, server.clone(), "localhost").expect_err("unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // A server certificate of the right CA is not a client certificate (EKU serverAuth only).
    let (cert, key) = device_ca.issue_server(&["device-3"]).expect("issue");
    let client = common::client_config(
        &server_ca.cert_pem(),
        Some((common::certs(&cert), common::key(&key))),
    );
    let err = common::handshake(client, server, "localhost").expect_err("wrong extended key usage");
    assert!(err.to_string().contains("client authentication"), "{err}");
}

#[test]
fn the_ca_key_belongs_to_the_ca_certificate() {
    let ca = TestCa::new("CA").expect("ca");
    assert!(ca.key_pem().contains("BEGIN PRIVATE KEY"));
    assert_eq!(common::certs(&ca.cert_pem()), vec![ca.cert_der()]);
    rustls::sign::CertifiedKey::from_der(
        vec![ca.cert_der()],
        common::key(&ca.key_pem()),
        &common::provider(),
    )
    .expect("key matches");
    assert!(format!("{ca:?}").contains("\"CA\""));
    assert!(!format!("{ca:?}").contains("PRIVATE"));
}

#[test]
fn names_rcgen_cannot_encode_are_errors() {
    let ca = TestCa::new("CA").expect("ca");
    let err = ca.issue_server(&["bücher.example"]).expect_err("not IA5");
    assert!(matches!(err, PkiError::Generate { .. }), "{err:?}");
}
