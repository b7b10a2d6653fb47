//! `ferrule demo`: the whole just-in-time registration (JITR) workflow in one command, for a
//! newcomer's first run.
//!
//! It starts Ferrule in this process on free loopback ports with a temporary data dir, then
//! does what an operator and a device do on AWS IoT, step by step, through the same public
//! interfaces: the control-plane API (SigV4-signed HTTP, as the aws CLI), MQTT over TLS with a
//! device certificate, and plain MQTT for a subscriber. The CA is registered with
//! auto-registration; a topic rule on the CA's registration event runs a Python function (the
//! handler of the AWS JITR walk-through, run by the real function service with its role's
//! credentials) that attaches the `JustInTime` policy and activates the certificate while the
//! device's first CONNECT is held; the device then publishes and the subscriber receives it.
//!
//! Each step prints its result and time and is bounded by a timeout; a failed step ends the
//! run with a non-zero exit. The data dir is removed at the end unless `--keep` is given.

mod api;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use self::api::{Api, percent_encode};
use crate::control::{Client, xml_text};
use crate::mqtt_client as mqtt;
use crate::pki_cmd::{KeyKind, LoadedCa, create_ca};
use crate::serve::{self, Running};
use crate::settings::{JitrMode, ServeArgs, Settings};

/// `ferrule demo` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Keep the temporary data dir (database, function logs, certificates) and print its path.
    #[arg(long)]
    keep: bool,
}

/// The steps, in order; the numbers printed are positions in this list.
const STEPS: &[&str] = &[
    "Start Ferrule in-process on free loopback ports",
    "Create a CA (EC P-256), as `ferrule ca create` does",
    "Register the CA with proof of possession, active, auto-registration on",
    "Create the IoT policy JustInTime",
    "Create the function's execution role JITRRole",
    "Create the function jitr (Python, boto3)",
    "Create the topic rule JITR on the CA's registration event",
    "Issue a device certificate signed by the CA, as `ferrule device issue` does",
    "Subscribe to devices/# on the plain MQTT listener",
    "Device's first connection (MQTT over TLS, held while JITR runs)",
    "Check the device certificate: ACTIVE with JustInTime attached",
    "Device publishes at QoS 1; the subscriber receives it",
    "Stop Ferrule",
];

/// How long a device's first connection is held for its certificate's activation.
const JITR_HOLD_MS: u64 = 30_000;

/// Bounds of the steps.
const QUICK: Duration = Duration::from_secs(15);
const FUNCTION_STEP: Duration = Duration::from_secs(30);
const DEVICE_STEP: Duration = Duration::from_millis(JITR_HOLD_MS + 10_000);

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const DEVICE: &str = "demo-device";
const TOPIC: &str = "devices/demo-device/telemetry";
const PAYLOAD: &str = "{\"temperature\":21.5}";

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

/// Runs the demo; an error names the step that failed.
pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    init_logging()?;
    let root = tempfile::Builder::new()
        .prefix("ferrule-demo-")
        .tempdir()
        .context("creating a temporary data dir")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    println!("Ferrule demo: just-in-time registration of a device, end to end, in this process.");
    println!("Data dir: {}", root.path().display());
    println!();
    let result = runtime.block_on(demo(root.path()));
    runtime.shutdown_timeout(Duration::from_secs(2));
    if args.keep {
        let kept = root.keep();
        println!("Kept the data dir: {}", kept.display());
        println!(
            "  data/ is the server's data dir (database, credentials, function logs): \
             `ferrule serve --data-dir {}` serves it again; ca/ and device/ hold the demo's CA \
             and device, as `ferrule ca create` and `ferrule device issue` write them",
            kept.join("data").display()
        );
    } else {
        let path = root.path().to_owned();
        root.close()
            .with_context(|| format!("removing the data dir {}", path.display()))?;
    }
    result
}

