//! Lambda functions (configuration, code zip, updates, delete, pages), their permissions, and
//! IAM sessions.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ferrule_store::{FunctionRecord, IamSessionRecord, Registry, RegistryChange, RegistryError};

use crate::common::*;

fn changed(name: &str) -> RegistryChange {
    RegistryChange::FunctionChanged {
        function_name: name.to_owned(),
    }
}

/// A zip-like blob distinct for each `seed`: not real zip, the registry never looks inside.
fn zip(seed: u8, len: usize) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            // xorshift32: every byte value occurs, NUL included.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn function(name: &str, code: &[u8], created_ms: i64) -> FunctionRecord {
    FunctionRecord {
        name: name.to_owned(),
        runtime: "python3.12".to_owned(),
        handler: "app.handler".to_owned(),
        role: format!("arn:aws:iam::{ACCOUNT}:role/{name}-role"),
        description: format!("the {name} function"),
        timeout_s: 3,
        memory_mb: 128,
        environment: attrs(&[("STAGE", "test"), ("NAME", name)]),
        code_sha256: format!("sha-of-{name}-{}", code.len()),
        code_size: i64::try_from(code.len()).unwrap(),
        revision_id: format!("00000000-0000-4000-8000-{created_ms:012}"),
        created_ms,
        last_modified_ms: created_ms,
    }
}

fn session(n: u64, role_name: &str, expires_ms: i64) -> IamSessionRecord {
    IamSessionRecord {
        access_key_id: format!("ASIA{n:016}"),
        secret_access_key: format!("secret{n:034}"),
        session_token: format!("token-{n}-{}", "t".repeat(300)),
        role_name: role_name.to_owned(),
        session_name: format!("session-{n}"),
        created_ms: expires_ms - 3_600_000,
        expires_ms,
    }
}

pub(crate) async fn function_create_get_list(reg: Registry) {
    let mut feed = reg.subscribe();
    let code = zip(1, 1000);
    let f = function("Echo", &code, 1_000);
    ok!(reg.create_function(&f, &code));
    assert_eq!(ok!(reg.get_function("Echo")), Some(f.clone()));
    assert_eq!(ok!(reg.get_function_code("Echo")), Some(code.clone()));
    assert_eq!(
        ok!(reg.get_function("echo")),
        None,
        "names are case-sensitive"
    );
    assert_eq!(ok!(reg.get_function_code("echo")), None);
    assert_eq!(ok!(reg.get_function("missing")), None);
    assert_eq!(drain(&mut feed), vec![changed("Echo")]);

    // A taken name is refused; the stored function and code are untouched.
    let other = zip(2, 10);
    let e = err!(reg.create_function(&function("Echo", &other, 2_000), &other));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Function", ref id } if id == "Echo");
    assert_eq!(e.to_string(), "Function 'Echo' already exists");
    assert_eq!(ok!(reg.get_function("Echo")), Some(f.clone()));
    assert_eq!(ok!(reg.get_function_code("Echo")), Some(code));
    assert_eq!(
        drain(&mut feed),
        vec![],
        "a refused create announces nothing"
    );

    // The stored size is the zip's, whatever the record said.
    let mut wrong = function("sized", &other, 3_000);
    wrong.code_size = 999;
    ok!(reg.create_function(&wrong, &other));
    assert_eq!(ok!(reg.get_function("sized")).unwrap().code_size, 10);
    // An empty zip is a zip too (the API refuses it, the registry does not care).
    ok!(reg.create_function(&function("empty", &[], 3_000), &[]));
    assert_eq!(ok!(reg.get_function_code("empty")), Some(Vec::new()));

    // The list is by name, byte-wise (upper case first), in pages.
    for name in ["b", "a_2", "Z", "a_1", "c"] {
        ok!(reg.create_function(&function(name, b"z", 4_000), b"z"));
    }
    let expected = ["Echo", "Z", "a_1", "a_2", "b", "c", "empty", "sized"];
    for size in [1, 2, 3, 8, 50] {
        let (items, sizes) = walk(size, true, |p| {
            let reg = reg.clone();
            async move { reg.list_functions(&p).await }
        })
        .await;
        let names: Vec<&str> = items.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, expected, "page size {size}");
        assert!(sizes.iter().all(|&n| n <= size));
    }
    let (items, _) = walk(3, false, |p| {
        let reg = reg.clone();
        async move { reg.list_functions(&p).await }
    })
    .await;
    let names: Vec<&str> = items.iter().map(|f| f.name.as_str()).collect();
    let mut reversed = expected.to_vec();
    reversed.reverse();
    assert_eq!(names, reversed, "descending");
    let first = ok!(reg.list_functions(&page(1, true, None)));
    assert_eq!(first.items, vec![f], "listed records are whole");

    // Markers of another list are refused.
    let rules_marker = {
        for name in ["r1", "r2"] {
            ok!(reg.create_rule(&rule_record(name, "t", false, 1)));
        }
        ok!(reg.list_rules(None, None, &page(1, true, None)))
            .next_marker
            .unwrap()
    };
    let e = err!(reg.list_functions(&page(1, true, Some(rules_marker))));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.list_functions(&page(0, true, None)));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}

