//! Client-certificate authentication for the MQTT-over-TLS listener, against the registry.
//!
//! What it is for: deciding, during the TLS handshake, whether a device's certificate was
//! issued by a CA registered in the [`Registry`] (or was itself registered without a CA), so
//! that the handshake may complete. The status checks that follow AWS's decision table
//! (ACTIVE, PENDING_ACTIVATION, unknown → just-in-time registration, ...) are *not* made here:
//! they need the database and run after the handshake, once CONNECT has arrived, in the
//! broker's `auth` module, starting from the [`ClientIdentity`] the verifier recorded for the
//! connection ([`with_handshake_slot`]).
//!
//! Pieces:
//! - [`TrustStore`]: an atomically swapped ([`ArcSwap`]) in-memory snapshot of every
//!   registered CA certificate, parsed once and indexed by subject DER, plus the ids of the
//!   certificates registered without a CA. [`TrustStore::load`] fills it from the registry and
//!   [`TrustStore::spawn_refresh`] keeps it current from the registry's change feed, so a CA
//!   registered, activated or deactivated takes effect on the next handshake with no restart
//!   and no `ServerConfig` rebuild.
//! - [`RegistryClientVerifier`]: the `rustls` [`ClientCertVerifier`]. Trust comes only from
//!   the snapshot: the intermediates a client sends (typically its CA, `cat deviceCert.crt
//!   CAroot.pem`) are ignored. Issuer signatures are checked with
//!   [`ferrule_pki::verify_signed_by`], so X.509 v1 device certificates (made by `openssl x509
//!   -req` with no extension file) are accepted, as AWS accepts them; webpki is not used.
//!   Certificates under an INACTIVE CA pass the handshake too: on AWS an ACTIVE certificate
//!   stays usable when its CA goes INACTIVE, and what happens to an unknown one is decided
//!   after the handshake ([`ClientIdentity::ca_status`]).
//! - [`server_config`]: the listener's `rustls::ServerConfig` (aws-lc-rs, TLS 1.2 and 1.3)
//!   with session resumption disabled, since a resumed session would skip the verifier.
//!
//! Order of calls: [`TrustStore::new`], then [`TrustStore::load`] (or
//! [`TrustStore::spawn_refresh`], which loads first), then [`RegistryClientVerifier::new`] and
//! [`server_config`]. The verifier never blocks and never touches the database.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ferrule_pki::{ParsedCertificate, PkiError};
use ferrule_store::{
    AutoRegistrationStatus, CaRecord, CaStatus, PageRequest, Registry, RegistryChange,
    RegistryError,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How many certificates [`TrustStore::load`] reads per page when it looks for the
/// certificates registered without a CA.
const LOAD_PAGE_SIZE: usize = 500;

/// A registered CA certificate as the verifier sees it: parsed once, when the snapshot is
/// built.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    /// The CA certificate's id (SHA-256 of its DER, hex).
    pub id: String,
    /// Its subject, DER-encoded: what device certificates name as their issuer.
    pub subject_der: Vec<u8>,
    /// ACTIVE or INACTIVE.
    pub status: CaStatus,
    /// Whether unknown certificates it issued are registered just in time.
    pub auto_registration: AutoRegistrationStatus,
    /// The parsed certificate, for signature checks.
    pub parsed: ParsedCertificate,
}

/// One immutable generation of the trust store. Its two halves change independently (CA
/// changes, certificate changes) and are shared between generations.
#[derive(Debug, Default)]
struct Snapshot {
    cas: Arc<CaIndex>,
    /// Ids of the certificates registered without a CA (RegisterCertificateWithoutCA).
    without_ca: Arc<HashSet<String>>,
}

/// The registered CA certificates, parsed.
#[derive(Debug, Default)]
struct CaIndex {
    /// Registered CAs by subject DER (several CAs may share a subject).
    by_subject: HashMap<Vec<u8>, Vec<Arc<TrustedCa>>>,
    /// Ids of every registered CA certificate.
    ids: HashSet<String>,
}

