//! Device certificates, and the paging rules every list shares.

use std::sync::Arc;

use ferrule_store::{CertificateStatus, PageRequest, Registry, RegistryChange, RegistryError};

use crate::common::*;

pub(crate) async fn certificate_round_trip(reg: Registry) {
    let ca = ca_record(1, b"s", 1);
    ok!(reg.insert_ca(&ca));
    let mut feed = reg.subscribe();
    let cert = cert_record(10, Some(&ca.id), 5, CertificateStatus::PendingActivation);
    ok!(reg.insert_certificate(&cert));
    let without_ca = cert_record(11, None, 6, CertificateStatus::Active);
    ok!(reg.insert_certificate(&without_ca));
    assert_eq!(ok!(reg.get_certificate(&cert.id)), Some(cert.clone()));
    assert_eq!(
        ok!(reg.get_certificate(&without_ca.id)),
        Some(without_ca.clone())
    );
    assert_eq!(ok!(reg.get_certificate(&hex_id(12))), None);
    assert_eq!(
        drain(&mut feed),
        vec![
            RegistryChange::CertificateChanged {
                certificate_id: cert.id.clone(),
                status: CertificateStatus::PendingActivation,
                ca_id: cert.ca_id.clone(),
            },
            RegistryChange::CertificateChanged {
                certificate_id: without_ca.id.clone(),
                status: CertificateStatus::Active,
                ca_id: None,
            },
        ]
    );
}

pub(crate) async fn certificate_insert_errors(reg: Registry) {
    let cert = cert_record(1, None, 1, CertificateStatus::Inactive);
    ok!(reg.insert_certificate(&cert));
    let e = err!(reg.insert_certificate(&cert));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "Certificate", ref id } if *id == cert.id);
    let orphan = cert_record(2, Some(&hex_id(404)), 1, CertificateStatus::Inactive);
    let e = err!(reg.insert_certificate(&orphan));
    assert_variant!(e, RegistryError::NotFound { kind: "CA certificate", ref id } if *id == hex_id(404));
    assert_eq!(ok!(reg.get_certificate(&orphan.id)), None);
}

/// JITR: many connections of one new device race to register its certificate.
pub(crate) async fn certificate_insert_race_has_one_winner(reg: Registry) {
    let ca = ca_record(1, b"s", 1);
    ok!(reg.insert_ca(&ca));
    let mut feed = reg.subscribe();
    let cert = Arc::new(cert_record(
        5,
        Some(&ca.id),
        7,
        CertificateStatus::PendingActivation,
    ));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (reg, cert) = (reg.clone(), Arc::clone(&cert));
            tokio::spawn(async move { reg.insert_certificate(&cert).await })
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => won += 1,
            Err(RegistryError::AlreadyExists { .. }) => lost += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((won, lost), (1, 199));
    assert_eq!(drain(&mut feed).len(), 1, "one registration, one event");
    assert_eq!(ok!(reg.get_certificate(&cert.id)).as_ref(), Some(&*cert));
}

pub(crate) async fn certificate_status_updates(reg: Registry) {
    let cert = cert_record(1, None, 100, CertificateStatus::PendingActivation);
    ok!(reg.insert_certificate(&cert));
    let mut feed = reg.subscribe();

    let active = ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Active, 200));
    assert_eq!(active.status, CertificateStatus::Active);
    assert_eq!(active.customer_version, 2);
    assert_eq!(active.modified_ms, 200);
    assert_eq!(active.created_ms, 100);
    assert_ne!(active.generation_id, cert.generation_id);
    assert_eq!(ok!(reg.get_certificate(&cert.id)), Some(active.clone()));

    // Setting the same status again changes nothing and emits nothing.
    let same = ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Active, 300));
    assert_eq!(same, active);

    let revoked = ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Revoked, 400));
    assert_eq!(revoked.customer_version, 3);
    let e = err!(reg.update_certificate_status(&cert.id, CertificateStatus::Active, 500));
    assert_variant!(e, RegistryError::CertificateState(_));
    ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Inactive, 600));

    assert_eq!(
        drain(&mut feed),
        [
            CertificateStatus::Active,
            CertificateStatus::Revoked,
            CertificateStatus::Inactive
        ]
        .into_iter()
        .map(|status| RegistryChange::CertificateChanged {
            certificate_id: cert.id.clone(),
            status,
            ca_id: cert.ca_id.clone(),
        })
        .collect::<Vec<_>>()
    );
    let e = err!(reg.update_certificate_status(&hex_id(2), CertificateStatus::Active, 1));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Certificate",
            ..
        }
    );
}

