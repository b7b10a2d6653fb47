//! The control plane's one error type, and the one place it becomes an HTTP response.
//!
//! Each variant is one AWS error code. The response is what botocore's rest-json parser reads:
//! the status AWS uses for the code, an `x-amzn-ErrorType: <Code>` header, and a JSON body
//! `{"__type": "<Code>", "message": "..."}` (plus `resourceId`/`resourceArn` where the model has
//! them). The `x-amzn-RequestId` header is added by the authentication layer to every response.
//!
//! Services on the JSON 1.1 protocol (CloudWatch Logs) answer through [`Json11Error`]: the
//! same body, `Content-Type: application/x-amz-json-1.1`, their own names for a few codes
//! (`InvalidParameterException`), and 400 for every client error, as those services do.
//!
//! IAM, on the query protocol, answers through [`QueryError`]: an XML
//! `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`, IAM's
//! names for the codes (`NoSuchEntity`, `EntityAlreadyExists`, `ValidationError`, ...) and the
//! status each has in botocore's `iam` model.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferrule_store::RegistryError;

use crate::sigv4::AuthError;

/// The content type of JSON 1.1 requests and responses.
pub(crate) const JSON_11: &str = "application/x-amz-json-1.1";

/// An API call that failed, as the AWS error code botocore will see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something not allowed (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The resource does not exist (404).
    #[error("{0}")]
    ResourceNotFound(String),
    /// The resource exists already (409), with its id and ARN.
    #[error("{message}")]
    ResourceAlreadyExists {
        /// What happened.
        message: String,
        /// The existing resource's id (certificate id, policy or thing name).
        resource_id: String,
        /// The existing resource's ARN.
        resource_arn: String,
    },
    /// A certificate could not be parsed or verified (400).
    #[error("{0}")]
    CertificateValidation(String),
    /// The verification certificate's CN is not the registration code (400).
    #[error("{0}")]
    RegistrationCodeValidation(String),
    /// The certificate's state forbids the operation (406).
    #[error("{0}")]
    CertificateState(String),
    /// Several registered CAs could have signed the certificate (409).
    #[error("{0}")]
    CertificateConflict(String),
    /// The resource is still in use (409).
    #[error("{0}")]
    DeleteConflict(String),
    /// The policy already has 5 versions (409).
    #[error("{0}")]
    VersionsLimitExceeded(String),
    /// `expectedVersion` is not the current version (409).
    #[error("{0}")]
    VersionConflict(String),
    /// A quota would be exceeded (410).
    #[error("{0}")]
    LimitExceeded(String),
    /// The policy document is malformed (400).
    #[error("{0}")]
    MalformedPolicy(String),
    /// A topic rule's SQL statement cannot be parsed (400); the message names the position.
    #[error("{0}")]
    SqlParse(String),
    /// Not allowed (401). AWS also answers this, not `ResourceNotFoundException`, when a topic
    /// rule does not exist (its model lists no other error for the rule operations), and so
    /// does Ferrule.
    #[error("{0}")]
    Unauthorized(String),
    /// A query-protocol (form) body could not be decoded (400, `MalformedQueryString`).
    #[error("{0}")]
    MalformedQuery(String),
    /// No operation has this method and path (404).
    #[error("No operation matches {method} {path}")]
    UnknownOperation {
        /// The request method.
        method: String,
        /// The request path, as sent.
        path: String,
    },
    /// The request is not authenticated (403, or 400 when the signature data is malformed).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The caller's identity policies do not allow the request (403; `AccessDenied` in IAM's
    /// query protocol; 400 in JSON 1.1). The message is AWS's: who, which action on which
    /// resource, and why.
    #[error("{0}")]
    AccessDenied(String),
    /// Ferrule failed (500). The message sent to the client is generic; the detail is logged.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The AWS error code botocore matches on (`ClientError.response["Error"]["Code"]`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "InvalidRequestException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::ResourceAlreadyExists { .. } => "ResourceAlreadyExistsException",
            ApiError::CertificateValidation(_) => "CertificateValidationException",
            ApiError::RegistrationCodeValidation(_) => "RegistrationCodeValidationException",
            ApiError::CertificateState(_) => "CertificateStateException",
            ApiError::CertificateConflict(_) => "CertificateConflictException",
            ApiError::DeleteConflict(_) => "DeleteConflictException",
            ApiError::VersionsLimitExceeded(_) => "VersionsLimitExceededException",
            ApiError::VersionConflict(_) => "VersionConflictException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::MalformedPolicy(_) => "MalformedPolicyException",
            ApiError::SqlParse(_) => "SqlParseException",
            ApiError::Unauthorized(_) => "UnauthorizedException",
            ApiError::UnknownOperation { .. } => "UnknownOperationException",
            ApiError::MalformedQuery(_) => "MalformedQueryString",
            ApiError::Auth(e) => e.code(),
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::Internal(_) => "InternalFailureException",
        }
    }

    /// The HTTP status AWS IoT answers this code with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::CertificateValidation(_)
            | ApiError::RegistrationCodeValidation(_)
            | ApiError::MalformedPolicy(_)
            | ApiError::MalformedQuery(_)
            | ApiError::SqlParse(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ResourceNotFound(_) | ApiError::UnknownOperation { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::CertificateState(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::ResourceAlreadyExists { .. }
            | ApiError::CertificateConflict(_)
            | ApiError::DeleteConflict(_)
            | ApiError::VersionsLimitExceeded(_)
            | ApiError::VersionConflict(_) => StatusCode::CONFLICT,
            ApiError::LimitExceeded(_) => StatusCode::GONE,
            ApiError::Auth(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
            ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A required member is missing.
    pub(crate) fn missing(member: &str) -> ApiError {
        ApiError::InvalidRequest(format!("{member} is required but was not given"))
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound { .. } => ApiError::ResourceNotFound(e.to_string()),
            RegistryError::AlreadyExists { ref id, .. } => ApiError::ResourceAlreadyExists {
                message: e.to_string(),
                resource_id: id.clone(),
                resource_arn: String::new(),
            },
            RegistryError::DeleteConflict(m) => ApiError::DeleteConflict(m),
            RegistryError::VersionsLimitExceeded(m) => ApiError::VersionsLimitExceeded(m),
            RegistryError::VersionConflict(m) => ApiError::VersionConflict(m),
            RegistryError::LimitExceeded(m) => ApiError::LimitExceeded(m),
            RegistryError::CertificateState(m) => ApiError::CertificateState(m),
            RegistryError::InvalidRequest(m) => ApiError::InvalidRequest(m),
            other => {
                tracing::error!(error = %other, "registry failure");
                ApiError::Internal(format!("the registry failed: {other}"))
            }
        }
    }
}

/// The wire protocol an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// AWS IoT's rest-json: a status per code.
    RestJson,
    /// CloudWatch Logs' JSON 1.1: 400 for client errors, 500 for server errors.
    Json11,
    /// IAM's query protocol: XML errors, IAM's codes and statuses.
    Query,
}

/// An [`ApiError`] answered in IAM's query protocol, with the request id the XML body
/// carries (botocore's query parser reads it from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub(crate) error: ApiError,
    pub(crate) request_id: String,
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let QueryError { error, request_id } = self;
        let code = error.code_in(Protocol::Query);
        let status = error.status_in(Protocol::Query);
        let fault = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{IAM_XMLNS}\"><Error><Type>{fault}</Type><Code>{code}</Code>\
             <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            xml_escape(&error.client_message()),
            xml_escape(&request_id)
        );
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
        response
    }
}

