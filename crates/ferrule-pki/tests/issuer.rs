//! The issuing CA: CreateCertificateFromCsr and CreateKeysAndCertificate, checked with the
//! openssl CLI and a rustls handshake.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::openssl::Dir;
use ferrule_pki::{
    IssuedKeys, Issuer, KeyType, PkiError, parse_certificate_pem, parse_csr_der, parse_csr_pem,
    verify_signed_by,
};

/// 2049-12-31T23:59:59Z.
const AWS_NOT_AFTER: i64 = 2_524_607_999;

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

/// An issuer in `DIR/ca`, with its certificate also at `DIR/issuing-ca.pem`.
fn issuer(dir: &Dir) -> Issuer {
    let issuer = Issuer::load_or_create(&dir.path("ca")).expect("issuer");
    dir.write("issuing-ca.pem", issuer.ca_pem());
    issuer
}

#[track_caller]
fn assert_openssl_verifies(dir: &Dir, cert: &str) {
    let out = dir.openssl(&["verify", "-CAfile", "issuing-ca.pem", cert]);
    assert_eq!(out.trim(), format!("{cert}: OK"));
}

#[test]
fn creates_the_ca_once_then_loads_it() {
    let dir = Dir::new();
    let first = Issuer::load_or_create(&dir.path("ca")).expect("create");
    let second = Issuer::load_or_create(&dir.path("ca")).expect("load");
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.ca_certificate().id, second.ca_certificate().id);
    assert_eq!(
        std::fs::read_to_string(dir.path("ca/issuing-ca.pem")).expect("read"),
        first.ca_pem()
    );
    let ca = first.ca_certificate();
    assert!(ca.is_ca);
    assert_eq!(ca.subject, "CN=Ferrule issuing CA");
    assert_eq!(ca.key_type, KeyType::EcP256);
    assert_eq!(ca.not_after_unix, AWS_NOT_AFTER);
    assert!((ca.not_before_unix - (now() - 3600)).abs() < 300);
    assert!(!format!("{first:?}").contains("PRIVATE"));
    // The key file holds a key openssl accepts and that belongs to the certificate.
    let pubkey_of_key = dir.openssl(&["pkey", "-in", "ca/issuing-ca.key", "-pubout"]);
    let pubkey_of_cert = dir.openssl(&["x509", "-in", "ca/issuing-ca.pem", "-noout", "-pubkey"]);
    assert_eq!(pubkey_of_key, pubkey_of_cert);
    let mut names: Vec<String> = std::fs::read_dir(dir.path("ca"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["issuing-ca.key", "issuing-ca.pem"]);
}

