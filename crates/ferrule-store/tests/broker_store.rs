//! `BrokerStore` against real SQLite: files in a temporary directory, and the in-memory database.
//!
//! The `suite_*` functions take an open store and are backend-agnostic, so the PostgreSQL
//! implementation can run the same ones.

use std::path::{Path, PathBuf};

use ferrule_store::{
    BrokerStore, QueuedRecord, RetainedChange, RetainedRecord, SessionRecord, StoreError,
    SubscriptionRecord,
};

fn retained(topic: &str, message: &[u8], stored_at_ms: i64) -> RetainedRecord {
    RetainedRecord {
        topic: topic.to_owned(),
        message: message.to_vec(),
        stored_at_ms,
    }
}

fn sub(filter: &str, options: u8, subscription_id: Option<u32>) -> SubscriptionRecord {
    SubscriptionRecord {
        filter: filter.to_owned(),
        options,
        subscription_id,
    }
}

fn queued(message: &[u8], packet_id: Option<u16>, pubrel_pending: bool) -> QueuedRecord {
    QueuedRecord {
        message: message.to_vec(),
        packet_id,
        pubrel_pending,
    }
}

/// A session with a bit of everything, including the extreme values of each field.
fn rich_session(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.to_owned(),
        protocol_level: 5,
        session_expiry_secs: u32::MAX,
        disconnected_at_ms: Some(1_764_000_000_123),
        subscriptions: vec![
            sub("sensors/+/temperature", 0b0010_0101, Some(268_435_455)),
            sub("$share/group/jobs/#", 1, None),
            sub("a/b", 2, Some(1)),
        ],
        queue: vec![
            queued(b"in flight, acked by nobody yet", Some(u16::MAX), false),
            queued(b"pubrec received", Some(1), true),
            queued(b"", None, false),
            queued(&[0, 255, 0, 1, 2, 3], None, false),
        ],
    }
}

fn small_session(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.to_owned(),
        protocol_level: 4,
        session_expiry_secs: 0,
        disconnected_at_ms: None,
        subscriptions: vec![sub("x/y", 1, None)],
        queue: Vec::new(),
    }
}

async fn suite_retained(store: &BrokerStore) {
    assert_eq!(store.load_retained().await.expect("load"), vec![]);
    store
        .put_retained(&retained("b/topic", b"first", 1))
        .await
        .expect("put b");
    store
        .put_retained(&retained("a/topic", b"", 2))
        .await
        .expect("put a");
    store
        .put_retained(&retained("b/topic", b"second", 3))
        .await
        .expect("replace b");
    store
        .put_retained(&retained("c/τοπικό/💡", &[0, 1, 2], 4))
        .await
        .expect("put c");
    store
        .delete_retained("c/τοπικό/💡")
        .await
        .expect("delete c");
    store
        .delete_retained("never/stored")
        .await
        .expect("delete of a missing topic is not an error");
    assert_eq!(
        store.load_retained().await.expect("load"),
        vec![
            retained("a/topic", b"", 2),
            retained("b/topic", b"second", 3)
        ]
    );
}

/// A batch applies its changes in order, in one transaction.
async fn suite_retained_batch(store: &BrokerStore) {
    store
        .put_retained(&retained("kept", b"old", 1))
        .await
        .expect("put kept");
    store
        .put_retained(&retained("gone", b"old", 1))
        .await
        .expect("put gone");
    store
        .write_retained(&[
            RetainedChange::Put(retained("kept", b"new", 2)),
            RetainedChange::Delete("gone".to_owned()),
            RetainedChange::Put(retained("put-then-deleted", b"m", 3)),
            RetainedChange::Delete("put-then-deleted".to_owned()),
            RetainedChange::Delete("deleted-then-put".to_owned()),
            RetainedChange::Put(retained("deleted-then-put", b"m", 4)),
            RetainedChange::Delete("never/stored".to_owned()),
        ])
        .await
        .expect("batch");
    store.write_retained(&[]).await.expect("an empty batch");
    assert_eq!(
        store.load_retained().await.expect("load"),
        vec![
            retained("deleted-then-put", b"m", 4),
            retained("kept", b"new", 2),
        ]
    );
    let many: Vec<RetainedChange> = (0..5000)
        .map(|i| RetainedChange::Put(retained(&format!("many/{i:04}"), b"x", i)))
        .collect();
    store.write_retained(&many).await.expect("a large batch");
    assert_eq!(store.load_retained().await.expect("load").len(), 5002);
}

async fn suite_sessions(store: &BrokerStore) {
    assert_eq!(store.load_sessions().await.expect("load"), vec![]);
    let rich = rich_session("rich");
    store.save_session(&rich).await.expect("save rich");
    store
        .save_session(&small_session("small"))
        .await
        .expect("save small");
    assert_eq!(
        store.load_sessions().await.expect("load"),
        vec![rich.clone(), small_session("small")]
    );

    // Replacing with fewer subscriptions and a shorter queue leaves nothing of the old one.
    let mut shrunk = rich.clone();
    shrunk.protocol_level = 4;
    shrunk.session_expiry_secs = 7200;
    shrunk.disconnected_at_ms = None;
    shrunk.subscriptions.truncate(1);
    shrunk.queue = vec![
        queued(b"new", Some(7), false),
        queued(b"newer", None, false),
    ];
    store.save_session(&shrunk).await.expect("replace rich");
    assert_eq!(
        store.load_sessions().await.expect("load"),
        vec![shrunk.clone(), small_session("small")]
    );

    store.delete_session("small").await.expect("delete small");
    store
        .delete_session("never-saved")
        .await
        .expect("delete of a missing session is not an error");
    assert_eq!(store.load_sessions().await.expect("load"), vec![shrunk]);

    store.save_sessions(&[]).await.expect("saving nothing");
}

