//! The development PKI and the PEM loaders, checked with rustls handshakes and the openssl CLI.

mod common;

use std::path::Path;
use std::process::Command;

use ferrule_pki::{DevPki, PkiError, TestCa, load_cert_chain, load_private_key};

const FILES: [&str; 4] = ["server-ca.pem", "server-ca.key", "server.pem", "server.key"];

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn contains_path(err: &PkiError, path: &Path) -> bool {
    err.to_string().contains(&path.display().to_string())
}

#[test]
fn creates_once_then_loads_the_same_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = DevPki::load_or_create(&data).expect("create");
    for name in FILES {
        assert!(data.join(name).is_file(), "{name} is written");
    }
    assert_eq!(
        std::fs::read_to_string(data.join("server-ca.pem")).expect("read"),
        first.ca_cert_pem
    );
    assert_eq!(
        std::fs::read_to_string(data.join("server.key")).expect("read"),
        first.server_key_pem
    );

    let second = DevPki::load_or_create(&data).expect("load");
    assert_eq!(first, second);
    assert!(
        !format!("{second:?}").contains("PRIVATE KEY"),
        "Debug keeps the key out of logs"
    );
    // No temporary files are left behind.
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["server-ca.key", "server-ca.pem", "server.key", "server.pem"]
    );
}

#[cfg(unix)]
#[test]
fn keys_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    DevPki::load_or_create(dir.path()).expect("create");
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("server-ca.key"), 0o600);
    assert_eq!(mode("server.key"), 0o600);
    assert_ne!(mode("server.pem") & 0o044, 0, "certificates stay readable");
}

#[test]
fn rustls_serves_the_chain_to_clients_trusting_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::load_or_create(dir.path()).expect("create");
    let chain = pki.server_chain().expect("chain");
    assert_eq!(chain.len(), 2, "server certificate then CA");
    assert_eq!(chain[1], common::certs(&pki.ca_cert_pem)[0]);
    let server = common::server_config(chain, pki.server_key().expect("key"), None);

    let client = common::client_config(&pki.ca_cert_pem, None);
    for name in ["localhost", "127.0.0.1", "::1"] {
        common::handshake(client.clone(), server.clone(), name)
            .unwrap_or_else(|e| panic!("handshake as {name}: {e}"));
    }
    let err = common::handshake(client, server.clone(), "example.com")
        .expect_err("not a name of the certificate");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let stranger = TestCa::new("someone else").expect("ca");
    let err = common::handshake(
        common::client_config(&stranger.cert_pem(), None),
        server,
        "localhost",
    )
    .expect_err("a client trusting another CA refuses");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn openssl_verifies_the_server_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    DevPki::load_or_create(dir.path()).expect("create");
    let ca = dir.path().join("server-ca.pem");
    let server = dir.path().join("server.pem");

    let (ok, out) = openssl(&["verify", "-CAfile", path_str(&ca), path_str(&server)]);
    assert!(ok, "{out}");
    assert!(out.contains(": OK"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        path_str(&ca),
        path_str(&server),
    ]);
    assert!(ok, "EKU serverAuth: {out}");

    let (ok, out) = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        path_str(&server),
    ]);
    assert!(ok, "{out}");
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(out.contains(san), "{san} in {out}");
    }

    let (ok, out) = openssl(&["x509", "-noout", "-subject", "-in", path_str(&ca)]);
    assert!(ok && out.contains("CN = Ferrule development CA"), "{out}");
    let (ok, out) = openssl(&["x509", "-noout", "-text", "-in", path_str(&server)]);
    assert!(ok && out.contains("prime256v1"), "ECDSA P-256: {out}");
    assert!(out.contains("CN = localhost"), "{out}");
}

#[test]
fn a_missing_server_pair_is_reissued_by_the_same_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = DevPki::load_or_create(dir.path()).expect("create");
    std::fs::remove_file(dir.path().join("server.pem")).expect("rm");
    std::fs::remove_file(dir.path().join("server.key")).expect("rm");

    let second = DevPki::load_or_create(dir.path()).expect("reissue");
    assert_eq!(
        second.ca_cert_pem, first.ca_cert_pem,
        "clients keep trusting the CA"
    );
    assert_ne!(second.server_cert_pem, first.server_cert_pem);
    assert_eq!(DevPki::load_or_create(dir.path()).expect("load"), second);

    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        path_str(&dir.path().join("server-ca.pem")),
        path_str(&dir.path().join("server.pem")),
    ]);
    assert!(ok, "{out}");
}

#[test]
fn a_split_pair_is_an_error_and_nothing_is_overwritten() {
    for missing in FILES {
        let dir = tempfile::tempdir().expect("tempdir");
        DevPki::load_or_create(dir.path()).expect("create");
        let missing_path = dir.path().join(missing);
        std::fs::remove_file(&missing_path).expect("rm");
        let before: Vec<_> = FILES
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).ok())
            .collect();

        let err = DevPki::load_or_create(dir.path()).expect_err("incomplete");
        assert!(matches!(err, PkiError::IncompleteDevPki { .. }), "{err:?}");
        assert!(contains_path(&err, &missing_path), "{missing}: {err}");

        let after: Vec<_> = FILES
            .iter()
            .map(|f| std::fs::read(dir.path().join(f)).ok())
            .collect();
        assert_eq!(before, after, "{missing}: nothing written");
    }

    // Server files without any CA files.
    let dir = tempfile::tempdir().expect("tempdir");
    DevPki::load_or_create(dir.path()).expect("create");
    std::fs::remove_file(dir.path().join("server-ca.pem")).expect("rm");
    std::fs::remove_file(dir.path().join("server-ca.key")).expect("rm");
    let err = DevPki::load_or_create(dir.path()).expect_err("incomplete");
    assert!(matches!(err, PkiError::IncompleteDevPki { .. }), "{err:?}");
}