impl CaIndex {
    fn new(cas: Vec<CaRecord>) -> CaIndex {
        let mut index = CaIndex::default();
        for ca in cas {
            let parsed = match ferrule_pki::parse_certificate_pem(&ca.pem) {
                Ok(parsed) => parsed,
                Err(error) => {
                    tracing::warn!(ca_id = %ca.id, %error, "skipping an unparseable registered CA certificate");
                    continue;
                }
            };
            // Index by the subject in the certificate itself: that is what issuers name.
            let subject_der = parsed.subject_der.clone();
            index.ids.insert(ca.id.clone());
            index
                .by_subject
                .entry(subject_der.clone())
                .or_default()
                .push(Arc::new(TrustedCa {
                    id: ca.id,
                    subject_der,
                    status: ca.status,
                    auto_registration: ca.auto_registration,
                    parsed,
                }));
        }
        index
    }
}

/// The in-memory, atomically swapped snapshot of the registry's trust material: registered CA
/// certificates and the ids of certificates registered without a CA. Reads are lock-free.
#[derive(Debug, Default)]
pub struct TrustStore {
    snapshot: ArcSwap<Snapshot>,
}

impl TrustStore {
    /// An empty store: every certificate is refused until [`TrustStore::replace`] or
    /// [`TrustStore::load`].
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Replaces the registered CAs with `cas`, keeping the set of certificates registered
    /// without a CA. CA certificates that do not parse are skipped and logged.
    pub fn replace(&self, cas: Vec<CaRecord>) {
        let cas = Arc::new(CaIndex::new(cas));
        self.snapshot.rcu(|current| Snapshot {
            cas: Arc::clone(&cas),
            without_ca: Arc::clone(&current.without_ca),
        });
    }

    /// Replaces both the registered CAs and the ids of the certificates registered without a
    /// CA (certificates whose `ca_id` is `None`), in one swap.
    pub fn replace_all(
        &self,
        cas: Vec<CaRecord>,
        without_ca_ids: impl IntoIterator<Item = String>,
    ) {
        self.snapshot.store(Arc::new(Snapshot {
            cas: Arc::new(CaIndex::new(cas)),
            without_ca: Arc::new(without_ca_ids.into_iter().collect()),
        }));
    }

    /// Replaces the ids of the certificates registered without a CA, keeping the CAs.
    pub fn set_registered_without_ca(&self, ids: impl IntoIterator<Item = String>) {
        let ids: Arc<HashSet<String>> = Arc::new(ids.into_iter().collect());
        self.snapshot.rcu(|current| Snapshot {
            cas: Arc::clone(&current.cas),
            without_ca: Arc::clone(&ids),
        });
    }

    /// Adds (`registered` true) or removes one certificate id from the set of certificates
    /// registered without a CA.
    fn update_without_ca(&self, id: &str, registered: bool) {
        // Most certificate changes concern certificates under a CA: nothing to swap.
        if self.snapshot.load().without_ca.contains(id) == registered {
            return;
        }
        self.snapshot.rcu(|current| {
            let mut without_ca = HashSet::clone(&current.without_ca);
            if registered {
                without_ca.insert(id.to_owned());
            } else {
                without_ca.remove(id);
            }
            Snapshot {
                cas: Arc::clone(&current.cas),
                without_ca: Arc::new(without_ca),
            }
        });
    }

    /// Loads every registered CA, and every certificate registered without a CA (paging
    /// through all device certificates: the registry has no index on a missing `ca_id`), and
    /// swaps them in at once.
    pub async fn load(&self, registry: &Registry) -> Result<(), RegistryError> {
        let cas = registry.all_cas().await?;
        let without_ca = registered_without_ca(registry).await?;
        self.replace_all(cas, without_ca);
        Ok(())
    }

    /// Reloads only the registered CAs.
    async fn reload_cas(&self, registry: &Registry) -> Result<(), RegistryError> {
        let cas = registry.all_cas().await?;
        self.replace(cas);
        Ok(())
    }