pub(crate) async fn certificate_delete_rules(reg: Registry) {
    let cert = cert_record(1, None, 1, CertificateStatus::Active);
    let arn = cert_arn(&cert.id);
    ok!(reg.insert_certificate(&cert));
    ok!(reg.create_policy("p1", "{}", 1));
    ok!(reg.create_policy("p2", "{}", 1));
    ok!(reg.attach_policy("p1", &arn));
    ok!(reg.attach_policy("p2", &arn));
    ok!(reg.create_thing(&thing_record("t1", None, &[])));
    ok!(reg.attach_thing_principal("t1", &arn, false));
    ok!(reg.tag_resource(&arn, &[("k".to_owned(), "v".to_owned())]));

    let e = err!(reg.delete_certificate(&cert.id, true));
    assert_variant!(e, RegistryError::CertificateState(_));
    ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Inactive, 2));
    let e = err!(reg.delete_certificate(&cert.id, true));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    ok!(reg.detach_thing_principal("t1", &arn));
    let e = err!(reg.delete_certificate(&cert.id, false));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    assert_eq!(
        ok!(reg.policies_for_target(&arn)).len(),
        2,
        "a refused delete detaches nothing"
    );

    let mut feed = reg.subscribe();
    ok!(reg.delete_certificate(&cert.id, true));
    assert_eq!(ok!(reg.get_certificate(&cert.id)), None);
    assert_eq!(ok!(reg.policies_for_target(&arn)), vec![]);
    assert_eq!(ok!(reg.list_tags(&arn)), vec![]);
    assert_eq!(
        drain(&mut feed),
        vec![
            RegistryChange::PolicyAttachmentChanged {
                policy_name: "p1".to_owned(),
                target: arn.clone()
            },
            RegistryChange::PolicyAttachmentChanged {
                policy_name: "p2".to_owned(),
                target: arn.clone()
            },
            RegistryChange::CertificateDeleted {
                certificate_id: cert.id.clone()
            },
        ]
    );
    // Now the policies can go too.
    ok!(reg.delete_policy("p1"));

    let e = err!(reg.delete_certificate(&cert.id, false));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "Certificate",
            ..
        }
    );

    // Without attachments, no force is needed.
    let plain = cert_record(2, None, 1, CertificateStatus::Revoked);
    ok!(reg.insert_certificate(&plain));
    ok!(reg.delete_certificate(&plain.id, false));
}

pub(crate) async fn certificate_list_pages(reg: Registry) {
    let ca_a = ca_record(100, b"a", 1);
    let ca_b = ca_record(101, b"b", 1);
    ok!(reg.insert_ca(&ca_a));
    ok!(reg.insert_ca(&ca_b));
    let mut all = Vec::new();
    let mut under_a = Vec::new();
    for n in 0..11_u64 {
        let created = [3, 1, 2][n as usize % 3];
        let ca = match n % 3 {
            0 => None,
            1 => Some(ca_a.id.as_str()),
            _ => Some(ca_b.id.as_str()),
        };
        ok!(reg.insert_certificate(&cert_record(n, ca, created, CertificateStatus::Inactive)));
        all.push((created, hex_id(n)));
        if n % 3 == 1 {
            under_a.push((created, hex_id(n)));
        }
    }
    all.sort();
    under_a.sort();
    let all: Vec<String> = all.into_iter().map(|(_, id)| id).collect();
    let under_a: Vec<String> = under_a.into_iter().map(|(_, id)| id).collect();

    for page_size in [1, 4, 11, 12] {
        for asc in [true, false] {
            let mut want = all.clone();
            let mut want_a = under_a.clone();
            if !asc {
                want.reverse();
                want_a.reverse();
            }
            let (items, _) = walk(page_size, asc, |p| {
                let reg = reg.clone();
                async move { reg.list_certificates(&p).await }
            })
            .await;
            let ids: Vec<String> = items.into_iter().map(|c| c.id).collect();
            assert_eq!(ids, want, "all, page size {page_size}, ascending {asc}");

            let ca_id = ca_a.id.clone();
            let (items, _) = walk(page_size, asc, |p| {
                let (reg, ca_id) = (reg.clone(), ca_id.clone());
                async move { reg.list_certificates_by_ca(&ca_id, &p).await }
            })
            .await;
            let ids: Vec<String> = items.into_iter().map(|c| c.id).collect();
            assert_eq!(ids, want_a, "by CA, page size {page_size}, ascending {asc}");
        }
    }
    let none = ok!(reg.list_certificates_by_ca(&hex_id(999), &PageRequest::first(10)));
    assert_eq!((none.items.len(), none.next_marker), (0, None));
}

