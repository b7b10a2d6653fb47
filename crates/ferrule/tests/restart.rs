//! The `ferrule` binary as an operator sees it: graceful shutdown on SIGTERM/SIGINT (MQTT 5
//! clients told 0x8B), retained messages and persistent sessions surviving a restart on the same
//! data dir, the files in the data dir, `/metrics` and `/health`, and the config file.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Bg, CLIENT_TIMEOUT, Mqtt, Msg, Net, Server, Sub, all_listener_args, ferrule_bin, http_get,
    messages, metric, mosq_conn_args, msg, paho_checks, paho_cmd, pub_args, publish, receive,
    require_mosquitto, require_program, run, run_ok, temp_file, unique,
};

/// `mosquitto_sub -c -i ID -q 1 -t FILTER -E`: creates a persistent session with a QoS 1
/// subscription, then disconnects cleanly.
fn persistent_subscribe(server: &Server, net: Net, v: Mqtt, id: &str, filter: &str) {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(mosq_conn_args(server, net, v))
        .args(["-c", "-i", id, "-q", "1", "-t", filter, "-E"]);
    run_ok(&mut cmd, CLIENT_TIMEOUT);
}

#[test]
fn retained_and_queued_messages_survive_a_sigterm_restart() {
    require_mosquitto();
    let mut server = Server::start();
    let base = unique("restart");
    let ca_before = std::fs::read(server.ca()).unwrap();

    // Retained messages, one from each protocol version (the MQTT 5 one with a user property).
    let kept_a = format!("{base}/keep/a");
    let kept_b = format!("{base}/keep/b");
    pub_args(
        &server,
        Net::Tls,
        Mqtt::V311,
        &["-t", &kept_a, "-m", "retained A", "-q", "1", "-r"],
    );
    #[rustfmt::skip]
    pub_args(&server, Net::Tcp, Mqtt::V5, &[
        "-t", &kept_b, "-m", "retained B", "-q", "1", "-r", "-D", "publish", "user-property", "origin", "v5",
    ]);

    // Three persistent sessions subscribe and go away.
    let queue_filter = format!("{base}/q/#");
    let id311 = unique("restart-m311");
    let id5 = unique("restart-m5");
    let id_paho = unique("restart-paho5");
    persistent_subscribe(&server, Net::Tls, Mqtt::V311, &id311, &queue_filter);
    persistent_subscribe(&server, Net::Tcp, Mqtt::V5, &id5, &queue_filter);
    paho_checks(
        &server,
        &[&format!("session-subscribe:5:wss:{id_paho}:{queue_filter}")],
    );

    // Messages published while they are offline get queued.
    let queued: Vec<(String, String)> = (1..=4)
        .map(|i| (format!("{base}/q/{i}"), format!("queued {i}")))
        .collect();
    for (i, (topic, payload)) in queued.iter().enumerate() {
        let qos = if i == 3 { 2 } else { 1 };
        publish(&server, Net::Tcp, Mqtt::V311, topic, payload, qos, &[]);
    }

    // MQTT 5 clients connected at shutdown must be told why (0x8B), on every listener.
    let mut watchers = paho_cmd(&server);
    watchers.args([
        "shutdown-wait:5:tcp",
        "shutdown-wait:5:tls",
        "shutdown-wait:5:ws",
        "shutdown-wait:5:wss",
    ]);
    let mut watchers = Bg::spawn(&mut watchers);
    watchers.line(CLIENT_TIMEOUT, "READY", |l| l == "READY");

    server.restart();

    let status = watchers.wait(CLIENT_TIMEOUT);
    let said: Vec<String> = watchers.seen().to_vec();
    assert!(
        status.success(),
        "paho clients were not all disconnected with 0x8B:\n{}",
        said.join("\n")
    );
    for t in ["tcp", "tls", "ws", "wss"] {
        assert!(
            said.iter()
                .any(|l| l.starts_with(&format!("DISCONNECT shutdown-wait:5:{t} reason=0x8b"))),
            "no DISCONNECT 0x8B over {t}:\n{}",
            said.join("\n")
        );
    }
    let log = server.log();
    assert!(
        log.contains("persistent sessions saved sessions=3"),
        "expected 3 sessions saved at shutdown:\n{log}"
    );
    assert!(
        log.contains("restored persisted state retained=2 sessions=3"),
        "expected 2 retained messages and 3 sessions restored:\n{log}"
    );
    assert_eq!(
        std::fs::read(server.ca()).unwrap(),
        ca_before,
        "the development CA changed across a restart"
    );

    // The retained messages are back, the MQTT 5 one with its user property.
    let out = receive(
        &server,
        Net::Tls,
        Mqtt::V311,
        1,
        5,
        &["-t", &kept_a, "-q", "1"],
    );
    assert_eq!(
        messages(&out),
        vec![msg(&kept_a, 1, true, "retained A")],
        "{out:?}"
    );
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(mosq_conn_args(&server, Net::Tcp, Mqtt::V5)).args([
        "-t",
        &kept_b,
        "-q",
        "1",
        "-C",
        "1",
        "-W",
        "5",
        "-F",
        "MSG|%t|%q|%r|%P|%p",
    ]);
    let out = run(&mut cmd, CLIENT_TIMEOUT);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("MSG|{kept_b}|1|1|origin:v5|retained B"),
        "{out:?}"
    );

    // Each persistent session gets its queued messages, in order, at its subscription's QoS.
    let want: Vec<Msg> = queued.iter().map(|(t, p)| msg(t, 1, false, p)).collect();
    for (net, v, id) in [(Net::Tls, Mqtt::V311, &id311), (Net::Tcp, Mqtt::V5, &id5)] {
        let out = receive(
            &server,
            net,
            v,
            4,
            10,
            &["-c", "-i", id, "-q", "1", "-t", &queue_filter],
        );
        assert_eq!(messages(&out), want, "{id} after the restart: {out:?}");
    }
    let said = paho_checks(&server, &[&format!("session-receive:5:wss:{id_paho}:4")]);
    let got: Vec<&str> = said.lines().filter(|l| l.starts_with("GOT ")).collect();
    let want_paho: Vec<String> = queued
        .iter()
        .map(|(t, p)| format!("GOT {t} 1 {p}"))
        .collect();
    assert_eq!(got, want_paho, "{said}");
}

