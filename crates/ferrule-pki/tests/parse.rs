//! Parsing certificates made by the openssl CLI and by rcgen, checked against openssl's own
//! view of them.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::openssl::Dir;
use ferrule_pki::{
    CertificateId, KeyType, ParsedCertificate, PkiError, TestCa, parse_certificate_chain_pem,
    parse_certificate_der, parse_certificate_pem,
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

/// Everything openssl can tell us about CERT agrees with the parse.
fn assert_matches_openssl(dir: &Dir, name: &str, cert: &ParsedCertificate) {
    assert_eq!(cert.id.as_str(), dir.fingerprint(name), "{name}: id");
    assert_eq!(
        cert.subject,
        dir.x509_field(name, "subject"),
        "{name}: subject"
    );
    assert_eq!(
        cert.issuer,
        dir.x509_field(name, "issuer"),
        "{name}: issuer"
    );
    assert_eq!(
        cert.serial_hex,
        dir.x509_field(name, "serial").to_lowercase(),
        "{name}: serial"
    );
    assert_eq!(cert.not_before_unix, dir.date(name, "startdate"), "{name}");
    assert_eq!(cert.not_after_unix, dir.date(name, "enddate"), "{name}");
    // The canonical PEM is what openssl writes when it re-encodes the certificate.
    assert_eq!(
        cert.pem(),
        dir.openssl(&["x509", "-in", name]),
        "{name}: pem"
    );
    let der = dir.openssl(&["x509", "-in", name, "-outform", "DER", "-out", "der.tmp"]);
    assert!(der.is_empty());
    assert_eq!(cert.der, dir.read_bytes("der.tmp"), "{name}: der");
    // Parsing the DER gives the same result as parsing the PEM.
    assert_eq!(&parse_certificate_der(&cert.der).expect("der"), cert);
}

#[test]
fn aws_recipe_root_ca_is_a_v3_ca() {
    let dir = Dir::new();
    dir.openssl(&["genrsa", "-out", "rootCA.key", "2048"]);
    dir.openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        "rootCA.key",
        "-sha256",
        "-days",
        "1024",
        "-out",
        "rootCA.pem",
        "-subj",
        "/CN=root",
    ]);
    let ca = parse(&dir, "rootCA.pem");
    assert_matches_openssl(&dir, "rootCA.pem", &ca);
    assert_eq!(ca.version, 3);
    assert!(ca.is_ca);
    assert_eq!(ca.key_type, KeyType::Rsa(2048));
    assert_eq!(ca.subject, "CN=root");
    assert_eq!(ca.issuer, "CN=root");
    assert_eq!(ca.subject_der, ca.issuer_der);
    assert_eq!(ca.common_name.as_deref(), Some("root"));
    assert_eq!(ca.not_after_unix - ca.not_before_unix, 1024 * 86_400);
    assert!((ca.not_before_unix - now()).abs() < 300);
    assert!(ca.is_valid_at(now()));
    assert!(!ca.is_valid_at(ca.not_after_unix + 1));
    assert!(!ca.is_valid_at(ca.not_before_unix - 1));
    assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(ca.pem().ends_with("-----END CERTIFICATE-----\n"));
}

#[test]
fn device_certificates_from_x509_req_are_v1_and_not_cas() {
    let dir = Dir::new();
    dir.rsa_key("ca.key", 2048);
    dir.self_signed("ca.key", "ca.pem", "/C=DE/O=Acme/CN=Acme Root", "sha256");
    dir.device_rsa(
        "dev",
        "/C=DE/ST=Berlin/O=Acme GmbH/OU=Sensors/CN=device-1",
        "ca",
    );
    let ca = parse(&dir, "ca.pem");
    let dev = parse(&dir, "dev.pem");
    assert_matches_openssl(&dir, "dev.pem", &dev);
    assert_eq!(dev.version, 1);
    assert!(!dev.is_ca);
    assert_eq!(
        dev.subject,
        "CN=device-1,OU=Sensors,O=Acme GmbH,ST=Berlin,C=DE"
    );
    assert_eq!(dev.issuer, "CN=Acme Root,O=Acme,C=DE");
    assert_eq!(dev.issuer_der, ca.subject_der);
    assert_eq!(dev.common_name.as_deref(), Some("device-1"));
    assert_eq!(dev.not_after_unix - dev.not_before_unix, 500 * 86_400);
    // The SPKI is the key's public half.
    dir.openssl(&[
        "rsa", "-in", "dev.key", "-pubout", "-outform", "DER", "-out", "pub.der",
    ]);
    assert_eq!(dev.spki_der, dir.read_bytes("pub.der"));
}

