//! Ferrule's own issuing CA, for CreateKeysAndCertificate and CreateCertificateFromCsr.

use std::fmt;
use std::fs;
use std::path::Path;

use rcgen::{
    CertificateParams, CertifiedIssuer, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize,
    SerialNumber,
};
use rustls::pki_types::pem::SectionKind;
use time::{Duration, OffsetDateTime};
use x509_parser::der_parser;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use crate::cert::{self, ParsedCertificate};
use crate::csr::{self, ParsedCsr};
use crate::error::PkiError;
use crate::files::{self, Secret, exists, write_files};
use crate::id::random_bytes;
use crate::issue::{self, generate_error};
use crate::pem;

const CA_CERT_FILE: &str = "issuing-ca.pem";
const CA_KEY_FILE: &str = "issuing-ca.key";
const CA_CN: &str = "Ferrule issuing CA";
/// The subject AWS gives the certificates of CreateKeysAndCertificate.
const CREATED_CN: &str = "AWS IoT Certificate";
/// 2049-12-31T23:59:59Z, when AWS-issued certificates expire. The CA lasts as long.
const NOT_AFTER_UNIX: i64 = 2_524_607_999;
/// Backdating absorbs clock skew between Ferrule and the devices that check the certificate.
const BACKDATE: Duration = Duration::hours(1);

/// The issuing CA: AWS issues the certificates of CreateKeysAndCertificate and
/// CreateCertificateFromCsr from its own CA, and Ferrule from this one (ECDSA P-256,
/// `CN=Ferrule issuing CA`, kept in the data dir). Register its certificate ([`Issuer::ca_pem`])
/// wherever issued certificates must chain to something, such as the broker's trust store.
pub struct Issuer {
    ca_pem: String,
    ca: ParsedCertificate,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

/// What CreateKeysAndCertificate returns: a new RSA-2048 key pair and its certificate. The
/// private key exists nowhere else; it is returned once.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedKeys {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The public key as SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key_pem: String,
    /// The private key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), as AWS returns it.
    pub private_key_pem: String,
}

impl Issuer {
    /// Loads `DIR/issuing-ca.pem` and `DIR/issuing-ca.key`, or creates them (ECDSA P-256 CA
    /// `CN=Ferrule issuing CA`, path length 0, valid from an hour ago until
    /// 2049-12-31T23:59:59Z, the key with mode 0600) if neither exists. `dir` is created if
    /// missing.
    ///
    /// Loaded files are checked: the key must belong to the certificate, and the certificate
    /// must be a CA. One file without the other is [`PkiError::IncompleteIssuer`]; nothing is
    /// overwritten. Files are written under temporary names and renamed into place. Reads the
    /// clock when creating; does blocking file IO, so call it at startup.
    pub fn load_or_create(dir: &Path) -> Result<Issuer, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            operation: "create the directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (exists(&cert_path)?, exists(&key_path)?) {
            (true, true) => {
                let (cert_pem, key_pem) = files::load_pair(&cert_path, &key_path)?;
                Issuer::from_pem(cert_pem, &key_pem, &cert_path, &key_path)
            }
            (false, false) => {
                let (cert_pem, key_pem) = create_ca(OffsetDateTime::now_utc())?;
                // Key first: a crash between the renames leaves a key without a certificate,
                // which the next start reports rather than pairing the certificate with a
                // stale key.
                write_files(
                    dir,
                    &[
                        (&key_path, &key_pem, Secret::Yes),
                        (&cert_path, &cert_pem, Secret::No),
                    ],
                )?;
                Issuer::from_pem(cert_pem, &key_pem, &cert_path, &key_path)
            }
            (present, _) => {
                let (present, missing) = if present {
                    (cert_path, key_path)
                } else {
                    (key_path, cert_path)
                };
                Err(PkiError::IncompleteIssuer {
                    dir: dir.to_path_buf(),
                    present,
                    missing,
                })
            }
        }
    }

    fn from_pem(
        ca_pem: String,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Issuer, PkiError> {
        let cert_what = cert_path.display().to_string();
        let der = pem::first_section(ca_pem.as_bytes(), SectionKind::Certificate, &cert_what)?;
        let ca = cert::parse_der(&der, &cert_what)?;
        if !ca.is_ca {
            return Err(PkiError::MalformedCertificate {
                what: cert_what,
                reason: "it is not a CA certificate (no basicConstraints CA:TRUE), so it \
                         cannot be the issuing CA"
                    .into(),
            });
        }
        let key = KeyPair::from_pem(key_pem).map_err(|source| {
            generate_error(
                format!("load the issuing CA key {}", key_path.display()),
                source,
            )
        })?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&ca.der.clone().into(), key)
            .map_err(|source| generate_error(format!("load the issuing CA {cert_what}"), source))?;
        Ok(Issuer { ca_pem, ca, issuer })
    }

    /// The CA certificate, PEM, exactly as stored in `DIR/issuing-ca.pem`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, parsed (its id, subject and key).
    pub fn ca_certificate(&self) -> &ParsedCertificate {
        &self.ca
    }

    /// Issues a certificate for `csr`: the CSR's subject (byte for byte) and public key, a
    /// random 126-bit serial, valid from `now_unix` minus an hour until 2049-12-31T23:59:59Z
    /// (as AWS), X.509 v3 with basicConstraints CA:FALSE, keyUsage digitalSignature and EKU
    /// clientAuth. Extensions requested in the CSR are ignored. Returns the PEM.
    ///
    /// A subject rcgen cannot reproduce exactly (a multi-valued RDN, an attribute type that
    /// appears twice, an unusual string type) is [`PkiError::UnsupportedSubject`].
    pub fn issue_from_csr(&self, csr: &ParsedCsr, now_unix: i64) -> Result<String, PkiError> {
        let request = csr::parse_request(&csr.der)?;
        let info = &request.certification_request_info;
        let unsupported = |reason: String| PkiError::UnsupportedSubject {
            what: "the certificate signing request".into(),
            reason,
        };
        let subject = distinguished_name(&info.subject).map_err(unsupported)?;
        let key = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der).map_err(|_| {
            PkiError::UnsupportedKey {
                what: "the certificate signing request".into(),
                key: csr.key_type.clone(),
            }
        })?;
        let params = leaf_params(subject, now_unix)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| generate_error("sign the certificate".into(), source))?;
        let issued = cert::parse_der(cert.der(), "the issued certificate")?;
        if issued.subject_der != info.subject.as_raw() {
            return Err(unsupported(
                "its subject cannot be copied exactly (an attribute value type or encoding \
                 Ferrule does not reproduce)"
                    .into(),
            ));
        }
        if issued.spki_der != info.subject_pki.raw {
            return Err(PkiError::UnsupportedKey {
                what: "the certificate signing request".into(),
                key: csr.key_type.clone(),
            });
        }
        Ok(issued.pem())
    }

    /// Generates an RSA-2048 key pair and issues a certificate for it, as
    /// [`Issuer::issue_from_csr`] does, with subject `CN=AWS IoT Certificate`. Takes about a
    /// second in a debug build (RSA key generation).
    pub fn create_keys_and_certificate(&self, now_unix: i64) -> Result<IssuedKeys, PkiError> {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            .map_err(|source| generate_error("generate an RSA-2048 key".into(), source))?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, CREATED_CN);
        let cert = leaf_params(subject, now_unix)?
            .signed_by(&key, &self.issuer)
            .map_err(|source| generate_error("sign the certificate".into(), source))?;
        let private_key_pem =
            pem::encode("RSA PRIVATE KEY", &pkcs1_from_pkcs8(key.serialized_der())?);
        Ok(IssuedKeys {
            certificate_pem: pem::encode("CERTIFICATE", cert.der()),
            public_key_pem: pem::encode("PUBLIC KEY", &key.subject_public_key_info()),
            private_key_pem,
        })
    }
}