/// Warnings only, to stderr, so the steps stay readable. The warning that anonymous clients
/// have full access is left out: the demo's subscriber is one, on loopback, on purpose.
fn init_logging() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new("warn,ferrule_broker::auth=error")
        .map_err(|e| anyhow!("log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow!("setting up logging: {e}"))
}

/// Prints steps and their times.
struct Steps {
    next: usize,
    began: Instant,
}

impl Steps {
    /// Runs step `self.next` (its title from [`STEPS`]) bounded by `limit`: prints its line,
    /// a dot every half second while it runs, then `ok` or `FAILED` with its time and detail.
    async fn run<T>(
        &mut self,
        limit: Duration,
        work: impl Future<Output = anyhow::Result<(T, String)>>,
    ) -> anyhow::Result<T> {
        let index = self.next;
        self.next += 1;
        let title = STEPS.get(index).copied().unwrap_or("?");
        let label = format!("[{}/{}] {title}", index + 1, STEPS.len());
        print!("{label} ... ");
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        let bounded = tokio::time::timeout(limit, work);
        tokio::pin!(bounded);
        let mut dots = false;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_millis(500),
            Duration::from_millis(500),
        );
        let outcome = loop {
            tokio::select! {
                outcome = &mut bounded => break outcome,
                _ = tick.tick() => {
                    dots = true;
                    print!(".");
                    let _ = std::io::stdout().flush();
                }
            }
        };
        let took = started.elapsed();
        if dots {
            print!(" ");
        }
        let outcome = match outcome {
            Ok(result) => result,
            Err(_) => Err(anyhow!("did not finish within {} s", limit.as_secs())),
        };
        match outcome {
            Ok((value, detail)) => {
                println!("ok  {}", millis(took));
                if !detail.is_empty() {
                    println!("      {detail}");
                }
                Ok(value)
            }
            Err(e) => {
                println!("FAILED  {}", millis(took));
                println!("      {e:#}");
                Err(e.context(format!(
                    "step {}/{} failed: {title}",
                    index + 1,
                    STEPS.len()
                )))
            }
        }
    }
}

/// What the summary reports.
struct Timings {
    connack: Duration,
    received: Duration,
}

async fn demo(dir: &Path) -> anyhow::Result<()> {
    let mut steps = Steps {
        next: 0,
        began: Instant::now(),
    };
    let data_dir = dir.join("data");
    let running = steps
        .run(QUICK, async {
            let running = start(&data_dir).await?;
            let detail = running
                .bound
                .iter()
                .map(|(k, a)| format!("{k} {a}"))
                .collect::<Vec<_>>()
                .join(", ");
            Ok((running, detail))
        })
        .await?;
    let result = workflow(&mut steps, &running, &data_dir, dir).await;
    // The server stops whatever happened; the last step's number is always the same.
    steps.next = STEPS.len() - 1;
    let stopped = steps
        .run(QUICK, async {
            running.stop().await;
            Ok(((), String::new()))
        })
        .await;
    let timings = result?;
    stopped?;
    let total = steps.began.elapsed();
    println!();
    println!(
        "All {} steps passed in {:.1} s.",
        STEPS.len(),
        total.as_secs_f64()
    );
    println!(
        "  device first CONNECT -> CONNACK:          {:>6} ms  (held until the function activated the certificate)",
        timings.connack.as_millis()
    );
    println!(
        "  device first CONNECT -> message received: {:>6} ms",
        timings.received.as_millis()
    );
    Ok(())
}

/// Starts Ferrule on port-0 loopback listeners (MQTT over TLS, plain MQTT, API) in `data_dir`,
/// in hold mode.
async fn start(data_dir: &Path) -> anyhow::Result<Running> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let settings = Settings::resolve(ServeArgs {
        data_dir: Some(data_dir.to_owned()),
        mqtts_listen: Some(any),
        mqtt_listen: Some(any),
        api_listen: Some(any),
        region: Some(REGION.into()),
        account_id: Some(ACCOUNT.into()),
        jitr_mode: Some(JitrMode::Hold),
        jitr_hold_ms: Some(JITR_HOLD_MS),
        ..ServeArgs::default()
    })?;
    serve::start(settings).await
}

