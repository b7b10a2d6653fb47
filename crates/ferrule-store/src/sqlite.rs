//! Opening the SQLite database file: shared by the broker store and the registry, which may
//! live in the same file.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;

/// How long a statement waits for a lock held by another connection or process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Readers never block the writer in WAL mode; two is plenty on the machines we target.
const READ_CONNECTIONS: u32 = 2;
/// `BEGIN IMMEDIATE` takes the write lock up front, so a transaction never fails half-way
/// through trying to upgrade a read lock.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The two pools of one database file.
pub(crate) struct Pools {
    /// Exactly one connection: all writes queue here instead of fighting over SQLite's lock.
    pub(crate) write: SqlitePool,
    /// Connections with `query_only` set, which WAL mode lets run next to the writer.
    pub(crate) read: SqlitePool,
}

/// Opens (creating it if missing) the database file at `path` in WAL mode with
/// `synchronous=NORMAL`, a busy timeout and foreign keys on, and brings its schema up to date.
pub(crate) async fn open(path: &Path) -> Result<Pools, StoreError> {
    let base = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Normal);
    let open_error = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };

    // One opening at a time in this process: the broker store and the registry open the same
    // new file together, and switching a file to WAL while another connection is doing the
    // same can fail at once with "database is locked", whatever the busy timeout.
    static ONE_OPENING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = ONE_OPENING.lock().await;
    // WAL is a property of the file, so setting it on the writer is enough for readers.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(
            base.clone()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .map_err(open_error)?;
    migrate(&write, path).await?;
    drop(turn);

    let read = SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .min_connections(0)
        .connect_with(base.pragma("query_only", "ON"))
        .await
        .map_err(open_error)?;
    Ok(Pools { write, read })
}

/// Applies the SQLite migrations (broker state and registry: one history for the file).
///
/// SQLite's migrator takes no lock, so two migrators on one new file (the broker store and
/// the registry, opened together) would both try to apply a migration, and one would fail.
/// In one process a mutex makes them take turns: the second finds everything applied. For
/// two processes on one data dir (not a supported setup, but it should not brick the file) a
/// failure is retried once, which then finds the other's work done.
pub(crate) async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let migrator = sqlx::migrate!("./migrations/sqlite");
    if let Err(first) = migrator.run(pool).await {
        tracing::debug!(path = %path.display(), error = %first, "retrying the migrations once");
        migrator
            .run(pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}
