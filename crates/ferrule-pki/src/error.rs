//! The one error type of this crate.

use std::path::PathBuf;

/// Why loading, checking or issuing certificates and keys failed.
///
/// Every variant names the file (or, for PEM held in memory, what it is) and the operation.
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
}
