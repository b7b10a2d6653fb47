//! Just-in-time registration under a crowd: 200 distinct devices (EC P-256 certificates made
//! with `openssl` in parallel) first-connect at once under one CA, each with its own real
//! `mosquitto_pub`, in `--jitr-mode aws` (each connection is closed once registered). Exactly
//! 200 certificates get registered (`aws iot list-certificates-by-ca`, paged) and exactly 200
//! registered events are published, one per certificate id.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Events, KeyAlg, Mqtt, Pki, Server, all_listener_args, mosq_tls_args, registered_topic,
    require_mosquitto, str_of,
};

const DEVICES: usize = 200;
/// Bound on the whole crowd connecting (loopback, but a 2-core machine running 200 clients).
const CROWD_TIMEOUT: Duration = Duration::from_secs(120);

/// Child processes killed (if still running) when dropped.
struct Crowd(Vec<Child>);

impl Drop for Crowd {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_hundred_devices_first_connecting_at_once_are_each_registered_exactly_once() {
    require_mosquitto();
    let mut args = all_listener_args();
    args.extend(["--jitr-mode", "aws"].map(OsString::from));
    let server = Server::start_with(args);
    let aws = server.aws();
    let pki = Pki::new();
    let ca = pki.ca("crowd-ca", "/O=Ferrule Tests/CN=Crowd CA", KeyAlg::EcP256);
    let ca_id = aws.register_ca(&pki, &ca, true, true);

    let devices = pki.devices_parallel("crowd", &ca, KeyAlg::EcP256, DEVICES, 8);
    let expected: BTreeSet<String> = devices.iter().map(common::Cert::id).collect();
    assert_eq!(
        expected.len(),
        DEVICES,
        "two devices got the same certificate"
    );
    let mut events = Events::start_on(&server, &[&registered_topic(&ca_id)]);

    // All at once.
    let mut crowd = Crowd(Vec::with_capacity(DEVICES));
    for (i, d) in devices.iter().enumerate() {
        let child = Command::new("mosquitto_pub")
            .args(mosq_tls_args(&server, Some(d), Mqtt::V311))
            .args([
                "-i",
                &format!("crowd-{i}"),
                "-t",
                "crowd/hello",
                "-m",
                "hi",
                "-q",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto_pub");
        crowd.0.push(child);
    }
    let deadline = Instant::now() + CROWD_TIMEOUT;
    let mut accepted = Vec::new();
    for (i, child) in crowd.0.iter_mut().enumerate() {
        let status =
            common::wait_timeout(child, deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| {
                    panic!("mosquitto_pub #{i} still running after {CROWD_TIMEOUT:?}")
                });
        if status.success() {
            accepted.push(i);
        }
    }
    assert!(
        accepted.is_empty(),
        "aws mode accepted first connections of devices {accepted:?}"
    );

    // One event per certificate: count every event until all ids are in, then a little more.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    let topic = registered_topic(&ca_id);
    while per_id.len() < DEVICES && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(e) = events.try_next(left, |_| true) else {
            break;
        };
        assert_eq!(e.topic, topic);
        assert_eq!(
            e.body["certificateStatus"], "PENDING_ACTIVATION",
            "{}",
            e.body
        );
        assert!(
            e.body["certificateRegistrationTimestamp"].is_null(),
            "a first connection's event with a registration time: {}",
            e.body
        );
        *per_id
            .entry(str_of(&e.body["certificateId"]).to_owned())
            .or_default() += 1;
    }
    let late = events.pending(Duration::from_secs(1));
    for e in &late {
        *per_id
            .entry(e.body["certificateId"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let repeated: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "certificate ids with several registered events: {repeated:?}"
    );
    let ids: BTreeSet<String> = per_id.keys().cloned().collect();
    assert_eq!(
        ids.len(),
        DEVICES,
        "{} distinct registered events for {DEVICES} devices",
        ids.len()
    );
    assert_eq!(
        ids, expected,
        "the events name other certificates than the devices'"
    );

    // Exactly the 200 certificates, registered once, paged through 50 at a time.
    let listed = aws.list_certificates_by_ca(&ca_id, 50);
    assert_eq!(
        listed.len(),
        DEVICES,
        "list-certificates-by-ca returned {}",
        listed.len()
    );
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|c| str_of(&c["certificateId"]).to_owned())
        .collect();
    assert_eq!(
        listed_ids, expected,
        "duplicates or strangers in list-certificates-by-ca"
    );
    assert!(
        listed.iter().all(|c| c["status"] == "PENDING_ACTIVATION"),
        "{listed:?}"
    );
}