    /// Loads the store (see [`TrustStore::load`]) and then keeps it current from the
    /// registry's change feed, until the feed closes: every `CaChanged` reloads the CAs, every
    /// certificate change updates the set of certificates registered without a CA, and a
    /// lagging receiver reloads everything. Failures are logged, never fatal: the previous
    /// snapshot stays in force.
    pub fn spawn_refresh(self: &Arc<Self>, registry: Registry) -> JoinHandle<()> {
        let store = Arc::clone(self);
        // Subscribe before the first load so that no change between the two is missed.
        let mut changes = registry.subscribe();
        tokio::spawn(async move {
            if let Err(error) = store.load(&registry).await {
                tracing::error!(%error, "loading the TLS trust store from the registry");
            }
            loop {
                let result = match changes.recv().await {
                    Ok(RegistryChange::CaChanged { .. }) => store.reload_cas(&registry).await,
                    Ok(RegistryChange::CertificateChanged {
                        certificate_id,
                        ca_id,
                        ..
                    }) => {
                        // A certificate's CA never changes: the change says all there is to know.
                        store.update_without_ca(&certificate_id, ca_id.is_none());
                        Ok(())
                    }
                    Ok(RegistryChange::CertificateDeleted { certificate_id }) => {
                        store.update_without_ca(&certificate_id, false);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "TLS trust store fell behind the registry; reloading"
                        );
                        store.load(&registry).await
                    }
                    Err(RecvError::Closed) => break,
                };
                if let Err(error) = result {
                    tracing::error!(%error, "refreshing the TLS trust store from the registry");
                }
            }
        })
    }

    /// How many CA certificates the current snapshot holds.
    pub fn ca_count(&self) -> usize {
        self.snapshot.load().cas.ids.len()
    }

    /// The registered CA with this id, if the current snapshot has it.
    pub fn ca(&self, id: &str) -> Option<Arc<TrustedCa>> {
        self.snapshot
            .load()
            .cas
            .by_subject
            .values()
            .flatten()
            .find(|ca| ca.id == id)
            .cloned()
    }

    /// Whether the certificate `id` is registered without a CA in the current snapshot.
    pub fn is_registered_without_ca(&self, id: &str) -> bool {
        self.snapshot.load().without_ca.contains(id)
    }

    /// Identifies the device certificate `der` against the current snapshot at `now_unix`
    /// (seconds): see [`RegistryClientVerifier::identify`].
    pub fn identify(&self, der: &[u8], now_unix: i64) -> Result<ClientIdentity, Refusal> {
        let cert = ferrule_pki::parse_certificate_der(der)
            .map_err(|e| Refusal::Unparseable(e.to_string()))?;
        let snapshot = self.snapshot.load();
        let id = cert.id.as_str().to_owned();
        if cert.is_ca || snapshot.cas.ids.contains(&id) {
            return Err(Refusal::CaUsedAsDeviceCert { certificate_id: id });
        }
        if now_unix > cert.not_after_unix {
            return Err(Refusal::Expired {
                certificate_id: id,
                not_after: cert.not_after_unix,
            });
        }
        if now_unix < cert.not_before_unix {
            return Err(Refusal::NotYetValid {
                certificate_id: id,
                not_before: cert.not_before_unix,
            });
        }
        let mut failure = None;
        for ca in snapshot
            .cas
            .by_subject
            .get(&cert.issuer_der)
            .into_iter()
            .flatten()
        {
            match ferrule_pki::verify_signed_by(&cert, &ca.parsed) {
                Ok(()) => return Ok(ClientIdentity::new(cert, Some(ca))),
                Err(error) => {
                    let refusal = match error {
                        PkiError::UnsupportedSignatureAlgorithm { .. }
                        | PkiError::UnsupportedKey { .. } => Refusal::UnsupportedAlgorithm {
                            certificate_id: id.clone(),
                            detail: error.to_string(),
                        },
                        _ => Refusal::BadSignature {
                            certificate_id: id.clone(),
                        },
                    };
                    // A bad signature says more than an unsupported algorithm.
                    if !matches!(failure, Some(Refusal::BadSignature { .. })) {
                        failure = Some(refusal);
                    }
                }
            }
        }
        if snapshot.without_ca.contains(&id) {
            return Ok(ClientIdentity::new(cert, None));
        }
        Err(failure.unwrap_or(Refusal::UnknownCa {
            certificate_id: id,
            issuer: cert.issuer,
        }))
    }
}

