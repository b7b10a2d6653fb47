//! Runs the built `ferrule-bench` against a private Mosquitto on a free loopback port: every
//! message must arrive exactly once, the JSON line must parse as the report, and non-loopback
//! hosts must be refused. Skipped (with a note) where `mosquitto` is not installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    if Command::new("mosquitto").arg("-h").output().is_err() {
        eprintln!("mosquitto is not installed; skipping");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
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

#[test]
fn every_message_arrives_once_at_qos_0_and_1() {
    let Some(broker) = mosquitto() else { return };
    let port = broker.port.to_string();
    for (qos, protocol) in [("0", "3.1.1"), ("1", "3.1.1"), ("1", "5")] {
        let out = bench(&[
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
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = String::from_utf8(out.stdout).expect("UTF-8 output");
        assert_eq!(json.lines().count(), 1, "one JSON line: {json}");
        assert_eq!(field(&json, "sent"), "1500", "{json}");
        assert_eq!(field(&json, "received"), "3000", "{json}");
        assert_eq!(field(&json, "lost"), "0", "{json}");
        assert_eq!(field(&json, "duplicates"), "0", "{json}");
        assert_eq!(field(&json, "timed_out"), "false", "{json}");
        assert_ne!(field(&json, "latency_p99_us"), "null", "{json}");
        if qos == "1" {
            assert_ne!(field(&json, "puback_p50_us"), "null", "{json}");
        }
    }
}

#[test]
fn connect_counts_connections() {
    let Some(broker) = mosquitto() else { return };
    let out = bench(&[
        "connect",
        "--port",
        &broker.port.to_string(),
        "--connections",
        "50",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert_eq!(field(&json, "succeeded"), "50", "{json}");
    assert_eq!(field(&json, "failed"), "0", "{json}");
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
