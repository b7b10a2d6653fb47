//! Device authorization: who a connection is (a registered certificate, or an anonymous client
//! of a listener without client certificates), whether it may connect (AWS IoT's decision
//! table, with just-in-time registration), and what it may do once connected (IoT policies).
//!
//! Phases, one file each: `admit` decides a CONNECT (async: it reads the registry and may hold
//! a just-registered certificate's connection until it is activated); `authz` answers the
//! per-packet questions from a per-connection cache, so the publish path never touches the
//! database; `watch` follows the registry's change feed and refreshes or revokes the grants of
//! live connections within a second.

mod admit;
mod authz;
mod cache;
mod holds;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use ferrule_policy::{Context, Decision, Policy, Request};
use ferrule_store::{PolicyRecord, Registry};
use tokio::sync::Notify;

use crate::client_auth::TrustStore;

pub(crate) use admit::{CLIENT_GONE, Rejection};
pub(crate) use authz::{Authz, reserved_for_publish};
pub(crate) use watch::spawn_watcher;

/// How the first connection of a just-in-time registered certificate is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitrMode {
    /// Keep the connection waiting, up to [`AuthSettings::jitr_hold`], and accept it as soon as
    /// the certificate is ACTIVE and a policy allows `iot:Connect`.
    #[default]
    Hold,
    /// Close it after registering, as AWS IoT does; the device reconnects once activated.
    Aws,
}

/// What the broker needs to authenticate and authorize devices against the registry.
#[derive(Clone)]
pub struct AuthSettings {
    /// The device registry: certificates, CAs, policies, things.
    pub registry: Registry,
    /// The CA snapshot the TLS verifier reads (see [`crate::client_auth`]).
    pub trust: Arc<TrustStore>,
    /// How a just-registered certificate's first connection is answered.
    pub jitr_mode: JitrMode,
    /// How long [`JitrMode::Hold`] keeps it waiting.
    pub jitr_hold: Duration,
    /// The region in resource ARNs (`arn:aws:iot:REGION:...`).
    pub region: String,
    /// The 12-digit account id in ARNs and events.
    pub account_id: String,
    /// The IoT policy (by name, in the registry) that governs clients of listeners without
    /// client certificates; `None` gives them full access.
    pub anonymous_policy: Option<String>,
}

/// The policies a connection is evaluated against.
#[derive(Debug)]
pub(crate) enum PolicySet {
    /// Everything allowed, nothing evaluated (anonymous clients when no policy is configured).
    FullAccess,
    /// The default versions of the named policies; an empty list denies everything.
    Policies(Vec<(String, Arc<Policy>)>),
}

/// Parsed policy documents, shared by every certificate they are attached to: thousands of
/// devices usually share a handful of policies, and each connection keeps its policy set.
#[derive(Default)]
pub(crate) struct ParsedPolicies {
    by_document: Mutex<HashMap<String, Weak<Policy>>>,
}

impl ParsedPolicies {
    /// The parsed form of `document`, shared with every other holder of the same text.
    fn parse(&self, document: &str) -> Result<Arc<Policy>, ferrule_policy::PolicyError> {
        let mut map = self.by_document.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(policy) = map.get(document).and_then(Weak::upgrade) {
            return Ok(policy);
        }
        let policy = Arc::new(Policy::parse(document)?);
        if map.len() >= MAX_PARSED_POLICIES {
            map.retain(|_, p| p.strong_count() > 0);
        }
        map.insert(document.to_owned(), Arc::downgrade(&policy));
        Ok(policy)
    }
}

/// Parsed documents remembered before the forgotten ones are swept.
const MAX_PARSED_POLICIES: usize = 4096;

impl PolicySet {
    /// Parses the stored documents; one that no longer parses (it was validated when stored)
    /// is left out with a warning, which denies what it would have allowed.
    pub(crate) fn from_records(parsed: &ParsedPolicies, records: Vec<PolicyRecord>) -> PolicySet {
        let mut policies = records
            .into_iter()
            .filter_map(|r| match parsed.parse(&r.document) {
                Ok(p) => Some((r.name, p)),
                Err(e) => {
                    tracing::warn!(policy = %r.name, error = %e, "stored policy does not parse; ignored");
                    None
                }
            })
            .collect::<Vec<_>>();
        // Collected in place, into the records' larger allocation: a set lives as long as the
        // connections and the cache entries that hold it.
        policies.shrink_to_fit();
        PolicySet::Policies(policies)
    }

