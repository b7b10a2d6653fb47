//! Parsing X.509 certificates into [`ParsedCertificate`].

use std::fmt;

use rustls::pki_types::pem::SectionKind;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser;
use x509_parser::error::X509Error;
use x509_parser::nom;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::der;
use crate::error::PkiError;
use crate::id::{CertificateId, hex};
use crate::name;
use crate::variables;

/// The public key algorithm (and size or curve) of a certificate or CSR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on NIST P-256 (prime256v1, secp256r1).
    EcP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcP384,
    /// ECDSA on NIST P-521 (secp521r1).
    EcP521,
    /// RSA with a modulus of this many bits.
    Rsa(u32),
    /// Anything else, described for humans (for example "Ed25519" or "EC curve 1.3.132.0.10").
    Other(String),
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::EcP256 => f.write_str("EC P-256"),
            KeyType::EcP384 => f.write_str("EC P-384"),
            KeyType::EcP521 => f.write_str("EC P-521"),
            KeyType::Rsa(bits) => write!(f, "RSA {bits}-bit"),
            KeyType::Other(what) => f.write_str(what),
        }
    }
}

/// One X.509 certificate, parsed once at the edge into what the control plane and the broker
/// need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// The DER encoding, exactly as given.
    pub der: Vec<u8>,
    /// The SHA-256 of `der`.
    pub id: CertificateId,
    /// The subject as an RFC 4514 string, most specific attribute first, for example
    /// `CN=device-1,O=Acme` for `openssl req -subj "/O=Acme/CN=device-1"` (what
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints).
    pub subject: String,
    /// The subject name's DER encoding: the key for matching a certificate's issuer.
    pub subject_der: Vec<u8>,
    /// The issuer as an RFC 4514 string, like `subject`.
    pub issuer: String,
    /// The issuer name's DER encoding.
    pub issuer_der: Vec<u8>,
    /// The first common name (CN) of the subject, if it has one that is a string.
    pub common_name: Option<String>,
    /// The serial number in lowercase hex, an even number of digits, without leading zero
    /// bytes (what `openssl x509 -noout -serial` prints, lowercased).
    pub serial_hex: String,
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds (inclusive, as in RFC 5280).
    pub not_after_unix: i64,
    /// The X.509 version: 1 (no extensions, as `openssl x509 -req` makes without an
    /// extension file), 2 or 3.
    pub version: u32,
    /// Whether basicConstraints says CA:TRUE. Always false for v1 certificates.
    pub is_ca: bool,
    /// The subject public key's algorithm and size.
    pub key_type: KeyType,
    /// The SubjectPublicKeyInfo's DER encoding.
    pub spki_der: Vec<u8>,
    /// The subject's attributes that AWS IoT exposes as `iot:Certificate.Subject.<name>`
    /// policy variables, as (AWS name, value) in certificate order: `CommonName`, `Country`,
    /// `Organization`, `OrganizationalUnit`, `State`, `SerialNumber`,
    /// `DistinguishedNameQualifier`, `Title`, `Surname`, `GivenName`, `Initials`, `Pseudonym`,
    /// `GenerationQualifier`. An attribute given twice (two `OU=`) gives two entries; values
    /// that are not readable strings are left out. See
    /// [`ParsedCertificate::policy_variables`].
    pub subject_attributes: Vec<(String, String)>,
    /// The issuer's attributes, like `subject_attributes`.
    pub issuer_attributes: Vec<(String, String)>,
    /// The subjectAltName extension's entries that AWS IoT exposes as
    /// `iot:Certificate.Subject.AlternativeName.<name>`, as (AWS name, value) in certificate
    /// order: `RFC822Name`, `DNSName`, `DirectoryName` (an RFC 4514 string like `subject`),
    /// `UniformResourceIdentifier`, `IPAddress` (`192.0.2.7`, `2001:db8::1`). Empty without
    /// the extension (always for v1 certificates), and when it is present twice or does not
    /// decode.
    pub subject_alt_names: Vec<(String, String)>,
    /// The issuerAltName extension's entries, like `subject_alt_names`.
    pub issuer_alt_names: Vec<(String, String)>,
}

impl ParsedCertificate {
    /// This certificate alone, re-encoded as canonical PEM (64-character lines, `\n` line
    /// ends, a final newline): what DescribeCertificate returns. Made on demand: a connected
    /// device's certificate is kept as DER only.
    pub fn pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.der)
    }

    /// Whether `now_unix` lies within notBefore..=notAfter.
    pub fn is_valid_at(&self, now_unix: i64) -> bool {
        self.not_before_unix <= now_unix && now_unix <= self.not_after_unix
    }
}

/// Parses the first `CERTIFICATE` section of `pem`; text before it and sections after it are
/// ignored.
///
/// Errors: no certificate at all, another kind of PEM section where a certificate was
/// expected (a CSR, a key), malformed PEM (bad base64, missing END line), or DER that is not
/// an X.509 certificate (see [`parse_certificate_der`]).
pub fn parse_certificate_pem(pem: &str) -> Result<ParsedCertificate, PkiError> {
    let der = crate::pem::first_section(pem.as_bytes(), SectionKind::Certificate, PEM_WHAT)?;
    parse_der(&der, DER_WHAT)
}

/// Parses one DER-encoded certificate. Trailing bytes after it are an error, and so is BER
/// or a non-canonical encoding outside the signed part (the id hashes the exact bytes, so
/// one certificate must have one encoding). The signature is not checked here; see
/// [`crate::verify_signed_by`].
pub fn parse_certificate_der(der: &[u8]) -> Result<ParsedCertificate, PkiError> {
    parse_der(der, DER_WHAT)
}

