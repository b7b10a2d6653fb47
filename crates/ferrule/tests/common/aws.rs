//! The real `aws iot` CLI against a [`Server`]'s control plane, with the admin credentials the
//! server generated into `DATA_DIR/credentials` (the `[default]` profile). Commands run through
//! the CLI's own entry point in one long-lived Python process per server
//! (`ferrule_testkit::aws_cli`), so a test pays the CLI's start-up once, not per command.
//!
//! Also: the registry steps tests repeat (CA registration with proof of possession, policies,
//! certificate status) and [`provision_device`], a registered ACTIVE device certificate with
//! an allow-all policy, which is what a client needs on the `mqtts` listener.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use ferrule_testkit::aws_cli::AwsError;
use ferrule_testkit::aws_cli::CliRunner;
use serde_json::{Value, json};

use super::Server;
use super::pki::{Ca, Cert, KeyAlg, Pki};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "123456789012";
/// Bound on one aws CLI command.
const AWS_TIMEOUT: Duration = Duration::from_secs(60);
/// The allow-all policy [`provision_device`] attaches.
pub(crate) const ALLOW_ALL_POLICY: &str = "ferrule-tests-allow-all";

/// `arn:aws:iot:us-east-1:123456789012:cert/ID`.
pub(crate) fn cert_arn(id: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:cert/{id}")
}

/// `arn:aws:iot:us-east-1:123456789012:KIND/REST`, e.g. `arn("topic", "a/b")`.
pub(crate) fn arn(kind: &str, rest: &str) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{rest}")
}

/// A policy document with these statements.
pub(crate) fn policy(statements: Value) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// `{"Effect":"Allow","Action":"iot:*","Resource":"*"}`.
pub(crate) fn allow_all() -> Value {
    policy(json!([{ "Effect": "Allow", "Action": "iot:*", "Resource": "*" }]))
}

/// The per-server state: the runner process (started on first use) and the credentials file.
pub(crate) struct AwsShared {
    runner: Mutex<Option<CliRunner>>,
    credentials: PathBuf,
}

impl AwsShared {
    pub(crate) fn new(data_dir: &Path) -> AwsShared {
        AwsShared {
            runner: Mutex::new(None),
            credentials: data_dir.join("credentials"),
        }
    }
}

/// The aws CLI pointed at one server's API listener. Cheap to clone and `Send`: a background
/// thread can drive the registry while the test thread runs clients. Commands are serialized.
#[derive(Clone)]
pub(crate) struct Aws {
    shared: Arc<AwsShared>,
    endpoint: String,
}

impl Server {
    /// The aws CLI against this server's current API address (re-take it after a restart:
    /// the port changes).
    pub(crate) fn aws(&self) -> Aws {
        Aws {
            shared: Arc::clone(self.aws_shared()),
            endpoint: format!("http://{}", self.api()),
        }
    }
}

impl Aws {
    /// `aws iot ARGS --endpoint-url ... --output json`: the parsed output (`Null` when empty),
    /// or the CLI's error.
    pub(crate) fn iot(&self, args: &[&str]) -> Result<Value, AwsError> {
        self.cli("iot", args)
    }

