//! Every policy variable AWS IoT documents, substituted in `Resource` and in `Condition`; what
//! happens when a variable has no value or a value AWS refuses to substitute; the `${*}`
//! escapes; the 2008-10-17 version; and the wildcard rules of resources.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ARN, allow, allow_if, allows, check, policy};
use ferrule_policy::{Context, Decision, Policy};

/// The 13 distinguished-name attributes AWS exposes for the subject and the issuer.
const DN_ATTRIBUTES: [&str; 13] = [
    "CommonName",
    "Country",
    "Organization",
    "OrganizationalUnit",
    "State",
    "SerialNumber",
    "DistinguishedNameQualifier",
    "Title",
    "Surname",
    "GivenName",
    "Initials",
    "Pseudonym",
    "GenerationQualifier",
];

/// The five alternative-name kinds AWS exposes for the subject and the issuer.
const ALT_NAMES: [&str; 5] = [
    "RFC822Name",
    "DNSName",
    "DirectoryName",
    "UniformResourceIdentifier",
    "IPAddress",
];

/// Every single-valued variable name a policy can hold, each with a distinct value that is
/// safe to substitute.
fn every_variable() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("iot:ClientId", "sensor-1"),
        ("iot:DomainName", "iot.example.com"),
        ("iot:Connection.Thing.ThingName", "thing-1"),
        ("iot:Connection.Thing.ThingTypeName", "thermometer"),
        ("iot:Connection.Thing.Attributes[room]", "kitchen"),
        ("iot:Certificate.SerialNumber", "10525622389124227206"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    for side in ["Subject", "Issuer"] {
        for attr in DN_ATTRIBUTES {
            vars.push((
                format!("iot:Certificate.{side}.{attr}"),
                format!("{side}-{attr}-value"),
            ));
        }
        for alt in ALT_NAMES {
            vars.push((
                format!("iot:Certificate.{side}.AlternativeName.{alt}"),
                format!("{side}-{alt}-value"),
            ));
        }
    }
    vars
}

/// A context in which every variable of [`every_variable`] has its value; certificate
/// variables are set as the broker sets them.
fn full_context() -> Context {
    let mut ctx = Context::default();
    for (name, value) in every_variable() {
        if name.starts_with("iot:Certificate.") {
            ctx.set_certificate_attribute(&name, &[value]);
        } else {
            ctx.set(name, value);
        }
    }
    ctx
}

#[test]
fn every_variable_substitutes_in_a_resource() {
    let ctx = full_context();
    for (name, value) in every_variable() {
        let p = allow("iot:Publish", &format!("topic/a/${{{name}}}/b"));
        assert!(
            allows(&p, "iot:Publish", &format!("topic/a/{value}/b"), &ctx),
            "{name}"
        );
        assert!(
            !allows(&p, "iot:Publish", &format!("topic/a/{value}x/b"), &ctx),
            "{name}"
        );
        assert!(
            !allows(&p, "iot:Publish", &format!("topic/a/${{{name}}}/b"), &ctx),
            "{name}: the variable's own text must not match once it has a value"
        );
    }
}

