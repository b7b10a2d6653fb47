//! Router tests without a socket: routing, authentication and error mapping.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::sigv4::{self, SignedRequest};
use crate::{ApiConfig, ApiState, Credential};

const KEY: &str = "AKIDROUTERTEST";
pub(super) const SECRET: &str = "router-test-secret";

pub(super) struct Harness {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

pub(super) async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let registry = ferrule_store::Registry::open_sqlite(&dir.path().join("ferrule.db"))
        .await
        .unwrap();
    let issuer = Arc::new(ferrule_pki::Issuer::load_or_create(dir.path()).unwrap());
    let config = ApiConfig {
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        mqtt_endpoint: "localhost:8883".into(),
        credentials: vec![Credential {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
        }],
    };
    Harness {
        app: super::router(ApiState::new(config, registry, issuer)),
        _dir: dir,
    }
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Value,
}

impl Reply {
    pub(super) fn code(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

impl Harness {
    /// Sends a request signed with `secret` (None: unsigned).
    pub(super) async fn send_as(
        &self,
        method: &str,
        uri: &str,
        body: &str,
        headers: &[(&str, &str)],
        secret: Option<&str>,
    ) -> Reply {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let amz_date = sigv4::format_amz_date(crate::now_ms() / 1000);
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        h.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
        for (k, v) in headers {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        if let Some(secret) = secret {
            let names: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let signed = SignedRequest {
                method,
                raw_path: path,
                raw_query: query,
                headers: &h,
                body: body.as_bytes(),
            };
            let auth = sigv4::authorization_header(
                &signed,
                &names,
                KEY,
                secret,
                "us-east-1",
                "iot",
                &amz_date,
            );
            h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        }
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        *req.headers_mut() = h;
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // XML (IAM) bodies are kept as text.
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(super) async fn send(&self, method: &str, uri: &str, body: &str) -> Reply {
        self.send_as(method, uri, body, &[], Some(SECRET)).await
    }
}

pub(super) fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.code(), code, "{:?}", r.body);
    assert_eq!(r.body["__type"], code, "{:?}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{:?}",
        r.body
    );
    assert!(r.headers.contains_key("x-amzn-requestid"));
}

#[tokio::test]
async fn unsigned_requests_are_refused_with_missing_token() {
    let h = harness().await;
    let r = h.send_as("GET", "/registrationcode", "", &[], None).await;
    assert_error(&r, 403, "MissingAuthenticationTokenException");
    // A known path with another method still needs a signature before anything is said.
    let r = h.send_as("PATCH", "/registrationcode", "", &[], None).await;
    assert_error(&r, 403, "MissingAuthenticationTokenException");
    // An unknown path is a plain 404, signed or not.
    let r = h.send_as("GET", "/nowhere", "", &[], None).await;
    assert_error(&r, 404, "UnknownOperationException");
}

#[tokio::test]
async fn wrong_secret_is_an_invalid_signature() {
    let h = harness().await;
    let r = h
        .send_as("GET", "/registrationcode", "", &[], Some("wrong"))
        .await;
    assert_error(&r, 403, "InvalidSignatureException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_with_an_error_body() {
    let h = harness().await;
    assert_error(
        &h.send("GET", "/no-such-operation", "").await,
        404,
        "UnknownOperationException",
    );
    // A known path with a method it does not have.
    assert_error(
        &h.send("PATCH", "/registrationcode", "").await,
        404,
        "UnknownOperationException",
    );
}

#[tokio::test]
async fn success_carries_a_request_id_and_json() {
    let h = harness().await;
    let first = h.send("GET", "/registrationcode", "").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.contains_key("x-amzn-requestid"));
    let code = first.body["registrationCode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 64);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        h.send("GET", "/registrationcode", "").await.body["registrationCode"],
        code.as_str()
    );
    assert_eq!(
        h.send("DELETE", "/registrationcode", "").await.status,
        StatusCode::OK
    );
    assert_error(
        &h.send("DELETE", "/registrationcode", "").await,
        404,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn malformed_input_is_invalid_request_naming_the_member() {
    let h = harness().await;
    let r = h.send("POST", "/policies/p1", "{not json").await;
    assert_error(&r, 400, "InvalidRequestException");

    let r = h
        .send("POST", "/policies/p1", r#"{"policyDocument": 5}"#)
        .await;
    assert_error(&r, 400, "InvalidRequestException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("policyDocument"),
        "{:?}",
        r.body
    );

    let r = h.send("POST", "/policies/p1", "{}").await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("policyDocument"),
        "{:?}",
        r.body
    );

    let r = h.send("GET", "/certificates?pageSize=0", "").await;
    assert_error(&r, 400, "InvalidRequestException");
    assert!(
        r.body["message"].as_str().unwrap().contains("pageSize"),
        "{:?}",
        r.body
    );

    let r = h
        .send("GET", "/certificates?isAscendingOrder=maybe", "")
        .await;
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("isAscendingOrder"),
        "{:?}",
        r.body
    );

    let r = h.send("GET", "/certificates/not-an-id", "").await;
    assert_error(&r, 400, "InvalidRequestException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("certificateId"),
        "{:?}",
        r.body
    );

    let r = h
        .send(
            "PUT",
            &format!("/certificates/{}?newStatus=SOMETIMES", "a".repeat(64)),
            "",
        )
        .await;
    assert!(
        r.body["message"].as_str().unwrap().contains("newStatus"),
        "{:?}",
        r.body
    );

    let r = h.send("GET", "/endpoint?endpointType=iot:Nope", "").await;
    assert_error(&r, 400, "InvalidRequestException");
}

#[tokio::test]
async fn registry_errors_map_to_aws_codes_and_statuses() {
    let h = harness().await;
    assert_error(
        &h.send("GET", "/things/missing-thing", "").await,
        404,
        "ResourceNotFoundException",
    );
    assert_error(
        &h.send("GET", &format!("/certificates/{}", "b".repeat(64)), "")
            .await,
        404,
        "ResourceNotFoundException",
    );

    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]});
    let body = json!({ "policyDocument": doc.to_string() }).to_string();
    assert_eq!(
        h.send("POST", "/policies/p1", &body).await.status,
        StatusCode::OK
    );
    let dup = h.send("POST", "/policies/p1", &body).await;
    assert_error(&dup, 409, "ResourceAlreadyExistsException");
    assert_eq!(dup.body["resourceId"], "p1");
    assert_eq!(
        dup.body["resourceArn"],
        "arn:aws:iot:us-east-1:123456789012:policy/p1"
    );