pub(crate) async fn function_create_race_has_one_winner(reg: Registry) {
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move {
                let code = zip(i, 100);
                reg.create_function(&function("raced", &code, i64::from(i)), &code)
                    .await
                    .map(|()| code)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(code) => winners.push(code),
            Err(RegistryError::AlreadyExists {
                kind: "Function", ..
            }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert_eq!(ok!(reg.get_function_code("raced")), winners.pop());
}

pub(crate) async fn function_updates(reg: Registry) {
    let code = zip(3, 5000);
    let f = function("f", &code, 1_000);
    ok!(reg.create_function(&f, &code));
    let mut feed = reg.subscribe();

    // New code: the code fields, revision and modification time change, nothing else.
    let new_code = zip(4, 777);
    let updated = ok!(reg.update_function_code("f", &new_code, "new-sha", "rev-2", 2_000));
    let expected = FunctionRecord {
        code_sha256: "new-sha".to_owned(),
        code_size: 777,
        revision_id: "rev-2".to_owned(),
        last_modified_ms: 2_000,
        ..f.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(ok!(reg.get_function("f")), Some(expected.clone()));
    assert_eq!(ok!(reg.get_function_code("f")), Some(new_code.clone()));
    assert_eq!(drain(&mut feed), vec![changed("f")]);

    // New configuration: everything but the code and the creation time is replaced.
    let config = FunctionRecord {
        name: "f".to_owned(),
        runtime: "python3.13".to_owned(),
        handler: "other.main".to_owned(),
        role: format!("arn:aws:iam::{ACCOUNT}:role/other"),
        description: String::new(),
        timeout_s: 900,
        memory_mb: 10_240,
        environment: attrs(&[("ONLY", "this")]),
        code_sha256: "ignored".to_owned(),
        code_size: -1,
        revision_id: "rev-3".to_owned(),
        created_ms: 99_999,
        last_modified_ms: 3_000,
    };
    let updated = ok!(reg.update_function_configuration(&config));
    let expected = FunctionRecord {
        code_sha256: "new-sha".to_owned(),
        code_size: 777,
        created_ms: 1_000,
        ..config.clone()
    };
    assert_eq!(updated, expected);
    assert_eq!(ok!(reg.get_function("f")), Some(expected.clone()));
    assert_eq!(
        ok!(reg.get_function_code("f")),
        Some(new_code),
        "the code is kept"
    );
    assert_eq!(drain(&mut feed), vec![changed("f")]);
    assert_ne!(
        f.revision_id, expected.revision_id,
        "every update has its own revision"
    );

    // Unknown functions: NotFound, nothing created, nothing announced.
    let e = err!(reg.update_function_code("ghost", b"x", "s", "r", 1));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "ghost");
    let e = err!(reg.update_function_configuration(&function("ghost", b"x", 1)));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "ghost");
    assert_eq!(e.to_string(), "Function 'ghost' does not exist");
    assert_eq!(ok!(reg.get_function("ghost")), None);
    assert_eq!(ok!(reg.get_function_code("ghost")), None);
    assert_eq!(drain(&mut feed), vec![]);
}

pub(crate) async fn function_delete(reg: Registry) {
    let code = zip(5, 64);
    ok!(reg.create_function(&function("gone", &code, 1), &code));
    ok!(reg.create_function(&function("kept", &code, 1), &code));
    for name in ["gone", "kept"] {
        ok!(reg.add_function_permission(name, "s1", r#"{"Sid":"s1"}"#));
        ok!(reg.add_function_permission(name, "s2", r#"{"Sid":"s2"}"#));
    }
    let mut feed = reg.subscribe();
    ok!(reg.delete_function("gone"));
    assert_eq!(ok!(reg.get_function("gone")), None);
    assert_eq!(ok!(reg.get_function_code("gone")), None, "its code goes");
    let e = err!(reg.list_function_permissions("gone"));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Function",
            ..
        }
    );
    assert_eq!(drain(&mut feed), vec![changed("gone")]);
    let e = err!(reg.delete_function("gone"));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "gone");
    assert_eq!(drain(&mut feed), vec![]);

    // The other function keeps everything.
    assert!(ok!(reg.get_function("kept")).is_some());
    assert_eq!(ok!(reg.get_function_code("kept")), Some(code.clone()));
    assert_eq!(ok!(reg.list_function_permissions("kept")).len(), 2);

    // The name is free again, and starts without permissions.
    let new_code = zip(6, 32);
    let again = function("gone", &new_code, 50);
    ok!(reg.create_function(&again, &new_code));
    assert_eq!(ok!(reg.get_function("gone")), Some(again));
    assert_eq!(ok!(reg.get_function_code("gone")), Some(new_code));
    assert_eq!(ok!(reg.list_function_permissions("gone")), vec![]);
    ok!(reg.add_function_permission("gone", "s1", "{}"));
}

pub(crate) async fn function_permissions(reg: Registry) {
    ok!(reg.create_function(&function("f", b"z", 1), b"z"));
    ok!(reg.create_function(&function("g", b"z", 1), b"z"));
    let mut feed = reg.subscribe();
    let statement = |sid: &str| {
        format!(
            r#"{{"Sid":"{sid}","Effect":"Allow","Principal":{{"Service":"iot.amazonaws.com"}},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"}}"#
        )
    };
    let pairs = |sids: &[&str]| -> Vec<(String, String)> {
        sids.iter()
            .map(|sid| ((*sid).to_owned(), statement(sid)))
            .collect()
    };
    assert_eq!(ok!(reg.list_function_permissions("f")), vec![]);
    // Listed in the order added, not by sid.
    for sid in ["zeta", "Alpha", "mid", "alpha"] {
        ok!(reg.add_function_permission("f", sid, &statement(sid)));
    }
    assert_eq!(
        ok!(reg.list_function_permissions("f")),
        pairs(&["zeta", "Alpha", "mid", "alpha"])
    );

    // A duplicate sid is refused and the statement kept; sids are per function.
    let e = err!(reg.add_function_permission("f", "mid", "{}"));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Permission", ref id } if id == "mid");
    ok!(reg.add_function_permission("g", "mid", &statement("mid")));
    assert_eq!(
        ok!(reg.list_function_permissions("f")),
        pairs(&["zeta", "Alpha", "mid", "alpha"])
    );
    assert_eq!(ok!(reg.list_function_permissions("g")), pairs(&["mid"]));

    // Removing one keeps the others' order; adding it back puts it last.
    ok!(reg.remove_function_permission("f", "Alpha"));
    assert_eq!(
        ok!(reg.list_function_permissions("f")),
        pairs(&["zeta", "mid", "alpha"])
    );
    ok!(reg.add_function_permission("f", "Alpha", &statement("Alpha")));
    ok!(reg.remove_function_permission("f", "alpha"));
    assert_eq!(
        ok!(reg.list_function_permissions("f")),
        pairs(&["zeta", "mid", "Alpha"])
    );
    assert_eq!(
        ok!(reg.list_function_permissions("g")),
        pairs(&["mid"]),
        "the other function's are untouched"
    );

    // Missing sids and functions.
    let e = err!(reg.remove_function_permission("f", "alpha"));
    assert_variant!(e, RegistryError::NotFound { kind: "Permission", ref id } if id == "alpha");
    let e = err!(reg.remove_function_permission("ghost", "mid"));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "ghost");
    let e = err!(reg.add_function_permission("ghost", "s", "{}"));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "ghost");
    let e = err!(reg.list_function_permissions("ghost"));
    assert_variant!(e, RegistryError::NotFound { kind: "Function", ref id } if id == "ghost");

    assert_eq!(drain(&mut feed), vec![], "permissions announce nothing");
}