#[test]
fn every_variable_is_a_condition_key_and_substitutes_in_condition_values() {
    let ctx = full_context();
    for (name, value) in every_variable() {
        // As a condition key.
        let keyed = allow_if(
            "iot:Connect",
            &format!(r#"{{"StringEquals":{{"{name}":"{value}"}}}}"#),
        );
        assert!(allows(&keyed, "iot:Connect", "client/x", &ctx), "{name}");
        let other = allow_if(
            "iot:Connect",
            &format!(r#"{{"StringEquals":{{"{name}":"{value}-not"}}}}"#),
        );
        assert!(!allows(&other, "iot:Connect", "client/x", &ctx), "{name}");
        // As a variable inside a condition value, compared with another key.
        let mut with_probe = ctx.clone();
        with_probe.set("test:Probe", value.clone());
        let substituted = allow_if(
            "iot:Connect",
            &format!(r#"{{"StringEquals":{{"test:Probe":"${{{name}}}"}}}}"#),
        );
        assert!(
            allows(&substituted, "iot:Connect", "client/x", &with_probe),
            "{name}"
        );
        let liked = allow_if(
            "iot:Connect",
            &format!(r#"{{"StringLike":{{"test:Probe":"${{{name}}}*"}}}}"#),
        );
        assert!(
            allows(&liked, "iot:Connect", "client/x", &with_probe),
            "{name}"
        );
        with_probe.set("test:Probe", format!("x{value}"));
        assert!(
            !allows(&substituted, "iot:Connect", "client/x", &with_probe),
            "{name}"
        );
    }
}

#[test]
fn client_id_and_thing_name_in_the_documented_connect_policy() {
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Connection.Thing.ThingName}}"}},
           {{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"{ARN}:topic/things/${{iot:ClientId}}/*"}},
           {{"Effect":"Allow","Action":"iot:Subscribe","Resource":"{ARN}:topicfilter/things/${{iot:Connection.Thing.ThingTypeName}}/${{iot:Connection.Thing.Attributes[room]}}/*"}}"#
    ));
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "thing-1");
    ctx.set("iot:Connection.Thing.ThingName", "thing-1");
    ctx.set("iot:Connection.Thing.ThingTypeName", "lamp");
    ctx.set("iot:Connection.Thing.Attributes[room]", "hall");
    assert!(allows(&p, "iot:Connect", "client/thing-1", &ctx));
    assert!(!allows(&p, "iot:Connect", "client/thing-2", &ctx));
    assert!(allows(
        &p,
        "iot:Publish",
        "topic/things/thing-1/state",
        &ctx
    ));
    assert!(!allows(
        &p,
        "iot:Publish",
        "topic/things/thing-2/state",
        &ctx
    ));
    assert!(allows(
        &p,
        "iot:Subscribe",
        "topicfilter/things/lamp/hall/#",
        &ctx
    ));
    assert!(!allows(
        &p,
        "iot:Subscribe",
        "topicfilter/things/lamp/attic/#",
        &ctx
    ));
    // Another attribute name is another variable, unset here.
    let floor = allow(
        "iot:Publish",
        "topic/${iot:Connection.Thing.Attributes[floor]}",
    );
    assert!(!allows(&floor, "iot:Publish", "topic/hall", &ctx));
    assert!(!allows(&floor, "iot:Publish", "topic/", &ctx));
}

#[test]
fn is_attached_in_bool_and_for_any_value_bool_conditions() {
    let conditions = [
        r#"{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}"#,
        r#"{"Bool":{"iot:Connection.Thing.IsAttached":["true"]}}"#,
        r#"{"Bool":{"iot:Connection.Thing.IsAttached":true}}"#,
        r#"{"ForAnyValue:Bool":{"iot:Connection.Thing.IsAttached":["true"]}}"#,
    ];
    for condition in conditions {
        let p = policy(&format!(
            r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Connection.Thing.ThingName}}","Condition":{condition}}}"#
        ));
        let mut ctx = Context::default();
        ctx.set("iot:Connection.Thing.ThingName", "thing-1");
        ctx.set("iot:Connection.Thing.IsAttached", "true");
        assert!(
            allows(&p, "iot:Connect", "client/thing-1", &ctx),
            "{condition}"
        );
        ctx.set("iot:Connection.Thing.IsAttached", "false");
        assert!(
            !allows(&p, "iot:Connect", "client/thing-1", &ctx),
            "{condition}"
        );
        ctx.remove("iot:Connection.Thing.IsAttached");
        assert!(
            !allows(&p, "iot:Connect", "client/thing-1", &ctx),
            "{condition}"
        );
    }
    // "false" asks for a certificate that is not attached to the thing.
    let p = allow_if(
        "iot:Connect",
        r#"{"Bool":{"iot:Connection.Thing.IsAttached":"false"}}"#,
    );
    let mut ctx = Context::default();
    ctx.set("iot:Connection.Thing.IsAttached", "false");
    assert!(allows(&p, "iot:Connect", "client/x", &ctx));
    ctx.set("iot:Connection.Thing.IsAttached", "true");
    assert!(!allows(&p, "iot:Connect", "client/x", &ctx));
}

