//! Functions for the tests of the function runtime: handlers zipped with `python3 -m zipfile`,
//! IAM execution roles and their inline policies made with `aws iam`, functions made with
//! `aws lambda create-function`, and their logs read back with `aws logs filter-log-events`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ACCOUNT, Aws, REGION, run_ok, str_of};

/// The trust policy that lets Lambda assume a role, as the AWS documentation writes it.
pub(crate) fn lambda_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`.
pub(crate) fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// Writes `files` (name, contents) into `dir` and zips them into `dir/NAME.zip` with
/// `python3 -m zipfile -c`, as a user would with `zip`.
pub(crate) fn zip_files(dir: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    let zip = dir.join(format!("{name}.zip"));
    let mut cmd = std::process::Command::new("python3");
    cmd.current_dir(&src)
        .args(["-m", "zipfile", "-c"])
        .arg(&zip);
    for (file, contents) in files {
        std::fs::write(src.join(file), contents).unwrap();
        cmd.arg(file);
    }
    run_ok(&mut cmd, super::CLIENT_TIMEOUT);
    zip
}

/// `aws iam create-role` trusted by Lambda, with one inline policy allowing `actions` on `*`.
/// Returns the role's ARN.
pub(crate) fn create_role(aws: &Aws, name: &str, actions: &[&str]) -> String {
    let created = aws.cli_ok(
        "iam",
        &[
            "create-role",
            "--role-name",
            name,
            "--assume-role-policy-document",
            &lambda_trust_policy().to_string(),
        ],
    );
    let document = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }]
    });
    aws.cli_ok(
        "iam",
        &[
            "put-role-policy",
            "--role-name",
            name,
            "--policy-name",
            &format!("{name}-policy"),
            "--policy-document",
            &document.to_string(),
        ],
    );
    str_of(&created["Role"]["Arn"]).to_owned()
}

/// A Python function (`runtime python3.11`) from a zip, with `handler`, the execution `role`,
/// `timeout` seconds and environment variables. Returns CreateFunction's answer.
pub(crate) fn create_function(
    aws: &Aws,
    name: &str,
    zip: &Path,
    handler: &str,
    role: &str,
    timeout_s: u32,
    env: &[(&str, &str)],
) -> Value {
    let zip_arg = format!("fileb://{}", zip.display());
    let timeout = timeout_s.to_string();
    let mut args = vec![
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.11",
        "--handler",
        handler,
        "--role",
        role,
        "--zip-file",
        &zip_arg,
        "--timeout",
        &timeout,
    ];
    let variables: serde_json::Map<String, Value> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let environment = json!({ "Variables": variables }).to_string();
    if !env.is_empty() {
        args.extend(["--environment", &environment]);
    }
    aws.cli_ok("lambda", &args)
}

/// The messages of `/aws/lambda/NAME` matching `pattern` (a CloudWatch Logs filter pattern;
/// empty for all), read with `aws logs filter-log-events`; waits until at least `at_least`
/// match or `timeout` passes, then returns what there is.
pub(crate) fn function_logs(
    aws: &Aws,
    function: &str,
    pattern: &str,
    at_least: usize,
    timeout: Duration,
) -> Vec<String> {
    let group = format!("/aws/lambda/{function}");
    let deadline = Instant::now() + timeout;
    loop {
        let mut args = vec!["filter-log-events", "--log-group-name", &group];
        if !pattern.is_empty() {
            args.extend(["--filter-pattern", pattern]);
        }
        let found: Vec<String> = match aws.cli("logs", &args) {
            Ok(v) => v["events"]
                .as_array()
                .map(|events| {
                    events
                        .iter()
                        .map(|e| str_of(&e["message"]).to_owned())
                        .collect()
                })
                .unwrap_or_default(),
            // The group appears with the first invocation's logs.
            Err(e) if e.code == "ResourceNotFoundException" => Vec::new(),
            Err(e) => panic!("aws logs filter-log-events {group}: {e}"),
        };
        if found.len() >= at_least || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
