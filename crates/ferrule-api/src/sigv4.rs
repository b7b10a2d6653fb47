//! AWS Signature Version 4 verification, server side.
//!
//! The verifier recomputes the signature the client must have made and compares it in constant
//! time. It is pure: the request arrives as borrowed parts, the clock as `now` (Unix seconds)
//! and the secrets through a lookup closure, so tests can feed it requests signed by botocore.
//!
//! Both forms are accepted: the `Authorization: AWS4-HMAC-SHA256 Credential=...,
//! SignedHeaders=..., Signature=...` header and the presigned query (`X-Amz-Algorithm`,
//! `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`).
//!
//! What is checked, beyond the signature itself: the scope's date equals `X-Amz-Date`'s date,
//! the scope ends in `aws4_request`, `host` is signed, the request time is within 15 minutes of
//! `now` (and, presigned, not past `X-Amz-Expires`), and a hex `x-amz-content-sha256` matches
//! the body. The scope's service name is reported to the caller, not checked: one endpoint
//! serves several AWS services.
//!
//! Looking the secret up may need IO (IAM access keys and role sessions live in the registry),
//! so a caller first reads the key id with [`access_key_id`], looks its secret up however it
//! likes, and then calls [`verify`] with it. Temporary credentials also carry a session token
//! ([`security_token`]); checking it against the session is the caller's business.
//!
//! Header values are handled as bytes, so a non-UTF-8 header can fail a signature but never
//! panics the verifier.

use aws_lc_rs::{digest, hmac};
use axum::http::HeaderMap;

/// Largest difference between the request's time and the server's clock, as AWS allows.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// Longest validity of a presigned request (`X-Amz-Expires`), as AWS allows: seven days.
pub const MAX_PRESIGNED_EXPIRES_SECS: i64 = 7 * 24 * 3600;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A request to verify, as it arrived: raw (still percent-encoded) path and query.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The request path exactly as sent, before any percent-decoding.
    pub raw_path: &'a str,
    /// The query string exactly as sent, without the `?`.
    pub raw_query: Option<&'a str>,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The whole request body.
    pub body: &'a [u8],
}

/// Who signed a request that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// The region from the credential scope.
    pub region: String,
    /// The service name from the credential scope (`iot`, `iotdata`, `lambda`, ...).
    pub service: String,
}

/// Why a request was not authenticated. Each maps to one AWS error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor a presigned query: `MissingAuthenticationTokenException`.
    #[error("Missing Authentication Token")]
    Missing,
    /// The authorization data is malformed or incomplete: `IncompleteSignatureException`.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not known, or its session token is not the one sent:
    /// `UnrecognizedClientException`.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    /// The temporary credentials (a role session) have expired: `ExpiredTokenException`.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// The signature does not verify: `InvalidSignatureException`.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
         Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
    /// The request is signed correctly but not acceptable (clock skew, expiry, scope):
    /// `InvalidSignatureException` with the reason.
    #[error("{0}")]
    Invalid(String),
}

