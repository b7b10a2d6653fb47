//! The one error type of this crate.

use std::path::PathBuf;

/// Why a storage operation failed.
///
/// Every variant names the database (its file path, `:memory:`, or for PostgreSQL the URL
/// without its password, in the `path` field) and the operation, so the message alone tells an
/// operator which database to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened: the file is missing and cannot be created, is not
    /// readable, or is not an SQLite database; or the PostgreSQL URL is malformed, or the
    /// server is unreachable or refuses the login.
    #[error("cannot open the database {}: {source}", path.display())]
    Open {
        /// The database file, or the PostgreSQL URL without its password.
        path: PathBuf,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied, for example because the database was written
    /// by a newer Ferrule.
    #[error("cannot migrate the database {}: {source}", path.display())]
    Migrate {
        /// The database file, or the PostgreSQL URL without its password.
        path: PathBuf,
        /// What the migrator said.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed (I/O error, disk full, corruption found while reading, lock timeout).
    #[error("{operation} failed on the database {}: {source}", path.display())]
    Query {
        /// What the store was doing, for example "saving session \"c1\"".
        operation: String,
        /// The database file, or the PostgreSQL URL without its password.
        path: PathBuf,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value is outside the range its type allows: the database was edited by
    /// something other than Ferrule, or is damaged.
    #[error("the database {} holds an invalid value: {detail}", path.display())]
    Corrupt {
        /// The database file, or the PostgreSQL URL without its password.
        path: PathBuf,
        /// Which table, row and column, and the value found.
        detail: String,
    },
}
