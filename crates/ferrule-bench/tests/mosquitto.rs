//! Runs the built `ferrule-bench` against a private Mosquitto on a free loopback port: every
//! message must arrive exactly once, the JSON line must parse as the report, connections over
//! TLS must present the client certificates given, the JITR scenario must time each device to its
//! first publish, and non-loopback hosts must be refused.
//! Skipped (with a note) where `mosquitto` is not installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A Mosquitto listening on 127.0.0.1 only, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto() -> Option<Mosquitto> {
    let dir = tempfile::tempdir().expect("temporary directory");
    mosquitto_in(dir, "")
}

/// A Mosquitto whose configuration is `extra` after the listener line, with files in `dir`.
fn mosquitto_in(dir: tempfile::TempDir, extra: &str) -> Option<Mosquitto> {
    if Command::new("mosquitto").arg("-h").output().is_err() {
        eprintln!("mosquitto is not installed; skipping");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}"),
    )
    .expect("writing mosquitto.conf");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mosquitto");
    let broker = Mosquitto {
        child,
        port,
        _dir: dir,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(broker)
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrule-bench"))
        .args(args)
        .output()
        .expect("running ferrule-bench")
}

/// The JSON line of a run that must succeed.
fn json_of(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The value of `"key":` in a flat JSON line, as written by the report.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} missing from {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    &rest[..rest.find([',', '}']).unwrap_or(rest.len())]
}

/// Mosquitto drops QoS 2 PUBLISHes beyond its 20 in flight from a 3.1.1 client (it cannot say
/// so); over MQTT 5 it announces that limit as its receive maximum, which the bench respects.
#[test]
fn every_message_arrives_once_at_qos_0_1_and_2() {
    let Some(broker) = mosquitto() else { return };
    let port = broker.port.to_string();
    for (qos, protocol) in [("0", "3.1.1"), ("1", "3.1.1"), ("1", "5"), ("2", "5")] {
        let json = json_of(bench(&[
            "pubsub",
            "--port",
            &port,
            "--qos",
            qos,
            "--protocol",
            protocol,
            "--publishers",
            "3",
            "--subscribers",
            "2",
            "--messages",
            "500",
            "--rate",
            "5000",
            "--timeout",
            "30",
            "--json",
        ]));
        assert_eq!(json.lines().count(), 1, "one JSON line: {json}");
        assert_eq!(field(&json, "sent"), "1500", "{json}");
        assert_eq!(field(&json, "received"), "3000", "{json}");
        assert_eq!(field(&json, "lost"), "0", "{json}");
        assert_eq!(field(&json, "duplicates"), "0", "{json}");
        assert_eq!(field(&json, "timed_out"), "false", "{json}");
        assert_ne!(field(&json, "latency_p99_us"), "null", "{json}");
        if qos != "0" {
            assert_ne!(field(&json, "puback_p50_us"), "null", "{json}");
        }
    }
}