    pub(crate) fn decide(&self, action: &str, resource: &str, ctx: &Context) -> Decision {
        match self {
            PolicySet::FullAccess => Decision::Allow {
                policy: String::new(),
                sid: None,
            },
            PolicySet::Policies(list) => ferrule_policy::evaluate(
                list.iter().map(|(n, p)| (n.as_str(), &**p)),
                &Request { action, resource },
                ctx,
            ),
        }
    }

    pub(crate) fn allows(&self, action: &str, resource: &str, ctx: &Context) -> bool {
        self.decide(action, resource, ctx).is_allowed()
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        let list: &[(String, Arc<Policy>)] = match self {
            PolicySet::FullAccess => &[],
            PolicySet::Policies(l) => l,
        };
        list.iter().map(|(n, _)| n.as_str())
    }
}

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A registered device certificate.
    Certificate {
        /// Its id (hex SHA-256 of the DER).
        id: String,
        /// Its ARN, as policies are attached to it.
        arn: String,
    },
    /// A client of a listener without client certificates.
    Anonymous,
}

impl Principal {
    /// `principalIdentifier` in lifecycle events.
    pub(crate) fn identifier(&self) -> &str {
        match self {
            Principal::Certificate { id, .. } => id,
            Principal::Anonymous => "anonymous",
        }
    }
}

/// Why a live connection lost its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// The lifecycle `disconnectReason`: `AUTH_ERROR` (certificate status) or
    /// `FORBIDDEN_ACCESS` (policies no longer allow `iot:Connect`).
    pub(crate) lifecycle_reason: &'static str,
    /// For logs and the MQTT 5 reason string.
    pub(crate) detail: String,
}

struct GrantState {
    policies: Arc<PolicySet>,
    ctx: Arc<Context>,
    revoked: Option<Revoked>,
}

/// One connection's authorization: its principal, its policies and the variables they are
/// evaluated with. The watcher replaces the policies (bumping `version`) or revokes the grant
/// and notifies the connection; the connection's [`Authz`] cache notices the new version.
pub(crate) struct Grant {
    pub(crate) principal: Principal,
    pub(crate) client_id: Arc<str>,
    /// Variables that do not change while connected: client id, source address, certificate
    /// fields, connect attributes. Thing variables are added over it on each load.
    base: Arc<Context>,
    state: Mutex<GrantState>,
    version: AtomicU64,
    /// Notified after every change of this grant.
    pub(crate) changed: Notify,
}