#[test]
fn sessions_restored_after_a_restart_keep_their_subscriptions_and_forget_acknowledged_messages() {
    require_mosquitto();
    let mut server = Server::start();
    let base = unique("resub");
    let id = unique("resub-client");
    persistent_subscribe(&server, Net::Tcp, Mqtt::V311, &id, &format!("{base}/#"));
    server.wait_for_client_gone(&id);
    publish(
        &server,
        Net::Tcp,
        Mqtt::V311,
        &format!("{base}/while-away"),
        "queued once",
        1,
        &[],
    );
    server.restart();

    // Reconnect subscribing only to something else: the restored subscription alone must route.
    let other = format!("{}/x", unique("resub-other"));
    let mut sub = Sub::start(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        &[&other],
        &["-c", "-i", &id],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/while-away"), 1, false, "queued once")
    );
    let after = format!("{base}/after");
    publish(
        &server,
        Net::Tcp,
        Mqtt::V311,
        &after,
        "routed by a restored subscription",
        1,
        &[],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&after, 1, false, "routed by a restored subscription")
    );
    sub.proc.terminate();
    drop(sub);
    server.wait_for_client_gone(&id);

    // Both messages were acknowledged: a second restart must not bring them back.
    server.restart();
    let mut sub = Sub::start(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        &[&other],
        &["-c", "-i", &id],
    );
    publish(
        &server,
        Net::Tcp,
        Mqtt::V311,
        &format!("{base}/marker"),
        "marker",
        1,
        &[],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/marker"), 1, false, "marker"),
        "an acknowledged message was delivered again after a restart"
    );
}

