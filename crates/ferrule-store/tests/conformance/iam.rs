//! IAM: roles (case-insensitive names, path-prefix lists, pages, delete conflicts), users,
//! access keys (quota, lookup by id) and inline policies of roles and users.

use ferrule_store::{
    IamAccessKeyRecord, IamEntity, IamRoleRecord, IamUserRecord, MAX_ACCESS_KEYS_PER_USER,
    Registry, RegistryError,
};

use crate::common::*;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn role(name: &str, path: &str, n: u64) -> IamRoleRecord {
    IamRoleRecord {
        name: name.to_owned(),
        role_id: format!("AROA{n:017}"),
        path: path.to_owned(),
        assume_role_policy: TRUST.to_owned(),
        description: None,
        max_session_duration: 3600,
        created_ms: 1_000 + i64::try_from(n).unwrap_or(0),
    }
}

fn user(name: &str, n: u64) -> IamUserRecord {
    IamUserRecord {
        name: name.to_owned(),
        user_id: format!("AIDA{n:017}"),
        path: "/".to_owned(),
        created_ms: 5_000,
    }
}

fn access_key(user: &str, n: u64) -> IamAccessKeyRecord {
    IamAccessKeyRecord {
        access_key_id: format!("AKIA{n:016}"),
        user_name: user.to_owned(),
        secret_access_key: format!("{n:040}"),
        status: "Active".to_owned(),
        created_ms: 7_000 + i64::try_from(n).unwrap_or(0),
    }
}

pub(crate) async fn iam_roles_create_get_delete(reg: Registry) {
    let mut feed = reg.subscribe();
    let mut r = role("Ingest", "/iot/", 1);
    r.description = Some("rules engine".to_owned());
    r.max_session_duration = 7200;
    ok!(reg.create_iam_role(&r));
    assert_eq!(ok!(reg.get_iam_role("Ingest")), Some(r.clone()));
    assert_eq!(
        ok!(reg.get_iam_role("iNGEST")),
        Some(r.clone()),
        "role names are looked up ignoring case"
    );
    assert_eq!(ok!(reg.get_iam_role("missing")), None);

    let e = err!(reg.create_iam_role(&role("INGEST", "/", 2)));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Role", ref id } if id == "Ingest");
    assert_eq!(ok!(reg.get_iam_role("ingest")), Some(r.clone()));

    // Inline policies block the delete until they are gone.
    ok!(reg.put_iam_inline_policy(IamEntity::Role, "ingest", "Publish", TRUST));
    let e = err!(reg.delete_iam_role("Ingest"));
    assert_variant!(e, RegistryError::DeleteConflict(ref m) if m.contains("Ingest"));
    assert!(ok!(reg.get_iam_role("Ingest")).is_some());
    ok!(reg.delete_iam_inline_policy(IamEntity::Role, "Ingest", "Publish"));
    ok!(reg.delete_iam_role("INGEST"));
    assert_eq!(ok!(reg.get_iam_role("Ingest")), None);
    let e = err!(reg.delete_iam_role("Ingest"));
    assert_variant!(e, RegistryError::NotFound { kind: "Role", ref id } if id == "Ingest");
    // The name is free again.
    ok!(reg.create_iam_role(&role("ingest", "/", 3)));
    assert_eq!(drain(&mut feed), vec![], "IAM writes announce nothing");
}

