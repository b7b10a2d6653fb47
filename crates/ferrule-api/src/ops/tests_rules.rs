//! Router tests of the topic rule operations: wire shapes, AWS's error codes, and every kind
//! of malformed payload.

#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{Harness, Reply, assert_error, harness};

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";
const REPUBLISH: &str = r#"{"republish":{"roleArn":"arn:aws:iam::123456789012:role/r","topic":"out/${topic(2)}","qos":1}}"#;

fn payload(sql: &str, actions: &str) -> String {
    format!(r#"{{"sql":{},"actions":{actions}}}"#, Value::from(sql))
}

fn message(r: &Reply) -> &str {
    r.body["message"].as_str().unwrap_or_default()
}

fn names(r: &Reply) -> Vec<&str> {
    r.body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleName"].as_str().unwrap())
        .collect()
}

async fn ok(h: &Harness, method: &str, uri: &str, body: &str) -> Reply {
    let r = h.send(method, uri, body).await;
    assert_eq!(r.status, StatusCode::OK, "{method} {uri}: {:?}", r.body);
    r
}

#[tokio::test]
async fn rule_round_trip_has_botocores_shapes() {
    let h = harness().await;
    let created = h
        .send_as(
            "POST",
            "/rules/temps_1",
            &format!(
                r#"{{"sql":"SELECT temp FROM 'sensors/+/temp' WHERE temp > 30","description":"hot",
                    "actions":[{REPUBLISH},{{"s3":{{"bucketName":"b","key":"k","roleArn":"r"}}}}],
                    "errorAction":{{"lambda":{{"functionArn":"arn:aws:lambda:us-east-1:1:function:f"}}}}}}"#
            ),
            &[("x-amz-tagging", "team=iot&env=a%20b")],
            Some(super::tests::SECRET),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(created.body, json!({}));

    let got = ok(&h, "GET", "/rules/temps_1", "").await;
    let created_at = got.body["rule"]["createdAt"].as_f64().unwrap();
    assert!(created_at > 1.5e9 && created_at < 4e9, "{:?}", got.body);
    assert_eq!(
        got.body,
        json!({
            "ruleArn": format!("{ARN}:rule/temps_1"),
            "rule": {
                "ruleName": "temps_1",
                "sql": "SELECT temp FROM 'sensors/+/temp' WHERE temp > 30",
                "description": "hot",
                "createdAt": got.body["rule"]["createdAt"],
                "actions": [
                    serde_json::from_str::<Value>(REPUBLISH).unwrap(),
                    {"s3": {"bucketName": "b", "key": "k", "roleArn": "r"}},
                ],
                "ruleDisabled": false,
                "awsIotSqlVersion": "2015-10-08",
                "errorAction": {"lambda": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f"}},
            },
        })
    );
    let tags = ok(
        &h,
        "GET",
        &format!("/tags?resourceArn={ARN}:rule/temps_1"),
        "",
    )
    .await;
    assert_eq!(
        tags.body["tags"],
        json!([{"Key": "env", "Value": "a b"}, {"Key": "team", "Value": "iot"}])
    );

    // A second rule, disabled, without description or error action.
    ok(
        &h,
        "POST",
        "/rules/all",
        r#"{"sql":"SELECT * FROM '#'","actions":[],"ruleDisabled":true,"awsIotSqlVersion":"2016-03-23"}"#,
    )
    .await;
    let got = ok(&h, "GET", "/rules/all", "").await;
    let rule = got.body["rule"].as_object().unwrap();
    assert!(!rule.contains_key("description"), "{rule:?}");
    assert!(!rule.contains_key("errorAction"), "{rule:?}");
    assert_eq!(rule["actions"], json!([]));
    assert_eq!(rule["ruleDisabled"], true);
    assert_eq!(rule["awsIotSqlVersion"], "2016-03-23");

    let listed = ok(&h, "GET", "/rules", "").await;
    assert_eq!(listed.body["rules"][1]["createdAt"], json!(created_at));
    assert_eq!(
        listed.body["rules"][1],
        json!({
            "ruleArn": format!("{ARN}:rule/temps_1"),
            "ruleName": "temps_1",
            "topicPattern": "sensors/+/temp",
            "createdAt": created_at,
            "ruleDisabled": false,
        })
    );
    assert!(listed.body.get("nextToken").is_none(), "{:?}", listed.body);
    assert_eq!(names(&listed), ["all", "temps_1"]);
    let q = |query: &str| format!("/rules?{query}");
    assert_eq!(
        names(&ok(&h, "GET", &q("topic=sensors%2F%2B%2Ftemp"), "").await),
        ["temps_1"]
    );
    assert_eq!(
        names(&ok(&h, "GET", &q("topic=sensors/x/temp"), "").await),
        Vec::<&str>::new(),
        "the topic filter is the pattern itself, not a topic it matches"
    );
    assert_eq!(
        names(&ok(&h, "GET", &q("ruleDisabled=true"), "").await),
        ["all"]
    );
    assert_eq!(
        names(&ok(&h, "GET", &q("ruleDisabled=false"), "").await),
        ["temps_1"]
    );
    let first = ok(&h, "GET", &q("maxResults=1"), "").await;
    assert_eq!(names(&first), ["all"]);
    let token = first.body["nextToken"].as_str().unwrap();
    let second = ok(
        &h,
        "GET",
        &q(&format!("maxResults=1&nextToken={token}")),
        "",
    )
    .await;
    assert_eq!(names(&second), ["temps_1"]);
    assert!(second.body.get("nextToken").is_none());

    // Replace: a new payload, the same creation time.
    ok(
        &h,
        "PATCH",
        "/rules/temps_1",
        &payload("SELECT * FROM 'sensors/#'", &format!("[{REPUBLISH}]")),
    )
    .await;
    let got = ok(&h, "GET", "/rules/temps_1", "").await;
    assert_eq!(got.body["rule"]["sql"], "SELECT * FROM 'sensors/#'");
    assert_eq!(got.body["rule"]["createdAt"], json!(created_at));
    assert!(got.body["rule"].get("description").is_none());
    assert_eq!(
        names(&ok(&h, "GET", &q("topic=sensors%2F%23"), "").await),
        ["temps_1"]
    );

    // Disable and enable, twice each: the second is a no-op, not an error.
    for _ in 0..2 {
        ok(&h, "POST", "/rules/temps_1/disable", "").await;
    }
    assert_eq!(
        ok(&h, "GET", "/rules/temps_1", "").await.body["rule"]["ruleDisabled"],
        true
    );
    for _ in 0..2 {
        ok(&h, "POST", "/rules/temps_1/enable", "").await;
    }
    assert_eq!(
        ok(&h, "GET", "/rules/temps_1", "").await.body["rule"]["ruleDisabled"],
        false
    );

    ok(&h, "DELETE", "/rules/temps_1", "").await;
    assert_error(
        &h.send("GET", "/rules/temps_1", "").await,
        401,
        "UnauthorizedException",
    );
    assert_eq!(names(&ok(&h, "GET", "/rules", "").await), ["all"]);
    assert_error(
        &h.send("GET", &format!("/tags?resourceArn={ARN}:rule/temps_1"), "")
            .await,
        404,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn missing_and_duplicate_rules_get_aws_codes() {
    let h = harness().await;
    let body = payload("SELECT * FROM 't'", "[]");
    for (method, uri, body) in [
        ("GET", "/rules/ghost", ""),
        ("PATCH", "/rules/ghost", body.as_str()),
        ("DELETE", "/rules/ghost", ""),
        ("POST", "/rules/ghost/enable", ""),
        ("POST", "/rules/ghost/disable", ""),
    ] {
        let r = h.send(method, uri, body).await;
        assert_error(&r, 401, "UnauthorizedException");
        assert_eq!(message(&r), "Access to topic rule 'ghost' was denied");
    }
    assert_eq!(
        names(&ok(&h, "GET", "/rules", "").await),
        Vec::<&str>::new()
    );

    ok(&h, "POST", "/rules/r1", &body).await;
    let r = h
        .send("POST", "/rules/r1", &payload("SELECT * FROM 'other'", "[]"))
        .await;
    assert_error(&r, 409, "ResourceAlreadyExistsException");
    assert_eq!(r.body["resourceId"], "r1");
    assert_eq!(r.body["resourceArn"], format!("{ARN}:rule/r1"));
    // The first rule is untouched, and names are case-sensitive.
    let got = ok(&h, "GET", "/rules/r1", "").await;
    assert_eq!(got.body["rule"]["sql"], "SELECT * FROM 't'");
    assert_error(
        &h.send("GET", "/rules/R1", "").await,
        401,
        "UnauthorizedException",
    );
}

#[tokio::test]
async fn malformed_payloads_are_invalid_requests_naming_the_member() {
    let h = harness().await;
    let sql = "SELECT * FROM 't'";
    let republish = |fields: &str| payload(sql, &format!(r#"[{{"republish":{{{fields}}}}}]"#));
    let http = |fields: &str| payload(sql, &format!(r#"[{{"http":{{{fields}}}}}]"#));
    let eleven = format!("[{}]", [REPUBLISH; 11].join(","));
    let long_url = format!(r#""url":"https://{}""#, "a".repeat(1993));
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "key must be a string"),
        ("".into(), "sql"),
        (r#"{"actions":[]}"#.into(), "sql"),
        (format!(r#"{{"sql":"{sql}"}}"#), "actions"),
        (format!(r#"{{"sql":"{sql}","actions":{{}}}}"#), "actions"),
        (r#"{"sql":5,"actions":[]}"#.into(), "sql"),
        (
            format!(r#"{{"sql":"{sql}","actions":[],"ruleDisabled":"yes"}}"#),
            "ruleDisabled",
        ),
        (payload(sql, &eleven), "at most 10 actions; 11"),
        (
            format!(r#"{{"sql":"{sql}","actions":[],"awsIotSqlVersion":"2020-01-01"}}"#),
            "awsIotSqlVersion",
        ),
        (
            payload(sql, "[{}]"),
            "actions[0]: an action has exactly one",
        ),
        (
            payload(
                sql,
                &format!(r#"[{REPUBLISH},{{"lambda":{{"functionArn":"f"}},"sns":{{}}}}]"#),
            ),
            "actions[1]: an action has exactly one action type as its key; this one has 2",
        ),
        (
            payload(sql, r#"[{"carrierPigeon":{}}]"#),
            "actions[0]: \"carrierPigeon\" is not an action type",
        ),
        (
            payload(sql, r#"[{"s3":"bucket"}]"#),
            "actions[0].s3: expected an object",
        ),
        (payload(sql, "[5]"), "actions[0]: expected an object"),
        (
            republish(r#""topic":"t""#),
            "actions[0].republish: roleArn is required",
        ),
        (
            republish(r#""roleArn":"r""#),
            "actions[0].republish: topic is required",
        ),
        (
            republish(r#""roleArn":"r","topic":"""#),
            "actions[0].republish.topic: must not be empty",
        ),
        (
            republish(r#""roleArn":"r","topic":5"#),
            "actions[0].republish.topic: expected a string",
        ),
        (
            republish(r#""roleArn":"r","topic":"t","qos":2"#),
            "actions[0].republish.qos: must be 0 or 1",
        ),
        (
            republish(r#""roleArn":"r","topic":"t","qos":"1""#),
            "actions[0].republish.qos",
        ),
        (
            republish(r#""roleArn":"r","topic":"t","headers":{"userProperties":[]}"#),
            "actions[0].republish.headers.userProperties: has 0 entries",
        ),
        (
            republish(r#""roleArn":"r","topic":"t","headers":{"userProperties":[{"key":"k"}]}"#),
            "actions[0].republish.headers.userProperties[0]: value is required",
        ),
        (
            republish(r#""roleArn":"r","topic":"t","headers":{"contentType":1}"#),
            "actions[0].republish.headers.contentType",
        ),
        (
            payload(sql, r#"[{"lambda":{}}]"#),
            "actions[0].lambda: functionArn is required",
        ),
        (
            http(r#""confirmationUrl":"https://a""#),
            "actions[0].http: url is required",
        ),
        (
            http(&long_url),
            "actions[0].http.url: a URL is at most 2000",
        ),
        (http(r#""url":"ftp://x/y""#), "actions[0].http.url"),
        (http(r#""url":"https://""#), "actions[0].http.url"),
        (
            http(r#""url":"https://a.example/x","confirmationUrl":"https://b.example/""#),
            "actions[0].http.confirmationUrl: \"https://b.example/\" must be a prefix",
        ),
        (
            http(r#""url":"https://a/x","headers":[{"key":"k"}]"#),
            "actions[0].http.headers[0]: value is required",
        ),
        (
            http(r#""url":"https://a/x","headers":[{"key":"","value":"v"}]"#),
            "actions[0].http.headers[0].key: must not be empty",
        ),
        (
            http(r#""url":"https://a/x","headers":{"k":"v"}"#),
            "actions[0].http.headers: expected a list",
        ),
        (
            http(r#""url":"https://a/x","auth":{"sigv4":{"roleArn":"r","serviceName":"s"}}"#),
            "actions[0].http.auth.sigv4: signingRegion is required",
        ),
        (
            http(r#""url":"https://a/x","enableBatching":"yes""#),
            "actions[0].http.enableBatching",
        ),
        (
            format!(r#"{{"sql":"{sql}","actions":[],"errorAction":{{"lambda":{{}}}}}}"#),
            "errorAction.lambda: functionArn is required",
        ),
        (
            format!(r#"{{"sql":"{sql}","actions":[],"errorAction":[]}}"#),
            "errorAction: expected an object",
        ),
    ];
    for (body, expected) in &cases {
        for method in ["POST", "PATCH"] {
            let r = h.send(method, "/rules/r", body).await;
            assert_error(&r, 400, "InvalidRequestException");
            assert!(
                message(&r).contains(expected),
                "{method} {body}: {:?} does not contain {expected:?}",
                message(&r)
            );
        }
    }
    // Over 256 KiB.
    let huge = format!(
        r#"{{"sql":"{sql}","actions":[],"description":"{}"}}"#,
        "d".repeat(256 * 1024)
    );
    let r = h.send("POST", "/rules/r", &huge).await;
    assert_error(&r, 400, "InvalidRequestException");
    assert!(
        message(&r).contains("at most 262144 bytes"),
        "{}",
        message(&r)
    );
    // Nothing was created along the way.
    assert_eq!(
        names(&ok(&h, "GET", "/rules", "").await),
        Vec::<&str>::new()
    );

    // What the model allows passes: 10 actions, http with everything, other types as given.
    let full_http = r#"{"http":{"url":"http://hooks.local:8080/in/${topic()}","confirmationUrl":"http://hooks.local:8080/",
        "headers":[{"key":"x-k","value":"${clientid()}"}],"auth":{"sigv4":{"signingRegion":"r","serviceName":"s","roleArn":"a"}},
        "enableBatching":true,"batchConfig":{"maxBatchSize":5}}}"#;
    let ten = format!(
        "[{},{full_http},{{\"dynamoDBv2\":{{\"roleArn\":\"r\",\"putItem\":{{\"tableName\":\"t\"}}}}}}]",
        [REPUBLISH; 8].join(",")
    );
    ok(&h, "POST", "/rules/r", &payload(sql, &ten)).await;
    let got = ok(&h, "GET", "/rules/r", "").await;
    assert_eq!(
        got.body["rule"]["actions"],
        serde_json::from_str::<Value>(&ten).unwrap()
    );
}

#[tokio::test]
async fn bad_sql_is_a_sql_parse_exception() {
    let h = harness().await;
    for (sql, expected) in [
        ("", "Expected SELECT but found end of input at 1:1"),
        ("SELECT *", "Expected FROM but found end of input at 1:9"),
        (
            "SELECT * FROM topic/x",
            "Expected a topic filter in single quotes but found 'topic' at 1:15",
        ),
        (
            "SELECT * FROM 'a/#/b'",
            "'#' must be a whole level and the last one",
        ),
        ("SELECT * FROM 'a/b+'", "'+' must be a whole level at 1:15"),
        (
            "SELECT * FROM 'a' ORDER BY x",
            "Expected WHERE or end of statement",
        ),
        (
            "SELECT * FROM 'a' WHERE",
            "Expected an expression but found end of input at 1:24",
        ),
        (
            "INSERT INTO t VALUES (1)",
            "Expected SELECT but found 'INSERT' at 1:1",
        ),
    ] {
        for (method, name) in [("POST", "new_rule"), ("PATCH", "existing")] {
            if method == "PATCH" {
                ok(
                    &h,
                    "POST",
                    "/rules/existing",
                    &payload("SELECT * FROM 'x'", "[]"),
                )
                .await;
            }
            let r = h
                .send(method, &format!("/rules/{name}"), &payload(sql, "[]"))
                .await;
            assert_error(&r, 400, "SqlParseException");
            assert!(
                message(&r).contains(expected),
                "{sql:?}: {:?} does not contain {expected:?}",
                message(&r)
            );
            if method == "PATCH" {
                // The refused replacement left the rule as it was.
                let got = ok(&h, "GET", "/rules/existing", "").await;
                assert_eq!(got.body["rule"]["sql"], "SELECT * FROM 'x'");
                ok(&h, "DELETE", "/rules/existing", "").await;
            }
        }
    }
    assert_error(
        &h.send("GET", "/rules/new_rule", "").await,
        401,
        "UnauthorizedException",
    );
}

#[tokio::test]
async fn bad_names_and_list_parameters_are_refused() {
    let h = harness().await;
    let body = payload("SELECT * FROM 't'", "[]");
    let long = "r".repeat(129);
    for name in ["bad-name", "with%20space", "dots.too", long.as_str()] {
        for (method, uri, body) in [
            ("POST", format!("/rules/{name}"), body.as_str()),
            ("GET", format!("/rules/{name}"), ""),
            ("PATCH", format!("/rules/{name}"), body.as_str()),
            ("DELETE", format!("/rules/{name}"), ""),
            ("POST", format!("/rules/{name}/enable"), ""),
            ("POST", format!("/rules/{name}/disable"), ""),
        ] {
            let r = h.send(method, &uri, body).await;
            assert_error(&r, 400, "InvalidRequestException");
            assert!(message(&r).contains("ruleName"), "{uri}: {}", message(&r));
        }
    }
    ok(&h, "POST", &format!("/rules/{}", "r".repeat(128)), &body).await;
    ok(&h, "POST", "/rules/Az_09", &body).await;
    // A bad tag is refused before anything is created.
    let r = h
        .send_as(
            "POST",
            "/rules/tagged",
            &body,
            &[("x-amz-tagging", "aws:reserved=x")],
            Some(super::tests::SECRET),
        )
        .await;
    assert_error(&r, 400, "InvalidRequestException");
    assert_error(
        &h.send("GET", "/rules/tagged", "").await,
        401,
        "UnauthorizedException",
    );

    for (query, member) in [
        ("maxResults=0", "maxResults"),
        ("maxResults=10001", "maxResults"),
        ("maxResults=x", "maxResults"),
        ("ruleDisabled=maybe", "ruleDisabled"),
        ("nextToken=zz", "marker"),
    ] {
        let r = h.send("GET", &format!("/rules?{query}"), "").await;
        assert_error(&r, 400, "InvalidRequestException");
        assert!(message(&r).contains(member), "{query}: {}", message(&r));
    }
    ok(&h, "GET", "/rules?maxResults=10000", "").await;
}

#[tokio::test]
async fn action_templates_that_do_not_parse_are_refused() {
    let h = harness().await;
    for (actions, member) in [
        (
            r#"[{"republish":{"roleArn":"r","topic":"out/${topic(}"}}]"#,
            "actions[0].republish.topic",
        ),
        (
            r#"[{"http":{"url":"https://example.com/${nosuch()}"}}]"#,
            "actions[0].http.url",
        ),
        (
            r#"[{"http":{"url":"https://example.com/","headers":[{"key":"k","value":"${"}]}}]"#,
            "actions[0].http.headers[0].value",
        ),
    ] {
        let r = h
            .send(
                "POST",
                "/rules/templated",
                &payload("SELECT * FROM 'a'", actions),
            )
            .await;
        assert_error(&r, 400, "InvalidRequestException");
        assert!(message(&r).starts_with(member), "{member}: {}", message(&r));
    }
    ok(
        &h,
        "POST",
        "/rules/templated",
        &payload(
            "SELECT * FROM 'a'",
            r#"[{"republish":{"roleArn":"r","topic":"$$aws/things/${topic(1)}/x"}}]"#,
        ),
    )
    .await;
}
