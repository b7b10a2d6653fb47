//! CA proof of possession, with AWS's own openssl recipe and variants.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::openssl::Dir;
use ferrule_pki::{
    ParsedCertificate, PossessionError, TestCa, check_proof_of_possession, parse_certificate_pem,
    random_hex,
};

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

fn parse(dir: &Dir, name: &str) -> ParsedCertificate {
    parse_certificate_pem(&dir.read(name)).expect(name)
}

/// AWS's recipe, verbatim, with the CA key made by KEYGEN (its arguments) and signed with
/// DIGEST. Returns the CA and the verification certificate.
fn aws_recipe(dir: &Dir, keygen: &[&str], digest: &str, code: &str) {
    dir.openssl(keygen);
    dir.openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        "rootCA.key",
        &format!("-{digest}"),
        "-days",
        "1024",
        "-out",
        "rootCA.pem",
        "-subj",
        "/CN=root",
    ]);
    dir.openssl(&["genrsa", "-out", "verificationCert.key", "2048"]);
    dir.openssl(&[
        "req",
        "-new",
        "-key",
        "verificationCert.key",
        "-out",
        "verificationCert.csr",
        "-subj",
        &format!("/CN={code}"),
    ]);
    dir.openssl(&[
        "x509",
        "-req",
        "-in",
        "verificationCert.csr",
        "-CA",
        "rootCA.pem",
        "-CAkey",
        "rootCA.key",
        "-CAcreateserial",
        "-out",
        "verificationCert.pem",
        "-days",
        "500",
        &format!("-{digest}"),
    ]);
}

#[test]
fn the_aws_recipe_proves_possession() {
    let dir = Dir::new();
    let code = random_hex(32);
    aws_recipe(
        &dir,
        &["genrsa", "-out", "rootCA.key", "2048"],
        "sha256",
        &code,
    );
    let ca = parse(&dir, "rootCA.pem");
    let verification = parse(&dir, "verificationCert.pem");
    assert_eq!((ca.version, ca.is_ca), (3, true));
    assert_eq!((verification.version, verification.is_ca), (1, false));
    check_proof_of_possession(&ca, &verification, &code, now()).expect("possession");

    // A code that differs.
    let err = check_proof_of_possession(&ca, &verification, &random_hex(32), now())
        .expect_err("another code");
    assert_eq!(
        err,
        PossessionError::CodeMismatch {
            found: Some(code.clone())
        }
    );
    // Codes are compared exactly.
    let err = check_proof_of_possession(&ca, &verification, &code.to_uppercase(), now())
        .expect_err("case differs");
    assert!(matches!(err, PossessionError::CodeMismatch { .. }));

    // Outside either certificate's validity.
    for at in [
        ca.not_before_unix - 1,
        verification.not_after_unix + 1,
        ca.not_after_unix + 1,
    ] {
        assert_eq!(
            check_proof_of_possession(&ca, &verification, &code, at),
            Err(PossessionError::Expired),
            "at {at}"
        );
    }
}

#[test]
fn ecdsa_cas_prove_possession_too() {
    for (curve, digest) in [("prime256v1", "sha256"), ("secp384r1", "sha384")] {
        let dir = Dir::new();
        let code = random_hex(32);
        aws_recipe(
            &dir,
            &[
                "ecparam",
                "-genkey",
                "-name",
                curve,
                "-noout",
                "-out",
                "rootCA.key",
            ],
            digest,
            &code,
        );
        let ca = parse(&dir, "rootCA.pem");
        let verification = parse(&dir, "verificationCert.pem");
        check_proof_of_possession(&ca, &verification, &code, now()).expect(curve);
    }
}