/// Creates the CA; returns its certificate and PKCS#8 key, PEM.
fn create_ca(now: OffsetDateTime) -> Result<(String, String), PkiError> {
    let key = issue::new_key("the issuing CA")?;
    let mut params = issue::ca_params(CA_CN, now, Duration::ZERO);
    params.not_after = not_after()?;
    let ca = CertifiedIssuer::self_signed(params, key)
        .map_err(|source| generate_error("self-sign the issuing CA".into(), source))?;
    Ok((ca.pem(), ca.key().serialize_pem()))
}

fn leaf_params(subject: DistinguishedName, now_unix: i64) -> Result<CertificateParams, PkiError> {
    let now = OffsetDateTime::from_unix_timestamp(now_unix)
        .map_err(|_| PkiError::InvalidTime { now_unix })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE;
    params.not_after = not_after()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn not_after() -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(NOT_AFTER_UNIX).map_err(|_| PkiError::InvalidTime {
        now_unix: NOT_AFTER_UNIX,
    })
}

/// 16 random bytes with the top bit clear (a positive INTEGER) and the next one set (no
/// leading zero byte to strip), so every serial encodes in exactly 16 bytes.
fn random_serial() -> SerialNumber {
    let mut bytes = random_bytes(16);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// `name` as rcgen's DistinguishedName, which holds one value per attribute type and one
/// attribute per RDN. The error says what does not fit.
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("its subject has a multi-valued RDN (attributes joined with \"+\")".into());
        };
        let oid = attr.attr_type();
        let arcs: Vec<u64> = oid
            .iter()
            .ok_or_else(|| format!("its subject has an attribute type {oid} with huge arcs"))?
            .collect();
        let ty = DnType::from_oid(&arcs);
        if dn.get(&ty).is_some() {
            return Err(format!(
                "its subject has the attribute {} more than once",
                oid.to_id_string()
            ));
        }
        let value = attr.attr_value();
        let text = || {
            std::str::from_utf8(value.data)
                .map(str::to_owned)
                .map_err(|_| format!("its subject attribute {} is not valid text", oid))
        };
        let invalid = |e: rcgen::Error| format!("its subject attribute {oid} is invalid: {e}");
        let value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(invalid)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(invalid)?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(invalid)?),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(value.data.to_vec()).map_err(invalid)?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(value.data.to_vec())
                    .map_err(invalid)?,
            ),
            tag => {
                return Err(format!(
                    "its subject attribute {oid} has a value of ASN.1 type {tag}, which Ferrule \
                     cannot copy"
                ));
            }
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo:
/// `SEQUENCE { INTEGER version, AlgorithmIdentifier, OCTET STRING privateKey, .. }`.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, PkiError> {
    let internal = || PkiError::MalformedCertificate {
        what: "the generated RSA key".into(),
        reason: "its PKCS#8 encoding has no private key octet string".into(),
    };
    let (_, info) = der_parser::der::parse_der_sequence(pkcs8).map_err(|_| internal())?;
    let items = info.as_sequence().map_err(|_| internal())?;
    let key = items.get(2).ok_or_else(internal)?;
    Ok(key.as_slice().map_err(|_| internal())?.to_vec())
}

/// Keeps the CA key out of logs.
impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("ca", &self.ca.subject)
            .field("id", &self.ca.id)
            .finish_non_exhaustive()
    }
}

/// Keeps the private key out of logs.
impl fmt::Debug for IssuedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKeys")
            .field("certificate_pem", &self.certificate_pem)
            .field("public_key_pem", &self.public_key_pem)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}
