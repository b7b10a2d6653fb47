//! CA proof of possession for RegisterCACertificate.

use crate::cert::ParsedCertificate;
use crate::verify::verify_signed_by;

/// Why a CA certificate and its verification certificate do not prove possession of the
/// CA's private key. Each maps to one AWS error: `NotACa`, `NotSignedByCa` and `Expired` to
/// CertificateValidationException, `CodeMismatch` to RegistrationCodeValidationException.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PossessionError {
    /// The CA certificate has no basicConstraints extension with CA:TRUE (v1 certificates
    /// have no extensions at all, so they are refused too, as AWS does).
    #[error("The CA certificate does not have the basicConstraints extension as true")]
    NotACa,
    /// The verification certificate's subject common name is not the registration code.
    #[error(
        "The verification certificate's common name {} is not the registration code; get \
         the code with GetRegistrationCode and use it as the CN of the verification \
         certificate",
        match found { Some(cn) => format!("({cn:?})"), None => "(none)".to_owned() }
    )]
    CodeMismatch {
        /// The common name the verification certificate has, if any.
        found: Option<String>,
    },
    /// The verification certificate's signature does not verify with the CA certificate's
    /// public key (or uses an unsupported signature algorithm).
    #[error("The verification certificate is not signed by the private key of the CA certificate")]
    NotSignedByCa,
    /// The CA certificate or the verification certificate is expired or not yet valid.
    #[error("The CA certificate or the verification certificate is expired or not yet valid")]
    Expired,
}

/// Checks, in this order, that `ca` is a CA (basicConstraints CA:TRUE), that
/// `verification`'s subject CN is exactly `registration_code`, that `verification` is signed
/// by `ca`'s key, and that both certificates are valid at `now_unix`.
pub fn check_proof_of_possession(
    ca: &ParsedCertificate,
    verification: &ParsedCertificate,
    registration_code: &str,
    now_unix: i64,
) -> Result<(), PossessionError> {
    if !ca.is_ca {
        return Err(PossessionError::NotACa);
    }
    if verification.common_name.as_deref() != Some(registration_code) {
        return Err(PossessionError::CodeMismatch {
            found: verification.common_name.clone(),
        });
    }
    verify_signed_by(verification, ca).map_err(|_| PossessionError::NotSignedByCa)?;
    if !ca.is_valid_at(now_unix) || !verification.is_valid_at(now_unix) {
        return Err(PossessionError::Expired);
    }
    Ok(())
}