/// Pages through every device certificate and returns the ids of those registered without a
/// CA.
async fn registered_without_ca(registry: &Registry) -> Result<Vec<String>, RegistryError> {
    let mut ids = Vec::new();
    let mut page = PageRequest::first(LOAD_PAGE_SIZE);
    loop {
        let result = registry.list_certificates(&page).await?;
        ids.extend(
            result
                .items
                .into_iter()
                .filter(|c| c.ca_id.is_none())
                .map(|c| c.id),
        );
        match result.next_marker {
            Some(marker) => page.marker = Some(marker),
            None => return Ok(ids),
        }
    }
}

/// Who a device certificate that passed [`TrustStore::identify`] belongs to. Its registry
/// status is not known yet: that is for the async code after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate's id (SHA-256 of its DER, hex), as AWS computes it.
    pub certificate_id: String,
    /// The registered CA whose key signed it; `None` for a certificate registered without a
    /// CA.
    pub ca_id: Option<String>,
    /// That CA's status when the snapshot was taken (for the JITR decision).
    pub ca_status: Option<CaStatus>,
    /// That CA's auto-registration setting when the snapshot was taken.
    pub ca_auto_registration: Option<AutoRegistrationStatus>,
    /// The certificate's subject (RFC 4514).
    pub subject: String,
    /// Its subject's common name, if any (for `${iot:Certificate.Subject.CommonName}`).
    pub common_name: Option<String>,
    /// Its issuer (RFC 4514).
    pub issuer: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The whole parsed certificate (its PEM, for just-in-time registration, among the rest):
    /// registration and policy variables need more of it.
    pub certificate: Arc<ParsedCertificate>,
}

impl ClientIdentity {
    fn new(cert: ParsedCertificate, ca: Option<&Arc<TrustedCa>>) -> ClientIdentity {
        ClientIdentity {
            certificate_id: cert.id.as_str().to_owned(),
            ca_id: ca.map(|ca| ca.id.clone()),
            ca_status: ca.map(|ca| ca.status),
            ca_auto_registration: ca.map(|ca| ca.auto_registration),
            subject: cert.subject.clone(),
            common_name: cert.common_name.clone(),
            issuer: cert.issuer.clone(),
            not_before: cert.not_before_unix,
            not_after: cert.not_after_unix,
            certificate: Arc::new(cert),
        }
    }
}

/// Why a device certificate was refused at the handshake. Each reason has its own variant and
/// [`Refusal::reason`] label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The certificate is not valid DER X.509.
    #[error("the client certificate could not be parsed: {0}")]
    Unparseable(String),
    /// A CA certificate (basicConstraints CA:TRUE, or a registered CA certificate) was
    /// presented as a device certificate.
    #[error("certificate {certificate_id} is a CA certificate, not a device certificate")]
    CaUsedAsDeviceCert {
        /// The presented certificate's id.
        certificate_id: String,
    },
    /// The certificate's notAfter is in the past.
    #[error("certificate {certificate_id} expired at {not_after} (Unix time)")]
    Expired {
        /// The certificate's id.
        certificate_id: String,
        /// Its notAfter, Unix seconds.
        not_after: i64,
    },
    /// The certificate's notBefore is in the future.
    #[error("certificate {certificate_id} is not valid before {not_before} (Unix time)")]
    NotYetValid {
        /// The certificate's id.
        certificate_id: String,
        /// Its notBefore, Unix seconds.
        not_before: i64,
    },
    /// No registered CA has the certificate's issuer name, and it is not registered without
    /// a CA.
    #[error("certificate {certificate_id} was issued by {issuer:?}, which is no registered CA")]
    UnknownCa {
        /// The certificate's id.
        certificate_id: String,
        /// Its issuer (RFC 4514).
        issuer: String,
    },
    /// A registered CA has the issuer's name, but its key did not sign the certificate.
    #[error("certificate {certificate_id}: no registered CA with its issuer name signed it")]
    BadSignature {
        /// The certificate's id.
        certificate_id: String,
    },
    /// The certificate's signature algorithm, or the CA's key, is not supported.
    #[error("certificate {certificate_id}: {detail}")]
    UnsupportedAlgorithm {
        /// The certificate's id.
        certificate_id: String,
        /// What is unsupported.
        detail: String,
    },
}

