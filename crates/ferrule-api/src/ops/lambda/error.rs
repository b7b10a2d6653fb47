//! Lambda's errors, and the one place they become HTTP responses.
//!
//! Lambda (rest-json) answers an error with `x-amzn-ErrorType: <Code>` and a body
//! `{"Type": "User", "message": "..."}`; the shapes in botocore's model spell the message
//! member `Message` for `ResourceNotFoundException`, `InvalidRuntimeException`,
//! `InvalidZipFileException` and `ServiceException` (whose `Type` is `Service`), and `TooManyRequestsException` adds `Reason` and a `Retry-After` header.
//! botocore reads the code from the header and the message from either spelling.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferrule_store::RegistryError;
use serde_json::json;

use crate::error::ApiError;

/// A Lambda API call that failed, as the error code botocore will see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LambdaError {
    /// A parameter is missing, malformed or not supported (400).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// The function, statement or policy does not exist (404).
    #[error("{0}")]
    ResourceNotFound(String),
    /// The function or statement exists already (409).
    #[error("{0}")]
    ResourceConflict(String),
    /// `RevisionId` is not the function's current revision (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// `Invoke`'s payload is not JSON, or a body could not be parsed (400).
    #[error("{0}")]
    InvalidRequestContent(String),
    /// `Invoke`'s payload is over the limit for its invocation type (413).
    #[error("{0}")]
    RequestTooLarge(String),
    /// The function is at its concurrency limit (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The function's runtime cannot be run by the host (502).
    #[error("{0}")]
    InvalidRuntime(String),
    /// The function's code cannot be deployed by the host (502).
    #[error("{0}")]
    InvalidZipFile(String),
    /// Ferrule failed, or cannot run functions (500). The message is sent to the client.
    #[error("{0}")]
    Service(String),
    /// Authentication failures and unknown operations, answered as the rest of the API does.
    #[error(transparent)]
    Api(ApiError),
}

impl LambdaError {
    /// The error code botocore matches on.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            LambdaError::InvalidParameterValue(_) => "InvalidParameterValueException",
            LambdaError::ResourceNotFound(_) => "ResourceNotFoundException",
            LambdaError::ResourceConflict(_) => "ResourceConflictException",
            LambdaError::PreconditionFailed(_) => "PreconditionFailedException",
            LambdaError::InvalidRequestContent(_) => "InvalidRequestContentException",
            LambdaError::RequestTooLarge(_) => "RequestTooLargeException",
            LambdaError::TooManyRequests(_) => "TooManyRequestsException",
            LambdaError::InvalidRuntime(_) => "InvalidRuntimeException",
            LambdaError::InvalidZipFile(_) => "InvalidZipFileException",
            LambdaError::Service(_) => "ServiceException",
            LambdaError::Api(e) => e.code(),
        }
    }

    /// The HTTP status of the code in botocore's `lambda` model.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            LambdaError::InvalidParameterValue(_) | LambdaError::InvalidRequestContent(_) => {
                StatusCode::BAD_REQUEST
            }
            LambdaError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            LambdaError::ResourceConflict(_) => StatusCode::CONFLICT,
            LambdaError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            LambdaError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LambdaError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            LambdaError::InvalidRuntime(_) | LambdaError::InvalidZipFile(_) => {
                StatusCode::BAD_GATEWAY
            }
            LambdaError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
            LambdaError::Api(e) => e.status(),
        }
    }

    /// `Function not found: ARN`, as Lambda says it.
    pub(crate) fn function_not_found(arn: &str) -> LambdaError {
        LambdaError::ResourceNotFound(format!("Function not found: {arn}"))
    }

    /// A registry failure about the function `arn`, in Lambda's terms.
    pub(crate) fn from_registry(e: RegistryError, arn: &str) -> LambdaError {
        match e {
            RegistryError::NotFound { kind, ref id } => match kind {
                "Function" => LambdaError::function_not_found(arn),
                "Permission" => LambdaError::ResourceNotFound(format!(
                    "Statement {id} is not found in resource policy."
                )),
                _ => LambdaError::ResourceNotFound(e.to_string()),
            },
            RegistryError::AlreadyExists { kind, ref id } => match kind {
                "Function" => {
                    LambdaError::ResourceConflict(format!("Function already exist: {id}"))
                }
                "Permission" => LambdaError::ResourceConflict(format!(
                    "The statement id ({id}) provided already exists. Please choose a new \
                     statement id, or remove the existing statement."
                )),
                _ => LambdaError::ResourceConflict(e.to_string()),
            },
            RegistryError::InvalidRequest(m) | RegistryError::LimitExceeded(m) => {
                LambdaError::InvalidParameterValue(m)
            }
            other => {
                tracing::error!(error = %other, function = arn, "registry failure");
                LambdaError::Service(
                    "An internal error occurred; the server log has the details.".to_owned(),
                )
            }
        }
    }
}

impl From<ApiError> for LambdaError {
    /// Request-parsing failures (`Call`'s accessors) are Lambda's parameter errors; the rest
    /// keep their own codes.
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidRequest(m) => LambdaError::InvalidParameterValue(m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal failure");
                LambdaError::Service(
                    "An internal error occurred; the server log has the details.".to_owned(),
                )
            }
            other => LambdaError::Api(other),
        }
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let api = match self {
            LambdaError::Api(e) => return e.into_response(),
            other => other,
        };
        let (code, status, message) = (api.code(), api.status(), api.to_string());
        let body = match &api {
            LambdaError::ResourceNotFound(_)
            | LambdaError::InvalidRuntime(_)
            | LambdaError::InvalidZipFile(_) => json!({ "Type": "User", "Message": message }),
            LambdaError::Service(_) => json!({ "Type": "Service", "Message": message }),
            LambdaError::TooManyRequests(_) => json!({
                "Type": "User",
                "message": message,
                "Reason": "ConcurrentInvocationLimitExceeded",
            }),
            _ => json!({ "Type": "User", "message": message }),
        };
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
        if let LambdaError::TooManyRequests(_) = api {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
