//! Certificate ids and random tokens.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The id AWS IoT gives a certificate (device or CA): the lowercase hex SHA-256 of its DER
/// encoding, 64 characters, which is what `openssl x509 -noout -fingerprint -sha256` prints
/// without the colons. It is also the last segment of the certificate's ARN.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertificateId(String);

impl CertificateId {
    /// The id of the certificate whose DER encoding is `der`.
    pub fn of_der(der: &[u8]) -> CertificateId {
        CertificateId(hex(digest::digest(&digest::SHA256, der).as_ref()))
    }

    /// The id as 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as 64 lowercase hex characters, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CertificateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CertificateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateId({})", self.0)
    }
}

impl AsRef<str> for CertificateId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Parses an id given by a client (a path segment such as `/certificates/{certificateId}`):
/// exactly 64 hex digits in either case, normalised to lowercase. AWS's model pattern,
/// `(0x)?[a-fA-F0-9]+` with length 64, admits "0x" plus 62 digits, which can never be a
/// SHA-256, so the prefix is refused.
impl FromStr for CertificateId {
    type Err = CertificateIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CertificateId(s.to_ascii_lowercase()))
        } else {
            Err(CertificateIdError {
                value: s.chars().take(100).collect(),
            })
        }
    }
}

/// A string that is not a certificate id. The control plane answers it with
/// `InvalidRequestException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a certificate id: a certificate id is 64 hexadecimal characters (the \
     SHA-256 of the certificate's DER encoding)"
)]
pub struct CertificateIdError {
    /// The rejected input (at most its first 100 characters).
    pub value: String,
}

/// `bytes` random bytes from the operating system's generator, as `2 * bytes` lowercase hex
/// characters: registration codes (32 bytes, 64 characters, as AWS's), secrets and ids.
pub fn random_hex(bytes: usize) -> String {
    hex(&random_bytes(bytes))
}

/// `len` random bytes from the operating system's generator.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut buf)
        // aws-lc's generator fails only if the kernel has no entropy source at all, in which
        // case nothing secure can be done and TLS would not work either.
        .expect("the operating system provides random bytes");
    buf
}

/// Lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let upper = "AB".repeat(32);
        let id: CertificateId = upper.parse().expect("64 hex digits");
        assert_eq!(id.as_str(), "ab".repeat(32));
        assert_eq!(id.to_string(), "ab".repeat(32));
    }

    #[test]
    fn refuses_wrong_lengths_prefixes_and_non_hex() {
        for bad in [
            String::new(),
            "ab".repeat(31),
            "ab".repeat(33),
            format!("0x{}", "a".repeat(62)),
            format!("0x{}", "a".repeat(64)),
            format!("{}g", "a".repeat(63)),
            format!("{}é", "a".repeat(62)),
        ] {
            let err = bad.parse::<CertificateId>().expect_err(&bad);
            assert!(err.to_string().contains("64 hexadecimal"), "{err}");
        }
    }

    #[test]
    fn id_of_der_is_sha256_hex() {
        // SHA-256 of the empty string.
        assert_eq!(
            CertificateId::of_der(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn random_hex_has_the_asked_length_and_differs() {
        let a = random_hex(32);
        let b = random_hex(32);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert_eq!(random_hex(0), "");
    }
}
