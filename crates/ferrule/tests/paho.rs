//! Python's paho-mqtt 2.x (`tests/python/paho_interop.py`, CallbackAPIVersion.VERSION2) against
//! the real `ferrule` binary over every listener: TLS with the development CA, plain TCP,
//! WebSocket and WebSocket over TLS, MQTT 3.1.1 and 5.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, paho_checks};

#[test]
fn pubsub_qos_0_1_2_mqtt311_over_tcp_tls_ws_wss() {
    let server = Server::start();
    paho_checks(
        &server,
        &[
            "pubsub:311:tcp",
            "pubsub:311:tls",
            "pubsub:311:ws",
            "pubsub:311:wss",
        ],
    );
}

#[test]
fn pubsub_qos_0_1_2_mqtt5_over_tcp_tls_ws_wss() {
    let server = Server::start();
    paho_checks(
        &server,
        &[
            "pubsub:5:tcp",
            "pubsub:5:tls",
            "pubsub:5:ws",
            "pubsub:5:wss",
        ],
    );
}

#[test]
fn retained_messages_mqtt311_and_mqtt5() {
    let server = Server::start();
    paho_checks(
        &server,
        &[
            "retained:311:tls",
            "retained:311:ws",
            "retained:5:tcp",
            "retained:5:wss",
        ],
    );
}

#[test]
fn persistent_sessions_receive_queued_qos1_messages_after_reconnect() {
    let server = Server::start();
    paho_checks(
        &server,
        &[
            "persistent:311:tcp",
            "persistent:311:wss",
            "persistent:5:tls",
            "persistent:5:ws",
        ],
    );
}

#[test]
fn mqtt5_publish_properties_topic_alias_and_request_response() {
    let server = Server::start();
    paho_checks(
        &server,
        &["properties:5:tls", "properties:5:wss", "properties:5:tcp"],
    );
}

#[test]
fn mqtt5_shared_subscriptions_spread_messages_over_group_members() {
    let server = Server::start();
    paho_checks(&server, &["shared:5:tcp", "shared:5:ws"]);
}