async fn suite_many_sessions(store: &BrokerStore) {
    let sessions: Vec<SessionRecord> = (0..1000)
        .map(|i| {
            let mut s = rich_session(&format!("device-{i:04}"));
            s.disconnected_at_ms = Some(i);
            s
        })
        .collect();
    let started = std::time::Instant::now();
    store.save_sessions(&sessions).await.expect("save 1000");
    eprintln!("save_sessions(1000) took {:?}", started.elapsed());
    assert_eq!(store.load_sessions().await.expect("load"), sessions);

    // The same batch again replaces every session instead of adding to it.
    let replaced: Vec<SessionRecord> = sessions
        .iter()
        .map(|s| small_session(&s.client_id))
        .collect();
    store.save_sessions(&replaced).await.expect("replace 1000");
    assert_eq!(store.load_sessions().await.expect("load"), replaced);
}

/// Clones share one writer; concurrent writes queue instead of failing with SQLITE_BUSY.
async fn suite_concurrent_writes(store: &BrokerStore) {
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_retained(&retained(&format!("t/{i:02}"), b"m", i))
                    .await?;
                store
                    .save_session(&small_session(&format!("c{i:02}")))
                    .await?;
                store.load_sessions().await.map(|_| ())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("concurrent write");
    }
    assert_eq!(store.load_retained().await.expect("load").len(), 64);
    assert_eq!(store.load_sessions().await.expect("load").len(), 64);
}

async fn open_file(path: &Path) -> BrokerStore {
    BrokerStore::open_sqlite(path).await.expect("open sqlite")
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ferrule.db")
}

#[tokio::test]
async fn retained_in_file_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    suite_retained(&store).await;
    let before = store.load_retained().await.expect("load");
    store.close().await;

    let reopened = open_file(&path).await;
    assert_eq!(reopened.load_retained().await.expect("reload"), before);
    reopened.close().await;
}

#[tokio::test]
async fn retained_batch_in_file_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    suite_retained_batch(&store).await;
    let before = store.load_retained().await.expect("load");
    store.close().await;

    let reopened = open_file(&path).await;
    assert_eq!(reopened.load_retained().await.expect("reload"), before);
    reopened.close().await;
}

#[tokio::test]
async fn sessions_in_file_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    suite_sessions(&store).await;
    let before = store.load_sessions().await.expect("load");
    assert_eq!(before.len(), 1);
    store.close().await;

    let reopened = open_file(&path).await;
    assert_eq!(reopened.load_sessions().await.expect("reload"), before);
    reopened.close().await;
}

#[tokio::test]
async fn thousand_sessions_in_one_call_in_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    suite_many_sessions(&store).await;
    let before = store.load_sessions().await.expect("load");
    store.close().await;
    let reopened = open_file(&path).await;
    assert_eq!(reopened.load_sessions().await.expect("reload"), before);
    reopened.close().await;
}

#[tokio::test]
async fn concurrent_writes_in_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_file(&db_path(&dir)).await;
    suite_concurrent_writes(&store).await;
    store.close().await;
}

#[tokio::test]
async fn file_is_in_wal_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    store
        .put_retained(&retained("t", b"m", 1))
        .await
        .expect("put");
    assert!(
        dir.path().join("ferrule.db-wal").exists(),
        "a write in WAL mode leaves a -wal file next to the database"
    );
    store.close().await;
}

#[tokio::test]
async fn in_memory_runs_the_suite() {
    let store = BrokerStore::open_in_memory().await.expect("open");
    suite_retained(&store).await;
    suite_sessions(&store).await;
    store.close().await;

    let store = BrokerStore::open_in_memory().await.expect("open");
    suite_retained_batch(&store).await;
    store.close().await;

    let store = BrokerStore::open_in_memory().await.expect("open");
    suite_many_sessions(&store).await;
    store.close().await;

    let store = BrokerStore::open_in_memory().await.expect("open");
    suite_concurrent_writes(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-a-db.db");
    let garbage = "this is a text file, not an SQLite database\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write");

    let err = BrokerStore::open_sqlite(&path)
        .await
        .expect_err("garbage must not open");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the error names the file: {message}"
    );
    assert!(message.contains("not a database"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read back"),
        garbage,
        "the file is left untouched"
    );
}

#[tokio::test]
async fn a_missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("ferrule.db");
    let err = BrokerStore::open_sqlite(&path)
        .await
        .expect_err("cannot create a file in a missing directory");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn out_of_range_values_are_reported_not_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    store
        .save_session(&small_session("edited"))
        .await
        .expect("save");
    store.close().await;

    // Someone edits the file by hand.
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await
            .expect("connect");
    sqlx::query("UPDATE mqtt_sessions SET protocol_level = 300")
        .execute(&pool)
        .await
        .expect("update");
    pool.close().await;

    let store = open_file(&path).await;
    let err = store.load_sessions().await.expect_err("300 is not a u8");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("protocol_level"), "{message}");
    assert!(message.contains("\"edited\""), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    store.close().await;
}

#[tokio::test]
async fn calls_after_close_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = open_file(&path).await;
    store.close().await;
    let err = store
        .put_retained(&retained("t", b"m", 1))
        .await
        .expect_err("closed");
    assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
    assert!(err.to_string().contains("\"t\""), "{err}");
    assert!(store.load_sessions().await.is_err());
}
