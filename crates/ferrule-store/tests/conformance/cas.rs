//! CA certificates.

use ferrule_store::{
    AutoRegistrationStatus, CaStatus, CertificateMode, CertificateStatus, Registry, RegistryChange,
    RegistryError,
};

use crate::common::*;

pub(crate) async fn ca_round_trip(reg: Registry) {
    let mut feed = reg.subscribe();
    let mut ca = ca_record(1, b"subject-one", 1_000);
    ca.registration_config =
        Some(r#"{"templateBody":"{}","roleArn":"arn:aws:iam::1:role/r"}"#.to_owned());
    ca.mode = CertificateMode::SniOnly;
    ca.status = CaStatus::Active;
    ca.auto_registration = AutoRegistrationStatus::Enable;
    ok!(reg.insert_ca(&ca));
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::CaChanged {
            ca_id: ca.id.clone()
        }]
    );
    assert_eq!(ok!(reg.get_ca(&ca.id)), Some(ca.clone()));
    assert_eq!(ok!(reg.get_ca(&hex_id(99))), None);
    let other = ca_record(2, b"subject-two", 500);
    ok!(reg.insert_ca(&other));
    assert_eq!(ok!(reg.all_cas()), vec![other.clone(), ca.clone()]);
    assert_eq!(ok!(reg.cas_by_subject(b"subject-one")), vec![ca]);
    assert_eq!(ok!(reg.cas_by_subject(b"nobody")), vec![]);
}

pub(crate) async fn ca_insert_twice_already_exists(reg: Registry) {
    let ca = ca_record(1, b"s", 1);
    ok!(reg.insert_ca(&ca));
    let mut feed = reg.subscribe();
    let mut again = ca.clone();
    again.pem = "different".to_owned();
    let e = err!(reg.insert_ca(&again));
    assert_variant!(e, RegistryError::AlreadyExists { kind: "CA certificate", ref id } if *id == ca.id);
    assert_eq!(ok!(reg.get_ca(&ca.id)), Some(ca));
    assert_eq!(drain(&mut feed), vec![], "a refused insert emits nothing");
}

pub(crate) async fn ca_same_subject_limit(reg: Registry) {
    for n in 0..10 {
        ok!(reg.insert_ca(&ca_record(n, b"shared subject", 100 - n as i64)));
    }
    let e = err!(reg.insert_ca(&ca_record(10, b"shared subject", 1)));
    assert_variant!(e, RegistryError::LimitExceeded(_));
    ok!(reg.insert_ca(&ca_record(11, b"another subject", 1)));
    let shared = ok!(reg.cas_by_subject(b"shared subject"));
    let ids: Vec<_> = shared.iter().map(|ca| ca.id.clone()).collect();
    let expected: Vec<_> = (0..10).rev().map(hex_id).collect();
    assert_eq!(ids, expected, "ordered by creation time");
}

