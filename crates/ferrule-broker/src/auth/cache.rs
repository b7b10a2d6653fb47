//! What the registry said about certificates, kept between their connections: a device that
//! reconnects is decided from memory instead of three database queries (its record, its
//! policies, its things).
//!
//! Correctness comes from the change feed, not from expiry: before the watcher acts on a change
//! it forgets what the change may have made stale (the one certificate a certificate's change
//! concerns, everything otherwise) and bumps the cache's generation; an answer read from the
//! database is only stored if nothing it concerns changed while it was being read. A CONNECT
//! decided from an entry that a change made stale is caught by the hold's own change count (see
//! `admit`).

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
    /// The generation of the last change concerning this certificate: reads begun before it
    /// are not stored.
    changed: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// The generation of the last time everything was forgotten.
    cleared: u64,
}

/// The cache, and the generation that orders reads against changes.
#[derive(Default)]
pub(crate) struct RegistryCache {
    entries: Mutex<Entries>,
    generation: AtomicU64,
}

impl RegistryCache {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation: read it before a lookup, and store under it.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets everything: the registry changed in a way that may concern any certificate.
    pub(crate) fn invalidate(&self) {
        // Bumped under the lock, so that no store of an older read slips in after the clear.
        let mut entries = self.entries();
        entries.cleared = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        entries.map.clear();
    }

    /// Forgets one certificate: its status, attachments or things changed.
    pub(crate) fn invalidate_certificate(&self, id: &str) {
        let mut entries = self.entries();
        let changed = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // Kept as an empty entry that remembers the change, so that a read begun before it is
        // not stored afterwards.
        entries.map.insert(
            id.to_owned(),
            Entry {
                changed,
                ..Entry::default()
            },
        );
    }

    fn store(&self, generation: u64, id: &str, update: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries();
        if generation < entries.cleared {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES && !entries.map.contains_key(id) {
            // Starting over forgets the changes entries remembered: reads begun before now
            // are not stored, this one included.
            entries.cleared = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
            entries.map.clear();
            return;
        }
        let entry = entries.map.entry(id.to_owned()).or_default();
        if generation < entry.changed {
            return;
        }
        update(entry);
    }

    /// The certificate's record, **without its PEM** (`pem` is empty): the cache keeps what
    /// a CONNECT decision and its events read, for every certificate that connected.
    pub(crate) fn record(&self, id: &str) -> Option<Arc<CertRecord>> {
        self.entries().map.get(id).and_then(|e| e.record.clone())
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
        self.entries().map.get(id).and_then(|e| e.policies.clone())
    }

    pub(crate) fn store_policies(&self, generation: u64, id: &str, policies: Arc<PolicySet>) {
        self.store(generation, id, |e| e.policies = Some(policies));
    }

    pub(crate) fn things(&self, id: &str) -> Option<Arc<[String]>> {
        self.entries().map.get(id).and_then(|e| e.things.clone())
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

    #[test]
    fn a_certificate_change_forgets_only_that_certificate() {
        let cache = RegistryCache::default();
        let generation = cache.generation();
        cache.store_record(generation, &record("a"));
        cache.store_record(generation, &record("b"));
        let read_before = cache.generation();
        cache.invalidate_certificate("a");
        assert!(cache.record("a").is_none());
        assert!(cache.record("b").is_some());
        // A read of `a` begun before its change is not stored; one of `c` is.
        cache.store_record(read_before, &record("a"));
        cache.store_record(read_before, &record("c"));
        assert!(cache.record("a").is_none());
        assert!(cache.record("c").is_some());
        // Read after the change: stored.
        cache.store_record(cache.generation(), &record("a"));
        assert!(cache.record("a").is_some());
        cache.store_policies(read_before, "b", Arc::new(PolicySet::Policies(Vec::new())));
        assert!(cache.policies("b").is_some());
    }
}