#[test]
fn message_expiry_keeps_counting_across_a_restart() {
    require_mosquitto();
    let mut server = Server::start();
    // The TLS clients' device certificate first: registering it takes seconds, which must not
    // eat into the expiry intervals measured below.
    let _ = server.default_device();
    let base = unique("restart-expiry");
    let published = Instant::now();
    for (name, secs) in [("short", "3"), ("long", "60")] {
        #[rustfmt::skip]
        pub_args(&server, Net::Tcp, Mqtt::V5, &[
            "-t", &format!("{base}/{name}"), "-m", name, "-q", "1", "-r",
            "-D", "publish", "message-expiry-interval", secs,
        ]);
    }
    // Restart half-way through the short message's life: an expiry that restarted from the full
    // interval at load time would keep it alive past 3 s, and show more than 57 s left on the
    // long one.
    std::thread::sleep(Duration::from_millis(1500));
    server.restart();
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(published.elapsed()));

    let fmt = "MSG|%t|%r|%E|%p";
    let mut sub = Sub::start_fmt(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&format!("{base}/#")],
        &[],
        fmt,
    );
    let line = sub.next_raw(CLIENT_TIMEOUT);
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(
        fields[1..3],
        [format!("{base}/long").as_str(), "1"],
        "{line}"
    );
    let left: u32 = fields[3]
        .parse()
        .unwrap_or_else(|_| panic!("no message expiry interval in {line}"));
    assert!(
        (50..=58).contains(&left),
        "expiry should have counted down from 60 by ~2.3 s: {line}"
    );
    publish(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/marker"),
        "marker",
        1,
        &[],
    );
    let line = sub.next_raw(CLIENT_TIMEOUT);
    assert!(
        line.starts_with(&format!("MSG|{base}/marker|")),
        "an expired retained message came back: {line}"
    );
}

#[test]
fn data_dir_files_metrics_and_health() {
    require_mosquitto();
    require_program("openssl", "openssl");
    let mut server = Server::start();
    let dir = server.data_dir().to_owned();
    for f in [
        "listeners.toml",
        "server-ca.pem",
        "server-ca.key",
        "server.pem",
        "server.key",
        "ferrule.db",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{f} is missing from the data dir {}",
            dir.display()
        );
    }
    let l = server.listeners().clone();
    assert!(
        l.mqtts.is_some()
            && l.mqtt.is_some()
            && l.ws.is_some()
            && l.wss.is_some()
            && l.api.is_some(),
        "{l:?}"
    );
    for a in [l.mqtts, l.mqtt, l.ws, l.wss, l.api].into_iter().flatten() {
        assert!(
            a.ip().is_loopback() && a.port() != 0,
            "listeners.toml names {a}"
        );
    }

    // The development server certificate chains to server-ca.pem and names localhost and 127.0.0.1.
    let mut verify = Command::new("openssl");
    verify
        .arg("verify")
        .arg("-CAfile")
        .arg(server.ca())
        .arg(dir.join("server.pem"));
    let out = run_ok(&mut verify, CLIENT_TIMEOUT);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": OK"),
        "{out:?}"
    );
    let mut sans = Command::new("openssl");
    sans.args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.join("server.pem"));
    let out = String::from_utf8_lossy(&run_ok(&mut sans, CLIENT_TIMEOUT).stdout).into_owned();
    assert!(
        out.contains("DNS:localhost") && out.contains("IP Address:127.0.0.1"),
        "server.pem SANs: {out}"
    );

    // One subscriber, one QoS 1 message, one retained message.
    let topic = format!("{}/m", unique("metrics"));
    let mut sub = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &[&topic], &[]);
    publish(&server, Net::Tcp, Mqtt::V311, &topic, "counted", 1, &[]);
    publish(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{topic}/kept"),
        "kept",
        0,
        &["-r"],
    );
    assert_eq!(sub.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "counted"));

    let api = server.api();
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let text = loop {
        let (status, text) = http_get(api, "/metrics");
        assert_eq!(status, 200, "GET /metrics: {text}");
        // The publishers' connections close asynchronously; wait until only the subscriber is left.
        if metric(&text, "ferrule_connections") == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        metric(&text, "ferrule_connections"),
        Some(1.0),
        "one client is connected:\n{text}"
    );
    assert_eq!(
        metric(&text, "ferrule_messages_received_total{qos=\"1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ferrule_messages_received_total{qos=\"0\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ferrule_messages_sent_total{qos=\"1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ferrule_connections_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ferrule_retained_messages"),
        Some(1.0),
        "{text}"
    );
    for name in [
        "ferrule_connections",
        "ferrule_connections_total",
        "ferrule_connections_closed_total",
        "ferrule_sessions",
        "ferrule_messages_received_total",
        "ferrule_messages_sent_total",
        "ferrule_bytes_received_total",
        "ferrule_bytes_sent_total",
        "ferrule_messages_dropped_total",
        "ferrule_retained_messages",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} "))),
            "/metrics lacks {name}:\n{text}"
        );
    }

    let (status, health) = http_get(api, "/health");
    assert_eq!(status, 200, "GET /health: {health}");
    let compact: String = health.chars().filter(|c| !c.is_whitespace()).collect();
    for part in ["\"connections\":1", "\"retained\":1", "\"sessions\":1"] {
        assert!(compact.contains(part), "/health {health} lacks {part}");
    }
    let (status, _) = http_get(api, "/no-such-page");
    assert_eq!(status, 404);

    // SIGINT is a graceful shutdown too.
    drop(sub);
    let status = server.stop_with("INT");
    assert!(status.success(), "exit status after SIGINT: {status}");
    assert!(server.log().contains("stopped"), "{}", server.log());
}

