//! The one error type of this crate.

use std::path::PathBuf;

use crate::cert::KeyType;

/// Why loading, parsing, checking or issuing certificates and keys failed.
///
/// Every variant names the file (or, for PEM held in memory, what it is) and the operation.
/// The variants about parsing and checking certificates and CSRs (from [`PkiError::Pem`]
/// on) describe the caller's input: their messages are written for an API user, because the
/// control plane returns them as `CertificateValidationException` messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file or directory could not be read, written or created.
    #[error("cannot {operation} {}: {source}", path.display())]
    Io {
        /// What was being done, for example "read" or "write".
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The input has PEM markers but a malformed section (bad base64, missing END line).
    #[error("{what} is not valid PEM: {source}")]
    Pem {
        /// The file path, or a description of in-memory PEM.
        what: String,
        /// What the PEM parser said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// No `CERTIFICATE` section was found (an empty file, a key, or not PEM at all).
    #[error(
        "{what} contains no certificate (expected one or more \"-----BEGIN CERTIFICATE-----\" \
         sections)"
    )]
    NoCertificate {
        /// The file path, or a description of in-memory PEM.
        what: String,
    },
    /// No private key section was found.
    #[error(
        "{what} contains no private key (expected a PKCS#8 \"PRIVATE KEY\", SEC1 \"EC PRIVATE \
         KEY\" or PKCS#1 \"RSA PRIVATE KEY\" section)"
    )]
    NoPrivateKey {
        /// The file path, or a description of in-memory PEM.
        what: String,
    },
    /// The key is encrypted with a passphrase, which Ferrule does not ask for.
    #[error(
        "{what} holds an encrypted private key; decrypt it first, for example with \
         `openssl pkey -in KEY -out DECRYPTED_KEY`"
    )]
    EncryptedPrivateKey {
        /// The file path, or a description of in-memory PEM.
        what: String,
    },
    /// The key parsed but the TLS provider cannot sign with it (unsupported algorithm or curve).
    #[error("{what} holds a private key that cannot be used for TLS: {source}")]
    UnusableKey {
        /// The file path, or a description of in-memory PEM.
        what: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// A private key does not belong to the certificate it is paired with.
    #[error("the private key in {key} does not belong to the certificate in {cert}: {source}")]
    KeyMismatch {
        /// The certificate's file path or description.
        cert: String,
        /// The key's file path or description.
        key: String,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// Some of the development PKI files exist and others do not, so Ferrule neither loads
    /// them nor overwrites them.
    #[error(
        "the development PKI in {} is incomplete: {} exists but {} does not; restore the \
         missing file, or delete server-ca.pem, server-ca.key, server.pem and server.key to \
         have new ones generated",
        dir.display(),
        present.display(),
        missing.display()
    )]
    IncompleteDevPki {
        /// The directory holding the files.
        dir: PathBuf,
        /// A file that exists.
        present: PathBuf,
        /// A file that is missing.
        missing: PathBuf,
    },
    /// Generating a key or building or signing a certificate failed (for example an invalid
    /// subject alternative name).
    #[error("cannot {operation}: {source}")]
    Generate {
        /// What was being generated.
        operation: String,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// The issuing CA's certificate exists and its key does not, or the other way round, so
    /// Ferrule neither loads them nor overwrites them.
    #[error(
        "the issuing CA in {} is incomplete: {} exists but {} does not; restore the missing \
         file, or delete issuing-ca.pem and issuing-ca.key to have a new issuing CA generated \
         (certificates it issued before will no longer chain to it)",
        dir.display(),
        present.display(),
        missing.display()
    )]
    IncompleteIssuer {
        /// The directory holding the files.
        dir: PathBuf,
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A PEM section of another kind was found where a certificate or a CSR was expected,
    /// for example a CSR passed as a certificate.
    #[error("{what} holds a \"{found}\" PEM section where a \"{expected}\" was expected")]
    WrongPemSection {
        /// A description of the input.
        what: String,
        /// The label that was expected, such as `CERTIFICATE`.
        expected: &'static str,
        /// The label that was found, such as `CERTIFICATE REQUEST`.
        found: String,
    },
    /// No `CERTIFICATE REQUEST` section was found.
    #[error(
        "{what} contains no certificate signing request (expected a \"-----BEGIN CERTIFICATE \
         REQUEST-----\" section)"
    )]
    NoCsr {
        /// A description of the input.
        what: String,
    },
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("{what} is not a valid X.509 certificate: {reason}")]
    MalformedCertificate {
        /// A description of the input.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes are not a DER-encoded PKCS#10 certificate signing request.
    #[error("{what} is not a valid certificate signing request: {reason}")]
    MalformedCsr {
        /// A description of the input.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signature algorithm is one Ferrule (like AWS IoT) does not accept, such as SHA-1.
    #[error(
        "{what} is signed with {algorithm}, which is not supported; use RSA (PKCS#1 v1.5 or \
         PSS) with SHA-256, SHA-384 or SHA-512, or ECDSA with SHA-256, SHA-384 or SHA-512"
    )]
    UnsupportedSignatureAlgorithm {
        /// A description of the signed object.
        what: String,
        /// The algorithm, by name or OID.
        algorithm: String,
    },
    /// The signature does not verify with the signer's public key.
    #[error("the signature of {what} does not verify with the public key of {signer}")]
    BadSignature {
        /// A description of the signed object.
        what: String,
        /// A description of the supposed signer.
        signer: String,
    },
    /// The key type is one Ferrule (like AWS IoT) does not accept.
    #[error(
        "{what} has a {key} key, which is not supported; use an RSA key of 2048 to 8192 bits \
         or an EC key on P-256, P-384 or P-521"
    )]
    UnsupportedKey {
        /// A description of the certificate or CSR.
        what: String,
        /// The key that was found.
        key: KeyType,
    },
    /// The subject of a CSR cannot be copied into a certificate exactly (for example a
    /// multi-valued RDN or an attribute type that appears twice).
    #[error("cannot issue a certificate for {what}: {reason}")]
    UnsupportedSubject {
        /// A description of the CSR.
        what: String,
        /// What about the subject is not supported.
        reason: String,
    },
    /// A time given as Unix seconds is outside the range certificates can express.
    #[error("the time {now_unix} (Unix seconds) cannot be used as a certificate validity date")]
    InvalidTime {
        /// The time given.
        now_unix: i64,
    },
}