/// The XML namespace of IAM's responses.
pub(crate) const IAM_XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// `text` with XML's five special characters escaped.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// An [`ApiError`] answered in the JSON 1.1 protocol (`X-Amz-Target` services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Json11Error(pub(crate) ApiError);

impl From<ApiError> for Json11Error {
    fn from(e: ApiError) -> Self {
        Json11Error(e)
    }
}

impl From<RegistryError> for Json11Error {
    fn from(e: RegistryError) -> Self {
        Json11Error(e.into())
    }
}

impl IntoResponse for Json11Error {
    fn into_response(self) -> Response {
        self.0.response(Protocol::Json11)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response(Protocol::RestJson)
    }
}

impl ApiError {
    /// The response in `protocol`; `request_id` goes into query-protocol bodies.
    pub(crate) fn into_response_in(self, protocol: Protocol, request_id: String) -> Response {
        match protocol {
            Protocol::Query => QueryError {
                error: self,
                request_id,
            }
            .into_response(),
            other => self.response(other),
        }
    }

    /// The code in `protocol`: JSON 1.1 services name a few codes differently.
    fn code_in(&self, protocol: Protocol) -> &'static str {
        match (protocol, self) {
            (Protocol::Json11, ApiError::InvalidRequest(_)) => "InvalidParameterException",
            (Protocol::Query, ApiError::InvalidRequest(_)) => "ValidationError",
            (Protocol::Query, ApiError::ResourceNotFound(_)) => "NoSuchEntity",
            (Protocol::Query, ApiError::ResourceAlreadyExists { .. }) => "EntityAlreadyExists",
            (Protocol::Query, ApiError::MalformedPolicy(_)) => "MalformedPolicyDocument",
            (Protocol::Query, ApiError::DeleteConflict(_)) => "DeleteConflict",
            (Protocol::Query, ApiError::LimitExceeded(_)) => "LimitExceeded",
            (Protocol::Query, ApiError::UnknownOperation { .. }) => "InvalidAction",
            (Protocol::Query, ApiError::Internal(_)) => "ServiceFailure",
            (Protocol::Query, ApiError::AccessDenied(_)) => "AccessDenied",
            // The query-protocol services' names for the SigV4 failures.
            (Protocol::Query, ApiError::Auth(e)) => match e {
                AuthError::Missing => "MissingAuthenticationToken",
                AuthError::Incomplete(_) => "IncompleteSignature",
                AuthError::UnknownAccessKey => "InvalidClientTokenId",
                AuthError::ExpiredToken => "ExpiredToken",
                AuthError::SignatureMismatch | AuthError::Invalid(_) => "SignatureDoesNotMatch",
            },
            _ => self.code(),
        }
    }

    /// The status in `protocol`.
    fn status_in(&self, protocol: Protocol) -> StatusCode {
        match (protocol, self) {
            (Protocol::RestJson, _) => self.status(),
            (Protocol::Json11, ApiError::Auth(_)) => self.status(),
            (Protocol::Json11, ApiError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            (Protocol::Json11, _) => StatusCode::BAD_REQUEST,
            // The statuses of botocore's `iam` model (`httpStatusCode` of each error shape).
            (
                Protocol::Query,
                ApiError::Auth(_) | ApiError::AccessDenied(_) | ApiError::Internal(_),
            ) => self.status(),
            (Protocol::Query, ApiError::ResourceNotFound(_)) => StatusCode::NOT_FOUND,
            (
                Protocol::Query,
                ApiError::ResourceAlreadyExists { .. }
                | ApiError::DeleteConflict(_)
                | ApiError::LimitExceeded(_),
            ) => StatusCode::CONFLICT,
            (Protocol::Query, _) => StatusCode::BAD_REQUEST,
        }
    }

    /// The message sent to the client.
    fn client_message(&self) -> String {
        match self {
            // The detail is in the server's log; clients get no internals.
            ApiError::Internal(_) => {
                "An internal error occurred; the server log has the details.".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn response(self, protocol: Protocol) -> Response {
        let code = self.code_in(protocol);
        let message = self.client_message();
        let mut body = serde_json::json!({ "__type": code, "message": message });
        if let (
            Protocol::RestJson,
            ApiError::ResourceAlreadyExists {
                resource_id,
                resource_arn,
                ..
            },
        ) = (protocol, &self)
        {
            body["resourceId"] = resource_id.as_str().into();
            if !resource_arn.is_empty() {
                body["resourceArn"] = resource_arn.as_str().into();
            }
        }
        let content_type = match protocol {
            Protocol::RestJson => "application/json",
            // Query errors are written by `QueryError` as XML; the arm only completes the match.
            Protocol::Json11 | Protocol::Query => JSON_11,
        };
        let mut response = (self.status_in(protocol), body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
        response
    }
}
