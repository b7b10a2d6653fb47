//! The registry-backed client-certificate verifier: real TLS handshakes (in memory, rustls
//! client against [`server_config`]) with device certificates made by the openssl CLI, and
//! the per-reason table through `identify()`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrule_broker::client_auth::{Refusal, RegistryClientVerifier, TrustStore, server_config};
use ferrule_pki::{ParsedCertificate, TestCa};
use ferrule_store::{
    AutoRegistrationStatus, CaRecord, CaStatus, CertRecord, CertificateMode, CertificateStatus,
    Registry,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, ServerConfig, ServerConnection};

// ----- certificates with the openssl CLI -----

#[derive(Clone, Copy, Debug)]
enum Key {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn genkey(dir: &Path, name: &str, key: Key) -> PathBuf {
    let file = format!("{name}.key");
    match key {
        Key::Rsa2048 => openssl(dir, &["genrsa", "-out", &file, "2048"]),
        Key::Rsa3072 => openssl(dir, &["genrsa", "-out", &file, "3072"]),
        Key::Rsa4096 => openssl(dir, &["genrsa", "-out", &file, "4096"]),
        Key::EcP256 | Key::EcP384 => {
            let curve = if matches!(key, Key::EcP256) {
                "prime256v1"
            } else {
                "secp384r1"
            };
            // `ecparam -genkey` writes SEC1; rustls reads it, and the usual recipe makes it.
            openssl(
                dir,
                &[
                    "ecparam", "-name", curve, "-genkey", "-noout", "-out", &file,
                ],
            );
        }
    }
    dir.join(file)
}

/// A self-signed CA made with `openssl req -x509 -new`.
struct Ca {
    name: String,
    cert: PathBuf,
    key: PathBuf,
}

fn make_ca(dir: &Path, name: &str, subject: &str, key: Key) -> Ca {
    let key_path = genkey(dir, name, key);
    let cert = format!("{name}.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-key",
            &format!("{name}.key"),
            "-sha256",
            "-days",
            "365",
            "-subj",
            subject,
            "-out",
            &cert,
        ],
    );
    Ca {
        name: name.to_owned(),
        cert: dir.join(cert),
        key: key_path,
    }
}

/// A device certificate by the usual recipe: CSR, then `openssl x509 -req -CA` with no
/// extension file (an X.509 v1 certificate).
struct Device {
    cert: PathBuf,
    key: PathBuf,
}

fn make_device(dir: &Path, name: &str, ca: &Ca, key: Key) -> Device {
    let key_path = genkey(dir, name, key);
    let csr = format!("{name}.csr");
    let cert = format!("{name}.pem");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{}.pem", ca.name),
            "-CAkey",
            &format!("{}.key", ca.name),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "365",
            "-sha256",
        ],
    );
    Device {
        cert: dir.join(cert),
        key: key_path,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn der_of(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn parsed(path: &Path) -> ParsedCertificate {
    ferrule_pki::parse_certificate_pem(&read(path)).unwrap()
}

fn ca_record(pem: &str, status: CaStatus) -> CaRecord {
    let p = ferrule_pki::parse_certificate_pem(pem).unwrap();
    CaRecord {
        id: p.id.as_str().to_owned(),
        pem: pem.to_owned(),
        subject_der: p.subject_der.clone(),
        status,
        auto_registration: AutoRegistrationStatus::Enable,
        mode: CertificateMode::Default,
        registration_config: None,
        owned_by: "123456789012".to_owned(),
        created_ms: 0,
        modified_ms: 0,
        customer_version: 1,
        generation_id: "g".to_owned(),
        not_before_ms: p.not_before_unix * 1000,
        not_after_ms: p.not_after_unix * 1000,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

// ----- in-memory TLS -----

/// The broker side: its own certificate from a `TestCa`, the verifier over `store`.
struct Server {
    config: Arc<ServerConfig>,
    root: CertificateDer<'static>,
    root_pem: String,
}

fn server(store: &Arc<TrustStore>) -> Server {
    let ca = TestCa::new("Ferrule broker test CA").unwrap();
    let (chain_pem, key_pem) = ca.issue_server(&["localhost"]).unwrap();
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let verifier = Arc::new(RegistryClientVerifier::new(Arc::clone(store)));
    let config = server_config(verifier, chain, key).unwrap();
    assert_eq!(config.send_tls13_tickets, 0);
    Server {
        config: Arc::new(config),
        root: ca.cert_der(),
        root_pem: ca.cert_pem(),
    }
}

fn client(
    server: &Server,
    version: &'static rustls::SupportedProtocolVersion,
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.root.clone()).unwrap();
    let key = PrivateKeyDer::from_pem_file(key_path).unwrap();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing_key = provider.key_provider.load_private_key(key).unwrap();
    // `with_client_auth_cert` parses the certificate with webpki, which refuses X.509 v1:
    // hand rustls the key and chain as they are, as OpenSSL-based devices do.
    let resolver = Fixed(Arc::new(rustls::sign::CertifiedKey::new(
        chain,
        signing_key,
    )));
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(resolver));
    Arc::new(config)
}

/// Always presents one certificate chain.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// What the server saw of a completed handshake.
#[derive(Debug)]
struct Done {
    version: ProtocolVersion,
    kind: rustls::HandshakeKind,
    peer_chain_len: usize,
}

/// Runs a handshake in memory. `Err` is the server's error if it failed, else the client's.
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> Result<Done, rustls::Error> {
    let mut c = ClientConnection::new(Arc::clone(client), "localhost".try_into().unwrap())?;
    let mut s = ServerConnection::new(Arc::clone(server))?;
    for _ in 0..32 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
            return Ok(Done {
                version: s.protocol_version().unwrap(),
                kind: s.handshake_kind().unwrap(),
                peer_chain_len: s.peer_certificates().map_or(0, <[_]>::len),
            });
        }
    }
    panic!("handshake did not finish");
}

