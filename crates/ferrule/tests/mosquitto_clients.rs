//! The real Mosquitto command-line clients (`mosquitto_pub` / `mosquitto_sub` 2.0) against the
//! real `ferrule` binary: the TLS listener with the development CA and the plain TCP listener,
//! MQTT 3.1.1 and 5, and the two crossing each other. TLS itself is in `tls.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::thread;
use std::time::Duration;

use common::{
    Bg, CLIENT_TIMEOUT, Mqtt, Msg, Net, Server, Sub, messages, mosq_conn_args,
    mosquitto_sub_line_buffered, msg, pub_args, publish, receive, require_mosquitto, unique,
};

/// QoS 0, 1 and 2 each arrive at the QoS they were sent with; a QoS 1 subscription caps a QoS 2
/// message at 1.
fn qos_levels(net: Net, v: Mqtt) {
    require_mosquitto();
    let server = Server::start();
    let base = unique("qos");
    let mut sub = Sub::start(&server, net, v, 2, &[&format!("{base}/#")], &[]);
    for q in 0..=2u8 {
        publish(
            &server,
            net,
            v,
            &format!("{base}/q{q}"),
            &format!("sent at qos {q}"),
            q,
            &[],
        );
    }
    for q in 0..=2u8 {
        assert_eq!(
            sub.next(CLIENT_TIMEOUT),
            msg(
                &format!("{base}/q{q}"),
                q,
                false,
                &format!("sent at qos {q}")
            )
        );
    }

    let capped_topic = format!("{base}/capped");
    let mut capped = Sub::start(&server, net, v, 1, &[&capped_topic], &[]);
    publish(
        &server,
        net,
        v,
        &capped_topic,
        "qos 2 into a qos 1 subscription",
        2,
        &[],
    );
    assert_eq!(
        capped.next(CLIENT_TIMEOUT),
        msg(&capped_topic, 1, false, "qos 2 into a qos 1 subscription")
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&capped_topic, 2, false, "qos 2 into a qos 1 subscription")
    );
}

#[test]
fn qos_0_1_2_over_tls_mqtt311() {
    qos_levels(Net::Tls, Mqtt::V311);
}

#[test]
fn qos_0_1_2_over_tls_mqtt5() {
    qos_levels(Net::Tls, Mqtt::V5);
}

#[test]
fn qos_0_1_2_over_tcp_mqtt311() {
    qos_levels(Net::Tcp, Mqtt::V311);
}

#[test]
fn qos_0_1_2_over_tcp_mqtt5() {
    qos_levels(Net::Tcp, Mqtt::V5);
}

/// Set, read, replace, clear: `-r`, a later `mosquitto_sub -C 1`, `-r -n`.
fn retained(net: Net, v: Mqtt) {
    require_mosquitto();
    let server = Server::start();
    let topic = format!("{}/state", unique("ret"));
    pub_args(
        &server,
        net,
        v,
        &["-t", &topic, "-m", "first", "-q", "1", "-r"],
    );
    pub_args(
        &server,
        net,
        v,
        &["-t", &topic, "-m", "second", "-q", "1", "-r"],
    );

    // A new subscriber gets the latest value, flagged as retained, at the QoS it was sent with.
    let out = receive(&server, net, v, 1, 5, &["-t", &topic, "-q", "2"]);
    assert_eq!(
        messages(&out),
        vec![msg(&topic, 1, true, "second")],
        "{out:?}"
    );

    // An established subscription gets later retained publishes with the retain flag clear.
    let mut live = Sub::start(&server, net, v, 1, &[&topic], &[]);
    assert_eq!(live.next(CLIENT_TIMEOUT), msg(&topic, 1, true, "second"));
    pub_args(
        &server,
        net,
        v,
        &["-t", &topic, "-m", "third", "-q", "1", "-r"],
    );
    assert_eq!(live.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "third"));

    // An empty retained message clears it; it still reaches current subscribers.
    pub_args(&server, net, v, &["-t", &topic, "-n", "-q", "1", "-r"]);
    assert_eq!(live.next(CLIENT_TIMEOUT), msg(&topic, 1, false, ""));

    // A new subscriber now gets nothing before a fresh, non-retained marker.
    let mut fresh = Sub::start(&server, net, v, 1, &[&topic], &[]);
    publish(&server, net, v, &topic, "marker", 1, &[]);
    assert_eq!(fresh.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "marker"));
}

#[test]
fn retained_set_replace_clear_over_tls_mqtt311() {
    retained(Net::Tls, Mqtt::V311);
}

