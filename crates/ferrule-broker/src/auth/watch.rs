//! Follows the registry's change feed and brings live connections' grants up to date: a
//! certificate that stops being ACTIVE (or is deleted) revokes its connections' grants; a
//! policy, attachment or thing change reloads the grants it may affect, and revokes those whose
//! policies no longer allow `iot:Connect`. Connections learn of it through [`Grant::changed`].
//!
//! Each change is handled in one order: first the registry cache forgets what it made stale,
//! then the connections whose CONNECT is being decided and which it concerns are woken, then
//! the live grants are brought up to date. A decision woken by a change therefore reads past
//! the cache's invalidation, and a grant tracked by a decision that did not see the change is
//! reached by the update that follows.

use std::sync::Arc;

use ferrule_policy::Context;
use ferrule_store::{CertificateStatus, RegistryChange};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Auth, Grant, Principal, Revoked, certificate_id_of};

/// Starts following the change feed until the broker shuts down: one task invalidates the
/// cache and wakes the waiting decisions at once, and hands each change on, in order, to a
/// second task that updates the live grants (which may read the registry).
pub(crate) fn spawn_watcher(
    auth: Arc<Auth>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut feed = auth.settings.registry.subscribe();
    // `None`: the feed lagged, everything may be stale.
    let (grants_tx, mut grants_rx) = mpsc::unbounded_channel::<Option<RegistryChange>>();
    let follower = auth.clone();
    let mut follower_shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                c = feed.recv() => c,
                _ = follower_shutdown.wait_for(|down| *down) => return,
            };
            let change = match change {
                Ok(change) => {
                    invalidate(&follower, &change);
                    follower.holds.changed(&change);
                    Some(change)
                }
                Err(RecvError::Lagged(missed)) => {
                    follower.cache.invalidate();
                    follower.holds.changed_all();
                    tracing::warn!(
                        missed,
                        "registry change feed lagged: reloading every live grant"
                    );
                    None
                }
                Err(RecvError::Closed) => return,
            };
            if grants_tx.send(change).is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let change = tokio::select! {
                c = grants_rx.recv() => c,
                _ = shutdown.wait_for(|down| *down) => return,
            };
            match change {
                Some(Some(change)) => apply(&auth, change).await,
                Some(None) => {
                    auth.reload_anonymous().await;
                    for grant in auth.anonymous_grants() {
                        reload(&auth, &grant).await;
                    }
                    for grant in auth.all_certificate_grants() {
                        reload(&auth, &grant).await;
                    }
                }
                None => return,
            }
        }
    })
}

/// Forgets what `change` may have made stale in the registry cache: one certificate's entry
/// when the change concerns only that certificate (its status, its attachments, its things),
/// everything otherwise. Thousands of activations in a JITR storm then leave the other devices'
/// entries in place.
fn invalidate(auth: &Auth, change: &RegistryChange) {
    let certificate = match change {
        RegistryChange::CertificateChanged { certificate_id, .. }
        | RegistryChange::CertificateDeleted { certificate_id } => Some(certificate_id.as_str()),
        RegistryChange::PolicyAttachmentChanged { target, .. } => certificate_id_of(target),
        RegistryChange::ThingPrincipalChanged { principal, .. } => certificate_id_of(principal),
        _ => None,
    };
    match certificate {
        Some(id) => auth.cache.invalidate_certificate(id),
        None => auth.cache.invalidate(),
    }
}

/// Brings the live grants `change` concerns up to date; the cache has forgotten what the change
/// made stale already.
async fn apply(auth: &Auth, change: RegistryChange) {
    match change {
        RegistryChange::CertificateChanged {
            certificate_id,
            status,
            ..
        } if status != CertificateStatus::Active => {
            for grant in auth.grants_of(&certificate_id) {
                grant.revoke(Revoked {
                    lifecycle_reason: "AUTH_ERROR",
                    detail: format!("certificate {certificate_id} is now {}", status.as_str()),
                });
            }
        }
        RegistryChange::CertificateDeleted { certificate_id } => {
            for grant in auth.grants_of(&certificate_id) {
                grant.revoke(Revoked {
                    lifecycle_reason: "AUTH_ERROR",
                    detail: format!("certificate {certificate_id} was deleted"),
                });
            }
        }
        RegistryChange::PolicyChanged { policy_name } => {
            if auth.settings.anonymous_policy.as_deref() == Some(policy_name.as_str()) {
                auth.reload_anonymous().await;
                for grant in auth.anonymous_grants() {
                    reload(auth, &grant).await;
                }
            }
            for grant in auth.all_certificate_grants() {
                if grant.uses_policy(&policy_name) {
                    reload(auth, &grant).await;
                }
            }
        }
        RegistryChange::PolicyAttachmentChanged { target, .. } => {
            if let Some(id) = certificate_id_of(&target) {
                for grant in auth.grants_of(id) {
                    reload(auth, &grant).await;
                }
            }
        }
        RegistryChange::ThingPrincipalChanged { principal, .. } => {
            if let Some(id) = certificate_id_of(&principal) {
                for grant in auth.grants_of(id) {
                    reload(auth, &grant).await;
                }
            }
        }
        RegistryChange::ThingChanged { thing_name } => {
            for grant in auth.all_certificate_grants() {
                if *grant.client_id == *thing_name {
                    reload(auth, &grant).await;
                }
            }
        }
        _ => {}
    }
}

/// Reloads a grant's policies and variables; revokes it if they no longer allow the
/// connection. A registry error keeps the old grant (and says so).
async fn reload(auth: &Auth, grant: &Arc<Grant>) {
    let loaded = match &grant.principal {
        Principal::Certificate { arn, .. } => {
            auth.load_certificate_policies(arn, &grant.client_id, &grant.base, false)
                .await
        }
        Principal::Anonymous => Ok((
            auth.anonymous.load_full(),
            Context::over(grant.base.clone()),
        )),
    };
    let (policies, ctx) = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(client_id = %grant.client_id, error = %e, "could not reload a connection's policies; keeping the previous ones");
            return;
        }
    };
    if policies.allows(
        "iot:Connect",
        &auth.resource("client", &grant.client_id),
        &ctx,
    ) {
        grant.replace(policies, ctx);
    } else {
        grant.revoke(Revoked {
            lifecycle_reason: "FORBIDDEN_ACCESS",
            detail: format!(
                "the policies of {} no longer allow iot:Connect as client id {:?}",
                grant.principal.identifier(),
                grant.client_id
            ),
        });
    }
}
