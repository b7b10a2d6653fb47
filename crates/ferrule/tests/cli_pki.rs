//! `ferrule ca create`, `ferrule ca register` and `ferrule device issue`, run as the built
//! binary and checked with real tools: `openssl x509 -text` and `openssl verify` read what they
//! write, the aws CLI describes what `ca register` registered, and `mosquitto_pub` presents an
//! issued device's chain file to a running server, which JIT-registers it.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{
    CLIENT_TIMEOUT, Cert, Events, KeyAlg, Mqtt, Pki, Server, all_listener_args, allow_all,
    cert_info, certificate_id, ferrule_bin, mosquitto_pub_as, openssl_in, registered_topic,
    require_mosquitto, run, str_of,
};

/// Bound on one `ferrule` command (RSA key generation in a debug build takes a while).
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// `ferrule ARGS` with no AWS settings inherited from the environment, plus `env`.
fn ferrule_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ferrule_bin());
    cmd.args(args);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    run(&mut cmd, CMD_TIMEOUT)
}

/// `ferrule ARGS` that must succeed; returns stdout and stderr.
fn ferrule_ok(args: &[&str]) -> (String, String) {
    let out = ferrule_env(args, &[]);
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success(),
        "ferrule {} failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        out.status
    );
    (stdout, stderr)
}

/// `ferrule ARGS` (with `env`) that must fail with one clear error line; returns that line.
fn ferrule_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = ferrule_env(args, env);
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ferrule {} should fail with exit code 1:\n{stdout}\n{stderr}",
        args.join(" ")
    );
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one error line: {stderr}");
    assert!(lines[0].starts_with("ferrule: error: "), "{stderr}");
    lines[0].to_owned()
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// `openssl x509 -in FILE -noout -text`.
fn x509_text(file: &Path) -> String {
    openssl_in(
        file.parent().unwrap(),
        &["x509", "-in", &path_str(file), "-noout", "-text"],
    )
}

/// `openssl verify -CAfile CA FILE` must say OK.
fn assert_verifies(ca: &Path, cert: &Path) {
    let out = openssl_in(
        cert.parent().unwrap(),
        &["verify", "-CAfile", &path_str(ca), &path_str(cert)],
    );
    assert!(out.trim().ends_with(": OK"), "openssl verify: {out}");
}

/// The public key of a certificate and of a private key, as openssl prints them, must match.
fn assert_key_matches(cert: &Path, key: &Path) {
    let dir = cert.parent().unwrap();
    let from_cert = openssl_in(dir, &["x509", "-in", &path_str(cert), "-noout", "-pubkey"]);
    let from_key = openssl_in(dir, &["pkey", "-in", &path_str(key), "-pubout"]);
    assert_eq!(
        from_cert,
        from_key,
        "{} and {}",
        cert.display(),
        key.display()
    );
}

/// `openssl x509 -checkend SECONDS`: whether the certificate is still valid then.
fn valid_in(cert: &Path, seconds: u64) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-in", &path_str(cert), "-noout", "-checkend"])
        .arg(seconds.to_string());
    run(&mut cmd, CLIENT_TIMEOUT).status.success()
}

const DAY: u64 = 86_400;