#[test]
fn multi_valued_certificate_attributes_by_index_and_list() {
    let mut ctx = Context::default();
    let ous: Vec<String> = ["eng", "ops", "qa", "hr", "it", "sixth"]
        .map(String::from)
        .to_vec();
    ctx.set_certificate_attribute("iot:Certificate.Subject.OrganizationalUnit", &ous);
    let ou = "iot:Certificate.Subject.OrganizationalUnit";
    // The plain name is the first value, `.N` the (N+1)th.
    for (pattern, value) in [
        (format!("${{{ou}}}"), "eng"),
        (format!("${{{ou}.1}}"), "ops"),
        (format!("${{{ou}.2}}"), "qa"),
        (format!("${{{ou}.4}}"), "it"),
    ] {
        let p = allow("iot:Publish", &format!("topic/{pattern}"));
        assert!(
            allows(&p, "iot:Publish", &format!("topic/{value}"), &ctx),
            "{pattern}"
        );
        assert!(!allows(&p, "iot:Publish", "topic/sixth", &ctx), "{pattern}");
    }
    // Only five values count: there is no sixth, and an index past the end is unset.
    for missing in [format!("${{{ou}.5}}"), format!("${{{ou}.9}}")] {
        let p = allow("iot:Publish", &format!("topic/{missing}"));
        assert!(!allows(&p, "iot:Publish", "topic/sixth", &ctx), "{missing}");
        assert!(!allows(&p, "iot:Publish", "topic/", &ctx), "{missing}");
    }
    // `.List` holds the five, for the set operators.
    let any = allow_if(
        "iot:Publish",
        &format!(r#"{{"ForAnyValue:StringEquals":{{"{ou}.List":["qa","finance"]}}}}"#),
    );
    assert!(allows(&any, "iot:Publish", "topic/x", &ctx));
    let any_missing = allow_if(
        "iot:Publish",
        &format!(r#"{{"ForAnyValue:StringEquals":{{"{ou}.List":["sixth","finance"]}}}}"#),
    );
    assert!(!allows(&any_missing, "iot:Publish", "topic/x", &ctx));
    let all = allow_if(
        "iot:Publish",
        &format!(r#"{{"ForAllValues:StringEquals":{{"{ou}.List":["eng","ops","qa","hr","it"]}}}}"#),
    );
    assert!(allows(&all, "iot:Publish", "topic/x", &ctx));
    let all_but_one = allow_if(
        "iot:Publish",
        &format!(r#"{{"ForAllValues:StringEquals":{{"{ou}.List":["eng","ops","qa","hr"]}}}}"#),
    );
    assert!(!allows(&all_but_one, "iot:Publish", "topic/x", &ctx));
    let like = allow_if(
        "iot:Publish",
        &format!(r#"{{"ForAllValues:StringLike":{{"{ou}.List":["?????","e*","o*","??"]}}}}"#),
    );
    assert!(allows(&like, "iot:Publish", "topic/x", &ctx));

    // The documented example: publishing needs every Organization to be one of two.
    let documented = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/my/topic/${{iot:ClientId}}",
            "Condition":{{"ForAllValues:StringEquals":{{"iot:Certificate.Subject.Organization.List":["Example Corp","AnyCompany"]}}}}}}"#
    ));
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "c1");
    ctx.set_certificate_attribute(
        "iot:Certificate.Subject.Organization",
        &["AnyCompany".into(), "Example Corp".into()],
    );
    assert!(allows(
        &documented,
        "iot:Publish",
        "topic/my/topic/c1",
        &ctx
    ));
    ctx.set_certificate_attribute(
        "iot:Certificate.Subject.Organization",
        &["AnyCompany".into(), "Other".into()],
    );
    assert!(!allows(
        &documented,
        "iot:Publish",
        "topic/my/topic/c1",
        &ctx
    ));
}