const VERSIONS: [(&rustls::SupportedProtocolVersion, ProtocolVersion); 2] = [
    (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
];

fn cert_error(result: Result<Done, rustls::Error>) -> rustls::CertificateError {
    match result {
        Err(rustls::Error::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

// ----- tests -----

#[test]
fn v1_device_certs_from_a_registered_ca_are_accepted_alone_and_with_chain_on_tls12_and_13() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, (ca_key, dev_key)) in [
        (Key::Rsa2048, Key::Rsa2048),
        (Key::EcP256, Key::EcP256),
        (Key::Rsa2048, Key::EcP256),
        (Key::EcP384, Key::EcP384),
        (Key::Rsa4096, Key::Rsa3072),
        (Key::EcP256, Key::Rsa4096),
    ]
    .into_iter()
    .enumerate()
    {
        let ca = make_ca(
            d,
            &format!("ca{i}"),
            &format!("/CN=Ferrule Test CA {i}/O=Ferrule"),
            ca_key,
        );
        let device = make_device(d, &format!("device{i}"), &ca, dev_key);
        let dev = parsed(&device.cert);
        assert_eq!(dev.version, 1, "the usual recipe makes X.509 v1");

        let store = Arc::new(TrustStore::new());
        store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
        let server = server(&store);
        for (version, expected) in VERSIONS {
            let alone = client(&server, version, vec![der_of(&device.cert)], &device.key);
            let done = handshake(&server.config, &alone).unwrap();
            assert_eq!(done.version, expected, "{ca_key:?}/{dev_key:?}");
            assert_eq!(done.peer_chain_len, 1);

            let chain = vec![der_of(&device.cert), der_of(&ca.cert)];
            let with_ca = client(&server, version, chain, &device.key);
            let done = handshake(&server.config, &with_ca).unwrap();
            assert_eq!(done.version, expected);
            assert_eq!(done.peer_chain_len, 2);
        }

        let id = store.identify(&dev.der, now()).unwrap();
        assert_eq!(id.certificate_id, dev.id.as_str());
        assert_eq!(id.ca_id.as_deref(), Some(parsed(&ca.cert).id.as_str()));
        assert_eq!(id.ca_status, Some(CaStatus::Active));
        assert_eq!(id.subject, format!("CN=device{i}"));
        assert_eq!(
            id.common_name.as_deref(),
            Some(format!("device{i}").as_str())
        );
    }
}

#[test]
fn unknown_ca_is_refused_even_when_the_client_sends_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registered = make_ca(d, "reg", "/CN=Registered CA", Key::EcP256);
    let unknown = make_ca(d, "unk", "/CN=Unknown CA", Key::EcP256);
    let device = make_device(d, "dev", &unknown, Key::EcP256);
    let store = Arc::new(TrustStore::new());
    store.replace(vec![ca_record(&read(&registered.cert), CaStatus::Active)]);
    let server = server(&store);
    for (version, _) in VERSIONS {
        let chain = vec![der_of(&device.cert), der_of(&unknown.cert)];
        let c = client(&server, version, chain, &device.key);
        assert_eq!(
            cert_error(handshake(&server.config, &c)),
            rustls::CertificateError::UnknownIssuer
        );
    }
}

#[test]
fn a_ca_registered_after_the_verifier_was_built_is_accepted_without_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d, "late", "/CN=Late CA", Key::Rsa2048);
    let device = make_device(d, "dev", &ca, Key::Rsa2048);
    let store = Arc::new(TrustStore::new());
    let server = server(&store);
    let c = client(
        &server,
        &rustls::version::TLS13,
        vec![der_of(&device.cert)],
        &device.key,
    );
    assert_eq!(
        cert_error(handshake(&server.config, &c)),
        rustls::CertificateError::UnknownIssuer
    );
    store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    handshake(&server.config, &c).unwrap();
    // Deregistered: refused again, same ServerConfig.
    store.replace(vec![]);
    assert!(handshake(&server.config, &c).is_err());
}