/// Exactly the four function mutations announce, in order; refused ones and everything else
/// about functions and sessions do not.
pub(crate) async fn function_change_feed(reg: Registry) {
    let mut feed = reg.subscribe();
    ok!(reg.create_function(&function("a", b"1", 1), b"1"));
    ok!(reg.create_function(&function("b", b"1", 1), b"1"));
    ok!(reg.add_function_permission("a", "s", "{}"));
    ok!(reg.update_function_code("a", b"2", "sha", "r2", 2));
    ok!(reg.get_function("a"));
    ok!(reg.get_function_code("a"));
    ok!(reg.list_functions(&page(10, true, None)));
    ok!(reg.list_function_permissions("a"));
    ok!(reg.remove_function_permission("a", "s"));
    err!(reg.create_function(&function("a", b"1", 1), b"1"));
    err!(reg.delete_function("ghost"));
    ok!(reg.update_function_configuration(&function("b", b"1", 3)));
    ok!(reg.create_iam_session(&session(1, "role", 10)));
    ok!(reg.delete_expired_iam_sessions(100));
    ok!(reg.delete_function("a"));
    assert_eq!(
        drain(&mut feed),
        vec![
            changed("a"),
            changed("b"),
            changed("a"),
            changed("b"),
            changed("a")
        ]
    );
}

