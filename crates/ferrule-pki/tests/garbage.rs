//! Inputs that are not certificates or CSRs give errors that say what is wrong, never
//! panics.

mod common;

use common::openssl::Dir;
use ferrule_pki::{
    PkiError, TestCa, parse_certificate_chain_pem, parse_certificate_der, parse_certificate_pem,
    parse_csr_der, parse_csr_pem, verify_signed_by,
};
use proptest::prelude::*;

const BAD_BASE64: &str = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";

fn cert_der() -> Vec<u8> {
    TestCa::new("garbage")
        .expect("ca")
        .cert_der()
        .as_ref()
        .to_vec()
}

#[test]
fn empty_and_non_pem_text_have_no_certificate() {
    for input in [
        "",
        "hello world\n",
        "MIIB",
        "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n",
    ] {
        let err = parse_certificate_pem(input).expect_err(input);
        assert!(
            matches!(err, PkiError::NoCertificate { .. }),
            "{input:?}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the certificate PEM contains no certificate (expected one or more \"-----BEGIN \
             CERTIFICATE-----\" sections)"
        );
        let err = parse_csr_pem(input).expect_err(input);
        assert!(matches!(err, PkiError::NoCsr { .. }), "{input:?}: {err:?}");
    }
}

#[test]
fn malformed_pem_is_a_pem_error() {
    let missing_end = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    let bad_start = "-----BEGIN CERTIFICATE----\nMIIB\n-----END CERTIFICATE-----\n";
    for input in [BAD_BASE64, missing_end, bad_start] {
        let err = parse_certificate_pem(input).expect_err(input);
        assert!(matches!(err, PkiError::Pem { .. }), "{input:?}: {err:?}");
        assert!(
            err.to_string()
                .starts_with("the certificate PEM is not valid PEM"),
            "{err}"
        );
        assert!(parse_certificate_chain_pem(input).is_err());
    }
    let csr = BAD_BASE64.replace("CERTIFICATE", "CERTIFICATE REQUEST");
    let err = parse_csr_pem(&csr).expect_err("bad base64");
    assert!(matches!(err, PkiError::Pem { .. }), "{err:?}");
}

