//! The development PKI `ferrule serve` uses when no `--tls-cert/--tls-key` is given.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{CertifiedIssuer, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;
use crate::files::{self, Secret, exists, write_files};
use crate::issue::{self, LeafUsage, generate_error};
use crate::pem;

const CA_CERT_FILE: &str = "server-ca.pem";
const CA_KEY_FILE: &str = "server-ca.key";
const SERVER_CERT_FILE: &str = "server.pem";
const SERVER_KEY_FILE: &str = "server.key";

const CA_CN: &str = "Ferrule development CA";
const CA_LIFETIME: Duration = Duration::days(3650);
const SERVER_CN: &str = "localhost";
const SERVER_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// The longest lifetime Apple platforms accept for a TLS server certificate.
const SERVER_LIFETIME: Duration = Duration::days(825);

/// The development PKI: a server CA and a server certificate for localhost signed by it, kept
/// in the data dir so clients can trust `DIR/server-ca.pem` once and keep trusting it across
/// restarts.
///
/// The fields hold PEM text exactly as stored in the files.
#[derive(Clone, PartialEq, Eq)]
pub struct DevPki {
    /// The CA certificate (`DIR/server-ca.pem`): what clients put in their trust store.
    pub ca_cert_pem: String,
    /// The server certificate (`DIR/server.pem`), signed by the CA.
    pub server_cert_pem: String,
    /// The server certificate's private key (`DIR/server.key`), PKCS#8.
    pub server_key_pem: String,
}

impl DevPki {
    /// Loads `DIR/server-ca.pem`, `DIR/server-ca.key`, `DIR/server.pem` and `DIR/server.key`
    /// if present; otherwise creates a server CA (ECDSA P-256, CN "Ferrule development CA",
    /// 10 years) and a server certificate signed by it (ECDSA P-256, CN "localhost", SANs DNS
    /// localhost, IP 127.0.0.1, IP ::1, EKU serverAuth, 825 days), writes all four files (keys
    /// with mode 0600), and returns them. Idempotent: a second call loads the same files.
    ///
    /// `dir` is created if missing. Loaded files are checked: each key must belong to its
    /// certificate. If only the server certificate and key are missing, a new server
    /// certificate is issued by the existing CA, so clients keep trusting it. Any other mix of
    /// present and missing files is [`PkiError::IncompleteDevPki`]: nothing is overwritten.
    /// Files are written to temporary names and renamed into place, so a crash never leaves a
    /// half-written file behind.
    pub fn load_or_create(dir: &Path) -> Result<DevPki, PkiError> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            operation: "create the directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let files = Files::new(dir);
        let ca = (exists(&files.ca_cert)?, exists(&files.ca_key)?);
        let server = (exists(&files.server_cert)?, exists(&files.server_key)?);
        match (ca, server) {
            ((true, true), (true, true)) => files.load(),
            ((false, false), (false, false)) => files.create(OffsetDateTime::now_utc()),
            ((true, true), (false, false)) => files.reissue_server(OffsetDateTime::now_utc()),
            _ => Err(files.incomplete(ca, server)),
        }
    }

    /// The server certificate followed by the CA certificate, for `ServerConfig`.
    pub fn server_chain(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let mut chain = pem::parse_cert_chain(
            self.server_cert_pem.as_bytes(),
            "the development server certificate",
        )?;
        let ca = pem::parse_cert_chain(self.ca_cert_pem.as_bytes(), "the development CA")?;
        for cert in ca {
            if !chain.contains(&cert) {
                chain.push(cert);
            }
        }
        Ok(chain)
    }

    /// The server certificate's private key, for `ServerConfig`.
    pub fn server_key(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        pem::parse_private_key(self.server_key_pem.as_bytes(), "the development server key")
    }
}

/// Keeps the private key out of logs.
impl fmt::Debug for DevPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevPki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .field("server_key_pem", &"<redacted>")
            .finish()
    }
}

