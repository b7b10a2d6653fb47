//! `verify_signed_by` on openssl-made certificates: RSA and ECDSA, v1 and v3, PSS, and the
//! ways a signature check must fail.

mod common;

use common::openssl::Dir;
use ferrule_pki::{
    KeyType, ParsedCertificate, PkiError, TestCa, parse_certificate_der, parse_certificate_pem,
    verify_signed_by,
};

fn parse(dir: &Dir, name: &str) -> ParsedCertificate {
    parse_certificate_pem(&dir.read(name)).expect(name)
}

/// A CA NAME.pem/NAME.key of the given key kind, self-signed with DIGEST.
fn ca(dir: &Dir, name: &str, key: &str, digest: &str) {
    let key_file = format!("{name}.key");
    match key {
        "rsa" => dir.rsa_key(&key_file, 2048),
        "rsa1024" => dir.rsa_key(&key_file, 1024),
        curve => dir.ec_key(&key_file, curve),
    }
    dir.self_signed(
        &key_file,
        &format!("{name}.pem"),
        &format!("/CN={name}"),
        digest,
    );
}

#[track_caller]
fn assert_bad_signature(result: Result<(), PkiError>) {
    match result {
        Err(PkiError::BadSignature { .. }) => {}
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn rsa_and_ecdsa_cas_sign_v1_and_v3_certificates() {
    let dir = Dir::new();
    for (ca_name, key, digest) in [
        ("rsa_ca", "rsa", "sha256"),
        ("p256_ca", "prime256v1", "sha256"),
        ("p384_ca", "secp384r1", "sha384"),
        ("p521_ca", "secp521r1", "sha512"),
    ] {
        ca(&dir, ca_name, key, digest);
        let issuer = parse(&dir, &format!("{ca_name}.pem"));
        assert_eq!(issuer.version, 3);
        // Self-signed: the CA verifies with its own key.
        verify_signed_by(&issuer, &issuer).expect(ca_name);

        // v1 devices with an RSA and an EC key.
        let rsa_dev = format!("{ca_name}_rsa_dev");
        dir.device_rsa(&rsa_dev, "/CN=rsa-dev", ca_name);
        let ec_dev = format!("{ca_name}_ec_dev");
        dir.ec_key(&format!("{ec_dev}.key"), "prime256v1");
        dir.csr(
            &format!("{ec_dev}.key"),
            &format!("{ec_dev}.csr"),
            "/CN=ec-dev",
        );
        dir.sign(
            &format!("{ec_dev}.csr"),
            &format!("{ca_name}.pem"),
            &format!("{ca_name}.key"),
            &format!("{ec_dev}.pem"),
            digest,
            &[],
        );
        for dev in [rsa_dev, ec_dev] {
            let cert = parse(&dir, &format!("{dev}.pem"));
            assert_eq!(cert.version, 1, "{dev}");
            verify_signed_by(&cert, &issuer).expect(&dev);
            // The device's own key did not sign it.
            assert_bad_signature(verify_signed_by(&cert, &cert));
            // Nor did it sign the CA.
            assert_bad_signature(verify_signed_by(&issuer, &cert));
        }

        // A v3 device (with an extension file).
        dir.write(
            "ext.cnf",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        let v3 = format!("{ca_name}_v3");
        dir.rsa_key(&format!("{v3}.key"), 2048);
        dir.csr(&format!("{v3}.key"), &format!("{v3}.csr"), "/CN=v3");
        dir.sign(
            &format!("{v3}.csr"),
            &format!("{ca_name}.pem"),
            &format!("{ca_name}.key"),
            &format!("{v3}.pem"),
            digest,
            &["-extfile", "ext.cnf"],
        );
        let cert = parse(&dir, &format!("{v3}.pem"));
        assert_eq!(cert.version, 3);
        verify_signed_by(&cert, &issuer).expect(&v3);
    }
}

#[test]
fn rsa_with_every_supported_digest_and_pss() {
    let dir = Dir::new();
    ca(&dir, "ca", "rsa", "sha256");
    let issuer = parse(&dir, "ca.pem");
    dir.rsa_key("dev.key", 2048);
    dir.csr("dev.key", "dev.csr", "/CN=dev");
    let cases: [(&str, &str, &[&str]); 6] = [
        ("sha384", "sha384", &[]),
        ("sha512", "sha512", &[]),
        // OpenSSL 3 signs PSS with the longest salt unless told otherwise.
        (
            "pss_default",
            "sha256",
            &["-sigopt", "rsa_padding_mode:pss"],
        ),
        (
            "pss_digest",
            "sha256",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ],
        ),
        (
            "pss_sha384_salt_20",
            "sha384",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:20",
            ],
        ),
        ("pss_sha512", "sha512", &["-sigopt", "rsa_padding_mode:pss"]),
    ];
    for (name, digest, extra) in cases {
        let out = format!("{name}.pem");
        dir.sign("dev.csr", "ca.pem", "ca.key", &out, digest, extra);
        let cert = parse(&dir, &out);
        verify_signed_by(&cert, &issuer).expect(name);
        // Tampering with the signature is noticed whatever the padding.
        let mut der = cert.der.clone();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = parse_certificate_der(&der).expect("still parses");
        assert_bad_signature(verify_signed_by(&tampered, &issuer));
    }
}

#[test]
fn tampering_and_wrong_issuers_are_bad_signatures() {
    let dir = Dir::new();
    ca(&dir, "ca", "prime256v1", "sha256");
    ca(&dir, "other", "prime256v1", "sha256");
    ca(&dir, "rsa", "rsa", "sha256");
    dir.device_rsa("dev", "/CN=device-1", "ca");
    let issuer = parse(&dir, "ca.pem");
    let dev = parse(&dir, "dev.pem");
    verify_signed_by(&dev, &issuer).expect("genuine");

    // Another CA with the same kind of key, and one with another kind of key.
    let err = verify_signed_by(&dev, &parse(&dir, "other.pem")).expect_err("wrong CA");
    assert!(matches!(err, PkiError::BadSignature { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the signature of the certificate \"CN=device-1\" does not verify with the public key \
         of the issuer certificate \"CN=other\""
    );
    assert_bad_signature(verify_signed_by(&dev, &parse(&dir, "rsa.pem")));

    // A flipped bit in the signature, and one in the signed part (inside the CN).
    let mut der = dev.der.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert_bad_signature(verify_signed_by(
        &parse_certificate_der(&der).expect("parses"),
        &issuer,
    ));
    let mut der = dev.der.clone();
    let at = der
        .windows(8)
        .position(|w| w == b"device-1")
        .expect("CN in DER");
    der[at] = b'D';
    let tampered = parse_certificate_der(&der).expect("parses");
    assert_eq!(tampered.common_name.as_deref(), Some("Device-1"));
    assert_bad_signature(verify_signed_by(&tampered, &issuer));
}

#[test]
fn sha1_and_small_rsa_keys_are_unsupported() {
    let dir = Dir::new();
    ca(&dir, "ca", "rsa", "sha256");
    dir.rsa_key("dev.key", 2048);
    dir.csr("dev.key", "dev.csr", "/CN=dev");
    dir.sign("dev.csr", "ca.pem", "ca.key", "sha1.pem", "sha1", &[]);
    let err =
        verify_signed_by(&parse(&dir, "sha1.pem"), &parse(&dir, "ca.pem")).expect_err("SHA-1");
    assert!(
        matches!(err, PkiError::UnsupportedSignatureAlgorithm { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("SHA-1"), "{err}");

    ca(&dir, "small", "rsa1024", "sha256");
    dir.sign(
        "dev.csr",
        "small.pem",
        "small.key",
        "small_dev.pem",
        "sha256",
        &[],
    );
    let small = parse(&dir, "small.pem");
    assert_eq!(small.key_type, KeyType::Rsa(1024));
    let err = verify_signed_by(&parse(&dir, "small_dev.pem"), &small).expect_err("1024");
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
}

#[test]
fn rcgen_chains_verify() {
    let ca = TestCa::new("rcgen CA").expect("ca");
    let other = TestCa::new("rcgen CA").expect("other");
    let issuer = parse_certificate_pem(&ca.cert_pem()).expect("ca");
    let (leaf, _) = ca.issue_client("leaf").expect("leaf");
    let leaf = parse_certificate_pem(&leaf).expect("leaf");
    verify_signed_by(&leaf, &issuer).expect("signed by its CA");
    // Same subject, different key.
    let impostor = parse_certificate_pem(&other.cert_pem()).expect("other");
    assert_eq!(impostor.subject_der, issuer.subject_der);
    assert_bad_signature(verify_signed_by(&leaf, &impostor));
}
