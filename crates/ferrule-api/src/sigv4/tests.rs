#![allow(clippy::unwrap_used)]

use std::process::Command;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const VANILLA_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn vanilla_headers(signature: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={signature}"
    );
    h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    h
}

const VANILLA_SIGNATURE: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
const VANILLA_NOW: i64 = 1_440_938_160; // 2015-08-30T12:36:00Z

fn get_root(headers: &HeaderMap) -> SignedRequest<'_> {
    SignedRequest {
        method: "GET",
        raw_path: "/",
        raw_query: None,
        headers,
        body: b"",
    }
}

fn vanilla_secret(key: &str) -> Option<String> {
    (key == "AKIDEXAMPLE").then(|| VANILLA_SECRET.to_owned())
}

#[test]
fn aws_test_suite_get_vanilla_verifies() {
    let h = vanilla_headers(VANILLA_SIGNATURE);
    let v = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap();
    assert_eq!(
        v,
        Verified {
            access_key_id: "AKIDEXAMPLE".into(),
            region: "us-east-1".into(),
            service: "service".into()
        }
    );
}

#[test]
fn wrong_secret_is_a_signature_mismatch() {
    let h = vanilla_headers(VANILLA_SIGNATURE);
    let err = verify(&get_root(&h), VANILLA_NOW, |_| {
        Some("not-the-secret".into())
    })
    .unwrap_err();
    assert_eq!(err, AuthError::SignatureMismatch);
    assert_eq!(
        (err.code(), err.status()),
        ("InvalidSignatureException", 403)
    );
}

