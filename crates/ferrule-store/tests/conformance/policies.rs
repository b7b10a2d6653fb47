//! Policies, their versions and attachments.

use ferrule_store::{PageRequest, Registry, RegistryChange, RegistryError};

use crate::common::*;

pub(crate) async fn policy_create_and_get(reg: Registry) {
    let mut feed = reg.subscribe();
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    let created = ok!(reg.create_policy("PubSub", doc, 1_000));
    assert_eq!(created.name, "PubSub");
    assert_eq!(created.default_version_id, 1);
    assert_eq!(created.document, doc);
    assert_eq!((created.created_ms, created.modified_ms), (1_000, 1_000));
    assert!(!created.generation_id.is_empty());
    assert_eq!(ok!(reg.get_policy("PubSub")), Some(created.clone()));
    assert_eq!(
        ok!(reg.get_policy("pubsub")),
        None,
        "names are case-sensitive"
    );
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::PolicyChanged {
            policy_name: "PubSub".to_owned()
        }]
    );
    let e = err!(reg.create_policy("PubSub", "{}", 2));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Policy", .. });
    assert_eq!(ok!(reg.get_policy("PubSub")), Some(created));
    let versions = ok!(reg.list_policy_versions("PubSub"));
    assert_eq!(versions.len(), 1);
    assert!(versions[0].is_default);
    assert_eq!(versions[0].version_id, 1);
    assert_eq!(versions[0].document, doc);
    assert_eq!(versions[0].created_ms, 1_000);
}

pub(crate) async fn policy_versions(reg: Registry) {
    ok!(reg.create_policy("p", "v1", 1));
    let mut feed = reg.subscribe();
    let v2 = ok!(reg.create_policy_version("p", "v2", false, 2));
    assert_eq!((v2.version_id, v2.is_default, v2.created_ms), (2, false, 2));
    assert_eq!(v2.policy_name, "p");
    assert_eq!(
        drain(&mut feed),
        vec![],
        "a non-default version changes nothing evaluated"
    );
    let v3 = ok!(reg.create_policy_version("p", "v3", true, 3));
    assert!(v3.is_default);
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::PolicyChanged {
            policy_name: "p".to_owned()
        }]
    );
    let policy = ok!(reg.get_policy("p")).expect("policy");
    assert_eq!(
        (policy.default_version_id, policy.document.as_str()),
        (3, "v3")
    );
    assert_eq!((policy.created_ms, policy.modified_ms), (1, 3));
    ok!(reg.create_policy_version("p", "v4", false, 4));
    ok!(reg.create_policy_version("p", "v5", false, 5));
    let e = err!(reg.create_policy_version("p", "v6", true, 6));
    assert_variant!(e, RegistryError::VersionsLimitExceeded(_));
    assert_eq!(
        ok!(reg.get_policy("p")).expect("policy").default_version_id,
        3
    );

    let got = ok!(reg.get_policy_version("p", 1)).expect("version 1");
    assert_eq!(
        (got.document.as_str(), got.is_default, got.created_ms),
        ("v1", false, 1)
    );
    assert!(
        ok!(reg.get_policy_version("p", 3))
            .expect("version 3")
            .is_default
    );
    assert_eq!(ok!(reg.get_policy_version("p", 9)), None);
    assert_eq!(ok!(reg.get_policy_version("missing", 1)), None);

    // The default version cannot be deleted; others can, and their ids are not reused.
    let e = err!(reg.delete_policy_version("p", 3));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    ok!(reg.delete_policy_version("p", 5));
    let e = err!(reg.delete_policy_version("p", 5));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Policy version",
            ..
        }
    );
    let v6 = ok!(reg.create_policy_version("p", "v6", false, 7));
    assert_eq!(v6.version_id, 6);
    let ids: Vec<(i64, bool)> = ok!(reg.list_policy_versions("p"))
        .into_iter()
        .map(|v| (v.version_id, v.is_default))
        .collect();
    assert_eq!(
        ids,
        vec![(1, false), (2, false), (3, true), (4, false), (6, false)]
    );

    drain(&mut feed);
    let before = ok!(reg.get_policy("p")).expect("policy");
    ok!(reg.set_default_policy_version("p", 1, 8));
    let after = ok!(reg.get_policy("p")).expect("policy");
    assert_eq!(
        (
            after.default_version_id,
            after.document.as_str(),
            after.modified_ms
        ),
        (1, "v1", 8)
    );
    assert_ne!(after.generation_id, before.generation_id);
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::PolicyChanged {
            policy_name: "p".to_owned()
        }]
    );
    // Setting the current default again changes nothing.
    ok!(reg.set_default_policy_version("p", 1, 9));
    assert_eq!(ok!(reg.get_policy("p")), Some(after));
    assert_eq!(drain(&mut feed), vec![]);

    let e = err!(reg.set_default_policy_version("p", 42, 10));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Policy version",
            ..
        }
    );
    let e = err!(reg.set_default_policy_version("missing", 1, 10));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
    let e = err!(reg.delete_policy_version("missing", 1));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
    let e = err!(reg.create_policy_version("missing", "x", true, 10));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
    let e = err!(reg.list_policy_versions("missing"));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
}

