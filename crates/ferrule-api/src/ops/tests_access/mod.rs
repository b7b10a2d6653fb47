//! Who may call the control plane, through the real `aws` CLI (and boto3 once) on a real
//! socket: the admin may do anything; IAM users and role sessions what their inline policies
//! allow, refused with AWS's AccessDenied in each protocol the CLI parses (rest-json, IAM's
//! XML, JSON 1.1); role sessions need their token and expire; inactive keys are refused.
//! Users, keys and policies are made with `aws iam` as the admin; role sessions and inactive
//! keys directly in the registry (no API makes them).

#![allow(clippy::unwrap_used)]

mod fixture;

use ferrule_store::IamAccessKeyRecord;

use crate::access::ROUTES;
use fixture::{Creds, Env, REGION, TRUST, cert_arn, doc, no_allow};

#[test]
fn admin_may_do_anything_and_a_user_what_its_policy_allows() {
    let mut env = Env::start();
    let cert = env.certificate();
    // Actions match ignoring case, as in IAM.
    let alice = env.user(
        "alice",
        &[&doc(
            r#"{"Effect":"Allow","Action":"iot:List*","Resource":"*"},
               {"Effect":"Allow","Action":"IOT:describeENDPOINT","Resource":"*"}"#,
        )],
    );

    let listed = env.ok_as(&alice, "iot", &["list-certificates"]);
    assert_eq!(listed["certificates"][0]["certificateId"], cert.as_str());
    env.ok_as(&alice, "iot", &["list-things"]);
    env.ok_as(
        &alice,
        "iot",
        &["describe-endpoint", "--endpoint-type", "iot:Data-ATS"],
    );

    let policy = doc(r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}"#);
    let denied = env.fails_as(
        &alice,
        "AccessDeniedException",
        "iot",
        &[
            "create-policy",
            "--policy-name",
            "dev",
            "--policy-document",
            &policy,
        ],
    );
    let expected = no_allow(
        "arn:aws:iam::123456789012:user/alice",
        "iot:CreatePolicy",
        "arn:aws:iot:us-east-1:123456789012:policy/dev",
    );
    assert_eq!(denied.message, expected);
    assert!(
        denied.stderr.contains(
            "An error occurred (AccessDeniedException) when calling the CreatePolicy operation"
        ),
        "{}",
        denied.stderr
    );
    env.fails_as(
        &alice,
        "AccessDeniedException",
        "iot",
        &["describe-certificate", "--certificate-id", &cert],
    );

    // The admin may do all of it, and the user's refusals changed nothing.
    env.admin(
        "iot",
        &[
            "create-policy",
            "--policy-name",
            "dev",
            "--policy-document",
            &policy,
        ],
    );
    env.admin("iot", &["describe-certificate", "--certificate-id", &cert]);
    env.admin("iam", &["list-roles"]);
    env.admin("logs", &["create-log-group", "--log-group-name", "/admin"]);
    let policies = env.ok_as(&alice, "iot", &["list-policies"]);
    assert_eq!(policies["policies"][0]["policyName"], "dev");
}

