//! Just-in-time registration with a real function, end to end and with real tools only, as the
//! AWS documentation sets it up: `openssl` makes the CA, its verification certificate and the
//! device certificate; the `aws` CLI registers and activates the CA, creates the execution role
//! and its policy (`aws iam`), the function (`aws lambda create-function` with a zipped Python
//! handler that calls boto3's `attach_principal_policy` and `update_certificate`), the IoT
//! policy `JustInTime` and the topic rule on `$aws/events/certificates/registered/<caId>`;
//! then `mosquitto_pub` with the device certificate chain publishes.
//!
//! The handler runs under temporary credentials for its role and reaches the control plane
//! through `AWS_ENDPOINT_URL`, with no change to the code users run on AWS. In `--jitr-mode aws`
//! the device retries until its certificate is active; in the default `hold` mode its first
//! connection is held while the rule and the function run, and succeeds.
//!
//! A role that lacks `iot:UpdateCertificate` leaves the device pending, and the function's log
//! (`aws logs filter-log-events`) shows the AccessDeniedException of each attempt.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use common::{
    ACCOUNT, Aws, CLIENT_TIMEOUT, Ca, Cert, KeyAlg, Mqtt, Net, Pki, REGION, Server, Sub,
    all_listener_args, create_function, create_role, function_arn, function_logs, mosquitto_pub_as,
    msg, registered_topic, require_mosquitto, str_of, zip_files,
};
use serde_json::json;

/// The handler of the AWS JITR walk-through, as users deploy it to Lambda.
const JITR_HANDLER: &str = r#"import os
import boto3

def lambda_handler(event, context):
    region = os.environ['AWS_REGION']
    account_id = event['awsAccountId']
    certificate_id = event['certificateId']
    certificate_arn = 'arn:aws:iot:' + region + ':' + account_id + ':cert/' + certificate_id
    print('activating ' + certificate_id)
    iot = boto3.client('iot')
    iot.attach_principal_policy(policyName='JustInTime', principal=certificate_arn)
    iot.update_certificate(certificateId=certificate_id, newStatus='ACTIVE')
    print('activated ' + certificate_id)
    return {'certificateId': certificate_id}
"#;

/// The actions the walk-through's role allows.
const JITR_ACTIONS: &[&str] = &[
    "iot:UpdateCertificate",
    "iot:CreatePolicy",
    "iot:AttachPrincipalPolicy",
];

fn server_in(mode: &str, hold_ms: &str) -> Server {
    require_mosquitto();
    let mut args = all_listener_args();
    args.extend(
        ["--jitr-mode", mode, "--jitr-hold-ms", hold_ms]
            .iter()
            .map(OsString::from),
    );
    Server::start_with(args)
}

/// Everything but the device: CA (registered, active, auto-registration), role, function,
/// IoT policy and topic rule. Returns the CA and its id.
fn set_up(server: &Server, pki: &Pki, role_actions: &[&str]) -> (Ca, String) {
    let aws = server.aws();
    let ca = pki.ca(
        "jitr-ca",
        "/O=Ferrule functions tests/CN=jitr-ca",
        KeyAlg::EcP256,
    );
    let ca_id = aws.register_ca(pki, &ca, true, true);

    let role = create_role(&aws, "JITRRole", role_actions);
    let zip = zip_files(pki.dir(), "jitr", &[("lambda_function.py", JITR_HANDLER)]);
    let created = create_function(
        &aws,
        "jitr",
        &zip,
        "lambda_function.lambda_handler",
        &role,
        10,
        &[],
    );
    assert_eq!(created["FunctionArn"], function_arn("jitr"), "{created}");
    assert_eq!(created["Role"], role.as_str(), "{created}");
    // What the console does when a rule targets the function; Ferrule records it.
    aws.cli_ok(
        "lambda",
        &[
            "add-permission",
            "--function-name",
            "jitr",
            "--statement-id",
            "iot-jitr",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "iot.amazonaws.com",
            "--source-arn",
            &format!("arn:aws:iot:{REGION}:{ACCOUNT}:rule/JITR"),
        ],
    );

    let resource = format!("arn:aws:iot:{REGION}:{ACCOUNT}:*");
    aws.create_policy(
        "JustInTime",
        &json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["iot:Connect", "iot:Publish", "iot:UpdateThingShadow"],
                "Resource": resource
            }]
        }),
    );
    let rule = json!({
        "sql": format!("SELECT * FROM '{}'", registered_topic(&ca_id)),
        "awsIotSqlVersion": "2016-03-23",
        "ruleDisabled": false,
        "actions": [{ "lambda": { "functionArn": function_arn("jitr") } }]
    });
    aws.ok(&[
        "create-topic-rule",
        "--rule-name",
        "JITR",
        "--topic-rule-payload",
        &rule.to_string(),
    ]);
    (ca, ca_id)
}

