//! A throwaway CA for tests and the CLI.

use std::fmt;

use rcgen::{CertifiedIssuer, KeyPair};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;
use crate::issue::{self, LeafUsage, generate_error};

/// How long test certificates stay valid: long enough for any test run, short enough that a
/// leaked one is soon useless.
const LIFETIME: Duration = Duration::days(365);

/// A throwaway CA (ECDSA P-256, held in memory only) that issues leaf certificates: server
/// certificates for tests of TLS listeners and client certificates for device tests.
pub struct TestCa {
    cn: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    /// Creates a self-signed CA whose subject is `CN=<cn>`, valid from an hour ago for a year.
    pub fn new(cn: &str) -> Result<Self, PkiError> {
        let key = issue::new_key(&format!("the test CA {cn:?}"))?;
        let params = issue::ca_params(cn, OffsetDateTime::now_utc(), LIFETIME);
        let ca = CertifiedIssuer::self_signed(params, key)
            .map_err(|source| generate_error(format!("self-sign the test CA {cn:?}"), source))?;
        Ok(TestCa {
            cn: cn.to_owned(),
            ca,
        })
    }

    /// The CA certificate in PEM, for a client's or server's trust store.
    pub fn cert_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// The CA's private key in PKCS#8 PEM (for tests that sign with the CA themselves, such as
    /// proof-of-possession checks).
    pub fn key_pem(&self) -> String {
        self.ca.key().serialize_pem()
    }

    /// Issues a server certificate (EKU serverAuth) for `sans`, DNS names or IP addresses; its
    /// CN is the first of them. Returns the certificate PEM and its PKCS#8 key PEM.
    pub fn issue_server(&self, sans: &[&str]) -> Result<(String, String), PkiError> {
        let cn = sans.first().copied().unwrap_or("Ferrule test server");
        self.issue(LeafUsage::Server, cn, sans)
    }

    /// Issues a client certificate (EKU clientAuth) whose subject is `CN=<cn>`. Returns the
    /// certificate PEM and its PKCS#8 key PEM.
    pub fn issue_client(&self, cn: &str) -> Result<(String, String), PkiError> {
        self.issue(LeafUsage::Client, cn, &[])
    }

    fn issue(
        &self,
        usage: LeafUsage,
        cn: &str,
        sans: &[&str],
    ) -> Result<(String, String), PkiError> {
        let issued = issue::issue_leaf(
            &self.ca,
            usage,
            cn,
            sans,
            OffsetDateTime::now_utc(),
            LIFETIME,
        )?;
        Ok((issued.cert_pem, issued.key_pem))
    }
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("cn", &self.cn)
            .finish_non_exhaustive()
    }
}