#[test]
fn ca_create_and_device_issue_make_certificates_openssl_verifies_with_both_key_types() {
    let dir = tempfile::tempdir().unwrap();
    for (ca_kind, device_kind) in [("ec-p256", "rsa2048"), ("rsa2048", "ec-p256")] {
        let ca_dir = dir.path().join(format!("ca-{ca_kind}"));
        let cn = format!("Test CA {ca_kind}");
        let (stdout, _) = ferrule_ok(&[
            "ca",
            "create",
            "--out",
            &path_str(&ca_dir),
            "--key-type",
            ca_kind,
            "--days",
            "30",
            "--name",
            &cn,
        ]);
        let ca_pem = ca_dir.join("ca.pem");
        let ca_key = ca_dir.join("ca.key");
        assert!(stdout.contains(&certificate_id(&ca_pem)), "{stdout}");
        assert_eq!(mode(&ca_key), 0o600);
        let text = x509_text(&ca_pem);
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign"), "{text}");
        assert!(
            text.contains(&format!("Subject: CN={cn}"))
                || text.contains(&format!("Subject: CN = {cn}")),
            "{text}"
        );
        let key_text = match ca_kind {
            "rsa2048" => "Public-Key: (2048 bit)",
            _ => "prime256v1",
        };
        assert!(text.contains(key_text), "{ca_kind}: {text}");
        assert_key_matches(&ca_pem, &ca_key);
        assert_verifies(&ca_pem, &ca_pem);
        assert!(valid_in(&ca_pem, 29 * DAY) && !valid_in(&ca_pem, 31 * DAY));

        let out = dir.path().join(format!("devices-{ca_kind}"));
        let name = format!("sensor-{device_kind}");
        let (stdout, _) = ferrule_ok(&[
            "device",
            "issue",
            "--ca",
            &path_str(&ca_dir),
            "--name",
            &name,
            "--out",
            &path_str(&out),
            "--days",
            "7",
            "--key-type",
            device_kind,
        ]);
        let pem = out.join(format!("{name}.pem"));
        let key = out.join(format!("{name}.key"));
        let chain = out.join(format!("{name}-chain.pem"));
        assert!(stdout.contains(&certificate_id(&pem)), "{stdout}");
        assert_eq!(mode(&key), 0o600);
        assert_verifies(&ca_pem, &pem);
        assert_key_matches(&pem, &key);
        let text = x509_text(&pem);
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        assert!(
            text.contains(&format!("Subject: CN={name}"))
                || text.contains(&format!("Subject: CN = {name}")),
            "{text}"
        );
        let key_text = match device_kind {
            "rsa2048" => "Public-Key: (2048 bit)",
            _ => "prime256v1",
        };
        assert!(text.contains(key_text), "{device_kind}: {text}");
        assert!(valid_in(&pem, 6 * DAY) && !valid_in(&pem, 8 * DAY));
        // The chain: the device certificate, then the CA certificate.
        assert_eq!(read(&chain), format!("{}{}", read(&pem), read(&ca_pem)));
    }
}

