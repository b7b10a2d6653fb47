//! The broker's write-behind state in SQLite: retained messages and persistent sessions.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::error::StoreError;
use crate::records::{
    QueuedRecord, RetainedChange, RetainedRecord, SessionRecord, SubscriptionRecord,
};
use crate::sqlite::{self, BEGIN_WRITE};

/// The broker's persistent store: retained messages and persistent MQTT sessions.
///
/// Cheap to clone (the clones share the connection pools). SQLite allows one writer at a time,
/// so every write goes through a pool of exactly one connection, and reads use a separate
/// pool of read-only connections that WAL mode lets run next to the writer.
#[derive(Debug, Clone)]
pub struct BrokerStore {
    /// Exactly one connection: all writes queue here instead of fighting over SQLite's lock.
    write: SqlitePool,
    /// Connections with `query_only` set. For an in-memory database this is the write pool,
    /// because each connection to `:memory:` would otherwise see its own empty database.
    read: SqlitePool,
    /// Named in every error.
    path: Arc<PathBuf>,
}

impl BrokerStore {
    /// Opens (creating it if missing) the SQLite database file at `path` and brings its schema
    /// up to date.
    ///
    /// The database runs in WAL mode with `synchronous=NORMAL` (a crash loses at most the last
    /// transactions, never consistency), a busy timeout and foreign keys on. The parent
    /// directory must exist. A file that is not an SQLite database gives
    /// [`StoreError::Open`] and is left untouched.
    pub async fn open_sqlite(path: &Path) -> Result<BrokerStore, StoreError> {
        let sqlite::Pools { write, read } = sqlite::open(path).await?;
        tracing::debug!(path = %path.display(), "opened the broker store");
        Ok(BrokerStore {
            write,
            read,
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Opens a fresh, empty in-memory database (for tests). It disappears when the store is
    /// closed or the last clone is dropped.
    pub async fn open_in_memory() -> Result<BrokerStore, StoreError> {
        let path = Path::new(":memory:");
        // One connection, kept open forever: the database lives exactly as long as it does.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                SqliteConnectOptions::new()
                    .in_memory(true)
                    .foreign_keys(true),
            )
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        sqlite::migrate(&pool, path).await?;
        Ok(BrokerStore {
            read: pool.clone(),
            write: pool,
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Every retained message, ordered by topic.
    pub async fn load_retained(&self) -> Result<Vec<RetainedRecord>, StoreError> {
        let rows: Vec<(String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT topic, message, stored_at_ms FROM retained_messages ORDER BY topic",
        )
        .fetch_all(&self.read)
        .await
        .map_err(self.failed("loading retained messages"))?;
        Ok(rows
            .into_iter()
            .map(|(topic, message, stored_at_ms)| RetainedRecord {
                topic,
                message,
                stored_at_ms,
            })
            .collect())
    }

    /// Stores `rec`, replacing the retained message of the same topic if there is one.
    pub async fn put_retained(&self, rec: &RetainedRecord) -> Result<(), StoreError> {
        let operation = format!("storing the retained message of {:?}", rec.topic);
        let failed = || self.failed(&operation);
        let mut conn = self.write.acquire().await.map_err(failed())?;
        put_retained(&mut conn, rec).await.map_err(failed())
    }

    /// Removes the retained message of `topic`; removing one that does not exist is not an
    /// error.
    pub async fn delete_retained(&self, topic: &str) -> Result<(), StoreError> {
        let operation = format!("deleting the retained message of {topic:?}");
        let failed = || self.failed(&operation);
        let mut conn = self.write.acquire().await.map_err(failed())?;
        delete_retained(&mut conn, topic).await.map_err(failed())
    }

    /// Applies `changes` in order, in one transaction: all of them or none. One commit for many
    /// changes is what lets a burst of retained messages be written as fast as it arrives.
    pub async fn write_retained(&self, changes: &[RetainedChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let what = format!("writing {} retained message change(s)", changes.len());
        let failed = || self.failed(&what);
        let mut tx = self.write.begin_with(BEGIN_WRITE).await.map_err(failed())?;
        for change in changes {
            match change {
                RetainedChange::Put(rec) => put_retained(&mut tx, rec).await,
                RetainedChange::Delete(topic) => delete_retained(&mut tx, topic).await,
            }
            .map_err(failed())?;
        }
        tx.commit().await.map_err(failed())?;
        Ok(())
    }

    /// Stores `s`, replacing the whole session of the same client id (row, subscriptions and
    /// queue) in one transaction.
    pub async fn save_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.save_sessions(std::slice::from_ref(s)).await
    }

    /// Stores every session of `s` as [`BrokerStore::save_session`] does, all in one
    /// transaction: either all of them are saved or none is.
    pub async fn save_sessions(&self, s: &[SessionRecord]) -> Result<(), StoreError> {
        if s.is_empty() {
            return Ok(());
        }
        let what = SessionsDescription(s);
        let mut tx = self
            .write
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(self.failed(format_args!("starting a transaction for saving {what}")))?;
        for session in s {
            write_session(&mut tx, session)
                .await
                .map_err(self.failed(format_args!("saving session {:?}", session.client_id)))?;
        }
        tx.commit()
            .await
            .map_err(self.failed(format_args!("committing {what}")))?;
        Ok(())
    }

    /// Removes the session of `client_id` with its subscriptions and queue; removing one that
    /// does not exist is not an error.
    pub async fn delete_session(&self, client_id: &str) -> Result<(), StoreError> {
        let operation = format!("deleting session {client_id:?}");
        let failed = || self.failed(&operation);
        let mut tx = self.write.begin_with(BEGIN_WRITE).await.map_err(failed())?;
        delete_session_children(&mut tx, client_id)
            .await
            .map_err(failed())?;
        sqlx::query("DELETE FROM mqtt_sessions WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(failed())?;
        tx.commit().await.map_err(failed())?;
        Ok(())
    }

    /// Every persistent session, ordered by client id, each with its subscriptions and queue in
    /// the order they were saved.
    pub async fn load_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let failed = || self.failed("loading sessions");
        // One read transaction, so the three queries see the same snapshot.
        let mut tx = self.read.begin().await.map_err(failed())?;
        let session_rows: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT client_id, protocol_level, session_expiry_secs, disconnected_at_ms \
             FROM mqtt_sessions ORDER BY client_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(failed())?;
        let subscription_rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT client_id, filter, options, subscription_id \
             FROM mqtt_session_subscriptions ORDER BY client_id, position",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(failed())?;
        let queue_rows: Vec<(String, Vec<u8>, Option<i64>, bool)> = sqlx::query_as(
            "SELECT client_id, message, packet_id, pubrel_pending \
             FROM mqtt_session_queue ORDER BY client_id, seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(failed())?;
        tx.rollback().await.map_err(failed())?;

        let mut sessions = Vec::with_capacity(session_rows.len());
        let mut index = HashMap::with_capacity(session_rows.len());
        for (client_id, protocol_level, session_expiry_secs, disconnected_at_ms) in session_rows {
            let column = |name: &str| format!("mqtt_sessions.{name} of {client_id:?}");
            let session = SessionRecord {
                protocol_level: self.narrow(protocol_level, || column("protocol_level"))?,
                session_expiry_secs: self
                    .narrow(session_expiry_secs, || column("session_expiry_secs"))?,
                disconnected_at_ms,
                subscriptions: Vec::new(),
                queue: Vec::new(),
                client_id: client_id.clone(),
            };
            index.insert(client_id, sessions.len());
            sessions.push(session);
        }
        for (client_id, filter, options, subscription_id) in subscription_rows {
            let Some(&i) = index.get(&client_id) else {
                self.warn_orphan("mqtt_session_subscriptions", &client_id);
                continue;
            };
            let column = |name: &str| {
                format!("mqtt_session_subscriptions.{name} of {client_id:?} filter {filter:?}")
            };
            let subscription = SubscriptionRecord {
                options: self.narrow(options, || column("options"))?,
                subscription_id: subscription_id
                    .map(|id| self.narrow(id, || column("subscription_id")))
                    .transpose()?,
                filter: filter.clone(),
            };
            sessions[i].subscriptions.push(subscription);
        }
        for (client_id, message, packet_id, pubrel_pending) in queue_rows {
            let Some(&i) = index.get(&client_id) else {
                self.warn_orphan("mqtt_session_queue", &client_id);
                continue;
            };
            let queued = QueuedRecord {
                message,
                packet_id: packet_id
                    .map(|id| {
                        self.narrow(id, || {
                            format!("mqtt_session_queue.packet_id of {client_id:?}")
                        })
                    })
                    .transpose()?,
                pubrel_pending,
            };
            sessions[i].queue.push(queued);
        }
        Ok(sessions)
    }

    /// Waits for running queries to finish and closes every connection. Later calls fail.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Maps a driver error to [`StoreError::Query`], formatting the operation only on failure.
    fn failed<'a>(
        &'a self,
        operation: impl fmt::Display + 'a,
    ) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
        move |source| StoreError::Query {
            operation: operation.to_string(),
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Converts a stored integer back to the width the record uses.
    fn narrow<T: TryFrom<i64>>(
        &self,
        value: i64,
        column: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        T::try_from(value).map_err(|_| StoreError::Corrupt {
            path: self.path.to_path_buf(),
            detail: format!("{} is {value}, out of range", column()),
        })
    }

    /// Foreign keys make orphans impossible unless someone edited the file with them off;
    /// skipping the row loses nothing the broker could use.
    fn warn_orphan(&self, table: &str, client_id: &str) {
        tracing::warn!(
            path = %self.path.display(),
            table,
            client_id,
            "skipping a row whose session does not exist"
        );
    }
}

async fn delete_session_children(
    conn: &mut SqliteConnection,
    client_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM mqtt_session_subscriptions WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM mqtt_session_queue WHERE client_id = $1")
        .bind(client_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Replaces one session inside the caller's transaction.
async fn write_session(conn: &mut SqliteConnection, s: &SessionRecord) -> Result<(), sqlx::Error> {
    delete_session_children(conn, &s.client_id).await?;
    sqlx::query(
        "INSERT INTO mqtt_sessions \
         (client_id, protocol_level, session_expiry_secs, disconnected_at_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id) DO UPDATE SET \
         protocol_level = excluded.protocol_level, \
         session_expiry_secs = excluded.session_expiry_secs, \
         disconnected_at_ms = excluded.disconnected_at_ms",
    )
    .bind(s.client_id.as_str())
    .bind(i64::from(s.protocol_level))
    .bind(i64::from(s.session_expiry_secs))
    .bind(s.disconnected_at_ms)
    .execute(&mut *conn)
    .await?;
    for (position, sub) in (0_i64..).zip(&s.subscriptions) {
        sqlx::query(
            "INSERT INTO mqtt_session_subscriptions \
             (client_id, position, filter, options, subscription_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.client_id.as_str())
        .bind(position)
        .bind(sub.filter.as_str())
        .bind(i64::from(sub.options))
        .bind(sub.subscription_id.map(i64::from))
        .execute(&mut *conn)
        .await?;
    }
    for (seq, queued) in (0_i64..).zip(&s.queue) {
        sqlx::query(
            "INSERT INTO mqtt_session_queue \
             (client_id, seq, message, packet_id, pubrel_pending) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.client_id.as_str())
        .bind(seq)
        .bind(queued.message.as_slice())
        .bind(queued.packet_id.map(i64::from))
        .bind(queued.pubrel_pending)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn put_retained(conn: &mut SqliteConnection, rec: &RetainedRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO retained_messages (topic, message, stored_at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (topic) DO UPDATE \
         SET message = excluded.message, stored_at_ms = excluded.stored_at_ms",
    )
    .bind(rec.topic.as_str())
    .bind(rec.message.as_slice())
    .bind(rec.stored_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

async fn delete_retained(conn: &mut SqliteConnection, topic: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM retained_messages WHERE topic = $1")
        .bind(topic)
        .execute(conn)
        .await?;
    Ok(())
}

/// Names a batch of sessions in an error without listing a thousand client ids.
struct SessionsDescription<'a>(&'a [SessionRecord]);

impl fmt::Display for SessionsDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "session {:?}", one.client_id),
            many => write!(f, "{} sessions", many.len()),
        }
    }
}
