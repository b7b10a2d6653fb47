//! The registry's two backends behind one small query interface, so each operation is
//! written once.
//!
//! Statements use `$1`-style placeholders, which both SQLite and PostgreSQL accept, and only
//! the column types both share (TEXT, BIGINT, BLOB/BYTEA, BOOLEAN). An operation opens a
//! [`Tx`] (a write transaction, serialised with every other registry write, a read snapshot,
//! or, for a read of one statement, a plain connection), runs [`Sql`] statements on it, and
//! commits; the changes it recorded are broadcast after the commit.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Connection, FromRow, Postgres, Sqlite, Transaction};
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::registry::error::RegistryError;
use crate::registry::records::RegistryChange;
use crate::sqlite::{self, BEGIN_WRITE};

/// At most this many connections to PostgreSQL per registry.
const POSTGRES_CONNECTIONS: u32 = 8;
/// Every registry write transaction on PostgreSQL first takes this transaction-scoped
/// advisory lock ("ferrule" in ASCII). Advisory locks are per database, so this serialises the
/// registry's writers (across nodes too) and nothing else.
const WRITE_LOCK_KEY: i64 = 0x0066_6572_7275_6c65;
/// Read transactions on PostgreSQL see one snapshot across their statements, like SQLite's.
const BEGIN_READ_POSTGRES: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The connection pools of one registry database.
#[derive(Debug)]
enum Pools {
    Sqlite {
        /// One connection: SQLite has one writer at a time.
        write: SqlitePool,
        /// Read-only connections.
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// A registry database: its pools, the name errors give it, and the change feed.
#[derive(Debug)]
pub(super) struct Db {
    pools: Pools,
    /// The file path, or the PostgreSQL URL without its password.
    name: PathBuf,
    changes: broadcast::Sender<RegistryChange>,
    /// Held from a write transaction's commit until its changes are sent. Writers already
    /// commit one at a time (they hold the database's write lock until then), so this keeps
    /// the feed in commit order: the next writer cannot commit before the previous one sent.
    feed_order: tokio::sync::Mutex<()>,
}

impl Db {
    /// Opens the SQLite file, running the migrations.
    pub(super) async fn open_sqlite(
        path: &Path,
        changes: broadcast::Sender<RegistryChange>,
    ) -> Result<Db, StoreError> {
        let sqlite::Pools { write, read } = sqlite::open(path).await?;
        tracing::debug!(path = %path.display(), "opened the registry on SQLite");
        Ok(Db {
            pools: Pools::Sqlite { write, read },
            name: path.to_path_buf(),
            changes,
            feed_order: tokio::sync::Mutex::new(()),
        })
    }

    /// Connects to PostgreSQL, running the migrations.
    pub(super) async fn open_postgres(
        url: &str,
        changes: broadcast::Sender<RegistryChange>,
    ) -> Result<Db, StoreError> {
        // Until the URL parses, all an error may show of it is its scheme: it may hold a
        // password.
        let unparsed = PathBuf::from("postgres://...");
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            path: unparsed,
            source,
        })?;
        let name = PathBuf::from(format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        ));
        // One direct connection first: an unreachable server fails now instead of after the
        // pool's acquire timeout, and the migrations run on it. PostgreSQL's migrator holds
        // an advisory lock, so nodes starting together are safe.
        let mut first = PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Open {
                path: name.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut first)
            .await
            .map_err(|source| StoreError::Migrate {
                path: name.clone(),
                source,
            })?;
        if let Err(e) = first.close().await {
            tracing::debug!(error = %e, "closing the migration connection");
        }
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: name.clone(),
                source,
            })?;
        tracing::debug!(database = %name.display(), "opened the registry on PostgreSQL");
        Ok(Db {
            pools: Pools::Postgres(pool),
            name,
            changes,
            feed_order: tokio::sync::Mutex::new(()),
        })
    }

    pub(super) fn changes(&self) -> &broadcast::Sender<RegistryChange> {
        &self.changes
    }

    pub(super) async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { write, read } => {
                write.close().await;
                read.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    /// Starts a write transaction for `operation` (named in errors), waiting for the registry's
    /// other writers to finish.
    pub(super) async fn write(
        &self,
        operation: impl Into<String>,
    ) -> Result<Tx<'_>, RegistryError> {
        let operation = operation.into();
        let inner = match &self.pools {
            Pools::Sqlite { write, .. } => write.begin_with(BEGIN_WRITE).await.map(TxInner::Sqlite),
            Pools::Postgres(pool) => pool.begin().await.map(TxInner::Postgres),
        };
        let mut tx = self.begun(operation, inner)?;
        if let TxInner::Postgres(_) = tx.inner {
            tx.execute(sql!("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK_KEY))
                .await?;
        }
        Ok(tx)
    }

    /// The [`Tx`] for `operation` on a connection just taken (or the error naming it).
    fn begun(
        &self,
        operation: String,
        inner: Result<TxInner, sqlx::Error>,
    ) -> Result<Tx<'_>, RegistryError> {
        Ok(Tx {
            inner: inner.map_err(|source| self.query_error(&operation, source))?,
            db: self,
            operation,
            changes: Vec::new(),
        })
    }

    /// Starts a read-only transaction for `operation`: one consistent snapshot.
    pub(super) async fn read(&self, operation: impl Into<String>) -> Result<Tx<'_>, RegistryError> {
        let operation = operation.into();
        let inner = match &self.pools {
            Pools::Sqlite { read, .. } => read.begin().await.map(TxInner::Sqlite),
            Pools::Postgres(pool) => pool
                .begin_with(BEGIN_READ_POSTGRES)
                .await
                .map(TxInner::Postgres),
        };
        self.begun(operation, inner)
    }

    /// A connection for `operation`, a read of **one statement**: a statement sees one
    /// consistent snapshot on its own, so it needs no transaction (which would cost a BEGIN and
    /// a ROLLBACK, each a round trip to the database's thread). Reads of several statements
    /// that must agree use [`Db::read`].
    pub(super) async fn read_one(
        &self,
        operation: impl Into<String>,
    ) -> Result<Tx<'_>, RegistryError> {
        let operation = operation.into();
        let inner = match &self.pools {
            Pools::Sqlite { read, .. } => read.acquire().await.map(TxInner::SqliteAutocommit),
            Pools::Postgres(pool) => pool.acquire().await.map(TxInner::PostgresAutocommit),
        };
        self.begun(operation, inner)
    }

    fn query_error(&self, operation: &str, source: sqlx::Error) -> RegistryError {
        RegistryError::Backend(StoreError::Query {
            operation: operation.to_owned(),
            path: self.name.clone(),
            source,
        })
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Self {
        Arg::Bytes(v.to_vec())
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A statement and its arguments. The text is only ever built from string literals in this
/// crate and `$n` placeholders, never from values, which is what makes the dynamic SQL safe.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    /// A statement whose placeholders are bound with [`Sql::arg`] in order.
    pub(super) fn new(text: &'static str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Binds the next `$n` already written in the text.
    pub(super) fn arg(mut self, value: impl Into<Arg>) -> Sql {
        self.args.push(value.into());
        self
    }

    /// Appends literal SQL.
    pub(super) fn push(&mut self, text: &'static str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(super) fn bind(&mut self, value: impl Into<Arg>) -> &mut Sql {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }
}

/// `sql!("... $1 ... $2", a, b)`: a fixed statement with its arguments.
macro_rules! sql {
    ($text:expr $(, $arg:expr)* $(,)?) => {
        $crate::registry::db::Sql::new($text) $(.arg($arg))*
    };
}
pub(super) use sql;

/// Binds every argument of `args` to the sqlx query `q`.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A row type both backends can decode (in practice: tuples of `String`, `i64`, `Vec<u8>`,
/// `bool` and their `Option`s).
pub(super) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
    /// A plain connection, each statement its own transaction ([`Db::read_one`]).
    SqliteAutocommit(PoolConnection<Sqlite>),
    PostgresAutocommit(PoolConnection<Postgres>),
}

/// The connection a [`Tx`]'s statements run on.
enum On<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl TxInner {
    fn on(&mut self) -> On<'_> {
        match self {
            TxInner::Sqlite(tx) => On::Sqlite(tx),
            TxInner::SqliteAutocommit(conn) => On::Sqlite(conn),
            TxInner::Postgres(tx) => On::Postgres(tx),
            TxInner::PostgresAutocommit(conn) => On::Postgres(conn),
        }
    }
}

/// An open transaction on either backend. Dropping it rolls back.
pub(super) struct Tx<'db> {
    inner: TxInner,
    db: &'db Db,
    operation: String,
    changes: Vec<RegistryChange>,
}

