//! The docs, run as written, so that they cannot drift from what Ferrule does.
//!
//! docs/guide.md: every `sh` block of the guide, in order, in one bash session against a running
//! server. The guide's `sh setup` blocks (starting the server on its default ports, naming
//! them) are replaced by the same variables pointing at this test's server.
//!
//! README.md: every `sh` block but those that run cargo (starting the server, the test suite,
//! the demo, which tests of their own cover), in order, with the README's default addresses
//! and data dir replaced by this test's server's.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use std::ffi::OsString;

use common::{ACCOUNT, Server, all_listener_args, require_mosquitto, require_program, run};

/// The guide's fenced blocks: (info string, body).
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block in the guide");
    out
}

#[test]
fn the_guide_runs_as_written() {
    require_mosquitto();
    require_program("openssl", "openssl");
    require_program("aws", "awscli");
    let server = Server::start();
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guide.md"))
            .unwrap();
    let blocks = blocks(&guide);
    let setup = blocks.iter().filter(|(info, _)| info == "sh setup").count();
    assert_eq!(
        setup, 2,
        "the guide's setup blocks changed: adapt this test"
    );
    let runnable: Vec<&String> = blocks
        .iter()
        .filter(|(info, _)| info == "sh")
        .map(|(_, body)| body)
        .collect();
    assert!(runnable.len() >= 10, "{} sh blocks", runnable.len());
    for (info, _) in &blocks {
        assert!(
            info == "sh" || info == "sh setup",
            "a guide block is neither `sh` nor `sh setup`: {info:?}"
        );
    }

    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    script.push_str(&format!(
        "API=http://{api}\nE=--endpoint-url=$API\nDATA={data}\nMQTTS_PORT={mqtts}\n\
         MQTT_PORT={mqtt}\nACCOUNT={ACCOUNT}\n",
        api = server.api(),
        data = data.display(),
        mqtts = server.mqtts().port(),
        mqtt = server.mqtt().port(),
    ));
    for body in &runnable {
        script.push_str(body);
        script.push('\n');
    }
    let stdout = run_script(&server, work.path(), &script);
    let stdout = stdout.as_str();
    // What the guide says the reader will see.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(stdout.contains("registered CA "), "{stdout}");
    assert!(lines.contains(&"ACTIVE"), "{stdout}");
    assert!(lines.contains(&"JustInTime"), "{stdout}");
    assert!(stdout.contains("Registered CA "), "{stdout}");
    assert!(
        stdout.contains("Device certificates: 2 (ACTIVE 2)"),
        "{stdout}"
    );
    let rejected = stdout
        .lines()
        .find(|l| l.contains("\"reason\""))
        .unwrap_or_else(|| panic!("no rejection event: {stdout}"));
    let event: serde_json::Value = serde_json::from_str(rejected).unwrap();
    assert_eq!(event["reason"], "unknown_ca", "{event}");
    assert!(stdout.contains("refused"), "{stdout}");
}

#[test]
fn the_readme_runs_as_written() {
    require_mosquitto();
    require_program("openssl", "openssl");
    require_program("aws", "awscli");
    // A longer hold than the default 5 s: the README activates a held device with three aws CLI
    // calls, which a loaded machine may take more than 5 s to make.
    let mut args = all_listener_args();
    args.extend(["--jitr-hold-ms", "30000"].map(OsString::from));
    let server = Server::start_with(args);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let data = server.data_dir().display().to_string();
    let substitute = |body: &str| {
        body.replace("http://127.0.0.1:9000", &format!("http://{}", server.api()))
            .replace("-p 1884", &format!("-p {}", server.mqtt().port()))
            .replace("-p 8883", &format!("-p {}", server.mqtts().port()))
            .replace("ferrule-data", &data)
    };
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    let mut skipped = 0;
    let mut ran = 0;
    for (info, body) in blocks(&readme) {
        if info != "sh" {
            continue;
        }
        if body.contains("cargo ") {
            skipped += 1;
            continue;
        }
        script.push_str(&substitute(&body));
        script.push('\n');
        ran += 1;
    }
    assert_eq!(skipped, 3, "serve, test and demo commands: adapt this test");
    assert!(ran >= 8, "{ran} README blocks");
    let work = tempfile::tempdir().unwrap();
    let stdout = run_script(&server, work.path(), &script);
    // The last block's device was registered and activated by the function.
    let aws = server.aws();
    let device2 = common::certificate_id(&work.path().join("device2.pem"));
    let d = aws.describe_certificate(&device2);
    assert_eq!(d["status"], "ACTIVE", "{d}\n{stdout}");
}

/// Runs `script` with bash in `dir`, with the built `ferrule` first on PATH and the aws CLI
/// configured for `server` only; panics with everything printed if it fails. Returns stdout.
fn run_script(server: &Server, dir: &Path, script: &str) -> String {
    let bin = Path::new(common::ferrule_bin()).parent().unwrap();
    let data = server.data_dir();
    let path = std::env::var("PATH").unwrap_or_default();
    let out = run(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("PATH", format!("{}:{path}", bin.display()))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", data.join("credentials"))
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", ""),
        Duration::from_secs(240),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        out.status,
        server.log()
    );
    stdout.into_owned()
}