async fn workflow(
    steps: &mut Steps,
    running: &Running,
    data_dir: &Path,
    scratch: &Path,
) -> anyhow::Result<Timings> {
    let api_addr = running
        .addr("api")
        .context("the API listener is not bound")?;
    let mqtts = running
        .addr("mqtts")
        .context("the mqtts listener is not bound")?;
    let mqtt = running
        .addr("mqtt")
        .context("the mqtt listener is not bound")?;
    // The admin credentials `serve` generated into the data dir, as `ferrule ca register
    // --data-dir` uses them.
    let api = Api::new(Client::new(
        &format!("http://{api_addr}"),
        Some(data_dir),
        Some(REGION),
    )?);

    // The CA.
    let ca = steps
        .run(QUICK, async {
            // As `ferrule ca create --out DIR` makes it.
            let dir = scratch.join("ca");
            let cert = create_ca(
                &dir,
                KeyKind::EcP256,
                time::Duration::days(1),
                "Ferrule demo CA",
            )?;
            let ca = LoadedCa::load(&dir)?;
            let id = cert.id.into_string();
            let detail = format!("{}, certificate id {id}", cert.subject);
            Ok(((ca, id), detail))
        })
        .await?;
    let (ca, ca_id) = ca;

    steps
        .run(QUICK, async {
            let code = api
                .json("iot", "GET", "/registrationcode", None, None)
                .await?;
            let code = code["registrationCode"]
                .as_str()
                .context("GetRegistrationCode answered without a registrationCode")?
                .to_owned();
            // Proof of possession: a certificate whose CN is the code, signed by the CA's key.
            let verification = ca.verification_certificate(&code)?.cert_pem;
            let out = api
                .json(
                    "iot",
                    "POST",
                    "/cacertificate",
                    Some("allowAutoRegistration=true&setAsActive=true"),
                    Some(&json!({
                        "caCertificate": ca.cert_pem,
                        "verificationCertificate": verification,
                    })),
                )
                .await?;
            let id = str_field(&out, "certificateId")?;
            if id != ca_id {
                bail!("RegisterCACertificate answered id {id}, expected {ca_id}");
            }
            let d = api
                .json("iot", "GET", &format!("/cacertificate/{ca_id}"), None, None)
                .await?;
            let d = &d["certificateDescription"];
            Ok((
                (),
                format!(
                    "registration code {code}; {} ({}, auto-registration {})",
                    str_field(d, "certificateArn")?,
                    str_field(d, "status")?,
                    str_field(d, "autoRegistrationStatus")?
                ),
            ))
        })
        .await?;

    steps
        .run(QUICK, async {
            let document = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["iot:Connect", "iot:Publish", "iot:UpdateThingShadow"],
                    "Resource": format!("arn:aws:iot:{REGION}:{ACCOUNT}:*"),
                }]
            });
            let out = api
                .json(
                    "iot",
                    "POST",
                    "/policies/JustInTime",
                    None,
                    Some(&json!({ "policyDocument": document.to_string() })),
                )
                .await?;
            Ok(((), str_field(&out, "policyArn")?.to_owned()))
        })
        .await?;

    let role_arn = steps
        .run(QUICK, async {
            let trust = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "lambda.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }]
            });
            let created = api
                .iam(
                    "CreateRole",
                    &[
                        ("RoleName", "JITRRole"),
                        ("AssumeRolePolicyDocument", &trust.to_string()),
                    ],
                )
                .await?;
            let arn = xml_text(&created, "Arn")
                .context("CreateRole answered without the role's Arn")?
                .to_owned();
            let allowed = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["iot:UpdateCertificate", "iot:CreatePolicy", "iot:AttachPrincipalPolicy"],
                    "Resource": "*"
                }]
            });
            api.iam(
                "PutRolePolicy",
                &[
                    ("RoleName", "JITRRole"),
                    ("PolicyName", "JITRRole-policy"),
                    ("PolicyDocument", &allowed.to_string()),
                ],
            )
            .await?;
            Ok((
                arn.clone(),
                format!("{arn}, allowed iot:AttachPrincipalPolicy and iot:UpdateCertificate"),
            ))
        })
        .await?;

    let function_arn = steps
        .run(FUNCTION_STEP, async {
            check_python().await?;
            let zip = handler_zip()?;
            let out = api
                .json(
                    "lambda",
                    "POST",
                    "/2015-03-31/functions",
                    None,
                    Some(&json!({
                        "FunctionName": "jitr",
                        "Runtime": "python3.11",
                        "Role": role_arn,
                        "Handler": "lambda_function.lambda_handler",
                        "Code": { "ZipFile": ferrule_sql::base64_encode(&zip) },
                        "Timeout": 10,
                    })),
                )
                .await?;
            let arn = str_field(&out, "FunctionArn")?.to_owned();
            Ok((
                arn.clone(),
                format!(
                    "{arn} ({}, handler from the AWS JITR walk-through, {} byte zip)",
                    out["State"].as_str().unwrap_or("created"),
                    zip.len()
                ),
            ))
        })
        .await?;

    steps
        .run(QUICK, async {
            let topic = format!("$aws/events/certificates/registered/{ca_id}");
            api.json(
                "iot",
                "POST",
                "/rules/JITR",
                None,
                Some(&json!({
                    "sql": format!("SELECT * FROM '{topic}'"),
                    "awsIotSqlVersion": "2016-03-23",
                    "ruleDisabled": false,
                    "actions": [{ "lambda": { "functionArn": function_arn } }]
                })),
            )
            .await?;
            let rule = api.json("iot", "GET", "/rules/JITR", None, None).await?;
            Ok((
                (),
                format!("{} -> {function_arn}", str_field(&rule, "ruleArn")?),
            ))
        })
        .await?;

    let device = steps
        .run(QUICK, async {
            // As `ferrule device issue --ca DIR --name demo-device` makes it.
            let issued = ca.issue_device(DEVICE, KeyKind::EcP256, time::Duration::days(1))?;
            // What a JITR device presents: its certificate, then its CA's.
            let chain = format!("{}{}", issued.cert_pem, ca.cert_pem);
            let dir = scratch.join("device");
            std::fs::create_dir_all(&dir).context("creating the device dir")?;
            for (file, contents) in [
                (format!("{DEVICE}.pem"), &issued.cert_pem),
                (format!("{DEVICE}-chain.pem"), &chain),
                (format!("{DEVICE}.key"), &issued.key_pem),
            ] {
                std::fs::write(dir.join(&file), contents)
                    .with_context(|| format!("writing {file}"))?;
            }
            let detail = format!(
                "CN={DEVICE}, certificate id {} (not registered yet)",
                issued.id
            );
            Ok(((chain, issued.key_pem, issued.id), detail))
        })
        .await?;
    let (chain, key_pem, device_id) = device;

    let mut subscriber = steps
        .run(QUICK, async {
            let mut sub = mqtt::tcp(mqtt).await?;
            sub.connect("demo-subscriber").await?;
            sub.subscribe(&["devices/#"]).await?;
            Ok((sub, format!("demo-subscriber on {mqtt}, granted QoS 1")))
        })
        .await?;

    let (mut device, first_connect, connack) = steps
        .run(DEVICE_STEP, async {
            let server_ca = std::fs::read(data_dir.join("server-ca.pem"))
                .context("reading the server CA (server-ca.pem)")?;
            let config = mqtt::tls_config(&server_ca, &chain, &key_pem)?;
            let mut device = mqtt::tls(mqtts, config).await?;
            // The TLS handshake is done: the clock starts with the CONNECT.
            let first_connect = Instant::now();
            device.connect(DEVICE).await?;
            let held = first_connect.elapsed();
            Ok((
                (device, first_connect, held),
                format!(
                    "CONNACK accepted {} ms after CONNECT: the certificate was registered \
                     PENDING_ACTIVATION, the rule ran the function, which activated it",
                    held.as_millis()
                ),
            ))
        })
        .await?;

    steps
        .run(QUICK, async {
            let d = api
                .json(
                    "iot",
                    "GET",
                    &format!("/certificates/{device_id}"),
                    None,
                    None,
                )
                .await?;
            let status = str_field(&d["certificateDescription"], "status")?.to_owned();
            let arn = format!("arn:aws:iot:{REGION}:{ACCOUNT}:cert/{device_id}");
            let attached = api
                .json(
                    "iot",
                    "POST",
                    &format!("/attached-policies/{}", percent_encode(&arn)),
                    None,
                    None,
                )
                .await?;
            let names: Vec<&str> = attached["policies"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p["policyName"].as_str()).collect())
                .unwrap_or_default();
            if status != "ACTIVE" || names != ["JustInTime"] {
                bail!("the certificate is {status} with policies {names:?}");
            }
            Ok((
                (),
                format!("{status}, policies attached: {}", names.join(", ")),
            ))
        })
        .await?;

    let received = steps
        .run(QUICK, async {
            device.publish_qos1(TOPIC, PAYLOAD.as_bytes()).await?;
            let (topic, payload) = subscriber.next_message().await?;
            let received = first_connect.elapsed();
            if topic != TOPIC || payload.as_ref() != PAYLOAD.as_bytes() {
                bail!(
                    "the subscriber received {topic} {:?}, expected {TOPIC} {PAYLOAD}",
                    String::from_utf8_lossy(&payload)
                );
            }
            Ok((
                received,
                format!("PUBACK; demo-subscriber received {topic} {PAYLOAD}"),
            ))
        })
        .await?;
    device.disconnect().await;
    subscriber.disconnect().await;
    Ok(Timings { connack, received })
}