impl Tx<'_> {
    /// Runs a statement; returns how many rows it changed.
    pub(super) async fn execute(&mut self, sql: Sql) -> Result<u64, RegistryError> {
        let result = match self.inner.on() {
            On::Sqlite(conn) => bind_all!(sqlx::query(AssertSqlSafe(sql.text)), sql.args)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
            On::Postgres(conn) => bind_all!(sqlx::query(AssertSqlSafe(sql.text)), sql.args)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()),
        };
        result.map_err(|e| self.failed(e))
    }

    /// Runs a query and decodes every row.
    pub(super) async fn fetch_all<T: Row>(&mut self, sql: Sql) -> Result<Vec<T>, RegistryError> {
        let result = match self.inner.on() {
            On::Sqlite(conn) => {
                bind_all!(sqlx::query_as::<_, T>(AssertSqlSafe(sql.text)), sql.args)
                    .fetch_all(conn)
                    .await
            }
            On::Postgres(conn) => {
                bind_all!(sqlx::query_as::<_, T>(AssertSqlSafe(sql.text)), sql.args)
                    .fetch_all(conn)
                    .await
            }
        };
        result.map_err(|e| self.failed(e))
    }

    /// Runs a query and decodes its first row, if any.
    pub(super) async fn fetch_optional<T: Row>(
        &mut self,
        sql: Sql,
    ) -> Result<Option<T>, RegistryError> {
        let result = match self.inner.on() {
            On::Sqlite(conn) => {
                bind_all!(sqlx::query_as::<_, T>(AssertSqlSafe(sql.text)), sql.args)
                    .fetch_optional(conn)
                    .await
            }
            On::Postgres(conn) => {
                bind_all!(sqlx::query_as::<_, T>(AssertSqlSafe(sql.text)), sql.args)
                    .fetch_optional(conn)
                    .await
            }
        };
        result.map_err(|e| self.failed(e))
    }

    /// Runs a query returning one BIGINT (`COUNT(*)`, say); 0 if it returns no row.
    pub(super) async fn fetch_i64(&mut self, sql: Sql) -> Result<i64, RegistryError> {
        let row: Option<(i64,)> = self.fetch_optional(sql).await?;
        Ok(row.map_or(0, |(n,)| n))
    }

    /// Records a change to broadcast once the transaction commits.
    pub(super) fn emit(&mut self, change: RegistryChange) {
        self.changes.push(change);
    }

    /// Commits, then broadcasts the recorded changes.
    pub(super) async fn commit(self) -> Result<(), RegistryError> {
        let Tx {
            inner,
            db,
            operation,
            changes,
        } = self;
        let _in_order = db.feed_order.lock().await;
        let result = match inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
            // Each statement committed on its own.
            TxInner::SqliteAutocommit(_) | TxInner::PostgresAutocommit(_) => Ok(()),
        };
        result.map_err(|source| db.query_error(&operation, source))?;
        for change in changes {
            // No receivers is fine: nobody is caching anything.
            let _ = db.changes.send(change);
        }
        Ok(())
    }

    /// An error for a stored value no Ferrule would write.
    pub(super) fn corrupt(&self, detail: String) -> RegistryError {
        RegistryError::Backend(StoreError::Corrupt {
            path: self.db.name.clone(),
            detail,
        })
    }

    fn failed(&self, source: sqlx::Error) -> RegistryError {
        self.db.query_error(&self.operation, source)
    }
}

/// A fresh opaque generation id, formatted like a UUID. Unique, not secret: seeded from the
/// standard library's per-process random hash keys, a counter and the clock.
pub(super) fn new_generation_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let random = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u64(salt);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    let (a, b) = (random(1), random(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}
