//! The real `aws iot` CLI against the control plane: every step an operator takes, errors
//! included, with certificates made by `openssl` and rule payloads read from files.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, Backend, Pki, Server};
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn assert_epoch_seconds(v: &Value) {
    let secs = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!(secs > 1.5e9 && secs < 4.0e9, "not epoch seconds: {v}");
}

/// The whole CA-registration flow of the AWS documentation, each refusal included, then
/// device certificates under the CA, then tearing it all down.
fn ca_registration_flow(server: &Server) {
    let pki = Pki::new(server.dir.path());

    // Registration code: 64 hex digits, stable until deleted.
    let code = s(&server.ok(&["get-registration-code"])["registrationCode"]).to_owned();
    assert_eq!(code.len(), 64);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        s(&server.ok(&["get-registration-code"])["registrationCode"]),
        code
    );

    // The canonical recipe: a root CA, and a verification certificate with CN = the code.
    pki.root_ca("rootCA");
    pki.signed_cert("verification", &code, "rootCA", None);
    let ca = pki.file_arg("rootCA.pem");
    let verification = pki.file_arg("verification.pem");

    // Refusals, each with AWS's code.
    server.fails(
        "CertificateValidationException",
        &[
            "register-ca-certificate",
            "--ca-certificate",
            "not a certificate",
            "--verification-certificate",
            &verification,
        ],
    );
    pki.signed_cert("wrongcn", "not-the-registration-code", "rootCA", None);
    let msg = server.fails(
        "RegistrationCodeValidationException",
        &[
            "register-ca-certificate",
            "--ca-certificate",
            &ca,
            "--verification-certificate",
            &pki.file_arg("wrongcn.pem"),
        ],
    );
    assert!(msg.contains("registration code"), "{msg}");
    pki.root_ca("otherCA");
    // Right CN, but signed by another CA's key: no proof of possession of rootCA's key.
    pki.signed_cert("forged", &code, "otherCA", None);
    server.fails(
        "CertificateValidationException",
        &[
            "register-ca-certificate",
            "--ca-certificate",
            &ca,
            "--verification-certificate",
            &pki.file_arg("forged.pem"),
        ],
    );
    // A v1 leaf certificate is not a CA.
    let msg = server.fails(
        "CertificateValidationException",
        &[
            "register-ca-certificate",
            "--ca-certificate",
            &pki.file_arg("wrongcn.pem"),
            "--verification-certificate",
            &verification,
        ],
    );
    assert!(msg.contains("basicConstraints"), "{msg}");
    server.fails(
        "InvalidRequestException",
        &["register-ca-certificate", "--ca-certificate", &ca],
    );

    // Registered INACTIVE with auto-registration disabled, unless asked.
    let registered = server.ok(&[
        "register-ca-certificate",
        "--ca-certificate",
        &ca,
        "--verification-certificate",
        &verification,
    ]);
    let ca_id = pki.certificate_id("rootCA");
    assert_eq!(s(&registered["certificateId"]), ca_id);
    assert_eq!(
        s(&registered["certificateArn"]),
        format!("arn:aws:iot:us-east-1:{ACCOUNT}:cacert/{ca_id}")
    );
    let err = server
        .aws(&[
            "register-ca-certificate",
            "--ca-certificate",
            &ca,
            "--verification-certificate",
            &verification,
        ])
        .unwrap_err();
    assert_eq!(err.code, "ResourceAlreadyExistsException");

    let d = server.ok(&["describe-ca-certificate", "--certificate-id", &ca_id]);
    let desc = &d["certificateDescription"];
    assert_eq!(s(&desc["status"]), "INACTIVE");
    assert_eq!(s(&desc["autoRegistrationStatus"]), "DISABLE");
    assert_eq!(s(&desc["certificateMode"]), "DEFAULT");
    assert_eq!(s(&desc["ownedBy"]), ACCOUNT);
    assert_eq!(desc["customerVersion"], 1);
    assert_eq!(
        s(&desc["certificatePem"]).trim(),
        pki.read("rootCA.pem").trim()
    );
    assert_epoch_seconds(&desc["creationDate"]);
    assert_epoch_seconds(&desc["validity"]["notAfter"]);

    // Activation and auto-registration, then a JITP template and its removal.
    server.ok(&[
        "update-ca-certificate",
        "--certificate-id",
        &ca_id,
        "--new-status",
        "ACTIVE",
        "--new-auto-registration-status",
        "ENABLE",
    ]);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/JITPRole");
    let config = format!(r#"{{"templateBody":"{{}}","roleArn":"{role}"}}"#);
    server.ok(&[
        "update-ca-certificate",
        "--certificate-id",
        &ca_id,
        "--registration-config",
        &config,
    ]);
    let d = server.ok(&["describe-ca-certificate", "--certificate-id", &ca_id]);
    assert_eq!(s(&d["certificateDescription"]["status"]), "ACTIVE");
    assert_eq!(
        s(&d["certificateDescription"]["autoRegistrationStatus"]),
        "ENABLE"
    );
    assert_eq!(d["certificateDescription"]["customerVersion"], 3);
    assert_eq!(s(&d["registrationConfig"]["roleArn"]), role);
    server.ok(&[
        "update-ca-certificate",
        "--certificate-id",
        &ca_id,
        "--remove-auto-registration",
    ]);
    let d = server.ok(&["describe-ca-certificate", "--certificate-id", &ca_id]);
    assert!(d.get("registrationConfig").is_none(), "{d}");

    let listed = server.ok(&["list-ca-certificates"]);
    let cas = listed["certificates"].as_array().unwrap();
    assert_eq!(cas.len(), 1);
    assert_eq!(s(&cas[0]["certificateId"]), ca_id);
    assert_eq!(s(&cas[0]["status"]), "ACTIVE");

    // Device certificates under the CA: found by issuer, or named with --ca-certificate-pem.
    pki.signed_cert("device1", "device-1", "rootCA", None);
    pki.signed_cert("device2", "device-2", "rootCA", None);
    let dev1 = server.ok(&[
        "register-certificate",
        "--certificate-pem",
        &pki.file_arg("device1.pem"),
    ]);
    let dev1_id = s(&dev1["certificateId"]).to_owned();
    assert_eq!(dev1_id, pki.certificate_id("device1"));
    let dev2 = server.ok(&[
        "register-certificate",
        "--certificate-pem",
        &pki.file_arg("device2.pem"),
        "--ca-certificate-pem",
        &ca,
        "--status",
        "ACTIVE",
    ]);
    let dev2_id = s(&dev2["certificateId"]).to_owned();
    let msg = server.fails(
        "CertificateStateException",
        &[
            "register-certificate",
            "--certificate-pem",
            &pki.file_arg("device1.pem"),
            "--status",
            "PENDING_ACTIVATION",
        ],
    );
    assert_eq!(
        msg,
        "Not allowed to register certificate with PENDING_ACTIVATION status"
    );
    server.fails(
        "ResourceAlreadyExistsException",
        &[
            "register-certificate",
            "--certificate-pem",
            &pki.file_arg("device1.pem"),
        ],
    );

    let d1 = server.ok(&["describe-certificate", "--certificate-id", &dev1_id]);
    assert_eq!(s(&d1["certificateDescription"]["status"]), "INACTIVE");
    assert_eq!(s(&d1["certificateDescription"]["caCertificateId"]), ca_id);
    assert_eq!(
        s(&d1["certificateDescription"]["certificateMode"]),
        "DEFAULT"
    );
    let by_ca = server.ok(&["list-certificates-by-ca", "--ca-certificate-id", &ca_id]);
    let mut ids: Vec<&str> = by_ca["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["certificateId"]))
        .collect();
    ids.sort_unstable();
    let mut expected = vec![dev1_id.as_str(), dev2_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // Tearing down: an ACTIVE CA cannot be deleted, nor one with certificates under it.
    server.fails(
        "CertificateStateException",
        &["delete-ca-certificate", "--certificate-id", &ca_id],
    );
    server.ok(&[
        "update-ca-certificate",
        "--certificate-id",
        &ca_id,
        "--new-status",
        "INACTIVE",
    ]);
    server.fails(
        "CertificateStateException",
        &["delete-ca-certificate", "--certificate-id", &ca_id],
    );
    server.ok(&[
        "update-certificate",
        "--certificate-id",
        &dev2_id,
        "--new-status",
        "INACTIVE",
    ]);
    server.ok(&["delete-certificate", "--certificate-id", &dev2_id]);
    server.ok(&["delete-certificate", "--certificate-id", &dev1_id]);
    server.ok(&["delete-ca-certificate", "--certificate-id", &ca_id]);
    server.fails(
        "ResourceNotFoundException",
        &["describe-ca-certificate", "--certificate-id", &ca_id],
    );

    // A deleted registration code is replaced by a new one.
    server.ok(&["delete-registration-code"]);
    assert_ne!(
        s(&server.ok(&["get-registration-code"])["registrationCode"]),
        code
    );
}

#[test]
fn ca_registration_flow_on_sqlite() {
    ca_registration_flow(&Server::start(Backend::Sqlite));
}

#[test]
fn ca_registration_flow_on_postgres() {
    ca_registration_flow(&Server::start(Backend::Postgres));
}

/// Certificates, policies and things with the CLI, each command at least once and the
/// refusals an operator meets. (boto3 covers every branch on both backends: tests/boto3.rs.)
#[test]
fn certificate_policy_and_thing_commands() {
    let server = Server::start(Backend::Sqlite);
    let pki = Pki::new(server.dir.path());
    let doc = |action: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
        )
    };

    // Without a CA: SNI_ONLY, no caCertificateId, INACTIVE by default.
    pki.self_signed("solo", "solo-device");
    let solo = server.ok(&[
        "register-certificate-without-ca",
        "--certificate-pem",
        &pki.file_arg("solo.pem"),
    ]);
    let solo_id = s(&solo["certificateId"]).to_owned();
    assert_eq!(solo_id, pki.certificate_id("solo"));
    let solo_arn = s(&solo["certificateArn"]).to_owned();
    assert_eq!(
        solo_arn,
        format!("arn:aws:iot:us-east-1:{ACCOUNT}:cert/{solo_id}")
    );
    let d = server.ok(&["describe-certificate", "--certificate-id", &solo_id])["certificateDescription"].clone();
    assert_eq!(
        (s(&d["certificateMode"]), s(&d["status"])),
        ("SNI_ONLY", "INACTIVE")
    );
    assert!(d.get("caCertificateId").is_none(), "{d}");

    // Status changes: internal statuses refused; REVOKED is final.
    server.fails(
        "InvalidRequestException",
        &[
            "update-certificate",
            "--certificate-id",
            &solo_id,
            "--new-status",
            "PENDING_ACTIVATION",
        ],
    );
    server.ok(&[
        "update-certificate",
        "--certificate-id",
        &solo_id,
        "--new-status",
        "REVOKED",
    ]);
    server.fails(
        "CertificateStateException",
        &[
            "update-certificate",
            "--certificate-id",
            &solo_id,
            "--new-status",
            "ACTIVE",
        ],
    );

    // Keys and certificate from Ferrule's issuing CA; the private key is returned once.
    let made = server.ok(&["create-keys-and-certificate", "--set-as-active"]);
    let made_id = s(&made["certificateId"]).to_owned();
    assert!(
        s(&made["keyPair"]["PrivateKey"]).starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{made}"
    );
    assert!(
        s(&made["keyPair"]["PublicKey"]).starts_with("-----BEGIN PUBLIC KEY-----"),
        "{made}"
    );
    std::fs::write(pki.path("made.pem"), s(&made["certificatePem"])).unwrap();
    assert_eq!(made_id, pki.certificate_id("made"));
    let made_arn = s(&made["certificateArn"]).to_owned();

    // From a CSR (EC P-256): the subject is the CSR's.
    pki.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "csr.key",
        "-subj",
        "/CN=from-csr",
        "-out",
        "device.csr",
    ]);
    let from_csr = server.ok(&[
        "create-certificate-from-csr",
        "--certificate-signing-request",
        &pki.file_arg("device.csr"),
    ]);
    std::fs::write(pki.path("fromcsr.pem"), s(&from_csr["certificatePem"])).unwrap();
    assert!(
        pki.openssl(&["x509", "-in", "fromcsr.pem", "-noout", "-subject"])
            .contains("from-csr")
    );
    assert_eq!(s(&from_csr["certificateId"]), pki.certificate_id("fromcsr"));
    let csr_id = s(&from_csr["certificateId"]).to_owned();
    let csr_arn = s(&from_csr["certificateArn"]).to_owned();

    // Policies: versions, the default, both attach APIs, lists from both sides.
    std::fs::write(pki.path("policy.json"), doc("iot:*")).unwrap();
    let created = server.ok(&[
        "create-policy",
        "--policy-name",
        "fleet",
        "--policy-document",
        &pki.file_arg("policy.json"),
    ]);
    assert_eq!(s(&created["policyVersionId"]), "1");
    assert_eq!(
        s(&created["policyArn"]),
        format!("arn:aws:iot:us-east-1:{ACCOUNT}:policy/fleet")
    );
    let msg = server.fails(
        "MalformedPolicyException",
        &["create-policy", "--policy-name", "bad", "--policy-document", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Perhaps","Action":"iot:*","Resource":"*"}]}"#],
    );
    assert!(msg.contains("Effect"), "{msg}");
    let v2 = server.ok(&[
        "create-policy-version",
        "--policy-name",
        "fleet",
        "--policy-document",
        &doc("iot:Connect"),
        "--set-as-default",
    ]);
    assert_eq!(
        (s(&v2["policyVersionId"]), &v2["isDefaultVersion"]),
        ("2", &Value::Bool(true))
    );
    let got = server.ok(&["get-policy", "--policy-name", "fleet"]);
    assert_eq!(
        (s(&got["defaultVersionId"]), s(&got["policyDocument"])),
        ("2", doc("iot:Connect").as_str())
    );
    assert_epoch_seconds(&got["creationDate"]);
    server.ok(&[
        "set-default-policy-version",
        "--policy-name",
        "fleet",
        "--policy-version-id",
        "1",
    ]);
    server.fails(
        "InvalidRequestException",
        &[
            "delete-policy-version",
            "--policy-name",
            "fleet",
            "--policy-version-id",
            "1",
        ],
    );
    server.ok(&[
        "delete-policy-version",
        "--policy-name",
        "fleet",
        "--policy-version-id",
        "2",
    ]);
    server.ok(&[
        "create-policy",
        "--policy-name",
        "second",
        "--policy-document",
        &doc("iot:Publish"),
    ]);
    server.ok(&[
        "attach-policy",
        "--policy-name",
        "fleet",
        "--target",
        &csr_arn,
    ]);
    server.ok(&[
        "attach-principal-policy",
        "--policy-name",
        "second",
        "--principal",
        &csr_arn,
    ]);
    let attached = server.ok(&["list-attached-policies", "--target", &csr_arn]);
    let names: Vec<&str> = attached["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["policyName"]))
        .collect();
    assert_eq!(names, ["fleet", "second"]);
    assert_eq!(
        server.ok(&["list-principal-policies", "--principal", &csr_arn])["policies"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        server.ok(&["list-targets-for-policy", "--policy-name", "fleet"])["targets"],
        serde_json::json!([csr_arn])
    );
    assert_eq!(
        server.ok(&["list-policy-principals", "--policy-name", "second"])["principals"],
        serde_json::json!([csr_arn])
    );
    server.fails(
        "DeleteConflictException",
        &["delete-policy", "--policy-name", "fleet"],
    );
    server.ok(&[
        "detach-principal-policy",
        "--policy-name",
        "second",
        "--principal",
        &csr_arn,
    ]);
    server.ok(&["delete-policy", "--policy-name", "second"]);
    server.fails(
        "ResourceNotFoundException",
        &["get-policy", "--policy-name", "second"],
    );

    // Things and principals.
    let created = server.ok(&[
        "create-thing",
        "--thing-name",
        "sensor-1",
        "--attribute-payload",
        r#"{"attributes":{"room":"kitchen"}}"#,
    ]);
    let thing_id = s(&created["thingId"]).to_owned();
    assert_eq!(
        s(&created["thingArn"]),
        format!("arn:aws:iot:us-east-1:{ACCOUNT}:thing/sensor-1")
    );
    server.fails(
        "ResourceAlreadyExistsException",
        &["create-thing", "--thing-name", "sensor-1"],
    );
    server.ok(&[
        "update-thing",
        "--thing-name",
        "sensor-1",
        "--attribute-payload",
        r#"{"attributes":{"floor":"2"},"merge":true}"#,
    ]);
    server.fails(
        "VersionConflictException",
        &[
            "update-thing",
            "--thing-name",
            "sensor-1",
            "--expected-version",
            "1",
            "--remove-thing-type",
        ],
    );
    let d = server.ok(&["describe-thing", "--thing-name", "sensor-1"]);
    assert_eq!(
        (s(&d["defaultClientId"]), s(&d["thingId"]), &d["version"]),
        ("sensor-1", thing_id.as_str(), &Value::from(2))
    );
    assert_eq!(
        d["attributes"],
        serde_json::json!({"room": "kitchen", "floor": "2"})
    );
    let kitchen = server.ok(&[
        "list-things",
        "--attribute-name",
        "room",
        "--attribute-value",
        "kitchen",
    ]);
    assert_eq!(kitchen["things"].as_array().unwrap().len(), 1);
    server.ok(&[
        "attach-thing-principal",
        "--thing-name",
        "sensor-1",
        "--principal",
        &csr_arn,
    ]);
    assert_eq!(
        server.ok(&["list-thing-principals", "--thing-name", "sensor-1"])["principals"],
        serde_json::json!([csr_arn])
    );
    assert_eq!(
        server.ok(&["list-principal-things", "--principal", &csr_arn])["things"],
        serde_json::json!(["sensor-1"])
    );

    // Deleting a certificate: refused while ACTIVE, while a thing is attached (even forced),
    // while a policy is attached unless forced.
    server.fails(
        "CertificateStateException",
        &["delete-certificate", "--certificate-id", &made_id],
    );
    server.fails(
        "DeleteConflictException",
        &[
            "delete-certificate",
            "--certificate-id",
            &csr_id,
            "--force-delete",
        ],
    );
    server.ok(&[
        "detach-thing-principal",
        "--thing-name",
        "sensor-1",
        "--principal",
        &csr_arn,
    ]);
    server.fails(
        "DeleteConflictException",
        &["delete-certificate", "--certificate-id", &csr_id],
    );
    server.ok(&[
        "delete-certificate",
        "--certificate-id",
        &csr_id,
        "--force-delete",
    ]);
    server.fails(
        "ResourceNotFoundException",
        &["describe-certificate", "--certificate-id", &csr_id],
    );

    // Endpoint and tags.
    assert_eq!(
        s(&server.ok(&["describe-endpoint", "--endpoint-type", "iot:Data-ATS"])["endpointAddress"]),
        "localhost"
    );
    server.ok(&[
        "tag-resource",
        "--resource-arn",
        &made_arn,
        "--tags",
        "Key=env,Value=test",
        "Key=team,Value=iot",
    ]);
    server.ok(&[
        "untag-resource",
        "--resource-arn",
        &made_arn,
        "--tag-keys",
        "team",
    ]);
    let tags = server.ok(&["list-tags-for-resource", "--resource-arn", &made_arn]);
    assert_eq!(
        tags["tags"],
        serde_json::json!([{"Key": "env", "Value": "test"}])
    );
}

/// `test-authorization` of a certificate: the three decisions and which policy made each,
/// `--policy-names-to-add`/`--policy-names-to-skip`, `--client-id` with a thing attached to the
/// certificate, and the refusals.
fn test_authorization_flow(server: &Server) {
    let pki = Pki::new(server.dir.path());
    let arn = |resource: &str| format!("arn:aws:iot:us-east-1:{ACCOUNT}:{resource}");
    pki.self_signed("authz", "authz-device");
    let cert = server.ok(&[
        "register-certificate-without-ca",
        "--certificate-pem",
        &pki.file_arg("authz.pem"),
        "--status",
        "ACTIVE",
    ]);
    let cert_arn = s(&cert["certificateArn"]).to_owned();
    let statement = |effect: &str, action: &str, resource: &str| serde_json::json!({"Effect": effect, "Action": action, "Resource": arn(resource)});
    let policies = [
        (
            "publish-allowed",
            vec![
                statement("Allow", "iot:Publish", "topic/allowed/*"),
                statement("Deny", "iot:Publish", "topic/allowed/secret"),
            ],
        ),
        (
            "subscribe-all",
            vec![statement("Allow", "iot:Subscribe", "topicfilter/*")],
        ),
        (
            "own-topic",
            vec![statement(
                "Allow",
                "iot:Publish",
                "topic/things/${iot:Connection.Thing.ThingName}",
            )],
        ),
    ];
    for (name, statements) in policies {
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
        server.ok(&[
            "create-policy",
            "--policy-name",
            name,
            "--policy-document",
            &doc.to_string(),
        ]);
    }
    server.ok(&[
        "attach-policy",
        "--policy-name",
        "publish-allowed",
        "--target",
        &cert_arn,
    ]);

    let infos = |cases: &[(&str, &str)]| -> String {
        let infos: Vec<Value> = cases
            .iter()
            .map(|(action, resource)| {
                serde_json::json!({"actionType": action, "resources": [arn(resource)]})
            })
            .collect();
        Value::from(infos).to_string()
    };
    let test = |auth_infos: &str, extra: &[&str]| -> Vec<Value> {
        let mut args: Vec<&str> = vec![
            "test-authorization",
            "--principal",
            &cert_arn,
            "--auth-infos",
            auth_infos,
        ];
        args.extend(extra);
        server.ok(&args)["authResults"].as_array().unwrap().clone()
    };
    // (authDecision, allowed, explicitDeny, implicitDeny) by policy name.
    let summary = |r: &Value| {
        let names = |v: &Value| -> Vec<String> {
            v["policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    assert_eq!(
                        s(&p["policyArn"]),
                        arn(&format!("policy/{}", s(&p["policyName"])))
                    );
                    s(&p["policyName"]).to_owned()
                })
                .collect()
        };
        (
            s(&r["authDecision"]).to_owned(),
            names(&r["allowed"]),
            names(&r["denied"]["explicitDeny"]),
            names(&r["denied"]["implicitDeny"]),
        )
    };
    let expect = |decision: &str, allowed: &[&str], explicit: &[&str], implicit: &[&str]| {
        let v = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        (decision.to_owned(), v(allowed), v(explicit), v(implicit))
    };

    // The attached policy alone: allowed, explicitly denied, implicitly denied.
    let cases = [
        ("PUBLISH", "topic/allowed/a"),
        ("PUBLISH", "topic/allowed/secret"),
        ("PUBLISH", "topic/elsewhere"),
        ("SUBSCRIBE", "topicfilter/allowed/#"),
    ];
    let results = test(&infos(&cases), &[]);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["authInfo"]["actionType"], "PUBLISH");
    assert_eq!(
        results[1]["authInfo"]["resources"],
        serde_json::json!([arn("topic/allowed/secret")])
    );
    let got: Vec<_> = results.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            expect("ALLOWED", &["publish-allowed"], &[], &[]),
            expect("EXPLICIT_DENY", &[], &["publish-allowed"], &[]),
            expect("IMPLICIT_DENY", &[], &[], &["publish-allowed"]),
            expect("IMPLICIT_DENY", &[], &[], &["publish-allowed"]),
        ]
    );

    // Adding a policy that is not attached; skipping the attached one.
    let results = test(
        &infos(&[cases[0], cases[3]]),
        &["--policy-names-to-add", "subscribe-all"],
    );
    let got: Vec<_> = results.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            expect("ALLOWED", &["publish-allowed"], &[], &["subscribe-all"]),
            expect("ALLOWED", &["subscribe-all"], &[], &["publish-allowed"]),
        ]
    );
    let results = test(
        &infos(&[cases[0], cases[3]]),
        &[
            "--policy-names-to-add",
            "subscribe-all",
            "--policy-names-to-skip",
            "publish-allowed",
        ],
    );
    let got: Vec<_> = results.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            expect("IMPLICIT_DENY", &[], &[], &["subscribe-all"]),
            expect("ALLOWED", &["subscribe-all"], &[], &[]),
        ]
    );

    // Thing variables: only with the client id of a thing attached to the certificate.
    server.ok(&["create-thing", "--thing-name", "authz-thing"]);
    server.ok(&[
        "attach-thing-principal",
        "--thing-name",
        "authz-thing",
        "--principal",
        &cert_arn,
    ]);
    let own = infos(&[("PUBLISH", "topic/things/authz-thing")]);
    let add_own = ["--policy-names-to-add", "own-topic"];
    for (client, decision) in [
        (Some("authz-thing"), "ALLOWED"),
        (Some("someone-else"), "IMPLICIT_DENY"),
        (None, "IMPLICIT_DENY"),
    ] {
        let mut extra = add_own.to_vec();
        if let Some(c) = client {
            extra.extend(["--client-id", c]);
        }
        assert_eq!(
            s(&test(&own, &extra)[0]["authDecision"]),
            decision,
            "{client:?}"
        );
    }

    // Refusals.
    let one = infos(&[cases[0]]);
    let unknown = arn(&format!("cert/{}", "f".repeat(64)));
    let msg = server.fails(
        "ResourceNotFoundException",
        &[
            "test-authorization",
            "--principal",
            &unknown,
            "--auth-infos",
            &one,
        ],
    );
    assert!(msg.contains(&"f".repeat(64)), "{msg}");
    server.fails(
        "InvalidRequestException",
        &[
            "test-authorization",
            "--principal",
            "not-a-principal",
            "--auth-infos",
            &one,
        ],
    );
    let msg = server.fails(
        "ResourceNotFoundException",
        &[
            "test-authorization",
            "--principal",
            &cert_arn,
            "--auth-infos",
            &one,
            "--policy-names-to-add",
            "no-such-policy",
        ],
    );
    assert!(msg.contains("no-such-policy"), "{msg}");
}