pub(crate) async fn iam_role_lists_filter_and_page(reg: Registry) {
    for (n, (name, path)) in [
        ("a", "/"),
        ("b", "/iot/"),
        ("c", "/iot/rules/"),
        ("d", "/iotx/"),
        ("e", "/other/"),
    ]
    .into_iter()
    .enumerate()
    {
        ok!(reg.create_iam_role(&role(name, path, n as u64)));
    }
    let names = |p: &ferrule_store::Page<IamRoleRecord>| {
        p.items.iter().map(|r| r.name.clone()).collect::<Vec<_>>()
    };
    let all = ok!(reg.list_iam_roles(None, &page(10, true, None)));
    assert_eq!(names(&all), ["a", "b", "c", "d", "e"]);
    assert_eq!(all.next_marker, None);
    let iot = ok!(reg.list_iam_roles(Some("/iot/"), &page(10, true, None)));
    assert_eq!(names(&iot), ["b", "c"]);
    let iot = ok!(reg.list_iam_roles(Some("/iot"), &page(10, true, None)));
    assert_eq!(names(&iot), ["b", "c", "d"]);
    assert_eq!(
        names(&ok!(
            reg.list_iam_roles(Some("/nothing"), &page(10, true, None))
        )),
        Vec::<String>::new()
    );

    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let p = ok!(reg.list_iam_roles(Some("/"), &page(2, true, marker)));
        assert!(p.items.len() <= 2);
        seen.extend(names(&p));
        match p.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let e = err!(reg.list_iam_roles(None, &page(2, true, Some("zz".to_owned()))));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}

pub(crate) async fn iam_users_and_access_keys(reg: Registry) {
    let u = user("Device-Fleet", 1);
    ok!(reg.create_iam_user(&u));
    assert_eq!(ok!(reg.get_iam_user("device-fleet")), Some(u.clone()));
    assert_eq!(ok!(reg.get_iam_user("nobody")), None);
    let e = err!(reg.create_iam_user(&user("DEVICE-FLEET", 2)));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "User", ref id } if id == "Device-Fleet");

    let e = err!(reg.create_iam_access_key(&access_key("nobody", 1)));
    assert_variant!(e, RegistryError::NotFound { kind: "User", ref id } if id == "nobody");
    assert_eq!(
        ok!(reg.get_iam_access_key(&access_key("x", 1).access_key_id)),
        None
    );

    let k1 = access_key("Device-Fleet", 1);
    // The owner is recorded by its stored name whatever case the caller used.
    ok!(reg.create_iam_access_key(&access_key("device-fleet", 1)));
    assert_eq!(
        ok!(reg.get_iam_access_key(&k1.access_key_id)),
        Some(k1.clone())
    );
    let e = err!(reg.create_iam_access_key(&access_key("Device-Fleet", 1)));
    assert_variant!(
        e,
        RegistryError::AlreadyExists {
            kind: "Access key",
            ..
        }
    );
    let k2 = access_key("Device-Fleet", 2);
    ok!(reg.create_iam_access_key(&k2));
    assert_eq!(MAX_ACCESS_KEYS_PER_USER, 2);
    let e = err!(reg.create_iam_access_key(&access_key("Device-Fleet", 3)));
    assert_variant!(e, RegistryError::LimitExceeded(_));
    assert_eq!(
        ok!(reg.get_iam_access_key(&access_key("x", 3).access_key_id)),
        None
    );
    assert_eq!(
        ok!(reg.list_iam_access_keys("Device-Fleet")),
        vec![k1.clone(), k2.clone()]
    );
    let e = err!(reg.list_iam_access_keys("nobody"));
    assert_variant!(e, RegistryError::NotFound { kind: "User", .. });

    // A key is deleted only through its owner.
    ok!(reg.create_iam_user(&user("other", 3)));
    let e = err!(reg.delete_iam_access_key("other", &k1.access_key_id));
    assert_variant!(e, RegistryError::NotFound { kind: "Access key", ref id } if *id == k1.access_key_id);
    ok!(reg.delete_iam_access_key("Device-Fleet", &k1.access_key_id));
    assert_eq!(ok!(reg.get_iam_access_key(&k1.access_key_id)), None);
    assert_eq!(ok!(reg.list_iam_access_keys("device-fleet")), vec![k2]);
    let e = err!(reg.delete_iam_access_key("Device-Fleet", &k1.access_key_id));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Access key",
            ..
        }
    );
    // Room for another key again.
    ok!(reg.create_iam_access_key(&access_key("Device-Fleet", 4)));

    // A user with keys or policies cannot be deleted.
    let e = err!(reg.delete_iam_user("Device-Fleet"));
    assert_variant!(e, RegistryError::DeleteConflict(ref m) if m.contains("Device-Fleet"));
    for k in ok!(reg.list_iam_access_keys("Device-Fleet")) {
        ok!(reg.delete_iam_access_key("Device-Fleet", &k.access_key_id));
    }
    ok!(reg.put_iam_inline_policy(IamEntity::User, "Device-Fleet", "p", "{}"));
    let e = err!(reg.delete_iam_user("device-fleet"));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    ok!(reg.delete_iam_inline_policy(IamEntity::User, "Device-Fleet", "p"));
    ok!(reg.delete_iam_user("device-fleet"));
    assert_eq!(ok!(reg.get_iam_user("Device-Fleet")), None);
    let e = err!(reg.delete_iam_user("Device-Fleet"));
    assert_variant!(e, RegistryError::NotFound { kind: "User", ref id } if id == "Device-Fleet");
    // The name is free again, and the new user has no keys.
    ok!(reg.create_iam_user(&user("Device-Fleet", 9)));
    assert_eq!(ok!(reg.list_iam_access_keys("Device-Fleet")), vec![]);
}