pub(crate) async fn ca_update(reg: Registry) {
    let ca = ca_record(1, b"s", 1_000);
    ok!(reg.insert_ca(&ca));
    let mut feed = reg.subscribe();

    let updated = ok!(reg.update_ca(
        &ca.id,
        Some(CaStatus::Active),
        Some(AutoRegistrationStatus::Enable),
        Some(Some(r#"{"templateName":"t"}"#.to_owned())),
        2_000
    ));
    assert_eq!(updated.status, CaStatus::Active);
    assert_eq!(updated.auto_registration, AutoRegistrationStatus::Enable);
    assert_eq!(
        updated.registration_config.as_deref(),
        Some(r#"{"templateName":"t"}"#)
    );
    assert_eq!(updated.customer_version, 2);
    assert_eq!(updated.modified_ms, 2_000);
    assert_eq!(updated.created_ms, 1_000);
    assert_ne!(updated.generation_id, ca.generation_id);
    assert_eq!(ok!(reg.get_ca(&ca.id)), Some(updated.clone()));

    // Nothing given: only the bookkeeping changes.
    let touched = ok!(reg.update_ca(&ca.id, None, None, None, 3_000));
    assert_eq!(touched.status, CaStatus::Active);
    assert_eq!(touched.registration_config, updated.registration_config);
    assert_eq!(touched.customer_version, 3);
    assert_ne!(touched.generation_id, updated.generation_id);

    // Some(None) removes the registration config.
    let removed = ok!(reg.update_ca(
        &ca.id,
        Some(CaStatus::Inactive),
        Some(AutoRegistrationStatus::Disable),
        Some(None),
        4_000
    ));
    assert_eq!(removed.registration_config, None);
    assert_eq!(removed.status, CaStatus::Inactive);
    assert_eq!(ok!(reg.get_ca(&ca.id)), Some(removed));

    let change = RegistryChange::CaChanged {
        ca_id: ca.id.clone(),
    };
    assert_eq!(
        drain(&mut feed),
        vec![change.clone(), change.clone(), change]
    );

    let e = err!(reg.update_ca(&hex_id(9), Some(CaStatus::Active), None, None, 1));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "CA certificate",
            ..
        }
    );
}

pub(crate) async fn ca_delete(reg: Registry) {
    let mut ca = ca_record(1, b"s", 1);
    ca.status = CaStatus::Active;
    ok!(reg.insert_ca(&ca));
    ok!(reg.insert_certificate(&cert_record(
        7,
        Some(&ca.id),
        1,
        CertificateStatus::Inactive
    )));
    ok!(reg.tag_resource(&ca_arn(&ca.id), &[("k".to_owned(), "v".to_owned())]));
    let mut feed = reg.subscribe();

    let e = err!(reg.delete_ca(&ca.id));
    assert_variant!(e, RegistryError::CertificateState(_));
    ok!(reg.update_ca(&ca.id, Some(CaStatus::Inactive), None, None, 2));
    let e = err!(reg.delete_ca(&ca.id));
    assert_variant!(e, RegistryError::DeleteConflict(_));
    ok!(reg.delete_certificate(&hex_id(7), false));
    drain(&mut feed);

    ok!(reg.delete_ca(&ca.id));
    assert_eq!(ok!(reg.get_ca(&ca.id)), None);
    assert_eq!(
        ok!(reg.list_tags(&ca_arn(&ca.id))),
        vec![],
        "tags go with the CA"
    );
    assert_eq!(
        drain(&mut feed),
        vec![RegistryChange::CaChanged {
            ca_id: ca.id.clone()
        }]
    );
    let e = err!(reg.delete_ca(&ca.id));
    assert_variant!(
        e,
        RegistryError::NotFound {
            kind: "CA certificate",
            ..
        }
    );
}

pub(crate) async fn ca_list_pages(reg: Registry) {
    // Creation times with ties, inserted out of order: the order is (created_ms, id).
    let times = [50, 10, 30, 10, 20, 50, 40];
    for (n, t) in times.iter().enumerate() {
        ok!(reg.insert_ca(&ca_record(n as u64, format!("s{n}").as_bytes(), *t)));
    }
    let mut expected: Vec<(i64, String)> = times
        .iter()
        .enumerate()
        .map(|(n, t)| (*t, hex_id(n as u64)))
        .collect();
    expected.sort();
    let ascending: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let mut descending = ascending.clone();
    descending.reverse();

    for page_size in [1, 2, 3, 6, 7, 8, 250] {
        for (asc, want) in [(true, &ascending), (false, &descending)] {
            let (items, sizes) = walk(page_size, asc, |p| {
                let reg = reg.clone();
                async move { reg.list_cas(&p).await }
            })
            .await;
            let ids: Vec<String> = items.into_iter().map(|ca| ca.id).collect();
            assert_eq!(&ids, want, "page size {page_size}, ascending {asc}");
            assert_eq!(sizes.len(), 7_usize.div_ceil(page_size).max(1), "{sizes:?}");
        }
    }
    assert_eq!(ok!(reg.all_cas()).len(), 7);
}
