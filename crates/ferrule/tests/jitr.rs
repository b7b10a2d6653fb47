//! Just-in-time registration end to end, as the AWS documentation walks through it, with the
//! real `aws` CLI, `openssl` and `mosquitto_pub`: a CA registered with proof of possession and
//! auto-registration, a device whose first connection registers its certificate
//! PENDING_ACTIVATION and publishes `$aws/events/certificates/registered/<caCertificateId>`, an
//! operator (or a watcher standing in for the rule and function) activating it and attaching a
//! policy, and the device publishing.
//!
//! `--jitr-mode aws` closes the first connection without a CONNACK, and every connection while
//! the certificate is still PENDING_ACTIVATION publishes the event again. The default, `hold`,
//! holds the first connection up to `--jitr-hold-ms` and accepts it if the certificate became
//! ACTIVE in time; otherwise it is refused as not authorised.

#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use common::{
    ACCOUNT, Aws, CLIENT_TIMEOUT, Ca, Cert, Conn, Ended, Event, Events, KeyAlg, Mqtt, Net, Pki,
    Server, Sub, Tls, all_listener_args, arn, assert_ms_timestamp, metric_sum, metrics_text,
    mosquitto_pub_as, msg, now_ms, policy, registered_topic, require_mosquitto, str_of, unique,
};
use ferrule_mqtt::ProtocolVersion;
use serde_json::{Value, json};

fn server_with(extra: &[&str]) -> Server {
    require_mosquitto();
    let mut args = all_listener_args();
    args.extend(extra.iter().map(OsString::from));
    Server::start_with(args)
}

/// A CA registered through the aws CLI with proof of possession, `--set-as-active
/// --allow-auto-registration`; returns it and its id after checking what describe says.
fn jitr_ca(aws: &Aws, pki: &Pki, name: &str, alg: KeyAlg) -> (Ca, String) {
    let ca = pki.ca(name, &format!("/O=Ferrule JITR tests/CN={name}"), alg);
    let ca_id = aws.register_ca(pki, &ca, true, true);
    let d = aws.ok(&["describe-ca-certificate", "--certificate-id", &ca_id]);
    assert_eq!(d["certificateDescription"]["status"], "ACTIVE", "{d}");
    assert_eq!(
        d["certificateDescription"]["autoRegistrationStatus"], "ENABLE",
        "{d}"
    );
    (ca, ca_id)
}

/// The policy of the AWS walk-through: connect as anyone, publish under `prefix/`.
fn device_policy(prefix: &str) -> Value {
    policy(json!([
        { "Effect": "Allow", "Action": "iot:Connect", "Resource": arn("client", "*") },
        { "Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
          "Resource": arn("topic", &format!("{prefix}/*")) },
    ]))
}

/// Asserts a registered event's exact payload. `registration` is `None` for the event of the
/// connection that registered the certificate (`certificateRegistrationTimestamp: null`);
/// otherwise the event must carry the registration time as a string of milliseconds, which is
/// returned.
fn assert_registered(
    event: &Event,
    ca_id: &str,
    cert_id: &str,
    from_ms: u64,
    registering: bool,
) -> Option<u64> {
    assert_eq!(event.topic, registered_topic(ca_id));
    let body = &event.body;
    let keys: std::collections::BTreeSet<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("the event is not a JSON object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "awsAccountId",
            "caCertificateId",
            "certificateId",
            "certificateRegistrationTimestamp",
            "certificateStatus",
            "timestamp",
        ]
        .into_iter()
        .collect(),
        "registered event fields: {body}"
    );
    assert_eq!(body["certificateId"], cert_id, "{body}");
    assert_eq!(body["caCertificateId"], ca_id, "{body}");
    assert_eq!(body["certificateStatus"], "PENDING_ACTIVATION", "{body}");
    assert_eq!(body["awsAccountId"], ACCOUNT, "{body}");
    assert_ms_timestamp(&body["timestamp"], from_ms, "timestamp");
    let registration = &body["certificateRegistrationTimestamp"];
    if registering {
        assert!(
            registration.is_null(),
            "certificateRegistrationTimestamp on the registering connection: {body}"
        );
        return None;
    }
    let text = registration
        .as_str()
        .unwrap_or_else(|| panic!("certificateRegistrationTimestamp is not a string: {body}"));
    let ms: u64 = text
        .parse()
        .unwrap_or_else(|e| panic!("certificateRegistrationTimestamp {text:?}: {e}"));
    assert!(
        ms <= body["timestamp"].as_u64().unwrap(),
        "registered after the event: {body}"
    );
    Some(ms)
}

