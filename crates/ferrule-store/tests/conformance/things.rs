//! Things, their attributes and principals.

use ferrule_store::{PageRequest, Registry, RegistryChange, RegistryError};

use crate::common::*;

pub(crate) async fn thing_create_is_idempotent(reg: Registry) {
    let mut feed = reg.subscribe();
    let mut thing = thing_record(
        "sensor-1",
        Some("sensor"),
        &[("room", "kitchen"), ("floor", "1")],
    );
    thing.billing_group_name = Some("group".to_owned());
    thing.version = 42;
    let created = ok!(reg.create_thing(&thing));
    assert_eq!(created.version, 1, "the version given is ignored");
    assert_eq!(ok!(reg.get_thing("sensor-1")), Some(created.clone()));
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::ThingChanged {
            thing_name: "sensor-1".to_owned()
        }]
    );

    // The same configuration again (with a new id and time, as a new request would carry):
    // the existing thing.
    let mut again = thing.clone();
    again.thing_id = "11111111-1111-4111-8111-111111111111".to_owned();
    again.created_ms += 1;
    assert_eq!(ok!(reg.create_thing(&again)), created);
    assert_eq!(drain(&mut feed), vec![]);

    for change in [
        thing_record(
            "sensor-1",
            Some("sensor"),
            &[("room", "hall"), ("floor", "1")],
        ),
        thing_record("sensor-1", None, &[("room", "kitchen"), ("floor", "1")]),
        thing_record(
            "sensor-1",
            Some("sensor"),
            &[("room", "kitchen"), ("floor", "1")],
        ),
    ] {
        let e = err!(reg.create_thing(&change));
        assert_variant!(e, RegistryError::AlreadyExists { kind: "Thing", .. });
    }
    assert_eq!(ok!(reg.get_thing("sensor-1")), Some(created));
    assert_eq!(ok!(reg.get_thing("sensor-2")), None);
    let bare = ok!(reg.create_thing(&thing_record("bare", None, &[])));
    assert_eq!(ok!(reg.get_thing("bare")), Some(bare));
}

pub(crate) async fn thing_update(reg: Registry) {
    ok!(reg.create_thing(&thing_record(
        "t",
        Some("type-a"),
        &[("a", "1"), ("b", "2")]
    )));
    let mut feed = reg.subscribe();

    let merged = ok!(reg.update_thing(
        "t",
        None,
        Some(attrs(&[("b", ""), ("c", "3"), ("a", "10")])),
        true,
        Some(1)
    ));
    assert_eq!(merged.attributes, attrs(&[("a", "10"), ("c", "3")]));
    assert_eq!(merged.thing_type_name.as_deref(), Some("type-a"));
    assert_eq!(merged.version, 2);
    assert_eq!(ok!(reg.get_thing("t")), Some(merged.clone()));

    let replaced = ok!(reg.update_thing("t", Some(None), Some(attrs(&[("z", "26")])), false, None));
    assert_eq!(replaced.attributes, attrs(&[("z", "26")]));
    assert_eq!(replaced.thing_type_name, None);
    assert_eq!(replaced.version, 3);
    assert_eq!(replaced.thing_id, merged.thing_id);
    assert_eq!(replaced.created_ms, merged.created_ms);

    let typed = ok!(reg.update_thing("t", Some(Some("type-b".to_owned())), None, false, Some(3)));
    assert_eq!(typed.thing_type_name.as_deref(), Some("type-b"));
    assert_eq!(
        typed.attributes,
        attrs(&[("z", "26")]),
        "no attributes given: unchanged"
    );
    assert_eq!(typed.version, 4);
    let cleared = ok!(reg.update_thing("t", None, Some(attrs(&[])), false, None));
    assert!(cleared.attributes.is_empty());
    assert_eq!(ok!(reg.get_thing("t")), Some(cleared));

    let e = err!(reg.update_thing("t", None, None, false, Some(1)));
    assert_variant!(e, RegistryError::VersionConflict(_));
    assert_eq!(ok!(reg.get_thing("t")).expect("thing").version, 5);
    let e = err!(reg.update_thing("missing", None, None, false, None));
    assert_variant!(e, RegistryError::NotFound { kind: "Thing", .. });

    let change = RegistryChange::ThingChanged {
        thing_name: "t".to_owned(),
    };
    assert_eq!(drain(&mut feed), vec![change; 4]);
}

