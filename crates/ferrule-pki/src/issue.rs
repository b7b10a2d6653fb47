//! Issuing keys and certificates with rcgen. The clock is an argument here; callers read it.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;

/// Backdating absorbs clock skew between the machine that issues and the one that verifies.
const BACKDATE: Duration = Duration::hours(1);

/// A freshly issued certificate and the private key it certifies.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// What a leaf certificate is for; decides its extended key usage.
#[derive(Clone, Copy)]
pub(crate) enum LeafUsage {
    Server,
    Client,
}

/// Generates an ECDSA P-256 key, the one algorithm every TLS client supports and that is cheap.
pub(crate) fn new_key(purpose: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| generate_error(format!("generate the key of {purpose}"), source))
}

/// Parameters for a CA that issues leaves only (path length 0).
pub(crate) fn ca_params(cn: &str, now: OffsetDateTime, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now, lifetime);
    params
}

/// Issues a leaf for `cn` with subject alternative names `sans` (DNS names or IP addresses,
/// told apart the way rcgen does: anything that parses as an IP address is one).
pub(crate) fn issue_leaf(
    issuer: &Issuer<'_, KeyPair>,
    usage: LeafUsage,
    cn: &str,
    sans: &[&str],
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<Issued, PkiError> {
    let what = format!("certificate for {cn:?}");
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans)
        .map_err(|source| generate_error(format!("build the {what}"), source))?;
    params.distinguished_name = common_name(cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match usage {
        LeafUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        LeafUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, lifetime);

    let key = new_key(&format!("the {what}"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| generate_error(format!("sign the {what}"), source))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

pub(crate) fn generate_error(operation: String, source: rcgen::Error) -> PkiError {
    PkiError::Generate { operation, source }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn set_validity(params: &mut CertificateParams, now: OffsetDateTime, lifetime: Duration) {
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}
