#![allow(clippy::unwrap_used)]

use axum::http::{HeaderMap, HeaderValue, Method};

use super::*;

fn config() -> ApiConfig {
    ApiConfig {
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        mqtt_endpoint: "localhost:8883".into(),
        credentials: Vec::new(),
    }
}

fn user() -> Caller {
    Caller::User {
        name: "alice".into(),
    }
}

fn target_of(
    method: Method,
    route: &str,
    labels: &[(&str, &str)],
    query: Option<&str>,
    headers: &HeaderMap,
    body: &str,
) -> Target {
    let config = config();
    let arns = Arns::new(&config.region, &config.account_id);
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    target(
        &config,
        &arns,
        &user(),
        &Asked {
            method: &method,
            route,
            labels: &labels,
            query,
            headers,
            body: body.as_bytes(),
        },
    )
}

fn op(action: &str, resource: &str) -> Target {
    Target::Operation {
        action: action.into(),
        resource: resource.into(),
    }
}

#[test]
fn iot_routes_name_botocores_operation_and_the_resource() {
    let none = HeaderMap::new();
    let cert = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    assert_eq!(
        target_of(
            Method::PUT,
            "/certificates/{certificateId}",
            &[("certificateId", cert)],
            Some("newStatus=ACTIVE"),
            &none,
            ""
        ),
        op(
            "iot:UpdateCertificate",
            &format!(
                "arn:aws:iot:us-east-1:123456789012:cert/{}",
                cert.to_ascii_lowercase()
            )
        )
    );
    assert_eq!(
        target_of(
            Method::PUT,
            "/principal-policies/{policyName}",
            &[("policyName", "jitr policy")],
            None,
            &none,
            ""
        ),
        op(
            "iot:AttachPrincipalPolicy",
            "arn:aws:iot:us-east-1:123456789012:policy/jitr policy"
        )
    );
    assert_eq!(
        target_of(Method::GET, "/certificates", &[], None, &none, ""),
        op("iot:ListCertificates", "*")
    );
    // HEAD is routed to GET handlers, so it is the GET operation.
    assert_eq!(
        target_of(
            Method::HEAD,
            "/things/{thingName}",
            &[("thingName", "t1")],
            None,
            &none,
            ""
        ),
        op(
            "iot:DescribeThing",
            "arn:aws:iot:us-east-1:123456789012:thing/t1"
        )
    );
    assert_eq!(
        target_of(
            Method::POST,
            "/rules/{ruleName}/enable",
            &[("ruleName", "r_1")],
            None,
            &none,
            ""
        ),
        op(
            "iot:EnableTopicRule",
            "arn:aws:iot:us-east-1:123456789012:rule/r_1"
        )
    );
    let tagged = "arn:aws:iot:us-east-1:123456789012:thing/t1";
    assert_eq!(
        target_of(
            Method::GET,
            "/tags",
            &[],
            Some("resourceArn=arn%3Aaws%3Aiot%3Aus-east-1%3A123456789012%3Athing%2Ft1"),
            &none,
            ""
        ),
        op("iot:ListTagsForResource", tagged)
    );
    assert_eq!(
        target_of(
            Method::POST,
            "/untag",
            &[],
            None,
            &none,
            &format!(r#"{{"resourceArn":"{tagged}","tagKeys":["a"]}}"#)
        ),
        op("iot:UntagResource", tagged)
    );
    assert_eq!(
        target_of(Method::PATCH, "/certificates", &[], None, &none, ""),
        Target::Unmapped
    );
    assert_eq!(
        target_of(Method::GET, "/no-such-route", &[], None, &none, ""),
        Target::Unmapped
    );
}

#[test]
fn lambda_function_names_reduce_to_the_name() {
    let none = HeaderMap::new();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:jitr";
    for name in [
        "jitr",
        "123456789012:function:jitr",
        "arn:aws:lambda:us-east-1:123456789012:function:jitr",
        "arn:aws:lambda:us-east-1:123456789012:function:jitr:live",
    ] {
        assert_eq!(
            target_of(
                Method::POST,
                "/2015-03-31/functions/{FunctionName}/invocations",
                &[("FunctionName", name)],
                None,
                &none,
                "{}"
            ),
            op("lambda:InvokeFunction", arn),
            "{name}"
        );
    }
    assert_eq!(
        target_of(
            Method::POST,
            "/2015-03-31/functions",
            &[],
            None,
            &none,
            r#"{"FunctionName":"jitr","Runtime":"python3.12","Code":{"ZipFile":"UEsDBA=="}}"#
        ),
        op("lambda:CreateFunction", arn)
    );
    assert_eq!(
        target_of(Method::GET, "/2015-03-31/functions/", &[], None, &none, ""),
        op("lambda:ListFunctions", "*")
    );
    assert_eq!(
        target_of(
            Method::DELETE,
            "/2015-03-31/functions/{FunctionName}/policy/{StatementId}",
            &[("FunctionName", "jitr"), ("StatementId", "iot")],
            None,
            &none,
            ""
        ),
        op("lambda:RemovePermission", arn)
    );
}

#[test]
fn post_root_is_iam_or_logs() {
    let mut form = HeaderMap::new();
    form.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    assert_eq!(
        target_of(
            Method::POST,
            "/",
            &[],
            None,
            &form,
            "Action=PutRolePolicy&Version=2010-05-08&RoleName=jitr-role&PolicyName=p&PolicyDocument=%7B%7D"
        ),
        op(
            "iam:PutRolePolicy",
            "arn:aws:iam::123456789012:role/jitr-role"
        )
    );
    assert_eq!(
        target_of(
            Method::POST,
            "/",
            &[],
            None,
            &form,
            "Action=CreateUser&UserName=bob&Path=%2Fops%2F"
        ),
        op("iam:CreateUser", "arn:aws:iam::123456789012:user/ops/bob")
    );
    // Access-key operations without UserName act on the calling user.
    assert_eq!(
        target_of(Method::POST, "/", &[], None, &form, "Action=ListAccessKeys"),
        op("iam:ListAccessKeys", "arn:aws:iam::123456789012:user/alice")
    );
    assert_eq!(
        target_of(Method::POST, "/", &[], None, &form, "Action=ListRoles"),
        op("iam:ListRoles", "*")
    );
    assert_eq!(
        target_of(Method::POST, "/", &[], None, &form, "Version=2010-05-08"),
        Target::Nothing
    );

    let mut logs = HeaderMap::new();
    logs.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    logs.insert(
        "x-amz-target",
        HeaderValue::from_static("Logs_20140328.PutLogEvents"),
    );
    assert_eq!(
        target_of(
            Method::POST,
            "/",
            &[],
            None,
            &logs,
            r#"{"logGroupName":"/aws/lambda/jitr","logStreamName":"s","logEvents":[]}"#
        ),
        op(
            "logs:PutLogEvents",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/jitr:*"
        )
    );
    logs.insert(
        "x-amz-target",
        HeaderValue::from_static("Logs_20140328.DescribeLogGroups"),
    );
    assert_eq!(
        target_of(Method::POST, "/", &[], None, &logs, "{}"),
        op("logs:DescribeLogGroups", "*")
    );
    logs.insert("x-amz-target", HeaderValue::from_static("Other.Thing"));
    assert_eq!(
        target_of(Method::POST, "/", &[], None, &logs, "{}"),
        Target::Nothing
    );
}

/// The `.route("PATH", get(..).post(..))` calls of `ops/mod.rs`, as (METHOD, PATH) pairs.
fn routes_in_router_source() -> Vec<(String, String)> {
    let source = include_str!("../ops/mod.rs");
    let mut out = Vec::new();
    for chunk in source.split(".route(").skip(1) {
        let Some(rest) = chunk.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some((path, rest)) = rest.split_once('"') else {
            continue;
        };
        // The method routers up to the route call's closing parenthesis.
        let mut depth = 1usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let methods = &rest[..end];
        for (name, method) in [
            ("get", "GET"),
            ("post", "POST"),
            ("put", "PUT"),
            ("delete", "DELETE"),
            ("patch", "PATCH"),
        ] {
            let called = methods.match_indices(&format!("{name}(")).any(|(i, _)| {
                let before = methods[..i].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if called {
                out.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_route_in_the_router_has_an_action() {
    let routes = routes_in_router_source();
    // The scan itself works: the IoT routes alone are over 50.
    assert!(routes.len() > 50, "{routes:?}");
    assert!(routes.contains(&("PUT".into(), "/certificates/{certificateId}".into())));
    assert!(routes.contains(&("POST".into(), "/".into())));
    for (method, path) in &routes {
        assert!(
            ROUTES.iter().any(|(m, p, _, _)| m == method && p == path),
            "{method} {path} is routed but has no IAM action in access::ROUTES"
        );
    }
    for (method, path, action, _) in ROUTES {
        assert!(
            action.is_empty()
                || action.split_once(':').is_some_and(
                    |(s, n)| !s.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric())
                ),
            "{method} {path}: {action}"
        );
        let dupes = ROUTES
            .iter()
            .filter(|(m, p, _, _)| m == method && p == path)
            .count();
        assert_eq!(dupes, 1, "{method} {path} is in the table twice");
    }
}

#[test]
fn current_time_is_iso8601() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso8601(1_764_410_400), "2025-11-29T10:00:00Z");
}

#[test]
fn form_bodies_decode() {
    assert_eq!(
        form_pairs(b"Action=GetRole&RoleName=a+b%2Fc&Empty="),
        vec![
            ("Action".to_owned(), "GetRole".to_owned()),
            ("RoleName".to_owned(), "a b/c".to_owned()),
            ("Empty".to_owned(), String::new()),
        ]
    );
    assert!(form_pairs(&[0xff, b'=', b'x']).is_empty());
}