pub(crate) async fn thing_delete(reg: Registry) {
    ok!(reg.create_thing(&thing_record("t", None, &[("a", "1")])));
    ok!(reg.update_thing("t", None, None, false, None));
    ok!(reg.attach_thing_principal("t", "principal-1", false));
    ok!(reg.attach_thing_principal("t", "principal-2", true));
    ok!(reg.tag_resource(&thing_arn("t"), &[("k".to_owned(), "v".to_owned())]));
    let mut feed = reg.subscribe();

    ok!(reg.delete_thing("never-created", None));
    ok!(reg.delete_thing("never-created", Some(3)));
    let e = err!(reg.delete_thing("t", Some(1)));
    assert_variant!(e, RegistryError::VersionConflict(_));
    assert!(ok!(reg.get_thing("t")).is_some());
    assert_eq!(drain(&mut feed), vec![]);

    ok!(reg.delete_thing("t", Some(2)));
    assert_eq!(ok!(reg.get_thing("t")), None);
    assert_eq!(
        ok!(reg.list_principal_things("principal-1", &PageRequest::first(5)))
            .items
            .len(),
        0
    );
    assert_eq!(ok!(reg.list_tags(&thing_arn("t"))), vec![]);
    let detached = |principal: &str| RegistryChange::ThingPrincipalChanged {
        thing_name: "t".to_owned(),
        principal: principal.to_owned(),
    };
    assert_eq!(
        drain(&mut feed),
        vec![
            detached("principal-1"),
            detached("principal-2"),
            RegistryChange::ThingChanged {
                thing_name: "t".to_owned()
            }
        ]
    );
    // Gone for good: the exclusive principal may go elsewhere, the name may be reused.
    ok!(reg.create_thing(&thing_record("t", None, &[])));
    ok!(reg.create_thing(&thing_record("u", None, &[])));
    ok!(reg.attach_thing_principal("u", "principal-2", true));
    assert!(
        ok!(reg.get_thing("t"))
            .expect("thing")
            .attributes
            .is_empty()
    );
}

pub(crate) async fn thing_list_filters_and_pages(reg: Registry) {
    type Spec<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
    let specs: [Spec<'_>; 8] = [
        ("lamp-3", Some("lamp"), &[("room", "hall")]),
        (
            "lamp-1",
            Some("lamp"),
            &[("room", "kitchen"), ("colour", "red")],
        ),
        ("Lamp-0", None, &[("room", "kitchen")]),
        ("sensor-1", Some("sensor"), &[("room", "kitchen")]),
        (
            "lamp-2",
            Some("lamp"),
            &[("room", "kitchen"), ("colour", "blue")],
        ),
        ("sensor-2", Some("sensor"), &[]),
        ("hub", None, &[]),
        ("lamp-4", Some("lamp"), &[("colour", "kitchen")]),
    ];
    for (name, thing_type, attributes) in specs {
        ok!(reg.create_thing(&thing_record(name, thing_type, attributes)));
    }
    let query = |attribute: Option<(&str, &str)>, thing_type: Option<&str>, size, asc| {
        let reg = reg.clone();
        let attribute = attribute.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let thing_type = thing_type.map(str::to_owned);
        async move {
            let (items, _) = walk(size, asc, |p| {
                let (reg, attribute, thing_type) =
                    (reg.clone(), attribute.clone(), thing_type.clone());
                async move { reg.list_things(attribute, thing_type, &p).await }
            })
            .await;
            items.into_iter().map(|t| t.name).collect::<Vec<_>>()
        }
    };
    for size in [1, 2, 5, 8, 100] {
        assert_eq!(
            query(None, None, size, true).await,
            vec![
                "Lamp-0", "hub", "lamp-1", "lamp-2", "lamp-3", "lamp-4", "sensor-1", "sensor-2"
            ]
        );
        assert_eq!(
            query(None, None, size, false).await,
            vec![
                "sensor-2", "sensor-1", "lamp-4", "lamp-3", "lamp-2", "lamp-1", "hub", "Lamp-0"
            ]
        );
        assert_eq!(
            query(Some(("room", "kitchen")), None, size, true).await,
            vec!["Lamp-0", "lamp-1", "lamp-2", "sensor-1"]
        );
        assert_eq!(
            query(None, Some("lamp"), size, false).await,
            vec!["lamp-4", "lamp-3", "lamp-2", "lamp-1"]
        );
        assert_eq!(
            query(Some(("room", "kitchen")), Some("lamp"), size, true).await,
            vec!["lamp-1", "lamp-2"]
        );
    }
    assert_eq!(
        query(Some(("room", "attic")), None, 3, true).await,
        Vec::<String>::new()
    );
    assert_eq!(
        query(None, Some("none"), 3, true).await,
        Vec::<String>::new()
    );
    // Listed things carry their attributes.
    let page = ok!(reg.list_things(None, Some("lamp".to_owned()), &PageRequest::first(1)));
    assert_eq!(
        page.items[0].attributes,
        attrs(&[("room", "kitchen"), ("colour", "red")])
    );
    assert_eq!(Some(page.items[0].clone()), ok!(reg.get_thing("lamp-1")));
}

/// Pages larger than one attribute batch still carry every thing's attributes.
pub(crate) async fn large_thing_pages_carry_every_attribute(reg: Registry) {
    for n in 0..75 {
        let value = format!("v{n}");
        ok!(reg.create_thing(&thing_record(
            &format!("t{n:03}"),
            None,
            &[("n", &value), ("x", "y")]
        )));
    }
    let (things, sizes) = walk(70, true, |p| {
        let reg = reg.clone();
        async move { reg.list_things(None, None, &p).await }
    })
    .await;
    assert_eq!(sizes, vec![70, 5]);
    for (n, thing) in things.iter().enumerate() {
        assert_eq!(thing.name, format!("t{n:03}"));
        assert_eq!(
            thing.attributes,
            attrs(&[("n", &format!("v{n}")), ("x", "y")])
        );
    }
}