/// The registered event for `cert_id` under `ca_id`.
fn registered_event(events: &mut Events, ca_id: &str, cert_id: &str, timeout: Duration) -> Event {
    let topic = registered_topic(ca_id);
    let id = cert_id.to_owned();
    events.next(
        &format!("the registered event of {cert_id}"),
        timeout,
        move |e| e.topic == topic && e.body["certificateId"] == id.as_str(),
    )
}

/// Asserts that what describe-certificate says is a JITR registration of `device` under
/// `ca_id` with `status`.
fn assert_described(aws: &Aws, device: &Cert, ca_id: &str, status: &str) {
    let d = aws.describe_certificate(&device.id());
    assert_eq!(d["status"], status, "{d}");
    assert_eq!(d["caCertificateId"], ca_id, "{d}");
    assert_eq!(d["certificateId"], device.id(), "{d}");
    assert_eq!(d["ownedBy"], ACCOUNT, "{d}");
    assert_eq!(
        str_of(&d["certificatePem"]).trim(),
        device.pem().trim(),
        "{d}"
    );
}

#[test]
fn walkthrough_with_mosquitto_pub_device_alone_and_with_its_ca_in_aws_mode() {
    let server = server_with(&["--jitr-mode", "aws"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "walkthrough-ca", KeyAlg::Rsa2048);
    aws.create_policy("DevicePolicy", &device_policy("walkthrough"));
    let mut events = Events::start(&server);
    let mut app = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["walkthrough/#"], &[]);

    for (name, with_chain, v) in [
        ("device-alone", false, Mqtt::V311),
        ("device-with-ca", true, Mqtt::V5),
    ] {
        let device = pki.device(name, &ca, KeyAlg::EcP256);
        let presented = if with_chain {
            pki.chain_file(&device, &ca)
        } else {
            device.clone()
        };
        let topic = format!("walkthrough/{name}");

        // First connection: registered, event published, closed without a CONNACK.
        let from = now_ms();
        let out = mosquitto_pub_as(
            &server,
            Some(&presented),
            v,
            &topic,
            "first",
            CLIENT_TIMEOUT,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: the first connection was accepted: {out:?}"
        );
        assert!(
            !stderr.contains("Connection Refused") && !stderr.contains("Not authorized"),
            "{name}: aws mode closes without a CONNACK, but the client saw a refusal: {stderr}"
        );
        let event = registered_event(&mut events, &ca_id, &device.id(), CLIENT_TIMEOUT);
        assert_registered(&event, &ca_id, &device.id(), from, true);
        assert_described(&aws, &device, &ca_id, "PENDING_ACTIVATION");
        assert!(
            app.try_next(Duration::from_millis(200)).is_none(),
            "the refused first publish was delivered"
        );

        // The operator activates it and attaches the policy; the device publishes.
        aws.update_certificate(&device.id(), "ACTIVE");
        aws.attach_policy("DevicePolicy", &device.id());
        let out = mosquitto_pub_as(
            &server,
            Some(&presented),
            v,
            &topic,
            "hello",
            CLIENT_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "{name}: publish after activation: {out:?}"
        );
        assert_eq!(app.next(CLIENT_TIMEOUT), msg(&topic, 1, false, "hello"));
        assert_described(&aws, &device, &ca_id, "ACTIVE");
        let again = events.try_next(Duration::from_millis(300), |e| {
            e.topic == registered_topic(&ca_id) && e.body["certificateId"] == device.id().as_str()
        });
        assert!(
            again.is_none(),
            "{name}: an ACTIVE certificate's connection published a registered event: {again:?}"
        );
    }
    let listed = aws.list_certificates_by_ca(&ca_id, 10);
    assert_eq!(listed.len(), 2, "{listed:?}");
}

