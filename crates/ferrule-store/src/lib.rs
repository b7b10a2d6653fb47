//! Ferrule's persistent storage: the broker's write-behind state and the device registry.
//!
//! Two surfaces:
//! - [`BrokerStore`]: retained messages and persistent MQTT sessions, which the broker keeps in
//!   memory and writes here so they survive a restart. SQLite only: this state is per node.
//! - [`Registry`]: CA and device certificates, IoT policies, things, topic rules, tags and
//!   account settings, CloudWatch Logs groups, streams and events, IAM roles, users, keys,
//!   policies and sessions, and Lambda functions (configuration, code zip, permissions), on
//!   SQLite (default, in the data dir) or PostgreSQL (for several nodes).
//!   One conformance suite, `tests/registry_conformance.rs`, runs every registry test against
//!   both backends.
//!
//! Both may share the data dir's `ferrule.db`: they use separate tables, and one migration
//! history (`migrations/sqlite/`) covers the file. PostgreSQL has its own migrations
//! (`migrations/postgres/`, registry only).
//!
//! Dependencies: `sqlx` (SQLite and PostgreSQL, runtime-checked queries), `serde_json` (a
//! function's environment is stored as a JSON object), `thiserror`, `tokio` (the registry's
//! change feed), `tracing`. No broker or MQTT types: messages are opaque blobs
//! the broker encodes, and the registry stores policy documents and ARNs as text, so this crate
//! never needs to change when the wire format or the policy language does.
//!
//! Order of calls for the broker store:
//! 1. [`BrokerStore::open_sqlite`] on the data dir's database file (or
//!    [`BrokerStore::open_in_memory`] in tests); this runs the migrations.
//! 2. At startup, [`BrokerStore::load_retained`] and [`BrokerStore::load_sessions`] to rebuild
//!    the in-memory state.
//! 3. While running, [`BrokerStore::put_retained`] / [`BrokerStore::delete_retained`] and
//!    [`BrokerStore::save_session`] / [`BrokerStore::delete_session`] as the state changes.
//!    Each call is atomic: a session is always replaced whole.
//! 4. At shutdown, [`BrokerStore::save_sessions`] for every dirty session in one transaction,
//!    then [`BrokerStore::close`].
//!
//! Order of calls for the registry:
//! 1. [`Registry::open_sqlite`] or [`Registry::open_postgres`]; this runs the migrations.
//! 2. [`Registry::subscribe`] by whoever caches registry state (the broker's trust snapshot and
//!    per-connection policies), then the initial load ([`Registry::all_cas`], ...), so no
//!    change falls between the two.
//! 3. Reads and mutations from the control plane and the broker (JITR), in any order, from any
//!    number of tasks; each mutation is one transaction, and its [`RegistryChange`]s are sent
//!    after it commits.
//! 4. [`Registry::close`].

mod broker;
mod error;
mod records;
mod registry;
mod sqlite;

pub use broker::BrokerStore;
pub use error::StoreError;
pub use records::{
    QueuedRecord, RetainedChange, RetainedRecord, SessionRecord, SubscriptionRecord,
};
pub use registry::{
    AutoRegistrationStatus, CaRecord, CaStatus, CertRecord, CertificateMode, CertificateStatus,
    FilteredLogEvents, FunctionRecord, IamAccessKeyRecord, IamEntity, IamRoleRecord,
    IamSessionRecord, IamUserRecord, LogEventRecord, LogEventsPage, LogEventsQuery, LogFilterQuery,
    LogGroupRecord, LogStreamOrder, LogStreamRecord, MAX_ACCESS_KEYS_PER_USER, NewLogEvent, Page,
    PageRequest, ParseEnumError, PolicyRecord, PolicyVersionRecord, Registry, RegistryChange,
    RegistryError, RuleRecord, ThingRecord,
};
