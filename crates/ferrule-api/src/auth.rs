//! The layers in front of the operations: [`authenticate`] buffers the body and verifies the
//! SigV4 signature against the raw request; [`stamp_request_id`] gives every response (errors
//! and unknown routes included) an `x-amzn-RequestId`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiState;
use crate::error::{ApiError, QueryError};
use crate::sigv4::{self, SignedRequest};

/// The largest request body accepted. Policy documents are the largest legitimate input
/// (the model allows 404600 characters); certificates and templates are far smaller.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Outermost layer: every response, errors and unknown routes included, gets an
/// `x-amzn-RequestId` (botocore reports it as `ResponseMetadata.RequestId`).
pub(crate) async fn stamp_request_id(mut req: Request, next: Next) -> Response {
    let request_id = new_request_id();
    // Query-protocol (IAM) responses carry the id in their XML body too.
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    tracing::debug!(%method, %path, status = response.status().as_u16(), request_id, "api call");
    response
}

/// The id [`stamp_request_id`] gave the request, as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub(crate) String);

/// Route layer: a request that matched an operation runs only with a valid signature.
pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // IAM's clients parse errors as XML only.
    let query = crate::ops::is_query_request(&method, req.uri(), req.headers());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match verify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => {
            tracing::info!(%method, %path, code = e.code(), reason = %e, "request refused");
            if query {
                QueryError {
                    error: e,
                    request_id,
                }
                .into_response()
            } else {
                e.into_response()
            }
        }
    }
}

async fn verify(state: &ApiState, req: Request) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::InvalidRequest(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes or was cut off"
            ))
        })?;
    let signed = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let now = crate::now_ms().div_euclid(1000);
    let who = sigv4::verify(&signed, now, |key| state.secret_for(key))?;
    let mut req = Request::from_parts(parts, Body::from(body));
    req.extensions_mut().insert(who);
    Ok(req)
}

/// A random UUID (version 4) for `x-amzn-RequestId`.
pub(crate) fn new_request_id() -> String {
    uuid_from_hex(&ferrule_pki::random_hex(16))
}

/// Formats 32 random hex digits as a version-4 UUID.
pub(crate) fn uuid_from_hex(hex: &str) -> String {
    let h = hex.as_bytes();
    let s = |r: std::ops::Range<usize>| hex.get(r).unwrap_or("0");
    // Version nibble 4, variant bits 10xx: a well-formed random UUID.
    let variant = match h.get(16) {
        Some(b'0' | b'4' | b'8' | b'c') => '8',
        Some(b'1' | b'5' | b'9' | b'd') => '9',
        Some(b'2' | b'6' | b'a' | b'e') => 'a',
        _ => 'b',
    };
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        s(0..8),
        s(8..12),
        s(13..16),
        s(17..20),
        s(20..32)
    )
}
