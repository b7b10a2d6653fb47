//! Ferrule's persistent storage.
//!
//! For now this crate holds the broker's write-behind state: retained messages and persistent
//! MQTT sessions, which the broker keeps in memory and writes here so they survive a restart.
//! The device registry (certificates, CAs, policies, things) will join it behind the same
//! kind of surface, with a PostgreSQL implementation next to the SQLite one and one conformance
//! suite run against both.
//!
//! Dependencies: `sqlx` (SQLite today, PostgreSQL later), `thiserror`, `tracing`. No broker or
//! MQTT types: messages are opaque blobs the broker encodes, so this crate never needs to change
//! when the wire format does.
//!
//! Order of calls:
//! 1. [`BrokerStore::open_sqlite`] on the data dir's database file (or
//!    [`BrokerStore::open_in_memory`] in tests); this runs the migrations.
//! 2. At startup, [`BrokerStore::load_retained`] and [`BrokerStore::load_sessions`] to rebuild
//!    the in-memory state.
//! 3. While running, [`BrokerStore::put_retained`] / [`BrokerStore::delete_retained`] and
//!    [`BrokerStore::save_session`] / [`BrokerStore::delete_session`] as the state changes.
//!    Each call is atomic: a session is always replaced whole.
//! 4. At shutdown, [`BrokerStore::save_sessions`] for every dirty session in one transaction,
//!    then [`BrokerStore::close`].

mod broker;
mod error;
mod records;

pub use broker::BrokerStore;
pub use error::StoreError;
pub use records::{QueuedRecord, RetainedRecord, SessionRecord, SubscriptionRecord};
