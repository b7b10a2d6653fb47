//! Topic rules: create, read, replace, enable/disable, delete, and the filtered, paged list.

use ferrule_store::{Registry, RegistryChange, RegistryError};

use crate::common::*;

fn changed(name: &str) -> RegistryChange {
    RegistryChange::RuleChanged {
        rule_name: name.to_owned(),
    }
}

pub(crate) async fn rule_create_get_replace(reg: Registry) {
    let mut feed = reg.subscribe();
    let rule = rule_record("Temps_1", "sensors/+/temp", false, 1_000);
    ok!(reg.create_rule(&rule));
    assert_eq!(ok!(reg.get_rule("Temps_1")), Some(rule.clone()));
    assert_eq!(
        ok!(reg.get_rule("temps_1")),
        None,
        "names are case-sensitive"
    );
    assert_eq!(ok!(reg.get_rule("missing")), None);
    assert_eq!(drain(&mut feed), vec![changed("Temps_1")]);

    // A taken name is refused and the stored rule is untouched.
    let e = err!(reg.create_rule(&rule_record("Temps_1", "other", true, 2_000)));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Rule", ref id } if id == "Temps_1");
    assert_eq!(ok!(reg.get_rule("Temps_1")), Some(rule.clone()));
    assert_eq!(
        drain(&mut feed),
        vec![],
        "a refused create announces nothing"
    );

    // Replacing changes everything but the creation time.
    let mut new = rule_record("Temps_1", "sensors/#", true, 9_999);
    new.payload = r#"{"sql":"SELECT a FROM 'sensors/#'","actions":[{"lambda":{}}]}"#.to_owned();
    let replaced = ok!(reg.replace_rule(&new));
    let expected = ferrule_store::RuleRecord {
        created_ms: 1_000,
        ..new.clone()
    };
    assert_eq!(replaced, expected);
    assert_eq!(ok!(reg.get_rule("Temps_1")), Some(expected));
    assert_eq!(drain(&mut feed), vec![changed("Temps_1")]);

    let e = err!(reg.replace_rule(&rule_record("ghost", "t", false, 1)));
    assert_variant!(e, RegistryError::NotFound { kind: "Rule", ref id } if id == "ghost");
    assert_eq!(ok!(reg.get_rule("ghost")), None, "replace does not create");
    assert_eq!(drain(&mut feed), vec![]);
}

pub(crate) async fn rule_enable_disable(reg: Registry) {
    ok!(reg.create_rule(&rule_record("r", "t", false, 1)));
    let mut feed = reg.subscribe();
    ok!(reg.set_rule_disabled("r", true));
    assert!(ok!(reg.get_rule("r")).expect("rule").disabled);
    assert_eq!(drain(&mut feed), vec![changed("r")]);
    ok!(reg.set_rule_disabled("r", true));
    assert!(ok!(reg.get_rule("r")).expect("rule").disabled);
    assert_eq!(drain(&mut feed), vec![], "no change, no event");
    ok!(reg.set_rule_disabled("r", false));
    let rule = ok!(reg.get_rule("r")).expect("rule");
    assert_eq!(
        rule,
        rule_record("r", "t", false, 1),
        "only the flag changed"
    );
    assert_eq!(drain(&mut feed), vec![changed("r")]);
    for disabled in [true, false] {
        let e = err!(reg.set_rule_disabled("ghost", disabled));
        assert_variant!(e, RegistryError::NotFound { kind: "Rule", .. });
    }
    assert_eq!(drain(&mut feed), vec![]);
}

pub(crate) async fn rule_delete(reg: Registry) {
    ok!(reg.create_rule(&rule_record("gone", "t", false, 1)));
    ok!(reg.create_rule(&rule_record("kept", "t", false, 1)));
    let tag = vec![("k".to_owned(), "v".to_owned())];
    ok!(reg.tag_resource(&rule_arn("gone"), &tag));
    ok!(reg.tag_resource(&rule_arn("kept"), &tag));
    let mut feed = reg.subscribe();
    ok!(reg.delete_rule("gone"));
    assert_eq!(ok!(reg.get_rule("gone")), None);
    assert_eq!(
        ok!(reg.list_tags(&rule_arn("gone"))),
        vec![],
        "its tags go too"
    );
    assert_eq!(
        ok!(reg.list_tags(&rule_arn("kept"))),
        tag,
        "others' tags stay"
    );
    assert!(ok!(reg.get_rule("kept")).is_some());
    assert_eq!(drain(&mut feed), vec![changed("gone")]);
    let e = err!(reg.delete_rule("gone"));
    assert_variant!(e, RegistryError::NotFound { kind: "Rule", .. });
    assert_eq!(e.to_string(), "Rule 'gone' does not exist");
    assert_eq!(drain(&mut feed), vec![]);
    // The name is free again.
    ok!(reg.create_rule(&rule_record("gone", "u", true, 5)));
    assert_eq!(
        ok!(reg.get_rule("gone")),
        Some(rule_record("gone", "u", true, 5))
    );
}