#[test]
fn retained_set_replace_clear_over_tcp_mqtt5() {
    retained(Net::Tcp, Mqtt::V5);
}

#[test]
fn retained_messages_match_wildcard_subscriptions() {
    require_mosquitto();
    let server = Server::start();
    let base = unique("retwild");
    for (t, p) in [("a", "A"), ("b/c", "BC"), ("b/d/e", "BDE")] {
        pub_args(
            &server,
            Net::Tcp,
            Mqtt::V311,
            &["-t", &format!("{base}/{t}"), "-m", p, "-r", "-q", "1"],
        );
    }
    let sorted = |mut v: Vec<Msg>| {
        v.sort_by(|a, b| a.topic.cmp(&b.topic));
        v
    };
    let out = receive(
        &server,
        Net::Tls,
        Mqtt::V5,
        3,
        5,
        &["-t", &format!("{base}/#"), "-q", "1"],
    );
    assert_eq!(
        sorted(messages(&out)),
        vec![
            msg(&format!("{base}/a"), 1, true, "A"),
            msg(&format!("{base}/b/c"), 1, true, "BC"),
            msg(&format!("{base}/b/d/e"), 1, true, "BDE"),
        ],
        "{out:?}"
    );
    let out = receive(
        &server,
        Net::Tcp,
        Mqtt::V311,
        1,
        5,
        &["-t", &format!("{base}/+/c"), "-q", "0"],
    );
    assert_eq!(
        messages(&out),
        vec![msg(&format!("{base}/b/c"), 0, true, "BC")],
        "{out:?}"
    );
}

#[test]
fn mqtt5_user_properties_and_publish_properties_are_delivered() {
    require_mosquitto();
    let server = Server::start();
    let topic = format!("{}/props", unique("v5props"));
    let mut v5 = Sub::start_fmt(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&topic],
        &[],
        "MSG|%t|%P|%C|%R|%D|%F|%p",
    );
    let mut v3 = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &[&topic], &[]);
    #[rustfmt::skip]
    pub_args(&server, Net::Tcp, Mqtt::V5, &[
        "-t", &topic, "-m", "{\"t\":21.5}", "-q", "1",
        "-D", "publish", "user-property", "region", "eu",
        "-D", "publish", "user-property", "region", "us",
        "-D", "publish", "user-property", "k", "v",
        "-D", "publish", "content-type", "application/json",
        "-D", "publish", "response-topic", "reply/here",
        "-D", "publish", "correlation-data", "c0ffee",
        "-D", "publish", "payload-format-indicator", "1",
    ]);
    // User properties keep their order, duplicates included (MQTT 5, 3.3.2.3.7).
    assert_eq!(
        v5.next_raw(CLIENT_TIMEOUT),
        format!(
            "MSG|{topic}|region:eu region:us k:v|application/json|reply/here|c0ffee|1|{{\"t\":21.5}}"
        )
    );
    // A 3.1.1 subscriber gets the same message without properties.
    assert_eq!(
        v3.next(CLIENT_TIMEOUT),
        msg(&topic, 1, false, "{\"t\":21.5}")
    );
}

