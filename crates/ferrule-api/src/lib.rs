//! Ferrule's control plane: the AWS IoT API (`iot`, rest-json) over HTTP, so the real
//! `aws iot ... --endpoint-url http://ADDR` and boto3 work against Ferrule unmodified.
//!
//! What it does: every request is authenticated with AWS Signature Version 4 ([`sigv4`]) and
//! authorized (see "Who may call" below), routed by method and raw path exactly as botocore's
//! model places members (path labels, query string, headers, JSON body), executed against the
//! [`ferrule_store::Registry`], and answered with botocore's wire shapes: epoch-second
//! timestamps, AWS's pagination per operation, and AWS's error codes and HTTP statuses
//! ([`ApiError`], mapped to HTTP in one place). The registry itself publishes every change on
//! its change feed, so the broker learns of API changes without this crate knowing it exists.
//!
//! Implemented: registration codes; CA certificates with proof of possession; device
//! certificates (register with or without a CA, create from a CSR or with new keys, status
//! changes, delete); IoT policies and their versions and attachments; `TestAuthorization` of a
//! certificate principal ([`ferrule_policy`] decides, as it does in the broker); things and
//! their principals; topic rules (payloads checked against botocore's model, the SQL parsed by
//! `ferrule-sql`); `DescribeEndpoint`; tags.
//!
//! CloudWatch Logs (`aws logs`, JSON 1.1) arrives on the same endpoint as `POST /` with
//! `X-Amz-Target: Logs_20140328.<Operation>`: log groups (with retention), log streams,
//! `PutLogEvents`, `GetLogEvents` and `FilterLogEvents` (term filter patterns only), stored in
//! the registry. Its errors are `{"__type", "message"}` with status 400, as on AWS.
//!
//! IAM (`aws iam`, the query protocol) arrives as `POST /` with a form body
//! (`Action=CreateRole&Version=2010-05-08&...`) and is answered in XML: roles with trust
//! policies, users, access keys and inline policies of roles and users, stored in the
//! registry. Access keys are stored with their secrets for SigV4.
//!
//! Who may call: the configured admin credentials may do anything. An IAM user's active access
//! key, and a role session the registry issued (its `X-Amz-Security-Token` sent, not expired),
//! may do what the user's or role's inline policies allow: each request is one IAM action
//! (`iot:UpdateCertificate`, `lambda:InvokeFunction`, `iam:PutRolePolicy`, `logs:PutLogEvents`)
//! on one resource ARN, evaluated by [`ferrule_policy`] as IAM evaluates identity policies
//! (explicit Deny wins, an Allow is needed; `aws:SourceIp`, `aws:username`,
//! `aws:PrincipalArn` and the other global condition keys). A refusal is AWS's
//! `AccessDeniedException` (`AccessDenied` in IAM's XML) naming the caller, the action and the
//! resource. `aws:SourceIp` needs the peer address: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`; without it, conditions on it do not
//! hold.
//!
//! Lambda (`aws lambda`, rest-json under `/2015-03-31/functions`): functions with zip code,
//! their resource policies, and `Invoke` through the [`functions::FunctionHost`] given to
//! [`ApiState::with_functions`] (the binary's function runtime; without one, `Invoke` answers
//! `ServiceException`). Its errors are Lambda's `{"Type", "message"}` bodies.
//!
//! Depends on: `axum` (routing, no socket of its own), `ferrule-store` (the registry),
//! `ferrule-pki` (parsing, proof of possession, issuing), `aws-lc-rs` (SigV4's HMAC/SHA-256),
//! `serde_json`. No `anyhow`, no global state.
//!
//! Order of calls:
//! 1. Open the registry (`Registry::open_sqlite` / `open_postgres`) and the issuing CA
//!    (`Issuer::load_or_create` on the data dir).
//! 2. [`ApiState::new`] with an [`ApiConfig`] (region, account, MQTT endpoint, credentials).
//!    Optionally [`ApiState::with_functions`] with the function runtime, for Lambda's `Invoke`.
//! 3. [`router`]: an `axum::Router` to serve, or to merge with other routes (its layers apply
//!    only to its own routes, so `/metrics` and `/health` merged next to it stay unauthenticated).
//!
//! Admin credentials that nobody configured come from [`credentials_file::load_or_create`]
//! (an AWS shared-credentials file in the data dir, generated once).

