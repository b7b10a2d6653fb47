//! What the registry said about certificates, kept between their connections: a device that
//! reconnects is decided from memory instead of three database queries (its record, its
//! policies, its things).
//!
//! Correctness comes from the change feed, not from expiry: the watcher empties the cache and
//! bumps its generation before it acts on any change, and an answer read from the database is
//! only stored if no change arrived while it was being read. A CONNECT decided from an entry
//! that a change made stale is caught by the same generation check (see `admit`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ferrule_store::CertRecord;

use super::PolicySet;

/// Most certificates remembered; past it the cache starts over.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default, Clone)]
struct Entry {
    record: Option<Arc<CertRecord>>,
    policies: Option<Arc<PolicySet>>,
    things: Option<Arc<[String]>>,
}

/// The cache, and the generation that says whether it changed.
#[derive(Default)]
pub(crate) struct RegistryCache {
    entries: Mutex<HashMap<String, Entry>>,
    generation: AtomicU64,
}

impl RegistryCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation: read it before a lookup, and store only under the same one.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets everything: the registry changed.
    pub(crate) fn invalidate(&self) {
        // Bumped under the lock, so that no store of an older read slips in after the clear.
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn store(&self, generation: u64, id: &str, update: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(id) {
            entries.clear();
        }
        update(entries.entry(id.to_owned()).or_default());
    }

    /// The certificate's record, **without its PEM** (`pem` is empty): the cache keeps what
    /// a CONNECT decision and its events read, for every certificate that connected.
    pub(crate) fn record(&self, id: &str) -> Option<Arc<CertRecord>> {
        self.entries().get(id).and_then(|e| e.record.clone())
    }

    pub(crate) fn store_record(&self, generation: u64, record: &CertRecord) {
        let record = Arc::new(CertRecord {
            pem: String::new(),
            ..record.clone()
        });
        let id = record.id.clone();
        self.store(generation, &id, |e| e.record = Some(record));
    }

    pub(crate) fn policies(&self, id: &str) -> Option<Arc<PolicySet>> {
        self.entries().get(id).and_then(|e| e.policies.clone())
    }

    pub(crate) fn store_policies(&self, generation: u64, id: &str, policies: Arc<PolicySet>) {
        self.store(generation, id, |e| e.policies = Some(policies));
    }

    pub(crate) fn things(&self, id: &str) -> Option<Arc<[String]>> {
        self.entries().get(id).and_then(|e| e.things.clone())
    }

    pub(crate) fn store_things(&self, generation: u64, id: &str, things: Arc<[String]>) {
        self.store(generation, id, |e| e.things = Some(things));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Arc<CertRecord> {
        Arc::new(CertRecord {
            id: id.into(),
            pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".into(),
            ca_id: None,
            issuer_der: Vec::new(),
            status: ferrule_store::CertificateStatus::Active,
            mode: ferrule_store::CertificateMode::Default,
            owned_by: "123456789012".into(),
            created_ms: 0,
            modified_ms: 0,
            customer_version: 1,
            generation_id: String::new(),
            not_before_ms: 0,
            not_after_ms: 0,
        })
    }

    #[test]
    fn a_read_older_than_a_change_is_not_stored() {
        let cache = RegistryCache::default();
        let before = cache.generation();
        cache.invalidate();
        cache.store_record(before, &record("a"));
        assert!(cache.record("a").is_none());
        cache.store_record(cache.generation(), &record("a"));
        // Kept without its PEM, which no decision reads.
        assert!(cache.record("a").is_some_and(|r| r.pem.is_empty()));
        cache.invalidate();
        assert!(cache.record("a").is_none());
    }
}