#[test]
fn test_authorization_on_sqlite() {
    test_authorization_flow(&Server::start(Backend::Sqlite));
}

#[test]
fn test_authorization_on_postgres() {
    test_authorization_flow(&Server::start(Backend::Postgres));
}

/// Topic rules with `--topic-rule-payload file://...`, as the AWS documentation writes them:
/// create (with tags), get, list with each filter and page by page, replace, disable and
/// enable, delete, and AWS's error for each kind of refusal.
fn topic_rules_flow(server: &Server) {
    let dir = server.dir.path();
    let write = |file: &str, payload: &serde_json::Value| -> String {
        let path = dir.join(file);
        std::fs::write(&path, payload.to_string()).unwrap();
        format!("file://{}", path.display())
    };
    let arn = |name: &str| format!("arn:aws:iot:us-east-1:{ACCOUNT}:rule/{name}");
    let republish = serde_json::json!({"republish": {
        "roleArn": format!("arn:aws:iam::{ACCOUNT}:role/iot-republish"),
        "topic": "alerts/${topic(2)}",
        "qos": 1,
    }});
    let lambda = serde_json::json!({"lambda": {
        "functionArn": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:on-hot"),
    }});
    let payload = serde_json::json!({
        "sql": "SELECT temp, topic(2) AS device FROM 'sensors/+/temp' WHERE temp > 30",
        "description": "hot sensors",
        "actions": [republish, lambda],
        "errorAction": {"republish": {"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/e"), "topic": "errors"}},
    });
    let file = write("r1.json", &payload);
    server.ok(&[
        "create-topic-rule",
        "--rule-name",
        "r1",
        "--topic-rule-payload",
        &file,
        "--tags",
        "team=iot&stage=test",
    ]);
    let got = server.ok(&["get-topic-rule", "--rule-name", "r1"]);
    assert_eq!(s(&got["ruleArn"]), arn("r1"));
    let rule = &got["rule"];
    assert_eq!(s(&rule["ruleName"]), "r1");
    assert_eq!(rule["sql"], payload["sql"]);
    assert_eq!(s(&rule["description"]), "hot sensors");
    assert_eq!(rule["actions"], payload["actions"]);
    assert_eq!(rule["errorAction"], payload["errorAction"]);
    assert_eq!(rule["ruleDisabled"], false);
    assert_eq!(s(&rule["awsIotSqlVersion"]), "2015-10-08", "AWS's default");
    let created_at = rule["createdAt"].clone();
    assert_epoch_seconds(&created_at);
    let tags = server.ok(&["list-tags-for-resource", "--resource-arn", &arn("r1")]);
    assert_eq!(
        tags["tags"],
        serde_json::json!([{"Key": "stage", "Value": "test"}, {"Key": "team", "Value": "iot"}])
    );

    let all = serde_json::json!({
        "sql": "SELECT * FROM '#'",
        "actions": [],
        "ruleDisabled": true,
        "awsIotSqlVersion": "2016-03-23",
    });
    server.ok(&[
        "create-topic-rule",
        "--rule-name",
        "everything",
        "--topic-rule-payload",
        &write("everything.json", &all),
    ]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["list-topic-rules"];
        full.extend(args);
        let listed = server.ok(&full);
        listed["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| s(&r["ruleName"]).to_owned())
            .collect()
    };
    let listed = server.ok(&["list-topic-rules"]);
    let items = listed["rules"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let r1 = &items[1];
    assert_eq!(s(&r1["ruleArn"]), arn("r1"));
    assert_eq!(s(&r1["ruleName"]), "r1");
    assert_eq!(s(&r1["topicPattern"]), "sensors/+/temp");
    assert_eq!(r1["createdAt"], created_at);
    assert_eq!(r1["ruleDisabled"], false);
    assert_eq!(items[0]["ruleDisabled"], true);
    assert_eq!(names(&[]), ["everything", "r1"]);
    assert_eq!(names(&["--topic", "sensors/+/temp"]), ["r1"]);
    assert_eq!(names(&["--topic", "#"]), ["everything"]);
    assert!(names(&["--topic", "sensors/a/temp"]).is_empty());
    assert_eq!(names(&["--rule-disabled"]), ["everything"]);
    assert_eq!(names(&["--no-rule-disabled"]), ["r1"]);
    // The CLI follows nextToken itself: one rule per request.
    assert_eq!(names(&["--page-size", "1"]), ["everything", "r1"]);
    let first = server.ok(&["list-topic-rules", "--max-items", "1"]);
    assert_eq!(first["rules"].as_array().unwrap().len(), 1);
    let token = s(&first["NextToken"]).to_owned();
    assert_eq!(names(&["--starting-token", &token]), ["r1"]);

    // Replace: new SQL, version and actions; same creation time; the tags stay.
    let replacement = serde_json::json!({
        "sql": "SELECT * FROM 'sensors/#'",
        "actions": [{"http": {"url": "https://hooks.example.com/in", "headers": [{"key": "k", "value": "v"}]}}],
        "awsIotSqlVersion": "beta",
    });
    server.ok(&[
        "replace-topic-rule",
        "--rule-name",
        "r1",
        "--topic-rule-payload",
        &write("r1-v2.json", &replacement),
    ]);
    let rule = server.ok(&["get-topic-rule", "--rule-name", "r1"])["rule"].clone();
    assert_eq!(rule["sql"], replacement["sql"]);
    assert_eq!(rule["actions"], replacement["actions"]);
    assert_eq!(s(&rule["awsIotSqlVersion"]), "beta");
    assert!(rule.get("description").is_none(), "{rule}");
    assert!(rule.get("errorAction").is_none(), "{rule}");
    assert_eq!(rule["createdAt"], created_at);
    assert_eq!(names(&["--topic", "sensors/#"]), ["r1"]);
    assert!(names(&["--topic", "sensors/+/temp"]).is_empty());
    let tags = server.ok(&["list-tags-for-resource", "--resource-arn", &arn("r1")]);
    assert_eq!(tags["tags"].as_array().unwrap().len(), 2, "{tags}");

    server.ok(&["disable-topic-rule", "--rule-name", "r1"]);
    let disabled = |name: &str| {
        server.ok(&["get-topic-rule", "--rule-name", name])["rule"]["ruleDisabled"].clone()
    };
    assert_eq!(disabled("r1"), true);
    assert_eq!(names(&["--rule-disabled"]), ["everything", "r1"]);
    server.ok(&["enable-topic-rule", "--rule-name", "r1"]);
    server.ok(&["enable-topic-rule", "--rule-name", "everything"]);
    assert_eq!(disabled("r1"), false);
    assert_eq!(disabled("everything"), false);

    // Refusals.
    let msg = server.fails(
        "ResourceAlreadyExistsException",
        &[
            "create-topic-rule",
            "--rule-name",
            "r1",
            "--topic-rule-payload",
            &file,
        ],
    );
    assert!(msg.contains("r1"), "{msg}");
    let bad_sql = write(
        "bad-sql.json",
        &serde_json::json!({"sql": "SELECT * FROM sensors/temp", "actions": []}),
    );
    let msg = server.fails(
        "SqlParseException",
        &[
            "create-topic-rule",
            "--rule-name",
            "bad",
            "--topic-rule-payload",
            &bad_sql,
        ],
    );
    assert!(msg.contains("at 1:15"), "{msg}");
    server.fails(
        "SqlParseException",
        &[
            "replace-topic-rule",
            "--rule-name",
            "r1",
            "--topic-rule-payload",
            &bad_sql,
        ],
    );
    let eleven = write(
        "eleven.json",
        &serde_json::json!({"sql": "SELECT * FROM 'a'", "actions": vec![lambda.clone(); 11]}),
    );
    let msg = server.fails(
        "InvalidRequestException",
        &[
            "create-topic-rule",
            "--rule-name",
            "big",
            "--topic-rule-payload",
            &eleven,
        ],
    );
    assert!(msg.contains("at most 10 actions"), "{msg}");
    // What botocore checks itself (required members, unknown keys) never reaches the server;
    // these do.
    let qos2 = write(
        "qos2.json",
        &serde_json::json!({"sql": "SELECT * FROM 'a'", "actions": [{"republish": {
            "roleArn": "arn:aws:iam::1:role/r", "topic": "t", "qos": 2}}]}),
    );
    let msg = server.fails(
        "InvalidRequestException",
        &[
            "create-topic-rule",
            "--rule-name",
            "qos2",
            "--topic-rule-payload",
            &qos2,
        ],
    );
    assert!(
        msg.contains("actions[0].republish.qos: must be 0 or 1"),
        "{msg}"
    );
    let mut two = republish.clone();
    two["lambda"] = lambda["lambda"].clone();
    let two = write(
        "two.json",
        &serde_json::json!({"sql": "SELECT * FROM 'a'", "actions": [two]}),
    );
    let msg = server.fails(
        "InvalidRequestException",
        &[
            "create-topic-rule",
            "--rule-name",
            "two",
            "--topic-rule-payload",
            &two,
        ],
    );
    assert!(msg.contains("exactly one action type"), "{msg}");
    let version = write(
        "version.json",
        &serde_json::json!({"sql": "SELECT * FROM 'a'", "actions": [], "awsIotSqlVersion": "2099-01-01"}),
    );
    server.fails(
        "InvalidRequestException",
        &[
            "create-topic-rule",
            "--rule-name",
            "future",
            "--topic-rule-payload",
            &version,
        ],
    );
    server.fails(
        "InvalidRequestException",
        &[
            "create-topic-rule",
            "--rule-name",
            "bad-name",
            "--topic-rule-payload",
            &file,
        ],
    );
    assert_eq!(
        names(&[]),
        ["everything", "r1"],
        "nothing refused was stored"
    );

    server.ok(&["delete-topic-rule", "--rule-name", "r1"]);
    for args in [
        ["get-topic-rule", "--rule-name", "r1"].as_slice(),
        &["delete-topic-rule", "--rule-name", "r1"],
        &["enable-topic-rule", "--rule-name", "r1"],
        &["disable-topic-rule", "--rule-name", "r1"],
        &[
            "replace-topic-rule",
            "--rule-name",
            "r1",
            "--topic-rule-payload",
            &file,
        ],
    ] {
        let msg = server.fails("UnauthorizedException", args);
        assert_eq!(msg, "Access to topic rule 'r1' was denied");
    }
    assert_eq!(names(&[]), ["everything"]);
    server.fails(
        "ResourceNotFoundException",
        &["list-tags-for-resource", "--resource-arn", &arn("r1")],
    );
    // The name is free again.
    server.ok(&[
        "create-topic-rule",
        "--rule-name",
        "r1",
        "--topic-rule-payload",
        &file,
    ]);
}

#[test]
fn topic_rules_on_sqlite() {
    topic_rules_flow(&Server::start(Backend::Sqlite));
}

#[test]
fn topic_rules_on_postgres() {
    topic_rules_flow(&Server::start(Backend::Postgres));
}

#[test]
fn pagination_walks_pages_of_one() {
    let server = Server::start(Backend::Sqlite);
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;
    for i in 0..3 {
        server.ok(&[
            "create-policy",
            "--policy-name",
            &format!("p{i}"),
            "--policy-document",
            doc,
        ]);
        server.ok(&["create-thing", "--thing-name", &format!("t{i}")]);
    }

    // The aws CLI v1 treats the operations' own `pageSize` as a manual pagination argument:
    // one request, and the caller follows `nextMarker` with `--marker`.
    let walk = |op: &str, key: &str, id: &str| -> Vec<String> {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut args = vec![op, "--page-size", "1"];
            if let Some(m) = &marker {
                args.extend(["--marker", m.as_str()]);
            }
            let page = server.ok(&args);
            let items = page[key].as_array().unwrap();
            assert_eq!(items.len(), 1, "{page}");
            seen.push(s(&items[0][id]).to_owned());
            match page.get("nextMarker") {
                Some(m) => marker = Some(s(m).to_owned()),
                None => break,
            }
            assert!(seen.len() < 5, "pagination does not end: {seen:?}");
        }
        seen
    };
    assert_eq!(
        walk("list-policies", "policies", "policyName"),
        ["p0", "p1", "p2"]
    );

    // For things `--page-size` is the CLI's own: it follows nextToken itself, one item per
    // request, and `--max-items`/`--starting-token` resume across invocations.
    let things = server.ok(&["list-things", "--page-size", "1"]);
    let names: Vec<&str> = things["things"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["thingName"]))
        .collect();
    assert_eq!(names, ["t0", "t1", "t2"]);
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args = vec!["list-things", "--page-size", "1", "--max-items", "1"];
        if let Some(t) = &token {
            args.extend(["--starting-token", t.as_str()]);
        }
        let page = server.ok(&args);
        let items = page["things"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        seen.push(s(&items[0]["thingName"]).to_owned());
        match page.get("NextToken") {
            Some(t) => token = Some(s(t).to_owned()),
            None => break,
        }
        assert!(seen.len() < 5, "pagination does not end: {seen:?}");
    }
    assert_eq!(seen, ["t0", "t1", "t2"]);
    let first = server.ok(&["list-policies", "--max-items", "2"]);
    assert_eq!(first["policies"].as_array().unwrap().len(), 2);
    assert!(first.get("NextToken").is_some(), "{first}");

    // Descending order.
    let desc = server.ok(&["list-policies", "--no-ascending-order"]);
    let names: Vec<&str> = desc["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(&p["policyName"]))
        .collect();
    assert_eq!(names, ["p2", "p1", "p0"]);
}

