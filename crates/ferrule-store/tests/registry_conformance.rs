//! The registry conformance suite: every test in `conformance/` is a function taking a fresh
//! [`Registry`], run once on SQLite (`sqlite::name`) and once on PostgreSQL (`postgres::name`)
//! by the `conformance!` list below. Backend-specific tests (reopening an SQLite file,
//! sharing it with the broker store, a PostgreSQL server that is not there) follow the list.
//!
//! PostgreSQL: `FERRULE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`;
//! each test creates and drops its own schema there.

#[macro_use]
mod common;
mod conformance;

use common::*;
use ferrule_store::{
    BrokerStore, CertificateStatus, FunctionRecord, IamSessionRecord, PageRequest, Registry,
    RetainedRecord, StoreError,
};

macro_rules! conformance {
    ($($module:ident::$test:ident),* $(,)?) => {
        /// The suite on SQLite: a new database file per test.
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::common::run_sqlite(crate::conformance::$module::$test).await;
                }
            )*
        }

        /// The suite on PostgreSQL: a new schema per test.
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::common::run_postgres(crate::conformance::$module::$test).await;
                }
            )*
        }
    };
}

conformance! {
    account::registration_code_is_created_once,
    account::registration_code_race_has_one_winner,
    account::settings_are_created_once_per_key,
    cas::ca_round_trip,
    cas::ca_insert_twice_already_exists,
    cas::ca_same_subject_limit,
    cas::ca_update,
    cas::ca_delete,
    cas::ca_list_pages,
    certs::certificate_round_trip,
    certs::certificate_insert_errors,
    certs::certificate_insert_race_has_one_winner,
    certs::certificate_status_updates,
    certs::certificate_delete_rules,
    certs::certificate_list_pages,
    certs::pages_are_stable_under_concurrent_changes,
    certs::bad_page_requests_are_refused,
    policies::policy_create_and_get,
    policies::policy_versions,
    policies::policy_version_limit_holds_under_races,
    policies::policy_delete,
    policies::policy_attachments,
    policies::policy_attachment_limit,
    policies::policy_attachment_limit_holds_under_races,
    policies::policy_list_pages,
    policies::attached_policy_and_target_pages,
    things::thing_create_is_idempotent,
    things::thing_update,
    things::thing_delete,
    things::thing_list_filters_and_pages,
    things::large_thing_pages_carry_every_attribute,
    things::thing_principals,
    things::exclusive_thing_principals,
    things::exclusive_thing_principal_race,
    rules::rule_create_get_replace,
    rules::rule_enable_disable,
    rules::rule_delete,
    rules::rule_list_filters_and_pages,
    account::tags,
    logs::log_groups_create_describe_delete,
    logs::log_streams_describe_orders_and_pages,
    logs::put_log_events_validates_and_creates_nothing,
    logs::get_log_events_pages_both_ways,
    logs::filter_log_events_terms_windows_and_pages,
    logs::log_writes_announce_nothing,
    iam::iam_roles_create_get_delete,
    iam::iam_role_lists_filter_and_page,
    iam::iam_users_and_access_keys,
    iam::iam_inline_policies,
    functions::function_create_get_list,
    functions::function_create_race_has_one_winner,
    functions::function_updates,
    functions::function_delete,
    functions::function_permissions,
    functions::function_change_feed,
    functions::function_environment_round_trips,
    functions::function_large_code_round_trips,
    functions::iam_sessions,
    feed::change_feed_covers_every_mutation,
    feed::errors_read_like_aws,
    feed::enums_round_trip,
    feed::every_stored_enum_survives,
}

// ----- backend-specific -----