#[test]
fn no_session_resumption_so_every_connection_meets_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d, "ca", "/CN=Resumption CA", Key::EcP256);
    let device = make_device(d, "dev", &ca, Key::EcP256);
    let store = Arc::new(TrustStore::new());
    store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    let server = server(&store);
    for (version, _) in VERSIONS {
        // One client config: its session cache would offer resumption if the server allowed it.
        let c = client(&server, version, vec![der_of(&device.cert)], &device.key);
        for _ in 0..3 {
            let done = handshake(&server.config, &c).unwrap();
            assert_eq!(done.kind, rustls::HandshakeKind::Full);
        }
        store.replace(vec![]);
        assert_eq!(
            cert_error(handshake(&server.config, &c)),
            rustls::CertificateError::UnknownIssuer
        );
        store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    }
}

#[test]
fn a_client_without_the_private_key_of_its_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for key in [Key::EcP256, Key::Rsa2048] {
        let ca = make_ca(d, "ca", "/CN=Possession CA", key);
        let device = make_device(d, "dev", &ca, key);
        let other = genkey(d, "stolen", key);
        let store = Arc::new(TrustStore::new());
        store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
        let server = server(&store);
        for (version, _) in VERSIONS {
            // The CertificateVerify signature is checked (X.509 v1 certificates included).
            let c = client(&server, version, vec![der_of(&device.cert)], &other);
            assert_eq!(
                cert_error(handshake(&server.config, &c)),
                rustls::CertificateError::BadSignature,
                "{key:?} {version:?}"
            );
            let c = client(&server, version, vec![der_of(&device.cert)], &device.key);
            handshake(&server.config, &c).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_refresh_follows_the_registry_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let registry = Registry::open_sqlite(&d.join("ferrule.db")).await.unwrap();
    let (ca, device) = tokio::task::spawn_blocking({
        let d = d.clone();
        move || {
            let ca = make_ca(&d, "feed", "/CN=Feed CA", Key::EcP256);
            let device = make_device(&d, "dev", &ca, Key::EcP256);
            (ca, device)
        }
    })
    .await
    .unwrap();
    let store = Arc::new(TrustStore::new());
    let task = store.spawn_refresh(registry.clone());
    let server = server(&store);
    let c = client(
        &server,
        &rustls::version::TLS13,
        vec![der_of(&device.cert)],
        &device.key,
    );
    assert!(handshake(&server.config, &c).is_err());

    let record = ca_record(&read(&ca.cert), CaStatus::Inactive);
    registry.insert_ca(&record).await.unwrap();
    wait_for(|| store.ca_count() == 1).await;
    // INACTIVE CAs still pass the handshake (ACTIVE certificates under them stay usable);
    // the status is reported for the decision after the handshake.
    handshake(&server.config, &c).unwrap();
    let dev = parsed(&device.cert);
    assert_eq!(
        store.identify(&dev.der, now()).unwrap().ca_status,
        Some(CaStatus::Inactive)
    );

    registry.delete_ca(&record.id).await.unwrap();
    wait_for(|| store.ca_count() == 0).await;
    assert!(handshake(&server.config, &c).is_err());

    // RegisterCertificateWithoutCA: accepted by its id once the registry has it.
    let cert = CertRecord {
        id: dev.id.as_str().to_owned(),
        pem: dev.pem(),
        ca_id: None,
        issuer_der: dev.issuer_der.clone(),
        status: CertificateStatus::Active,
        mode: CertificateMode::Default,
        owned_by: "123456789012".to_owned(),
        created_ms: 0,
        modified_ms: 0,
        customer_version: 1,
        generation_id: "g".to_owned(),
        not_before_ms: dev.not_before_unix * 1000,
        not_after_ms: dev.not_after_unix * 1000,
    };
    registry.insert_certificate(&cert).await.unwrap();
    wait_for(|| store.is_registered_without_ca(&cert.id)).await;
    assert_eq!(handshake(&server.config, &c).unwrap().peer_chain_len, 1);
    assert_eq!(store.identify(&dev.der, now()).unwrap().ca_id, None);
    // A fresh store loads it from the registry.
    let fresh = TrustStore::new();
    fresh.load(&registry).await.unwrap();
    assert!(fresh.is_registered_without_ca(&cert.id));
    registry
        .update_certificate_status(&cert.id, CertificateStatus::Inactive, 1)
        .await
        .unwrap();
    registry.delete_certificate(&cert.id, true).await.unwrap();
    wait_for(|| !store.is_registered_without_ca(&cert.id)).await;
    assert!(handshake(&server.config, &c).is_err());

    task.abort();
    registry.close().await;
}

async fn wait_for(mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the trust store was not refreshed");
}

#[test]
fn a_ca_certificate_presented_as_device_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d, "ca", "/CN=Some CA", Key::EcP256);
    let store = Arc::new(TrustStore::new());
    store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    let server = server(&store);
    for (version, _) in VERSIONS {
        let c = client(&server, version, vec![der_of(&ca.cert)], &ca.key);
        assert_eq!(
            cert_error(handshake(&server.config, &c)),
            rustls::CertificateError::InvalidPurpose
        );
    }
}

