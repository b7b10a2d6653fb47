//! One worker process: spawning it with its environment, one invocation at a time over the line
//! protocol, and stopping it.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use crate::lines::{LogCollector, MAX_LOG_LINE, MAX_RESPONSE_LINE, read_line_capped};
use crate::protocol::{InvokeContext, WorkerResponse, decode_response, encode_request};
use crate::{FunctionConfig, FunctionError, Invocation, RequestId, ids};

/// How long the host waits, after a response, for the invocation's `REPORT` log line.
const REPORT_GRACE: Duration = Duration::from_secs(1);
/// How long a dead (crashed or killed) worker's remaining stderr is read.
const EXIT_LOG_GRACE: Duration = Duration::from_secs(1);
/// How long a worker asked to stop (stdin closed) may take before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);

/// Log lines buffered between the stderr reader and the invocation; when full, the worker
/// blocks on its stderr writes until the host reads on.
const LOG_BUFFER: usize = 1024;

/// Host environment variables a worker inherits; everything else comes from the configuration.
const INHERITED: [&str; 2] = ["PATH", "HOME"];

pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: mpsc::Receiver<String>,
    log_stream_name: String,
    next_id: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.child.id())
            .field("log_stream_name", &self.log_stream_name)
            .finish_non_exhaustive()
    }
}

/// The result of one exchange, and the worker if it is still usable.
pub(crate) struct Exchange {
    pub(crate) invocation: Invocation,
    pub(crate) worker: Option<Worker>,
}