pub(crate) async fn iam_inline_policies(reg: Registry) {
    ok!(reg.create_iam_role(&role("r", "/", 1)));
    ok!(reg.create_iam_user(&user("u", 1)));
    for entity in [IamEntity::Role, IamEntity::User] {
        let (name, kind, policy_kind) = match entity {
            IamEntity::Role => ("R", "Role", "Role policy"),
            IamEntity::User => ("U", "User", "User policy"),
        };
        assert_eq!(
            ok!(reg.list_iam_inline_policies(entity, name)),
            Vec::<String>::new()
        );
        ok!(reg.put_iam_inline_policy(entity, name, "b", "{\"doc\":1}"));
        ok!(reg.put_iam_inline_policy(entity, name, "a", "{\"doc\":2}"));
        ok!(reg.put_iam_inline_policy(entity, name, "A", "{\"doc\":3}"));
        // Putting again replaces.
        ok!(reg.put_iam_inline_policy(entity, name, "b", "{\"doc\":4}"));
        assert_eq!(
            ok!(reg.list_iam_inline_policies(entity, name)),
            ["A", "a", "b"],
            "policy names are case-sensitive and sorted"
        );
        assert_eq!(
            ok!(reg.get_iam_inline_policy(entity, name, "b")).as_deref(),
            Some("{\"doc\":4}")
        );
        assert_eq!(ok!(reg.get_iam_inline_policy(entity, name, "B")), None);
        ok!(reg.delete_iam_inline_policy(entity, name, "a"));
        let e = err!(reg.delete_iam_inline_policy(entity, name, "a"));
        assert_variant!(e, RegistryError::NotFound { kind, ref id } if kind == policy_kind && id == "a");
        assert_eq!(ok!(reg.list_iam_inline_policies(entity, name)), ["A", "b"]);

        for e in [
            err!(reg.put_iam_inline_policy(entity, "ghost", "p", "{}")),
            err!(reg.get_iam_inline_policy(entity, "ghost", "p")),
            err!(reg.list_iam_inline_policies(entity, "ghost")),
            err!(reg.delete_iam_inline_policy(entity, "ghost", "p")),
        ] {
            assert_variant!(e, RegistryError::NotFound { kind: k, ref id } if k == kind && id == "ghost");
        }
    }
    // A role's policies are not the user's.
    ok!(reg.create_iam_role(&role("shared", "/", 2)));
    ok!(reg.create_iam_user(&user("shared", 2)));
    ok!(reg.put_iam_inline_policy(IamEntity::User, "shared", "p", "{}"));
    assert_eq!(
        ok!(reg.list_iam_inline_policies(IamEntity::Role, "shared")),
        Vec::<String>::new()
    );
    ok!(reg.delete_iam_role("shared"));
}