/// Items created or deleted between pages neither repeat nor shift the walk.
pub(crate) async fn pages_are_stable_under_concurrent_changes(reg: Registry) {
    for n in 0..6_u64 {
        ok!(reg.insert_certificate(&cert_record(
            n,
            None,
            n as i64 * 10,
            CertificateStatus::Inactive
        )));
    }
    let first = ok!(reg.list_certificates(&page(3, true, None)));
    let ids: Vec<_> = first.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![hex_id(0), hex_id(1), hex_id(2)]);
    // Delete an item already seen, add one before the marker and one after it.
    ok!(reg.delete_certificate(&hex_id(1), false));
    ok!(reg.insert_certificate(&cert_record(50, None, 5, CertificateStatus::Inactive)));
    ok!(reg.insert_certificate(&cert_record(51, None, 45, CertificateStatus::Inactive)));
    let second = ok!(reg.list_certificates(&page(3, true, first.next_marker)));
    let ids: Vec<_> = second.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![hex_id(3), hex_id(4), hex_id(51)]);
    let third = ok!(reg.list_certificates(&page(3, true, second.next_marker)));
    let ids: Vec<_> = third.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!((ids, third.next_marker), (vec![hex_id(5)], None));
}

pub(crate) async fn bad_page_requests_are_refused(reg: Registry) {
    // A marker made by hand: the list's name and the key's parts, NUL-separated, hex-encoded.
    let hex = |parts: &[&str]| -> String {
        parts
            .join("\0")
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    // Upper-case hex is still the same marker.
    ok!(reg.list_cas(&page(1, true, Some(hex(&["cas", "1", "a"]).to_uppercase()))));
    ok!(reg.create_policy("a", "{}", 1));
    ok!(reg.create_policy("b", "{}", 1));
    ok!(reg.insert_ca(&ca_record(1, b"s", 1)));
    ok!(reg.insert_ca(&ca_record(2, b"s", 2)));
    let policy_marker = ok!(reg.list_policies(&PageRequest::first(1)))
        .next_marker
        .expect("a second page");
    let ca_marker = ok!(reg.list_cas(&PageRequest::first(1)))
        .next_marker
        .expect("a second page");

    let bad_markers = [
        "".to_owned(),
        "not hex!".to_owned(),
        "abc".to_owned(),
        "ffff".to_owned(),
        "00".repeat(40),
        format!("{ca_marker}00"),
        format!("{ca_marker}0"),
        hex(&["cas", "not a number", "id"]),
        hex(&["cas", "1"]),
        hex(&["cas", "1", "id", "extra"]),
        hex(&["things", "1", "id"]),
    ];
    for marker in &bad_markers {
        let e = err!(reg.list_cas(&page(1, true, Some(marker.clone()))));
        assert_variant!(e, RegistryError::InvalidRequest(_));
    }
    // A marker of another list.
    let e = err!(reg.list_cas(&page(1, true, Some(policy_marker.clone()))));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.list_policies(&page(1, true, Some(ca_marker.clone()))));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.list_things(None, None, &page(1, true, Some(policy_marker.clone()))));
    assert_variant!(e, RegistryError::InvalidRequest(_));
    let e = err!(reg.list_certificates(&page(1, true, Some(ca_marker.clone()))));
    assert_variant!(e, RegistryError::InvalidRequest(_));

    // A zero page size, on every list.
    let zero = page(0, true, None);
    assert_variant!(err!(reg.list_cas(&zero)), RegistryError::InvalidRequest(_));
    assert_variant!(
        err!(reg.list_certificates(&zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_certificates_by_ca(&hex_id(1), &zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_policies(&zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_attached_policies("t", &zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_policy_targets("a", &zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_things(None, None, &zero)),
        RegistryError::InvalidRequest(_)
    );
    ok!(reg.create_thing(&thing_record("t", None, &[])));
    assert_variant!(
        err!(reg.list_thing_principals("t", &zero)),
        RegistryError::InvalidRequest(_)
    );
    assert_variant!(
        err!(reg.list_principal_things("p", &zero)),
        RegistryError::InvalidRequest(_)
    );

    // The good markers still work.
    let rest = ok!(reg.list_cas(&page(1, true, Some(ca_marker))));
    assert_eq!(rest.items.len(), 1);
}
