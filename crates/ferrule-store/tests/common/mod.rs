//! The registry conformance suite's harness: one fresh registry per test on each backend,
//! record fixtures, and assertion helpers.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new schema in the database at
//! `FERRULE_TEST_POSTGRES_URL` (default [`DEFAULT_POSTGRES_URL`]), dropped after the test
//! whether it passed or not. A PostgreSQL server that cannot be reached fails the test: the
//! suite never skips a backend silently.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrule_store::{
    AutoRegistrationStatus, CaRecord, CaStatus, CertRecord, CertificateMode, CertificateStatus,
    Page, PageRequest, Registry, RegistryChange, RegistryError, RuleRecord, ThingRecord,
};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::broadcast;

/// Where the PostgreSQL half of the suite runs unless `FERRULE_TEST_POSTGRES_URL` says
/// otherwise. Each test gets its own schema in that database.
pub(crate) const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The account every fixture belongs to.
pub(crate) const ACCOUNT: &str = "123456789012";

/// Awaits a registry call that must succeed; a failure names the call and the error.
macro_rules! ok {
    ($call:expr) => {
        match $call.await {
            Ok(value) => value,
            Err(e) => panic!("{} failed: {e} ({e:?})", stringify!($call)),
        }
    };
}

/// Awaits a registry call that must fail, and returns its error.
macro_rules! err {
    ($call:expr) => {
        match $call.await {
            Ok(value) => panic!("{} succeeded with {value:?}", stringify!($call)),
            Err(e) => e,
        }
    };
}

/// Asserts that an error is the given `RegistryError` variant, e.g.
/// `assert_variant!(e, RegistryError::NotFound { kind: "Thing", .. })`.
macro_rules! assert_variant {
    ($error:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $error {
            $pattern $(if $guard)? => {}
            other => panic!("expected {}, got {other:?} ({other})", stringify!($pattern)),
        }
    };
}

/// Runs `test` on a registry in a new SQLite file.
pub(crate) async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Registry) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::open_sqlite(&dir.path().join("ferrule.db"))
        .await
        .expect("opening the registry on a new SQLite file");
    let outcome = tokio::spawn(test(registry.clone())).await;
    registry.close().await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `test` on a registry in a new PostgreSQL schema, dropped afterwards.
pub(crate) async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Registry) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = TestSchema::create().await;
    let registry = Registry::open_postgres(&schema.url)
        .await
        .expect("opening the registry on a new PostgreSQL schema");
    let outcome = tokio::spawn(test(registry.clone())).await;
    registry.close().await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A uniquely named, empty PostgreSQL schema for one test, and a URL whose connections use
/// it (`search_path`): the registry's unqualified tables, its migration history included, go
/// there. A schema costs milliseconds where a database costs most of a second.
pub(crate) struct TestSchema {
    admin: PgConnection,
    name: String,
    /// The server's URL with `search_path` set to the schema.
    pub(crate) url: String,
}

impl TestSchema {
    pub(crate) async fn create() -> TestSchema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server_url = std::env::var("FERRULE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {server_url} ({e}). The registry suite runs \
                 every test on PostgreSQL too: start it (.ci/run does) or point \
                 FERRULE_TEST_POSTGRES_URL at a server where this user may create schemas"
                )
            });
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "ferrule_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The name is made of digits, letters and underscores only: safe to splice in.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating the schema {name}: {e}"));
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{separator}options[search_path]={name}");
        TestSchema { admin, name, url }
    }

    pub(crate) async fn drop(mut self) {
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut self.admin)
            .await
        {
            // The test's own outcome matters more; a leftover schema is only clutter.
            eprintln!("could not drop the test schema {}: {e}", self.name);
        }
        let _ = self.admin.close().await;
    }
}

/// A 64-hex-digit id, as certificate ids are.
pub(crate) fn hex_id(n: u64) -> String {
    format!("{n:064x}")
}

pub(crate) fn cert_arn(id: &str) -> String {
    format!("arn:aws:iot:us-east-1:{ACCOUNT}:cert/{id}")
}

pub(crate) fn ca_arn(id: &str) -> String {
    format!("arn:aws:iot:us-east-1:{ACCOUNT}:cacert/{id}")
}

pub(crate) fn policy_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:{ACCOUNT}:policy/{name}")
}

pub(crate) fn thing_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:{ACCOUNT}:thing/{name}")
}

