//! The CONNECT decision, after the TLS handshake identified the certificate (AWS IoT's table,
//! reference 5.3): an ACTIVE certificate is authenticated and then needs `iot:Connect`; an
//! unknown one under an ACTIVE CA with auto-registration is registered PENDING_ACTIVATION
//! (just-in-time registration) and announced; everything else is refused with its own reason.

use std::sync::Arc;

use ferrule_mqtt::{Connect, ProtocolVersion, ReasonCode};
use ferrule_policy::Context;
use ferrule_store::{
    AutoRegistrationStatus, CaStatus, CertRecord, CertificateStatus, PageRequest, RegistryError,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::holds::Hold;
use super::{Auth, Grant, PolicySet, Principal, certificate_id_of};
use crate::broker::{BrokerInner, now_ms};
use crate::client_auth::ClientIdentity;
use crate::events;
use crate::transport::ConnInfo;

/// How many things attached to a certificate are looked through for the one named like the
/// client id (thing policy variables).
const THING_PAGE: usize = 250;

/// How many times a decision is re-made because the registry changed while it was being made.
const MAX_RETRIES: usize = 5;

/// Why a CONNECT is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// A snake_case label: the log field, the metric label and the event's `reason`.
    pub(crate) reason: &'static str,
    /// For the operator (log, event) and the MQTT 5 reason string.
    pub(crate) message: String,
    /// The CONNACK reason code; 0x87 Not authorized unless the broker itself failed.
    pub(crate) code: ReasonCode,
    /// Close without a CONNACK, as AWS does after registering a certificate.
    pub(crate) silent: bool,
}

/// The reason of [`Rejection::client_gone`].
pub(crate) const CLIENT_GONE: &str = "client_gone";

impl Rejection {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
            code: ReasonCode::NOT_AUTHORIZED,
            silent: false,
        }
    }

    /// The client closed its connection while it was held: nothing to answer, nothing refused.
    fn client_gone(id: &str) -> Rejection {
        Rejection {
            silent: true,
            ..Rejection::new(
                CLIENT_GONE,
                format!("the client of certificate {id} left while its connection was held"),
            )
        }
    }

    fn registry(e: RegistryError) -> Rejection {
        Rejection {
            reason: "registry_unavailable",
            message: format!("the registry could not be read: {e}"),
            code: ReasonCode::SERVER_UNAVAILABLE,
            silent: false,
        }
    }

    fn for_status(status: CertificateStatus, id: &str) -> Rejection {
        let reason = match status {
            CertificateStatus::Active => "not_authorized",
            CertificateStatus::Inactive | CertificateStatus::RegisterInactive => {
                "certificate_inactive"
            }
            CertificateStatus::Revoked => "certificate_revoked",
            CertificateStatus::PendingTransfer => "certificate_pending_transfer",
            CertificateStatus::PendingActivation => "certificate_pending_activation",
        };
        Rejection::new(reason, format!("certificate {id} is {}", status.as_str()))
    }
}

impl Auth {
    /// Decides a CONNECT: the grant the connection runs under (`None`: full access, which no
    /// registry change can narrow), or why it is refused. `client_gone` turns true when the
    /// client closes its side, which ends a hold early.
    pub(crate) async fn admit(
        &self,
        broker: &BrokerInner,
        info: &ConnInfo,
        client_id: &Arc<str>,
        connect: &Connect,
        client_gone: watch::Receiver<bool>,
    ) -> Result<Option<Arc<Grant>>, Rejection> {
        if info.identity.is_none() && self.settings.anonymous_policy.is_none() {
            // Anonymous clients have full access for the life of the broker: there is nothing
            // to evaluate, and no grant to keep per connection.
            return Ok(None);
        }
        let base = Arc::new(base_context(info, client_id, connect));
        let grant = match &info.identity {
            Some(identity) => {
                self.admit_certificate(broker, identity, client_id, base, client_gone)
                    .await?
            }
            None => {
                let policies = self.anonymous.load_full();
                let ctx = Context::over(base.clone());
                let grant = Arc::new(Grant::new(
                    Principal::Anonymous,
                    client_id.clone(),
                    base,
                    policies,
                    ctx,
                ));
                self.track(&grant);
                grant
            }
        };
        let (policies, ctx) = grant.current();
        if !policies.allows("iot:Connect", &self.resource("client", client_id), &ctx) {
            self.forget(&grant);
            return Err(Rejection::new(
                "not_authorized",
                format!(
                    "no policy of {} allows iot:Connect as client id {client_id:?}",
                    describe(&grant.principal)
                ),
            ));
        }
        Ok(Some(grant))
    }