#[test]
fn a_cert_signed_by_another_key_under_the_same_issuer_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = make_ca(d, "real", "/CN=Shared Name CA", Key::EcP256);
    let fake = make_ca(d, "fake", "/CN=Shared Name CA", Key::EcP256);
    let device = make_device(d, "dev", &fake, Key::EcP256);
    let store = Arc::new(TrustStore::new());
    store.replace(vec![ca_record(&read(&real.cert), CaStatus::Active)]);
    let server = server(&store);
    // Even with the impostor CA in the chain.
    let chain = vec![der_of(&device.cert), der_of(&fake.cert)];
    let c = client(&server, &rustls::version::TLS12, chain, &device.key);
    assert_eq!(
        cert_error(handshake(&server.config, &c)),
        rustls::CertificateError::BadSignature
    );
    // With both registered, the one whose key signed it is found.
    store.replace(vec![
        ca_record(&read(&real.cert), CaStatus::Active),
        ca_record(&read(&fake.cert), CaStatus::Active),
    ]);
    handshake(&server.config, &c).unwrap();
    let id = store.identify(&parsed(&device.cert).der, now()).unwrap();
    assert_eq!(id.ca_id.as_deref(), Some(parsed(&fake.cert).id.as_str()));
}

/// An rcgen CA and a device certificate with the given validity (openssl 3.0's `x509 -req`
/// cannot set past dates).
fn rcgen_device(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Validity CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "validity device");
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn expired_and_not_yet_valid_device_certs_are_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    for (validity, expect_expired) in [
        (((2020, 1, 1), (2021, 1, 1)), true),
        (((2090, 1, 1), (2091, 1, 1)), false),
    ] {
        let (ca_pem, cert_pem, key_pem) = rcgen_device(validity.0, validity.1);
        let key_path = dir.path().join("validity.key");
        std::fs::write(&key_path, key_pem).unwrap();
        let store = Arc::new(TrustStore::new());
        store.replace(vec![ca_record(&ca_pem, CaStatus::Active)]);
        let server = server(&store);
        for (version, _) in VERSIONS {
            let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
            let c = client(&server, version, chain, &key_path);
            let error = cert_error(handshake(&server.config, &c));
            if expect_expired {
                assert!(
                    matches!(error, rustls::CertificateError::ExpiredContext { .. }),
                    "{error:?}"
                );
            } else {
                assert!(
                    matches!(error, rustls::CertificateError::NotValidYetContext { .. }),
                    "{error:?}"
                );
            }
        }
    }
}