/// Everything written survives closing and reopening the file.
#[tokio::test]
async fn sqlite_registry_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ferrule.db");
    let ca = ca_record(1, b"s", 1);
    let cert = cert_record(2, Some(&ca.id), 2, CertificateStatus::Active);
    let arn = cert_arn(&cert.id);
    let function = FunctionRecord {
        name: "f".to_owned(),
        runtime: "python3.12".to_owned(),
        handler: "app.handler".to_owned(),
        role: "arn:aws:iam::123456789012:role/r".to_owned(),
        description: String::new(),
        timeout_s: 3,
        memory_mb: 128,
        environment: attrs(&[("K", "v")]),
        code_sha256: "sha".to_owned(),
        code_size: 3,
        revision_id: "rev".to_owned(),
        created_ms: 1,
        last_modified_ms: 1,
    };
    let session = IamSessionRecord {
        access_key_id: "ASIAAAAAAAAAAAAAAAAA".to_owned(),
        secret_access_key: "secret".to_owned(),
        session_token: "token".to_owned(),
        role_name: "r".to_owned(),
        session_name: "s".to_owned(),
        created_ms: 1,
        expires_ms: 2,
    };
    {
        let reg = Registry::open_sqlite(&path).await.expect("open");
        ok!(reg.get_or_create_registration_code("code"));
        ok!(reg.get_or_create_setting("endpoint", "abc"));
        ok!(reg.insert_ca(&ca));
        ok!(reg.insert_certificate(&cert));
        ok!(reg.create_policy("p", "v1", 1));
        ok!(reg.create_policy_version("p", "v2", true, 2));
        ok!(reg.attach_policy("p", &arn));
        ok!(reg.create_thing(&thing_record("t", Some("type"), &[("a", "b")])));
        ok!(reg.attach_thing_principal("t", &arn, true));
        ok!(reg.tag_resource(&arn, &[("k".to_owned(), "v".to_owned())]));
        ok!(reg.create_rule(&rule_record("r", "a/#", true, 7)));
        ok!(reg.create_function(&function, b"zip"));
        ok!(reg.add_function_permission("f", "s", "{}"));
        ok!(reg.create_iam_session(&session));
        reg.close().await;
    }
    let reg = Registry::open_sqlite(&path).await.expect("reopen");
    assert_eq!(ok!(reg.registration_code()), Some("code".to_owned()));
    assert_eq!(ok!(reg.get_or_create_setting("endpoint", "other")), "abc");
    assert_eq!(ok!(reg.get_ca(&ca.id)), Some(ca));
    assert_eq!(ok!(reg.get_certificate(&cert.id)), Some(cert));
    let policies = ok!(reg.policies_for_target(&arn));
    assert_eq!(policies.len(), 1);
    assert_eq!(
        (
            policies[0].default_version_id,
            policies[0].document.as_str()
        ),
        (2, "v2")
    );
    let thing = ok!(reg.get_thing("t")).expect("thing");
    assert_eq!(thing.attributes, attrs(&[("a", "b")]));
    assert_eq!(
        ok!(reg.list_principal_things(&arn, &PageRequest::first(5))).items,
        vec!["t"]
    );
    assert_eq!(
        ok!(reg.list_tags(&arn)),
        vec![("k".to_owned(), "v".to_owned())]
    );
    assert_eq!(
        ok!(reg.get_rule("r")),
        Some(rule_record("r", "a/#", true, 7))
    );
    assert_eq!(ok!(reg.get_function("f")), Some(function));
    assert_eq!(ok!(reg.get_function_code("f")), Some(b"zip".to_vec()));
    assert_eq!(
        ok!(reg.list_function_permissions("f")),
        vec![("s".to_owned(), "{}".to_owned())]
    );
    assert_eq!(
        ok!(reg.get_iam_session(&session.access_key_id)),
        Some(session)
    );
    // The version counter survived too.
    assert_eq!(
        ok!(reg.create_policy_version("p", "v3", false, 3)).version_id,
        3
    );
    reg.close().await;
}

/// The registry and the broker store share the data dir's file, opened in either order.
#[tokio::test]
async fn sqlite_file_is_shared_with_the_broker_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ferrule.db");
    let (broker, reg) = tokio::join!(
        BrokerStore::open_sqlite(&path),
        Registry::open_sqlite(&path)
    );
    let (broker, reg) = (broker.expect("broker store"), reg.expect("registry"));
    let retained = RetainedRecord {
        topic: "a/b".to_owned(),
        message: b"m".to_vec(),
        stored_at_ms: 1,
    };
    broker.put_retained(&retained).await.expect("put retained");
    ok!(reg.create_policy("p", "{}", 1));
    broker.close().await;
    reg.close().await;

    let reg = Registry::open_sqlite(&path).await.expect("registry first");
    let broker = BrokerStore::open_sqlite(&path)
        .await
        .expect("broker store second");
    assert_eq!(broker.load_retained().await.expect("load"), vec![retained]);
    assert!(ok!(reg.get_policy("p")).is_some());
}

/// A file that is not a database is refused and left alone.
#[tokio::test]
async fn sqlite_garbage_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ferrule.db");
    std::fs::write(
        &path,
        b"this is not SQLite, not at all, not even close........",
    )
    .expect("write");
    let e = Registry::open_sqlite(&path)
        .await
        .expect_err("garbage accepted");
    assert!(
        matches!(e, StoreError::Open { .. } | StoreError::Migrate { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("ferrule.db"), "{e}");
}

/// An unreachable server is an error that names it, without the password.
#[tokio::test]
async fn postgres_unreachable_is_an_open_error() {
    let e = Registry::open_postgres("postgres://someone:s3cret@127.0.0.1:1/nowhere")
        .await
        .expect_err("connected to nothing");
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains("127.0.0.1:1/nowhere"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let e = Registry::open_postgres("not a url at all")
        .await
        .expect_err("parsed garbage");
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
}

/// The PostgreSQL schema is migrated once; opening again finds it current and the data kept.
#[tokio::test]
async fn postgres_reopen_keeps_data() {
    let schema = TestSchema::create().await;
    let reg = Registry::open_postgres(&schema.url).await.expect("open");
    ok!(reg.create_policy("p", "{}", 1));
    reg.close().await;
    let reg = Registry::open_postgres(&schema.url).await.expect("reopen");
    assert!(ok!(reg.get_policy("p")).is_some());
    reg.close().await;
    schema.drop().await;
}