    async fn admit_certificate(
        &self,
        broker: &BrokerInner,
        identity: &ClientIdentity,
        client_id: &Arc<str>,
        base: Arc<Context>,
        mut client_gone: watch::Receiver<bool>,
    ) -> Result<Arc<Grant>, Rejection> {
        let registry = &self.settings.registry;
        let id = identity.certificate_id.as_str();
        let arn = self.certificate_arn(id);
        // Registered before the first read, so that no change after it is missed.
        let hold = self.holds.hold(id);
        let mut hold_until: Option<Instant> = None;
        let mut announced = false;
        let mut retries = 0;
        // After a change concerning the certificate, the cache may not have heard of it yet
        // (the watcher reads the same feed): the next decision reads the database.
        let mut fresh = false;
        loop {
            let generation = self.cache.generation();
            let changes = hold.changes();
            let cached = if fresh {
                None
            } else {
                let cached = self.cache.record(id);
                let result = if cached.is_some() { "hit" } else { "miss" };
                metrics::counter!("ferrule_registry_cache_lookups_total", "result" => result)
                    .increment(1);
                cached
            };
            let record = match cached {
                Some(cached) => Some(cached),
                None => {
                    let read = registry
                        .get_certificate(id)
                        .await
                        .map_err(Rejection::registry)?
                        .map(Arc::new);
                    if let Some(r) = &read {
                        self.cache.store_record(generation, r);
                    }
                    read
                }
            };
            let record = match record {
                Some(r) => r,
                None => match self.register(identity).await? {
                    Some(record) => {
                        events::certificate_registered(broker, self, &record, true);
                        announced = true;
                        Arc::new(record)
                    }
                    // Another connection registered it a moment ago: read it again.
                    None => continue,
                },
            };
            match record.status {
                CertificateStatus::Active => {
                    let grant = self
                        .certificate_grant(id, &arn, client_id, base.clone(), fresh)
                        .await?;
                    self.track(&grant);
                    // Only a change concerning this certificate (its status, its attachments,
                    // a policy or thing) can make the decision stale; other certificates'
                    // changes, thousands in a JITR storm, do not send it round again.
                    let stale = hold.changes() != changes;
                    if retries < MAX_RETRIES && stale {
                        // The status or the policies may be stale; tracked now, later changes
                        // reach the grant through the watcher.
                        self.forget(&grant);
                        retries += 1;
                        fresh = true;
                        continue;
                    }
                    let (policies, ctx) = grant.current();
                    if hold_until.is_none()
                        || policies.allows("iot:Connect", &self.resource("client", client_id), &ctx)
                    {
                        return Ok(grant);
                    }
                    // Held, and activated before its policy was attached: wait for the policy.
                    self.forget(&grant);
                }
                CertificateStatus::PendingActivation => {
                    if !announced {
                        events::certificate_registered(broker, self, &record, false);
                        announced = true;
                    }
                    if self.settings.jitr_mode == super::JitrMode::Aws {
                        return Err(Rejection {
                            silent: true,
                            ..Rejection::new(
                                "certificate_pending_activation",
                                format!(
                                    "certificate {id} is PENDING_ACTIVATION: registered event \
                                     published, connection closed (jitr_mode aws)"
                                ),
                            )
                        });
                    }
                }
                other => return Err(Rejection::for_status(other, id)),
            }
            let deadline =
                *hold_until.get_or_insert_with(|| Instant::now() + self.settings.jitr_hold);
            let outcome = wait_for_change(&hold, deadline, &mut client_gone).await;
            if outcome == Wait::ClientGone {
                return Err(Rejection::client_gone(id));
            }
            fresh = true;
            if outcome == Wait::TimedOut {
                let waited = self.settings.jitr_hold.as_millis();
                return Err(match record.status {
                    CertificateStatus::Active => Rejection::new(
                        "not_authorized",
                        format!(
                            "certificate {id} is ACTIVE but no policy allowed iot:Connect as client \
                             id {client_id:?} within {waited} ms"
                        ),
                    ),
                    _ => Rejection::new(
                        "certificate_pending_activation",
                        format!("certificate {id} was not activated within {waited} ms"),
                    ),
                });
            }
        }
    }

