//! The change feed as a whole, error messages, and enum spellings.

use ferrule_store::{
    AutoRegistrationStatus, CaStatus, CertificateMode, CertificateStatus, Registry, RegistryChange,
    RegistryError,
};

use crate::common::*;

/// One pass over every kind of mutation, checking the exact feed, and that a refused
/// mutation and a read emit nothing.
pub(crate) async fn change_feed_covers_every_mutation(reg: Registry) {
    let mut feed = reg.subscribe();
    let mut second = reg.clone().subscribe();
    let ca = ca_record(1, b"s", 1);
    let cert = cert_record(2, Some(&ca.id), 1, CertificateStatus::PendingActivation);
    let arn = cert_arn(&cert.id);

    ok!(reg.insert_ca(&ca));
    ok!(reg.update_ca(&ca.id, Some(CaStatus::Active), None, None, 2));
    ok!(reg.insert_certificate(&cert));
    ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Active, 3));
    ok!(reg.create_policy("p", "{}", 1));
    ok!(reg.create_policy_version("p", "{ }", true, 2));
    ok!(reg.set_default_policy_version("p", 1, 3));
    ok!(reg.delete_policy_version("p", 2));
    ok!(reg.attach_policy("p", &arn));
    ok!(reg.create_thing(&thing_record("t", None, &[])));
    ok!(reg.update_thing("t", None, Some(attrs(&[("a", "b")])), true, None));
    ok!(reg.attach_thing_principal("t", &arn, false));
    // Refused or read-only: no events.
    err!(reg.insert_certificate(&cert));
    err!(reg.delete_policy("p"));
    ok!(reg.get_certificate(&cert.id));
    ok!(reg.tag_resource(&arn, &[("k".to_owned(), "v".to_owned())]));
    ok!(reg.get_or_create_setting("k", "v"));
    ok!(reg.detach_thing_principal("t", &arn));
    ok!(reg.delete_thing("t", None));
    ok!(reg.update_certificate_status(&cert.id, CertificateStatus::Inactive, 4));
    ok!(reg.delete_certificate(&cert.id, true));
    ok!(reg.delete_policy("p"));
    ok!(reg.update_ca(&ca.id, Some(CaStatus::Inactive), None, None, 5));
    ok!(reg.delete_ca(&ca.id));
    ok!(reg.create_rule(&rule_record("r", "t", false, 1)));
    ok!(reg.replace_rule(&rule_record("r", "u", false, 1)));
    ok!(reg.set_rule_disabled("r", true));
    ok!(reg.set_rule_disabled("r", false));
    err!(reg.create_rule(&rule_record("r", "t", false, 1)));
    ok!(reg.get_rule("r"));
    ok!(reg.delete_rule("r"));

    let ca_changed = RegistryChange::CaChanged {
        ca_id: ca.id.clone(),
    };
    let cert_changed = |status| RegistryChange::CertificateChanged {
        certificate_id: cert.id.clone(),
        status,
        ca_id: cert.ca_id.clone(),
    };
    let policy_changed = RegistryChange::PolicyChanged {
        policy_name: "p".to_owned(),
    };
    let attachment = RegistryChange::PolicyAttachmentChanged {
        policy_name: "p".to_owned(),
        target: arn.clone(),
    };
    let thing_changed = RegistryChange::ThingChanged {
        thing_name: "t".to_owned(),
    };
    let principal = RegistryChange::ThingPrincipalChanged {
        thing_name: "t".to_owned(),
        principal: arn.clone(),
    };
    let expected = vec![
        ca_changed.clone(),
        ca_changed.clone(),
        cert_changed(CertificateStatus::PendingActivation),
        cert_changed(CertificateStatus::Active),
        policy_changed.clone(),
        policy_changed.clone(),
        policy_changed.clone(),
        attachment.clone(),
        thing_changed.clone(),
        thing_changed.clone(),
        principal.clone(),
        principal,
        thing_changed,
        cert_changed(CertificateStatus::Inactive),
        attachment,
        RegistryChange::CertificateDeleted {
            certificate_id: cert.id.clone(),
        },
        policy_changed,
        ca_changed.clone(),
        ca_changed,
    ];
    let rule_changed = RegistryChange::RuleChanged {
        rule_name: "r".to_owned(),
    };
    let expected: Vec<RegistryChange> = expected
        .into_iter()
        .chain(std::iter::repeat_n(rule_changed, 5))
        .collect();
    assert_eq!(drain(&mut feed), expected);
    assert_eq!(
        drain(&mut second),
        expected,
        "every subscriber gets every change"
    );
}

pub(crate) async fn errors_read_like_aws(reg: Registry) {
    let e = err!(reg.delete_policy("missing-policy"));
    assert_eq!(e.to_string(), "Policy 'missing-policy' does not exist");
    ok!(reg.create_policy("p", "{}", 1));
    let e = err!(reg.create_policy("p", "{}", 1));
    assert_eq!(e.to_string(), "Policy 'p' already exists");
    ok!(reg.attach_policy("p", "target"));
    let e = err!(reg.delete_policy("p"));
    assert!(e.to_string().contains("attached"), "{e}");
    let e: RegistryError = "WRONG"
        .parse::<CertificateStatus>()
        .expect_err("parse")
        .into();
    assert_variant!(e, RegistryError::InvalidRequest(ref m) if m.contains("WRONG") && m.contains("PENDING_ACTIVATION"));
}

/// Every enum round-trips through its AWS spelling, which is what the database stores.
pub(crate) async fn enums_round_trip(_reg: Registry) {
    for s in CertificateStatus::ALL {
        assert_eq!(s.as_str().parse::<CertificateStatus>().ok(), Some(*s));
        assert_eq!(s.to_string(), s.as_str());
    }
    for s in CaStatus::ALL {
        assert_eq!(s.as_str().parse::<CaStatus>().ok(), Some(*s));
    }
    for s in AutoRegistrationStatus::ALL {
        assert_eq!(s.as_str().parse::<AutoRegistrationStatus>().ok(), Some(*s));
    }
    for s in CertificateMode::ALL {
        assert_eq!(s.as_str().parse::<CertificateMode>().ok(), Some(*s));
    }
    assert_eq!(
        CertificateStatus::PendingActivation.as_str(),
        "PENDING_ACTIVATION"
    );
    assert_eq!(CertificateMode::SniOnly.as_str(), "SNI_ONLY");
    assert!(
        "active".parse::<CaStatus>().is_err(),
        "AWS spellings are case-sensitive"
    );
}

/// Every certificate status and mode survives the database.
pub(crate) async fn every_stored_enum_survives(reg: Registry) {
    for (n, status) in CertificateStatus::ALL.iter().enumerate() {
        let mut cert = cert_record(n as u64, None, 1, *status);
        cert.mode = CertificateMode::ALL[n % 2];
        ok!(reg.insert_certificate(&cert));
        assert_eq!(ok!(reg.get_certificate(&cert.id)), Some(cert));
    }
}