    let bad = json!({ "policyDocument": r#"{"Version":"2012-10-17"}"# }).to_string();
    let r = h.send("POST", "/policies/p2", &bad).await;
    assert_error(&r, 400, "MalformedPolicyException");
    assert!(
        r.body["message"].as_str().unwrap().contains("Statement"),
        "{:?}",
        r.body
    );

    for _ in 0..4 {
        assert_eq!(
            h.send("POST", "/policies/p1/version", &body).await.status,
            StatusCode::OK
        );
    }
    assert_error(
        &h.send("POST", "/policies/p1/version", &body).await,
        409,
        "VersionsLimitExceededException",
    );
    assert_error(
        &h.send("DELETE", "/policies/p1/version/1", "").await,
        400,
        "InvalidRequestException",
    );

    let r = h
        .send(
            "POST",
            "/certificate/register",
            &json!({"certificatePem": "garbage"}).to_string(),
        )
        .await;
    assert_error(&r, 400, "CertificateValidationException");
    let r = h
        .send(
            "POST",
            "/certificate/register",
            &json!({"certificatePem": "x", "status": "PENDING_ACTIVATION"}).to_string(),
        )
        .await;
    assert_error(&r, 406, "CertificateStateException");
}

#[tokio::test]
async fn encoded_slash_in_a_path_label_reaches_the_handler() {
    let h = harness().await;
    let target = format!(
        "arn%3Aaws%3Aiot%3Aus-east-1%3A123456789012%3Acert%2F{}",
        "c".repeat(64)
    );
    let r = h
        .send("POST", &format!("/attached-policies/{target}"), "")
        .await;
    // The route matched and the label decoded to a certificate ARN that does not exist.
    assert_error(&r, 404, "ResourceNotFoundException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains(&"c".repeat(64)),
        "{:?}",
        r.body
    );

    // Any other target is listed as given.
    let r = h
        .send("POST", "/attached-policies/us-east-1%3Asome-cognito-id", "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body, json!({ "policies": [] }));
}

#[tokio::test]
async fn describe_endpoint_returns_the_mqtt_host() {
    let h = harness().await;
    for q in [
        "",
        "?endpointType=iot%3AData-ATS",
        "?endpointType=iot%3AData",
    ] {
        let r = h.send("GET", &format!("/endpoint{q}"), "").await;
        assert_eq!(r.body, json!({ "endpointAddress": "localhost" }));
    }
}

const ACCOUNT_ARN: &str = "arn:aws:iot:us-east-1:123456789012";

/// Registers an ACTIVE certificate with subject `CN=cn` (no CA); returns its id and ARN.
async fn register_device(h: &Harness, cn: &str) -> (String, String) {
    let ca = ferrule_pki::TestCa::new("router-test-ca").unwrap();
    let (pem, _key) = ca.issue_client(cn).unwrap();
    let r = h
        .send(
            "POST",
            "/certificate/register-no-ca",
            &json!({ "certificatePem": pem, "status": "ACTIVE" }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (
        r.body["certificateId"].as_str().unwrap().to_owned(),
        r.body["certificateArn"].as_str().unwrap().to_owned(),
    )
}

async fn test_authorization(h: &Harness, query: &str, body: Value) -> Reply {
    h.send(
        "POST",
        &format!("/test-authorization{query}"),
        &body.to_string(),
    )
    .await
}

fn decisions(r: &Reply) -> Vec<&str> {
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["authResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["authDecision"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn test_authorization_refuses_malformed_requests() {
    let h = harness().await;
    let (id, arn) = register_device(&h, "dev").await;
    let publish =
        json!([{ "actionType": "PUBLISH", "resources": [format!("{ACCOUNT_ARN}:topic/a")] }]);
    let cases = [
        (json!({ "principal": arn }), "authInfos"),
        (json!({ "principal": arn, "authInfos": [] }), "authInfos"),
        (
            json!({ "principal": arn, "authInfos": vec![publish[0].clone(); 11] }),
            "authInfos",
        ),
        (
            json!({ "principal": arn, "authInfos": [{ "resources": ["x"] }] }),
            "authInfos[0].actionType",
        ),
        (
            json!({ "principal": arn, "authInfos": [{ "actionType": "RETAIN", "resources": ["x"] }] }),
            "authInfos[0].actionType",
        ),
        (
            json!({ "principal": arn, "authInfos": [{ "actionType": "PUBLISH", "resources": [] }] }),
            "authInfos[0].resources",
        ),
        (json!({ "authInfos": publish }), "principal"),
        (
            json!({ "principal": "us-east-1:some-cognito-id", "authInfos": publish }),
            "principal",
        ),
        (
            json!({ "principal": format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}"), "authInfos": publish }),
            "principal",
        ),
        (
            json!({ "principal": format!("{ACCOUNT_ARN}:thing/t"), "authInfos": publish }),
            "principal",
        ),
        (
            json!({ "principal": arn, "authInfos": publish, "cognitoIdentityPoolId": "pool" }),
            "cognitoIdentityPoolId",
        ),
        (
            json!({ "principal": arn, "authInfos": publish, "policyNamesToSkip": ["no spaces"] }),
            "policyName",
        ),
    ];
    for (body, member) in cases {
        let r = test_authorization(&h, "", body.clone()).await;
        assert_error(&r, 400, "InvalidRequestException");
        assert!(
            r.body["message"].as_str().unwrap().contains(member),
            "{body}: {:?}",
            r.body
        );
    }

    // Unknown certificates and policies to add are not found.
    let unknown = format!("{ACCOUNT_ARN}:cert/{}", "d".repeat(64));
    let r = test_authorization(
        &h,
        "",
        json!({ "principal": unknown, "authInfos": publish }),
    )
    .await;
    assert_error(&r, 404, "ResourceNotFoundException");
    let r = test_authorization(
        &h,
        "",
        json!({ "principal": arn, "authInfos": publish, "policyNamesToAdd": ["ghost"] }),
    )
    .await;
    assert_error(&r, 404, "ResourceNotFoundException");
    assert!(r.body["message"].as_str().unwrap().contains("ghost"));
    // Skipping a policy that does not exist changes nothing.
    let r = test_authorization(
        &h,
        "",
        json!({ "principal": arn, "authInfos": publish, "policyNamesToSkip": ["ghost"] }),
    )
    .await;
    assert_eq!(decisions(&r), ["IMPLICIT_DENY"]);
}

/// The context through HTTP: `?clientId=`, the certificate's CN, and the thing variables of a
/// thing attached to the certificate.
#[tokio::test]
async fn test_authorization_uses_client_certificate_and_thing_variables() {
    let h = harness().await;
    let (id, arn) = register_device(&h, "dev-cn").await;
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Publish",
         "Resource": format!("{ACCOUNT_ARN}:topic/${{iot:Connection.Thing.Attributes[room]}}/${{iot:Certificate.Subject.CommonName}}")},
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": format!("{ACCOUNT_ARN}:client/*"),
         "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
    ]});
    let r = h
        .send(
            "POST",
            "/policies/things",
            &json!({ "policyDocument": doc.to_string() }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = h
        .send(
            "PUT",
            "/target-policies/things",
            &json!({ "target": arn }).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = h
        .send(
            "POST",
            "/things/sensor-1",
            r#"{"attributePayload":{"attributes":{"room":"kitchen"}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = h
        .send_as(
            "PUT",
            "/things/sensor-1/principals",
            "",
            &[("x-amzn-principal", &arn)],
            Some(SECRET),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = h.send("POST", "/things/lonely", "{}").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let infos = |client: &str| {
        json!([
            { "actionType": "PUBLISH", "resources": [format!("{ACCOUNT_ARN}:topic/kitchen/dev-cn")] },
            { "actionType": "CONNECT", "resources": [format!("{ACCOUNT_ARN}:client/{client}")] },
        ])
    };
    // The principal by ARN or by id alike.
    for principal in [arn.as_str(), id.as_str()] {
        let r = test_authorization(
            &h,
            "?clientId=sensor-1",
            json!({ "principal": principal, "authInfos": infos("sensor-1") }),
        )
        .await;
        assert_eq!(decisions(&r), ["ALLOWED", "ALLOWED"], "{principal}");
        assert_eq!(
            r.body["authResults"][0]["allowed"]["policies"],
            json!([{ "policyName": "things", "policyArn": format!("{ACCOUNT_ARN}:policy/things") }])
        );
        assert_eq!(r.body["authResults"][1]["authInfo"], infos("sensor-1")[1]);
    }
    // A thing that exists but is not attached, and no client id at all: no thing variables.
    for query in ["?clientId=lonely", ""] {
        let r = test_authorization(
            &h,
            query,
            json!({ "principal": arn, "authInfos": infos("lonely") }),
        )
        .await;
        assert_eq!(decisions(&r), ["IMPLICIT_DENY", "IMPLICIT_DENY"], "{query}");
        assert_eq!(
            r.body["authResults"][0]["denied"]["implicitDeny"]["policies"][0]["policyName"],
            "things"
        );
    }
}