    /// Just-in-time registration of an unknown certificate: `Some(record)` if this call
    /// registered it, `None` if another connection just did.
    async fn register(&self, identity: &ClientIdentity) -> Result<Option<CertRecord>, Rejection> {
        let registry = &self.settings.registry;
        let id = &identity.certificate_id;
        let Some(ca_id) = &identity.ca_id else {
            return Err(Rejection::new(
                "unknown_certificate",
                format!("certificate {id} is not registered"),
            ));
        };
        let ca = registry
            .get_ca(ca_id)
            .await
            .map_err(Rejection::registry)?
            .ok_or_else(|| {
                Rejection::new(
                    "unknown_ca",
                    format!("certificate {id}: its CA {ca_id} is no longer registered"),
                )
            })?;
        if ca.status != CaStatus::Active {
            return Err(Rejection::new(
                "ca_inactive",
                format!("certificate {id} is not registered and its CA {ca_id} is INACTIVE"),
            ));
        }
        if ca.auto_registration != AutoRegistrationStatus::Enable {
            return Err(Rejection::new(
                "auto_registration_disabled",
                format!(
                    "certificate {id} is not registered and its CA {ca_id} has auto-registration \
                     DISABLE"
                ),
            ));
        }
        let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        let cert = &identity.certificate;
        let record = CertRecord {
            id: id.clone(),
            pem: cert.pem(),
            ca_id: Some(ca_id.clone()),
            issuer_der: cert.issuer_der.clone(),
            status: CertificateStatus::PendingActivation,
            mode: ca.mode,
            owned_by: self.settings.account_id.clone(),
            created_ms: now,
            modified_ms: now,
            customer_version: 1,
            generation_id: ferrule_pki::random_hex(16),
            not_before_ms: cert.not_before_unix.saturating_mul(1000),
            not_after_ms: cert.not_after_unix.saturating_mul(1000),
        };
        match registry.insert_certificate(&record).await {
            Ok(()) => {
                tracing::info!(certificate_id = %id, ca_id = %ca_id, "certificate registered just in time as PENDING_ACTIVATION");
                Ok(Some(record))
            }
            Err(RegistryError::AlreadyExists { .. }) => Ok(None),
            Err(RegistryError::NotFound { .. }) => Err(Rejection::new(
                "unknown_ca",
                format!("certificate {id}: its CA {ca_id} is no longer registered"),
            )),
            Err(e) => Err(Rejection::registry(e)),
        }
    }

    async fn certificate_grant(
        &self,
        id: &str,
        arn: &str,
        client_id: &Arc<str>,
        base: Arc<Context>,
        fresh: bool,
    ) -> Result<Arc<Grant>, Rejection> {
        let (policies, ctx) = self
            .load_certificate_policies(arn, client_id, &base, fresh)
            .await
            .map_err(Rejection::registry)?;
        Ok(Arc::new(Grant::new(
            Principal::Certificate {
                id: id.to_owned(),
                arn: arn.to_owned(),
            },
            client_id.clone(),
            base,
            policies,
            ctx,
        )))
    }