/// The four file paths of a development PKI.
struct Files {
    dir: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Self {
        Files {
            dir: dir.to_path_buf(),
            ca_cert: dir.join(CA_CERT_FILE),
            ca_key: dir.join(CA_KEY_FILE),
            server_cert: dir.join(SERVER_CERT_FILE),
            server_key: dir.join(SERVER_KEY_FILE),
        }
    }

    fn load(&self) -> Result<DevPki, PkiError> {
        let (ca_cert_pem, _) = files::load_pair(&self.ca_cert, &self.ca_key)?;
        let (server_cert_pem, server_key_pem) =
            files::load_pair(&self.server_cert, &self.server_key)?;
        Ok(DevPki {
            ca_cert_pem,
            server_cert_pem,
            server_key_pem,
        })
    }

    fn create(&self, now: OffsetDateTime) -> Result<DevPki, PkiError> {
        let key = issue::new_key("the development CA")?;
        let params = issue::ca_params(CA_CN, now, CA_LIFETIME);
        let ca = CertifiedIssuer::self_signed(params, key)
            .map_err(|source| generate_error("self-sign the development CA".into(), source))?;
        let server = issue_server(&ca, now)?;
        let ca_cert_pem = ca.pem();
        let ca_key_pem = ca.key().serialize_pem();
        // Keys first: a crash between renames then leaves a key without its certificate, which
        // the next start reports instead of silently pairing a certificate with a stale key.
        write_files(
            &self.dir,
            &[
                (&self.ca_key, &ca_key_pem, Secret::Yes),
                (&self.server_key, &server.key_pem, Secret::Yes),
                (&self.ca_cert, &ca_cert_pem, Secret::No),
                (&self.server_cert, &server.cert_pem, Secret::No),
            ],
        )?;
        Ok(DevPki {
            ca_cert_pem,
            server_cert_pem: server.cert_pem,
            server_key_pem: server.key_pem,
        })
    }

    fn reissue_server(&self, now: OffsetDateTime) -> Result<DevPki, PkiError> {
        let (ca_cert_pem, ca_key_pem) = files::load_pair(&self.ca_cert, &self.ca_key)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|source| {
            generate_error(format!("load the CA key {}", self.ca_key.display()), source)
        })?;
        let ca = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(|source| {
            generate_error(format!("load the CA {}", self.ca_cert.display()), source)
        })?;
        let server = issue_server(&ca, now)?;
        write_files(
            &self.dir,
            &[
                (&self.server_key, &server.key_pem, Secret::Yes),
                (&self.server_cert, &server.cert_pem, Secret::No),
            ],
        )?;
        Ok(DevPki {
            ca_cert_pem,
            server_cert_pem: server.cert_pem,
            server_key_pem: server.key_pem,
        })
    }

    /// Names one file that exists and one that does not, from the same pair when a pair is
    /// split.
    fn incomplete(&self, ca: (bool, bool), server: (bool, bool)) -> PkiError {
        let (present, missing) = match (ca, server) {
            ((true, false), _) => (&self.ca_cert, &self.ca_key),
            ((false, true), _) => (&self.ca_key, &self.ca_cert),
            (_, (true, false)) => (&self.server_cert, &self.server_key),
            (_, (false, true)) => (&self.server_key, &self.server_cert),
            // Both pairs are whole or empty, and the CA pair is empty: the server pair exists.
            _ => (&self.server_cert, &self.ca_cert),
        };
        PkiError::IncompleteDevPki {
            dir: self.dir.clone(),
            present: present.clone(),
            missing: missing.clone(),
        }
    }
}

fn issue_server(ca: &Issuer<'_, KeyPair>, now: OffsetDateTime) -> Result<issue::Issued, PkiError> {
    issue::issue_leaf(
        ca,
        LeafUsage::Server,
        SERVER_CN,
        SERVER_SANS,
        now,
        SERVER_LIFETIME,
    )
}