/// Runs `ferrule serve` with `args` that should make it refuse to start; returns its stderr.
fn serve_refuses(args: Vec<OsString>) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(ferrule_bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .args(all_listener_args())
        .args(args);
    let out = run(&mut cmd, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ferrule serve started anyway ({}):\n{stderr}",
        out.status
    );
    assert!(
        !data.path().join("listeners.toml").exists(),
        "listeners.toml was written:\n{stderr}"
    );
    stderr
}

#[test]
fn a_config_file_with_an_unknown_or_ill_typed_key_is_refused_with_its_name() {
    let (_d, path) = temp_file("ferrule.toml", b"max_inflight = 10\nmax_conections = 5\n");
    let stderr = serve_refuses(vec!["--config".into(), path.into()]);
    assert!(
        stderr.contains("max_conections"),
        "the unknown key is not named:\n{stderr}"
    );

    let (_d, path) = temp_file("ferrule.toml", b"max_inflight = \"lots\"\n");
    let stderr = serve_refuses(vec!["--config".into(), path.into()]);
    assert!(
        stderr.contains("max_inflight"),
        "the ill-typed key is not named:\n{stderr}"
    );

    let missing = std::env::temp_dir()
        .join(unique("no-such-ferrule-config"))
        .join("ferrule.toml");
    let stderr = serve_refuses(vec!["--config".into(), missing.clone().into()]);
    assert!(
        stderr.contains(&missing.display().to_string()),
        "the missing file is not named:\n{stderr}"
    );
}

#[test]
fn config_default_output_is_accepted_by_serve() {
    require_mosquitto();
    let out = run_ok(
        Command::new(ferrule_bin()).args(["config", "default"]),
        CLIENT_TIMEOUT,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("max_inflight = 1024"), "{text}");
    // Unmodified, the defaults would bind fixed ports: listeners come from flags (flags win).
    let (_d, path) = temp_file("default.toml", text.as_bytes());
    let mut args = all_listener_args();
    args.extend([OsString::from("--config"), path.into()]);
    let server = Server::start_with(args);
    let topic = format!("{}/t", unique("defaultcfg"));
    let mut sub = Sub::start(&server, Net::Tls, Mqtt::V5, 1, &[&topic], &[]);
    publish(&server, Net::Tcp, Mqtt::V311, &topic, "configured", 1, &[]);
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&topic, 1, false, "configured")
    );

    // A listener enabled only in the file is used: the file is really read.
    let edited = text.replace(
        "# mqtt_listen = \"127.0.0.1:1883\"",
        "mqtt_listen = \"127.0.0.1:0\"",
    );
    assert_ne!(
        edited, text,
        "the default config no longer has a commented mqtt_listen line"
    );
    let (_d2, path) = temp_file("edited.toml", edited.as_bytes());
    let args: Vec<OsString> = [
        "--config",
        &path.display().to_string(),
        "--mqtts-listen",
        "127.0.0.1:0",
    ]
    .into_iter()
    .chain(["--api-listen", "127.0.0.1:0"])
    .map(OsString::from)
    .collect();
    let server = Server::start_with(args);
    assert!(
        server.listeners().mqtt.is_some(),
        "mqtt_listen from the file was ignored: {:?}",
        server.listeners()
    );
    assert!(server.listeners().ws.is_none(), "{:?}", server.listeners());
    publish(
        &server,
        Net::Tcp,
        Mqtt::V311,
        &topic,
        "plain listener from the file",
        1,
        &[],
    );
}