    /// The policies attached to a certificate and the variables they are evaluated with: the
    /// connection's `base` plus the thing variables, which resolve when the client id names a
    /// thing the certificate is attached to. `fresh` reads the database even when the cache
    /// knows the answer.
    pub(crate) async fn load_certificate_policies(
        &self,
        arn: &str,
        client_id: &str,
        base: &Arc<Context>,
        fresh: bool,
    ) -> Result<(Arc<PolicySet>, Context), RegistryError> {
        let registry = &self.settings.registry;
        let generation = self.cache.generation();
        let id = certificate_id_of(arn).unwrap_or(arn);
        let policies = match self.cache.policies(id).filter(|_| !fresh) {
            Some(cached) => cached,
            None => {
                let set = Arc::new(PolicySet::from_records(
                    &self.parsed,
                    registry.policies_for_target(arn).await?,
                ));
                self.cache.store_policies(generation, id, set.clone());
                set
            }
        };
        let things = match self.cache.things(id).filter(|_| !fresh) {
            Some(cached) => cached,
            None => {
                let names: Arc<[String]> = registry
                    .list_principal_things(arn, &PageRequest::first(THING_PAGE))
                    .await?
                    .items
                    .into();
                self.cache.store_things(generation, id, names.clone());
                names
            }
        };
        let mut ctx = Context::over(base.clone());
        let thing = match things.iter().any(|t| t == client_id) {
            true => registry.get_thing(client_id).await?,
            false => None,
        };
        match thing {
            Some(thing) => {
                ctx.set("iot:Connection.Thing.IsAttached", "true");
                ctx.set("iot:Connection.Thing.ThingName", thing.name.clone());
                if let Some(t) = &thing.thing_type_name {
                    ctx.set("iot:Connection.Thing.ThingTypeName", t.clone());
                }
                for (k, v) in &thing.attributes {
                    ctx.set(format!("iot:Connection.Thing.Attributes[{k}]"), v.clone());
                }
            }
            None => ctx.set("iot:Connection.Thing.IsAttached", "false"),
        }
        ctx.shrink_to_fit();
        Ok((policies, ctx))
    }
}

fn describe(principal: &Principal) -> String {
    match principal {
        Principal::Certificate { id, .. } => format!("certificate {id}"),
        Principal::Anonymous => "the anonymous policy".to_owned(),
    }
}

/// The variables that stay fixed for a connection: client id, source address, connect
/// attributes, certificate fields.
fn base_context(info: &ConnInfo, client_id: &str, connect: &Connect) -> Context {
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", client_id);
    ctx.set("aws:SourceIp", info.peer.ip().to_string());
    let persistent = match connect.protocol {
        ProtocolVersion::V311 => !connect.clean_start,
        ProtocolVersion::V5 => connect
            .properties
            .session_expiry_interval
            .is_some_and(|e| e > 0),
    };
    let mut attributes = Vec::new();
    if persistent {
        attributes.push("PersistentConnect");
    }
    if connect.will.is_some() {
        attributes.push("LastWill");
    }
    ctx.set_multi("iot:ConnectAttributes", attributes);
    if let Some(identity) = &info.identity {
        for (name, values) in identity.certificate.policy_variables() {
            ctx.set_certificate_attribute(&name, &values);
        }
    }
    ctx.shrink_to_fit();
    ctx
}

/// How a hold's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// A change concerning the certificate arrived: decide again.
    Changed,
    TimedOut,
    ClientGone,
}

/// Waits until a change concerning the held certificate arrives, `deadline` passes or the
/// client leaves.
async fn wait_for_change(
    hold: &Hold<'_>,
    deadline: Instant,
    client_gone: &mut watch::Receiver<bool>,
) -> Wait {
    tokio::select! {
        () = hold.changed() => Wait::Changed,
        () = tokio::time::sleep_until(deadline) => Wait::TimedOut,
        // An error means the sender is gone, which only happens once the connection is.
        _ = client_gone.wait_for(|gone| *gone) => Wait::ClientGone,
    }
}