#[test]
fn available_keys_keeps_every_name() {
    let names: Vec<String> = every_variable()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("iot:Certificate."))
        .collect();
    assert!(names.len() > 5);
    let mut ctx = Context::default();
    ctx.set_certificate_attribute("iot:Certificate.AvailableKeys", &names);
    let last = names.last().expect("names");
    let p = allow_if(
        "iot:Connect",
        &format!(
            r#"{{"ForAnyValue:StringEquals":{{"iot:Certificate.AvailableKeys.List":"{last}"}}}}"#
        ),
    );
    assert!(allows(&p, "iot:Connect", "client/x", &ctx));
    let plain = allow_if(
        "iot:Connect",
        &format!(r#"{{"ForAnyValue:StringEquals":{{"iot:Certificate.AvailableKeys":"{last}"}}}}"#),
    );
    assert!(
        !allows(&plain, "iot:Connect", "client/x", &ctx),
        "the plain name is the first"
    );
    // Other attributes still stop at five.
    ctx.set_certificate_attribute("iot:Certificate.Subject.Organization", &names);
    assert_eq!(
        ctx.values("iot:Certificate.Subject.Organization.List")
            .len(),
        5
    );
    assert_eq!(
        ctx.values("iot:Certificate.AvailableKeys.List").len(),
        names.len()
    );
}

#[test]
fn source_ip_in_ip_address_conditions() {
    let v4 = allow_if(
        "iot:Connect",
        r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","198.51.100.7"]}}"#,
    );
    let v6 = allow_if(
        "iot:Connect",
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
    );
    let not_v4 = allow_if(
        "iot:Connect",
        r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
    );
    let cases = [
        ("203.0.113.9", true, false, false),
        ("198.51.100.7", true, false, true),
        ("198.51.100.8", false, false, true),
        ("::ffff:203.0.113.9", true, false, false),
        ("2001:db8::1", false, true, true),
        ("2001:db9::1", false, false, true),
    ];
    for (ip, in_v4, in_v6, outside_v4) in cases {
        let mut ctx = Context::default();
        ctx.set("aws:SourceIp", ip);
        assert_eq!(allows(&v4, "iot:Connect", "client/x", &ctx), in_v4, "{ip}");
        assert_eq!(allows(&v6, "iot:Connect", "client/x", &ctx), in_v6, "{ip}");
        assert_eq!(
            allows(&not_v4, "iot:Connect", "client/x", &ctx),
            outside_v4,
            "{ip}"
        );
    }
    // Without a source address, IpAddress fails; the basic-variables example denies.
    let ctx = Context::default();
    assert!(!allows(&v4, "iot:Connect", "client/x", &ctx));
    let documented = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/my/topic/${{iot:ClientId}}",
            "Condition":{{"IpAddress":{{"aws:SourceIp":"123.45.167.89"}}}}}}"#
    ));
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "c1");
    ctx.set("aws:SourceIp", "123.45.167.89");
    assert!(allows(
        &documented,
        "iot:Publish",
        "topic/my/topic/c1",
        &ctx
    ));
    ctx.set("aws:SourceIp", "123.45.167.90");
    assert!(!allows(
        &documented,
        "iot:Publish",
        "topic/my/topic/c1",
        &ctx
    ));
}

