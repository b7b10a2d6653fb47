//! The registry's error type: what went wrong, sorted by who must act.

use crate::error::StoreError;
use crate::registry::records::ParseEnumError;

/// Why a registry operation was refused or failed.
///
/// Every variant but [`RegistryError::Backend`] is the caller's to handle and maps one to one
/// onto an AWS IoT error code (named on each variant); the messages follow AWS's wording so
/// the control plane can pass them through. [`RegistryError::Backend`] is an internal failure
/// (the database), which the API reports as `InternalFailureException`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The resource does not exist (`ResourceNotFoundException`).
    #[error("{kind} '{id}' does not exist")]
    NotFound {
        /// What was looked for: "CA certificate", "Certificate", "Policy", "Policy version",
        /// "Thing", "Rule", "Role", "User", "Function", "Permission", "Session", ...
        kind: &'static str,
        /// Its id or name (for a policy version: `name:version`).
        id: String,
    },
    /// A resource with this id already exists (`ResourceAlreadyExistsException`).
    #[error("{kind} '{id}' already exists")]
    AlreadyExists {
        /// What was being created, as in [`RegistryError::NotFound`].
        kind: &'static str,
        /// Its id or name.
        id: String,
    },
    /// The resource is still in use (`DeleteConflictException`); the message says by what.
    #[error("{0}")]
    DeleteConflict(String),
    /// The policy already has 5 versions (`VersionsLimitExceededException`).
    #[error("{0}")]
    VersionsLimitExceeded(String),
    /// The caller's `expectedVersion` is not the current version (`VersionConflictException`).
    #[error("{0}")]
    VersionConflict(String),
    /// A per-resource quota would be exceeded (`LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// The certificate's status forbids the operation (`CertificateStateException`).
    #[error("{0}")]
    CertificateState(String),
    /// The request itself is invalid: a malformed page marker, a zero page size, an exclusive
    /// principal attached elsewhere (`InvalidRequestException`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The database failed (`InternalFailureException`); the operator has to look.
    #[error(transparent)]
    Backend(#[from] StoreError),
}

impl From<ParseEnumError> for RegistryError {
    fn from(e: ParseEnumError) -> Self {
        RegistryError::InvalidRequest(e.to_string())
    }
}