#[cfg(unix)]
#[test]
fn the_ca_key_is_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    Issuer::load_or_create(&dir.path("ca")).expect("create");
    let mode = std::fs::metadata(dir.path("ca/issuing-ca.key"))
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn half_an_issuer_is_neither_loaded_nor_overwritten() {
    let dir = Dir::new();
    Issuer::load_or_create(&dir.path("ca")).expect("create");
    let cert = dir.read("ca/issuing-ca.pem");
    std::fs::remove_file(dir.path("ca/issuing-ca.key")).expect("remove");
    let err = Issuer::load_or_create(&dir.path("ca")).expect_err("incomplete");
    assert!(matches!(err, PkiError::IncompleteIssuer { .. }), "{err:?}");
    assert!(err.to_string().contains("issuing-ca.key"), "{err}");
    assert_eq!(dir.read("ca/issuing-ca.pem"), cert, "left alone");

    // A key that belongs to another certificate.
    dir.ec_key("ca/issuing-ca.key", "prime256v1");
    let err = Issuer::load_or_create(&dir.path("ca")).expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn openssl_csrs_get_certificates_openssl_verifies() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    let now = now();
    let cases = [
        ("rsa", KeyType::Rsa(2048)),
        ("p256", KeyType::EcP256),
        ("p384", KeyType::EcP384),
        ("p521", KeyType::EcP521),
    ];
    for (name, key_type) in cases {
        let key = format!("{name}.key");
        match name {
            "rsa" => dir.rsa_key(&key, 2048),
            "p256" => dir.ec_key(&key, "prime256v1"),
            "p384" => dir.ec_key(&key, "secp384r1"),
            _ => dir.ec_key(&key, "secp521r1"),
        }
        let csr_file = format!("{name}.csr");
        dir.csr(
            &key,
            &csr_file,
            &format!("/C=DE/ST=Berlin/O=Acme/OU=Devices/CN=device-{name}"),
        );
        let csr = parse_csr_pem(&dir.read(&csr_file)).expect(name);
        assert_eq!(csr.key_type, key_type);
        assert_eq!(
            csr.subject,
            format!("CN=device-{name},OU=Devices,O=Acme,ST=Berlin,C=DE")
        );
        assert_eq!(csr.common_name, Some(format!("device-{name}")));

        let pem = issuer.issue_from_csr(&csr, now).expect(name);
        let out = format!("{name}.pem");
        dir.write(&out, &pem);
        assert_openssl_verifies(&dir, &out);

        let cert = parse_certificate_pem(&pem).expect("issued");
        assert_eq!(cert.pem(), pem);
        assert_eq!(cert.subject, csr.subject);
        assert_eq!(cert.spki_der, csr.spki_der);
        assert_eq!(cert.key_type, key_type);
        assert_eq!(cert.issuer_der, issuer.ca_certificate().subject_der);
        assert_eq!((cert.version, cert.is_ca), (3, false));
        assert_eq!(cert.not_before_unix, now - 3600);
        assert_eq!(cert.not_after_unix, AWS_NOT_AFTER);
        assert_eq!(dir.x509_field(&out, "enddate"), "Dec 31 23:59:59 2049 GMT");
        assert_eq!(cert.serial_hex.len(), 32, "{}", cert.serial_hex);
        verify_signed_by(&cert, issuer.ca_certificate()).expect("signed by the CA");

        // The certificate's public key is the CSR's, as openssl sees both.
        let from_csr = dir.openssl(&["req", "-in", &csr_file, "-noout", "-pubkey"]);
        let from_cert = dir.openssl(&["x509", "-in", &out, "-noout", "-pubkey"]);
        assert_eq!(from_csr, from_cert);
        let text = dir.openssl(&["x509", "-in", &out, "-noout", "-text"]);
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
    }
}

#[test]
fn serials_are_random() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    dir.ec_key("k.key", "prime256v1");
    dir.csr("k.key", "k.csr", "/CN=same");
    let csr = parse_csr_pem(&dir.read("k.csr")).expect("csr");
    let a = parse_certificate_pem(&issuer.issue_from_csr(&csr, now()).expect("a")).expect("a");
    let b = parse_certificate_pem(&issuer.issue_from_csr(&csr, now()).expect("b")).expect("b");
    assert_ne!(a.serial_hex, b.serial_hex);
    assert_ne!(a.id, b.id);
}

#[test]
fn rcgen_csrs_work_too() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["ignored.example".to_owned()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rcgen-device");
    let csr = params.serialize_request(&key).expect("csr");
    let parsed = parse_csr_pem(&csr.pem().expect("pem")).expect("parse");
    assert_eq!(parsed.subject, "CN=rcgen-device,O=Acme");
    assert_eq!(parsed, parse_csr_der(csr.der()).expect("der"));
    let pem = issuer.issue_from_csr(&parsed, now()).expect("issue");
    dir.write("rcgen.pem", &pem);
    assert_openssl_verifies(&dir, "rcgen.pem");
    // Requested extensions (here a SAN) are not copied.
    let text = dir.openssl(&["x509", "-in", "rcgen.pem", "-noout", "-text"]);
    assert!(!text.contains("ignored.example"), "{text}");
}