#[test]
fn explicit_deny_wins_over_allow() {
    let mut env = Env::start();
    let bob = env.user(
        "bob",
        &[
            &doc(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#),
            &doc(
                r#"{"Sid":"KeepIt","Effect":"Deny","Action":"iot:DeleteThing","Resource":"arn:aws:iot:*:*:thing/keep-*"}"#,
            ),
        ],
    );
    env.ok_as(&bob, "iot", &["create-thing", "--thing-name", "keep-1"]);
    env.ok_as(&bob, "iot", &["create-thing", "--thing-name", "scratch"]);
    let denied = env.fails_as(
        &bob,
        "AccessDeniedException",
        "iot",
        &["delete-thing", "--thing-name", "keep-1"],
    );
    assert_eq!(
        denied.message,
        "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: iot:DeleteThing \
         on resource: arn:aws:iot:us-east-1:123456789012:thing/keep-1 with an explicit deny in \
         an identity-based policy"
    );
    env.ok_as(&bob, "iot", &["delete-thing", "--thing-name", "scratch"]);
    env.ok_as(&bob, "iot", &["describe-thing", "--thing-name", "keep-1"]);
}

#[test]
fn an_allow_scoped_to_one_certificate_covers_only_that_one() {
    let mut env = Env::start();
    let mine = env.certificate();
    let other = env.certificate();
    let carol = env.user(
        "carol",
        &[&doc(&format!(
            r#"{{"Effect":"Allow","Action":"iot:UpdateCertificate","Resource":"{}"}}"#,
            cert_arn(&mine)
        ))],
    );
    env.ok_as(
        &carol,
        "iot",
        &[
            "update-certificate",
            "--certificate-id",
            &mine,
            "--new-status",
            "INACTIVE",
        ],
    );
    let denied = env.fails_as(
        &carol,
        "AccessDeniedException",
        "iot",
        &[
            "update-certificate",
            "--certificate-id",
            &other,
            "--new-status",
            "INACTIVE",
        ],
    );
    assert_eq!(
        denied.message,
        no_allow(
            "arn:aws:iam::123456789012:user/carol",
            "iot:UpdateCertificate",
            &cert_arn(&other)
        )
    );
    // The `aws` executable itself, with its default retries, prints AWS's line exactly.
    let endpoint = format!("http://{}", env.addr);
    let mut cmd = std::process::Command::new("aws");
    cmd.args([
        "iot",
        "update-certificate",
        "--certificate-id",
        &other,
        "--new-status",
        "REVOKED",
        "--endpoint-url",
        &endpoint,
        "--region",
        REGION,
    ]);
    ferrule_testkit::aws_cli::clean_env(&mut cmd);
    let out = cmd
        .env_remove("AWS_MAX_ATTEMPTS")
        .env_remove("AWS_RETRY_MODE")
        .env("AWS_ACCESS_KEY_ID", &carol.key)
        .env("AWS_SECRET_ACCESS_KEY", &carol.secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "An error occurred (AccessDeniedException) when calling the UpdateCertificate \
             operation: {}",
            no_allow(
                "arn:aws:iam::123456789012:user/carol",
                "iot:UpdateCertificate",
                &cert_arn(&other)
            )
        )
    );
    let described = env.admin("iot", &["describe-certificate", "--certificate-id", &mine]);
    assert_eq!(described["certificateDescription"]["status"], "INACTIVE");
    let described = env.admin("iot", &["describe-certificate", "--certificate-id", &other]);
    assert_eq!(described["certificateDescription"]["status"], "ACTIVE");
}