/// The `aws` executable itself (the other tests use its entry point in a long-lived process):
/// a wrong secret and an unknown key are refused with 403 and AWS's codes; the right ones work.
#[test]
fn wrong_credentials_are_refused_with_403() {
    let server = Server::start(Backend::Sqlite);
    let err = server
        .aws_exe_as(
            common::ACCESS_KEY_ID,
            "not-the-secret",
            &["list-certificates"],
        )
        .unwrap_err();
    assert_eq!(err.code, "InvalidSignatureException", "{}", err.stderr);
    assert!(
        err.stderr
            .contains("signature we calculated does not match"),
        "{}",
        err.stderr
    );
    let err = server
        .aws_exe_as("AKIAUNKNOWNKEY000000", "whatever", &["list-certificates"])
        .unwrap_err();
    assert_eq!(err.code, "UnrecognizedClientException", "{}", err.stderr);
    let endpoint = server
        .aws_exe_as(
            common::ACCESS_KEY_ID,
            common::SECRET_ACCESS_KEY,
            &["describe-endpoint"],
        )
        .unwrap();
    assert_eq!(endpoint["endpointAddress"], "localhost");
    // The same through the long-lived runner.
    let err = server
        .aws_as(
            common::ACCESS_KEY_ID,
            "not-the-secret",
            &["list-certificates"],
        )
        .unwrap_err();
    assert_eq!(err.code, "InvalidSignatureException", "{}", err.stderr);
    server.ok(&["list-certificates"]);
}