#[test]
fn a_verification_certificate_signed_by_another_key_is_refused() {
    let dir = Dir::new();
    let code = random_hex(32);
    aws_recipe(
        &dir,
        &["genrsa", "-out", "rootCA.key", "2048"],
        "sha256",
        &code,
    );
    // Another CA with the same subject signs a verification certificate with the right CN.
    dir.rsa_key("other.key", 2048);
    dir.self_signed("other.key", "other.pem", "/CN=root", "sha256");
    dir.sign(
        "verificationCert.csr",
        "other.pem",
        "other.key",
        "forged.pem",
        "sha256",
        &[],
    );
    let ca = parse(&dir, "rootCA.pem");
    let forged = parse(&dir, "forged.pem");
    assert_eq!(forged.issuer_der, ca.subject_der);
    let err = check_proof_of_possession(&ca, &forged, &code, now()).expect_err("forged");
    assert_eq!(err, PossessionError::NotSignedByCa);
    assert_eq!(
        err.to_string(),
        "The verification certificate is not signed by the private key of the CA certificate"
    );
}

#[test]
fn leaf_and_v1_certificates_are_not_cas() {
    let dir = Dir::new();
    let code = random_hex(32);
    aws_recipe(
        &dir,
        &["genrsa", "-out", "rootCA.key", "2048"],
        "sha256",
        &code,
    );
    let verification = parse(&dir, "verificationCert.pem");

    // The v1 verification certificate itself used as the CA.
    let err = check_proof_of_possession(&verification, &verification, &code, now())
        .expect_err("leaf as CA");
    assert_eq!(err, PossessionError::NotACa);
    assert_eq!(
        err.to_string(),
        "The CA certificate does not have the basicConstraints extension as true"
    );

    // A self-signed v1 "CA" (x509 -req -signkey, no extensions), which really did sign the
    // verification certificate.
    dir.rsa_key("v1ca.key", 2048);
    dir.csr("v1ca.key", "v1ca.csr", "/CN=v1 root");
    dir.openssl(&[
        "x509", "-req", "-in", "v1ca.csr", "-signkey", "v1ca.key", "-days", "30", "-out",
        "v1ca.pem",
    ]);
    dir.sign(
        "verificationCert.csr",
        "v1ca.pem",
        "v1ca.key",
        "v1verification.pem",
        "sha256",
        &[],
    );
    let v1ca = parse(&dir, "v1ca.pem");
    assert_eq!((v1ca.version, v1ca.is_ca), (1, false));
    let err = check_proof_of_possession(&v1ca, &parse(&dir, "v1verification.pem"), &code, now())
        .expect_err("v1 CA");
    assert_eq!(err, PossessionError::NotACa);

    // A v3 leaf with basicConstraints CA:FALSE.
    let test_ca = TestCa::new("ca").expect("ca");
    let (leaf, _) = test_ca.issue_client("leaf").expect("leaf");
    let leaf = parse_certificate_pem(&leaf).expect("leaf");
    assert_eq!((leaf.version, leaf.is_ca), (3, false));
    assert_eq!(
        check_proof_of_possession(&leaf, &verification, &code, now()),
        Err(PossessionError::NotACa)
    );
}

#[test]
fn rcgen_made_verification_certificates_work() {
    let code = random_hex(32);
    let ca = TestCa::new("rcgen root").expect("ca");
    let (verification, _) = ca.issue_client(&code).expect("verification");
    let ca = parse_certificate_pem(&ca.cert_pem()).expect("ca");
    let verification = parse_certificate_pem(&verification).expect("verification");
    check_proof_of_possession(&ca, &verification, &code, now()).expect("possession");
    let err = check_proof_of_possession(&ca, &verification, "nope", now()).expect_err("code");
    assert!(
        err.to_string().contains(&code),
        "the message shows the CN found: {err}"
    );
}

#[test]
fn a_verification_certificate_without_a_cn_says_so() {
    let dir = Dir::new();
    let code = random_hex(32);
    aws_recipe(
        &dir,
        &["genrsa", "-out", "rootCA.key", "2048"],
        "sha256",
        &code,
    );
    dir.csr("verificationCert.key", "nocn.csr", "/O=Acme");
    dir.sign(
        "nocn.csr",
        "rootCA.pem",
        "rootCA.key",
        "nocn.pem",
        "sha256",
        &[],
    );
    let err = check_proof_of_possession(
        &parse(&dir, "rootCA.pem"),
        &parse(&dir, "nocn.pem"),
        &code,
        now(),
    )
    .expect_err("no CN");
    assert_eq!(err, PossessionError::CodeMismatch { found: None });
    assert!(err.to_string().contains("(none)"), "{err}");
}