/// Parses every `CERTIFICATE` section of `pem`, in order (a chain is leaf first). Sections of
/// other kinds are skipped; at least one certificate is required.
pub fn parse_certificate_chain_pem(pem: &str) -> Result<Vec<ParsedCertificate>, PkiError> {
    let sections = crate::pem::all_sections(pem.as_bytes(), SectionKind::Certificate, PEM_WHAT)?;
    if sections.is_empty() {
        // Names the section that is there instead, if any.
        crate::pem::first_section(pem.as_bytes(), SectionKind::Certificate, PEM_WHAT)?;
    }
    sections
        .iter()
        .enumerate()
        .map(|(i, der)| parse_der(der, &format!("certificate {} of the chain", i + 1)))
        .collect()
}

const PEM_WHAT: &str = "the certificate PEM";
const DER_WHAT: &str = "the input";

/// Parses `der`; `what` names it in errors.
pub(crate) fn parse_der(der: &[u8], what: &str) -> Result<ParsedCertificate, PkiError> {
    let x509 = parse_x509(der, what)?;
    let tbs = &x509.tbs_certificate;
    let is_ca = match tbs.basic_constraints() {
        Ok(bc) => bc.is_some_and(|bc| bc.value.ca),
        Err(e) => {
            return Err(malformed(
                what,
                format!("bad basicConstraints extension: {e}"),
            ));
        }
    };
    Ok(ParsedCertificate {
        der: der.to_vec(),
        id: CertificateId::of_der(der),
        subject: name::rfc4514(&tbs.subject),
        subject_der: tbs.subject.as_raw().to_vec(),
        issuer: name::rfc4514(&tbs.issuer),
        issuer_der: tbs.issuer.as_raw().to_vec(),
        common_name: name::common_name(&tbs.subject),
        serial_hex: serial_hex(tbs.raw_serial()),
        not_before_unix: tbs.validity.not_before.timestamp(),
        not_after_unix: tbs.validity.not_after.timestamp(),
        version: tbs.version.0 + 1,
        is_ca,
        key_type: key_type(&tbs.subject_pki),
        spki_der: tbs.subject_pki.raw.to_vec(),
        subject_attributes: variables::dn_attributes(&tbs.subject),
        issuer_attributes: variables::dn_attributes(&tbs.issuer),
        subject_alt_names: variables::subject_alt_names(tbs),
        issuer_alt_names: variables::issuer_alt_names(tbs),
    })
}

/// Parses `der` as exactly one X.509 certificate, strictly DER outside the signed part (see
/// [`der::check_signed`]).
pub(crate) fn parse_x509<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    der::check_signed(der).map_err(|reason| malformed(what, reason))?;
    let (_, x509) = X509Certificate::from_der(der)
        .map_err(|e| malformed(what, describe(e, "an X.509 certificate")))?;
    der::check_same_algorithm(der).map_err(|reason| malformed(what, reason))?;
    Ok(x509)
}

/// Explains a parse failure of `kind` ("an X.509 certificate"): a truncated input says so
/// instead of "incomplete".
pub(crate) fn describe(err: nom::Err<X509Error>, kind: &str) -> String {
    match err {
        nom::Err::Incomplete(_)
        | nom::Err::Error(X509Error::Der(der_parser::error::Error::Incomplete(_)))
        | nom::Err::Failure(X509Error::Der(der_parser::error::Error::Incomplete(_))) => {
            "the data ends early (truncated or not DER)".into()
        }
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            format!("it does not decode as {kind} ({e})")
        }
    }
}

fn malformed(what: &str, reason: String) -> PkiError {
    PkiError::MalformedCertificate {
        what: what.into(),
        reason,
    }
}

/// The serial as an unsigned big-endian number in hex: leading zero bytes (the sign byte DER
/// adds when the top bit is set) are dropped, one byte is kept for zero.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[start..])
}

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub(crate) const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// The key type of a SubjectPublicKeyInfo. A key that does not decode is `Other`.
pub(crate) fn key_type(spki: &SubjectPublicKeyInfo<'_>) -> KeyType {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_RSA_ENCRYPTION => match rsa_modulus_bits(spki.subject_public_key.data.as_ref()) {
            Some(bits) => KeyType::Rsa(bits),
            None => KeyType::Other("RSA (malformed key)".into()),
        },
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => KeyType::EcP256,
                Some("1.3.132.0.34") => KeyType::EcP384,
                Some("1.3.132.0.35") => KeyType::EcP521,
                Some(other) => KeyType::Other(format!("EC curve {other}")),
                None => KeyType::Other("EC without a named curve".into()),
            }
        }
        "1.2.840.113549.1.1.10" => KeyType::Other("RSASSA-PSS".into()),
        "1.3.101.112" => KeyType::Other("Ed25519".into()),
        "1.3.101.113" => KeyType::Other("Ed448".into()),
        "1.2.840.10040.4.1" => KeyType::Other("DSA".into()),
        other => KeyType::Other(format!("public key algorithm {other}")),
    }
}

/// The bit length of an RSAPublicKey's modulus (`SEQUENCE { INTEGER n, INTEGER e }`).
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<u32> {
    let (_, key) = der_parser::der::parse_der_sequence(rsa_public_key).ok()?;
    let items = key.as_sequence().ok()?;
    let [modulus, exponent] = items.as_slice() else {
        return None;
    };
    exponent.as_slice().ok()?;
    let modulus = modulus.as_slice().ok()?;
    let first = modulus.iter().position(|&b| b != 0)?;
    let significant = &modulus[first..];
    let bits =
        u32::try_from(significant.len()).ok()?.checked_mul(8)? - significant[0].leading_zeros();
    Some(bits)
}