#[test]
fn key_types_and_sizes() {
    let dir = Dir::new();
    dir.rsa_key("ca.key", 2048);
    dir.self_signed("ca.key", "ca.pem", "/CN=ca", "sha256");
    let cases = [
        ("rsa2048", "rsa:2048", KeyType::Rsa(2048)),
        ("rsa3072", "rsa:3072", KeyType::Rsa(3072)),
        ("rsa4096", "rsa:4096", KeyType::Rsa(4096)),
        ("p256", "prime256v1", KeyType::EcP256),
        ("p384", "secp384r1", KeyType::EcP384),
        ("p521", "secp521r1", KeyType::EcP521),
    ];
    for (name, key, key_type) in cases {
        let key_file = format!("{name}.key");
        match key.strip_prefix("rsa:") {
            Some(bits) => dir.rsa_key(&key_file, bits.parse().expect("bits")),
            None => dir.ec_key(&key_file, key),
        }
        dir.device_from_key(name, &format!("/CN={name}"), "ca");
        let cert = parse(&dir, &format!("{name}.pem"));
        assert_eq!(cert.key_type, key_type, "{name}");
        assert_eq!(cert.id.as_str(), dir.fingerprint(&format!("{name}.pem")));
        assert_eq!(cert.version, 1);
    }
    // And as self-signed v3 certificates, which carry the key in the CA role.
    dir.ec_key("ec.key", "secp384r1");
    dir.self_signed("ec.key", "ec.pem", "/CN=ec", "sha384");
    let ec = parse(&dir, "ec.pem");
    assert_eq!(
        (ec.key_type, ec.version, ec.is_ca),
        (KeyType::EcP384, 3, true)
    );
    assert_eq!(KeyType::Rsa(2048).to_string(), "RSA 2048-bit");
    assert_eq!(KeyType::EcP256.to_string(), "EC P-256");
}

#[test]
fn other_keys_are_named() {
    let dir = Dir::new();
    dir.openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.key"]);
    dir.openssl(&[
        "req", "-x509", "-new", "-key", "ed.key", "-days", "1", "-out", "ed.pem", "-subj", "/CN=ed",
    ]);
    assert_eq!(
        parse(&dir, "ed.pem").key_type,
        KeyType::Other("Ed25519".into())
    );
    dir.ec_key("k1.key", "secp256k1");
    dir.self_signed("k1.key", "k1.pem", "/CN=k1", "sha256");
    assert_eq!(
        parse(&dir, "k1.pem").key_type,
        KeyType::Other("EC curve 1.3.132.0.10".into())
    );
}

#[test]
fn names_are_formatted_as_openssl_rfc2253_does() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    let subjects = [
        "/CN=plain",
        "/O=Acme\\, Inc./CN=a\\+b",
        "/C=US/ST=Washington/L=Seattle/O=R&D; \"Labs\"/OU=<x>/CN=#hash",
        "/DC=com/DC=example/UID=jdoe/CN=John Doe/emailAddress=jdoe@example.com",
        "/serialNumber=1234/title=Dr/GN=Ann/SN=Smith/CN=x",
        "/O=Acme/CN=dev-1+serialNumber=42",
    ];
    for (i, subj) in subjects.iter().enumerate() {
        let name = format!("c{i}.pem");
        dir.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "k.key",
            "-days",
            "1",
            "-out",
            &name,
            "-subj",
            subj,
            "-multivalue-rdn",
        ]);
        let cert = parse(&dir, &name);
        assert_eq!(cert.subject, dir.x509_field(&name, "subject"), "{subj}");
        assert_eq!(cert.issuer, cert.subject);
    }
    // Spot checks of the escaping.
    let cert = parse(&dir, "c1.pem");
    assert_eq!(cert.subject, "CN=a\\+b,O=Acme\\, Inc.");
    assert_eq!(cert.common_name.as_deref(), Some("a+b"));
    let cert = parse(&dir, "c5.pem");
    assert_eq!(cert.subject, "CN=dev-1+serialNumber=42,O=Acme");
    assert_eq!(cert.common_name.as_deref(), Some("dev-1"));
}

