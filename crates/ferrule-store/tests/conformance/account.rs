//! Account-level values (registration code, settings) and tags.

use std::collections::BTreeSet;

use ferrule_store::{Registry, RegistryError};

use crate::common::*;

pub(crate) async fn registration_code_is_created_once(reg: Registry) {
    assert_eq!(ok!(reg.registration_code()), None);
    assert!(
        !ok!(reg.delete_registration_code()),
        "nothing to delete yet"
    );
    assert_eq!(ok!(reg.get_or_create_registration_code("code-a")), "code-a");
    assert_eq!(ok!(reg.get_or_create_registration_code("code-b")), "code-a");
    assert_eq!(ok!(reg.registration_code()), Some("code-a".to_owned()));
    assert!(ok!(reg.delete_registration_code()));
    assert_eq!(ok!(reg.registration_code()), None);
    assert_eq!(ok!(reg.get_or_create_registration_code("code-c")), "code-c");
}

pub(crate) async fn registration_code_race_has_one_winner(reg: Registry) {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move {
                ok!(reg.get_or_create_registration_code(&format!("candidate-{i}")))
            })
        })
        .collect();
    let mut codes = BTreeSet::new();
    for task in tasks {
        codes.insert(task.await.expect("task"));
    }
    assert_eq!(
        codes.len(),
        1,
        "racing callers got different codes: {codes:?}"
    );
    let stored = ok!(reg.registration_code()).expect("a code");
    assert!(codes.contains(&stored));
}

pub(crate) async fn settings_are_created_once_per_key(reg: Registry) {
    assert_eq!(
        ok!(reg.get_or_create_setting("endpoint", "abc123")),
        "abc123"
    );
    assert_eq!(ok!(reg.get_or_create_setting("endpoint", "zzz")), "abc123");
    assert_eq!(
        ok!(reg.get_or_create_setting("admin.key", "AKIA1")),
        "AKIA1"
    );
    assert_eq!(
        ok!(reg.get_or_create_setting("admin.key", "AKIA2")),
        "AKIA1"
    );
    // The registration code is not a setting.
    assert_eq!(ok!(reg.get_or_create_registration_code("code")), "code");
    assert_eq!(
        ok!(reg.get_or_create_setting("registration_code", "x")),
        "x"
    );
}

pub(crate) async fn tags(reg: Registry) {
    let arn = cert_arn(&hex_id(1));
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(ok!(reg.list_tags(&arn)), vec![]);
    ok!(reg.tag_resource(&arn, &[tag("b", "2"), tag("a", "1")]));
    ok!(reg.tag_resource(&arn, &[tag("b", "two"), tag("c", "")]));
    ok!(reg.tag_resource("another-arn", &[tag("a", "other")]));
    assert_eq!(
        ok!(reg.list_tags(&arn)),
        vec![tag("a", "1"), tag("b", "two"), tag("c", "")]
    );
    ok!(reg.untag_resource(&arn, &["a".to_owned(), "never-set".to_owned()]));
    assert_eq!(
        ok!(reg.list_tags(&arn)),
        vec![tag("b", "two"), tag("c", "")]
    );
    assert_eq!(ok!(reg.list_tags("another-arn")), vec![tag("a", "other")]);

    let many: Vec<_> = (0..48).map(|n| tag(&format!("k{n:02}"), "v")).collect();
    ok!(reg.tag_resource(&arn, &many));
    assert_eq!(ok!(reg.list_tags(&arn)).len(), 50);
    let e = err!(reg.tag_resource(&arn, &[tag("b", "changed"), tag("one-too-many", "v")]));
    assert_variant!(e, RegistryError::LimitExceeded(_));
    let after = ok!(reg.list_tags(&arn));
    assert_eq!(after.len(), 50);
    assert!(
        after.contains(&tag("b", "two")),
        "a refused call changes nothing"
    );
    ok!(reg.tag_resource(&arn, &[tag("b", "replacing needs no room")]));
}
