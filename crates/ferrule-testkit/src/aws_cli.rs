//! The real `aws` CLI, one command after the other in one Python process
//! (`aws_cli_runner.py`, next to this crate's manifest), and the errors it prints.
//!
//! Order of calls: [`CliRunner::start`] once (with the environment the commands need), then
//! [`CliRunner::call`] per command; [`CliOutput::json`] turns the answer into the parsed output
//! or an [`AwsError`].

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};

/// The region the CLI is told about when nothing else says one.
pub const REGION: &str = "us-east-1";

/// An environment that reads nothing from the machine's AWS configuration: no credentials, no
/// config or credentials file, no instance metadata, no pager, no retries.
pub fn clean_env(cmd: &mut Command) {
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard");
}

/// The long-lived runner process.
pub struct CliRunner {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl CliRunner {
    /// Starts the runner in a [`clean_env`], then lets `configure` add what the commands need
    /// (credentials, a credentials file).
    pub fn start(configure: impl FnOnce(&mut Command)) -> CliRunner {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/aws_cli_runner.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        clean_env(&mut cmd);
        configure(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("python3 cannot start the aws CLI runner: {e}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        CliRunner {
            child,
            stdin,
            replies,
        }
    }

    /// Runs `aws ARGS` with `env` (an object of variables) set for this command only, waiting
    /// at most `timeout` for it.
    pub fn call(&mut self, args: &[String], env: &Value, timeout: Duration) -> CliOutput {
        let request = json!({ "args": args, "env": env });
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("the aws CLI runner is gone ({e}): is awscli installed?"));
        let line = self.replies.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!(
                "the aws CLI runner did not answer `aws {}` within {timeout:?}: {e}",
                args.join(" ")
            )
        });
        let reply: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the aws CLI runner said {line:?}: {e}"));
        CliOutput {
            success: reply["rc"] == 0,
            stdout: reply["stdout"].as_str().unwrap_or_default().to_owned(),
            stderr: reply["stderr"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

impl Drop for CliRunner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a command (the CLI, or any other process) ended.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl CliOutput {
    /// The parsed JSON output (`Null` when empty), or the error the CLI printed.
    pub fn json(self) -> Result<Value, AwsError> {
        if !self.success {
            return Err(AwsError::parse(&self.stderr));
        }
        let text = self.stdout.trim();
        if text.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("the aws CLI's output is not JSON: {e}\n{text}")))
    }
}

/// An error the aws CLI reported: `An error occurred (CODE) when calling the OP operation: MSG`.
#[derive(Debug, Clone)]
pub struct AwsError {
    /// The error code (`ResourceNotFoundException`, ...).
    pub code: String,
    /// The message after the operation's name.
    pub message: String,
    /// Everything the CLI printed on stderr.
    pub stderr: String,
}

impl AwsError {
    /// Reads the code and message out of the CLI's stderr.
    pub fn parse(stderr: &str) -> AwsError {
        let code = stderr
            .split_once("An error occurred (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(code, _)| code.to_owned())
            .unwrap_or_default();
        // `... when calling the OP operation: MSG`, or `... operation (reached max retries: 0): MSG`.
        let message = stderr
            .split_once(" operation")
            .map(|(_, rest)| {
                rest.strip_prefix(" (reached max retries: 0)")
                    .unwrap_or(rest)
            })
            .and_then(|rest| rest.strip_prefix(": "))
            .map(|m| m.trim().to_owned())
            .unwrap_or_default();
        AwsError {
            code,
            message,
            stderr: stderr.to_owned(),
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed with {:?}: {}", self.code, self.stderr.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::AwsError;

    #[test]
    fn error_code_and_message_are_read_from_stderr() {
        let e = AwsError::parse(
            "\nAn error occurred (ResourceNotFoundException) when calling the DescribeCertificate operation: The certificate x does not exist\n",
        );
        assert_eq!(e.code, "ResourceNotFoundException");
        assert_eq!(e.message, "The certificate x does not exist");
        let e = AwsError::parse(
            "An error occurred (Throttling) when calling the X operation (reached max retries: 0): slow down",
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("Throttling", "slow down")
        );
    }
}