/// Racing version creations still stop at 5.
pub(crate) async fn policy_version_limit_holds_under_races(reg: Registry) {
    ok!(reg.create_policy("p", "v1", 1));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move { reg.create_policy_version("p", "vx", i % 2 == 0, 2).await })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(v) => created.push(v.version_id),
            Err(RegistryError::VersionsLimitExceeded(_)) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    created.sort_unstable();
    assert_eq!(created, vec![2, 3, 4, 5]);
    assert_eq!(ok!(reg.list_policy_versions("p")).len(), 5);
}

pub(crate) async fn policy_delete(reg: Registry) {
    ok!(reg.create_policy("p", "v1", 1));
    ok!(reg.create_policy_version("p", "v2", true, 2));
    ok!(reg.attach_policy("p", "target-1"));
    ok!(reg.tag_resource(&policy_arn("p"), &[("k".to_owned(), "v".to_owned())]));

    let e = err!(reg.delete_policy("p"));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    ok!(reg.detach_policy("p", "target-1"));
    let e = err!(reg.delete_policy("p"));
    assert_variant!(e, RegistryError::DeleteConflict(_),);
    ok!(reg.delete_policy_version("p", 1));

    let mut feed = reg.subscribe();
    ok!(reg.delete_policy("p"));
    assert_eq!(ok!(reg.get_policy("p")), None);
    assert_eq!(ok!(reg.list_tags(&policy_arn("p"))), vec![]);
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::PolicyChanged {
            policy_name: "p".to_owned()
        }]
    );
    let e = err!(reg.delete_policy("p"));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });

    // A policy created again under the same name starts over at version 1.
    let again = ok!(reg.create_policy("p", "new", 3));
    assert_eq!(again.default_version_id, 1);
    assert_eq!(ok!(reg.list_policy_versions("p")).len(), 1);
}

pub(crate) async fn policy_attachments(reg: Registry) {
    let cert = cert_arn(&hex_id(1));
    let other = cert_arn(&hex_id(2));
    ok!(reg.create_policy("b-policy", "doc-b", 1));
    ok!(reg.create_policy("a-policy", "doc-a", 1));
    let mut feed = reg.subscribe();

    let e = err!(reg.attach_policy("missing", &cert));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
    ok!(reg.attach_policy("b-policy", &cert));
    ok!(reg.attach_policy("b-policy", &cert));
    ok!(reg.attach_policy("a-policy", &cert));
    ok!(reg.attach_policy("a-policy", &other));
    let attached = |name: &str, target: &str| RegistryChange::PolicyAttachmentChanged {
        policy_name: name.to_owned(),
        target: target.to_owned(),
    };
    assert_eq!(
        drain(&mut feed),
        vec![
            attached("b-policy", &cert),
            attached("a-policy", &cert),
            attached("a-policy", &other)
        ],
        "attaching twice emits once"
    );

    let effective = ok!(reg.policies_for_target(&cert));
    let summary: Vec<(&str, &str)> = effective
        .iter()
        .map(|p| (p.name.as_str(), p.document.as_str()))
        .collect();
    assert_eq!(summary, vec![("a-policy", "doc-a"), ("b-policy", "doc-b")]);
    // The document evaluated follows the default version.
    ok!(reg.create_policy_version("a-policy", "doc-a2", true, 2));
    assert_eq!(ok!(reg.policies_for_target(&cert))[0].document, "doc-a2");
    assert_eq!(ok!(reg.policies_for_target("nobody")), vec![]);

    let targets = ok!(reg.list_policy_targets("a-policy", &PageRequest::first(10)));
    assert_eq!(targets.items, vec![cert.clone(), other.clone()]);
    let e = err!(reg.list_policy_targets("missing", &PageRequest::first(10)));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });

    drain(&mut feed);
    ok!(reg.detach_policy("a-policy", &cert));
    ok!(reg.detach_policy("a-policy", &cert));
    assert_eq!(
        drain(&mut feed),
        vec![attached("a-policy", &cert)],
        "detaching twice emits once"
    );
    let e = err!(reg.detach_policy("missing", &cert));
    assert_variant!(e, RegistryError::NotFound { kind: "Policy", .. });
    let names: Vec<String> = ok!(reg.policies_for_target(&cert))
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["b-policy"]);
}

