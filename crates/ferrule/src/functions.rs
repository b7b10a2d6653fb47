//! The function service seen from the broker's rules and the control plane's `Invoke`: one
//! [`FunctionService`] behind the two traits they define.

use ferrule_api::functions::{FunctionHost, HostError, HostFuture, HostInvocation};
use ferrule_broker::{FunctionInvoker, InvokeFuture};
use ferrule_functions::{FunctionService, ServiceError};
use serde_json::Value;

/// The function service as the rules engine's `lambda` action and the Lambda API's `Invoke`
/// use it.
#[derive(Clone)]
pub(crate) struct Functions(pub(crate) FunctionService);

impl FunctionInvoker for Functions {
    /// Queues an asynchronous invocation (AWS's `Event` type); fails, and so runs the rule's
    /// error action, when the function does not exist, the queue is full or the rule's output
    /// is not JSON.
    fn invoke(&self, function_arn: &str, event: Vec<u8>) -> InvokeFuture<'_> {
        let function_arn = function_arn.to_owned();
        Box::pin(async move {
            let event: serde_json::Value = serde_json::from_slice(&event).map_err(|e| {
                format!("the rule's output is not JSON, which a function needs: {e}")
            })?;
            self.0
                .invoke_async(&function_arn, event)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

impl FunctionHost for Functions {
    fn invoke(&self, name: String, event: Value) -> HostFuture<Result<HostInvocation, HostError>> {
        let service = self.0.clone();
        Box::pin(async move {
            let done = service.invoke(&name, event).await.map_err(host_error)?;
            Ok(HostInvocation {
                request_id: done.request_id.to_string(),
                result: done.result.map_err(|e| e.to_payload()),
                log_lines: done.log_lines,
            })
        })
    }

    fn invoke_event(&self, name: String, event: Value) -> HostFuture<Result<(), HostError>> {
        let service = self.0.clone();
        Box::pin(async move {
            service
                .invoke_async(&name, event)
                .await
                .map(|_| ())
                .map_err(host_error)
        })
    }
}

/// The service's refusals as Lambda's `Invoke` errors.
fn host_error(e: ServiceError) -> HostError {
    match e {
        ServiceError::NotFound(name) => HostError::NotFound(name),
        ServiceError::QueueFull => HostError::TooManyRequests(e.to_string()),
        ServiceError::UnsupportedRuntime(_) => HostError::InvalidRuntime(e.to_string()),
        ServiceError::BadCode(_) => HostError::InvalidZipFile(e.to_string()),
        other => HostError::Unavailable(other.to_string()),
    }
}