#[test]
fn unknown_key_is_unrecognized_client() {
    let h = vanilla_headers(VANILLA_SIGNATURE);
    let err = verify(&get_root(&h), VANILLA_NOW, |_| None).unwrap_err();
    assert_eq!(err.code(), "UnrecognizedClientException");
    assert_eq!(
        err.to_string(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn missing_authorization_is_missing_token() {
    let h = HeaderMap::new();
    let err = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err();
    assert_eq!(
        (err.code(), err.status()),
        ("MissingAuthenticationTokenException", 403)
    );
}

#[test]
fn clock_skew_beyond_15_minutes_is_refused_both_ways() {
    let h = vanilla_headers(VANILLA_SIGNATURE);
    for now in [VANILLA_NOW + MAX_SKEW_SECS, VANILLA_NOW - MAX_SKEW_SECS] {
        verify(&get_root(&h), now, vanilla_secret).unwrap();
    }
    let late = verify(
        &get_root(&h),
        VANILLA_NOW + MAX_SKEW_SECS + 1,
        vanilla_secret,
    )
    .unwrap_err();
    assert_eq!(late.code(), "InvalidSignatureException");
    assert!(
        late.to_string()
            .starts_with("Signature expired: 20150830T123600Z is now earlier than"),
        "{late}"
    );
    let early = verify(
        &get_root(&h),
        VANILLA_NOW - MAX_SKEW_SECS - 1,
        vanilla_secret,
    )
    .unwrap_err();
    assert!(
        early.to_string().starts_with("Signature not yet current"),
        "{early}"
    );
}

#[test]
fn scope_date_must_match_x_amz_date() {
    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    h.insert("x-amz-date", HeaderValue::from_static("20150831T000100Z"));
    let err = verify(
        &get_root(&h),
        VANILLA_NOW + 11 * 3600 + 25 * 60,
        vanilla_secret,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Date in Credential scope does not match"),
        "{err}"
    );
}

#[test]
fn host_must_be_signed() {
    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=x-amz-date, Signature=00";
    h.insert("authorization", HeaderValue::from_static(auth));
    let err = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err();
    assert!(err.to_string().contains("'Host'"), "{err}");
}

#[test]
fn malformed_authorization_headers_are_incomplete_not_panics() {
    let cases: &[&[u8]] = &[
        b"AWS4-HMAC-SHA256",
        b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
        b"AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
        b"AWS4-HMAC-SHA256 Credential=onlykey, SignedHeaders=host, Signature=ab",
        b"AWS3 Credential=a",
        b"AWS4-HMAC-SHA256 Credential=\xff\xfe/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=ab",
        b"",
    ];
    for raw in cases {
        let mut h = vanilla_headers(VANILLA_SIGNATURE);
        h.insert("authorization", HeaderValue::from_bytes(raw).unwrap());
        let err = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err();
        assert_eq!(
            err.code(),
            "IncompleteSignatureException",
            "{:?}: {err}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn bad_date_and_bad_terminator_are_refused() {
    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    h.insert(
        "x-amz-date",
        HeaderValue::from_static("2015-08-30T12:36:00Z"),
    );
    assert_eq!(
        verify(&get_root(&h), VANILLA_NOW, vanilla_secret)
            .unwrap_err()
            .code(),
        "IncompleteSignatureException"
    );

    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, \
                SignedHeaders=host;x-amz-date, Signature=00";
    h.insert("authorization", HeaderValue::from_static(auth));
    let err = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err();
    assert!(err.to_string().contains("terminator"), "{err}");
}

#[test]
fn non_utf8_signed_header_fails_cleanly() {
    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    h.insert("x-odd", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=host;x-amz-date;x-odd, Signature=abcd";
    h.insert("authorization", HeaderValue::from_static(auth));
    assert_eq!(
        verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err(),
        AuthError::SignatureMismatch
    );
}

#[test]
fn content_sha256_header_must_match_the_body() {
    let mut h = vanilla_headers(VANILLA_SIGNATURE);
    h.insert("x-amz-content-sha256", HeaderValue::from_static("00ff"));
    let err = verify(&get_root(&h), VANILLA_NOW, vanilla_secret).unwrap_err();
    assert!(err.to_string().contains("x-amz-content-sha256"), "{err}");
}

#[test]
fn amz_dates_round_trip() {
    for s in [
        "19700101T000000Z",
        "20150830T123600Z",
        "20000229T235959Z",
        "20991231T235959Z",
    ] {
        assert_eq!(format_amz_date(parse_amz_date(s).unwrap()), s);
    }
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(VANILLA_NOW));
    for bad in [
        "2015083T123600Z",
        "20151330T123600Z",
        "20150830 123600Z",
        "2015083xT123600Z",
        "+0150830T123600Z",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

#[test]
fn canonical_uri_double_encodes_and_normalises() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a%2Fb"), "/a%252Fb");
    assert_eq!(canonical_uri("/things//a/./b/../c/"), "/things/a/c/");
    assert_eq!(canonical_uri("/x y~"), "/x%20y~");
}

#[test]
fn canonical_query_sorts_and_reencodes() {
    let pairs = split_query("b=2&a=z%2Bx&a=y&c&d=%7e");
    assert_eq!(canonical_query(&pairs, false), "a=y&a=z%2Bx&b=2&c=&d=~");
}

/// A request botocore signed, as printed by tests/python/sigv4_fixtures.py.
#[derive(serde::Deserialize)]
struct Fixture {
    name: String,
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body_hex: String,
    access_key_id: String,
    secret_access_key: String,
}

impl Fixture {
    fn header_map(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in &self.headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn body(&self) -> Vec<u8> {
        unhex(&self.body_hex).unwrap()
    }

    /// The time the request was signed, from its X-Amz-Date (header or query).
    fn signed_at(&self) -> i64 {
        let h = self.header_map();
        let from_header = h.get("x-amz-date").map(|v| v.to_str().unwrap().to_owned());
        let from_query = self.query.as_deref().and_then(|q| {
            split_query(q)
                .into_iter()
                .find(|(k, _)| *k == "X-Amz-Date")
                .map(|(_, v)| v.to_owned())
        });
        parse_amz_date(&from_header.or(from_query).unwrap()).unwrap()
    }

    fn verify_with(
        &self,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Verified, AuthError> {
        let req = SignedRequest {
            method: &self.method,
            raw_path: path,
            raw_query: query,
            headers,
            body,
        };
        verify(&req, self.signed_at() + 5, |k| {
            (k == self.access_key_id).then(|| self.secret_access_key.clone())
        })
    }
}

fn botocore_fixtures() -> Vec<Fixture> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/sigv4_fixtures.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "fixture script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn requests_signed_by_botocore_verify_and_tampered_ones_do_not() {
    let fixtures = botocore_fixtures();
    assert!(
        fixtures.len() >= 10,
        "expected the whole fixture set, got {}",
        fixtures.len()
    );
    for f in &fixtures {
        let headers = f.header_map();
        let body = f.body();
        let v = f
            .verify_with(&f.path, f.query.as_deref(), &headers, &body)
            .unwrap_or_else(|e| panic!("{}: botocore's signature did not verify: {e}", f.name));
        assert_eq!(v.access_key_id, f.access_key_id, "{}", f.name);

        // A different path.
        let tampered_path = format!("{}x", f.path);
        assert_eq!(
            f.verify_with(&tampered_path, f.query.as_deref(), &headers, &body)
                .unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: tampered path",
            f.name
        );
        // An extra query parameter.
        let tampered_query = match &f.query {
            Some(q) => format!("{q}&extra=1"),
            None => "extra=1".to_owned(),
        };
        assert_eq!(
            f.verify_with(&f.path, Some(&tampered_query), &headers, &body)
                .unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: tampered query",
            f.name
        );
        // A different body (presigned requests sign the empty body too).
        let mut tampered_body = body.clone();
        tampered_body.push(b' ');
        assert_eq!(
            f.verify_with(&f.path, f.query.as_deref(), &headers, &tampered_body)
                .unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: tampered body",
            f.name
        );
        // A different value of a signed header.
        let mut tampered_headers = headers.clone();
        tampered_headers.insert("host", HeaderValue::from_static("127.0.0.1:9001"));
        assert_eq!(
            f.verify_with(&f.path, f.query.as_deref(), &tampered_headers, &body)
                .unwrap_err(),
            AuthError::SignatureMismatch,
            "{}: tampered host",
            f.name
        );
        // Unsigned headers may change freely.
        let mut extra_headers = headers.clone();
        extra_headers.insert("user-agent", HeaderValue::from_static("something else"));
        f.verify_with(&f.path, f.query.as_deref(), &extra_headers, &body)
            .unwrap_or_else(|e| panic!("{}: an unsigned header changed the result: {e}", f.name));
    }
}

#[test]
fn presigned_request_expires() {
    let fixtures = botocore_fixtures();
    let f = fixtures.iter().find(|f| f.name == "presigned").unwrap();
    let headers = f.header_map();
    let req = SignedRequest {
        method: &f.method,
        raw_path: &f.path,
        raw_query: f.query.as_deref(),
        headers: &headers,
        body: b"",
    };
    let secret = |_: &str| Some(f.secret_access_key.clone());
    verify(&req, f.signed_at() + 300, secret).unwrap();
    let err = verify(&req, f.signed_at() + 301, secret).unwrap_err();
    assert!(err.to_string().starts_with("Signature expired"), "{err}");
}

#[test]
fn own_signer_agrees_with_the_verifier() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let body = br#"{"target":"x"}"#;
    let unsigned_headers = h.clone();
    let unsigned = SignedRequest {
        method: "PUT",
        raw_path: "/target-policies/p%2Fq",
        raw_query: Some("b=1&a=2"),
        headers: &unsigned_headers,
        body,
    };
    let auth = authorization_header(
        &unsigned,
        &["Host", "x-amz-date", "content-type"],
        "AKIDEXAMPLE",
        VANILLA_SECRET,
        "us-east-1",
        "iot",
        "20150830T123600Z",
    );
    h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let signed = SignedRequest {
        headers: &h,
        ..unsigned
    };
    verify(&signed, VANILLA_NOW, vanilla_secret).unwrap();
}