#[test]
fn csrs_with_a_broken_signature_are_refused() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    dir.csr("k.key", "k.csr", "/CN=device");
    dir.openssl(&["req", "-in", "k.csr", "-outform", "DER", "-out", "k.der"]);
    let good = dir.read_bytes("k.der");
    parse_csr_der(&good).expect("genuine");

    // A flipped bit in the signature, then one in the subject.
    let mut bad_sig = good.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    let mut bad_subject = good.clone();
    let at = bad_subject
        .windows(6)
        .position(|w| w == b"device")
        .expect("CN");
    bad_subject[at] = b'D';
    for (name, der) in [("bad_sig", bad_sig), ("bad_subject", bad_subject)] {
        let err = parse_csr_der(&der).expect_err(name);
        assert!(
            matches!(err, PkiError::BadSignature { .. }),
            "{name}: {err:?}"
        );
        // The PEM path says the same.
        dir.write(&format!("{name}.der"), &der);
        dir.openssl(&[
            "req",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-outform",
            "PEM",
            "-out",
            &format!("{name}.csr"),
        ]);
        let err = parse_csr_pem(&dir.read(&format!("{name}.csr"))).expect_err(name);
        assert!(
            matches!(err, PkiError::BadSignature { .. }),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains("certificate signing request"),
            "{err}"
        );
    }
}

