//! The real `aws logs` CLI against the CloudWatch Logs front: groups, streams, putting events,
//! reading them both ways with tokens, filtering them, and the errors a user meets. Each step
//! runs on both registry backends.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ACCOUNT, Backend, REGION, Server};
use serde_json::Value;

/// Event timestamps start here (epoch milliseconds).
const T0: i64 = 1_764_400_000_000;

fn logs(server: &Server, args: &[&str]) -> Value {
    server
        .aws_in("logs", args)
        .unwrap_or_else(|e| panic!("aws logs {}: {e:?}", args.join(" ")))
}

/// `aws logs ARGS` that must fail with `code`; returns the message.
fn logs_fails(server: &Server, code: &str, args: &[&str]) -> String {
    match server.aws_in("logs", args) {
        Ok(v) => panic!(
            "aws logs {} succeeded ({v}) but should fail with {code}",
            args.join(" ")
        ),
        Err(e) => {
            assert_eq!(e.code, code, "aws logs {}: {}", args.join(" "), e.stderr);
            e.message
        }
    }
}

fn field<'a>(items: &'a Value, list: &str, name: &str) -> Vec<&'a str> {
    items[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {items}"))
        .iter()
        .map(|i| i[name].as_str().unwrap())
        .collect()
}

fn messages(v: &Value) -> Vec<&str> {
    field(v, "events", "message")
}

fn ms(offset: i64) -> String {
    (T0 + offset).to_string()
}

fn event(offset: i64, message: &str) -> String {
    format!("timestamp={},message={message}", T0 + offset)
}