#[test]
fn mqtt5_message_expiry_drops_expired_retained_and_queued_messages() {
    require_mosquitto();
    let server = Server::start();
    // The TLS clients' device certificate first: registering it takes seconds, which must not
    // eat into the expiry intervals measured below.
    let _ = server.default_device();
    let base = unique("expiry");
    let retained_long = format!("{base}/ret/long");
    let retained_short = format!("{base}/ret/short");
    pub_args(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &[
            "-t",
            &retained_long,
            "-m",
            "L",
            "-r",
            "-q",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
        ],
    );
    pub_args(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &[
            "-t",
            &retained_short,
            "-m",
            "S",
            "-r",
            "-q",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "1",
        ],
    );

    // An offline persistent session gets a short-lived and a long-lived QoS 1 message queued.
    let id = unique("exp-sub");
    let queue_filter = format!("{base}/q/#");
    let persistent = ["-c", "-i", id.as_str(), "-x", "300"];
    let first = Sub::start(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&queue_filter],
        &persistent,
    );
    drop(first); // killed: the session stays (expiry 300 s)
    server.wait_for_client_gone(&id);
    pub_args(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &[
            "-t",
            &format!("{base}/q/short"),
            "-m",
            "s",
            "-q",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "1",
        ],
    );
    pub_args(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &["-t", &format!("{base}/q/long"), "-m", "l", "-q", "1"],
    );

    thread::sleep(Duration::from_millis(2200));

    // Only the long-lived retained message is left, with its remaining lifetime.
    let fmt = "MSG|%t|%q|%r|%E|%p";
    let mut sub = Sub::start_fmt(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&format!("{base}/ret/#")],
        &[],
        fmt,
    );
    let line = sub.next_raw(CLIENT_TIMEOUT);
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields[1..4], [retained_long.as_str(), "1", "1"], "{line}");
    let left: u32 = fields[4]
        .parse()
        .unwrap_or_else(|_| panic!("no message expiry interval in {line}"));
    assert!(
        (55..=60).contains(&left),
        "expiry interval {left} should have counted down from 60 by ~2 s: {line}"
    );
    publish(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/ret/marker"),
        "marker",
        1,
        &[],
    );
    let line = sub.next_raw(CLIENT_TIMEOUT);
    assert!(
        line.starts_with(&format!("MSG|{base}/ret/marker|")),
        "expired retained message delivered: {line}"
    );

    // The persistent session gets the long-lived queued message, not the expired one.
    let mut back = Sub::start(
        &server,
        Net::Tls,
        Mqtt::V5,
        1,
        &[&queue_filter],
        &persistent,
    );
    assert_eq!(
        back.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/q/long"), 1, false, "l")
    );
    publish(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/q/marker"),
        "marker",
        1,
        &[],
    );
    assert_eq!(
        back.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/q/marker"), 1, false, "marker"),
        "an expired queued message was delivered"
    );
}

/// A persistent session (`-c`) that is offline gets QoS 1 and 2 messages queued, not QoS 0
/// (`queue_qos0_offline` is off by default).
fn offline_queue(net: Net, v: Mqtt) {
    require_mosquitto();
    let server = Server::start();
    let base = unique("offline");
    let id = unique("offline-sub");
    let persistent = ["-c", "-i", id.as_str()];
    let mut first = Sub::start(&server, net, v, 2, &[&format!("{base}/#")], &persistent);
    first.proc.terminate();
    drop(first);
    server.wait_for_client_gone(&id);
    for q in 0..=2u8 {
        publish(
            &server,
            Net::Tcp,
            Mqtt::V311,
            &format!("{base}/q{q}"),
            &format!("offline qos {q}"),
            q,
            &[],
        );
    }
    let mut back = Sub::start(&server, net, v, 2, &[&format!("{base}/#")], &persistent);
    assert_eq!(
        back.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/q1"), 1, false, "offline qos 1")
    );
    assert_eq!(
        back.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/q2"), 2, false, "offline qos 2")
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
        back.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/marker"), 1, false, "marker"),
        "a QoS 0 message was queued for an offline session"
    );
}

#[test]
fn offline_persistent_session_gets_qos_1_and_2_not_qos_0_tls_mqtt311() {
    offline_queue(Net::Tls, Mqtt::V311);
}

#[test]
fn offline_persistent_session_gets_qos_1_and_2_not_qos_0_tcp_mqtt5() {
    offline_queue(Net::Tcp, Mqtt::V5);
}

/// A `mosquitto_sub` with a will, connected and subscribed, to be killed.
fn will_client(server: &Server, net: Net, v: Mqtt, will_topic: &str, extra: &[&str]) -> Bg {
    let mut cmd = mosquitto_sub_line_buffered();
    cmd.args(mosq_conn_args(server, net, v))
        .args([
            "-d",
            "-t",
            &format!("{will_topic}/ignored"),
            "--will-topic",
            will_topic,
        ])
        .args(["--will-payload", "gone", "--will-qos", "1"])
        .args(extra);
    let mut p = Bg::spawn(&mut cmd);
    p.line(CLIENT_TIMEOUT, "a SUBACK", |l| {
        l.starts_with("Subscribed (mid:")
    });
    p
}

