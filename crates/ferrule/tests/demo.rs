//! `ferrule demo`, run as a newcomer runs it: the real binary, its whole JITR workflow in
//! process (with the real function service running the Python handler with boto3), its output
//! read line by line. It must pass every step, print the summary, and leave no temporary data
//! dir behind; with `--keep` the data dir stays; without python3, or without boto3, the
//! function step fails with a clear message, the run exits non-zero and still cleans up.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{ferrule_bin, run};

/// The whole demo takes a few seconds; the device step alone may take 40 s before it fails.
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);
const STEPS: usize = 13;

/// Runs `ferrule demo ARGS` with TMPDIR in a fresh directory and `env` set.
fn demo(args: &[&str], env: &[(&str, &Path)]) -> (Output, tempfile::TempDir) {
    let tmp = tempfile::Builder::new()
        .prefix("ferrule-demo-test-")
        .tempdir()
        .unwrap();
    let mut cmd = Command::new(ferrule_bin());
    cmd.arg("demo").args(args).env("TMPDIR", tmp.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (run(&mut cmd, DEMO_TIMEOUT), tmp)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `[n/13] title ... ok  12 ms` lines, in order.
fn step_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with('[')).collect()
}

/// The path after `Data dir: `.
fn data_dir(text: &str) -> PathBuf {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Data dir: "))
        .unwrap_or_else(|| panic!("no `Data dir:` line in\n{text}"));
    PathBuf::from(line)
}

/// Whether `line` is step `n`, finished `ok` with its time.
fn is_ok_step(line: &str, n: usize) -> bool {
    let Some(rest) = line.strip_prefix(&format!("[{n}/{STEPS}] ")) else {
        return false;
    };
    let Some((_title, outcome)) = rest.split_once(" ... ") else {
        return false;
    };
    let outcome = outcome.trim_start_matches(['.', ' ']);
    let Some(time) = outcome.strip_prefix("ok  ") else {
        return false;
    };
    time.strip_suffix(" ms")
        .is_some_and(|t| t.parse::<f64>().is_ok())
}

/// What is left in the demo's TMPDIR.
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_demo_passes_every_step_prints_a_summary_and_cleans_up() {
    let (out, tmp) = demo(&[], &[]);
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}\n{err}");
    let steps = step_lines(&text);
    assert_eq!(steps.len(), STEPS, "{text}");
    for (i, line) in steps.iter().enumerate() {
        assert!(is_ok_step(line, i + 1), "step {}: {line}\n{text}", i + 1);
    }
    // Each step's result detail: the ARNs, the statuses, the message.
    for expected in [
        "(ACTIVE, auto-registration ENABLE)",
        "arn:aws:iot:us-east-1:123456789012:policy/JustInTime",
        "arn:aws:iam::123456789012:role/JITRRole",
        "arn:aws:lambda:us-east-1:123456789012:function:jitr",
        "arn:aws:iot:us-east-1:123456789012:rule/JITR",
        "ACTIVE, policies attached: JustInTime",
        "demo-subscriber received devices/demo-device/telemetry {\"temperature\":21.5}",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    let summary = format!("All {STEPS} steps passed in ");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&summary) && l.ends_with(" s.")),
        "{text}"
    );
    let connack = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("device first CONNECT -> CONNACK:"))
        .unwrap_or_else(|| panic!("no CONNACK time in\n{text}"));
    let received = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("device first CONNECT -> message received:")
        })
        .unwrap_or_else(|| panic!("no message time in\n{text}"));
    let ms = |s: &str| -> u64 { s.split_whitespace().next().unwrap().parse().unwrap() };
    assert!(ms(connack) <= ms(received), "{text}");
    // Quiet: no warnings or errors from the in-process server.
    assert!(err.trim().is_empty(), "stderr:\n{err}");
    let dir = data_dir(&text);
    assert!(dir.starts_with(tmp.path()), "{}", dir.display());
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    eprintln!("{text}");
}

#[test]
fn keep_leaves_the_data_dir_and_names_it() {
    let (out, _tmp) = demo(&["--keep"], &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let dir = data_dir(&text);
    assert!(
        text.contains(&format!("Kept the data dir: {}", dir.display())),
        "{text}"
    );
    for file in [
        "data/ferrule.db",
        "data/credentials",
        "data/server-ca.pem",
        "ca/ca.pem",
        "ca/ca.key",
        "device/demo-device.pem",
        "device/demo-device-chain.pem",
        "device/demo-device.key",
    ] {
        assert!(dir.join(file).is_file(), "no {file} in {}", dir.display());
    }
}

/// The run failed at the function step with `message`, stopped the server, and left nothing.
fn assert_function_step_failed(out: &Output, tmp: &Path, message: &str) {
    let text = stdout(out);
    let err = stderr(out);
    assert!(!out.status.success(), "{text}\n{err}");
    let steps = step_lines(&text);
    for (i, line) in steps.iter().take(5).enumerate() {
        assert!(is_ok_step(line, i + 1), "{line}\n{text}");
    }
    assert!(
        steps.get(5).is_some_and(|l| l
            .starts_with(&format!("[6/{STEPS}] Create the function jitr"))
            && l.contains("FAILED")),
        "{text}"
    );
    assert!(text.contains(message), "no {message:?} in\n{text}");
    // No later step ran but the server's stop.
    assert_eq!(steps.len(), 7, "{text}");
    assert!(is_ok_step(steps[6], STEPS), "{text}");
    assert!(!text.contains("steps passed"), "{text}");
    assert!(
        err.contains(&format!(
            "ferrule: error: step 6/{STEPS} failed: Create the function jitr"
        )),
        "stderr:\n{err}"
    );
    assert!(err.contains(message), "stderr:\n{err}");
    let dir = data_dir(&text);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert_eq!(leftovers(tmp), Vec::<String>::new());
}

#[test]
fn without_python3_the_function_step_fails_clearly_and_the_demo_cleans_up() {
    let empty = tempfile::tempdir().unwrap();
    let (out, tmp) = demo(&[], &[("PATH", empty.path())]);
    assert_function_step_failed(&out, tmp.path(), "python3 is not on PATH");
}

#[test]
fn without_boto3_the_function_step_fails_clearly_and_the_demo_cleans_up() {
    // A python3 without site-packages, hence without boto3.
    let python = Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("python3");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {} -S \"$@\"\n", python.trim()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, tmp) = demo(&[], &[("PATH", bin.path())]);
    assert_function_step_failed(&out, tmp.path(), "python3 cannot import boto3");
}