#[test]
fn connect_attributes_with_for_all_values_and_for_any_value() {
    let only_persistent = allow_if(
        "iot:Connect",
        r#"{"ForAllValues:StringEquals":{"iot:ConnectAttributes":["PersistentConnect"]}}"#,
    );
    let needs_last_will = allow_if(
        "iot:Connect",
        r#"{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":["LastWill"]}}"#,
    );
    let no_last_will = policy(
        r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
           {"Effect":"Deny","Action":"iot:Connect","Resource":"*",
            "Condition":{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":"LastWill"}}}"#,
    );
    let cases: [(&[&str], bool, bool, bool); 4] = [
        (&[], true, false, true),
        (&["PersistentConnect"], true, false, true),
        (&["LastWill"], false, true, false),
        (&["PersistentConnect", "LastWill"], false, true, false),
    ];
    for (attributes, persistent_only, with_will, will_denied_otherwise) in cases {
        let mut ctx = Context::default();
        ctx.set_multi("iot:ConnectAttributes", attributes.iter().copied());
        assert_eq!(
            allows(&only_persistent, "iot:Connect", "client/c", &ctx),
            persistent_only,
            "{attributes:?}"
        );
        assert_eq!(
            allows(&needs_last_will, "iot:Connect", "client/c", &ctx),
            with_will,
            "{attributes:?}"
        );
        assert_eq!(
            allows(&no_last_will, "iot:Connect", "client/c", &ctx),
            will_denied_otherwise,
            "{attributes:?}"
        );
    }
}

#[test]
fn an_unset_variable_leaves_the_resource_unmatched() {
    let ctx = Context::default();
    for (name, _) in every_variable() {
        let p = allow("iot:Publish", &format!("topic/${{{name}}}"));
        assert_eq!(
            check(&[("p", &p)], "iot:Publish", "topic/", &ctx),
            Decision::ImplicitDeny,
            "{name}"
        );
        assert!(
            !allows(&p, "iot:Publish", &format!("topic/${{{name}}}"), &ctx),
            "{name}"
        );
        let star = allow("iot:Publish", &format!("topic/${{{name}}}*"));
        assert!(
            !allows(&star, "iot:Publish", "topic/anything", &ctx),
            "{name}"
        );
        // In a condition value too.
        let mut probe = Context::default();
        probe.set("test:Probe", "");
        let cond = allow_if(
            "iot:Publish",
            &format!(r#"{{"StringLike":{{"test:Probe":"${{{name}}}*"}}}}"#),
        );
        assert!(!allows(&cond, "iot:Publish", "topic/x", &probe), "{name}");
    }
    // A Deny whose variable is unset does not apply; it cannot deny what it cannot name.
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "c1");
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/*"}},
           {{"Effect":"Deny","Action":"iot:Publish","Resource":"{ARN}:topic/${{iot:Connection.Thing.ThingName}}/*"}}"#
    ));
    assert!(allows(&p, "iot:Publish", "topic/c1/x", &ctx));
}

#[test]
fn values_with_wildcard_characters_are_left_unsubstituted() {
    for wildcard in ['*', '$', '+', '?', '#'] {
        let value = format!("a{wildcard}b");
        for name in [
            "iot:ClientId",
            "iot:Certificate.Subject.CommonName",
            "iot:Connection.Thing.Attributes[room]",
        ] {
            let mut ctx = Context::default();
            ctx.set_certificate_attribute(name, std::slice::from_ref(&value));
            let p = allow("iot:Publish", &format!("topic/${{{name}}}/x"));
            for resource in [
                format!("topic/{value}/x"),
                "topic/aXb/x".to_owned(),
                "topic/a/b/x".to_owned(),
                "topic/ab/x".to_owned(),
            ] {
                assert!(
                    !allows(&p, "iot:Publish", &resource, &ctx),
                    "{name}={value:?} must not allow {resource}"
                );
            }
            // The variable's text stays, as AWS documents.
            assert!(
                allows(&p, "iot:Publish", &format!("topic/${{{name}}}/x"), &ctx),
                "{name}={value:?}"
            );
            // In a condition value the same holds.
            let mut probe = ctx.clone();
            probe.set("test:Probe", value.clone());
            let cond = allow_if(
                "iot:Publish",
                &format!(r#"{{"StringEquals":{{"test:Probe":"${{{name}}}"}}}}"#),
            );
            assert!(
                !allows(&cond, "iot:Publish", "topic/x", &probe),
                "{name}={value:?}"
            );
        }
    }
}

#[test]
fn values_longer_than_1024_characters_are_left_unsubstituted() {
    let p = allow("iot:Publish", "topic/${iot:Certificate.Subject.CommonName}");
    let mut ctx = Context::default();
    let longest = "c".repeat(1024);
    ctx.set_certificate_attribute(
        "iot:Certificate.Subject.CommonName",
        std::slice::from_ref(&longest),
    );
    assert!(allows(&p, "iot:Publish", &format!("topic/{longest}"), &ctx));
    let too_long = "c".repeat(1025);
    ctx.set_certificate_attribute(
        "iot:Certificate.Subject.CommonName",
        std::slice::from_ref(&too_long),
    );
    assert!(!allows(
        &p,
        "iot:Publish",
        &format!("topic/{too_long}"),
        &ctx
    ));
    assert!(allows(
        &p,
        "iot:Publish",
        "topic/${iot:Certificate.Subject.CommonName}",
        &ctx
    ));
}

#[test]
fn escapes_stand_for_the_literal_characters() {
    let ctx = Context::default();
    let p = allow("iot:Publish", "topic/${*}/${?}/${$}");
    assert!(allows(&p, "iot:Publish", "topic/*/?/$", &ctx));
    assert!(!allows(&p, "iot:Publish", "topic/a/b/$", &ctx));
    assert!(!allows(&p, "iot:Publish", "topic/*/?/${$}", &ctx));
    // Next to real wildcards.
    let mixed = allow("iot:Publish", "topic/${*}*");
    assert!(allows(&mixed, "iot:Publish", "topic/*abc", &ctx));
    assert!(!allows(&mixed, "iot:Publish", "topic/abc", &ctx));
    // In condition values: StringLike treats them as literals, StringEquals sees the character.
    let mut probe = Context::default();
    probe.set("test:Probe", "a*b");
    let like = allow_if("iot:Publish", r#"{"StringLike":{"test:Probe":"a${*}b"}}"#);
    assert!(allows(&like, "iot:Publish", "topic/x", &probe));
    probe.set("test:Probe", "axb");
    assert!(!allows(&like, "iot:Publish", "topic/x", &probe));
    let equals = allow_if(
        "iot:Publish",
        r#"{"StringEquals":{"test:Probe":"${$}{x}"}}"#,
    );
    probe.set("test:Probe", "${x}");
    assert!(allows(&equals, "iot:Publish", "topic/x", &probe));
}

#[test]
fn the_2008_version_treats_variables_as_literal_text() {
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "c1");
    ctx.set("test:Probe", "c1");
    for version in [r#""Version":"2008-10-17","#, ""] {
        let p = Policy::parse(&format!(
            r#"{{{version}"Statement":[
                {{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/${{iot:ClientId}}/${{*}}"}},
                {{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{{"StringEquals":{{"test:Probe":"${{iot:ClientId}}"}}}}}}]}}"#
        ))
        .expect("parses");
        let ps = [("p", &p)];
        assert!(!check(&ps, "iot:Publish", "topic/c1/*", &ctx).is_allowed());
        // `${` is text; the `*` inside `${*}` is still a wildcard.
        assert!(
            check(
                &ps,
                "iot:Publish",
                "topic/${iot:ClientId}/${anything}",
                &ctx
            )
            .is_allowed()
        );
        assert!(!check(&ps, "iot:Connect", "client/c1", &ctx).is_allowed());
        let mut literal = ctx.clone();
        literal.set("test:Probe", "${iot:ClientId}");
        assert!(check(&ps, "iot:Connect", "client/c1", &literal).is_allowed());
    }
}

#[test]
fn star_matches_any_run_of_characters_across_slashes() {
    let ctx = Context::default();
    let p = allow("iot:Publish", "topic/a/*");
    for ok in [
        "topic/a/",
        "topic/a/b",
        "topic/a/b/c/d",
        "topic/a//",
        "topic/a/+/#",
    ] {
        assert!(allows(&p, "iot:Publish", ok, &ctx), "{ok}");
    }
    for no in ["topic/a", "topic/b/a/x", "topic/ab"] {
        assert!(!allows(&p, "iot:Publish", no, &ctx), "{no}");
    }
    let middle = allow("iot:Publish", "topic/*/end");
    assert!(allows(&middle, "iot:Publish", "topic/x/y/z/end", &ctx));
    assert!(allows(&middle, "iot:Publish", "topic//end", &ctx));
    assert!(!allows(&middle, "iot:Publish", "topic/end", &ctx));
    // A resource of "*" is every resource, ARN and all.
    let all = policy(r#"{"Effect":"Allow","Action":"iot:Publish","Resource":"*"}"#);
    assert!(allows(&all, "iot:Publish", "topic/anything/at/all", &ctx));
}

#[test]
fn question_mark_matches_exactly_one_character() {
    let ctx = Context::default();
    let p = allow("iot:Publish", "topic/a?c");
    for ok in [
        "topic/abc",
        "topic/a/c",
        "topic/a?c",
        "topic/a+c",
        "topic/aéc",
    ] {
        assert!(allows(&p, "iot:Publish", ok, &ctx), "{ok}");
    }
    for no in ["topic/ac", "topic/abbc", "topic/abcd"] {
        assert!(!allows(&p, "iot:Publish", no, &ctx), "{no}");
    }
    let two = allow("iot:Publish", "topic/??");
    assert!(allows(&two, "iot:Publish", "topic/ab", &ctx));
    assert!(!allows(&two, "iot:Publish", "topic/a", &ctx));
    assert!(!allows(&two, "iot:Publish", "topic/abc", &ctx));
}

#[test]
fn plus_and_hash_are_literal_in_topicfilter_resources() {
    let ctx = Context::default();
    let plus = allow("iot:Subscribe", "topicfilter/a/+/b");
    assert!(allows(&plus, "iot:Subscribe", "topicfilter/a/+/b", &ctx));
    for no in ["topicfilter/a/x/b", "topicfilter/a//b", "topicfilter/a/#"] {
        assert!(!allows(&plus, "iot:Subscribe", no, &ctx), "{no}");
    }
    let hash = allow("iot:Subscribe", "topicfilter/a/#");
    assert!(allows(&hash, "iot:Subscribe", "topicfilter/a/#", &ctx));
    for no in ["topicfilter/a/b", "topicfilter/a/b/c", "topicfilter/a/+"] {
        assert!(!allows(&hash, "iot:Subscribe", no, &ctx), "{no}");
    }
    // `*` is the policy's wildcard and covers filters with MQTT wildcards too.
    let star = allow("iot:Subscribe", "topicfilter/a/*");
    for ok in ["topicfilter/a/#", "topicfilter/a/+/b", "topicfilter/a/b"] {
        assert!(allows(&star, "iot:Subscribe", ok, &ctx), "{ok}");
    }
    // A Deny on `topicfilter/a/restricted/*` does not stop `a/#` (AWS's documented pitfall).
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Subscribe","Resource":"{ARN}:topicfilter/a/*"}},
           {{"Effect":"Deny","Action":"iot:Subscribe","Resource":"{ARN}:topicfilter/a/restricted/*"}}"#
    ));
    assert!(allows(&p, "iot:Subscribe", "topicfilter/a/#", &ctx));
    assert!(!allows(
        &p,
        "iot:Subscribe",
        "topicfilter/a/restricted/#",
        &ctx
    ));
}

/// A context over a shared base reads the base's keys, its own keys over them, and a removed
/// key as unset, without changing the base.
#[test]
fn a_context_over_a_base_shares_and_shadows_it() {
    let mut base = Context::default();
    base.set("iot:ClientId", "dev-1");
    base.set("aws:SourceIp", "127.0.0.1");
    base.set_multi("iot:ConnectAttributes", ["PersistentConnect", "LastWill"]);
    let base = std::sync::Arc::new(base);
    let mut ctx = Context::over(base.clone());
    ctx.set("iot:Connection.Thing.ThingName", "dev-1");
    ctx.set("aws:SourceIp", "10.0.0.1");
    ctx.remove("iot:ConnectAttributes");
    assert_eq!(ctx.first("iot:ClientId"), Some("dev-1"));
    assert_eq!(ctx.first("iot:Connection.Thing.ThingName"), Some("dev-1"));
    assert_eq!(ctx.first("aws:SourceIp"), Some("10.0.0.1"));
    assert!(ctx.values("iot:ConnectAttributes").is_empty());
    assert_eq!(base.first("aws:SourceIp"), Some("127.0.0.1"));
    assert_eq!(base.values("iot:ConnectAttributes").len(), 2);
    assert_eq!(base.first("iot:Connection.Thing.ThingName"), None);
    // Policies read through the layers: the thing name comes from the top, the client id
    // from the base.
    let p = policy(
        r#"{"Effect":"Allow","Action":"iot:Connect",
        "Resource":"arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}",
        "Condition":{"StringEquals":{"iot:ClientId":"dev-1"}}}"#,
    );
    assert!(allows(&p, "iot:Connect", "client/dev-1", &ctx));
    assert!(!allows(&p, "iot:Connect", "client/dev-1", &base));
}
