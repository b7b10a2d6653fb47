//! Child processes with bounded waits: run to completion, or in the background with their
//! output lines collected ([`Bg`]). Every process started here is killed when its guard drops.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

use super::CLIENT_TIMEOUT;

/// SIGTERM, then wait up to `timeout`; SIGKILL if it is still running. `None` if it had to be
/// killed.
pub(crate) fn terminate(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    send_signal(child, "TERM");
    match wait_timeout(child, timeout) {
        Some(status) => Some(status),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// `kill -SIGNAL pid` (no libc in this crate).
pub(crate) fn send_signal(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` to exit for at most `timeout`.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for a child process: {e}"),
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '\'', '"', '|', '#', '$']) {
            let _ = write!(s, " '{}'", a.replace('\'', "'\\''"));
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

fn read_all_in_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs a command to completion with stdin closed, for at most `timeout` (killed and reported
/// after that). Panics if the program cannot be started, naming it.
pub(crate) fn run(cmd: &mut Command, timeout: Duration) -> Output {
    run_feeding(cmd, None, timeout)
}

/// Like [`run`], with `input` written to the command's stdin (then closed).
pub(crate) fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    run_feeding(cmd, Some(input), timeout)
}

fn run_feeding(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let what = describe(cmd);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e} (is it installed?)"));
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let out = read_all_in_thread(child.stdout.take().expect("piped stdout"));
    let err = read_all_in_thread(child.stderr.take().expect("piped stderr"));
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "`{what}` did not finish within {timeout:?} (killed)\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Like [`run`], and asserts that the command succeeded.
pub(crate) fn run_ok(cmd: &mut Command, timeout: Duration) -> Output {
    let what = describe(cmd);
    let out = run(cmd, timeout);
    assert!(
        out.status.success(),
        "`{what}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A background process whose stdout and stderr lines are collected as they come. Killed on drop.
pub(crate) struct Bg {
    what: String,
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every line, for failure reports.
    seen: Vec<String>,
    /// Lines not yet taken by [`Bg::try_line`].
    pending: VecDeque<String>,
    status: Option<ExitStatus>,
}

impl Bg {
    /// Spawns `cmd` with stdin closed. Lines from stderr are prefixed with `[stderr] `.
    pub(crate) fn spawn(cmd: &mut Command) -> Bg {
        Bg::spawn_with_stdin(cmd, Stdio::null())
    }

    pub(crate) fn spawn_with_stdin(cmd: &mut Command, stdin: Stdio) -> Bg {
        let what = describe(cmd);
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e} (is it installed?)"));
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx2.send(format!("[stderr] {line}")).is_err() {
                    break;
                }
            }
        });
        Bg {
            what,
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            pending: VecDeque::new(),
            status: None,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("process is running").id()
    }

    /// Every line seen so far.
    pub(crate) fn seen(&self) -> &[String] {
        &self.seen
    }

    fn transcript(&self) -> String {
        format!("`{}` printed:\n{}", self.what, self.seen.join("\n"))
    }

    /// Takes the first not-yet-taken line that satisfies `pred`, waiting at most `timeout` for
    /// it; `None` on timeout or once the process has closed its output. Lines that do not match
    /// stay available to later calls, in order.
    pub(crate) fn try_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        if let Some(i) = self.pending.iter().position(|l| pred(l)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                    self.pending.push_back(line);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every line received within `timeout` (until the output closes), without taking any.
    pub(crate) fn drain(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    self.pending.push_back(line);
                }
                Err(_) => return self.pending.iter().cloned().collect(),
            }
        }
    }

    /// Like [`Bg::try_line`], but panics (with everything seen) on timeout.
    pub(crate) fn line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        match self.try_line(timeout, pred) {
            Some(l) => l,
            None => panic!(
                "no line with {what} within {timeout:?}\n{}",
                self.transcript()
            ),
        }
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let child = self.child.as_mut().expect("process was started");
        let status = wait_timeout(child, timeout);
        // Collect what is left of the output.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line.clone());
            self.pending.push_back(line);
        }
        match status {
            Some(s) => {
                self.status = Some(s);
                s
            }
            None => panic!(
                "process did not exit within {timeout:?}\n{}",
                self.transcript()
            ),
        }
    }

    /// SIGKILL: the process gets no chance to say goodbye (no MQTT DISCONNECT).
    pub(crate) fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            if let Ok(s) = child.wait() {
                self.status = Some(s);
            }
        }
    }

    /// SIGTERM and wait.
    pub(crate) fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let s = terminate(child, CLIENT_TIMEOUT);
        self.status = s;
        s
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if thread::panicking() {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            eprintln!("{}", self.transcript());
        }
    }
}
