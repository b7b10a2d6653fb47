//! The Lambda API through the real `aws` CLI (botocore's `lambda` model parses every answer):
//! function lifecycle, validation errors, permissions and `Invoke` through a small
//! [`FunctionHost`] written here (the real runtime is tested end to end elsewhere). A few
//! wire details the CLI hides (error body shape, `Timeout` below the model's minimum, no host)
//! go through the socket-less router harness.

#![allow(clippy::unwrap_used)]

mod fixture;

use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use self::fixture::{
    ACCOUNT, EchoHost, KEY, SECRET, Server, TRUST_IOT, TRUST_LAMBDA, python_sha256, signed_download,
};
use super::tests::harness;

const APP_V1: &str = "def handler(event, context):\n    return event\n";
const APP_V2: &str = "def handler(event, context):\n    return {'v': 2}\n";

#[test]
fn function_lifecycle_through_the_cli() {
    let mut s = Server::start(None);
    let role = s.role("lambda-exec", TRUST_LAMBDA);
    assert_eq!(
        role,
        format!("arn:aws:iam::{ACCOUNT}:role/service-role/lambda-exec")
    );
    let (zip, zip_path) = s.zip("v1", &[("app.py", APP_V1)]);

    let created = s.ok(&[
        "create-function",
        "--function-name",
        "jitr-activate",
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--role",
        &role,
        "--zip-file",
        &zip,
        "--description",
        "activates certificates",
        "--timeout",
        "10",
        "--memory-size",
        "256",
        "--environment",
        "Variables={STAGE=dev,LEVEL=3}",
        "--tags",
        "team=iot,env=test",
    ]);
    let arn = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:jitr-activate");
    assert_eq!(created["FunctionName"], "jitr-activate");
    assert_eq!(created["FunctionArn"], arn.as_str());
    assert_eq!(created["Runtime"], "python3.12");
    assert_eq!(created["Handler"], "app.handler");
    assert_eq!(created["Role"], role.as_str());
    assert_eq!(created["Description"], "activates certificates");
    assert_eq!(created["Timeout"], 10);
    assert_eq!(created["MemorySize"], 256);
    assert_eq!(
        created["Environment"],
        json!({ "Variables": { "STAGE": "dev", "LEVEL": "3" } })
    );
    let zip_bytes = std::fs::read(&zip_path).unwrap();
    assert_eq!(created["CodeSize"], zip_bytes.len());
    assert_eq!(created["CodeSha256"], python_sha256(&zip_path).as_str());
    assert_eq!(created["Version"], "$LATEST");
    assert_eq!(created["State"], "Active");
    assert_eq!(created["LastUpdateStatus"], "Successful");
    assert_eq!(created["PackageType"], "Zip");
    assert_eq!(created["Architectures"], json!(["x86_64"]));
    let revision = created["RevisionId"].as_str().unwrap().to_owned();
    assert_eq!(revision.len(), 36, "{revision}");
    let modified = created["LastModified"].as_str().unwrap();
    assert!(
        modified.len() == 28 && modified.ends_with("+0000") && modified.as_bytes()[10] == b'T',
        "{modified}"
    );

    // The same function whichever way it is named.
    let configuration = s.ok(&[
        "get-function-configuration",
        "--function-name",
        "jitr-activate",
    ]);
    assert_eq!(configuration, created);
    for name in [
        arn.as_str(),
        &format!("{arn}:$LATEST"),
        &format!("{ACCOUNT}:function:jitr-activate"),
    ] {
        let got = s.ok(&["get-function-configuration", "--function-name", name]);
        assert_eq!(got["RevisionId"], revision.as_str(), "{name}");
    }
    s.ok(&[
        "get-function-configuration",
        "--function-name",
        "jitr-activate",
        "--qualifier",
        "$LATEST",
    ]);
    let message = s.fails(
        "ResourceNotFoundException",
        &[
            "get-function",
            "--function-name",
            "jitr-activate",
            "--qualifier",
            "1",
        ],
    );
    assert_eq!(message, format!("Function not found: {arn}:1"));

    let got = s.ok(&["get-function", "--function-name", "jitr-activate"]);
    assert_eq!(got["Configuration"], created);
    assert_eq!(got["Tags"], json!({ "team": "iot", "env": "test" }));
    assert_eq!(got["Code"]["RepositoryType"], "S3");
    let location = got["Code"]["Location"].as_str().unwrap();
    assert_eq!(
        location,
        format!("{}/2015-03-31/functions/jitr-activate/code-zip", s.endpoint)
    );
    assert_eq!(
        signed_download(location, &s.path("downloaded.zip")),
        zip_bytes
    );

    // Duplicates conflict.
    let message = s.fails(
        "ResourceConflictException",
        &[
            "create-function",
            "--function-name",
            "jitr-activate",
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--role",
            &role,
            "--zip-file",
            &zip,
        ],
    );
    assert_eq!(message, "Function already exist: jitr-activate");

    // New code: new hash, new revision, same configuration.
    let (zip2, zip2_path) = s.zip("v2", &[("app.py", APP_V2), ("util.py", "X = 1\n")]);
    let updated = s.ok(&[
        "update-function-code",
        "--function-name",
        "jitr-activate",
        "--zip-file",
        &zip2,
    ]);
    assert_eq!(updated["CodeSha256"], python_sha256(&zip2_path).as_str());
    assert_ne!(updated["CodeSha256"], created["CodeSha256"]);
    assert_eq!(
        updated["CodeSize"],
        std::fs::read(&zip2_path).unwrap().len()
    );
    let revision2 = updated["RevisionId"].as_str().unwrap().to_owned();
    assert_ne!(revision2, revision);
    assert_eq!(updated["Timeout"], 10);
    let got = s.ok(&["get-function", "--function-name", "jitr-activate"]);
    assert_eq!(
        signed_download(got["Code"]["Location"].as_str().unwrap(), &s.path("d2.zip")),
        std::fs::read(&zip2_path).unwrap()
    );
    // A stale revision is refused.
    s.fails(
        "PreconditionFailedException",
        &[
            "update-function-code",
            "--function-name",
            "jitr-activate",
            "--zip-file",
            &zip,
            "--revision-id",
            &revision,
        ],
    );

    // New configuration: environment replaced, timeout changed, the rest kept.
    let reconfigured = s.ok(&[
        "update-function-configuration",
        "--function-name",
        "jitr-activate",
        "--environment",
        "Variables={STAGE=prod}",
        "--timeout",
        "30",
        "--revision-id",
        &revision2,
    ]);
    assert_eq!(
        reconfigured["Environment"],
        json!({ "Variables": { "STAGE": "prod" } })
    );
    assert_eq!(reconfigured["Timeout"], 30);
    assert_eq!(reconfigured["MemorySize"], 256);
    assert_eq!(reconfigured["CodeSha256"], updated["CodeSha256"]);
    assert_ne!(reconfigured["RevisionId"], revision2.as_str());
    let got = s.ok(&["get-function-configuration", "--function-name", &arn]);
    assert_eq!(got, reconfigured);
    let cleared = s.ok(&[
        "update-function-configuration",
        "--function-name",
        "jitr-activate",
        "--environment",
        r#"{"Variables":{}}"#,
    ]);
    assert!(cleared.get("Environment").is_none(), "{cleared}");
    s.fails(
        "InvalidParameterValueException",
        &[
            "update-function-configuration",
            "--function-name",
            "jitr-activate",
            "--runtime",
            "nodejs20.x",
        ],
    );

    // Listing, a page at a time.
    for name in ["a-first", "m-middle", "z-last"] {
        s.create(name, &role, &zip);
    }
    let all = s.ok(&["list-functions"]);
    let names: Vec<&str> = all["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-first", "jitr-activate", "m-middle", "z-last"]);
    assert!(all.get("NextMarker").is_none() && all.get("NextToken").is_none());
    let first = s.ok(&["list-functions", "--max-items", "3", "--page-size", "2"]);
    assert_eq!(first["Functions"].as_array().unwrap().len(), 3);
    let token = first["NextToken"].as_str().unwrap().to_owned();
    let rest = s.ok(&[
        "list-functions",
        "--max-items",
        "3",
        "--starting-token",
        &token,
    ]);
    assert_eq!(rest["Functions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["Functions"][0]["FunctionName"], "z-last");
    assert!(rest.get("NextToken").is_none(), "{rest}");

    // Deleting.
    assert_eq!(
        s.ok(&["delete-function", "--function-name", "jitr-activate"]),
        json!({ "StatusCode": 204 })
    );
    let message = s.fails(
        "ResourceNotFoundException",
        &["get-function", "--function-name", "jitr-activate"],
    );
    assert_eq!(message, format!("Function not found: {arn}"));
    s.fails(
        "ResourceNotFoundException",
        &["delete-function", "--function-name", "jitr-activate"],
    );
    s.fails(
        "ResourceNotFoundException",
        &[
            "update-function-code",
            "--function-name",
            "jitr-activate",
            "--zip-file",
            &zip,
        ],
    );
    // Its tags went with it: a new function of that name starts without any.
    s.create("jitr-activate", &role, &zip);
    let got = s.ok(&["get-function", "--function-name", "jitr-activate"]);
    assert!(got.get("Tags").is_none(), "{got}");
}

#[test]
fn create_function_refuses_what_aws_refuses() {
    let mut s = Server::start(None);
    let role = s.role("lambda-exec", TRUST_LAMBDA);
    let iot_role = s.role("iot-only", TRUST_IOT);
    let (zip, _) = s.zip("ok", &[("app.py", APP_V1)]);

    // `overrides`: a flag with another value, or `None` to leave the flag out.
    let create = |s: &mut Server, overrides: &[(&str, Option<&str>)]| -> String {
        let mut args = vec!["create-function", "--function-name", "f", "--role", &role];
        let defaults = [
            ("--runtime", Some("python3.12")),
            ("--handler", Some("app.handler")),
            ("--zip-file", Some(zip.as_str())),
        ];
        for (flag, value) in defaults {
            if !overrides.iter().any(|(f, _)| *f == flag) {
                args.extend([flag, value.unwrap()]);
            }
        }
        for (flag, value) in overrides {
            if let Some(value) = value {
                args.extend([*flag, *value]);
            }
        }
        s.fails("InvalidParameterValueException", &args)
    };
    let m = create(
        &mut s,
        &[
            ("--zip-file", None),
            ("--code", Some("S3Bucket=bucket,S3Key=f.zip")),
        ],
    );
    assert!(m.contains("only ZipFile"), "{m}");
    let m = create(&mut s, &[("--runtime", Some("nodejs20.x"))]);
    assert!(
        m.contains("nodejs20.x") && m.contains("provided.al2023"),
        "{m}"
    );
    create(&mut s, &[("--runtime", Some("python3.7"))]);
    let m = create(&mut s, &[("--handler", None)]);
    assert!(m.contains("Handler"), "{m}");
    let m = create(&mut s, &[("--timeout", Some("901"))]);
    assert!(m.contains("Timeout"), "{m}");
    let m = create(&mut s, &[("--memory-size", Some("10241"))]);
    assert!(m.contains("MemorySize"), "{m}");
    let m = create(
        &mut s,
        &[(
            "--environment",
            Some("Variables={AWS_REGION=eu-west-1,AWS_LAMBDA_X=1,OK=1}"),
        )],
    );
    assert!(
        m.ends_with("Reserved keys used in this request: AWS_LAMBDA_X, AWS_REGION"),
        "{m}"
    );
    let m = create(&mut s, &[("--description", Some(&"d".repeat(257)))]);
    assert!(m.contains("Description"), "{m}");

    // Roles: malformed, missing, or not trusting Lambda.
    let role_error = |s: &mut Server, role: &str| {
        s.fails(
            "InvalidParameterValueException",
            &[
                "create-function",
                "--function-name",
                "f",
                "--runtime",
                "python3.12",
                "--handler",
                "app.handler",
                "--role",
                role,
                "--zip-file",
                &zip,
            ],
        )
    };
    let m = role_error(&mut s, "lambda-exec");
    assert!(m.contains("IAM role ARN"), "{m}");
    let cannot = "The role defined for the function cannot be assumed by Lambda.";
    assert_eq!(role_error(&mut s, &iot_role), cannot);
    assert_eq!(
        role_error(
            &mut s,
            &format!("arn:aws:iam::{ACCOUNT}:role/service-role/nobody")
        ),
        cannot
    );
    assert_eq!(
        role_error(&mut s, &format!("arn:aws:iam::{ACCOUNT}:role/lambda-exec")),
        cannot,
        "the role's path is part of its ARN"
    );
    assert_eq!(
        role_error(
            &mut s,
            "arn:aws:iam::210987654321:role/service-role/lambda-exec"
        ),
        cannot
    );

    // Names.
    for bad in ["has.dot", &"n".repeat(65)] {
        let m = s.fails(
            "InvalidParameterValueException",
            &[
                "create-function",
                "--function-name",
                bad,
                "--runtime",
                "python3.12",
                "--handler",
                "app.handler",
                "--role",
                &role,
                "--zip-file",
                &zip,
            ],
        );
        assert!(m.contains("FunctionName"), "{m}");
    }
    // Nothing was stored by any of it.
    assert_eq!(s.ok(&["list-functions"])["Functions"], json!([]));

    // The runtimes that are supported, including `provided` without a handler.
    for (name, runtime) in [("py38", "python3.8"), ("py314", "python3.14")] {
        s.ok(&[
            "create-function",
            "--function-name",
            name,
            "--runtime",
            runtime,
            "--handler",
            "app.handler",
            "--role",
            &role,
            "--zip-file",
            &zip,
        ]);
    }
    let (bootstrap, _) = s.zip("custom", &[("bootstrap", "#!/bin/sh\n")]);
    let custom = s.ok(&[
        "create-function",
        "--function-name",
        "custom",
        "--runtime",
        "provided.al2023",
        "--role",
        &role,
        "--zip-file",
        &bootstrap,
    ]);
    assert_eq!(custom["Runtime"], "provided.al2023");
    assert!(custom.get("Handler").is_none(), "{custom}");
    assert_eq!(custom["Timeout"], 3);
    assert_eq!(custom["MemorySize"], 128);
}

#[test]
fn permissions_make_the_function_policy() {
    let mut s = Server::start(None);
    let role = s.role("lambda-exec", TRUST_LAMBDA);
    let (zip, _) = s.zip("ok", &[("app.py", APP_V1)]);
    let created = s.create("activate", &role, &zip);
    let arn = created["FunctionArn"].as_str().unwrap().to_owned();

    let m = s.fails(
        "ResourceNotFoundException",
        &["get-policy", "--function-name", "activate"],
    );
    assert_eq!(m, "The resource you requested does not exist.");

    let rule_arn = format!("arn:aws:iot:us-east-1:{ACCOUNT}:rule/jitr");
    let added = s.ok(&[
        "add-permission",
        "--function-name",
        "activate",
        "--statement-id",
        "iot-jitr",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "iot.amazonaws.com",
        "--source-arn",
        &rule_arn,
        "--source-account",
        ACCOUNT,
    ]);
    let statement: Value = serde_json::from_str(added["Statement"].as_str().unwrap()).unwrap();
    let expected = json!({
        "Sid": "iot-jitr",
        "Effect": "Allow",
        "Principal": { "Service": "iot.amazonaws.com" },
        "Action": "lambda:InvokeFunction",
        "Resource": arn,
        "Condition": {
            "ArnLike": { "AWS:SourceArn": rule_arn },
            "StringEquals": { "AWS:SourceAccount": ACCOUNT },
        },
    });
    assert_eq!(statement, expected);
    s.ok(&[
        "add-permission",
        "--function-name",
        &arn,
        "--statement-id",
        "account",
        "--action",
        "lambda:*",
        "--principal",
        "210987654321",
    ]);
    let m = s.fails(
        "ResourceConflictException",
        &[
            "add-permission",
            "--function-name",
            "activate",
            "--statement-id",
            "iot-jitr",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "iot.amazonaws.com",
        ],
    );
    assert!(m.contains("(iot-jitr) provided already exists"), "{m}");
    for (flag, bad) in [("--action", "iot:Publish"), ("--principal", "not valid")] {
        let mut args = vec![
            "add-permission",
            "--function-name",
            "activate",
            "--statement-id",
            "bad",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "iot.amazonaws.com",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = bad;
        s.fails("InvalidParameterValueException", &args);
    }
    s.fails(
        "ResourceNotFoundException",
        &[
            "add-permission",
            "--function-name",
            "nobody",
            "--statement-id",
            "x",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "iot.amazonaws.com",
        ],
    );

    let got = s.ok(&["get-policy", "--function-name", "activate"]);
    let policy: Value = serde_json::from_str(got["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    assert_eq!(policy["Id"], "default");
    assert_eq!(policy["Statement"][0], expected);
    assert_eq!(
        policy["Statement"][1]["Principal"],
        json!({ "AWS": "arn:aws:iam::210987654321:root" })
    );
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 2);
    assert_eq!(got["RevisionId"], created["RevisionId"]);

    assert_eq!(
        s.ok(&[
            "remove-permission",
            "--function-name",
            "activate",
            "--statement-id",
            "iot-jitr",
        ]),
        Value::Null
    );
    let m = s.fails(
        "ResourceNotFoundException",
        &[
            "remove-permission",
            "--function-name",
            "activate",
            "--statement-id",
            "iot-jitr",
        ],
    );
    assert!(m.contains("iot-jitr"), "{m}");
    let got = s.ok(&["get-policy", "--function-name", "activate"]);
    let policy: Value = serde_json::from_str(got["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(policy["Statement"][0]["Sid"], "account");
}

#[test]
fn invoke_runs_the_function_through_its_host() {
    let host = Arc::new(EchoHost::default());
    let mut s = Server::start(Some(host.clone()));
    let role = s.role("lambda-exec", TRUST_LAMBDA);
    let (zip, _) = s.zip("ok", &[("app.py", APP_V1)]);
    s.create("echo", &role, &zip);
    let out = s.path("out.json");
    let read_out = || std::fs::read_to_string(&out).unwrap();
    let invoke = |s: &mut Server, payload: &str, extra: &[&str]| {
        let payload = s.file("event.json", payload.as_bytes());
        let mut args = vec!["invoke", "--function-name", "echo", "--payload", &payload];
        args.extend(extra);
        args.push(&out);
        s.aws("lambda", &args)
    };

    // RequestResponse.
    let meta = invoke(&mut s, r#"{"device": "d1", "n": 2}"#, &[]).unwrap();
    assert_eq!(
        meta,
        json!({ "StatusCode": 200, "ExecutedVersion": "$LATEST" })
    );
    let result: Value = serde_json::from_str(&read_out()).unwrap();
    assert_eq!(
        result,
        json!({ "function": "echo", "event": { "device": "d1", "n": 2 } })
    );
    // No payload is `{}`.
    s.ok(&["invoke", "--function-name", "echo", &out]);
    assert_eq!(
        serde_json::from_str::<Value>(&read_out()).unwrap()["event"],
        json!({})
    );

    // A function error, with the log's tail.
    let meta = invoke(
        &mut s,
        r#"{"fail": "bad certificate"}"#,
        &["--log-type", "Tail"],
    )
    .unwrap();
    assert_eq!(meta["StatusCode"], 200);
    assert_eq!(meta["FunctionError"], "Unhandled");
    let error: Value = serde_json::from_str(&read_out()).unwrap();
    assert_eq!(error["errorMessage"], "bad certificate");
    assert_eq!(error["errorType"], "ValueError");
    assert!(error["stackTrace"].is_array());
    let log = ferrule_sql::base64_decode(meta["LogResult"].as_str().unwrap()).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(log.starts_with("START RequestId: "), "{log}");
    assert!(
        log.contains("handling {\"fail\":\"bad certificate\"}"),
        "{log}"
    );
    assert!(log.ends_with("Duration: 1.00 ms\n"), "{log}");
    // Only the last 4 KB of a long log.
    let meta = invoke(&mut s, r#"{"log_lines": 100}"#, &["--log-type", "Tail"]).unwrap();
    let log = ferrule_sql::base64_decode(meta["LogResult"].as_str().unwrap()).unwrap();
    assert_eq!(log.len(), 4096);
    assert!(
        String::from_utf8(log)
            .unwrap()
            .ends_with("Duration: 1.00 ms\n")
    );
    assert!(
        invoke(&mut s, "{}", &["--log-type", "None"])
            .unwrap()
            .get("LogResult")
            .is_none()
    );

    // Event: queued, 202, nothing in the body.
    std::fs::write(&out, "left over").unwrap();
    let meta = invoke(
        &mut s,
        r#"{"queued": true}"#,
        &["--invocation-type", "Event"],
    )
    .unwrap();
    assert_eq!(meta["StatusCode"], 202);
    assert_eq!(read_out(), "");
    assert_eq!(
        host.queued.lock().unwrap().as_slice(),
        [("echo".to_owned(), json!({ "queued": true }))]
    );

    // DryRun: 204, nothing run.
    let meta = invoke(&mut s, "{}", &["--invocation-type", "DryRun"]).unwrap();
    assert_eq!(meta["StatusCode"], 204);
    assert_eq!(host.queued.lock().unwrap().len(), 1);

    // Errors.
    let e = invoke(&mut s, "this is not json", &[]).unwrap_err();
    assert_eq!(e.code, "InvalidRequestContentException", "{}", e.stderr);
    assert!(
        e.message
            .starts_with("Could not parse request body into json"),
        "{e}"
    );
    let e = invoke(&mut s, "{", &["--invocation-type", "Event"]).unwrap_err();
    assert_eq!(e.code, "InvalidRequestContentException", "{}", e.stderr);
    let m = s.fails(
        "ResourceNotFoundException",
        &["invoke", "--function-name", "nobody", &out],
    );
    assert_eq!(
        m,
        format!("Function not found: arn:aws:lambda:us-east-1:{ACCOUNT}:function:nobody")
    );
    s.fails(
        "ResourceNotFoundException",
        &[
            "invoke",
            "--function-name",
            "nobody",
            "--invocation-type",
            "DryRun",
            &out,
        ],
    );
    s.fails(
        "ResourceNotFoundException",
        &[
            "invoke",
            "--function-name",
            "echo",
            "--qualifier",
            "2",
            &out,
        ],
    );
    let e = invoke(&mut s, r#"{"busy": true}"#, &[]).unwrap_err();
    assert_eq!(e.code, "TooManyRequestsException", "{}", e.stderr);
    let e = invoke(&mut s, r#"{"busy": true}"#, &["--invocation-type", "Event"]).unwrap_err();
    assert_eq!(e.code, "TooManyRequestsException", "{}", e.stderr);
    let e = invoke(&mut s, r#"{"vanish": true}"#, &[]).unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException", "{}", e.stderr);
    let e = invoke(&mut s, r#"{"bad_zip": true}"#, &[]).unwrap_err();
    assert_eq!(e.code, "InvalidZipFileException", "{}", e.stderr);
    assert_eq!(e.message, "no bootstrap in the zip");
    let e = invoke(&mut s, r#"{"down": true}"#, &[]).unwrap_err();
    assert_eq!(e.code, "ServiceException", "{}", e.stderr);
    assert!(e.message.contains("shutting down"), "{e}");
}

/// boto3 reads the same shapes: a client made the usual way, pointed at the endpoint.
#[test]
fn boto3_creates_and_invokes_functions() {
    let mut s = Server::start(Some(Arc::new(EchoHost::default())));
    let role = s.role("lambda-exec", TRUST_LAMBDA);
    let (_, zip) = s.zip("ok", &[("app.py", APP_V1)]);
    let script = r#"
import base64, json, sys
import boto3
endpoint, role, zip_path = sys.argv[1:4]
client = boto3.client("lambda", endpoint_url=endpoint)
created = client.create_function(
    FunctionName="boto", Runtime="python3.13", Role=role, Handler="app.handler",
    Code={"ZipFile": open(zip_path, "rb").read()}, Environment={"Variables": {"KEY": "v"}})
assert created["ResponseMetadata"]["HTTPStatusCode"] == 201, created
assert created["State"] == "Active" and created["Version"] == "$LATEST", created
got = client.get_function(FunctionName=created["FunctionArn"])
assert got["Configuration"]["CodeSha256"] == created["CodeSha256"], got
out = client.invoke(FunctionName="boto", Payload=json.dumps({"k": 1}).encode())
assert out["StatusCode"] == 200 and "FunctionError" not in out, out
assert json.loads(out["Payload"].read()) == {"function": "boto", "event": {"k": 1}}
out = client.invoke(FunctionName="boto", Payload=b'{"fail": "no"}', LogType="Tail")
assert out["FunctionError"] == "Unhandled", out
assert json.loads(out["Payload"].read())["errorMessage"] == "no"
assert base64.b64decode(out["LogResult"]).startswith(b"START RequestId: ")
out = client.invoke(FunctionName="boto", InvocationType="Event", Payload=b"{}")
assert out["StatusCode"] == 202, out
try:
    client.get_function_configuration(FunctionName="missing")
    raise AssertionError("missing function found")
except client.exceptions.ResourceNotFoundException as e:
    assert e.response["Error"]["Message"].startswith("Function not found: "), e.response
try:
    client.invoke(FunctionName="boto", Payload=b"nope")
    raise AssertionError("non-JSON payload accepted")
except client.exceptions.InvalidRequestContentException:
    pass
client.delete_function(FunctionName="boto")
assert client.list_functions()["Functions"] == []
print("ok")
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, &s.endpoint, &role]).arg(&zip);
    ferrule_testkit::aws_cli::clean_env(&mut cmd);
    cmd.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the CLI does not show: the error body, a timeout below the model's minimum, and
/// `Invoke` on a server without a function runtime.
#[tokio::test]
async fn lambda_errors_have_lambdas_wire_shape() {
    let h = harness().await;
    let trust =
        percent_encoding::utf8_percent_encode(TRUST_LAMBDA, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let r = h
        .send_as(
            "POST",
            "/",
            &format!("Action=CreateRole&RoleName=exec&AssumeRolePolicyDocument={trust}"),
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(super::tests::SECRET),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // An empty zip: only the end-of-central-directory record.
    let zip = ferrule_sql::base64_encode(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let create = |timeout: i64| {
        json!({
            "FunctionName": "f",
            "Runtime": "python3.12",
            "Handler": "app.handler",
            "Role": format!("arn:aws:iam::{ACCOUNT}:role/exec"),
            "Code": { "ZipFile": zip },
            "Timeout": timeout,
        })
        .to_string()
    };
    let r = h.send("POST", "/2015-03-31/functions", &create(0)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidParameterValueException");
    assert_eq!(r.body["Type"], "User");
    assert_eq!(r.body["message"], "Timeout must be from 1 to 900, not 0");
    assert!(r.headers.contains_key("x-amzn-requestid"));

    // The CLI checks that `--zip-file` is a zip before sending it; the server checks too.
    let not_zip = json!({
        "FunctionName": "f",
        "Runtime": "python3.12",
        "Handler": "app.handler",
        "Role": format!("arn:aws:iam::{ACCOUNT}:role/exec"),
        "Code": { "ZipFile": ferrule_sql::base64_encode(b"PK\x03\x04 but no more") },
    });
    let r = h
        .send("POST", "/2015-03-31/functions", &not_zip.to_string())
        .await;
    assert_eq!(r.code(), "InvalidParameterValueException");
    assert_eq!(
        r.body["message"],
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    );
    let r = h.send("POST", "/2015-03-31/functions", &create(3)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = h.send("POST", "/2015-03-31/functions", "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidRequestContentException");

    let r = h
        .send("POST", "/2015-03-31/functions/f/invocations", "{}")
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.code(), "ServiceException");
    assert_eq!(r.body["Type"], "Service");
    assert!(
        r.body["Message"]
            .as_str()
            .unwrap()
            .contains("function runtime is not enabled"),
        "{:?}",
        r.body
    );
    // DryRun needs no runtime.
    let r = h
        .send_as(
            "POST",
            "/2015-03-31/functions/f/invocations",
            "{}",
            &[("x-amz-invocation-type", "DryRun")],
            Some(super::tests::SECRET),
        )
        .await;
    assert_eq!(r.status, 204);

    let r = h.send("GET", "/2015-03-31/functions/nobody", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "ResourceNotFoundException");
    assert_eq!(
        r.body["Message"],
        format!("Function not found: arn:aws:lambda:us-east-1:{ACCOUNT}:function:nobody")
    );
    // The trailing-slash spelling of ListFunctions.
    let r = h.send("GET", "/2015-03-31/functions/?MaxItems=1", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["Functions"][0]["FunctionName"], "f");
    let r = h.send("GET", "/2015-03-31/functions?MaxItems=0", "").await;
    assert_eq!(r.code(), "InvalidParameterValueException");
}