/// The device's certificate is ACTIVE with `JustInTime` attached.
fn assert_activated(aws: &Aws, device: &Cert) {
    let d = aws.describe_certificate(&device.id());
    assert_eq!(d["status"], "ACTIVE", "{d}");
    let arn = format!("arn:aws:iot:{REGION}:{ACCOUNT}:cert/{}", device.id());
    let attached = aws.ok(&["list-attached-policies", "--target", &arn]);
    let names: Vec<&str> = attached["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_of(&p["policyName"]))
        .collect();
    assert_eq!(names, ["JustInTime"], "{attached}");
}

/// Publishes as the device (certificate followed by its CA, as JITR devices present it) until
/// the broker accepts, as a device SDK with retries would; returns the number of connections
/// and the time from the first connection to the delivery of the first accepted publish.
fn publish_until_accepted(server: &Server, chain: &Cert, app: &mut Sub) -> (u32, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = mosquitto_pub_as(
            server,
            Some(chain),
            Mqtt::V311,
            "devices/jitr/telemetry",
            "{\"temp\":21}",
            CLIENT_TIMEOUT,
        );
        if out.status.success() {
            assert_eq!(
                app.next(CLIENT_TIMEOUT),
                msg("devices/jitr/telemetry", 1, false, "{\"temp\":21}")
            );
            return (attempts, started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "the device was not accepted within 30 s ({attempts} connections); last: {out:?}\n{}",
            server.log()
        );
        // A device SDK's first back-off step.
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jitr_with_a_function_in_aws_mode_the_device_retries_until_activated() {
    let server = server_in("aws", "5000");
    let pki = Pki::new();
    let (ca, _ca_id) = set_up(&server, &pki, JITR_ACTIONS);
    let device = pki.device("jitr-device", &ca, KeyAlg::EcP256);
    let chain = pki.chain_file(&device, &ca);
    let mut app = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["devices/#"], &[]);

    let (attempts, took) = publish_until_accepted(&server, &chain, &mut app);
    assert!(
        attempts >= 2,
        "aws mode refuses the registering connection, yet the first publish was accepted"
    );
    eprintln!(
        "jitr-mode aws: first connect -> first accepted publish delivered: {} ms ({attempts} connections)",
        took.as_millis()
    );
    let aws = server.aws();
    assert_activated(&aws, &device);
    // Every connection while the certificate was pending published the event again, as on AWS,
    // so the function ran once or more; it is idempotent.
    let logs = function_logs(&aws, "jitr", "activated", 1, CLIENT_TIMEOUT);
    assert!(!logs.is_empty());
    assert!(
        logs.iter()
            .all(|l| l == &format!("activated {}", device.id())),
        "{logs:?}"
    );
}

#[test]
fn jitr_with_a_function_in_hold_mode_the_first_connection_succeeds() {
    let server = server_in("hold", "10000");
    let pki = Pki::new();
    let (ca, _ca_id) = set_up(&server, &pki, JITR_ACTIONS);
    let device = pki.device("jitr-device", &ca, KeyAlg::EcP256);
    let chain = pki.chain_file(&device, &ca);
    let mut app = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["devices/#"], &[]);

    let (attempts, took) = publish_until_accepted(&server, &chain, &mut app);
    assert_eq!(attempts, 1, "hold mode should accept the first connection");
    eprintln!(
        "jitr-mode hold: first connect -> first accepted publish delivered: {} ms",
        took.as_millis()
    );
    let aws = server.aws();
    assert_activated(&aws, &device);
    // Logs: the invocation's START/END/REPORT lines and the handler's prints.
    let all = function_logs(&aws, "jitr", "", 4, CLIENT_TIMEOUT);
    assert!(
        all.iter().any(|l| l.starts_with("START RequestId:")),
        "{all:?}"
    );
    assert!(
        all.iter().any(|l| l.starts_with("REPORT RequestId:")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|l| l.contains(&format!("activating {}", device.id()))),
        "{all:?}"
    );
}

#[test]
fn a_role_without_update_certificate_leaves_the_device_pending_and_the_denial_is_logged() {
    // A short hold: the device is refused once the hold runs out.
    let server = server_in("hold", "1500");
    let pki = Pki::new();
    let (ca, _ca_id) = set_up(
        &server,
        &pki,
        &["iot:CreatePolicy", "iot:AttachPrincipalPolicy"],
    );
    let device = pki.device("denied-device", &ca, KeyAlg::EcP256);
    let chain = pki.chain_file(&device, &ca);

    let out = mosquitto_pub_as(
        &server,
        Some(&chain),
        Mqtt::V311,
        "devices/denied",
        "x",
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "{out:?}");
    let aws = server.aws();
    // Lambda retries a failed asynchronous invocation twice: three attempts, each denied, each
    // reported by the runtime as `[ERROR] ClientError: ...`, and the runtime's retry lines.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (lines, denied) = loop {
        let lines = function_logs(&aws, "jitr", "AccessDeniedException", 1, CLIENT_TIMEOUT);
        let denied: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("[ERROR] ClientError"))
            .cloned()
            .collect();
        if denied.len() >= 3 || Instant::now() >= deadline {
            break (lines, denied);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(denied.len(), 3, "{lines:?}");
    for line in &denied {
        assert!(
            line.contains("when calling the UpdateCertificate operation: User: arn:aws:sts::123456789012:assumed-role/JITRRole/jitr is not authorized to perform: iot:UpdateCertificate"),
            "{line}"
        );
    }
    let retries = lines.iter().filter(|l| l.contains("retrying in")).count();
    assert_eq!(retries, 2, "{lines:?}");
    let d = aws.describe_certificate(&device.id());
    assert_eq!(d["status"], "PENDING_ACTIVATION", "{d}");
}