impl Worker {
    pub(crate) fn spawn(config: &FunctionConfig) -> std::io::Result<Self> {
        let command = config.runtime.worker_command(config);
        let log_stream_name = ids::log_stream_name(&config.version, SystemTime::now());
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .current_dir(&config.code_dir)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in INHERITED {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        for (key, value) in runtime_environment(config, &log_stream_name) {
            cmd.env(key, value);
        }
        cmd.envs(&config.environment);
        cmd.env("PYTHONUNBUFFERED", "1");
        let mut child = cmd.spawn()?;
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => return Err(std::io::Error::other("worker pipes were not created")),
            };
        let (tx, rx) = mpsc::channel(LOG_BUFFER);
        // The reader ends at EOF (worker gone) or when the worker is dropped.
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr);
            while let Ok(Some(line)) = read_line_capped(&mut stderr, MAX_LOG_LINE).await {
                if tx.send(line.text).await.is_err() {
                    break;
                }
            }
        });
        tracing::debug!(function = %config.name, pid = ?child.id(), "worker started");
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: rx,
            log_stream_name,
            next_id: 0,
        })
    }

    /// Runs one invocation. The worker comes back unless it timed out, died or broke the
    /// protocol; then it has been killed.
    pub(crate) async fn invoke(
        mut self,
        config: &FunctionConfig,
        request_id: RequestId,
        event: &Value,
    ) -> Exchange {
        let mut log_lines = LogCollector::default();
        // Lines logged while idle (e.g. at import, or by background threads) belong here.
        while let Ok(line) = self.stderr.try_recv() {
            log_lines.push(line);
        }
        self.next_id += 1;
        let id = self.next_id;
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(config.timeout)
            .as_millis() as u64;
        let context = InvokeContext {
            function_name: config.name.clone(),
            function_version: config.version.clone(),
            invoked_function_arn: config.arn.clone(),
            memory_limit_in_mb: config.memory_mb,
            aws_request_id: request_id.as_str().to_owned(),
            log_group_name: config.log_group_name(),
            log_stream_name: self.log_stream_name.clone(),
            deadline_ms,
        };
        let mut line = encode_request(id, event, &context);
        line.push('\n');
        let started = Instant::now();
        let Self {
            stdin,
            stdout,
            stderr,
            ..
        } = &mut self;
        // Logs are read while the handler runs, so a chatty handler never blocks on stderr.
        let exchange = tokio::time::timeout(config.timeout, async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
            let response = read_line_capped(stdout, MAX_RESPONSE_LINE);
            tokio::pin!(response);
            loop {
                tokio::select! {
                    response = &mut response => return response,
                    Some(log) = stderr.recv() => log_lines.push(log),
                }
            }
        })
        .await;
        let duration = started.elapsed();
        let outcome = match exchange {
            Err(_elapsed) => Outcome::TimedOut,
            Ok(Err(_)) | Ok(Ok(None)) => Outcome::Exited,
            Ok(Ok(Some(line))) if line.truncated => Outcome::TooLarge,
            Ok(Ok(Some(line))) => match decode_response(&line.text) {
                Ok((got, response)) if got == id => Outcome::Answered(response),
                Ok((got, _)) => Outcome::Broken(format!("response id {got}, expected {id}")),
                Err(e) => Outcome::Broken(e.to_string()),
            },
        };
        let log_stream_name = self.log_stream_name.clone();
        let (result, worker) = match outcome {
            Outcome::Answered(response) => {
                self.collect_until_report(&request_id, &mut log_lines).await;
                let result = match response {
                    WorkerResponse::Ok(value) => Ok(value),
                    WorkerResponse::Error(error) => Err(error),
                };
                (result, Some(self))
            }
            Outcome::TimedOut => {
                self.kill().await;
                self.drain_after_exit(&mut log_lines).await;
                let seconds = format!("{:.2}", config.timeout.as_secs_f64());
                log_lines.push(format!(
                    "{} Task timed out after {seconds} seconds",
                    request_id.as_str()
                ));
                log_lines.push(format!("END RequestId: {}", request_id.as_str()));
                log_lines.push(report_line(&request_id, duration, config, "timeout"));
                let error = FunctionError {
                    error_type: "Sandbox.Timedout".into(),
                    message: format!(
                        "RequestId: {} Error: Task timed out after {seconds} seconds",
                        request_id.as_str()
                    ),
                    stack: Vec::new(),
                };
                (Err(error), None)
            }
            Outcome::Exited => {
                let status = match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
                    Ok(Ok(status)) => status.to_string(),
                    _ => {
                        self.kill().await;
                        "killed".to_owned()
                    }
                };
                self.drain_after_exit(&mut log_lines).await;
                let message = format!(
                    "RequestId: {} Error: Runtime exited with error: {status}",
                    request_id.as_str()
                );
                log_lines.push(message.clone());
                log_lines.push(format!("END RequestId: {}", request_id.as_str()));
                log_lines.push(report_line(&request_id, duration, config, "error"));
                let error = FunctionError {
                    error_type: "Runtime.ExitError".into(),
                    message,
                    stack: Vec::new(),
                };
                (Err(error), None)
            }
            Outcome::TooLarge => {
                // The whole line was consumed, so the worker is still in step with the protocol.
                self.collect_until_report(&request_id, &mut log_lines).await;
                let error = FunctionError {
                    error_type: "Function.ResponseSizeTooLarge".into(),
                    message: format!(
                        "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_LINE} bytes)."
                    ),
                    stack: Vec::new(),
                };
                (Err(error), Some(self))
            }
            Outcome::Broken(reason) => {
                self.kill().await;
                self.drain_after_exit(&mut log_lines).await;
                tracing::warn!(function = %config.name, %reason, "worker broke the protocol");
                let error = FunctionError {
                    error_type: "Runtime.InvalidResponse".into(),
                    message: format!(
                        "RequestId: {} Error: worker broke the protocol: {reason}",
                        request_id.as_str()
                    ),
                    stack: Vec::new(),
                };
                (Err(error), None)
            }
        };
        Exchange {
            invocation: Invocation {
                request_id,
                result,
                log_lines: log_lines.finish(),
                log_stream_name,
                duration,
            },
            worker,
        }
    }

    async fn collect_until_report(&mut self, request_id: &RequestId, log_lines: &mut LogCollector) {
        let marker = format!("REPORT RequestId: {}", request_id.as_str());
        // Often it came in with the response already.
        if log_lines.has_line_starting_with(&marker) {
            return;
        }
        let _ = tokio::time::timeout(REPORT_GRACE, async {
            while let Some(line) = self.stderr.recv().await {
                let done = line.starts_with(&marker);
                log_lines.push(line);
                if done {
                    break;
                }
            }
        })
        .await;
    }

    /// Collects what the dead worker logged last. Its stderr reaches EOF soon, unless a process
    /// it started keeps the pipe open: hence the bound.
    async fn drain_after_exit(&mut self, log_lines: &mut LogCollector) {
        let _ = tokio::time::timeout(EXIT_LOG_GRACE, async {
            while let Some(line) = self.stderr.recv().await {
                log_lines.push(line);
            }
        })
        .await;
    }

    /// Whether the process is still running; reaps it if not.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn kill(&mut self) {
        if let Err(e) = self.child.kill().await {
            tracing::warn!(error = %e, "could not kill worker");
        }
    }

    /// Closes stdin (the worker exits at EOF); kills it if it does not within the grace period.
    pub(crate) async fn stop(self) {
        let Self {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let exited = tokio::time::timeout(STOP_GRACE, child.wait()).await;
        if exited.is_err()
            && let Err(e) = child.kill().await
        {
            tracing::warn!(error = %e, "could not kill worker");
        }
    }
}

enum Outcome {
    Answered(WorkerResponse),
    TooLarge,
    TimedOut,
    Exited,
    Broken(String),
}

/// The variables Lambda sets from the function's configuration; the caller's map may override
/// them.
fn runtime_environment(config: &FunctionConfig, log_stream_name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", config.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", config.log_group_name()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name.to_owned()),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", config.runtime.name()),
        ),
        ("LAMBDA_TASK_ROOT", config.code_dir.display().to_string()),
        ("_HANDLER", config.handler.clone()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn report_line(
    request_id: &RequestId,
    duration: Duration,
    config: &FunctionConfig,
    status: &str,
) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    format!(
        "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tStatus: {status}",
        request_id.as_str(),
        ms.ceil() as u64,
        config.memory_mb
    )
}
