//! Certificate signing requests for CreateCertificateFromCsr.

use rustls::pki_types::pem::SectionKind;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::cert::{self, KeyType};
use crate::der;
use crate::error::PkiError;
use crate::name;
use crate::verify::{self, Signed};

/// A PKCS#10 certificate signing request whose self-signature has been verified and whose
/// key is one AWS accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    /// The DER encoding, exactly as given.
    pub der: Vec<u8>,
    /// The requested subject as an RFC 4514 string (see [`crate::ParsedCertificate::subject`]).
    pub subject: String,
    /// The first common name of the subject, if any.
    pub common_name: Option<String>,
    /// The public key's algorithm and size.
    pub key_type: KeyType,
    /// The SubjectPublicKeyInfo's DER encoding.
    pub spki_der: Vec<u8>,
}

/// Parses the first `CERTIFICATE REQUEST` section of `pem` (the legacy label `NEW
/// CERTIFICATE REQUEST` too), refuses keys AWS refuses (RSA under 2048 bits or over 8192,
/// EC curves other than P-256/P-384/P-521, any other algorithm), and verifies the CSR's
/// self-signature.
pub fn parse_csr_pem(pem: &str) -> Result<ParsedCsr, PkiError> {
    // Some tools (Java keytool, old OpenSSL configurations) still write the Netscape label.
    let pem = pem.replace(
        "-----BEGIN NEW CERTIFICATE REQUEST-----",
        "-----BEGIN CERTIFICATE REQUEST-----",
    );
    let pem = pem.replace(
        "-----END NEW CERTIFICATE REQUEST-----",
        "-----END CERTIFICATE REQUEST-----",
    );
    let der = crate::pem::first_section(pem.as_bytes(), SectionKind::Csr, PEM_WHAT)?;
    parse_csr_der(&der)
}

/// [`parse_csr_pem`] for one DER-encoded CSR. Trailing bytes after it are an error.
pub fn parse_csr_der(der: &[u8]) -> Result<ParsedCsr, PkiError> {
    let csr = parse_request(der)?;
    let info = &csr.certification_request_info;
    let key_type = cert::key_type(&info.subject_pki);
    let supported = match key_type {
        KeyType::Rsa(bits) => (2048..=8192).contains(&bits),
        KeyType::EcP256 | KeyType::EcP384 | KeyType::EcP521 => true,
        KeyType::Other(_) => false,
    };
    if !supported {
        return Err(PkiError::UnsupportedKey {
            what: WHAT.into(),
            key: key_type,
        });
    }
    verify::verify(
        &Signed {
            message: info.raw,
            algorithm: &csr.signature_algorithm,
            signature: csr.signature_value.data.as_ref(),
            what: WHAT,
        },
        &info.subject_pki,
        "its own subject (the CSR was altered, or not signed with the private key of the \
         public key it holds)",
    )?;
    Ok(ParsedCsr {
        der: der.to_vec(),
        subject: name::rfc4514(&info.subject),
        common_name: name::common_name(&info.subject),
        key_type,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

const PEM_WHAT: &str = "the certificate signing request PEM";
const WHAT: &str = "the certificate signing request";

/// Parses `der` as exactly one PKCS#10 request, strictly DER outside the signed part,
/// without checking its signature.
pub(crate) fn parse_request(der: &[u8]) -> Result<X509CertificationRequest<'_>, PkiError> {
    let malformed = |reason: String| PkiError::MalformedCsr {
        what: "the input".into(),
        reason,
    };
    der::check_signed(der).map_err(malformed)?;
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| malformed(cert::describe(e, "a PKCS#10 certificate signing request")))?;
    Ok(csr)
}
