//! Router tests of the IAM front: `POST /` dispatch of form bodies, the XML shapes botocore's
//! query parser reads, IAM's error codes and statuses, malformed bodies and unknown actions.

#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;

use super::tests::{Harness, Reply, harness};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22iot.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";

async fn iam(h: &Harness, body: &str) -> Reply {
    h.send_as(
        "POST",
        "/",
        body,
        &[("content-type", FORM)],
        Some(super::tests::SECRET),
    )
    .await
}

fn text(r: &Reply) -> &str {
    r.body
        .as_str()
        .unwrap_or_else(|| panic!("not XML: {:?}", r.body))
}

/// The text of the first `<tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

fn assert_iam_error(r: &Reply, status: u16, code: &str) {
    let xml = text(r);
    assert_eq!(r.status.as_u16(), status, "{xml}");
    assert_eq!(r.headers.get("content-type").unwrap(), "text/xml");
    assert!(xml.starts_with("<ErrorResponse"), "{xml}");
    assert_eq!(element(xml, "Code"), Some(code), "{xml}");
    let fault = if status >= 500 { "Receiver" } else { "Sender" };
    assert_eq!(element(xml, "Type"), Some(fault), "{xml}");
    assert!(
        element(xml, "Message").is_some_and(|m| !m.is_empty()),
        "{xml}"
    );
    let request_id = r.headers.get("x-amzn-requestid").unwrap().to_str().unwrap();
    assert_eq!(element(xml, "RequestId"), Some(request_id), "{xml}");
}

#[tokio::test]
async fn create_role_answers_botocores_xml() {
    let h = harness().await;
    let r = iam(
        &h,
        &format!(
            "Action=CreateRole&Version=2010-05-08&RoleName=Ingest&Path=%2Fiot%2F\
             &Description=a+%3Crole%3E&AssumeRolePolicyDocument={TRUST}"
        ),
    )
    .await;
    let xml = text(&r);
    assert_eq!(r.status, StatusCode::OK, "{xml}");
    assert_eq!(r.headers.get("content-type").unwrap(), "text/xml");
    assert!(
        xml.starts_with(
            "<CreateRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <CreateRoleResult><Role><Path>/iot/</Path><RoleName>Ingest</RoleName>"
        ),
        "{xml}"
    );
    assert_eq!(
        element(xml, "Arn"),
        Some("arn:aws:iam::123456789012:role/iot/Ingest")
    );
    let role_id = element(xml, "RoleId").unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.len() == 21,
        "{role_id}"
    );
    assert_eq!(element(xml, "Description"), Some("a &lt;role&gt;"));
    assert_eq!(element(xml, "AssumeRolePolicyDocument"), Some(TRUST));
    assert_eq!(element(xml, "MaxSessionDuration"), Some("3600"));
    let created = element(xml, "CreateDate").unwrap();
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
    let request_id = r.headers.get("x-amzn-requestid").unwrap().to_str().unwrap();
    assert!(xml.ends_with(&format!(
        "</CreateRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId>\
         </ResponseMetadata></CreateRoleResponse>"
    )));

    let dup = iam(
        &h,
        &format!("Action=CreateRole&RoleName=INGEST&AssumeRolePolicyDocument={TRUST}"),
    )
    .await;
    assert_iam_error(&dup, 409, "EntityAlreadyExists");

    let deleted = iam(&h, "Action=DeleteRole&RoleName=ingest").await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(text(&deleted).starts_with("<DeleteRoleResponse"));
    assert!(!text(&deleted).contains("DeleteRoleResult"));
    assert_iam_error(
        &iam(&h, "Action=GetRole&RoleName=Ingest").await,
        404,
        "NoSuchEntity",
    );
}

#[tokio::test]
async fn unknown_and_missing_actions_are_invalid_action() {
    let h = harness().await;
    assert_iam_error(
        &iam(&h, "Action=CreateGroup&Version=2010-05-08&GroupName=g").await,
        400,
        "InvalidAction",
    );
    assert_iam_error(&iam(&h, "Version=2010-05-08").await, 400, "InvalidAction");
    assert_iam_error(&iam(&h, "").await, 400, "InvalidAction");
}