pub(crate) async fn thing_principals(reg: Registry) {
    ok!(reg.create_thing(&thing_record("t1", None, &[])));
    ok!(reg.create_thing(&thing_record("t2", None, &[])));
    let mut feed = reg.subscribe();
    let e = err!(reg.attach_thing_principal("missing", "p", false));
    assert_variant!(e, RegistryError::NotFound { kind: "Thing", .. });

    let mut principals: Vec<String> = (0..5).map(|n| cert_arn(&hex_id(n))).collect();
    for p in principals.iter().rev() {
        ok!(reg.attach_thing_principal("t1", p, false));
    }
    ok!(reg.attach_thing_principal("t1", &principals[0], false));
    ok!(reg.attach_thing_principal("t2", &principals[0], false));
    let changes = drain(&mut feed);
    assert_eq!(changes.len(), 6, "attaching twice emits once: {changes:?}");
    assert_eq!(
        changes[5],
        RegistryChange::ThingPrincipalChanged {
            thing_name: "t2".to_owned(),
            principal: principals[0].clone()
        }
    );

    principals.sort();
    for size in [1, 2, 5, 6] {
        for asc in [true, false] {
            let (mut got, _) = walk(size, asc, |p| {
                let reg = reg.clone();
                async move { reg.list_thing_principals("t1", &p).await }
            })
            .await;
            if !asc {
                got.reverse();
            }
            assert_eq!(got, principals, "page size {size}");
        }
        let first = principals[0].clone();
        let (got, _) = walk(size, false, |p| {
            let (reg, first) = (reg.clone(), first.clone());
            async move { reg.list_principal_things(&first, &p).await }
        })
        .await;
        assert_eq!(got, vec!["t2", "t1"]);
    }
    let e = err!(reg.list_thing_principals("missing", &PageRequest::first(5)));
    assert_variant!(e, RegistryError::NotFound { kind: "Thing", .. });
    let none = ok!(reg.list_principal_things("unattached", &PageRequest::first(5)));
    assert_eq!((none.items, none.next_marker), (Vec::<String>::new(), None));

    ok!(reg.detach_thing_principal("t1", &principals[0]));
    ok!(reg.detach_thing_principal("t1", &principals[0]));
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::ThingPrincipalChanged {
            thing_name: "t1".to_owned(),
            principal: principals[0].clone()
        }],
        "detaching twice emits once"
    );
    let e = err!(reg.detach_thing_principal("missing", &principals[0]));
    assert_variant!(e, RegistryError::NotFound { kind: "Thing", .. });
    let things = ok!(reg.list_principal_things(&principals[0], &PageRequest::first(5)));
    assert_eq!(things.items, vec!["t2"]);
}

pub(crate) async fn exclusive_thing_principals(reg: Registry) {
    for name in ["t1", "t2", "t3"] {
        ok!(reg.create_thing(&thing_record(name, None, &[])));
    }
    // Exclusive while attached elsewhere: refused.
    ok!(reg.attach_thing_principal("t1", "shared", false));
    let e = err!(reg.attach_thing_principal("t2", "shared", true));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    // Exclusive on the one thing it is attached to: upgraded in place.
    ok!(reg.attach_thing_principal("t1", "shared", true));
    let e = err!(reg.attach_thing_principal("t2", "shared", false));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    // Attaching again to its own thing is fine either way.
    ok!(reg.attach_thing_principal("t1", "shared", false));
    ok!(reg.attach_thing_principal("t1", "shared", true));
    assert_eq!(
        ok!(reg.list_principal_things("shared", &PageRequest::first(5))).items,
        vec!["t1"]
    );
    // Detached, it is free again.
    ok!(reg.detach_thing_principal("t1", "shared"));
    ok!(reg.attach_thing_principal("t2", "shared", false));
    ok!(reg.attach_thing_principal("t3", "shared", false));
    assert_eq!(
        ok!(reg.list_principal_things("shared", &PageRequest::first(5))).items,
        vec!["t2", "t3"]
    );
}

/// Racing exclusive attachments of one principal to different things: one wins.
pub(crate) async fn exclusive_thing_principal_race(reg: Registry) {
    for n in 0..12 {
        ok!(reg.create_thing(&thing_record(&format!("t{n}"), None, &[])));
    }
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            let reg = reg.clone();
            tokio::spawn(async move {
                reg.attach_thing_principal(&format!("t{n}"), "the-cert", true)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => won += 1,
            Err(RegistryError::InvalidRequest(_)) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        ok!(reg.list_principal_things("the-cert", &PageRequest::first(20)))
            .items
            .len(),
        1
    );
}