pub(crate) async fn rule_list_filters_and_pages(reg: Registry) {
    // Inserted out of order: the list is by name, byte-wise (upper case first).
    let rules = [
        ("b_rule", "a/+", false),
        ("A_rule", "a/+", true),
        ("c_rule", "a/b", false),
        ("a_rule", "a/+", false),
        ("d_rule", "#", true),
    ];
    for (i, (name, topic, disabled)) in rules.into_iter().enumerate() {
        ok!(reg.create_rule(&rule_record(name, topic, disabled, i as i64)));
    }
    let names = |page: ferrule_store::Page<ferrule_store::RuleRecord>| -> Vec<String> {
        assert_eq!(page.next_marker, None);
        page.items.into_iter().map(|r| r.name).collect()
    };
    let all = page(100, true, None);
    assert_eq!(
        names(ok!(reg.list_rules(None, None, &all))),
        ["A_rule", "a_rule", "b_rule", "c_rule", "d_rule"]
    );
    assert_eq!(
        names(ok!(reg.list_rules(Some("a/+"), None, &all))),
        ["A_rule", "a_rule", "b_rule"],
        "the topic filter is exact, not a match"
    );
    assert!(names(ok!(reg.list_rules(Some("a"), None, &all))).is_empty());
    assert_eq!(
        names(ok!(reg.list_rules(None, Some(true), &all))),
        ["A_rule", "d_rule"]
    );
    assert_eq!(
        names(ok!(reg.list_rules(None, Some(false), &all))),
        ["a_rule", "b_rule", "c_rule"]
    );
    assert_eq!(
        names(ok!(reg.list_rules(Some("a/+"), Some(false), &all))),
        ["a_rule", "b_rule"]
    );
    // Every rule comes back whole.
    let listed = ok!(reg.list_rules(Some("#"), None, &all)).items;
    assert_eq!(listed, vec![rule_record("d_rule", "#", true, 4)]);

    // Pages of 2, with and without a filter.
    let (items, sizes) = walk(2, true, |p| {
        let reg = reg.clone();
        async move { reg.list_rules(None, None, &p).await }
    })
    .await;
    let walked: Vec<String> = items.into_iter().map(|r| r.name).collect();
    assert_eq!(walked, ["A_rule", "a_rule", "b_rule", "c_rule", "d_rule"]);
    assert_eq!(sizes, [2, 2, 1]);
    let (items, sizes) = walk(1, true, |p| {
        let reg = reg.clone();
        async move { reg.list_rules(Some("a/+"), Some(false), &p).await }
    })
    .await;
    let walked: Vec<String> = items.into_iter().map(|r| r.name).collect();
    assert_eq!(walked, ["a_rule", "b_rule"]);
    assert_eq!(sizes, [1, 1]);

    // A rule deleted between pages is simply not seen; nothing repeats.
    let first = ok!(reg.list_rules(None, None, &page(2, true, None)));
    ok!(reg.delete_rule("b_rule"));
    let second = ok!(reg.list_rules(None, None, &page(2, true, first.next_marker.clone())));
    let second: Vec<String> = second.items.into_iter().map(|r| r.name).collect();
    assert_eq!(second, ["c_rule", "d_rule"]);

    // Another list's marker, garbage and a zero page size are refused.
    ok!(reg.create_policy("p1", "{}", 1));
    ok!(reg.create_policy("p2", "{}", 1));
    let policies = ok!(reg.list_policies(&page(1, true, None)));
    let foreign = policies.next_marker.expect("a policies marker");
    for marker in [foreign, "zz".to_owned()] {
        let e = err!(reg.list_rules(None, None, &page(2, true, Some(marker))));
        assert_variant!(e, RegistryError::InvalidRequest(_));
    }
    let e = err!(reg.list_rules(None, None, &page(0, true, None)));
    assert_variant!(e, RegistryError::InvalidRequest(_));
}