pub(crate) async fn function_environment_round_trips(reg: Registry) {
    let cases: Vec<BTreeMap<String, String>> = vec![
        BTreeMap::new(),
        attrs(&[("", "")]),
        attrs(&[
            ("GREETING", "grüße, 世界 🦀"),
            ("ÜNICODE_KEY", "ok"),
            ("QUOTES", r#"say "hi" \ and 'bye'"#),
            ("CONTROL", "line1\nline2\ttab\r\u{1}\u{7f}"),
            ("JSON", r#"{"nested":[1,2,{"x":null}]}"#),
            ("SQL", "'; DROP TABLE functions; --"),
            ("LONG", &"v".repeat(4096)),
        ]),
    ];
    for (i, environment) in cases.iter().enumerate() {
        let name = format!("env{i}");
        let mut f = function(&name, b"z", 1);
        f.environment = environment.clone();
        ok!(reg.create_function(&f, b"z"));
        assert_eq!(
            ok!(reg.get_function(&name)).unwrap().environment,
            *environment,
            "case {i}"
        );
    }
    // Listed records carry it too.
    let listed = ok!(reg.list_functions(&page(10, true, None))).items;
    let got: Vec<_> = listed.into_iter().map(|f| f.environment).collect();
    assert_eq!(got, cases);

    // Updated to empty and back.
    let mut f = ok!(reg.get_function("env2")).unwrap();
    f.environment = BTreeMap::new();
    f.revision_id = "r2".to_owned();
    assert_eq!(
        ok!(reg.update_function_configuration(&f)).environment,
        BTreeMap::new()
    );
    assert_eq!(ok!(reg.get_function("env2")), Some(f.clone()));
    f.environment = cases[2].clone();
    ok!(reg.update_function_configuration(&f));
    assert_eq!(ok!(reg.get_function("env2")).unwrap().environment, cases[2]);
}

pub(crate) async fn function_large_code_round_trips(reg: Registry) {
    const SIZE: usize = 5 * 1024 * 1024;
    let code = zip(7, SIZE);
    let f = function("big", &code, 1);
    ok!(reg.create_function(&f, &code));
    let got = ok!(reg.get_function_code("big")).unwrap();
    assert_eq!(got.len(), SIZE);
    assert!(got == code, "the 5 MiB zip comes back byte for byte");
    assert_eq!(ok!(reg.get_function("big")).unwrap().code_size, 5_242_880);

    let replacement = zip(8, SIZE + 1);
    let updated = ok!(reg.update_function_code("big", &replacement, "s2", "r2", 2));
    assert_eq!(updated.code_size, 5_242_881);
    let got = ok!(reg.get_function_code("big")).unwrap();
    assert!(
        got == replacement,
        "the replaced zip comes back byte for byte"
    );
}

pub(crate) async fn iam_sessions(reg: Registry) {
    let mut feed = reg.subscribe();
    let s = session(1, "ExecRole", 10_000);
    ok!(reg.create_iam_session(&s));
    assert_eq!(ok!(reg.get_iam_session(&s.access_key_id)), Some(s.clone()));
    assert_eq!(ok!(reg.get_iam_session("ASIA0000000000000009")), None);
    assert_eq!(
        ok!(reg.get_iam_session(&s.access_key_id.to_lowercase())),
        None,
        "key ids are case-sensitive"
    );

    // A taken key id is refused and the stored session kept.
    let mut dup = session(1, "OtherRole", 20_000);
    dup.secret_access_key = "different".to_owned();
    let e = err!(reg.create_iam_session(&dup));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Session", ref id } if id == &s.access_key_id);
    assert_eq!(ok!(reg.get_iam_session(&s.access_key_id)), Some(s.clone()));

    // Debug shows neither secret.
    let shown = format!("{s:?}");
    assert!(shown.contains(&s.access_key_id), "{shown}");
    assert!(shown.contains("ExecRole"), "{shown}");
    assert!(!shown.contains(&s.secret_access_key), "{shown}");
    assert!(!shown.contains(&s.session_token), "{shown}");

    // Expiry: `expires_ms <= now` goes, later ones stay; get does not judge expiry.
    for (n, expires_ms) in [(2, 9_999), (3, 10_001), (4, 20_000)] {
        ok!(reg.create_iam_session(&session(n, "ExecRole", expires_ms)));
    }
    assert_eq!(ok!(reg.delete_expired_iam_sessions(5_000)), 0);
    assert!(
        ok!(reg.get_iam_session(&session(2, "", 0).access_key_id)).is_some(),
        "an expired session is still returned until swept"
    );
    assert_eq!(ok!(reg.delete_expired_iam_sessions(10_000)), 2);
    assert_eq!(ok!(reg.get_iam_session(&s.access_key_id)), None);
    assert_eq!(
        ok!(reg.get_iam_session(&session(2, "", 0).access_key_id)),
        None
    );
    assert_eq!(
        ok!(reg.get_iam_session(&session(3, "ExecRole", 10_001).access_key_id)),
        Some(session(3, "ExecRole", 10_001))
    );
    assert_eq!(ok!(reg.delete_expired_iam_sessions(10_000)), 0);
    assert_eq!(ok!(reg.delete_expired_iam_sessions(i64::MAX)), 2);
    assert_eq!(
        ok!(reg.get_iam_session(&session(4, "", 0).access_key_id)),
        None
    );
    // A swept key id may be issued again.
    ok!(reg.create_iam_session(&s));
    assert_eq!(ok!(reg.get_iam_session(&s.access_key_id)), Some(s));
    assert_eq!(drain(&mut feed), vec![], "sessions announce nothing");
}
