//! Where a connection whose CONNECT is being decided waits for changes to its own certificate
//! (a held just-in-time registration waits for its activation). The watcher, which follows
//! the registry's change feed, tells only the waiters a change concerns: with thousands of
//! devices held at once, each change wakes one connection, not all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrule_store::RegistryChange;
use tokio::sync::Notify;

use super::certificate_id_of;

/// The waiters, by certificate id.
#[derive(Default)]
pub(crate) struct Holds {
    waiters: Mutex<HashMap<String, Vec<Arc<Waiter>>>>,
}

#[derive(Default)]
struct Waiter {
    /// Changes concerning the certificate since the waiter was made.
    changes: AtomicU64,
    notify: Notify,
}

/// One connection's registration as a waiter; unregisters when dropped.
pub(crate) struct Hold<'a> {
    holds: &'a Holds,
    id: String,
    waiter: Arc<Waiter>,
}

/// Which waiters a change concerns.
enum Concerned<'a> {
    Nobody,
    Certificate(&'a str),
    Everyone,
}

impl Holds {
    /// Registers a waiter for certificate `id`. Changes are counted from now on, so register
    /// before the first registry read of a decision.
    pub(crate) fn hold(&self, id: &str) -> Hold<'_> {
        let waiter = Arc::new(Waiter::default());
        self.lock()
            .entry(id.to_owned())
            .or_default()
            .push(waiter.clone());
        Hold {
            holds: self,
            id: id.to_owned(),
            waiter,
        }
    }

    /// Tells the waiters `change` concerns (those whose decision it may alter).
    pub(crate) fn changed(&self, change: &RegistryChange) {
        let concerned = match change {
            RegistryChange::CertificateChanged { certificate_id, .. }
            | RegistryChange::CertificateDeleted { certificate_id } => {
                Concerned::Certificate(certificate_id)
            }
            RegistryChange::PolicyAttachmentChanged { target, .. } => {
                certificate_id_of(target).map_or(Concerned::Nobody, Concerned::Certificate)
            }
            RegistryChange::ThingPrincipalChanged { principal, .. } => {
                certificate_id_of(principal).map_or(Concerned::Nobody, Concerned::Certificate)
            }
            RegistryChange::PolicyChanged { .. } | RegistryChange::ThingChanged { .. } => {
                Concerned::Everyone
            }
            _ => Concerned::Nobody,
        };
        match concerned {
            Concerned::Nobody => {}
            Concerned::Certificate(id) => {
                if let Some(waiters) = self.lock().get(id) {
                    waiters.iter().for_each(|w| w.wake());
                }
            }
            Concerned::Everyone => self.changed_all(),
        }
    }

    /// Tells every waiter that something may have changed (the feed lagged).
    pub(crate) fn changed_all(&self) {
        for waiters in self.lock().values() {
            waiters.iter().for_each(|w| w.wake());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Arc<Waiter>>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Waiter {
    fn wake(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        // A stored permit if the connection is not waiting yet: it then does not wait.
        self.notify.notify_one();
    }
}

impl Hold<'_> {
    /// How many changes concerning the certificate arrived so far: a decision read after one
    /// value and finished after another may be stale.
    pub(crate) fn changes(&self) -> u64 {
        self.waiter.changes.load(Ordering::Acquire)
    }

    /// Completes at the next change concerning the certificate (at once if one arrived since
    /// the last wait).
    pub(crate) async fn changed(&self) {
        self.waiter.notify.notified().await;
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut waiters = self.holds.lock();
        if let Some(list) = waiters.get_mut(&self.id) {
            list.retain(|w| !Arc::ptr_eq(w, &self.waiter));
            if list.is_empty() {
                waiters.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ferrule_store::CertificateStatus;

    use super::*;

    fn activated(id: &str) -> RegistryChange {
        RegistryChange::CertificateChanged {
            certificate_id: id.into(),
            status: CertificateStatus::Active,
            ca_id: None,
        }
    }

    #[test]
    fn a_change_reaches_only_the_waiters_it_concerns() {
        let holds = Holds::default();
        let a = holds.hold("aaaa");
        let a2 = holds.hold("aaaa");
        let b = holds.hold("bbbb");
        holds.changed(&activated("aaaa"));
        assert_eq!((a.changes(), a2.changes(), b.changes()), (1, 1, 0));
        holds.changed(&RegistryChange::PolicyAttachmentChanged {
            policy_name: "p".into(),
            target: "arn:aws:iot:us-east-1:123456789012:cert/bbbb".into(),
        });
        assert_eq!((a.changes(), b.changes()), (1, 1));
        // A policy's new version may concern anyone.
        holds.changed(&RegistryChange::PolicyChanged {
            policy_name: "p".into(),
        });
        assert_eq!((a.changes(), a2.changes(), b.changes()), (2, 2, 2));
        holds.changed_all();
        assert_eq!((a.changes(), b.changes()), (3, 3));
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_missed() {
        let holds = Holds::default();
        let a = holds.hold("aaaa");
        holds.changed(&activated("aaaa"));
        // The change came before anyone waited: the wait ends at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), a.changed())
            .await
            .expect("the stored change ends the wait");
    }

    #[test]
    fn a_dropped_hold_is_forgotten() {
        let holds = Holds::default();
        let a = holds.hold("aaaa");
        let b = holds.hold("aaaa");
        drop(a);
        assert_eq!(holds.lock().get("aaaa").map(Vec::len), Some(1));
        drop(b);
        assert!(holds.lock().is_empty());
    }
}