#[test]
fn existing_files_are_never_overwritten_and_bad_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let ca = path_str(&ca_dir);
    ferrule_ok(&["ca", "create", "--out", &ca]);
    let key_before = read(&ca_dir.join("ca.key"));
    let line = ferrule_fails(&["ca", "create", "--out", &ca], &[]);
    assert!(line.contains(&path_str(&ca_dir.join("ca.key"))), "{line}");
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(read(&ca_dir.join("ca.key")), key_before);

    let out = path_str(&dir.path().join("devices"));
    ferrule_ok(&["device", "issue", "--ca", &ca, "--name", "d", "--out", &out]);
    let device_key = dir.path().join("devices/d.key");
    let device_key_before = read(&device_key);
    let line = ferrule_fails(
        &["device", "issue", "--ca", &ca, "--name", "d", "--out", &out],
        &[],
    );
    assert!(line.contains(&path_str(&device_key)), "{line}");
    assert_eq!(read(&device_key), device_key_before);
    // A batch that would overwrite one file writes none.
    ferrule_ok(&[
        "device", "issue", "--ca", &ca, "--name", "e", "--out", &out, "--count", "2",
    ]);
    let devices = dir.path().join("devices");
    for f in ["e-1.key", "e-1.pem", "e-1-chain.pem"] {
        std::fs::remove_file(devices.join(f)).unwrap();
    }
    let line = ferrule_fails(
        &[
            "device", "issue", "--ca", &ca, "--name", "e", "--out", &out, "--count", "2",
        ],
        &[],
    );
    assert!(
        line.contains("e-2.key") && line.contains("already exists"),
        "{line}"
    );
    assert!(
        !devices.join("e-1.key").exists(),
        "a refused batch wrote e-1.key"
    );

    // No CA there.
    let missing = path_str(&dir.path().join("nowhere"));
    let line = ferrule_fails(
        &[
            "device", "issue", "--ca", &missing, "--name", "x", "--out", &out,
        ],
        &[],
    );
    assert!(
        line.contains("nowhere/ca.pem") && line.contains("does not exist"),
        "{line}"
    );
    // Not PEM.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("ca.pem"), "hello\n").unwrap();
    std::fs::copy(ca_dir.join("ca.key"), bad.join("ca.key")).unwrap();
    let line = ferrule_fails(
        &[
            "device",
            "issue",
            "--ca",
            &path_str(&bad),
            "--name",
            "x",
            "--out",
            &out,
        ],
        &[],
    );
    assert!(line.contains("bad/ca.pem"), "{line}");
    // A key from another CA.
    let other = dir.path().join("other");
    ferrule_ok(&["ca", "create", "--out", &path_str(&other)]);
    std::fs::write(bad.join("ca.pem"), read(&other.join("ca.pem"))).unwrap();
    let line = ferrule_fails(
        &[
            "device",
            "issue",
            "--ca",
            &path_str(&bad),
            "--name",
            "x",
            "--out",
            &out,
        ],
        &[],
    );
    assert!(line.contains("does not belong"), "{line}");
    // A key that is not a key.
    std::fs::write(bad.join("ca.key"), "not a key\n").unwrap();
    let line = ferrule_fails(
        &[
            "device",
            "issue",
            "--ca",
            &path_str(&bad),
            "--name",
            "x",
            "--out",
            &out,
        ],
        &[],
    );
    assert!(line.contains("bad/ca.key"), "{line}");
    // A device certificate is not a CA.
    let leaf = dir.path().join("leaf");
    std::fs::create_dir(&leaf).unwrap();
    std::fs::copy(dir.path().join("devices/d.pem"), leaf.join("ca.pem")).unwrap();
    std::fs::copy(&device_key, leaf.join("ca.key")).unwrap();
    let line = ferrule_fails(
        &[
            "device",
            "issue",
            "--ca",
            &path_str(&leaf),
            "--name",
            "x",
            "--out",
            &out,
        ],
        &[],
    );
    assert!(line.contains("not a CA certificate"), "{line}");
    // Names that are not file names.
    let line = ferrule_fails(
        &[
            "device", "issue", "--ca", &ca, "--name", "../x", "--out", &out,
        ],
        &[],
    );
    assert!(line.contains("invalid device name"), "{line}");

    // Endpoints: https, and nothing listening.
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let line = ferrule_fails(
        &[
            "ca",
            "register",
            "--ca",
            &ca,
            "--endpoint",
            "https://127.0.0.1:1",
        ],
        &creds,
    );
    assert!(line.contains("https"), "{line}");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = format!("http://{closed}");
    let line = ferrule_fails(
        &["ca", "register", "--ca", &ca, "--endpoint", &endpoint],
        &creds,
    );
    assert!(line.contains("cannot reach the API at"), "{line}");
    // No credentials anywhere (HOME without ~/.aws).
    let home = path_str(dir.path());
    let line = ferrule_fails(
        &["ca", "register", "--ca", &ca, "--endpoint", &endpoint],
        &[("HOME", &home)],
    );
    assert!(line.contains("no credentials found"), "{line}");
    let line = ferrule_fails(
        &[
            "ca",
            "register",
            "--ca",
            &ca,
            "--endpoint",
            &endpoint,
            "--data-dir",
            &home,
        ],
        &[],
    );
    assert!(
        line.contains("credentials") && line.contains("does not exist"),
        "{line}"
    );
}