#[test]
fn role_sessions_act_by_their_roles_policies_until_they_expire() {
    let mut env = Env::start();
    let cert = env.certificate();
    env.admin(
        "iot",
        &[
            "create-policy",
            "--policy-name",
            "device",
            "--policy-document",
            &doc(r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}"#),
        ],
    );
    env.admin(
        "iam",
        &[
            "create-role",
            "--role-name",
            "jitr-role",
            "--path",
            "/service/",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    env.admin("iam", &["put-role-policy", "--role-name", "jitr-role", "--policy-name", "jitr",
        "--policy-document",
        &doc(r#"{"Effect":"Allow","Action":["iot:UpdateCertificate","iot:AttachPrincipalPolicy"],"Resource":"*"}"#)]);
    let hour = 3_600_000;
    let session = env.session(
        "ASIAFERRULESESSION01",
        "jitr-role",
        "activate-1",
        crate::now_ms() + hour,
    );

    env.ok_as(
        &session,
        "iot",
        &[
            "update-certificate",
            "--certificate-id",
            &cert,
            "--new-status",
            "INACTIVE",
        ],
    );
    env.ok_as(
        &session,
        "iot",
        &[
            "attach-principal-policy",
            "--policy-name",
            "device",
            "--principal",
            &cert_arn(&cert),
        ],
    );
    let denied = env.fails_as(
        &session,
        "AccessDeniedException",
        "iot",
        &["delete-certificate", "--certificate-id", &cert],
    );
    assert_eq!(
        denied.message,
        no_allow(
            "arn:aws:sts::123456789012:assumed-role/jitr-role/activate-1",
            "iot:DeleteCertificate",
            &cert_arn(&cert)
        )
    );

    // The token must be the session's.
    let wrong = Creds {
        token: "not-the-token".into(),
        ..session.clone()
    };
    let e = env.fails_as(
        &wrong,
        "UnrecognizedClientException",
        "iot",
        &["list-things"],
    );
    assert_eq!(
        e.message,
        "The security token included in the request is invalid."
    );
    let missing = Creds {
        token: String::new(),
        ..session.clone()
    };
    env.fails_as(
        &missing,
        "UnrecognizedClientException",
        "iot",
        &["list-things"],
    );

    let expired = env.session(
        "ASIAFERRULESESSION02",
        "jitr-role",
        "old",
        crate::now_ms() - 1,
    );
    let e = env.fails_as(
        &expired,
        "ExpiredTokenException",
        "iot",
        &[
            "update-certificate",
            "--certificate-id",
            &cert,
            "--new-status",
            "ACTIVE",
        ],
    );
    assert_eq!(
        e.message,
        "The security token included in the request is expired"
    );

    // The role's policy decides at each request: without it, the session may do nothing.
    env.admin(
        "iam",
        &[
            "delete-role-policy",
            "--role-name",
            "jitr-role",
            "--policy-name",
            "jitr",
        ],
    );
    env.fails_as(
        &session,
        "AccessDeniedException",
        "iot",
        &[
            "update-certificate",
            "--certificate-id",
            &cert,
            "--new-status",
            "ACTIVE",
        ],
    );
}

#[test]
fn iam_and_logs_refusals_are_in_their_own_protocols() {
    let mut env = Env::start();
    let dave = env.user(
        "dave",
        &[&doc(
            r#"{"Effect":"Allow","Action":"logs:*","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/app/*"},
               {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::123456789012:user/${aws:username}"}"#,
        )],
    );
    // IAM's XML error, parsed by botocore's query parser.
    let e = env.fails_as(&dave, "AccessDenied", "iam", &["list-roles"]);
    assert_eq!(
        e.message,
        no_allow("arn:aws:iam::123456789012:user/dave", "iam:ListRoles", "*")
    );
    assert!(
        e.stderr
            .contains("An error occurred (AccessDenied) when calling the ListRoles operation"),
        "{}",
        e.stderr
    );
    let e = env.fails_as(
        &dave,
        "AccessDenied",
        "iam",
        &[
            "create-role",
            "--role-name",
            "escalate",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    assert!(
        e.message
            .contains("iam:CreateRole on resource: arn:aws:iam::123456789012:role/escalate "),
        "{}",
        e.message
    );
    // `${aws:username}` in the resource: dave may read himself only.
    let me = env.ok_as(&dave, "iam", &["get-user", "--user-name", "dave"]);
    assert_eq!(me["User"]["UserName"], "dave");
    env.admin("iam", &["create-user", "--user-name", "erin"]);
    env.fails_as(
        &dave,
        "AccessDenied",
        "iam",
        &["get-user", "--user-name", "erin"],
    );
    // The resource is the role's ARN with the path it was created with.
    env.admin(
        "iam",
        &[
            "create-role",
            "--role-name",
            "Ingest",
            "--path",
            "/service/",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    let e = env.fails_as(
        &dave,
        "AccessDenied",
        "iam",
        &["get-role", "--role-name", "ingest"],
    );
    assert_eq!(
        e.message,
        no_allow(
            "arn:aws:iam::123456789012:user/dave",
            "iam:GetRole",
            "arn:aws:iam::123456789012:role/service/Ingest"
        )
    );

    // CloudWatch Logs' JSON 1.1 error.
    env.ok_as(
        &dave,
        "logs",
        &["create-log-group", "--log-group-name", "/app/web"],
    );
    let e = env.fails_as(
        &dave,
        "AccessDeniedException",
        "logs",
        &["create-log-group", "--log-group-name", "/other"],
    );
    assert_eq!(
        e.message,
        no_allow(
            "arn:aws:iam::123456789012:user/dave",
            "logs:CreateLogGroup",
            "arn:aws:logs:us-east-1:123456789012:log-group:/other:*"
        )
    );
    assert!(
        e.stderr.contains(
            "An error occurred (AccessDeniedException) when calling the CreateLogGroup operation"
        ),
        "{}",
        e.stderr
    );
    // And the IoT API refuses dave everything.
    env.fails_as(&dave, "AccessDeniedException", "iot", &["list-things"]);
}

#[test]
fn source_ip_and_principal_arn_conditions() {
    let mut env = Env::start();
    let frank = env.user(
        "frank",
        &[&doc(
            r#"{"Effect":"Allow","Action":"iot:ListThings","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}},
               {"Effect":"Allow","Action":"iot:ListPolicies","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
               {"Effect":"Allow","Action":"iot:ListCertificates","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/frank"}}},
               {"Effect":"Allow","Action":"iot:ListTopicRules","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}}"#,
        )],
    );
    env.ok_as(&frank, "iot", &["list-things"]);
    env.fails_as(&frank, "AccessDeniedException", "iot", &["list-policies"]);
    env.ok_as(&frank, "iot", &["list-certificates"]);
    env.fails_as(
        &frank,
        "AccessDeniedException",
        "iot",
        &["list-topic-rules"],
    );
}

#[test]
fn inactive_unknown_and_unparseable_keys_and_policies() {
    let mut env = Env::start();
    // A stored document the evaluator cannot read is skipped; the others still apply.
    let gina = env.user(
        "gina",
        &[
            &doc(r#"{"Effect":"Deny","Action":"not-an-action","Resource":"*"}"#),
            &doc(r#"{"Effect":"Allow","Action":"iot:ListThings","Resource":"*"}"#),
        ],
    );
    env.ok_as(&gina, "iot", &["list-things"]);

    let inactive = IamAccessKeyRecord {
        access_key_id: "AKIAFERRULEINACTIVE1".into(),
        user_name: "gina".into(),
        secret_access_key: "inactive-secret".into(),
        status: "Inactive".into(),
        created_ms: crate::now_ms(),
    };
    env.rt
        .block_on(env.registry.create_iam_access_key(&inactive))
        .unwrap();
    let creds = Creds {
        key: inactive.access_key_id.clone(),
        secret: inactive.secret_access_key.clone(),
        token: String::new(),
    };
    let e = env.fails_as(
        &creds,
        "UnrecognizedClientException",
        "iot",
        &["list-things"],
    );
    assert_eq!(
        e.message,
        "The security token included in the request is invalid."
    );
    let unknown = Creds {
        key: "AKIANOSUCHKEY0000001".into(),
        ..creds.clone()
    };
    env.fails_as(
        &unknown,
        "UnrecognizedClientException",
        "iot",
        &["list-things"],
    );
    // A known key with a wrong secret is a signature mismatch.
    let forged = Creds {
        secret: "wrong".into(),
        ..gina.clone()
    };
    env.fails_as(
        &forged,
        "InvalidSignatureException",
        "iot",
        &["list-things"],
    );
    // A deleted key no longer works.
    env.admin(
        "iam",
        &[
            "delete-access-key",
            "--user-name",
            "gina",
            "--access-key-id",
            &gina.key,
        ],
    );
    env.fails_as(
        &gina,
        "UnrecognizedClientException",
        "iot",
        &["list-things"],
    );
}

#[test]
fn every_iot_route_is_refused_to_a_user_without_policies_naming_its_action() {
    let mut env = Env::start();
    let nobody = env.user("nobody", &[]);
    let cert = "a".repeat(64);
    for (method, pattern, action, _) in ROUTES {
        if action.is_empty() || pattern.starts_with("/2015-03-31/") {
            continue;
        }
        let path = pattern
            .replace("{certificateId}", &cert)
            .replace("{caCertificateId}", &cert)
            .replace("{policyVersionId}", "1")
            .replace("{target}", "t")
            .replace(['{', '}'], "");
        let (status, code, message) = env.send_as(&nobody, method, &path, "");
        assert_eq!(
            (status, code.as_str()),
            (403, "AccessDeniedException"),
            "{method} {path}: {message}"
        );
        assert!(
            message.contains(&format!("to perform: {action} on resource: ")),
            "{method} {path}: {message}"
        );
    }
}

#[test]
fn lambda_routes_are_authorized_by_lambda_actions() {
    let mut env = Env::start();
    let hank = env.user(
        "hank",
        &[&doc(
            r#"{"Effect":"Allow","Action":"lambda:GetFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:mine"}"#,
        )],
    );
    for (method, path, action) in [
        ("GET", "/2015-03-31/functions/other", "lambda:GetFunction"),
        (
            "POST",
            "/2015-03-31/functions/mine/invocations",
            "lambda:InvokeFunction",
        ),
        ("GET", "/2015-03-31/functions/", "lambda:ListFunctions"),
    ] {
        let (status, code, message) = env.send_as(&hank, method, path, "");
        if code == "UnknownOperationException" {
            // The Lambda routes are not in this router yet.
            continue;
        }
        assert_eq!(
            (status, code.as_str()),
            (403, "AccessDeniedException"),
            "{path}: {message}"
        );
        assert!(
            message.contains(&format!("to perform: {action} on resource: ")),
            "{message}"
        );
    }
}

#[test]
fn boto3_reads_the_refusal_as_a_modeled_client_error() {
    let mut env = Env::start();
    let cert = env.certificate();
    env.admin(
        "iam",
        &[
            "create-role",
            "--role-name",
            "reader",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    env.admin(
        "iam",
        &[
            "put-role-policy",
            "--role-name",
            "reader",
            "--policy-name",
            "read",
            "--policy-document",
            &doc(r#"{"Effect":"Allow","Action":"iot:Describe*","Resource":"*"}"#),
        ],
    );
    let s = env.session(
        "ASIAFERRULESESSION03",
        "reader",
        "py",
        crate::now_ms() + 600_000,
    );
    let script = r#"
import os, sys, boto3, botocore.exceptions
iot = boto3.client("iot", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
cert = sys.argv[1]
print(iot.describe_certificate(certificateId=cert)["certificateDescription"]["status"])
try:
    iot.update_certificate(certificateId=cert, newStatus="REVOKED")
    print("allowed")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
    print(e.response["Error"]["Message"])
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script, &cert]);
    ferrule_testkit::aws_cli::clean_env(&mut cmd);
    let out = cmd
        .env("ENDPOINT", format!("http://{}", env.addr))
        .env("AWS_ACCESS_KEY_ID", &s.key)
        .env("AWS_SECRET_ACCESS_KEY", &s.secret)
        .env("AWS_SESSION_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ACTIVE",
            "AccessDeniedException 403",
            no_allow(
                "arn:aws:sts::123456789012:assumed-role/reader/py",
                "iot:UpdateCertificate",
                &cert_arn(&cert)
            )
            .as_str()
        ]
    );
}

#[test]
fn bodies_are_limited_to_1_mib_but_lambdas_to_70_mib() {
    let env = Env::start();
    let admin = Creds::admin();
    let big = format!(
        r#"{{"attributePayload":{{"attributes":{{"a":"{}"}}}}}}"#,
        "x".repeat(2 << 20)
    );
    let (status, code, message) = env.send_as(&admin, "POST", "/things/big", &big);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidRequestException"),
        "{message}"
    );
    assert!(message.contains("larger than 1048576 bytes"), "{message}");

    let zip = format!(
        r#"{{"FunctionName":"big","Runtime":"python3.12","Role":"arn:aws:iam::123456789012:role/r","Handler":"h.h","Code":{{"ZipFile":"{}"}}}}"#,
        "A".repeat(2 << 20)
    );
    let (_, code, message) = env.send_as(&admin, "POST", "/2015-03-31/functions", &zip);
    // Whatever CreateFunction thinks of this zip, the body got through.
    assert!(!message.contains("larger than"), "{code}: {message}");
    let huge = "A".repeat(71 << 20);
    let (status, code, message) = env.send_as(&admin, "POST", "/2015-03-31/functions", &huge);
    if code != "UnknownOperationException" {
        assert_eq!(
            (status, code.as_str()),
            (400, "InvalidRequestException"),
            "{message}"
        );
        assert!(message.contains("larger than 73400320 bytes"), "{message}");
    }
}
