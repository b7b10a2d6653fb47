//! Ferrule's Lambda-compatible functions: a handler (`module.function` for Python, or a
//! `provided` runtime's `bootstrap`) runs in a warm worker process, with AWS's event and context
//! objects, bounded concurrency per function, a timeout that kills and replaces the worker, and
//! the environment a Lambda handler expects.
//!
//! What it is for: the Lambda API and the rules engine's `lambda` action invoke functions here.
//! Two layers:
//!
//! - The runtime ([`FunctionRuntime`], [`Pool`], [`Runtime`]) knows nothing about HTTP, IAM or
//!   storage: the caller supplies a [`FunctionConfig`] (code directory, environment with region,
//!   endpoint and credentials) and gets the log lines back with each [`Invocation`].
//! - The service ([`FunctionService`]) runs the functions stored in the registry: it unpacks
//!   their code zips under a code root, issues temporary credentials for their execution roles
//!   (IAM sessions in the registry), deploys them to a runtime on first use and again when the
//!   registry's change feed says they changed, stores every invocation's log lines in the
//!   registry's CloudWatch Logs group `/aws/lambda/<name>`, and queues asynchronous invocations
//!   with Lambda's retries.
//!
//! What it may depend on: `tokio` (processes, pipes, timers), `serde_json`, `thiserror`,
//! `tracing`, `ferrule-store` (the registry), `zip` (code archives, deflate only) and
//! `ferrule-pki` (random credentials).
//!
//! Order of calls, service: [`FunctionService::start`] with the registry and a
//! [`ServiceConfig`]; [`FunctionService::invoke`] / [`FunctionService::invoke_async`] by name or
//! ARN, concurrently; [`FunctionService::shutdown`] at the end.
//!
//! Order of calls, runtime alone: [`FunctionRuntime::deploy`] a [`FunctionConfig`] (again to
//! update code or configuration: a new pool generation, the old one drains);
//! [`FunctionRuntime::invoke`] as often as needed, concurrently; [`FunctionRuntime::remove`] a
//! function; [`FunctionRuntime::shutdown`] at the end. A [`Pool`] can also be used on its own.
//!
//! Other runtimes are added by implementing [`Runtime`]: it only names the command line of a
//! worker, which then speaks the line protocol described in [`protocol`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

mod cloudwatch;
mod code;
mod deploy;
mod ids;
mod lines;
mod pool;
pub mod protocol;
mod runtime;
mod service;
mod session;
mod worker;

pub use ids::RequestId;
pub use pool::{FunctionRuntime, Pool};
pub use runtime::{CommandRuntime, PYTHON_BOOTSTRAP, PythonRuntime, Runtime, WorkerCommand};
pub use service::{FunctionService, ServiceConfig, ServiceError, function_name};

/// Everything needed to run one function version.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// The function's name.
    pub name: String,
    /// The version reported to the handler (`$LATEST`).
    pub version: String,
    /// The function's ARN, reported as `invoked_function_arn`.
    pub arn: String,
    /// The handler, `module.function` for Python.
    pub handler: String,
    /// The unpacked code; the worker's working directory (and `sys.path[0]` for Python).
    pub code_dir: PathBuf,
    /// Reported to the handler; not enforced.
    pub memory_mb: u32,
    /// How long one invocation may run before its worker is killed.
    pub timeout: Duration,
    /// How many invocations may run at once (and so how many workers may exist); at least 1.
    pub concurrency: usize,
    /// The function's environment: AWS_REGION, credentials, user variables... See [`Pool`].
    pub environment: BTreeMap<String, String>,
    /// Starts the workers.
    pub runtime: Arc<dyn Runtime>,
}

impl FunctionConfig {
    /// `/aws/lambda/<name>`.
    pub fn log_group_name(&self) -> String {
        format!("/aws/lambda/{}", self.name)
    }
}

/// A function invocation that failed, in Lambda's terms (`errorType`, `errorMessage`,
/// `stackTrace`): the handler raised, its module did not import, it timed out or its worker died.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    /// `errorType`: the exception class, or `Runtime.*` / `Sandbox.Timedout`.
    pub error_type: String,
    /// `errorMessage`.
    pub message: String,
    /// `stackTrace`: one formatted frame per entry.
    pub stack: Vec<String>,
}

impl FunctionError {
    /// The payload Lambda's Invoke returns for a failed invocation.
    pub fn to_payload(&self) -> Value {
        json!({
            "errorMessage": self.message,
            "errorType": self.error_type,
            "stackTrace": self.stack,
        })
    }
}

/// The outcome of one invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The request id the handler saw as `context.aws_request_id`.
    pub request_id: RequestId,
    /// The handler's result, or why there is none.
    pub result: Result<Value, FunctionError>,
    /// The invocation's log lines, from `START RequestId:` to `REPORT RequestId:`: the handler's
    /// prints and stderr, error reports, and what the worker logged while idle before it.
    pub log_lines: Vec<String>,
    /// The worker's log stream name.
    pub log_stream_name: String,
    /// From sending the request to receiving the response, as the host measured it.
    pub duration: Duration,
}

/// Why an invocation could not be attempted. Errors of the function itself are in
/// [`Invocation::result`].
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The caller named a function that is not deployed.
    #[error("function not found: {0}")]
    NotFound(String),
    /// The pool or runtime is shutting down.
    #[error("function {0} is shutting down")]
    ShuttingDown(String),
    /// The host could not start a worker (missing interpreter, bad code directory...).
    #[error("cannot start a worker for {function}: {source}")]
    Spawn {
        /// The function.
        function: String,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A configuration the runtime cannot run; the field is named.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `concurrency` is 0.
    #[error("concurrency must be at least 1")]
    Concurrency,
    /// `timeout` is zero.
    #[error("timeout must be positive")]
    Timeout,
    /// `name` is empty.
    #[error("name must not be empty")]
    Name,
}

impl FunctionConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(ConfigError::Concurrency);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Timeout);
        }
        if self.name.is_empty() {
            return Err(ConfigError::Name);
        }
        Ok(())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