/// Retained messages and messages queued for persistent sessions each reach every subscriber
/// once, from the broker's storage, and the run leaves no retained message behind.
#[test]
fn stored_messages_arrive_once_and_are_cleaned_up() {
    let Some(broker) = mosquitto() else { return };
    let port = broker.port.to_string();
    for (mode, qos, protocol) in [
        ("--retained", "0", "3.1.1"),
        ("--retained", "1", "5"),
        ("--persistent", "1", "3.1.1"),
        ("--persistent", "2", "5"),
    ] {
        let prefix = format!("stored/{}{qos}", &mode[2..]);
        let json = json_of(bench(&[
            "pubsub",
            mode,
            "--port",
            &port,
            "--qos",
            qos,
            "--protocol",
            protocol,
            "--publishers",
            "2",
            "--subscribers",
            "3",
            // Below Mosquitto's default queue of 1,000 messages per session.
            "--messages",
            "300",
            "--topic-prefix",
            &prefix,
            "--timeout",
            "30",
            "--json",
        ]));
        assert_eq!(
            field(&json, "mode"),
            format!("\"{}\"", &mode[2..]),
            "{json}"
        );
        assert_eq!(field(&json, "received"), "1800", "{json}");
        assert_eq!(field(&json, "lost"), "0", "{json}");
        assert_eq!(field(&json, "duplicates"), "0", "{json}");
        assert_eq!(field(&json, "timed_out"), "false", "{json}");
        assert!(json.contains("\"errors\":[]"), "{json}");
        let left = Command::new("mosquitto_sub")
            .args([
                "-p",
                &port,
                "-t",
                &format!("{prefix}/#"),
                "--retained-only",
                "-W",
                "1",
            ])
            .output()
            .expect("running mosquitto_sub");
        assert!(
            left.stdout.is_empty(),
            "retained messages left under {prefix}: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}

#[test]
fn connect_counts_connections() {
    let Some(broker) = mosquitto() else { return };
    let json = json_of(bench(&[
        "connect",
        "--port",
        &broker.port.to_string(),
        "--connections",
        "50",
        "--json",
    ]));
    assert_eq!(field(&json, "succeeded"), "50", "{json}");
    assert_eq!(field(&json, "failed"), "0", "{json}");
}

/// Writes `name` into `dir`, readable by the user Mosquitto switches to when run as root.
fn write_readable(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("writing a test file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// A CA, and `n` client certificates it issued as `NAME.crt`/`NAME.key` in `dir`.
fn client_certs(ca_name: &str, n: usize, dir: &Path) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, ca_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("a CA certificate");
    std::fs::create_dir_all(dir).expect("creating the certificate directory");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for i in 0..n {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("device {i}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("a device key");
        let cert = params.signed_by(&key, &ca).expect("a device certificate");
        write_readable(dir, &format!("d{i}.crt"), &cert.pem());
        write_readable(dir, &format!("d{i}.key"), &key.serialize_pem());
    }
    ca
}

/// A Mosquitto with a TLS listener that requires client certificates issued by the CA of
/// `devices` client certificates it makes under `root/devices` (and `extra` after it), with its
/// server certificate signed by that CA. Returns the broker and the CA file.
fn mosquitto_tls(
    dir: tempfile::TempDir,
    devices: usize,
    extra: &str,
) -> Option<(Mosquitto, PathBuf)> {
    let root = dir.path().to_owned();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let issuer = client_certs("bench devices", devices, &root.join("devices"));
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("a server key");
    let server = params
        .signed_by(&server_key, &issuer)
        .expect("a server certificate");
    let ca = write_readable(&root, "ca.pem", &issuer.pem());
    let cert = write_readable(&root, "server.pem", &server.pem());
    let key = write_readable(&root, "server.key", &server_key.serialize_pem());
    let config = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n{extra}",
        ca.display(),
        cert.display(),
        key.display()
    );
    mosquitto_in(dir, &config).map(|broker| (broker, ca))
}

#[test]
fn connect_over_mtls_presents_the_client_certificates() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().to_owned();
    client_certs("strangers", 2, &root.join("strangers"));
    let Some((broker, ca)) = mosquitto_tls(dir, 3, "") else {
        return;
    };

    let run = |certs: &str| {
        json_of(bench(&[
            "connect",
            "--port",
            &broker.port.to_string(),
            "--cafile",
            ca.to_str().expect("a UTF-8 path"),
            "--certs",
            root.join(certs).to_str().expect("a UTF-8 path"),
            "--connections",
            "6",
            "--concurrency",
            "2",
            "--timeout",
            "20",
            "--json",
        ]))
    };
    let json = run("devices");
    assert_eq!(field(&json, "succeeded"), "6", "{json}");
    assert_eq!(field(&json, "identities"), "3", "{json}");
    assert!(field(&json, "negotiated").contains("TLSv1_3"), "{json}");
    assert_ne!(field(&json, "connack_p50_us"), "null", "{json}");
    // Certificates of a CA the broker does not trust are refused, and counted as failures.
    let json = run("strangers");
    assert_eq!(field(&json, "succeeded"), "0", "{json}");
    assert_eq!(field(&json, "failed"), "6", "{json}");
}

/// Against a broker that admits the devices at once (nothing to activate), the JITR scenario
/// still takes each device through CONNACK and a first QoS 1 PUBLISH, and reports its time to
/// first publish; the operator is never asked.
#[test]
fn jitr_times_each_device_to_its_first_publish() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().to_owned();
    // A second, plain listener for the events subscriber.
    let events = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let Some((broker, ca)) = mosquitto_tls(dir, 4, &format!("listener {events} 127.0.0.1\n"))
    else {
        return;
    };
    let json = json_of(bench(&[
        "jitr",
        "--port",
        &broker.port.to_string(),
        "--events-port",
        &events.to_string(),
        "--cafile",
        ca.to_str().expect("a UTF-8 path"),
        "--certs",
        root.join("devices").to_str().expect("a UTF-8 path"),
        "--concurrency",
        "4",
        "--timeout",
        "20",
        "--json",
        "--",
        "sh",
        "-c",
        "echo ready; cat >/dev/null",
    ]));
    assert_eq!(field(&json, "succeeded"), "4", "{json}");
    assert_eq!(field(&json, "failed"), "0", "{json}");
    assert_eq!(field(&json, "duplicate_registrations"), "0", "{json}");
    let p99: f64 = field(&json, "first_publish_p99_us")
        .parse()
        .unwrap_or_else(|_| panic!("first_publish_p99_us is not a number in {json}"));
    let hold: f64 = field(&json, "hold_p50_us")
        .parse()
        .unwrap_or_else(|_| panic!("hold_p50_us is not a number in {json}"));
    // The first publish comes after the TLS handshake and CONNACK it includes.
    assert!(p99 > hold, "{json}");
}

#[test]
fn refuses_hosts_other_than_loopback() {
    for host in ["192.0.2.1", "example.com", "0.0.0.0"] {
        let out = bench(&["pubsub", "--host", host, "--port", "1883", "--timeout", "1"]);
        assert!(!out.status.success(), "{host} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refusing --host"), "{host}: {stderr}");
    }
}
