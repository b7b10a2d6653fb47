//! The rules engine's `http` action end to end: rules made with the real `aws` CLI post their
//! SQL output to a recording HTTP server ([`Hook`]) on loopback. Covered: the body, the
//! action's headers and Content-Type; retries on 5xx and connection errors, none on 4xx; the
//! 3 s per-attempt timeout; the `--rules-http-allow` prefixes (flag, environment, config file);
//! and the errorAction each kind of failure runs.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{
    Hook, HookRequest, Mqtt, Net, OUTPUT_TIMEOUT, QUIET, Reply, Server, Sub, action_count,
    all_listener_args, assert_error_payload, count_on, create_rule, http_action, metrics_text,
    publisher, republish_action, require_mosquitto, rule, temp_file, unique, wait_rules_live,
};
use serde_json::{Value, json};

/// `--rules-http-allow PREFIX` for each prefix, after the listener flags.
fn server_allowing(prefixes: &[String]) -> Server {
    require_mosquitto();
    let mut args = all_listener_args();
    for p in prefixes {
        args.push("--rules-http-allow".into());
        args.push(p.into());
    }
    Server::start_with(args)
}

/// An http rule on `input` posting `SELECT *` to `url`, failing over to `errors/NAME`.
fn forward_rule(server: &Server, name: &str, input: &str, url: &str) {
    create_rule(
        server,
        name,
        &rule(
            &format!("SELECT * FROM '{input}'"),
            vec![http_action(url, &[])],
            Some(republish_action(&format!("errors/{name}"), 1)),
        ),
    );
}

fn assert_all_posts_of(requests: &[HookRequest], path: &str, body: &Value) {
    for r in requests {
        assert_eq!(r.method, "POST", "{r:?}");
        assert_eq!(r.path, path, "{r:?}");
        assert_eq!(&r.json(), body, "{r:?}");
    }
}

