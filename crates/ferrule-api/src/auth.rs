//! The layers in front of the operations: [`authenticate`] buffers the body, finds who signed
//! the request and verifies the SigV4 signature against the raw request, then lets
//! [`crate::access`] decide whether that caller may do what it asks; [`stamp_request_id`]
//! gives every response (errors and unknown routes included) an `x-amzn-RequestId`.
//!
//! Who signed: the access key id in the `Authorization` header (or presigned query) is looked
//! up first (the configured admin credentials, then IAM users' access keys, then IAM role
//! sessions in the registry), and the signature is verified with the secret found
//! ([`sigv4::verify`] stays pure). A role session's requests must also carry its session
//! token (`X-Amz-Security-Token`) and be made before it expires. Unknown and inactive keys get
//! the same `UnrecognizedClientException`.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;

use crate::ApiState;
use crate::access::{self, Asked, Caller};
use crate::error::{ApiError, Protocol};
use crate::sigv4::{self, AuthError, SignedRequest};

/// The largest request body accepted, but for Lambda's. Policy documents are the largest
/// legitimate input (the model allows 404600 characters); certificates and templates are far
/// smaller.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The largest body under [`LAMBDA_PREFIX`]: function code travels base64-encoded in JSON
/// (Lambda takes zips of up to 50 MB directly, about 67 MiB as base64).
pub(crate) const MAX_LAMBDA_BODY_BYTES: usize = 70 * 1024 * 1024;
/// Where Lambda's functions API lives.
const LAMBDA_PREFIX: &str = "/2015-03-31/functions";

/// The body limit for a request path.
pub(crate) fn body_limit(path: &str) -> usize {
    match path.strip_prefix(LAMBDA_PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => MAX_LAMBDA_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

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

/// Route layer: a request that matched an operation runs only with a valid signature, and
/// only if its caller may do what it asks. The [`Caller`] and the [`sigv4::Verified`] scope
/// are request extensions for the handlers.
pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let protocol = protocol_of(&method, req.uri(), req.headers());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match admit(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => {
            tracing::info!(%method, %path, code = e.code(), reason = %e, "request refused");
            e.into_response_in(protocol, request_id)
        }
    }
}

/// The protocol a refusal is written in: IAM's clients parse errors as XML only, and JSON 1.1
/// clients (CloudWatch Logs) expect its status and content type.
fn protocol_of(method: &Method, uri: &Uri, headers: &HeaderMap) -> Protocol {
    if crate::ops::is_query_request(method, uri, headers) {
        Protocol::Query
    } else if method == Method::POST && uri.path() == "/" && headers.contains_key("x-amz-target") {
        Protocol::Json11
    } else {
        Protocol::RestJson
    }
}

/// Authenticates, then authorizes, a request; gives it back with its body buffered.
async fn admit(state: &ApiState, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let limit = body_limit(parts.uri.path());
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::InvalidRequest(format!(
            "the request body is larger than {limit} bytes or was cut off"
        ))
    })?;
    let (verified, caller) = identify(state, &parts, &body).await?;
    if caller != Caller::Admin {
        authorize(state, &caller, &mut parts, &body).await?;
    }
    let mut req = Request::from_parts(parts, Body::from(body));
    req.extensions_mut().insert(verified);
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The caller an access key belongs to, with the secret to verify its signature by.
#[derive(Clone)]
pub(crate) struct KeyOwner {
    /// The secret access key.
    pub(crate) secret: String,
    /// Who signs with it.
    pub(crate) caller: Caller,
    /// For a role session: its token and expiry.
    pub(crate) session: Option<SessionToken>,
}

/// What a role session's requests must carry, and until when.
#[derive(Clone)]
pub(crate) struct SessionToken {
    /// `X-Amz-Security-Token`.
    pub(crate) token: String,
    /// Milliseconds since the Unix epoch; the session is expired from then on.
    pub(crate) expires_ms: i64,
}

/// Finds who signed the request and verifies the signature with their secret.
async fn identify(
    state: &ApiState,
    parts: &Parts,
    body: &Bytes,
) -> Result<(sigv4::Verified, Caller), ApiError> {
    let signed = SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let owner = match sigv4::access_key_id(&signed) {
        Some(key) => state.key_owner(&key).await?,
        None => None,
    };
    let secret = owner.as_ref().map(|o| o.secret.clone());
    let now_ms = crate::now_ms();
    let verified = sigv4::verify(&signed, now_ms.div_euclid(1000), |_| secret)?;
    // `verify` succeeds only with a secret, so an owner was found.
    let owner = owner.ok_or(AuthError::UnknownAccessKey)?;
    if let Some(session) = &owner.session {
        let sent = sigv4::security_token(&signed).unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), session.token.as_bytes()) {
            return Err(AuthError::UnknownAccessKey.into());
        }
        if session.expires_ms <= now_ms {
            return Err(AuthError::ExpiredToken.into());
        }
    }
    Ok((verified, owner.caller))
}

/// Whether `a == b`, in time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lets [`access::authorize`] decide on an IAM caller's request.
async fn authorize(
    state: &ApiState,
    caller: &Caller,
    parts: &mut Parts,
    body: &Bytes,
) -> Result<(), ApiError> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let labels: Vec<(String, String)> = match RawPathParams::from_request_parts(parts, state).await
    {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let asked = Asked {
        method: &parts.method,
        route: &route,
        labels: &labels,
        query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
    access::authorize(state, caller, &asked, peer).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_paths_take_larger_bodies() {
        assert_eq!(body_limit("/2015-03-31/functions"), MAX_LAMBDA_BODY_BYTES);
        assert_eq!(body_limit("/2015-03-31/functions/"), MAX_LAMBDA_BODY_BYTES);
        assert_eq!(
            body_limit("/2015-03-31/functions/f/code"),
            MAX_LAMBDA_BODY_BYTES
        );
        assert_eq!(body_limit("/2015-03-31/functionsx"), MAX_BODY_BYTES);
        assert_eq!(body_limit("/things/x"), MAX_BODY_BYTES);
        assert_eq!(body_limit("/"), MAX_BODY_BYTES);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokeN"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"t"));
    }
}
