//! Temporary credentials for a function's execution role, as STS `AssumeRole` would issue them:
//! the service stores them in the registry, hands them to the function's workers, and the
//! control plane accepts them and evaluates the role's policies.

use std::fmt;

use ferrule_store::IamSessionRecord;

/// Issued credentials. `Debug` leaves the secrets out.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Fresh random credentials in AWS's shapes: `ASIA` and 16 upper-case alphanumerics, a
    /// 40-character secret, a long token.
    pub(crate) fn generate() -> Self {
        Self {
            access_key_id: format!("ASIA{}", ferrule_pki::random_hex(8).to_ascii_uppercase()),
            secret_access_key: ferrule_pki::random_hex(20),
            session_token: ferrule_pki::random_hex(96),
        }
    }

    /// The registry record of these credentials for `role_name`, valid from `now_ms` until
    /// `expires_ms`.
    pub(crate) fn record(
        &self,
        role_name: &str,
        session_name: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> IamSessionRecord {
        IamSessionRecord {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
            role_name: role_name.to_owned(),
            session_name: session_name.to_owned(),
            created_ms: now_ms,
            expires_ms,
        }
    }
}

/// The role name in a role ARN: the last segment after `role/`
/// (`arn:aws:iam::123456789012:role/service/my-role` → `my-role`). A bare name is taken as
/// is.
pub(crate) fn role_name(role_arn: &str) -> &str {
    let path = match role_arn.split_once(":role/") {
        Some((_, path)) => path,
        None => role_arn.strip_prefix("role/").unwrap_or(role_arn),
    };
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/lambda-role"),
            "lambda-role"
        );
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/service-role/a/lambda-role"),
            "lambda-role"
        );
        assert_eq!(role_name("lambda-role"), "lambda-role");
    }

    #[test]
    fn credentials_have_aws_shapes() {
        let c = Credentials::generate();
        assert_eq!(c.access_key_id.len(), 20);
        assert!(c.access_key_id.starts_with("ASIA"));
        assert!(
            c.access_key_id
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
        );
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(c.session_token.len() >= 100);
        assert_ne!(Credentials::generate().access_key_id, c.access_key_id);
        assert!(!format!("{c:?}").contains(&c.secret_access_key));
    }
}