    /// `aws SERVICE ARGS --endpoint-url ... --output json` (`iam`, `lambda`, `logs`...), as the
    /// admin: the parsed output (`Null` when empty), or the CLI's error.
    pub(crate) fn cli(&self, service: &str, args: &[&str]) -> Result<Value, AwsError> {
        let mut full: Vec<String> = vec![service.into()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        full.extend(
            ["--endpoint-url", &self.endpoint, "--output", "json"]
                .iter()
                .map(|a| (*a).to_owned()),
        );
        let mut guard = self
            .shared
            .runner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let credentials = &self.shared.credentials;
        let runner = guard.get_or_insert_with(|| {
            // The server's generated credentials file, [default] profile.
            CliRunner::start(|cmd| {
                cmd.env("AWS_SHARED_CREDENTIALS_FILE", credentials);
            })
        });
        runner.call(&full, &json!({}), AWS_TIMEOUT).json()
    }

    /// `aws iot ARGS` that must succeed.
    pub(crate) fn ok(&self, args: &[&str]) -> Value {
        self.iot(args)
            .unwrap_or_else(|e| panic!("aws iot {}: {e}", args.join(" ")))
    }

    /// `aws iot ARGS` that must fail with `code`; returns the message.
    pub(crate) fn fails(&self, code: &str, args: &[&str]) -> String {
        match self.iot(args) {
            Ok(v) => panic!(
                "aws iot {} succeeded ({v}) but should fail with {code}",
                args.join(" ")
            ),
            Err(e) => {
                assert_eq!(e.code, code, "aws iot {}: {}", args.join(" "), e.stderr);
                e.message
            }
        }
    }

    /// `aws SERVICE ARGS` that must succeed.
    pub(crate) fn cli_ok(&self, service: &str, args: &[&str]) -> Value {
        self.cli(service, args)
            .unwrap_or_else(|e| panic!("aws {service} {}: {e}", args.join(" ")))
    }

    /// Starts the runner now (it takes a second or two), so that later commands are quick.
    pub(crate) fn warm_up(&self) {
        self.ok(&["get-registration-code"]);
    }

    /// The registration code (`get-registration-code`).
    pub(crate) fn registration_code(&self) -> String {
        str_of(&self.ok(&["get-registration-code"])["registrationCode"]).to_owned()
    }

    /// Registers `ca` with proof of possession, as the AWS documentation does it:
    /// `get-registration-code`, a verification certificate whose CN is the code signed by the
    /// CA's key, `register-ca-certificate` (`--set-as-active` / `--allow-auto-registration`
    /// when asked). Returns the CA's certificate id.
    pub(crate) fn register_ca(&self, pki: &Pki, ca: &Ca, active: bool, auto: bool) -> String {
        let code = self.registration_code();
        let verification = pki.verification_cert(ca, &code);
        let ca_arg = ca.file_arg();
        let verification_arg = verification.file_arg();
        let mut args = vec![
            "register-ca-certificate",
            "--ca-certificate",
            &ca_arg,
            "--verification-certificate",
            &verification_arg,
        ];
        if active {
            args.push("--set-as-active");
        }
        if auto {
            args.push("--allow-auto-registration");
        }
        let out = self.ok(&args);
        let id = str_of(&out["certificateId"]).to_owned();
        assert_eq!(id, ca.id(), "register-ca-certificate: {out}");
        id
    }

    /// `update-ca-certificate --new-status S --new-auto-registration-status A`.
    pub(crate) fn update_ca(&self, ca_id: &str, status: &str, auto_registration: &str) {
        self.ok(&[
            "update-ca-certificate",
            "--certificate-id",
            ca_id,
            "--new-status",
            status,
            "--new-auto-registration-status",
            auto_registration,
        ]);
    }

    /// `register-certificate --certificate-pem file://... --status S` (found under its CA by
    /// issuer). Returns the certificate id.
    pub(crate) fn register_cert(&self, cert: &Cert, status: &str) -> String {
        let pem = cert.file_arg();
        let out = self.ok(&[
            "register-certificate",
            "--certificate-pem",
            &pem,
            "--status",
            status,
        ]);
        let id = str_of(&out["certificateId"]).to_owned();
        assert_eq!(id, cert.id(), "register-certificate: {out}");
        id
    }

    /// `register-certificate-without-ca --certificate-pem file://... --status S`.
    pub(crate) fn register_cert_without_ca(&self, cert: &Cert, status: &str) -> String {
        let pem = cert.file_arg();
        let out = self.ok(&[
            "register-certificate-without-ca",
            "--certificate-pem",
            &pem,
            "--status",
            status,
        ]);
        let id = str_of(&out["certificateId"]).to_owned();
        assert_eq!(id, cert.id(), "register-certificate-without-ca: {out}");
        id
    }

    /// `update-certificate --certificate-id ID --new-status S`.
    pub(crate) fn update_certificate(&self, id: &str, status: &str) {
        self.ok(&[
            "update-certificate",
            "--certificate-id",
            id,
            "--new-status",
            status,
        ]);
    }

    /// `describe-certificate`: the `certificateDescription`.
    pub(crate) fn describe_certificate(&self, id: &str) -> Value {
        self.ok(&["describe-certificate", "--certificate-id", id])["certificateDescription"].clone()
    }

    /// `create-policy --policy-name NAME --policy-document DOC`.
    pub(crate) fn create_policy(&self, name: &str, document: &Value) {
        let doc = document.to_string();
        self.ok(&[
            "create-policy",
            "--policy-name",
            name,
            "--policy-document",
            &doc,
        ]);
    }

    /// `attach-policy --policy-name NAME --target CERT_ARN`.
    pub(crate) fn attach_policy(&self, name: &str, cert_id: &str) {
        let target = cert_arn(cert_id);
        self.ok(&["attach-policy", "--policy-name", name, "--target", &target]);
    }

    /// `detach-policy --policy-name NAME --target CERT_ARN`.
    pub(crate) fn detach_policy(&self, name: &str, cert_id: &str) {
        let target = cert_arn(cert_id);
        self.ok(&["detach-policy", "--policy-name", name, "--target", &target]);
    }

    /// Creates policy `name` with `document` and attaches it to the certificate.
    pub(crate) fn grant(&self, name: &str, document: &Value, cert_id: &str) {
        self.create_policy(name, document);
        self.attach_policy(name, cert_id);
    }

    /// `list-certificates` (the CLI pages through everything).
    pub(crate) fn list_certificates(&self) -> Vec<Value> {
        array_of(&self.ok(&["list-certificates"])["certificates"])
    }

    /// `list-certificates-by-ca --ca-certificate-id ID --page-size N`: the CLI follows
    /// `nextMarker` page by page and merges the pages.
    /// Every certificate under a CA, following `nextMarker` page by page. (The CLI does not do
    /// it for us: IoT's own `pageSize` parameter is the CLI's `--page-size` too, which makes the
    /// CLI turn its automatic pagination off.)
    pub(crate) fn list_certificates_by_ca(&self, ca_id: &str, page_size: u32) -> Vec<Value> {
        let size = page_size.to_string();
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut args = vec![
                "list-certificates-by-ca",
                "--ca-certificate-id",
                ca_id,
                "--page-size",
                &size,
            ];
            if let Some(m) = &marker {
                args.extend(["--marker", m.as_str()]);
            }
            let page = self.ok(&args);
            let items = array_of(&page["certificates"]);
            assert!(
                items.len() <= page_size as usize,
                "a page of {} for --page-size {page_size}",
                items.len()
            );
            all.extend(items);
            match page["nextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => return all,
            }
        }
    }
}