/// An INACTIVE CA with auto-registration off, id `hex_id(n)`.
pub(crate) fn ca_record(n: u64, subject_der: &[u8], created_ms: i64) -> CaRecord {
    CaRecord {
        id: hex_id(n),
        pem: format!("-----BEGIN CERTIFICATE-----\nCA{n}\n-----END CERTIFICATE-----\n"),
        subject_der: subject_der.to_vec(),
        status: CaStatus::Inactive,
        auto_registration: AutoRegistrationStatus::Disable,
        mode: CertificateMode::Default,
        registration_config: None,
        owned_by: ACCOUNT.to_owned(),
        created_ms,
        modified_ms: created_ms,
        customer_version: 1,
        generation_id: format!("ca-generation-{n}"),
        not_before_ms: 1_700_000_000_000,
        not_after_ms: 2_000_000_000_000,
    }
}

/// A device certificate with id `hex_id(n)`.
pub(crate) fn cert_record(
    n: u64,
    ca_id: Option<&str>,
    created_ms: i64,
    status: CertificateStatus,
) -> CertRecord {
    CertRecord {
        id: hex_id(n),
        pem: format!("-----BEGIN CERTIFICATE-----\nDEVICE{n}\n-----END CERTIFICATE-----\n"),
        ca_id: ca_id.map(str::to_owned),
        issuer_der: vec![0x30, 0x03, 0x31, 0x01, (n % 256) as u8],
        status,
        mode: if ca_id.is_some() {
            CertificateMode::Default
        } else {
            CertificateMode::SniOnly
        },
        owned_by: ACCOUNT.to_owned(),
        created_ms,
        modified_ms: created_ms,
        customer_version: 1,
        generation_id: format!("cert-generation-{n}"),
        not_before_ms: 1_700_000_000_000,
        not_after_ms: 2_000_000_000_000,
    }
}

pub(crate) fn thing_record(
    name: &str,
    thing_type_name: Option<&str>,
    attributes: &[(&str, &str)],
) -> ThingRecord {
    ThingRecord {
        name: name.to_owned(),
        thing_id: format!("00000000-0000-4000-8000-{:012x}", fnv(name)),
        thing_type_name: thing_type_name.map(str::to_owned),
        attributes: attrs(attributes),
        version: 1,
        billing_group_name: None,
        created_ms: 1_750_000_000_000,
    }
}

pub(crate) fn rule_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:{ACCOUNT}:rule/{name}")
}

/// A topic rule on `topic_pattern`, its payload naming it so each rule's is distinct.
pub(crate) fn rule_record(
    name: &str,
    topic_pattern: &str,
    disabled: bool,
    created_ms: i64,
) -> RuleRecord {
    RuleRecord {
        name: name.to_owned(),
        topic_pattern: topic_pattern.to_owned(),
        payload: format!(
            r#"{{"sql":"SELECT * FROM '{topic_pattern}'","actions":[],"description":"{name}"}}"#
        ),
        disabled,
        created_ms,
    }
}

pub(crate) fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A stable 48-bit hash for deterministic thing ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) & 0xffff_ffff_ffff
}

/// Every change received so far, without waiting (changes are sent before the mutating call
/// returns).
pub(crate) fn drain(rx: &mut broadcast::Receiver<RegistryChange>) -> Vec<RegistryChange> {
    let mut changes = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(change) => changes.push(change),
            Err(broadcast::error::TryRecvError::Empty) => return changes,
            Err(e) => panic!("the change feed failed: {e}"),
        }
    }
}

pub(crate) fn page(page_size: usize, ascending: bool, marker: Option<String>) -> PageRequest {
    PageRequest {
        marker,
        page_size,
        ascending,
    }
}

/// Walks a list page by page; returns the items in order and each page's length. Panics if
/// a page is larger than asked, or a non-final page has no marker, or the walk does not end.
pub(crate) async fn walk<T, F, Fut>(
    page_size: usize,
    ascending: bool,
    mut list: F,
) -> (Vec<T>, Vec<usize>)
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, RegistryError>>,
{
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut marker = None;
    for _ in 0..1000 {
        let got = list(page(page_size, ascending, marker.take()))
            .await
            .unwrap_or_else(|e| panic!("listing a page: {e}"));
        assert!(got.items.len() <= page_size, "a page larger than asked");
        sizes.push(got.items.len());
        items.extend(got.items);
        match got.next_marker {
            Some(next) => marker = Some(next),
            None => return (items, sizes),
        }
    }
    panic!("the list did not end within 1000 pages");
}