impl AuthError {
    /// The AWS error code botocore matches on.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::UnknownAccessKey => "UnrecognizedClientException",
            AuthError::ExpiredToken => "ExpiredTokenException",
            AuthError::SignatureMismatch | AuthError::Invalid(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

/// The parsed authorization data, from the header or the query.
struct Authorization {
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    /// `X-Amz-Date` as sent.
    amz_date: String,
    /// Presigned only: `X-Amz-Expires`.
    expires: Option<i64>,
}

/// The access key id `req` claims (from the `Authorization` header's credential scope, or the
/// presigned query's `X-Amz-Credential`), or `None` when the authorization data cannot be read:
/// [`verify`] then reports why.
pub fn access_key_id(req: &SignedRequest<'_>) -> Option<String> {
    authorization(req).ok().map(|a| a.access_key_id)
}

/// The session token sent with temporary credentials: the `X-Amz-Security-Token` header, or
/// the presigned query parameter of that name.
pub fn security_token(req: &SignedRequest<'_>) -> Option<String> {
    if let Some(v) = req.headers.get("x-amz-security-token") {
        return Some(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    req.raw_query
        .map(split_query)
        .unwrap_or_default()
        .iter()
        .find(|(k, _)| decode(k) == b"X-Amz-Security-Token")
        .map(|(_, v)| decode_string(v))
}

/// The authorization data of `req`, from the header or the presigned query.
fn authorization(req: &SignedRequest<'_>) -> Result<Authorization, AuthError> {
    let query_pairs = req.raw_query.map(split_query).unwrap_or_default();
    let presigned = query_pairs
        .iter()
        .any(|(k, _)| decode(k) == b"X-Amz-Signature");
    match req.headers.get(axum::http::header::AUTHORIZATION) {
        Some(value) => parse_header(value.as_bytes(), req.headers),
        None if presigned => parse_query(&query_pairs),
        None => Err(AuthError::Missing),
    }
}

/// Verifies `req` against the secret `secret_for` returns for its access key, at time `now`
/// (Unix seconds).
pub fn verify<F>(req: &SignedRequest<'_>, now: i64, secret_for: F) -> Result<Verified, AuthError>
where
    F: FnOnce(&str) -> Option<String>,
{
    let query_pairs = req.raw_query.map(split_query).unwrap_or_default();
    let auth = authorization(req)?;
    let presigned = auth.expires.is_some();

    let time = parse_amz_date(&auth.amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            auth.amz_date
        ))
    })?;
    let date = &auth.amz_date[..8];
    if auth.scope_date != date {
        return Err(AuthError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != \
             '{date}', from '{}'.",
            auth.scope_date, auth.amz_date
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Invalid(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    check_time(time, now, auth.expires)?;

    let secret = secret_for(&auth.access_key_id).ok_or(AuthError::UnknownAccessKey)?;

    let payload_hash = payload_hash(req)?;
    let canonical = canonical_request(
        req,
        &query_pairs,
        presigned,
        &auth.signed_headers,
        &payload_hash,
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.scope_date, auth.region, auth.service
    );
    let canonical_hash = hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
    let string_to_sign = format!("{ALGORITHM}\n{}\n{scope}\n{canonical_hash}", auth.amz_date);
    let key = signing_key(&secret, &auth.scope_date, &auth.region, &auth.service);
    let provided = unhex(&auth.signature).ok_or(AuthError::SignatureMismatch)?;
    hmac::verify(&key, string_to_sign.as_bytes(), &provided)
        .map_err(|_| AuthError::SignatureMismatch)?;

    Ok(Verified {
        access_key_id: auth.access_key_id,
        region: auth.region,
        service: auth.service,
    })
}

fn check_time(time: i64, now: i64, expires: Option<i64>) -> Result<(), AuthError> {
    if time - now > MAX_SKEW_SECS {
        return Err(AuthError::Invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            format_amz_date(time),
            format_amz_date(now + MAX_SKEW_SECS),
            format_amz_date(now)
        )));
    }
    let valid_for = expires.unwrap_or(MAX_SKEW_SECS);
    if now - time > valid_for {
        return Err(AuthError::Invalid(match expires {
            None => format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                format_amz_date(time),
                format_amz_date(now - MAX_SKEW_SECS),
                format_amz_date(now)
            ),
            Some(secs) => format!(
                "Signature expired: {} is now earlier than {} ({} - {secs} sec.)",
                format_amz_date(time),
                format_amz_date(now - secs),
                format_amz_date(now)
            ),
        }));
    }
    Ok(())
}

fn parse_header(value: &[u8], headers: &HeaderMap) -> Result<Authorization, AuthError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| AuthError::Incomplete("Authorization header is not valid UTF-8.".into()))?
        .trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'."
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, v) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if v.is_none_or(str::is_empty) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok());
    if amz_date.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        );
    }
    match (credential, signed, signature, amz_date) {
        (Some(c), Some(h), Some(s), Some(d)) if missing.is_empty() => build(c, h, s, d, None),
        _ => {
            missing.push(format!("Authorization={value}"));
            Err(AuthError::Incomplete(missing.join(" ")))
        }
    }
}