#[test]
fn weak_and_unusual_keys_are_refused() {
    let dir = Dir::new();
    dir.rsa_key("rsa1024.key", 1024);
    dir.csr("rsa1024.key", "rsa1024.csr", "/CN=weak");
    let err = parse_csr_pem(&dir.read("rsa1024.csr")).expect_err("RSA-1024");
    assert!(
        matches!(
            err,
            PkiError::UnsupportedKey {
                key: KeyType::Rsa(1024),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("RSA 1024-bit"), "{err}");

    dir.ec_key("k1.key", "secp256k1");
    dir.csr("k1.key", "k1.csr", "/CN=k1");
    let err = parse_csr_pem(&dir.read("k1.csr")).expect_err("secp256k1");
    assert!(matches!(err, PkiError::UnsupportedKey { .. }), "{err:?}");

    dir.openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    dir.csr("ed.key", "ed.csr", "/CN=ed");
    let err = parse_csr_pem(&dir.read("ed.csr")).expect_err("Ed25519");
    assert!(matches!(err, PkiError::UnsupportedKey { .. }), "{err:?}");

    // A SHA-1 self-signature on an acceptable key.
    dir.rsa_key("sha1.key", 2048);
    dir.openssl(&[
        "req", "-new", "-key", "sha1.key", "-sha1", "-out", "sha1.csr", "-subj", "/CN=sha1",
    ]);
    let err = parse_csr_pem(&dir.read("sha1.csr")).expect_err("SHA-1");
    assert!(
        matches!(err, PkiError::UnsupportedSignatureAlgorithm { .. }),
        "{err:?}"
    );
}

#[test]
fn subjects_rcgen_cannot_copy_exactly_are_refused() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    dir.ec_key("k.key", "prime256v1");
    dir.openssl(&[
        "req",
        "-new",
        "-key",
        "k.key",
        "-out",
        "multi.csr",
        "-subj",
        "/O=Acme/CN=a+UID=b",
        "-multivalue-rdn",
    ]);
    dir.csr("k.key", "twice.csr", "/OU=a/OU=b/CN=c");
    for name in ["multi.csr", "twice.csr"] {
        let csr = parse_csr_pem(&dir.read(name)).expect(name);
        let err = issuer.issue_from_csr(&csr, now()).expect_err(name);
        assert!(
            matches!(err, PkiError::UnsupportedSubject { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn the_legacy_new_certificate_request_label_is_accepted() {
    let dir = Dir::new();
    dir.ec_key("k.key", "prime256v1");
    dir.csr("k.key", "k.csr", "/CN=legacy");
    let pem = dir
        .read("k.csr")
        .replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    assert_eq!(
        parse_csr_pem(&pem).expect("legacy").common_name.as_deref(),
        Some("legacy")
    );
}

#[test]
fn create_keys_and_certificate_returns_a_matching_rsa_key() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    let now = now();
    let keys = issuer.create_keys_and_certificate(now).expect("keys");
    assert!(!format!("{keys:?}").contains("BEGIN RSA PRIVATE KEY"));
    assert!(
        keys.private_key_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    assert!(
        keys.public_key_pem
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    dir.write("cert.pem", &keys.certificate_pem);
    dir.write("key.pem", &keys.private_key_pem);
    dir.write("pub.pem", &keys.public_key_pem);

    let check = dir.openssl(&["rsa", "-in", "key.pem", "-check", "-noout"]);
    assert_eq!(check.trim(), "RSA key ok");
    let key_modulus = dir.openssl(&["rsa", "-in", "key.pem", "-noout", "-modulus"]);
    let cert_modulus = dir.openssl(&["x509", "-in", "cert.pem", "-noout", "-modulus"]);
    assert_eq!(key_modulus, cert_modulus);
    dir.openssl(&["rsa", "-in", "key.pem", "-pubout", "-out", "pub2.pem"]);
    assert_eq!(dir.read("pub2.pem"), keys.public_key_pem);
    assert_openssl_verifies(&dir, "cert.pem");

    let cert = parse_certificate_pem(&keys.certificate_pem).expect("cert");
    assert_eq!(cert.subject, "CN=AWS IoT Certificate");
    assert_eq!(cert.key_type, KeyType::Rsa(2048));
    assert_eq!(cert.not_after_unix, AWS_NOT_AFTER);
    assert_eq!(cert.not_before_unix, now - 3600);
    assert_eq!((cert.version, cert.is_ca), (3, false));

    // Two calls make two different keys.
    let again = issuer.create_keys_and_certificate(now).expect("again");
    assert_ne!(again.private_key_pem, keys.private_key_pem);
}

#[test]
fn issued_keys_authenticate_a_tls_client() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    let server_ca = ferrule_pki::TestCa::new("server CA").expect("server CA");
    let (server_cert, server_key) = server_ca.issue_server(&["localhost"]).expect("server");
    let server = common::server_config(
        common::certs(&server_cert),
        common::key(&server_key),
        Some(issuer.ca_pem()),
    );
    let IssuedKeys {
        certificate_pem,
        private_key_pem,
        ..
    } = issuer.create_keys_and_certificate(now()).expect("keys");
    let client = common::client_config(
        &server_ca.cert_pem(),
        Some((
            common::certs(&certificate_pem),
            common::key(&private_key_pem),
        )),
    );
    common::handshake(client, server.clone(), "localhost").expect("accepted");

    // And a certificate from a CSR, with the CSR's key.
    dir.ec_key("dev.key", "prime256v1");
    dir.csr("dev.key", "dev.csr", "/CN=dev");
    let csr = parse_csr_pem(&dir.read("dev.csr")).expect("csr");
    let pem = issuer.issue_from_csr(&csr, now()).expect("issue");
    let client = common::client_config(
        &server_ca.cert_pem(),
        Some((common::certs(&pem), common::key(&dir.read("dev.key")))),
    );
    common::handshake(client, server, "localhost").expect("accepted");
}

#[test]
fn issuers_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Issuer>();
}

#[test]
fn times_outside_the_certificate_range_are_errors() {
    let dir = Dir::new();
    let issuer = issuer(&dir);
    dir.ec_key("k.key", "prime256v1");
    dir.csr("k.key", "k.csr", "/CN=x");
    let csr = parse_csr_pem(&dir.read("k.csr")).expect("csr");
    let err = issuer
        .issue_from_csr(&csr, i64::MAX)
        .expect_err("far future");
    assert!(matches!(err, PkiError::InvalidTime { .. }), "{err:?}");
}
