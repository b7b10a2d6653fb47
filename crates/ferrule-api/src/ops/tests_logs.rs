//! Router tests of the CloudWatch Logs front: `POST /` dispatch on `X-Amz-Target`, the JSON
//! 1.1 error shape, malformed bodies and wire shapes.

#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{Harness, Reply, assert_error, harness};

async fn logs(h: &Harness, op: &str, body: &str) -> Reply {
    let target = format!("Logs_20140328.{op}");
    h.send_as(
        "POST",
        "/",
        body,
        &[
            ("x-amz-target", target.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        Some(super::tests::SECRET),
    )
    .await
}

async fn ok(h: &Harness, op: &str, body: Value) -> Value {
    let r = logs(h, op, &body.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{op}: {:?}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-amz-json-1.1"
    );
    assert!(r.headers.contains_key("x-amzn-requestid"));
    r.body
}

fn json11_error(r: &Reply, code: &str) {
    assert_error(r, 400, code);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-amz-json-1.1"
    );
}

#[tokio::test]
async fn logs_operations_have_botocores_shapes() {
    let h = harness().await;
    assert_eq!(
        ok(
            &h,
            "CreateLogGroup",
            json!({"logGroupName": "/aws/lambda/f"})
        )
        .await,
        json!({})
    );
    let dup = logs(&h, "CreateLogGroup", r#"{"logGroupName":"/aws/lambda/f"}"#).await;
    json11_error(&dup, "ResourceAlreadyExistsException");
    assert!(dup.body.get("resourceId").is_none(), "{:?}", dup.body);
    ok(
        &h,
        "CreateLogStream",
        json!({"logGroupName": "/aws/lambda/f", "logStreamName": "2026/11/29/[$LATEST]abc"}),
    )
    .await;
    ok(
        &h,
        "PutLogEvents",
        json!({"logGroupName": "/aws/lambda/f", "logStreamName": "2026/11/29/[$LATEST]abc",
               "logEvents": [{"timestamp": 1000, "message": "START"}, {"timestamp": 2000, "message": "END"}]}),
    )
    .await;
    let groups = ok(
        &h,
        "DescribeLogGroups",
        json!({"logGroupNamePrefix": "/aws"}),
    )
    .await;
    let g = &groups["logGroups"][0];
    assert_eq!(g["logGroupName"], "/aws/lambda/f");
    assert_eq!(
        g["arn"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*"
    );
    assert_eq!(
        g["logGroupArn"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f"
    );
    assert_eq!(g["storedBytes"], 0);
    assert!(
        g["creationTime"].as_i64().unwrap() > 1_700_000_000_000,
        "epoch ms"
    );
    assert!(g.get("retentionInDays").is_none(), "absent, not null");
    assert!(groups.get("nextToken").is_none());

    let streams = ok(
        &h,
        "DescribeLogStreams",
        json!({"logGroupName": "/aws/lambda/f"}),
    )
    .await;
    let s = &streams["logStreams"][0];
    assert_eq!(
        (&s["firstEventTimestamp"], &s["lastEventTimestamp"]),
        (&json!(1000), &json!(2000))
    );
    assert_eq!(
        s["arn"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:log-stream:2026/11/29/[$LATEST]abc"
    );

    let got = ok(
        &h,
        "GetLogEvents",
        json!({"logGroupIdentifier": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:*",
               "logStreamName": "2026/11/29/[$LATEST]abc", "startFromHead": true}),
    )
    .await;
    let messages: Vec<&str> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["START", "END"]);
    assert!(got["events"][0]["ingestionTime"].is_i64());
    assert!(got["nextForwardToken"].is_string() && got["nextBackwardToken"].is_string());

    let filtered = ok(
        &h,
        "FilterLogEvents",
        json!({"logGroupName": "/aws/lambda/f", "filterPattern": "END"}),
    )
    .await;
    assert_eq!(filtered["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        filtered["events"][0]["logStreamName"],
        "2026/11/29/[$LATEST]abc"
    );
    assert!(filtered["events"][0]["eventId"].is_string());

    ok(
        &h,
        "PutRetentionPolicy",
        json!({"logGroupName": "/aws/lambda/f", "retentionInDays": 7}),
    )
    .await;
    let groups = ok(&h, "DescribeLogGroups", json!({})).await;
    assert_eq!(groups["logGroups"][0]["retentionInDays"], 7);
    let bad = logs(
        &h,
        "PutRetentionPolicy",
        r#"{"logGroupName":"/aws/lambda/f","retentionInDays":2}"#,
    )
    .await;
    json11_error(&bad, "InvalidParameterException");

    ok(
        &h,
        "DeleteLogGroup",
        json!({"logGroupName": "/aws/lambda/f"}),
    )
    .await;
    let gone = logs(&h, "DeleteLogGroup", r#"{"logGroupName":"/aws/lambda/f"}"#).await;
    json11_error(&gone, "ResourceNotFoundException");
    assert_eq!(
        gone.body["message"],
        "The specified log group does not exist."
    );
}

#[tokio::test]
async fn unknown_targets_and_malformed_bodies() {
    let h = harness().await;
    let r = logs(&h, "NoSuchOperation", "{}").await;
    json11_error(&r, "UnknownOperationException");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchOperation")
    );
    // No target, or another service's: the same 404 as any unknown route.
    let r = h.send("POST", "/", "{}").await;
    assert_error(&r, 404, "UnknownOperationException");
    let r = h
        .send_as(
            "POST",
            "/",
            "{}",
            &[("x-amz-target", "DynamoDB_20120810.ListTables")],
            Some(super::tests::SECRET),
        )
        .await;
    assert_error(&r, 404, "UnknownOperationException");
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    // Other methods on / are unknown too.
    assert_error(
        &h.send("GET", "/", "").await,
        404,
        "UnknownOperationException",
    );
    // Logs requests need a signature like everything else.
    let r = h
        .send_as(
            "POST",
            "/",
            "{}",
            &[("x-amz-target", "Logs_20140328.DescribeLogGroups")],
            None,
        )
        .await;
    assert_error(&r, 403, "MissingAuthenticationTokenException");

    for (op, body) in [
        ("CreateLogGroup", "not json"),
        ("CreateLogGroup", "[]"),
        ("CreateLogGroup", r#"{"logGroupName": 5}"#),
        ("CreateLogGroup", "{}"),
        ("CreateLogGroup", r#"{"logGroupName": "has space"}"#),
        ("CreateLogGroup", r#"{"logGroupName": ""}"#),
        (
            "CreateLogStream",
            r#"{"logGroupName": "g", "logStreamName": "a:b"}"#,
        ),
        ("DescribeLogGroups", r#"{"limit": 51}"#),
        ("DescribeLogGroups", r#"{"limit": 0}"#),
        ("DescribeLogGroups", r#"{"nextToken": "zz"}"#),
        ("DescribeLogGroups", r#"{"logGroupNamePattern": "x"}"#),
        (
            "DescribeLogStreams",
            r#"{"logGroupName": "g", "orderBy": "Size"}"#,
        ),
        (
            "PutLogEvents",
            r#"{"logGroupName": "g", "logStreamName": "s", "logEvents": []}"#,
        ),
        (
            "PutLogEvents",
            r#"{"logGroupName": "g", "logStreamName": "s", "logEvents": [{"message": "m"}]}"#,
        ),
        ("GetLogEvents", r#"{"logGroupName": "g"}"#),
        (
            "GetLogEvents",
            r#"{"logGroupName": "g", "logStreamName": "s", "limit": 10001}"#,
        ),
        (
            "FilterLogEvents",
            r#"{"logGroupName": "g", "logGroupIdentifier": "g"}"#,
        ),
        (
            "FilterLogEvents",
            r#"{"logGroupName": "g", "logStreamNames": []}"#,
        ),
    ] {
        let r = logs(&h, op, body).await;
        assert_eq!(r.status.as_u16(), 400, "{op} {body}: {:?}", r.body);
        assert_eq!(r.body["__type"], "InvalidParameterException", "{op} {body}");
    }
}