pub(crate) fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("not a JSON string: {v}"))
}

fn array_of(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {v}"))
        .clone()
}

/// What [`provision_device`] sets up once per server: a CA registered ACTIVE (auto-registration
/// off) and the allow-all policy.
pub(crate) struct Fixture {
    pub(crate) pki: Pki,
    pub(crate) ca: Ca,
    pub(crate) ca_id: String,
    /// The device the mosquitto and paho helpers present on TLS listeners.
    pub(crate) default_device: Cert,
}

impl Fixture {
    pub(crate) fn create(server: &Server, dir: &Path) -> Fixture {
        let pki = Pki::in_dir(dir);
        let aws = server.aws();
        let ca = pki.ca("fixture-ca", "/CN=Ferrule tests fixture CA", KeyAlg::EcP256);
        let ca_id = aws.register_ca(&pki, &ca, true, false);
        aws.create_policy(ALLOW_ALL_POLICY, &allow_all());
        let default_device = new_device(server, &pki, &ca, "fixture-device");
        Fixture {
            pki,
            ca,
            ca_id,
            default_device,
        }
    }
}

fn new_device(server: &Server, pki: &Pki, ca: &Ca, name: &str) -> Cert {
    let aws = server.aws();
    let cert = pki.device(name, ca, KeyAlg::EcP256);
    let id = aws.register_cert(&cert, "ACTIVE");
    aws.attach_policy(ALLOW_ALL_POLICY, &id);
    cert
}

/// A new device certificate `CN=name` under the server's fixture CA, registered ACTIVE with the
/// allow-all policy attached: what a client needs to use the `mqtts` listener freely.
pub(crate) fn provision_device(server: &Server, name: &str) -> Cert {
    let fixture = server.fixture();
    new_device(server, &fixture.pki, &fixture.ca, name)
}
