//! The real `aws iam` CLI against the IAM front: roles with trust policies, their inline
//! policies, users and access keys, and the errors a user meets. Each flow runs on both
//! registry backends. A short boto3 script checks the policy documents and the modeled
//! exceptions as a Python program sees them.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, Backend, Server};
use serde_json::{Value, json};

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const PUBLISH: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:us-east-1:123456789012:topic/a b/+"}]}"#;

fn iam(server: &Server, args: &[&str]) -> Value {
    server
        .aws_in("iam", args)
        .unwrap_or_else(|e| panic!("aws iam {}: {e:?}", args.join(" ")))
}

/// `aws iam ARGS` that must fail with `code`; returns the message.
fn iam_fails(server: &Server, code: &str, args: &[&str]) -> String {
    match server.aws_in("iam", args) {
        Ok(v) => panic!(
            "aws iam {} succeeded ({v}) but should fail with {code}",
            args.join(" ")
        ),
        Err(e) => {
            assert_eq!(e.code, code, "aws iam {}: {}", args.join(" "), e.stderr);
            e.message
        }
    }
}

fn names(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v}"))
        .iter()
        .map(|i| {
            if field.is_empty() {
                i.as_str().unwrap().to_owned()
            } else {
                i[field].as_str().unwrap().to_owned()
            }
        })
        .collect()
}