pub(crate) async fn policy_attachment_limit(reg: Registry) {
    for n in 0..11 {
        ok!(reg.create_policy(&format!("p{n:02}"), "{}", 1));
    }
    for n in 0..10 {
        ok!(reg.attach_policy(&format!("p{n:02}"), "target"));
    }
    let e = err!(reg.attach_policy("p10", "target"));
    assert_variant!(e, RegistryError::LimitExceeded(_));
    ok!(reg.attach_policy("p03", "target"));
    ok!(reg.attach_policy("p10", "another target"));
    ok!(reg.detach_policy("p00", "target"));
    ok!(reg.attach_policy("p10", "target"));
    assert_eq!(ok!(reg.policies_for_target("target")).len(), 10);
}

/// Racing attachments to one target still stop at 10.
pub(crate) async fn policy_attachment_limit_holds_under_races(reg: Registry) {
    for n in 0..16 {
        ok!(reg.create_policy(&format!("p{n}"), "{}", 1));
    }
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let reg = reg.clone();
            tokio::spawn(async move { reg.attach_policy(&format!("p{n}"), "target").await })
        })
        .collect();
    let mut attached = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => attached += 1,
            Err(RegistryError::LimitExceeded(_)) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(attached, 10);
    assert_eq!(ok!(reg.policies_for_target("target")).len(), 10);
}

pub(crate) async fn policy_list_pages(reg: Registry) {
    // Byte order, the same on both backends whatever PostgreSQL's locale: upper case before
    // lower case, '-' before digits before '_'.
    let mut names = vec![
        "b", "B", "a", "A-1", "a_b", "a-b", "a1", "Zed", "z.z", "@x", "a=b",
    ];
    for name in &names {
        ok!(reg.create_policy(name, &format!("doc of {name}"), 1));
    }
    names.sort_unstable();
    for page_size in [1, 3, 11, 20] {
        let (items, _) = walk(page_size, true, |p| {
            let reg = reg.clone();
            async move { reg.list_policies(&p).await }
        })
        .await;
        let got: Vec<String> = items.iter().map(|p| p.name.clone()).collect();
        assert_eq!(got, names, "page size {page_size}");
        assert!(
            items
                .iter()
                .all(|p| p.document == format!("doc of {}", p.name))
        );

        let (items, _) = walk(page_size, false, |p| {
            let reg = reg.clone();
            async move { reg.list_policies(&p).await }
        })
        .await;
        let mut got: Vec<String> = items.into_iter().map(|p| p.name).collect();
        got.reverse();
        assert_eq!(got, names, "descending, page size {page_size}");
    }
}

pub(crate) async fn attached_policy_and_target_pages(reg: Registry) {
    let mut policies: Vec<String> = (0..7).map(|n| format!("policy-{n}")).collect();
    let mut targets: Vec<String> = (0..9).map(|n| cert_arn(&hex_id(n))).collect();
    for p in &policies {
        ok!(reg.create_policy(p, "{}", 1));
        ok!(reg.attach_policy(p, &targets[0]));
    }
    for t in &targets[1..] {
        ok!(reg.attach_policy(&policies[3], t));
    }
    ok!(reg.create_policy("unattached", "{}", 1));
    policies.sort();
    targets.sort();
    for page_size in [1, 2, 7, 9, 10] {
        for asc in [true, false] {
            let target = targets[0].clone();
            let (items, _) = walk(page_size, asc, |p| {
                let (reg, target) = (reg.clone(), target.clone());
                async move { reg.list_attached_policies(&target, &p).await }
            })
            .await;
            let mut got: Vec<String> = items.into_iter().map(|p| p.name).collect();
            if !asc {
                got.reverse();
            }
            assert_eq!(got, policies, "attached policies, page size {page_size}");

            let name = policies[3].clone();
            let (mut got, _) = walk(page_size, asc, |p| {
                let (reg, name) = (reg.clone(), name.clone());
                async move { reg.list_policy_targets(&name, &p).await }
            })
            .await;
            if !asc {
                got.reverse();
            }
            assert_eq!(got, targets, "targets, page size {page_size}");
        }
    }
    let none = ok!(reg.list_attached_policies("nothing attached", &PageRequest::first(5)));
    assert_eq!((none.items, none.next_marker), (vec![], None));
    let none = ok!(reg.list_policy_targets("unattached", &PageRequest::first(5)));
    assert_eq!((none.items, none.next_marker), (Vec::<String>::new(), None));
}