/// The function service runs Python handlers with `python3`, and the handler imports boto3.
async fn check_python() -> anyhow::Result<()> {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new("python3")
            .args(["-c", "import boto3"])
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .context("checking python3")?;
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "python3 is not on PATH: the function service runs Python handlers with python3. \
             Install Python 3 and boto3 (e.g. `apt install python3 python3-boto3` or \
             `pip install boto3`), then run the demo again"
        ),
        Err(e) => bail!("python3 could not be run: {e}"),
        Ok(o) if !o.status.success() => bail!(
            "python3 cannot import boto3, which the JITR handler uses: {}. Install it \
             (e.g. `pip install boto3`), then run the demo again",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("no error output")
        ),
        Ok(_) => Ok(()),
    }
}

/// `lambda_function.py` in a zip (stored, uncompressed), as `zip` would make it.
fn handler_zip() -> anyhow::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(
            "lambda_function.py",
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored),
        )
        .context("zipping the handler")?;
    writer
        .write_all(JITR_HANDLER.as_bytes())
        .context("zipping the handler")?;
    Ok(writer.finish().context("zipping the handler")?.into_inner())
}

/// `12 ms`, or `0.4 ms` below ten.
fn millis(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn str_field<'a>(v: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    v[name]
        .as_str()
        .with_context(|| format!("the answer has no {name}: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_zip_holds_the_handler() {
        let zip = handler_zip().unwrap_or_else(|e| panic!("{e}"));
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap_or_else(|e| panic!("{e}"));
        let mut file = archive
            .by_name("lambda_function.py")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, JITR_HANDLER);
    }
}
