//! The fixture of the access tests: the router on a port-0 socket with its registry, the aws
//! CLI runner, credentials of the admin, IAM users and role sessions, and requests signed as
//! any of them straight through the router.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request};
use ferrule_store::{IamSessionRecord, Registry};
use ferrule_testkit::aws_cli::{AwsError, CliRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::sigv4::{self, SignedRequest};
use crate::{ApiConfig, ApiState, Credential};

const ADMIN_KEY: &str = "AKIAFERRULEADMIN0001";
const ADMIN_SECRET: &str = "admin/secret+0123456789abcdefghijklmnop";
pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const REGION: &str = "us-east-1";
pub(super) const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Credentials to call with; `token` for role sessions.
#[derive(Debug, Clone)]
pub(super) struct Creds {
    pub(super) key: String,
    pub(super) secret: String,
    pub(super) token: String,
}

impl Creds {
    pub(super) fn admin() -> Creds {
        Creds {
            key: ADMIN_KEY.into(),
            secret: ADMIN_SECRET.into(),
            token: String::new(),
        }
    }
}

/// The router on a port-0 socket (with the peer address, for `aws:SourceIp`), its registry,
/// and the aws CLI runner.
pub(super) struct Env {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) registry: Registry,
    app: axum::Router,
    pub(super) addr: SocketAddr,
    runner: CliRunner,
    _dir: tempfile::TempDir,
}

impl Env {
    pub(super) fn start() -> Env {
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
            let app = crate::router(ApiState::new(config, registry.clone(), issuer));
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
    pub(super) fn aws_as(
        &mut self,
        creds: &Creds,
        service: &str,
        args: &[&str],
    ) -> Result<Value, AwsError> {
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

    pub(super) fn ok_as(&mut self, creds: &Creds, service: &str, args: &[&str]) -> Value {
        self.aws_as(creds, service, args)
            .unwrap_or_else(|e| panic!("aws {service} {} as {}: {e}", args.join(" "), creds.key))
    }

    pub(super) fn admin(&mut self, service: &str, args: &[&str]) -> Value {
        self.ok_as(&Creds::admin(), service, args)
    }

    /// `aws SERVICE ARGS` as `creds` that must fail with `code`; the error.
    pub(super) fn fails_as(
        &mut self,
        creds: &Creds,
        code: &str,
        service: &str,
        args: &[&str],
    ) -> AwsError {
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
    pub(super) fn user(&mut self, name: &str, policies: &[&str]) -> Creds {
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
    pub(super) fn certificate(&mut self) -> String {
        let made = self.admin("iot", &["create-keys-and-certificate", "--set-as-active"]);
        made["certificateId"].as_str().unwrap().to_owned()
    }

    /// A role session issued directly in the registry, as the function runtime would.
    pub(super) fn session(&self, key: &str, role: &str, session: &str, expires_ms: i64) -> Creds {
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
    pub(super) fn send_as(
        &self,
        creds: &Creds,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (u16, String, String) {
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

pub(super) fn doc(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

pub(super) fn cert_arn(id: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:cert/{id}")
}

pub(super) fn no_allow(who: &str, action: &str, resource: &str) -> String {
    format!(
        "User: {who} is not authorized to perform: {action} on resource: {resource} because no \
         identity-based policy allows the {action} action"
    )
}