#[test]
fn utf8_subjects_keep_their_text() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    dir.openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "k.key",
        "-days",
        "1",
        "-out",
        "u.pem",
        "-utf8",
        "-subj",
        "/O=Müller & Söhne/CN=Gerät-1",
    ]);
    let cert = parse(&dir, "u.pem");
    assert_eq!(cert.subject, "CN=Gerät-1,O=Müller & Söhne");
    assert_eq!(cert.common_name.as_deref(), Some("Gerät-1"));
}

#[test]
fn serials_with_the_top_bit_set_lose_the_sign_byte() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    for serial in ["0x01", "0x80", "0xFF00", "0x00ABCDEF"] {
        dir.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "k.key",
            "-days",
            "1",
            "-out",
            "s.pem",
            "-subj",
            "/CN=s",
            "-set_serial",
            serial,
        ]);
        let cert = parse(&dir, "s.pem");
        assert_eq!(
            cert.serial_hex,
            dir.x509_field("s.pem", "serial").to_lowercase()
        );
    }
    assert_eq!(parse(&dir, "s.pem").serial_hex, "abcdef");
}

#[test]
fn the_first_certificate_of_a_pem_is_parsed_and_chains_keep_their_order() {
    let dir = Dir::new();
    dir.rsa_key("ca.key", 2048);
    dir.self_signed("ca.key", "ca.pem", "/CN=root", "sha256");
    dir.device_rsa("dev", "/CN=dev", "ca");
    let bundle = format!(
        "leading text\n{}{}{}",
        dir.read("dev.key"),
        dir.read("dev.pem"),
        dir.read("ca.pem")
    );
    let first = parse_certificate_pem(&bundle).expect("first certificate");
    assert_eq!(first.subject, "CN=dev");
    let chain = parse_certificate_chain_pem(&bundle).expect("chain");
    let subjects: Vec<&str> = chain.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["CN=dev", "CN=root"]);

    let err = parse_certificate_chain_pem(&dir.read("dev.csr")).expect_err("a CSR");
    assert!(matches!(err, PkiError::WrongPemSection { .. }), "{err:?}");
    let err = parse_certificate_chain_pem("").expect_err("nothing");
    assert!(matches!(err, PkiError::NoCertificate { .. }), "{err:?}");
}

#[test]
fn rcgen_certificates_parse_too() {
    let ca = TestCa::new("Ferrule test CA").expect("ca");
    let parsed_ca = parse_certificate_pem(&ca.cert_pem()).expect("ca");
    assert!(parsed_ca.is_ca);
    assert_eq!(parsed_ca.version, 3);
    assert_eq!(parsed_ca.key_type, KeyType::EcP256);
    assert_eq!(parsed_ca.der, ca.cert_der().as_ref());
    assert_eq!(parsed_ca.id, CertificateId::of_der(ca.cert_der().as_ref()));

    let (client, _key) = ca.issue_client("thing-7").expect("client");
    let client = parse_certificate_pem(&client).expect("client");
    assert!(!client.is_ca);
    assert_eq!(client.subject, "CN=thing-7");
    assert_eq!(client.issuer, "CN=Ferrule test CA");
    assert_eq!(client.issuer_der, parsed_ca.subject_der);
}

#[test]
fn certificate_ids_parse_from_either_case() {
    let dir = Dir::new();
    dir.rsa_key("k.key", 2048);
    dir.self_signed("k.key", "c.pem", "/CN=c", "sha256");
    let cert = parse(&dir, "c.pem");
    let upper: CertificateId = cert.id.as_str().to_uppercase().parse().expect("upper");
    assert_eq!(upper, cert.id);
    assert_eq!(format!("{}", cert.id), cert.id.as_str());
}