#[test]
fn http_posts_the_select_output_retries_5xx_not_4xx_and_only_to_allowed_prefixes() {
    let ok = Hook::answering(200);
    let flaky = Hook::start(&[Reply::Status(500), Reply::Status(500), Reply::Status(200)]);
    let missing = Hook::answering(404);
    // Allowed, but nothing listens there.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let server = server_allowing(&[
        ok.url("/in/"),
        flaky.url("/"),
        missing.url("/"),
        refused.clone(),
    ]);
    create_rule(
        &server,
        "hook_ok",
        &rule(
            "SELECT temp, topic(2) AS device, clientid() AS client FROM 'hooks/+/ok'",
            vec![http_action(
                &ok.url("/in/ok"),
                &[("x-ferrule-test", "rules-http"), ("x-second", "2")],
            )],
            Some(republish_action("errors/hook_ok", 1)),
        ),
    );
    forward_rule(&server, "hook_flaky", "hooks/flaky", &flaky.url("/flaky"));
    forward_rule(&server, "hook_4xx", "hooks/4xx", &missing.url("/missing"));
    // Same host and port as an allowed prefix, but outside it.
    let denied = ok.url("/out/denied");
    forward_rule(&server, "hook_denied", "hooks/denied", &denied);
    let refused_url = format!("{refused}refused");
    forward_rule(&server, "hook_refused", "hooks/refused", &refused_url);
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("hook-pub");
    let mut pubr = publisher(&server, &client_id);

    // 200: one POST of the SQL output, with the action's headers and a JSON content type.
    pubr.publish("hooks/dev7/ok", br#"{"temp":21.5,"junk":true}"#, 1, false)
        .unwrap();
    let got = ok.wait_requests(1, OUTPUT_TIMEOUT);
    let post = &got[0];
    assert_eq!(post.method, "POST", "{post:?}");
    assert_eq!(post.path, "/in/ok", "{post:?}");
    assert_eq!(
        post.json(),
        json!({ "temp": 21.5, "device": "dev7", "client": client_id }),
        "{post:?}"
    );
    assert_eq!(
        post.header("x-ferrule-test"),
        Some("rules-http"),
        "{post:?}"
    );
    assert_eq!(post.header("x-second"), Some("2"), "{post:?}");
    assert!(
        post.header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json")),
        "{post:?}"
    );

    // 500, 500, 200: three attempts in all, the same body each time, and no failure.
    pubr.publish("hooks/flaky", br#"{"n":2}"#, 1, false)
        .unwrap();
    let attempts = flaky.wait_requests(3, Duration::from_secs(20));
    assert_all_posts_of(&attempts, "/flaky", &json!({ "n": 2 }));

    // 404: one attempt, then the errorAction.
    let original = br#"{"n":3}"#;
    pubr.publish("hooks/4xx", original, 1, false).unwrap();
    let msg = errors.next_on("errors/hook_4xx", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "hook_4xx",
        "hooks/4xx",
        &client_id,
        original,
        "HttpAction",
        &missing.url("/missing"),
    );
    assert_all_posts_of(&missing.requests(), "/missing", &json!({ "n": 3 }));

    // Outside the allowed prefixes: no request at all, and the errorAction.
    pubr.publish("hooks/denied", br#"{"n":4}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/hook_denied", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "hook_denied",
        "hooks/denied",
        &client_id,
        br#"{"n":4}"#,
        "HttpAction",
        &denied,
    );

    // Connection refused: retried, then the errorAction.
    pubr.publish("hooks/refused", br#"{"n":5}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/hook_refused", Duration::from_secs(20));
    assert_error_payload(
        &msg,
        "hook_refused",
        "hooks/refused",
        &client_id,
        br#"{"n":5}"#,
        "HttpAction",
        &refused_url,
    );

    // Settled: exact request counts, and no errorAction for the actions that succeeded.
    let all = errors.all_seen(QUIET);
    assert_eq!(
        ok.requests().len(),
        1,
        "the denied URL was requested: {:?}",
        ok.requests()
    );
    assert_eq!(flaky.requests().len(), 3, "{:?}", flaky.requests());
    assert_eq!(
        missing.requests().len(),
        1,
        "a 4xx was retried: {:?}",
        missing.requests()
    );
    assert_eq!(count_on(&all, "errors/hook_ok"), 0, "{all:?}");
    assert_eq!(count_on(&all, "errors/hook_flaky"), 0, "{all:?}");
    for topic in [
        "errors/hook_4xx",
        "errors/hook_denied",
        "errors/hook_refused",
    ] {
        assert_eq!(count_on(&all, topic), 1, "one error message each: {all:?}");
    }
    let text = metrics_text(&server);
    assert_eq!(
        action_count(&text, "hook_flaky", "http", "success"),
        Some(1.0),
        "a retried action that succeeds counts once:\n{text}"
    );
    assert_eq!(
        action_count(&text, "hook_4xx", "http", "failure"),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn an_http_attempt_times_out_after_three_seconds_then_the_error_action_runs() {
    let silent = Hook::start(&[Reply::Silent]);
    let server = server_allowing(&[silent.url("/")]);
    forward_rule(&server, "hook_silent", "hooks/silent", &silent.url("/slow"));
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("silent-pub");
    let mut pubr = publisher(&server, &client_id);

    let sent = Instant::now();
    pubr.publish("hooks/silent", b"{}", 1, false).unwrap();
    let msg = errors.next_on("errors/hook_silent", Duration::from_secs(30));
    let waited = sent.elapsed();
    assert_error_payload(
        &msg,
        "hook_silent",
        "hooks/silent",
        &client_id,
        b"{}",
        "HttpAction",
        &silent.url("/slow"),
    );
    let attempts = silent.requests().len();
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} attempts: {:?}",
        silent.requests()
    );
    let per_attempt = Duration::from_secs(3);
    assert!(
        waited >= per_attempt.mul_f64(0.9),
        "the errorAction came {waited:?} after the publish: no attempt waited its 3 s"
    );
    let attempts_u32 = u32::try_from(attempts).unwrap();
    assert!(
        waited <= per_attempt * attempts_u32 + Duration::from_secs(6),
        "{attempts} attempt(s) took {waited:?}: an attempt outlived its 3 s timeout"
    );
}

#[test]
fn the_http_allow_list_also_comes_from_the_environment_and_the_config_file() {
    require_mosquitto();
    let a = Hook::answering(200);
    let b = Hook::answering(200);

    // FERRULE_RULES_HTTP_ALLOW, comma-separated.
    let allow = format!("{},{}", a.url("/env/"), b.url("/env/"));
    let server = Server::start_with_env(
        all_listener_args(),
        &[("FERRULE_RULES_HTTP_ALLOW", allow.as_str())],
    );
    forward_rule(&server, "env_a", "env/in", &a.url("/env/a"));
    forward_rule(&server, "env_b", "env/in", &b.url("/env/b"));
    wait_rules_live(&server);
    let mut pubr = publisher(&server, &unique("env-pub"));
    pubr.publish("env/in", br#"{"from":"env"}"#, 1, false)
        .unwrap();
    assert_all_posts_of(
        &a.wait_requests(1, OUTPUT_TIMEOUT),
        "/env/a",
        &json!({ "from": "env" }),
    );
    assert_all_posts_of(
        &b.wait_requests(1, OUTPUT_TIMEOUT),
        "/env/b",
        &json!({ "from": "env" }),
    );
    drop(pubr);
    drop(server);

    // rules_http_allow in the config file: only a's prefix.
    let config = format!("rules_http_allow = [\"{}\"]\n", a.url("/conf/"));
    let (_dir, config_path) = temp_file("ferrule.toml", config.as_bytes());
    let mut args = all_listener_args();
    args.extend([OsString::from("--config"), config_path.into_os_string()]);
    let server = Server::start_with(args);
    forward_rule(&server, "conf_a", "conf/in", &a.url("/conf/a"));
    forward_rule(&server, "conf_b", "conf/in", &b.url("/conf/b"));
    wait_rules_live(&server);
    let mut errors = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["errors/#"], &[]);
    let client_id = unique("conf-pub");
    let mut pubr = publisher(&server, &client_id);
    pubr.publish("conf/in", br#"{"from":"conf"}"#, 1, false)
        .unwrap();
    let msg = errors.next_on("errors/conf_b", OUTPUT_TIMEOUT);
    assert_error_payload(
        &msg,
        "conf_b",
        "conf/in",
        &client_id,
        br#"{"from":"conf"}"#,
        "HttpAction",
        &b.url("/conf/b"),
    );
    let to_a = a.wait_requests(2, OUTPUT_TIMEOUT);
    assert_all_posts_of(&to_a[1..], "/conf/a", &json!({ "from": "conf" }));
    let all = errors.all_seen(QUIET);
    assert_eq!(count_on(&all, "errors/conf_a"), 0, "{all:?}");
    assert_eq!(
        b.requests().len(),
        1,
        "b's URL is not allowed by the config file: {:?}",
        b.requests()
    );
}
