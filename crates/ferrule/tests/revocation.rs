//! Registry changes reach live connections: `aws iot update-certificate --new-status REVOKED`
//! or `INACTIVE`, or detaching the only policy, disconnects a connected device within a second
//! (a functional limit of the design: "revocation, deactivation and policy changes reach live
//! connections within a second"), with a lifecycle `disconnected` event (AUTH_ERROR for a status
//! change), and the device cannot come back. Other devices stay connected.
//!
//! The one-second bound is a deadline on a wait that starts when the aws CLI command returns,
//! not a measurement of speed: the client is already connected and idle, so nothing but the
//! server's reaction is inside the window.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    CLIENT_TIMEOUT, Cert, Conn, Events, Server, Tls, allow_all, connect_device, provision_device,
    wait_rejection_logged,
};
use ferrule_mqtt::ProtocolVersion::{self, V5, V311};

/// How long a live connection may outlast the registry change.
const LIVE_EFFECT: Duration = Duration::from_secs(1);

/// Waits at most [`LIVE_EFFECT`] from `changed` for `conn` to be closed by the server.
fn assert_disconnected_within_a_second(conn: &mut Conn, changed: Instant, what: &str) {
    let closing = conn.wait_closed(changed + LIVE_EFFECT);
    assert!(
        closing.is_some(),
        "{what}: the device was still connected {LIVE_EFFECT:?} after the aws CLI returned"
    );
}

/// A reconnection with `cert` as `client_id` is refused with CONNACK 0x87.
fn assert_refused(server: &Server, cert: &Cert, version: ProtocolVersion, client_id: &str) {
    let mut c = Conn::tls(server.mqtts(), &Tls::device(server, cert))
        .unwrap_or_else(|e| panic!("{client_id}: the handshake should pass: {e:?}"));
    let ack = c
        .connect(version, client_id, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{client_id}: closed without CONNACK: {e:?}"));
    assert_eq!(ack.reason.0, 0x87, "{client_id}: {ack:?}");
}

#[test]
fn revoking_or_deactivating_a_certificate_disconnects_its_device_within_a_second() {
    let server = Server::start();
    let aws = server.aws();
    let revoked = provision_device(&server, "to-be-revoked");
    let deactivated = provision_device(&server, "to-be-deactivated");
    let bystander = provision_device(&server, "bystander");
    let mut events = Events::start_on(&server, &["$aws/events/presence/#"]);

    let mut a = connect_device(&server, &revoked, V5, "revoke-me");
    let mut b = connect_device(&server, &deactivated, V311, "deactivate-me");
    let mut c = connect_device(&server, &bystander, V5, "bystander");

    for (conn, cert, client_id, status, version, reason) in [
        (
            &mut a,
            &revoked,
            "revoke-me",
            "REVOKED",
            V5,
            "certificate_revoked",
        ),
        (
            &mut b,
            &deactivated,
            "deactivate-me",
            "INACTIVE",
            V311,
            "certificate_inactive",
        ),
    ] {
        aws.update_certificate(&cert.id(), status);
        let changed = Instant::now();
        assert_disconnected_within_a_second(conn, changed, status);
        let event = events
            .on_topic(
                &format!("$aws/events/presence/disconnected/{client_id}"),
                CLIENT_TIMEOUT,
            )
            .body;
        assert_eq!(event["disconnectReason"], "AUTH_ERROR", "{event}");
        assert_eq!(event["clientInitiatedDisconnect"], false, "{event}");
        assert_eq!(event["principalIdentifier"], cert.id(), "{event}");
        assert_refused(&server, cert, version, client_id);
        wait_rejection_logged(&server, reason);
    }

    // The bystander never noticed.
    assert!(c.still_open_after(Duration::from_millis(100)));
    let ack = c.publish("still/here", b"yes", 1, false).unwrap().unwrap();
    assert!(!ack.reason.is_error(), "{ack:?}");
    c.disconnect();
}

#[test]
fn detaching_the_only_policy_disconnects_the_device_within_a_second() {
    let server = Server::start();
    let aws = server.aws();
    let fixture = server.fixture();
    let device = fixture
        .pki
        .device("policy-holder", &fixture.ca, common::KeyAlg::EcP256);
    aws.register_cert(&device, "ACTIVE");
    aws.grant("OnlyPolicy", &allow_all(), &device.id());
    let mut events = Events::start_on(&server, &["$aws/events/presence/#"]);

    let mut conn = connect_device(&server, &device, V5, "policy-holder");
    aws.detach_policy("OnlyPolicy", &device.id());
    let changed = Instant::now();
    assert_disconnected_within_a_second(&mut conn, changed, "detach-policy");
    let event = events
        .on_topic(
            "$aws/events/presence/disconnected/policy-holder",
            CLIENT_TIMEOUT,
        )
        .body;
    assert_eq!(event["clientInitiatedDisconnect"], false, "{event}");
    assert_refused(&server, &device, V5, "policy-holder");
    wait_rejection_logged(&server, "not_authorized");

    // Attached again, it connects again.
    aws.attach_policy("OnlyPolicy", &device.id());
    connect_device(&server, &device, V5, "policy-holder").disconnect();
}

/// A CA set INACTIVE stops new registrations under it but, as on AWS, does not cut off the
/// devices it already vouched for: a connected device stays connected and can reconnect.
#[test]
fn deactivating_a_ca_keeps_its_registered_devices_connected() {
    let server = Server::start();
    let aws = server.aws();
    let device = provision_device(&server, "under-a-ca-going-inactive");
    let ca_id = server.fixture().ca_id.clone();
    let mut conn = connect_device(&server, &device, V5, "stays");

    aws.ok(&[
        "update-ca-certificate",
        "--certificate-id",
        &ca_id,
        "--new-status",
        "INACTIVE",
    ]);
    assert!(
        conn.still_open_after(Duration::from_millis(1500)),
        "a device was cut off when its CA went INACTIVE"
    );
    let publish = conn
        .publish("ca/inactive", b"still here", 1, false)
        .unwrap();
    assert!(
        publish.as_ref().is_some_and(|ack| !ack.reason.is_error()),
        "publish after the CA went INACTIVE: {publish:?}"
    );
    conn.disconnect();
    let again = connect_device(&server, &device, V311, "comes-back");
    again.disconnect();
}