impl Refusal {
    /// A snake_case label for metrics and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unparseable(_) => "unparseable_certificate",
            Refusal::CaUsedAsDeviceCert { .. } => "ca_used_as_device_certificate",
            Refusal::Expired { .. } => "certificate_expired",
            Refusal::NotYetValid { .. } => "certificate_not_yet_valid",
            Refusal::UnknownCa { .. } => "unknown_ca",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
        }
    }

    /// The certificate's id, when it could be parsed.
    pub fn certificate_id(&self) -> Option<&str> {
        match self {
            Refusal::Unparseable(_) => None,
            Refusal::CaUsedAsDeviceCert { certificate_id }
            | Refusal::Expired { certificate_id, .. }
            | Refusal::NotYetValid { certificate_id, .. }
            | Refusal::UnknownCa { certificate_id, .. }
            | Refusal::BadSignature { certificate_id }
            | Refusal::UnsupportedAlgorithm { certificate_id, .. } => Some(certificate_id),
        }
    }

    /// The `rustls` error for this refusal, which decides the TLS alert the client gets.
    fn to_rustls(&self) -> CertificateError {
        let unix = |secs: i64| {
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs.max(0).unsigned_abs()))
        };
        match self {
            Refusal::Unparseable(_) => CertificateError::BadEncoding,
            // alert 43 unsupported_certificate
            Refusal::CaUsedAsDeviceCert { .. } => CertificateError::InvalidPurpose,
            // alert 45 certificate_expired
            Refusal::Expired { not_after, .. } => CertificateError::ExpiredContext {
                time: UnixTime::now(),
                not_after: unix(*not_after),
            },
            Refusal::NotYetValid { not_before, .. } => CertificateError::NotValidYetContext {
                time: UnixTime::now(),
                not_before: unix(*not_before),
            },
            // alert 48 unknown_ca
            Refusal::UnknownCa { .. } => CertificateError::UnknownIssuer,
            // alert 51 decrypt_error
            Refusal::BadSignature { .. } => CertificateError::BadSignature,
            Refusal::UnsupportedAlgorithm { .. } => {
                CertificateError::Other(OtherError(Arc::new(self.clone())))
            }
        }
    }
}

/// What the verifier decided during one connection's handshake, for the code that accepted
/// the connection: the identity of an accepted certificate, or the refusal with what could be
/// read of the certificate (for the rejection event).
#[derive(Debug, Clone)]
pub enum HandshakeOutcome {
    /// The certificate may complete the handshake.
    Accepted(Arc<ClientIdentity>),
    /// It may not.
    Refused {
        /// Why.
        refusal: Refusal,
        /// The certificate, if it parsed.
        certificate: Option<Arc<ParsedCertificate>>,
    },
}

/// A slot the verifier fills for the handshake running in the current task.
pub type HandshakeSlot = Arc<std::sync::Mutex<Option<HandshakeOutcome>>>;

tokio::task_local! {
    static HANDSHAKE: HandshakeSlot;
}

/// Runs `handshake` (a TLS accept) with a slot in which the [`RegistryClientVerifier`] records
/// its decision: `rustls` calls the verifier inside the task that polls the handshake, and
/// knows nothing of the connection it verifies for. Returns the handshake's result and the
/// decision, if the verifier ran.
pub async fn with_handshake_slot<F: Future>(handshake: F) -> (F::Output, Option<HandshakeOutcome>) {
    let slot = HandshakeSlot::default();
    let output = HANDSHAKE.scope(slot.clone(), handshake).await;
    let outcome = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    (output, outcome)
}

fn record_outcome(outcome: HandshakeOutcome) {
    // Outside `with_handshake_slot` (tests driving rustls directly) there is no one to tell.
    let _ = HANDSHAKE.try_with(|slot| {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    });
}

/// The `rustls` client-certificate verifier backed by a [`TrustStore`]. Requires a client
/// certificate; sends no CA names in its CertificateRequest (clients send theirs anyway).
pub struct RegistryClientVerifier {
    store: Arc<TrustStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for RegistryClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClientVerifier")
            .field("cas", &self.store.ca_count())
            .finish_non_exhaustive()
    }
}