#[tokio::test]
async fn malformed_form_bodies_are_malformed_query_string() {
    let h = harness().await;
    for body in [
        "Action=GetRole&RoleName=%zz",
        "Action=GetRole&RoleName=%E2%28",
        "Action=GetRole&Action=ListRoles",
    ] {
        assert_iam_error(&iam(&h, body).await, 400, "MalformedQueryString");
    }
}

#[tokio::test]
async fn validation_and_policy_errors_use_iams_codes() {
    let h = harness().await;
    for body in [
        format!("Action=CreateRole&RoleName=bad+name&AssumeRolePolicyDocument={TRUST}"),
        format!(
            "Action=CreateRole&RoleName={}&AssumeRolePolicyDocument={TRUST}",
            "r".repeat(65)
        ),
        format!("Action=CreateRole&RoleName=r&Path=iot&AssumeRolePolicyDocument={TRUST}"),
        format!(
            "Action=CreateRole&RoleName=r&MaxSessionDuration=60&AssumeRolePolicyDocument={TRUST}"
        ),
        format!(
            "Action=CreateRole&RoleName=r&Tags.member.1.Key=k&AssumeRolePolicyDocument={TRUST}"
        ),
        "Action=CreateRole&RoleName=r".to_owned(),
        "Action=ListRoles&MaxItems=0".to_owned(),
        "Action=GetUser".to_owned(),
    ] {
        assert_iam_error(&iam(&h, &body).await, 400, "ValidationError");
    }
    for doc in [
        "not+json",
        "%5B%5D",
        "%7B%22Version%22%3A%222012-10-17%22%7D",
        "%7B%22Version%22%3A%221999%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%7D%5D%7D",
        "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Maybe%22%7D%5D%7D",
    ] {
        assert_iam_error(
            &iam(
                &h,
                &format!("Action=CreateRole&RoleName=r&AssumeRolePolicyDocument={doc}"),
            )
            .await,
            400,
            "MalformedPolicyDocument",
        );
    }
    assert_iam_error(
        &iam(&h, "Action=GetRole&RoleName=r").await,
        404,
        "NoSuchEntity",
    );
}

#[tokio::test]
async fn bad_signatures_on_iam_requests_are_xml_errors() {
    let h = harness().await;
    let r = h
        .send_as(
            "POST",
            "/",
            "Action=ListRoles&Version=2010-05-08",
            &[("content-type", FORM)],
            Some("not-the-secret"),
        )
        .await;
    assert_iam_error(&r, 403, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn access_keys_have_aws_shapes_and_a_quota() {
    let h = harness().await;
    assert_eq!(
        iam(&h, "Action=CreateUser&UserName=Fleet").await.status,
        StatusCode::OK
    );
    let r = iam(&h, "Action=CreateAccessKey&UserName=fleet").await;
    let xml = text(&r);
    assert_eq!(r.status, StatusCode::OK, "{xml}");
    assert_eq!(element(xml, "UserName"), Some("Fleet"));
    assert_eq!(element(xml, "Status"), Some("Active"));
    let id = element(xml, "AccessKeyId").unwrap();
    assert!(id.len() == 20 && id.starts_with("AKIA"), "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{id}"
    );
    let secret = element(xml, "SecretAccessKey").unwrap();
    assert_eq!(secret.len(), 40);
    assert_eq!(
        iam(&h, "Action=CreateAccessKey&UserName=Fleet")
            .await
            .status,
        StatusCode::OK
    );
    assert_iam_error(
        &iam(&h, "Action=CreateAccessKey&UserName=Fleet").await,
        409,
        "LimitExceeded",
    );
    let list = iam(&h, "Action=ListAccessKeys&UserName=Fleet").await;
    assert!(!text(&list).contains("SecretAccessKey"), "{}", text(&list));
    assert_eq!(text(&list).matches("<member>").count(), 2);
}