#[test]
fn count_issues_numbered_devices_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ferrule_ok(&["ca", "create", "--out", &path_str(&ca_dir)]);
    let out = dir.path().join("fleet");
    let (stdout, stderr) = ferrule_ok(&[
        "device",
        "issue",
        "--ca",
        &path_str(&ca_dir),
        "--name",
        "unit",
        "--out",
        &path_str(&out),
        "--count",
        "3",
    ]);
    assert!(stderr.contains("3/3"), "no progress line: {stderr}");
    let mut ids = Vec::new();
    for i in 1..=3 {
        let pem = out.join(format!("unit-{i}.pem"));
        assert_verifies(&ca_dir.join("ca.pem"), &pem);
        assert_key_matches(&pem, &out.join(format!("unit-{i}.key")));
        assert!(out.join(format!("unit-{i}-chain.pem")).is_file());
        let id = certificate_id(&pem);
        assert!(stdout.contains(&format!("unit-{i} {id}")), "{stdout}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(!out.join("unit.pem").exists() && !out.join("unit-4.pem").exists());
}

#[test]
fn registered_ca_auto_registers_a_device_presenting_its_chain_file() {
    require_mosquitto();
    let mut args = all_listener_args();
    args.extend(["--jitr-mode".into(), "aws".into()]);
    let server = Server::start_with(args);
    let aws = server.aws();
    let endpoint = format!("http://{}", server.api());
    let data_dir = path_str(server.data_dir());
    let scratch = server.scratch();
    let ca_dir = scratch.join("ca");
    let ca = path_str(&ca_dir);
    ferrule_ok(&["ca", "create", "--out", &ca, "--name", "JITR CA"]);

    let (stdout, _) = ferrule_ok(&[
        "ca",
        "register",
        "--ca",
        &ca,
        "--endpoint",
        &endpoint,
        "--activate",
        "--auto-registration",
        "--data-dir",
        &data_dir,
    ]);
    let ca_id = certificate_id(&ca_dir.join("ca.pem"));
    assert_eq!(read(&ca_dir.join("ca-id")).trim(), ca_id);
    assert!(stdout.contains(&ca_id), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "arn:aws:iot:us-east-1:123456789012:cacert/{ca_id}"
        )),
        "{stdout}"
    );
    let d = aws.ok(&["describe-ca-certificate", "--certificate-id", &ca_id]);
    let d = &d["certificateDescription"];
    assert_eq!(d["status"], "ACTIVE", "{d}");
    assert_eq!(d["autoRegistrationStatus"], "ENABLE", "{d}");
    assert_eq!(
        str_of(&d["certificatePem"]).trim(),
        read(&ca_dir.join("ca.pem")).trim()
    );

    // Registering it again is the service's error, passed on.
    let line = ferrule_fails(
        &[
            "ca",
            "register",
            "--ca",
            &ca,
            "--endpoint",
            &endpoint,
            "--data-dir",
            &data_dir,
        ],
        &[],
    );
    assert!(
        line.contains("error: ResourceAlreadyExistsException: "),
        "{line}"
    );

    // A device issued by `ferrule device issue` presents its chain file: JIT-registered
    // PENDING_ACTIVATION, and (aws mode) its first connection is closed.
    let devices = scratch.join("devices");
    ferrule_ok(&[
        "device",
        "issue",
        "--ca",
        &ca,
        "--name",
        "jitr-device",
        "--out",
        &path_str(&devices),
    ]);
    let device = Cert {
        name: "jitr-device".into(),
        cert: devices.join("jitr-device-chain.pem"),
        key: devices.join("jitr-device.key"),
    };
    let device_id = certificate_id(&devices.join("jitr-device.pem"));
    assert_eq!(
        device.id(),
        device_id,
        "the chain file starts with the device"
    );
    let mut events = Events::start(&server);
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "cli/first",
        "1",
        CLIENT_TIMEOUT,
    );
    assert!(
        !out.status.success(),
        "the first connection was accepted: {out:?}"
    );
    let topic = registered_topic(&ca_id);
    let event = events.next("the registered event", CLIENT_TIMEOUT, |e| {
        e.topic == topic && e.body["certificateId"] == device_id.as_str()
    });
    assert_eq!(event.body["certificateStatus"], "PENDING_ACTIVATION");
    let d = aws.describe_certificate(&device_id);
    assert_eq!(d["status"], "PENDING_ACTIVATION", "{d}");
    assert_eq!(d["caCertificateId"], ca_id.as_str(), "{d}");

    // Activated, with a policy, the same files publish.
    aws.update_certificate(&device_id, "ACTIVE");
    aws.create_policy("cli-allow-all", &allow_all());
    aws.attach_policy("cli-allow-all", &device_id);
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V5,
        "cli/second",
        "2",
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "publish after activation: {out:?}");

    // Without the flags: INACTIVE, auto-registration DISABLE. Credentials from the
    // environment this time.
    let credentials = read(&server.data_dir().join("credentials"));
    let value = |key: &str| {
        credentials
            .lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap()
    };
    let (id, secret) = (value("aws_access_key_id"), value("aws_secret_access_key"));
    let plain = scratch.join("plain-ca");
    ferrule_ok(&[
        "ca",
        "create",
        "--out",
        &path_str(&plain),
        "--key-type",
        "rsa2048",
    ]);
    let out = ferrule_env(
        &[
            "ca",
            "register",
            "--ca",
            &path_str(&plain),
            "--endpoint",
            &endpoint,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let plain_id = certificate_id(&plain.join("ca.pem"));
    let d = aws.ok(&["describe-ca-certificate", "--certificate-id", &plain_id]);
    assert_eq!(d["certificateDescription"]["status"], "INACTIVE", "{d}");
    assert_eq!(
        d["certificateDescription"]["autoRegistrationStatus"], "DISABLE",
        "{d}"
    );
}

#[test]
fn bad_credentials_are_the_services_error_in_one_line() {
    let server = Server::start();
    let endpoint = format!("http://{}", server.api());
    let scratch = server.scratch();
    let ca = path_str(&scratch.join("ca"));
    ferrule_ok(&["ca", "create", "--out", &ca]);

    let line = ferrule_fails(
        &["ca", "register", "--ca", &ca, "--endpoint", &endpoint],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00"),
            ("AWS_SECRET_ACCESS_KEY", "whatever"),
        ],
    );
    assert!(
        line.contains("error: UnrecognizedClientException: "),
        "{line}"
    );

    // The right key id with a wrong secret, from a shared credentials file.
    let real = read(&server.data_dir().join("credentials"));
    let id = real
        .lines()
        .find_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| k.trim() == "aws_access_key_id")
        })
        .map(|(_, v)| v.trim().to_owned())
        .unwrap();
    let file = scratch.join("wrong-secret");
    std::fs::write(
        &file,
        format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = wrong\n"),
    )
    .unwrap();
    let line = ferrule_fails(
        &["ca", "register", "--ca", &ca, "--endpoint", &endpoint],
        &[("AWS_SHARED_CREDENTIALS_FILE", &path_str(&file))],
    );
    assert!(
        line.contains("error: InvalidSignatureException: "),
        "{line}"
    );
    assert!(!scratch.join("ca/ca-id").exists());
}

#[test]
fn device_issue_signs_with_a_ca_made_by_openssl() {
    let pki = Pki::new();
    for (name, alg) in [("ossl-rsa", KeyAlg::Rsa2048), ("ossl-ec", KeyAlg::EcP256)] {
        let ca = pki.ca(name, &format!("/C=US/O=Acme Inc/CN={name}"), alg);
        let ca_dir = pki.path(&format!("{name}-dir"));
        std::fs::create_dir(&ca_dir).unwrap();
        std::fs::copy(&ca.cert, ca_dir.join("ca.pem")).unwrap();
        std::fs::copy(&ca.key, ca_dir.join("ca.key")).unwrap();
        let out = pki.path(&format!("{name}-devices"));
        ferrule_ok(&[
            "device",
            "issue",
            "--ca",
            &path_str(&ca_dir),
            "--name",
            "dev",
            "--out",
            &path_str(&out),
        ]);
        assert_verifies(&ca.cert, &out.join("dev.pem"));
        let info = cert_info(&out.join("dev.pem"));
        assert_eq!(info.issuer, ca.info().subject);
    }
}