fn will(net: Net, v: Mqtt) {
    require_mosquitto();
    let server = Server::start();
    let base = unique("will");
    let mut watcher = Sub::start(&server, net, v, 1, &[&format!("{base}/#")], &[]);

    // A client that disconnects properly leaves no will.
    #[rustfmt::skip]
    pub_args(&server, net, v, &[
        "-t", &format!("{base}/hello"), "-m", "hi", "-q", "1",
        "--will-topic", &format!("{base}/polite"), "--will-payload", "should not appear",
    ]);
    assert_eq!(
        watcher.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/hello"), 1, false, "hi")
    );

    // One that vanishes (SIGKILL: no DISCONNECT) has its will published.
    let mut c = will_client(&server, net, v, &format!("{base}/rude"), &["--will-retain"]);
    c.kill();
    assert_eq!(
        watcher.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/rude"), 1, false, "gone")
    );
    // The will was retained: a new subscriber gets it.
    let out = receive(
        &server,
        net,
        v,
        1,
        5,
        &["-t", &format!("{base}/rude"), "-q", "1"],
    );
    assert_eq!(
        messages(&out),
        vec![msg(&format!("{base}/rude"), 1, true, "gone")],
        "{out:?}"
    );

    // Nothing else arrived in between (in particular not the polite client's will).
    publish(&server, net, v, &format!("{base}/marker"), "marker", 1, &[]);
    assert_eq!(
        watcher.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/marker"), 1, false, "marker")
    );
}

#[test]
fn will_is_published_when_a_client_vanishes_tls_mqtt311() {
    will(Net::Tls, Mqtt::V311);
}

#[test]
fn will_is_published_when_a_client_vanishes_tcp_mqtt5() {
    will(Net::Tcp, Mqtt::V5);
}

#[test]
fn mqtt5_will_delay_waits_and_is_cancelled_by_a_reconnect() {
    require_mosquitto();
    let server = Server::start();
    let base = unique("willdelay");
    let mut watcher = Sub::start(&server, Net::Tcp, Mqtt::V5, 1, &[&format!("{base}/#")], &[]);
    let delayed = |name: &str| {
        let id = format!("{base}-{name}");
        let args = [
            "-c",
            "-i",
            &id,
            "-x",
            "30",
            "-D",
            "will",
            "will-delay-interval",
            "2",
        ]
        .map(String::from);
        (id, args)
    };
    let (gone_id, gone_args) = delayed("gone");
    let (back_id, back_args) = delayed("back");
    let gone_args: Vec<&str> = gone_args.iter().map(String::as_str).collect();
    let back_args: Vec<&str> = back_args.iter().map(String::as_str).collect();
    let mut gone = will_client(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/gone"),
        &gone_args,
    );
    let mut back = will_client(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/back"),
        &back_args,
    );
    gone.kill();
    back.kill();
    server.wait_for_client_gone(&gone_id);
    server.wait_for_client_gone(&back_id);
    // `back` returns within the delay: its will must never be sent.
    let _back_again = will_client(
        &server,
        Net::Tcp,
        Mqtt::V5,
        &format!("{base}/back"),
        &back_args,
    );

    assert_eq!(
        watcher.try_next(Duration::from_millis(1000)),
        None,
        "a will was sent before its delay"
    );
    assert_eq!(
        watcher.next(Duration::from_secs(5)),
        msg(&format!("{base}/gone"), 1, false, "gone")
    );
    assert_eq!(
        watcher.try_next(Duration::from_millis(1500)),
        None,
        "the will of a client that came back was sent"
    );
}

/// A message from `from` reaches `to` intact, at QoS 1 and 2, and retained.
fn crossing(from: (Net, Mqtt), to: (Net, Mqtt)) {
    require_mosquitto();
    let server = Server::start();
    let base = unique("cross");
    let mut sub = Sub::start(&server, to.0, to.1, 2, &[&format!("{base}/#")], &[]);
    publish(
        &server,
        from.0,
        from.1,
        &format!("{base}/one"),
        "at least once",
        1,
        &[],
    );
    publish(
        &server,
        from.0,
        from.1,
        &format!("{base}/two"),
        "exactly once",
        2,
        &[],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/one"), 1, false, "at least once")
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/two"), 2, false, "exactly once")
    );
    publish(
        &server,
        from.0,
        from.1,
        &format!("{base}/kept"),
        "retained",
        1,
        &["-r"],
    );
    assert_eq!(
        sub.next(CLIENT_TIMEOUT),
        msg(&format!("{base}/kept"), 1, false, "retained")
    );
    let out = receive(
        &server,
        to.0,
        to.1,
        1,
        5,
        &["-t", &format!("{base}/kept"), "-q", "2"],
    );
    assert_eq!(
        messages(&out),
        vec![msg(&format!("{base}/kept"), 1, true, "retained")],
        "{out:?}"
    );
}

#[test]
fn mqtt311_publisher_to_mqtt5_subscriber() {
    crossing((Net::Tcp, Mqtt::V311), (Net::Tls, Mqtt::V5));
}

#[test]
fn mqtt5_publisher_to_mqtt311_subscriber() {
    crossing((Net::Tls, Mqtt::V5), (Net::Tcp, Mqtt::V311));
}
