//! The function service seen from the broker's rules and the control plane's `Invoke`: one
//! [`FunctionService`] behind the two traits they define.

use ferrule_broker::{FunctionInvoker, InvokeFuture};
use ferrule_functions::FunctionService;

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