fn parse_query(pairs: &[(&str, &str)]) -> Result<Authorization, AuthError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| decode(k) == name.as_bytes())
            .map(|(_, v)| decode_string(v))
    };
    let missing: Vec<String> = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ]
    .into_iter()
    .filter(|name| get(name).is_none())
    .map(|name| format!("'{name}'"))
    .collect();
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing.join(", ")
        )));
    }
    let value = |name: &str| get(name).unwrap_or_default();
    let algorithm = value("X-Amz-Algorithm");
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'."
        )));
    }
    let expires_raw = get("X-Amz-Expires").unwrap_or_else(|| "0".into());
    let expires: i64 = expires_raw
        .parse()
        .ok()
        .filter(|e| (0..=MAX_PRESIGNED_EXPIRES_SECS).contains(e))
        .ok_or_else(|| {
            AuthError::Incomplete(format!(
                "X-Amz-Expires must be a number of seconds between 0 and {MAX_PRESIGNED_EXPIRES_SECS}, not \
                 '{expires_raw}'."
            ))
        })?;
    build(
        &value("X-Amz-Credential"),
        &value("X-Amz-SignedHeaders"),
        &value("X-Amz-Signature"),
        &value("X-Amz-Date"),
        Some(expires),
    )
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    expires: Option<i64>,
) -> Result<Authorization, AuthError> {
    let mut parts = credential.rsplitn(5, '/');
    let (Some(terminator), Some(service), Some(region), Some(scope_date), Some(access_key_id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, service and date: '{credential}'."
        )));
    };
    if terminator != "aws4_request" {
        return Err(AuthError::Invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "Credential is incomplete: '{credential}'."
        )));
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
        amz_date: amz_date.to_owned(),
        expires,
    })
}

fn payload_hash(req: &SignedRequest<'_>) -> Result<String, AuthError> {
    let actual = || hex(digest::digest(&digest::SHA256, req.body).as_ref());
    match req
        .headers
        .get("x-amz-content-sha256")
        .map(|v| v.as_bytes())
    {
        Some(v) if v == UNSIGNED_PAYLOAD.as_bytes() => Ok(UNSIGNED_PAYLOAD.to_owned()),
        Some(v) => {
            let claimed = std::str::from_utf8(v)
                .unwrap_or_default()
                .to_ascii_lowercase();
            if claimed != actual() {
                return Err(AuthError::Invalid(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                ));
            }
            Ok(claimed)
        }
        None => Ok(actual()),
    }
}

fn canonical_request(
    req: &SignedRequest<'_>,
    query_pairs: &[(&str, &str)],
    presigned: bool,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path));
    out.push('\n');
    out.push_str(&canonical_query(query_pairs, presigned));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in req.headers.get_all(name.as_str()) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&collapse_whitespace(value.as_bytes()));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The path with dot segments and empty segments removed, then percent-encoded once more
/// (so `%2F` in the raw path becomes `%252F`), as every AWS service but S3 expects.
fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in raw_path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = String::new();
    if raw_path.starts_with('/') {
        path.push('/');
    }
    path.push_str(&segments.join("/"));
    if raw_path.ends_with('/') && !segments.is_empty() {
        path.push('/');
    }
    encode(path.as_bytes(), true)
}

fn canonical_query(pairs: &[(&str, &str)], presigned: bool) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !(presigned && decode(k) == b"X-Amz-Signature"))
        .map(|(k, v)| (encode(&decode(k), false), encode(&decode(v), false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn split_query(raw: &str) -> Vec<(&str, &str)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// Header values trimmed, with runs of whitespace collapsed to one space. Bytes outside ASCII
/// are kept as Latin-1 characters, as Python's http stack would read them.
fn collapse_whitespace(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.iter().map(|&b| char::from(b)));
    }
    out
}

fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

fn decode_string(s: &str) -> String {
    String::from_utf8_lossy(&decode(s)).into_owned()
}

/// RFC 3986 unreserved characters stay, everything else becomes `%XX`; `/` stays in paths.
fn encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// Signs `req` as a client would, with every header in `signed_headers` (which must include
/// `host`, and `x-amz-date` set to `amz_date`), and returns the `Authorization` header value.
/// For tests and tools that call the API; the payload hash is the body's SHA-256.
pub fn authorization_header(
    req: &SignedRequest<'_>,
    signed_headers: &[&str],
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> String {
    let query_pairs = req.raw_query.map(split_query).unwrap_or_default();
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort();
    let payload = hex(digest::digest(&digest::SHA256, req.body).as_ref());
    let canonical = canonical_request(req, &query_pairs, false, &names, &payload);
    let date = amz_date.get(..8).unwrap_or_default();
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let canonical_hash = hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{canonical_hash}");
    let signature = hex(hmac::sign(
        &signing_key(secret, date, region, service),
        string_to_sign.as_bytes(),
    )
    .as_ref());
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        names.join(";")
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Formats Unix seconds as `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests;