#[test]
fn certificates_registered_without_a_ca_are_accepted_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unregistered = make_ca(d, "ca", "/CN=Private CA", Key::EcP256);
    let device = make_device(d, "dev", &unregistered, Key::EcP256);
    let dev = parsed(&device.cert);
    let store = Arc::new(TrustStore::new());
    let server = server(&store);
    let c = client(
        &server,
        &rustls::version::TLS13,
        vec![der_of(&device.cert)],
        &device.key,
    );
    assert!(handshake(&server.config, &c).is_err());
    store.set_registered_without_ca([dev.id.as_str().to_owned()]);
    handshake(&server.config, &c).unwrap();
    let id = store.identify(&dev.der, now()).unwrap();
    assert_eq!(id.ca_id, None);
    assert!(store.is_registered_without_ca(dev.id.as_str()));
    // Replacing the CAs keeps the set.
    store.replace(vec![]);
    handshake(&server.config, &c).unwrap();
}

#[test]
fn identify_gives_a_distinct_reason_for_each_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d, "ca", "/CN=Table CA", Key::Rsa2048);
    let other = make_ca(d, "other", "/CN=Other CA", Key::EcP256);
    let twin = make_ca(d, "twin", "/CN=Table CA", Key::EcP256);
    let good = parsed(&make_device(d, "good", &ca, Key::EcP256).cert);
    let unknown = parsed(&make_device(d, "unknown", &other, Key::EcP256).cert);
    let forged = parsed(&make_device(d, "forged", &twin, Key::EcP256).cert);
    let store = TrustStore::new();
    store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    let t = now();

    assert!(store.identify(&good.der, t).is_ok());
    let cases: Vec<(&str, Result<_, Refusal>)> = vec![
        (
            "unparseable_certificate",
            store.identify(b"not a certificate", t),
        ),
        (
            "ca_used_as_device_certificate",
            store.identify(&parsed(&ca.cert).der, t),
        ),
        (
            "certificate_expired",
            store.identify(&good.der, good.not_after_unix + 1),
        ),
        (
            "certificate_not_yet_valid",
            store.identify(&good.der, good.not_before_unix - 1),
        ),
        ("unknown_ca", store.identify(&unknown.der, t)),
        ("bad_signature", store.identify(&forged.der, t)),
    ];
    let mut seen = std::collections::HashSet::new();
    for (reason, result) in cases {
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason(), reason, "{refusal}");
        assert!(seen.insert(refusal.reason()));
        if reason != "unparseable_certificate" {
            assert!(refusal.certificate_id().is_some());
        }
    }
    // Validity bounds are inclusive.
    assert!(store.identify(&good.der, good.not_after_unix).is_ok());
    assert!(store.identify(&good.der, good.not_before_unix).is_ok());
}

/// An OpenSSL client (as on most devices) over real TCP, with an X.509 v1 device certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_with_a_v1_device_cert_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let cases = tokio::task::spawn_blocking({
        let d = d.clone();
        move || {
            let ca = make_ca(&d, "ca", "/CN=TCP CA", Key::Rsa2048);
            let rsa = make_device(&d, "rsa", &ca, Key::Rsa2048);
            let ec = make_device(&d, "ec", &ca, Key::EcP256);
            (ca, rsa, ec)
        }
    })
    .await
    .unwrap();
    let (ca, rsa, ec) = cases;
    let store = Arc::new(TrustStore::new());
    store.replace(vec![ca_record(&read(&ca.cert), CaStatus::Active)]);
    let server = server(&store);
    let root = d.join("broker-root.pem");
    std::fs::write(&root, &server.root_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&server.config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for device in [&rsa, &ec] {
        for (flag, expected) in [
            ("-tls1_2", ProtocolVersion::TLSv1_2),
            ("-tls1_3", ProtocolVersion::TLSv1_3),
        ] {
            let mut child = std::process::Command::new("openssl")
                .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), flag])
                .arg("-cert")
                .arg(&device.cert)
                .arg("-key")
                .arg(&device.key)
                .arg("-CAfile")
                .arg(&root)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let (_, conn) = tls.get_ref();
            assert_eq!(conn.protocol_version(), Some(expected));
            assert_eq!(conn.peer_certificates().map(<[_]>::len), Some(1));
            drop(tls);
            tokio::task::spawn_blocking(move || child.wait())
                .await
                .unwrap()
                .unwrap();
        }
    }
}