fn roles_flow(server: &Server) {
    let created = iam(
        server,
        &[
            "create-role",
            "--role-name",
            "Rules-Ingest",
            "--path",
            "/iot/",
            "--description",
            "the rules engine's role",
            "--max-session-duration",
            "7200",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    let role = &created["Role"];
    assert_eq!(role["RoleName"], "Rules-Ingest");
    assert_eq!(role["Path"], "/iot/");
    assert_eq!(
        role["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:role/iot/Rules-Ingest")
    );
    let role_id = role["RoleId"].as_str().unwrap();
    assert!(
        role_id.starts_with("AROA") && role_id.len() == 21,
        "{role_id}"
    );
    // botocore URL-decodes and parses the document it gets back.
    assert_eq!(
        role["AssumeRolePolicyDocument"],
        serde_json::from_str::<Value>(TRUST).unwrap()
    );
    assert_eq!(role["Description"], "the rules engine's role");
    assert_eq!(role["MaxSessionDuration"], 7200);
    let create_date = role["CreateDate"].as_str().unwrap();
    assert!(create_date.starts_with("20"), "{create_date}");

    let got = iam(server, &["get-role", "--role-name", "rules-ingest"]);
    assert_eq!(&got["Role"], role, "names are matched ignoring case");

    for (name, path) in [
        ("a-role", "/"),
        ("z-role", "/other/"),
        ("m-role", "/iot/x/"),
    ] {
        iam(
            server,
            &[
                "create-role",
                "--role-name",
                name,
                "--path",
                path,
                "--assume-role-policy-document",
                TRUST,
            ],
        );
    }
    let all = iam(server, &["list-roles"]);
    assert_eq!(
        names(&all, "Roles", "RoleName"),
        ["Rules-Ingest", "a-role", "m-role", "z-role"]
    );
    assert_eq!(
        all["Roles"][0]["AssumeRolePolicyDocument"]["Statement"][0]["Action"],
        "sts:AssumeRole"
    );
    let iot = iam(server, &["list-roles", "--path-prefix", "/iot/"]);
    assert_eq!(names(&iot, "Roles", "RoleName"), ["Rules-Ingest", "m-role"]);
    // The CLI's paginator follows IsTruncated/Marker: pages of one still list everything.
    let paged = iam(server, &["list-roles", "--page-size", "1"]);
    assert_eq!(names(&paged, "Roles", "RoleName").len(), 4);
    let first = iam(server, &["list-roles", "--max-items", "1"]);
    assert_eq!(names(&first, "Roles", "RoleName"), ["Rules-Ingest"]);
    assert!(first["NextToken"].is_string(), "{first}");

    // Inline policies.
    iam(
        server,
        &[
            "put-role-policy",
            "--role-name",
            "Rules-Ingest",
            "--policy-name",
            "publish",
            "--policy-document",
            PUBLISH,
        ],
    );
    iam(
        server,
        &[
            "put-role-policy",
            "--role-name",
            "Rules-Ingest",
            "--policy-name",
            "Another",
            "--policy-document",
            TRUST,
        ],
    );
    let policy = iam(
        server,
        &[
            "get-role-policy",
            "--role-name",
            "Rules-Ingest",
            "--policy-name",
            "publish",
        ],
    );
    assert_eq!(
        policy,
        json!({
            "RoleName": "Rules-Ingest",
            "PolicyName": "publish",
            "PolicyDocument": serde_json::from_str::<Value>(PUBLISH).unwrap(),
        })
    );
    let listed = iam(
        server,
        &["list-role-policies", "--role-name", "Rules-Ingest"],
    );
    assert_eq!(names(&listed, "PolicyNames", ""), ["Another", "publish"]);

    // A role with inline policies cannot be deleted.
    let m = iam_fails(
        server,
        "DeleteConflict",
        &["delete-role", "--role-name", "Rules-Ingest"],
    );
    assert!(m.contains("policies"), "{m}");
    for p in ["publish", "Another"] {
        iam(
            server,
            &[
                "delete-role-policy",
                "--role-name",
                "Rules-Ingest",
                "--policy-name",
                p,
            ],
        );
    }
    let m = iam_fails(
        server,
        "NoSuchEntity",
        &[
            "get-role-policy",
            "--role-name",
            "Rules-Ingest",
            "--policy-name",
            "publish",
        ],
    );
    assert_eq!(m, "The role policy with name publish cannot be found.");
    iam_fails(
        server,
        "NoSuchEntity",
        &[
            "delete-role-policy",
            "--role-name",
            "Rules-Ingest",
            "--policy-name",
            "publish",
        ],
    );
    let listed = iam(
        server,
        &["list-role-policies", "--role-name", "Rules-Ingest"],
    );
    assert_eq!(names(&listed, "PolicyNames", ""), Vec::<String>::new());
    iam(server, &["delete-role", "--role-name", "Rules-Ingest"]);
    let m = iam_fails(
        server,
        "NoSuchEntity",
        &["get-role", "--role-name", "Rules-Ingest"],
    );
    assert_eq!(m, "The role with name Rules-Ingest cannot be found.");
    iam_fails(
        server,
        "NoSuchEntity",
        &["delete-role", "--role-name", "Rules-Ingest"],
    );

    // Errors.
    let m = iam_fails(
        server,
        "EntityAlreadyExists",
        &[
            "create-role",
            "--role-name",
            "A-ROLE",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    assert_eq!(m, "Role with name a-role already exists.");
    iam_fails(
        server,
        "MalformedPolicyDocument",
        &[
            "create-role",
            "--role-name",
            "bad-doc",
            "--assume-role-policy-document",
            "{\"Version\":\"2012-10-17\"}",
        ],
    );
    iam_fails(
        server,
        "MalformedPolicyDocument",
        &[
            "put-role-policy",
            "--role-name",
            "a-role",
            "--policy-name",
            "p",
            "--policy-document",
            "{not json",
        ],
    );
    iam_fails(
        server,
        "NoSuchEntity",
        &[
            "put-role-policy",
            "--role-name",
            "ghost",
            "--policy-name",
            "p",
            "--policy-document",
            PUBLISH,
        ],
    );
    let m = iam_fails(
        server,
        "ValidationError",
        &[
            "create-role",
            "--role-name",
            "has space",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    assert!(m.contains("roleName"), "{m}");
    iam_fails(
        server,
        "ValidationError",
        &[
            "create-role",
            "--role-name",
            "p",
            "--path",
            "no-slashes",
            "--assume-role-policy-document",
            TRUST,
        ],
    );
    assert_eq!(
        names(&iam(server, &["list-roles"]), "Roles", "RoleName"),
        ["a-role", "m-role", "z-role"],
        "refused creates created nothing"
    );
}

fn users_flow(server: &Server) {
    let created = iam(server, &["create-user", "--user-name", "Fleet-1"]);
    let user = &created["User"];
    assert_eq!(user["UserName"], "Fleet-1");
    assert_eq!(user["Path"], "/");
    assert_eq!(user["Arn"], format!("arn:aws:iam::{ACCOUNT}:user/Fleet-1"));
    assert!(user["UserId"].as_str().unwrap().starts_with("AIDA"));
    assert_eq!(
        &iam(server, &["get-user", "--user-name", "fleet-1"])["User"],
        user
    );
    iam_fails(
        server,
        "EntityAlreadyExists",
        &["create-user", "--user-name", "FLEET-1"],
    );
    iam_fails(
        server,
        "NoSuchEntity",
        &["get-user", "--user-name", "nobody"],
    );
    iam_fails(
        server,
        "ValidationError",
        &["create-user", "--user-name", "no/slash"],
    );

    let key = iam(server, &["create-access-key", "--user-name", "Fleet-1"]);
    let key = &key["AccessKey"];
    let id = key["AccessKeyId"].as_str().unwrap().to_owned();
    assert!(
        id.len() == 20
            && id.starts_with("AKIA")
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(key["SecretAccessKey"].as_str().unwrap().len(), 40);
    assert_eq!(key["Status"], "Active");
    assert_eq!(key["UserName"], "Fleet-1");
    let second = iam(server, &["create-access-key", "--user-name", "Fleet-1"]);
    let second_id = second["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_id, id);
    iam_fails(
        server,
        "LimitExceeded",
        &["create-access-key", "--user-name", "Fleet-1"],
    );
    let listed = iam(server, &["list-access-keys", "--user-name", "Fleet-1"]);
    let mut ids = names(&listed, "AccessKeyMetadata", "AccessKeyId");
    ids.sort();
    let mut expected = vec![id.clone(), second_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        listed["AccessKeyMetadata"][0]
            .get("SecretAccessKey")
            .is_none()
    );
    iam(
        server,
        &[
            "delete-access-key",
            "--user-name",
            "Fleet-1",
            "--access-key-id",
            &id,
        ],
    );
    let m = iam_fails(
        server,
        "NoSuchEntity",
        &[
            "delete-access-key",
            "--user-name",
            "Fleet-1",
            "--access-key-id",
            &id,
        ],
    );
    assert_eq!(m, format!("The Access Key with id {id} cannot be found."));
    let listed = iam(server, &["list-access-keys", "--user-name", "Fleet-1"]);
    assert_eq!(
        names(&listed, "AccessKeyMetadata", "AccessKeyId"),
        [second_id]
    );
    iam_fails(
        server,
        "NoSuchEntity",
        &["list-access-keys", "--user-name", "nobody"],
    );

    // User inline policies.
    iam(
        server,
        &[
            "put-user-policy",
            "--user-name",
            "Fleet-1",
            "--policy-name",
            "publish",
            "--policy-document",
            PUBLISH,
        ],
    );
    let got = iam(
        server,
        &[
            "get-user-policy",
            "--user-name",
            "Fleet-1",
            "--policy-name",
            "publish",
        ],
    );
    assert_eq!(
        got["PolicyDocument"],
        serde_json::from_str::<Value>(PUBLISH).unwrap()
    );
    assert_eq!(got["UserName"], "Fleet-1");
    let listed = iam(server, &["list-user-policies", "--user-name", "Fleet-1"]);
    assert_eq!(names(&listed, "PolicyNames", ""), ["publish"]);
    iam(
        server,
        &[
            "delete-user-policy",
            "--user-name",
            "Fleet-1",
            "--policy-name",
            "publish",
        ],
    );
    iam_fails(
        server,
        "NoSuchEntity",
        &[
            "get-user-policy",
            "--user-name",
            "Fleet-1",
            "--policy-name",
            "publish",
        ],
    );

    // Deleting a user: refused while it has an access key.
    iam_fails(
        server,
        "DeleteConflict",
        &["delete-user", "--user-name", "Fleet-1"],
    );
    let keys = iam(server, &["list-access-keys", "--user-name", "Fleet-1"]);
    for id in names(&keys, "AccessKeyMetadata", "AccessKeyId") {
        iam(
            server,
            &[
                "delete-access-key",
                "--user-name",
                "Fleet-1",
                "--access-key-id",
                &id,
            ],
        );
    }
    iam(server, &["delete-user", "--user-name", "fleet-1"]);
    iam_fails(
        server,
        "NoSuchEntity",
        &["get-user", "--user-name", "Fleet-1"],
    );
    iam_fails(
        server,
        "NoSuchEntity",
        &["delete-user", "--user-name", "Fleet-1"],
    );
}

fn iam_flow(server: &Server) {
    roles_flow(server);
    users_flow(server);
}

#[test]
fn iam_flow_on_sqlite() {
    iam_flow(&Server::start(Backend::Sqlite));
}

#[test]
fn iam_flow_on_postgres() {
    iam_flow(&Server::start(Backend::Postgres));
}

#[test]
fn boto3_iam_on_sqlite() {
    let server = Server::start(Backend::Sqlite);
    println!("{}", server.python("iam.py", &[]));
}