#[test]
fn aws_mode_every_connection_while_pending_publishes_the_event_again_and_registers_once() {
    let server = server_with(&["--jitr-mode", "aws"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "repeat-ca", KeyAlg::EcP256);
    let device = pki.device("repeat-device", &ca, KeyAlg::EcP256);
    let mut events = Events::start(&server);

    let from = now_ms();
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "t/first",
        "1",
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "{out:?}");
    let first = registered_event(&mut events, &ca_id, &device.id(), CLIENT_TIMEOUT);
    assert_registered(&first, &ca_id, &device.id(), from, true);

    // Second and third connections, still PENDING_ACTIVATION: the event again, now with the
    // registration time as a string; the connection is closed without a CONNACK.
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "t/second",
        "2",
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "{out:?}");
    let second = registered_event(&mut events, &ca_id, &device.id(), CLIENT_TIMEOUT);
    let registered_at = assert_registered(&second, &ca_id, &device.id(), from, false).unwrap();
    assert!(
        registered_at + 5_000 >= from && registered_at <= first.body["timestamp"].as_u64().unwrap(),
        "certificateRegistrationTimestamp {registered_at} is not the first connection's time \
         (test started {from}, first event {})",
        first.body["timestamp"]
    );

    let mut conn = Conn::tls(server.mqtts(), &Tls::device(&server, &device)).unwrap();
    let ended = conn
        .connect(ProtocolVersion::V5, "repeat-device", CLIENT_TIMEOUT)
        .expect_err("aws mode answered a pending certificate's CONNECT with a CONNACK");
    assert!(
        matches!(ended, Ended::Closed | Ended::Io(_)),
        "the connection should just be closed: {ended:?}"
    );
    let third = registered_event(&mut events, &ca_id, &device.id(), CLIENT_TIMEOUT);
    assert_eq!(
        assert_registered(&third, &ca_id, &device.id(), from, false),
        Some(registered_at),
        "the registration time changed between repeat events"
    );

    // Registered exactly once.
    let listed = aws.list_certificates_by_ca(&ca_id, 10);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["certificateId"], device.id());
    assert_eq!(listed[0]["status"], "PENDING_ACTIVATION");
    assert_described(&aws, &device, &ca_id, "PENDING_ACTIVATION");
}

