//! The seam between the Lambda API and whatever runs functions.
//!
//! What it is for: `Invoke` needs a function runtime, but this crate must not depend on one
//! (the runtime crate depends on processes, and the binary composes the two). The binary
//! implements [`FunctionHost`] and hands it to [`ApiState::with_functions`](crate::ApiState::with_functions);
//! without a host, `Invoke` answers `ServiceException` saying the runtime is not enabled, and
//! every other Lambda operation (which only touches the registry) works as usual.
//!
//! Order of calls: the API resolves the function name, checks that the function exists in the
//! registry, parses the payload as JSON, and only then calls the host, with the function's
//! plain name (never an ARN) and the event. The host reads the function's configuration and
//! code from the registry itself (it learns of changes from `RegistryChange::FunctionChanged`).

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

/// A boxed, sendable future: what [`FunctionHost`]'s methods return, so the trait stays
/// object-safe without an `async-trait` dependency.
pub type HostFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs functions on behalf of `Invoke` (implemented by the binary over the function runtime).
pub trait FunctionHost: Send + Sync + 'static {
    /// Runs the function `name` (`$LATEST`) with `event` and waits for its result
    /// (`RequestResponse`). A function that raised or timed out is a successful call whose
    /// [`HostInvocation::result`] is `Err`; [`HostError`] is for calls that did not run.
    fn invoke(&self, name: String, event: Value) -> HostFuture<Result<HostInvocation, HostError>>;

    /// Queues the function `name` to run with `event` later (`Event`), returning once it is
    /// queued. Its result and errors go to its log only.
    fn invoke_event(&self, name: String, event: Value) -> HostFuture<Result<(), HostError>>;
}

/// One finished synchronous invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInvocation {
    /// The invocation's request id (the `RequestId` of its `START` log line).
    pub request_id: String,
    /// `Ok`: what the handler returned, sent as the response body. `Err`: Lambda's error
    /// payload (`{"errorMessage", "errorType", "stackTrace"}`), sent as the body with
    /// `X-Amz-Function-Error: Unhandled`.
    pub result: Result<Value, Value>,
    /// The invocation's log, one line per entry, as it would appear in CloudWatch Logs
    /// (`START`, the function's output, `END`, `REPORT`), without trailing newlines. The last
    /// 4 KB are what `X-Amz-Log-Type: Tail` returns.
    pub log_lines: Vec<String>,
}

/// Why the host could not run an invocation at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host does not know the function (it was deleted meanwhile): `ResourceNotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// The function is at its concurrency limit or the event queue is full:
    /// `TooManyRequestsException` (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The function's runtime is not one the host runs: `InvalidRuntimeException` (502).
    #[error("{0}")]
    InvalidRuntime(String),
    /// The function's code cannot be deployed (corrupt zip, unsafe paths, no `bootstrap`):
    /// `InvalidZipFileException` (502).
    #[error("{0}")]
    InvalidZipFile(String),
    /// The runtime failed or is shutting down: `ServiceException` (500).
    #[error("{0}")]
    Unavailable(String),
}
