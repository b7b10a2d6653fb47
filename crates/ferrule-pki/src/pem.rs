//! PEM certificate chains and private keys, from files and from memory.

use std::path::Path;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::error::PkiError;

/// Reads a PEM file of one or more certificates, leaf first (as `--tls-cert` takes it).
///
/// Errors name the file: missing or unreadable, malformed PEM, or no certificate in it.
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    parse_cert_chain(&read(path)?, &path.display().to_string())
}

/// Reads the first private key of a PEM file, in PKCS#8 (`PRIVATE KEY`), SEC1
/// (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) form (as `--tls-key` takes it), and checks
/// that the TLS provider can sign with it.
///
/// Errors name the file: missing or unreadable, malformed PEM, no key, an encrypted key, or a
/// key type TLS cannot use.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    parse_private_key(&read(path)?, &path.display().to_string())
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Io {
        operation: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// `what` names the input in errors: a file path, or a description of in-memory PEM.
pub(crate) fn parse_cert_chain(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| pem_error(what, source))?;
    if chain.is_empty() {
        return Err(PkiError::NoCertificate { what: what.into() });
    }
    Ok(chain)
}

pub(crate) fn parse_private_key(
    pem: &[u8],
    what: &str,
) -> Result<PrivateKeyDer<'static>, PkiError> {
    // An encrypted key would otherwise be reported as "no private key" or as bad base64.
    if contains(pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(pem, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(PkiError::EncryptedPrivateKey { what: what.into() });
    }
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => PkiError::NoPrivateKey { what: what.into() },
        source => pem_error(what, source),
    })?;
    provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|source| PkiError::UnusableKey {
            what: what.into(),
            source,
        })?;
    Ok(key)
}

/// Checks that `key` belongs to the leaf of `chain`.
pub(crate) fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_what: &str,
    key_what: &str,
) -> Result<(), PkiError> {
    CertifiedKey::from_der(chain.to_vec(), key.clone_key(), &provider())
        .map(drop)
        .map_err(|source| PkiError::KeyMismatch {
            cert: cert_what.into(),
            key: key_what.into(),
            source,
        })
}

/// The same provider the broker's `ServerConfig` uses, so a key accepted here is accepted there.
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn pem_error(what: &str, source: pem::Error) -> PkiError {
    PkiError::Pem {
        what: what.into(),
        source,
    }
}

/// The DER of the first section of kind `wanted` in `pem`; `what` names the input in errors.
///
/// Sections of other kinds before it are skipped, but if there is no section of the wanted
/// kind the first other one is named in the error (a CSR passed as a certificate says so,
/// rather than "no certificate"). Malformed PEM before the wanted section is an error.
pub(crate) fn first_section(
    pem: &[u8],
    wanted: SectionKind,
    what: &str,
) -> Result<Vec<u8>, PkiError> {
    let mut other = None;
    for section in pem::SliceIter::<(SectionKind, Vec<u8>)>::new(pem) {
        let (kind, der) = section.map_err(|source| pem_error(what, source))?;
        if kind == wanted {
            return Ok(der);
        }
        other.get_or_insert(kind);
    }
    Err(match other {
        Some(found) => PkiError::WrongPemSection {
            what: what.into(),
            expected: label(wanted),
            found: label(found).into(),
        },
        None if wanted == SectionKind::Csr => PkiError::NoCsr { what: what.into() },
        None => PkiError::NoCertificate { what: what.into() },
    })
}

/// The DER of every section of kind `wanted` in `pem`, in order; other kinds are skipped.
pub(crate) fn all_sections(
    pem: &[u8],
    wanted: SectionKind,
    what: &str,
) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut found = Vec::new();
    for section in pem::SliceIter::<(SectionKind, Vec<u8>)>::new(pem) {
        let (kind, der) = section.map_err(|source| pem_error(what, source))?;
        if kind == wanted {
            found.push(der);
        }
    }
    Ok(found)
}

/// The PEM label of a section kind, as it appears after `-----BEGIN `.
pub(crate) fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        _ => "unknown",
    }
}

/// Encodes `der` as one PEM section: 64-character base64 lines, `\n` line ends, a final
/// newline (the form openssl writes).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| ALPHABET[((n >> shift) & 0x3f) as usize];
        b64.push(sextet(18));
        b64.push(sextet(12));
        b64.push(if chunk.len() > 1 { sextet(6) } else { b'=' });
        b64.push(if chunk.len() > 2 { sextet(0) } else { b'=' });
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        // The alphabet is ASCII.
        out.extend(line.iter().map(|&c| char::from(c)));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_pem_has_no_certificate() {
        let err = parse_cert_chain(b"hello\nworld\n", "the input").expect_err("no cert");
        assert!(matches!(err, PkiError::NoCertificate { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("the input contains no certificate")
        );
    }

    #[test]
    fn bad_base64_is_a_pem_error() {
        let pem = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = parse_cert_chain(pem, "x").expect_err("bad base64");
        assert!(matches!(err, PkiError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn missing_end_line_is_a_pem_error() {
        let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = parse_cert_chain(pem, "x").expect_err("truncated");
        assert!(matches!(err, PkiError::Pem { .. }), "{err:?}");
    }

    #[test]
    fn encrypted_keys_are_named_as_such() {
        let pkcs8 =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let legacy = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        for pem in [&pkcs8[..], &legacy[..]] {
            let err = parse_private_key(pem, "k").expect_err("encrypted");
            assert!(
                matches!(err, PkiError::EncryptedPrivateKey { .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn encode_round_trips_through_the_pem_parser() {
        for len in 0..200usize {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let text = encode("CERTIFICATE", &der);
            assert!(text.lines().all(|l| l.len() <= 64));
            let back = first_section(text.as_bytes(), SectionKind::Certificate, "x");
            assert_eq!(back.expect("round trip"), der, "len {len}");
        }
        assert_eq!(
            encode("X", b"foobar"),
            "-----BEGIN X-----\nZm9vYmFy\n-----END X-----\n"
        );
        assert_eq!(
            encode("X", b"fooba"),
            "-----BEGIN X-----\nZm9vYmE=\n-----END X-----\n"
        );
    }

    #[test]
    fn a_certificate_is_not_a_key() {
        let cert = crate::TestCa::new("c").expect("ca").cert_pem();
        let err = parse_private_key(cert.as_bytes(), "k").expect_err("no key");
        assert!(matches!(err, PkiError::NoPrivateKey { .. }), "{err:?}");
    }
}
