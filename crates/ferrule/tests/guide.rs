//! docs/guide.md, run as written: every `sh` block of the guide, in order, in one bash session
//! against a running server, so that the guide cannot drift from what Ferrule does. The guide's
//! `sh setup` blocks (starting the server on its default ports, naming them) are replaced by
//! the same variables pointing at this test's server.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ACCOUNT, Server, require_mosquitto, require_program, run};

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
    let bin = Path::new(common::ferrule_bin()).parent().unwrap();
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
    let path = std::env::var("PATH").unwrap_or_default();
    let out = run(
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(work.path())
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
        "the guide failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        out.status,
        server.log()
    );
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