#[test]
fn a_key_of_another_certificate_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    DevPki::load_or_create(dir.path()).expect("create");
    let (_, other_key) = TestCa::new("other")
        .expect("ca")
        .issue_server(&["localhost"])
        .expect("issue");
    let key_path = dir.path().join("server.key");
    std::fs::write(&key_path, other_key).expect("write");

    let err = DevPki::load_or_create(dir.path()).expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");
    assert!(contains_path(&err, &key_path), "{err}");
    assert!(contains_path(&err, &dir.path().join("server.pem")), "{err}");
}

#[test]
fn a_corrupt_certificate_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    DevPki::load_or_create(dir.path()).expect("create");
    let ca_path = dir.path().join("server-ca.pem");
    std::fs::write(&ca_path, "garbage").expect("write");
    let err = DevPki::load_or_create(dir.path()).expect_err("garbage");
    assert!(matches!(err, PkiError::NoCertificate { .. }), "{err:?}");
    assert!(contains_path(&err, &ca_path), "{err}");
}

#[test]
fn load_cert_chain_reads_every_certificate_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = DevPki::load_or_create(dir.path()).expect("create");
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("{}{}", pki.server_cert_pem, pki.ca_cert_pem),
    )
    .expect("write");
    assert_eq!(
        load_cert_chain(&bundle).expect("load"),
        pki.server_chain().expect("chain")
    );
    load_private_key(&dir.path().join("server.key")).expect("PKCS#8 key");
}

#[test]
fn load_cert_chain_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");

    let missing = dir.path().join("missing.pem");
    let err = load_cert_chain(&missing).expect_err("missing");
    assert!(matches!(err, PkiError::Io { .. }), "{err:?}");
    assert!(contains_path(&err, &missing), "{err}");
    assert!(err.to_string().contains("No such file"), "{err}");

    for (name, contents) in [
        ("garbage.pem", &b"\x00\xffnot a certificate\n\x13"[..]),
        ("empty.pem", &b""[..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        let err = load_cert_chain(&path).expect_err("no certificate");
        assert!(matches!(err, PkiError::NoCertificate { .. }), "{err:?}");
        assert!(contains_path(&err, &path), "{err}");
    }

    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = load_cert_chain(&bad).expect_err("bad base64");
    assert!(matches!(err, PkiError::Pem { .. }), "{err:?}");
    assert!(contains_path(&err, &bad), "{err}");

    let key_as_cert = dir.path().join("key.pem");
    let (_, key) = TestCa::new("x")
        .expect("ca")
        .issue_client("c")
        .expect("issue");
    std::fs::write(&key_as_cert, key).expect("write");
    let err = load_cert_chain(&key_as_cert).expect_err("a key is not a certificate");
    assert!(matches!(err, PkiError::NoCertificate { .. }), "{err:?}");
}

#[test]
fn load_private_key_reads_sec1_and_pkcs1_and_refuses_encrypted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sec1 = dir.path().join("ec.key");
    let (ok, out) = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        path_str(&sec1),
    ]);
    assert!(ok, "{out}");
    assert!(
        std::fs::read_to_string(&sec1)
            .expect("read")
            .contains("BEGIN EC PRIVATE KEY")
    );
    assert!(matches!(
        load_private_key(&sec1).expect("SEC1"),
        rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));

    let pkcs1 = dir.path().join("rsa.key");
    let (ok, out) = openssl(&["genrsa", "-traditional", "-out", path_str(&pkcs1), "2048"]);
    assert!(ok, "{out}");
    assert!(
        std::fs::read_to_string(&pkcs1)
            .expect("read")
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert!(matches!(
        load_private_key(&pkcs1).expect("PKCS#1"),
        rustls::pki_types::PrivateKeyDer::Pkcs1(_)
    ));

    let encrypted = dir.path().join("encrypted.key");
    let (ok, out) = openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        path_str(&sec1),
        "-out",
        path_str(&encrypted),
        "-passout",
        "pass:secret",
    ]);
    assert!(ok, "{out}");
    let err = load_private_key(&encrypted).expect_err("encrypted");
    assert!(
        matches!(err, PkiError::EncryptedPrivateKey { .. }),
        "{err:?}"
    );
    assert!(contains_path(&err, &encrypted), "{err}");

    let cert_as_key = dir.path().join("cert.pem");
    std::fs::write(&cert_as_key, TestCa::new("x").expect("ca").cert_pem()).expect("write");
    let err = load_private_key(&cert_as_key).expect_err("no key");
    assert!(matches!(err, PkiError::NoPrivateKey { .. }), "{err:?}");
    assert!(contains_path(&err, &cert_as_key), "{err}");

    let missing = dir.path().join("missing.key");
    let err = load_private_key(&missing).expect_err("missing");
    assert!(
        matches!(err, PkiError::Io { .. }) && contains_path(&err, &missing),
        "{err}"
    );
}

#[test]
fn load_private_key_refuses_keys_tls_cannot_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ed448 = dir.path().join("ed448.key");
    let (ok, out) = openssl(&["genpkey", "-algorithm", "ED448", "-out", path_str(&ed448)]);
    assert!(ok, "{out}");
    let err = load_private_key(&ed448).expect_err("aws-lc-rs cannot sign with Ed448");
    assert!(matches!(err, PkiError::UnusableKey { .. }), "{err:?}");
    assert!(contains_path(&err, &ed448), "{err}");
}