fn logs_flow(server: &Server) {
    const G: &str = "/aws/lambda/temp";
    // Groups.
    for g in [G, "/aws/lambda/other", "/ferrule/rules"] {
        logs(server, &["create-log-group", "--log-group-name", g]);
    }
    logs_fails(
        server,
        "ResourceAlreadyExistsException",
        &["create-log-group", "--log-group-name", G],
    );
    logs_fails(
        server,
        "InvalidParameterException",
        &["create-log-group", "--log-group-name", "bad name"],
    );
    let groups = logs(
        server,
        &[
            "describe-log-groups",
            "--log-group-name-prefix",
            "/aws/lambda/",
        ],
    );
    assert_eq!(
        field(&groups, "logGroups", "logGroupName"),
        ["/aws/lambda/other", G]
    );
    assert_eq!(
        groups["logGroups"][1]["arn"],
        format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{G}:*")
    );
    let created = groups["logGroups"][1]["creationTime"].as_i64().unwrap();
    assert!(created > 1_700_000_000_000, "epoch ms: {created}");
    // The CLI walks pages of one by itself.
    let all = logs(server, &["describe-log-groups", "--page-size", "1"]);
    assert_eq!(
        field(&all, "logGroups", "logGroupName"),
        ["/aws/lambda/other", G, "/ferrule/rules"]
    );
    // One page of one, by hand.
    let first = logs(server, &["describe-log-groups", "--limit", "1"]);
    assert_eq!(
        field(&first, "logGroups", "logGroupName"),
        ["/aws/lambda/other"]
    );
    let token = first["nextToken"].as_str().unwrap();
    let second = logs(
        server,
        &["describe-log-groups", "--limit", "1", "--next-token", token],
    );
    assert_eq!(field(&second, "logGroups", "logGroupName"), [G]);

    // Streams.
    for s in ["2026/11/29/a", "2026/11/29/b"] {
        logs(
            server,
            &[
                "create-log-stream",
                "--log-group-name",
                G,
                "--log-stream-name",
                s,
            ],
        );
    }
    logs_fails(
        server,
        "ResourceAlreadyExistsException",
        &[
            "create-log-stream",
            "--log-group-name",
            G,
            "--log-stream-name",
            "2026/11/29/a",
        ],
    );
    let m = logs_fails(
        server,
        "ResourceNotFoundException",
        &[
            "create-log-stream",
            "--log-group-name",
            "/nope",
            "--log-stream-name",
            "s",
        ],
    );
    assert!(m.contains("log group does not exist"), "{m}");

    // Events.
    let a = ["--log-group-name", G, "--log-stream-name", "2026/11/29/a"];
    let put = |stream_args: &[&str], events: &[String]| {
        let mut args = vec!["put-log-events"];
        args.extend_from_slice(stream_args);
        args.push("--log-events");
        args.extend(events.iter().map(String::as_str));
        server.aws_in("logs", &args)
    };
    put(
        &a,
        &[
            event(0, "START RequestId: 1"),
            event(1000, "ERROR read timeout"),
            event(2000, "WARN low disk"),
            event(3000, "ERROR timeout on read"),
            event(4000, "END RequestId: 1"),
        ],
    )
    .unwrap();
    put(
        &["--log-group-name", G, "--log-stream-name", "2026/11/29/b"],
        &[event(2500, "ERROR b failed")],
    )
    .unwrap();
    let e = put(&a, &[event(9000, "late"), event(8000, "early")]).unwrap_err();
    assert_eq!(e.code, "InvalidParameterException", "{}", e.stderr);
    assert!(e.message.contains("chronological order"), "{}", e.message);
    let e = put(
        &["--log-group-name", G, "--log-stream-name", "nope"],
        &[event(0, "x")],
    )
    .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException", "{}", e.stderr);
    let e = put(
        &["--log-group-name", "/nope", "--log-stream-name", "a"],
        &[event(0, "x")],
    )
    .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException", "{}", e.stderr);

    // get-log-events forward from the head, two at a time, until the token repeats.
    let get = |extra: &[&str]| {
        let mut args = vec!["get-log-events"];
        args.extend_from_slice(&a);
        args.extend_from_slice(extra);
        logs(server, &args)
    };
    let p1 = get(&["--start-from-head", "--limit", "2"]);
    assert_eq!(messages(&p1), ["START RequestId: 1", "ERROR read timeout"]);
    assert_eq!(p1["events"][0]["timestamp"], T0);
    assert!(p1["events"][0]["ingestionTime"].as_i64().unwrap() >= created);
    let p2 = get(&[
        "--limit",
        "2",
        "--next-token",
        p1["nextForwardToken"].as_str().unwrap(),
    ]);
    assert_eq!(messages(&p2), ["WARN low disk", "ERROR timeout on read"]);
    let p3 = get(&[
        "--limit",
        "2",
        "--next-token",
        p2["nextForwardToken"].as_str().unwrap(),
    ]);
    assert_eq!(messages(&p3), ["END RequestId: 1"]);
    let end_token = p3["nextForwardToken"].as_str().unwrap();
    let p4 = get(&["--limit", "2", "--next-token", end_token]);
    assert!(messages(&p4).is_empty());
    assert_eq!(
        p4["nextForwardToken"], end_token,
        "the end: the same token back"
    );
    // From the tail (the default), then backward.
    let t1 = get(&["--limit", "2"]);
    assert_eq!(messages(&t1), ["ERROR timeout on read", "END RequestId: 1"]);
    let t2 = get(&[
        "--limit",
        "2",
        "--next-token",
        t1["nextBackwardToken"].as_str().unwrap(),
    ]);
    assert_eq!(messages(&t2), ["ERROR read timeout", "WARN low disk"]);
    // A time window: start inclusive, end exclusive.
    let w = get(&[
        "--start-from-head",
        "--start-time",
        &ms(1000),
        "--end-time",
        &ms(3000),
    ]);
    assert_eq!(messages(&w), ["ERROR read timeout", "WARN low disk"]);
    logs_fails(
        server,
        "ResourceNotFoundException",
        &[
            "get-log-events",
            "--log-group-name",
            G,
            "--log-stream-name",
            "nope",
        ],
    );
    logs_fails(
        server,
        "InvalidParameterException",
        &[
            "get-log-events",
            "--log-group-name",
            G,
            "--log-stream-name",
            "2026/11/29/a",
            "--next-token",
            "garbage",
        ],
    );

    // filter-log-events.
    let filter = |extra: &[&str]| {
        let mut args = vec!["filter-log-events", "--log-group-name", G];
        args.extend_from_slice(extra);
        logs(server, &args)
    };
    assert_eq!(
        messages(&filter(&["--filter-pattern", "ERROR timeout"])),
        ["ERROR read timeout", "ERROR timeout on read"]
    );
    assert_eq!(
        messages(&filter(&["--filter-pattern", "\"read timeout\""])),
        ["ERROR read timeout"]
    );
    assert_eq!(
        messages(&filter(&["--filter-pattern", "?WARN ?START"])),
        ["START RequestId: 1", "WARN low disk"]
    );
    let errors = filter(&["--filter-pattern", "ERROR"]);
    assert_eq!(
        messages(&errors),
        [
            "ERROR read timeout",
            "ERROR b failed",
            "ERROR timeout on read"
        ]
    );
    assert_eq!(
        field(&errors, "events", "logStreamName"),
        ["2026/11/29/a", "2026/11/29/b", "2026/11/29/a"]
    );
    assert_eq!(
        messages(&filter(&[
            "--filter-pattern",
            "ERROR",
            "--start-time",
            &ms(1500),
            "--end-time",
            &ms(3000)
        ])),
        ["ERROR b failed"]
    );
    assert_eq!(
        messages(&filter(&["--log-stream-names", "2026/11/29/b"])),
        ["ERROR b failed"]
    );
    assert_eq!(
        messages(&filter(&["--log-stream-name-prefix", "2026/11/29/"])).len(),
        6
    );
    // The CLI walks pages of one; by hand, --limit 1 and the token.
    assert_eq!(
        messages(&filter(&["--filter-pattern", "ERROR", "--page-size", "1"])),
        messages(&errors)
    );
    let f1 = filter(&["--filter-pattern", "ERROR", "--limit", "1"]);
    assert_eq!(messages(&f1), ["ERROR read timeout"]);
    let f2 = filter(&[
        "--filter-pattern",
        "ERROR",
        "--limit",
        "1",
        "--next-token",
        f1["nextToken"].as_str().unwrap(),
    ]);
    assert_eq!(messages(&f2), ["ERROR b failed"]);
    let m = logs_fails(
        server,
        "InvalidParameterException",
        &[
            "filter-log-events",
            "--log-group-name",
            G,
            "--filter-pattern",
            "{ $.level = \"ERROR\" }",
        ],
    );
    assert!(m.contains("JSON"), "{m}");
    logs_fails(
        server,
        "ResourceNotFoundException",
        &["filter-log-events", "--log-group-name", "/nope"],
    );

    // Streams by last event time, newest first; and by name with a prefix.
    let streams = logs(
        server,
        &[
            "describe-log-streams",
            "--log-group-name",
            G,
            "--order-by",
            "LastEventTime",
            "--descending",
        ],
    );
    assert_eq!(
        field(&streams, "logStreams", "logStreamName"),
        ["2026/11/29/a", "2026/11/29/b"]
    );
    assert_eq!(streams["logStreams"][0]["firstEventTimestamp"], T0);
    assert_eq!(streams["logStreams"][0]["lastEventTimestamp"], T0 + 4000);
    let by_name = logs(
        server,
        &[
            "describe-log-streams",
            "--log-group-name",
            G,
            "--log-stream-name-prefix",
            "2026/11/29/b",
        ],
    );
    assert_eq!(
        field(&by_name, "logStreams", "logStreamName"),
        ["2026/11/29/b"]
    );
    logs_fails(
        server,
        "InvalidParameterException",
        &[
            "describe-log-streams",
            "--log-group-name",
            G,
            "--order-by",
            "LastEventTime",
            "--log-stream-name-prefix",
            "x",
        ],
    );

    // Retention, then deletion.
    logs(
        server,
        &[
            "put-retention-policy",
            "--log-group-name",
            G,
            "--retention-in-days",
            "7",
        ],
    );
    let g = logs(
        server,
        &["describe-log-groups", "--log-group-name-prefix", G],
    );
    assert_eq!(g["logGroups"][0]["retentionInDays"], 7);
    logs(server, &["delete-log-group", "--log-group-name", G]);
    logs_fails(
        server,
        "ResourceNotFoundException",
        &["delete-log-group", "--log-group-name", G],
    );
    logs_fails(
        server,
        "ResourceNotFoundException",
        &["describe-log-streams", "--log-group-name", G],
    );
    logs_fails(
        server,
        "ResourceNotFoundException",
        &[
            "get-log-events",
            "--log-group-name",
            G,
            "--log-stream-name",
            "2026/11/29/a",
        ],
    );
    let left = logs(server, &["describe-log-groups"]);
    assert_eq!(
        field(&left, "logGroups", "logGroupName"),
        ["/aws/lambda/other", "/ferrule/rules"]
    );
}

#[test]
fn logs_flow_on_sqlite() {
    logs_flow(&Server::start(Backend::Sqlite));
}

#[test]
fn logs_flow_on_postgres() {
    logs_flow(&Server::start(Backend::Postgres));
}