#[test]
fn hold_mode_first_connection_succeeds_when_a_watcher_activates_it_during_the_hold() {
    // Default mode (hold); a generous hold so a loaded machine does not decide the outcome.
    let server = server_with(&["--jitr-hold-ms", "10000"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "hold-ca", KeyAlg::EcP256);
    aws.create_policy("DevicePolicy", &device_policy("held"));
    let device = pki.device("held-device", &ca, KeyAlg::EcP256);
    let mut app = Sub::start(&server, Net::Tcp, Mqtt::V311, 1, &["held/#"], &[]);

    // The watcher stands in for the topic rule and its function: on the registered event it
    // activates the certificate and attaches the policy, through the aws CLI.
    let mut events = Events::start(&server);
    let watcher = {
        let aws = aws.clone();
        let (ca_id, cert_id) = (ca_id.clone(), device.id());
        std::thread::spawn(move || {
            let event = registered_event(&mut events, &ca_id, &cert_id, Duration::from_secs(30));
            aws.update_certificate(&cert_id, "ACTIVE");
            aws.attach_policy("DevicePolicy", &cert_id);
            event
        })
    };

    let from = now_ms();
    let out = mosquitto_pub_as(
        &server,
        Some(&device),
        Mqtt::V311,
        "held/first",
        "first try",
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "the first connection was not accepted after activation during the hold: {out:?}"
    );
    assert_eq!(
        app.next(CLIENT_TIMEOUT),
        msg("held/first", 1, false, "first try")
    );
    let event = watcher.join().expect("the watcher thread");
    assert_registered(&event, &ca_id, &device.id(), from, true);
    assert_described(&aws, &device, &ca_id, "ACTIVE");
}

/// Activating one device does not make the broker forget another: after two devices are
/// registered and activated just in time, the first reconnects and is decided from the registry
/// cache, not the database.
#[test]
fn hold_mode_a_device_reconnecting_after_others_were_activated_is_decided_from_the_cache() {
    let server = server_with(&["--jitr-hold-ms", "10000"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "cache-ca", KeyAlg::EcP256);
    aws.create_policy("DevicePolicy", &device_policy("cached"));
    let devices = [
        pki.device("cached-a", &ca, KeyAlg::EcP256),
        pki.device("cached-b", &ca, KeyAlg::EcP256),
    ];
    let mut events = Events::start(&server);
    let watcher = {
        let aws = aws.clone();
        let ids: Vec<String> = devices.iter().map(Cert::id).collect();
        let ca_id = ca_id.clone();
        std::thread::spawn(move || {
            for id in &ids {
                registered_event(&mut events, &ca_id, id, Duration::from_secs(30));
                aws.update_certificate(id, "ACTIVE");
                aws.attach_policy("DevicePolicy", id);
            }
        })
    };
    let publish = |device: &Cert, what: &str| {
        let out = mosquitto_pub_as(
            &server,
            Some(device),
            Mqtt::V311,
            "cached/x",
            what,
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{what}: {out:?}");
    };
    publish(&devices[0], "a, first connection");
    publish(&devices[1], "b, first connection");
    watcher.join().expect("the watcher thread");

    let lookups = |result: &str| {
        metric_sum(
            &metrics_text(&server),
            "ferrule_registry_cache_lookups_total",
            &[("result", result)],
        )
        .unwrap_or(0.0)
    };
    let (hits, misses) = (lookups("hit"), lookups("miss"));
    publish(&devices[0], "a, again");
    assert_eq!(
        lookups("miss"),
        misses,
        "the reconnect read the database: the cache forgot device a"
    );
    assert_eq!(lookups("hit"), hits + 1.0);
}

#[test]
fn hold_mode_refuses_as_not_authorised_when_the_hold_runs_out() {
    let server = server_with(&["--jitr-mode", "hold", "--jitr-hold-ms", "500"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "timeout-ca", KeyAlg::EcP256);
    let mut events = Events::start(&server);

    // MQTT 3.1.1: CONNACK return code 5, which mosquitto_pub reports as "not authorised".
    let a = pki.device("timeout-311", &ca, KeyAlg::EcP256);
    let from = now_ms();
    let out = mosquitto_pub_as(&server, Some(&a), Mqtt::V311, "t", "x", CLIENT_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(stderr.contains("not authorised"), "{stderr}");
    let event = registered_event(&mut events, &ca_id, &a.id(), CLIENT_TIMEOUT);
    assert_registered(&event, &ca_id, &a.id(), from, true);
    assert_described(&aws, &a, &ca_id, "PENDING_ACTIVATION");

    // MQTT 5: CONNACK 0x87 with a reason string, after the hold.
    let b = pki.device("timeout-5", &ca, KeyAlg::EcP256);
    let client_id = unique("timeout-5");
    let mut conn = Conn::tls(server.mqtts(), &Tls::device(&server, &b)).unwrap();
    let port = conn.local_port();
    let started = Instant::now();
    let ack = conn
        .connect(ProtocolVersion::V5, &client_id, CLIENT_TIMEOUT)
        .expect("a CONNACK when the hold runs out");
    let held = started.elapsed();
    assert_eq!(ack.reason.0, 0x87, "{ack:?}");
    assert!(
        ack.properties.reason_string.is_some(),
        "no reason string: {ack:?}"
    );
    assert!(
        held >= Duration::from_millis(400),
        "refused after {held:?}: the connection was not held for --jitr-hold-ms 500"
    );
    assert!(
        conn.wait_closed(Instant::now() + CLIENT_TIMEOUT).is_some(),
        "the connection stayed open after CONNACK 0x87"
    );
    let event = registered_event(&mut events, &ca_id, &b.id(), CLIENT_TIMEOUT);
    assert_registered(&event, &ca_id, &b.id(), from, true);
    let rejected = events.rejected("certificate_pending_activation", CLIENT_TIMEOUT, |e| {
        e["sourcePort"] == port
    });
    assert_eq!(rejected["certificateId"], b.id(), "{rejected}");
    assert_eq!(rejected["caCertificateId"], ca_id, "{rejected}");
    assert_eq!(rejected["clientId"], client_id, "{rejected}");
    assert_described(&aws, &b, &ca_id, "PENDING_ACTIVATION");
}

/// A device that gives up while held frees its hold at once: no CONNACK is owed, nothing is
/// refused, and it never counts as connected.
#[test]
fn hold_mode_lets_go_of_a_client_that_leaves() {
    let server = server_with(&["--jitr-mode", "hold", "--jitr-hold-ms", "30000"]);
    let aws = server.aws();
    let pki = Pki::new();
    let (ca, ca_id) = jitr_ca(&aws, &pki, "leaving-ca", KeyAlg::EcP256);
    let mut events = Events::start(&server);

    let device = pki.device("leaving", &ca, KeyAlg::EcP256);
    let client_id = unique("leaving");
    let mut conn = Conn::tls(server.mqtts(), &Tls::device(&server, &device)).unwrap();
    conn.send(&ferrule_mqtt::Packet::Connect(ferrule_mqtt::Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.clone(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }))
    .unwrap();
    // Registered, and now held.
    registered_event(&mut events, &ca_id, &device.id(), CLIENT_TIMEOUT);
    drop(conn);
    // Well before the 30 s hold would have run out.
    server.wait_for_log("left while its connection was held", Duration::from_secs(5));
    let seen = events.all_seen(Duration::from_millis(300));
    assert!(
        seen.iter()
            .all(|e| !e.topic.ends_with(&format!("/{client_id}"))
                && e.body["clientId"] != client_id.as_str()),
        "events for a client that left while held: {seen:?}"
    );
    assert_described(&aws, &device, &ca_id, "PENDING_ACTIVATION");
}