impl Grant {
    fn new(
        principal: Principal,
        client_id: Arc<str>,
        base: Arc<Context>,
        policies: Arc<PolicySet>,
        ctx: Context,
    ) -> Grant {
        Grant {
            principal,
            client_id,
            base,
            state: Mutex::new(GrantState {
                policies,
                ctx: Arc::new(ctx),
                revoked: None,
            }),
            version: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GrantState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current policies and variables.
    pub(crate) fn current(&self) -> (Arc<PolicySet>, Arc<Context>) {
        let st = self.lock();
        (st.policies.clone(), st.ctx.clone())
    }

    pub(crate) fn revoked(&self) -> Option<Revoked> {
        self.lock().revoked.clone()
    }

    fn replace(&self, policies: Arc<PolicySet>, ctx: Context) {
        {
            let mut st = self.lock();
            st.policies = policies;
            st.ctx = Arc::new(ctx);
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn revoke(&self, revoked: Revoked) {
        {
            let mut st = self.lock();
            if st.revoked.is_some() {
                return;
            }
            st.revoked = Some(revoked);
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    fn uses_policy(&self, name: &str) -> bool {
        self.lock().policies.names().any(|n| n == name)
    }
}

/// Live grants, by certificate id, so that registry changes reach their connections.
#[derive(Default)]
struct Live {
    by_certificate: HashMap<String, Vec<Weak<Grant>>>,
    anonymous: Vec<Weak<Grant>>,
}

/// The broker's authorization state: settings, the anonymous policy, live grants.
pub(crate) struct Auth {
    pub(crate) settings: AuthSettings,
    /// `arn:aws:iot:REGION:ACCOUNT:`, the prefix of every resource ARN.
    pub(crate) arn_prefix: Arc<str>,
    anonymous: ArcSwap<PolicySet>,
    live: Mutex<Live>,
    /// Certificates' records, policies and things between their connections.
    cache: cache::RegistryCache,
    /// Connections waiting for a change to their certificate while their CONNECT is decided.
    holds: holds::Holds,
    parsed: ParsedPolicies,
}

impl Auth {
    /// Loads the anonymous policy. A configured policy that does not exist (yet) denies
    /// anonymous clients everything until it is created.
    pub(crate) async fn new(settings: AuthSettings) -> Auth {
        let arn_prefix: Arc<str> =
            format!("arn:aws:iot:{}:{}:", settings.region, settings.account_id).into();
        let auth = Auth {
            settings,
            arn_prefix,
            anonymous: ArcSwap::from_pointee(PolicySet::FullAccess),
            live: Mutex::new(Live::default()),
            cache: cache::RegistryCache::default(),
            holds: holds::Holds::default(),
            parsed: ParsedPolicies::default(),
        };
        match &auth.settings.anonymous_policy {
            None => tracing::warn!(
                "clients of listeners without client certificates (plain MQTT, WebSocket) have full \
                 access: set anonymous_policy to the name of an IoT policy to restrict them"
            ),
            Some(name) => {
                auth.reload_anonymous().await;
                tracing::info!(policy = %name, "anonymous clients are governed by this policy");
            }
        }
        auth
    }

    async fn reload_anonymous(&self) {
        let Some(name) = &self.settings.anonymous_policy else {
            return;
        };
        let set = match self.settings.registry.get_policy(name).await {
            Ok(Some(record)) => PolicySet::from_records(&self.parsed, vec![record]),
            Ok(None) => {
                tracing::warn!(policy = %name, "the anonymous policy does not exist: anonymous clients are denied everything");
                PolicySet::Policies(Vec::new())
            }
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "could not load the anonymous policy: anonymous clients are denied everything");
                PolicySet::Policies(Vec::new())
            }
        };
        self.anonymous.store(Arc::new(set));
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tracks a grant so that registry changes reach it.
    pub(crate) fn track(&self, grant: &Arc<Grant>) {
        let mut live = self.live();
        let list = match &grant.principal {
            Principal::Certificate { id, .. } => live.by_certificate.entry(id.clone()).or_default(),
            Principal::Anonymous => &mut live.anonymous,
        };
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(grant));
    }

    /// Stops tracking a grant whose connection ended.
    pub(crate) fn forget(&self, grant: &Arc<Grant>) {
        let mut live = self.live();
        let gone = |w: &Weak<Grant>| w.upgrade().is_none_or(|g| Arc::ptr_eq(&g, grant));
        match &grant.principal {
            Principal::Certificate { id, .. } => {
                if let Some(list) = live.by_certificate.get_mut(id) {
                    list.retain(|w| !gone(w));
                    if list.is_empty() {
                        live.by_certificate.remove(id);
                    }
                }
            }
            Principal::Anonymous => live.anonymous.retain(|w| !gone(w)),
        }
    }

    fn grants_of(&self, certificate_id: &str) -> Vec<Arc<Grant>> {
        self.live()
            .by_certificate
            .get(certificate_id)
            .map(|l| l.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    fn all_certificate_grants(&self) -> Vec<Arc<Grant>> {
        self.live()
            .by_certificate
            .values()
            .flatten()
            .filter_map(Weak::upgrade)
            .collect()
    }

    fn anonymous_grants(&self) -> Vec<Arc<Grant>> {
        self.live()
            .anonymous
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(crate) fn resource(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}/{name}", self.arn_prefix)
    }

    pub(crate) fn certificate_arn(&self, id: &str) -> String {
        self.resource("cert", id)
    }
}

/// The certificate id in a certificate ARN.
fn certificate_id_of(arn: &str) -> Option<&str> {
    arn.rsplit_once(":cert/").map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    const ALLOW_CONNECT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

    #[test]
    fn a_policy_document_is_parsed_once_for_all_its_holders() {
        let parsed = ParsedPolicies::default();
        let a = parsed.parse(ALLOW_ALL).expect("parses");
        let b = parsed.parse(ALLOW_ALL).expect("parses");
        assert!(Arc::ptr_eq(&a, &b));
        let other = parsed.parse(ALLOW_CONNECT).expect("parses");
        assert!(!Arc::ptr_eq(&a, &other));
        // Once nobody holds it, the next holder gets a new parse, equal to the old.
        let old = (*a).clone();
        drop((a, b));
        let again = parsed.parse(ALLOW_ALL).expect("parses");
        assert_eq!(*again, old);
        assert!(parsed.parse("{not json").is_err());
    }
}