mod access;
mod arn;
mod auth;
mod authorization;
pub mod credentials_file;
mod error;
mod extract;
pub mod functions;
mod ops;
mod policy_doc;
mod rule_payload;
mod rule_sql;
pub mod sigv4;

use std::fmt;
use std::sync::Arc;

use ferrule_pki::Issuer;
use ferrule_store::Registry;

pub use error::ApiError;
pub use ops::router;

/// An access key pair allowed to call the API (the admin: every operation is allowed).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

/// Keeps the secret out of logs.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What the API answers as, and whom it lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The region in ARNs, e.g. `us-east-1`.
    pub region: String,
    /// The 12-digit account id in ARNs and `ownedBy`.
    pub account_id: String,
    /// `host:port` of the MQTT over TLS listener. `DescribeEndpoint` returns the host only, as
    /// AWS does; devices connect to that host on the mqtts listener's port.
    pub mqtt_endpoint: String,
    /// The accepted access keys.
    pub credentials: Vec<Credential>,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
    /// Runs functions for Lambda's `Invoke`; `None` until [`ApiState::with_functions`].
    functions: Option<Arc<dyn functions::FunctionHost>>,
}

struct Inner {
    config: ApiConfig,
    arns: arn::Arns,
    registry: Registry,
    issuer: Arc<Issuer>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for [`router`]: the registry to work on, the CA that issues certificates for
    /// `CreateKeysAndCertificate`/`CreateCertificateFromCsr`, and the configuration.
    pub fn new(config: ApiConfig, registry: Registry, issuer: Arc<Issuer>) -> ApiState {
        let arns = arn::Arns::new(&config.region, &config.account_id);
        ApiState {
            inner: Arc::new(Inner {
                config,
                arns,
                registry,
                issuer,
            }),
            functions: None,
        }
    }

    /// The same state with a function runtime for Lambda's `Invoke` (see [`functions`]).
    pub fn with_functions(self, host: Arc<dyn functions::FunctionHost>) -> ApiState {
        ApiState {
            functions: Some(host),
            ..self
        }
    }

    pub(crate) fn functions(&self) -> Option<&Arc<dyn functions::FunctionHost>> {
        self.functions.as_ref()
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub(crate) fn arns(&self) -> &arn::Arns {
        &self.inner.arns
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn issuer(&self) -> Arc<Issuer> {
        self.inner.issuer.clone()
    }

    /// Who signs with an access key, and its secret: the configured admin credentials, an
    /// IAM user's active access key, or an IAM role session. `None` for an unknown or
    /// inactive key.
    pub(crate) async fn key_owner(
        &self,
        access_key_id: &str,
    ) -> Result<Option<auth::KeyOwner>, ApiError> {
        if let Some(admin) = self
            .inner
            .config
            .credentials
            .iter()
            .find(|c| c.access_key_id == access_key_id)
        {
            return Ok(Some(auth::KeyOwner {
                secret: admin.secret_access_key.clone(),
                caller: access::Caller::Admin,
                session: None,
            }));
        }
        let registry = &self.inner.registry;
        if let Some(key) = registry.get_iam_access_key(access_key_id).await? {
            return Ok((key.status == "Active").then_some(auth::KeyOwner {
                secret: key.secret_access_key,
                caller: access::Caller::User {
                    name: key.user_name,
                },
                session: None,
            }));
        }
        Ok(registry
            .get_iam_session(access_key_id)
            .await?
            .map(|s| auth::KeyOwner {
                secret: s.secret_access_key,
                caller: access::Caller::RoleSession {
                    role_name: s.role_name,
                    session_name: s.session_name,
                },
                session: Some(auth::SessionToken {
                    token: s.session_token,
                    expires_ms: s.expires_ms,
                }),
            }))
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
