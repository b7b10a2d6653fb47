//! Who may call the control plane, through the real `aws` CLI (and boto3 once) on a real
//! socket: the admin may do anything; IAM users and role sessions what their inline policies
//! allow, refused with AWS's AccessDenied in each protocol the CLI parses (rest-json, IAM's
//! XML, JSON 1.1); role sessions need their token and expire; inactive keys are refused.
//! Users, keys and policies are made with `aws iam` as the admin; role sessions and inactive
//! keys directly in the registry (no API makes them).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use ferrule_store::{IamAccessKeyRecord, IamSessionRecord, Registry};
use ferrule_testkit::aws_cli::{AwsError, CliRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::access::ROUTES;
use crate::sigv4::{self, SignedRequest};
use crate::{ApiConfig, ApiState, Credential};

const ADMIN_KEY: &str = "AKIAFERRULEADMIN0001";
const ADMIN_SECRET: &str = "admin/secret+0123456789abcdefghijklmnop";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Credentials to call with; `token` for role sessions.
#[derive(Debug, Clone)]
struct Creds {
    key: String,
    secret: String,
    token: String,
}

impl Creds {
    fn admin() -> Creds {
        Creds {
            key: ADMIN_KEY.into(),
            secret: ADMIN_SECRET.into(),
            token: String::new(),
        }
    }
}

/// The router on a port-0 socket (with the peer address, for `aws:SourceIp`), its registry,
/// and the aws CLI runner.
struct Env {
    rt: tokio::runtime::Runtime,
    registry: Registry,
    app: axum::Router,
    addr: SocketAddr,
    runner: CliRunner,
    _dir: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let data = dir.path().to_owned();
        let (registry, app, addr) = rt.block_on(async move {
            let registry = Registry::open_sqlite(&data.join("ferrule.db"))
                .await
                .unwrap();
            let issuer = Arc::new(ferrule_pki::Issuer::load_or_create(&data).unwrap());
            let config = ApiConfig {
                region: REGION.into(),
                account_id: ACCOUNT.into(),
                mqtt_endpoint: "localhost:8883".into(),
                credentials: vec![Credential {
                    access_key_id: ADMIN_KEY.into(),
                    secret_access_key: ADMIN_SECRET.into(),
                }],
            };
            let app = super::router(ApiState::new(config, registry.clone(), issuer));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let served = app
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, served).await });
            (registry, app, addr)
        });
        Env {
            rt,
            registry,
            app,
            addr,
            runner: CliRunner::start(|_| {}),
            _dir: dir,
        }
    }

    /// `aws SERVICE ARGS` as `creds`.
    fn aws_as(&mut self, creds: &Creds, service: &str, args: &[&str]) -> Result<Value, AwsError> {
        let endpoint = format!("http://{}", self.addr);
        let mut full: Vec<String> = vec![service.to_owned()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.extend(
            [
                "--endpoint-url",
                &endpoint,
                "--region",
                REGION,
                "--output",
                "json",
            ]
            .map(str::to_owned),
        );
        // The runner keeps its environment between commands: set all three every time.
        let env = json!({
            "AWS_ACCESS_KEY_ID": creds.key,
            "AWS_SECRET_ACCESS_KEY": creds.secret,
            "AWS_SESSION_TOKEN": creds.token,
        });
        self.runner.call(&full, &env, CLI_TIMEOUT).json()
    }

    fn ok_as(&mut self, creds: &Creds, service: &str, args: &[&str]) -> Value {
        self.aws_as(creds, service, args)
            .unwrap_or_else(|e| panic!("aws {service} {} as {}: {e}", args.join(" "), creds.key))
    }

    fn admin(&mut self, service: &str, args: &[&str]) -> Value {
        self.ok_as(&Creds::admin(), service, args)
    }

    /// `aws SERVICE ARGS` as `creds` that must fail with `code`; the error.
    fn fails_as(&mut self, creds: &Creds, code: &str, service: &str, args: &[&str]) -> AwsError {
        match self.aws_as(creds, service, args) {
            Ok(v) => panic!(
                "aws {service} {} as {} succeeded ({v}) but should fail with {code}",
                args.join(" "),
                creds.key
            ),
            Err(e) => {
                assert_eq!(
                    e.code,
                    code,
                    "aws {service} {}: {}",
                    args.join(" "),
                    e.stderr
                );
                e
            }
        }
    }

    /// A user with an access key and one inline policy per document.
    fn user(&mut self, name: &str, policies: &[&str]) -> Creds {
        self.admin("iam", &["create-user", "--user-name", name]);
        for (i, doc) in policies.iter().enumerate() {
            let policy_name = format!("p{i}");
            self.admin(
                "iam",
                &[
                    "put-user-policy",
                    "--user-name",
                    name,
                    "--policy-name",
                    &policy_name,
                    "--policy-document",
                    doc,
                ],
            );
        }
        let key = self.admin("iam", &["create-access-key", "--user-name", name]);
        Creds {
            key: key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned(),
            secret: key["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_owned(),
            token: String::new(),
        }
    }

    /// A new device certificate (made by the admin); its id.
    fn certificate(&mut self) -> String {
        let made = self.admin("iot", &["create-keys-and-certificate", "--set-as-active"]);
        made["certificateId"].as_str().unwrap().to_owned()
    }

    /// A role session issued directly in the registry, as the function runtime would.
    fn session(&self, key: &str, role: &str, session: &str, expires_ms: i64) -> Creds {
        let record = IamSessionRecord {
            access_key_id: key.to_owned(),
            secret_access_key: format!("{key}-secret/+x"),
            session_token: format!("token-for-{key}/+=="),
            role_name: role.to_owned(),
            session_name: session.to_owned(),
            created_ms: crate::now_ms(),
            expires_ms,
        };
        self.rt
            .block_on(self.registry.create_iam_session(&record))
            .unwrap();
        Creds {
            key: record.access_key_id,
            secret: record.secret_access_key,
            token: record.session_token,
        }
    }

    /// A request through the router directly (no socket), signed as `creds`: status, error
    /// code and message.
    fn send_as(&self, creds: &Creds, method: &str, uri: &str, body: &str) -> (u16, String, String) {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let amz_date = sigv4::format_amz_date(crate::now_ms() / 1000);
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        let signed = SignedRequest {
            method,
            raw_path: path,
            raw_query: query,
            headers: &h,
            body: body.as_bytes(),
        };
        let auth = sigv4::authorization_header(
            &signed,
            &["host", "x-amz-date"],
            &creds.key,
            &creds.secret,
            REGION,
            "iot",
            &amz_date,
        );
        h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        *req.headers_mut() = h;
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let code = resp
                .headers()
                .get("x-amzn-errortype")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (status, code, message)
        })
    }
}

fn doc(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

fn cert_arn(id: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:cert/{id}")
}

fn no_allow(who: &str, action: &str, resource: &str) -> String {
    format!(
        "User: {who} is not authorized to perform: {action} on resource: {resource} because no \
         identity-based policy allows the {action} action"
    )
}

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