#[test]
fn the_wrong_kind_of_pem_says_what_it_is() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    dir.csr("k.key", "k.csr", "/CN=x");
    dir.self_signed("k.key", "c.pem", "/CN=x", "sha256");

    let err = parse_certificate_pem(&dir.read("k.csr")).expect_err("CSR as certificate");
    assert_eq!(
        err.to_string(),
        "the certificate PEM holds a \"CERTIFICATE REQUEST\" PEM section where a \
         \"CERTIFICATE\" was expected"
    );
    let err = parse_certificate_pem(&dir.read("k.key")).expect_err("key as certificate");
    assert!(
        matches!(&err, PkiError::WrongPemSection { found, .. } if found == "PRIVATE KEY"),
        "{err:?}"
    );
    let err = parse_csr_pem(&dir.read("c.pem")).expect_err("certificate as CSR");
    assert!(
        matches!(&err, PkiError::WrongPemSection { found, .. } if found == "CERTIFICATE"),
        "{err:?}"
    );

    // DER of the wrong kind.
    dir.openssl(&["req", "-in", "k.csr", "-outform", "DER", "-out", "k.der"]);
    let err = parse_certificate_der(&dir.read_bytes("k.der")).expect_err("CSR DER");
    assert!(
        matches!(err, PkiError::MalformedCertificate { .. }),
        "{err:?}"
    );
    dir.openssl(&["x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"]);
    let err = parse_csr_der(&dir.read_bytes("c.der")).expect_err("certificate DER");
    assert!(
        matches!(
            err,
            PkiError::MalformedCertificate { .. } | PkiError::MalformedCsr { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn pem_around_bytes_that_are_not_a_certificate() {
    // Valid base64 of text.
    let pem = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = parse_certificate_pem(pem).expect_err("not DER");
    assert!(
        matches!(err, PkiError::MalformedCertificate { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the input is not a valid X.509 certificate: "),
        "{err}"
    );
    // An empty section.
    let pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
    let err = parse_certificate_pem(pem).expect_err("empty");
    assert_eq!(
        err.to_string(),
        "the input is not a valid X.509 certificate: it is empty"
    );
}

#[test]
fn every_truncation_of_a_certificate_is_an_error() {
    let der = cert_der();
    for len in 0..der.len() {
        let err = parse_certificate_der(&der[..len]).expect_err("truncated");
        assert!(
            matches!(err, PkiError::MalformedCertificate { .. }),
            "{len}: {err:?}"
        );
    }
    let err = parse_certificate_der(&der[..der.len() / 2]).expect_err("half");
    assert!(err.to_string().contains("truncated"), "{err}");
    // And a truncated PEM body.
    let pem = ferrule_pki::parse_certificate_der(&der)
        .expect("whole")
        .pem();
    let lines: Vec<&str> = pem.lines().collect();
    let cut = format!(
        "{}\n{}\n",
        lines[..lines.len() / 2].join("\n"),
        lines[lines.len() - 1]
    );
    assert!(parse_certificate_pem(&cut).is_err());
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut der = cert_der();
    der.push(0);
    let err = parse_certificate_der(&der).expect_err("trailing");
    assert!(err.to_string().contains("1 bytes follow"), "{err}");
}

#[test]
fn every_truncation_of_a_csr_is_an_error() {
    let dir = Dir::new();
    dir.ec_key("k.key", "prime256v1");
    dir.csr("k.key", "k.csr", "/CN=x");
    dir.openssl(&["req", "-in", "k.csr", "-outform", "DER", "-out", "k.der"]);
    let der = dir.read_bytes("k.der");
    parse_csr_der(&der).expect("whole");
    for len in 0..der.len() {
        assert!(parse_csr_der(&der[..len]).is_err(), "{len}");
    }
}

#[test]
fn flipping_any_byte_never_panics() {
    let der = cert_der();
    let issuer = parse_certificate_der(&der).expect("ca");
    for i in 0..der.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = der.clone();
            bad[i] ^= mask;
            if let Ok(cert) = parse_certificate_der(&bad) {
                // Any change the parser lets through must break the signature.
                assert!(
                    verify_signed_by(&cert, &issuer).is_err(),
                    "byte {i} ^ {mask:#x}"
                );
            }
        }
    }
}

proptest! {
    // Integration tests have no lib.rs next to them for proptest to store regressions in.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_der_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_certificate_der(&bytes);
        let _ = parse_csr_der(&bytes);
    }

    #[test]
    fn der_like_prefixes_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        cut in 0usize..600,
    ) {
        // Starts like a certificate so the parser gets past the first bytes.
        let der = cert_der();
        let mut bytes = der[..cut.min(der.len())].to_vec();
        bytes.extend(tail);
        let _ = parse_certificate_der(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        let _ = parse_certificate_pem(&text);
        let _ = parse_certificate_chain_pem(&text);
        let _ = parse_csr_pem(&text);
        let wrapped = format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n");
        let _ = parse_certificate_pem(&wrapped);
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    dir.csr("k.key", "k.csr", "/CN=x");
    dir.openssl(&["req", "-in", "k.csr", "-outform", "DER", "-out", "k.der"]);
    let csr_der = dir.read_bytes("k.der");
    let cert = cert_der();
    let cases: Vec<(PkiError, &str)> = vec![
        (
            parse_certificate_der(&csr_der).expect_err("CSR"),
            "the input is not a valid X.509 certificate: it does not decode as an X.509 \
             certificate (invalid algorithm identifier)",
        ),
        (
            parse_csr_der(&cert).expect_err("certificate"),
            "the input is not a valid certificate signing request: it does not decode as a \
             PKCS#10 certificate signing request (invalid version)",
        ),
        (
            parse_certificate_der(&cert[..cert.len() / 2]).expect_err("half"),
            "the input is not a valid X.509 certificate: the data ends early (an element \
             says it has",
        ),
        (
            parse_certificate_pem(BAD_BASE64).expect_err("base64"),
            "the certificate PEM is not valid PEM: base64 decode error",
        ),
    ];
    for (err, start) in cases {
        assert!(err.to_string().starts_with(start), "{err}");
    }
}
