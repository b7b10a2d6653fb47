//! Running `tests/python/paho_interop.py` (paho-mqtt 2.x) against a [`Server`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{CLIENT_TIMEOUT, Server, require_program, run};

/// `tests/python/paho_interop.py`.
pub(crate) fn paho_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join("paho_interop.py")
}

/// Fails the test, saying what to install, unless `python3` can import paho-mqtt 2.x.
pub(crate) fn require_paho() {
    require_program("python3", "python3");
    let out = run(
        Command::new("python3").args([
            "-c",
            "import sys, paho.mqtt; v = paho.mqtt.__version__; print(v); sys.exit(0 if v.startswith('2.') else 1)",
        ]),
        CLIENT_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "python3 cannot import paho-mqtt 2.x; install it with: python3 -m pip install 'paho-mqtt>=2,<3'\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python3 paho_interop.py --ca … --cert … --key … --mqtt … --mqtts … --ws … --wss …` (the
/// enabled listeners). TLS clients present the server's default device certificate.
pub(crate) fn paho_cmd(server: &Server) -> Command {
    require_paho();
    let mut cmd = Command::new("python3");
    cmd.arg(paho_script()).arg("--ca").arg(server.ca());
    let l = server.listeners();
    if l.mqtts.is_some() || l.wss.is_some() {
        let device = server.default_device();
        cmd.arg("--cert")
            .arg(&device.cert)
            .arg("--key")
            .arg(&device.key);
    }
    for (flag, addr) in [
        ("--mqtt", l.mqtt),
        ("--mqtts", l.mqtts),
        ("--ws", l.ws),
        ("--wss", l.wss),
    ] {
        if let Some(a) = addr {
            cmd.args([flag, &a.to_string()]);
        }
    }
    cmd
}

/// Runs the paho script with `checks`; asserts it exited 0 and printed `PASS <check>` for each.
/// Returns its stdout.
pub(crate) fn paho_checks(server: &Server, checks: &[&str]) -> String {
    let mut cmd = paho_cmd(server);
    cmd.args(checks);
    let out = run(&mut cmd, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "paho_interop.py exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert_ne!(
        out.status.code(),
        Some(3),
        "paho-mqtt 2.x is missing\n{report}"
    );
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        failed.is_empty(),
        "paho checks failed:\n{}\n\n{report}",
        failed.join("\n")
    );
    assert!(out.status.success(), "{report}");
    for c in checks {
        assert!(
            stdout
                .lines()
                .any(|l| l == format!("PASS {c}") || l.starts_with(&format!("PASS {c} "))),
            "no PASS line for {c}\n{report}"
        );
    }
    stdout
}