impl RegistryClientVerifier {
    /// A verifier reading `store`'s current snapshot at every handshake.
    pub fn new(store: Arc<TrustStore>) -> RegistryClientVerifier {
        RegistryClientVerifier {
            store,
            algorithms: aws_lc_rs::default_provider().signature_verification_algorithms,
        }
    }

    /// Checks the client's CertificateVerify signature with its certificate's public key.
    ///
    /// `rustls::crypto::verify_tls12_signature`/`verify_tls13_signature` would parse the
    /// certificate with webpki, which refuses X.509 v1 certificates; so the key is taken from
    /// the certificate with ferrule-pki and the signature checked with the aws-lc-rs
    /// provider's algorithms for the scheme, as those functions do.
    fn verify_handshake_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only the schemes we advertised.
        let algorithms = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        let parsed = ferrule_pki::parse_certificate_der(cert.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if tls13 {
            let spki = SubjectPublicKeyInfoDer::from(parsed.spki_der.as_slice());
            return rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &spki,
                dss,
                &self.algorithms,
            );
        }
        let (key_alg_id, public_key) = split_spki(&parsed.spki_der).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let mut matched = false;
        for alg in algorithms {
            if alg.public_key_alg_id().as_ref() != key_alg_id {
                continue;
            }
            matched = true;
            if alg
                .verify_signature(public_key, message, dss.signature())
                .is_ok()
            {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(rustls::Error::InvalidCertificate(if matched {
            CertificateError::BadSignature
        } else {
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: Vec::new(),
                public_key_algorithm_id: key_alg_id.to_vec(),
            }
        }))
    }

    /// The trust store it reads.
    pub fn store(&self) -> &Arc<TrustStore> {
        &self.store
    }

    /// Decides whether the device certificate `der` may complete a handshake at `now_unix`
    /// (seconds), and if so who it is: it must parse, not be a CA certificate, be within its
    /// validity, and be signed by the key of a registered CA with its issuer name (ACTIVE or
    /// INACTIVE) or be registered without a CA. Only the snapshot is trusted.
    pub fn identify(&self, der: &[u8], now_unix: i64) -> Result<ClientIdentity, Refusal> {
        self.store.identify(der, now_unix)
    }
}

impl ClientCertVerifier for RegistryClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        // What the client sent after its certificate is never trusted.
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let now_unix = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        match self.identify(end_entity.as_ref(), now_unix) {
            Ok(identity) => {
                tracing::debug!(
                    certificate_id = %identity.certificate_id,
                    ca_id = identity.ca_id.as_deref().unwrap_or("-"),
                    "client certificate accepted at the TLS handshake"
                );
                record_outcome(HandshakeOutcome::Accepted(Arc::new(identity)));
                Ok(ClientCertVerified::assertion())
            }
            Err(refusal) => {
                let error = rustls::Error::InvalidCertificate(refusal.to_rustls());
                let certificate = ferrule_pki::parse_certificate_der(end_entity.as_ref())
                    .ok()
                    .map(Arc::new);
                record_outcome(HandshakeOutcome::Refused {
                    refusal,
                    certificate,
                });
                Err(error)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The MQTT-over-TLS listener's `ServerConfig`: the aws-lc-rs provider, TLS 1.2 and 1.3, the
/// given verifier, the broker's certificate `chain` and `key`, and **no session resumption**
/// (no TLS 1.3 tickets, no session cache; rustls' default ticketer issues no TLS 1.2
/// tickets either), so every connection goes through the verifier.
/// Fails if the key does not match the chain.
pub fn server_config(
    verifier: Arc<RegistryClientVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(config)
}

/// Splits a DER SubjectPublicKeyInfo into its AlgorithmIdentifier's contents (what
/// `SignatureVerificationAlgorithm::public_key_alg_id` gives) and the public key bits.
fn split_spki(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, _) = der_tlv(spki, 0x30)?;
    let (alg_id, rest) = der_tlv(seq, 0x30)?;
    let (bits, _) = der_tlv(rest, 0x03)?;
    match bits.split_first()? {
        (0, key) => Some((alg_id, key)),
        _ => None,
    }
}

/// Reads one DER element with tag `tag` from the front of `input`: its contents and the rest.
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    rest.split_at_checked(len)
}
