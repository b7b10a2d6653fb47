//! Prometheus metric handles, made once so the publish path does no registry lookups.

use ferrule_mqtt::QoS;
use metrics::{Counter, Gauge, counter, gauge};

/// Handles to every metric the broker updates per packet. Created after the binary installs its
/// recorder; without one they are no-ops (as in tests).
pub(crate) struct Metrics {
    pub(crate) connections: Gauge,
    pub(crate) connections_total: Counter,
    pub(crate) sessions: Gauge,
    pub(crate) messages_in: [Counter; 3],
    pub(crate) messages_out: [Counter; 3],
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) dropped_queue_full: Counter,
    pub(crate) dropped_expired: Counter,
    pub(crate) dropped_too_large: Counter,
    /// Deliveries the receiver's policies do not allow (`iot:Receive`).
    pub(crate) dropped_not_authorized: Counter,
    /// Publishes refused by policy or because the topic is reserved.
    pub(crate) publish_denied: Counter,
    pub(crate) retained: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let by_qos = |name: &'static str| {
            [
                counter!(name, "qos" => "0"),
                counter!(name, "qos" => "1"),
                counter!(name, "qos" => "2"),
            ]
        };
        Metrics {
            connections: gauge!("ferrule_connections"),
            connections_total: counter!("ferrule_connections_total"),
            sessions: gauge!("ferrule_sessions"),
            messages_in: by_qos("ferrule_messages_received_total"),
            messages_out: by_qos("ferrule_messages_sent_total"),
            bytes_in: counter!("ferrule_bytes_received_total"),
            bytes_out: counter!("ferrule_bytes_sent_total"),
            dropped_queue_full: counter!("ferrule_messages_dropped_total", "reason" => "queue_full"),
            dropped_expired: counter!("ferrule_messages_dropped_total", "reason" => "expired"),
            dropped_too_large: counter!("ferrule_messages_dropped_total", "reason" => "too_large_for_client"),
            dropped_not_authorized: counter!("ferrule_messages_dropped_total", "reason" => "not_authorized"),
            publish_denied: counter!("ferrule_publishes_denied_total"),
            retained: gauge!("ferrule_retained_messages"),
        }
    }

    pub(crate) fn message_in(&self, qos: QoS) {
        self.messages_in[qos as usize].increment(1);
    }

    pub(crate) fn message_out(&self, qos: QoS) {
        self.messages_out[qos as usize].increment(1);
    }
}

/// Counts a closed connection by why it closed (not on the message path).
pub(crate) fn connection_closed(reason: &'static str) {
    counter!("ferrule_connections_closed_total", "reason" => reason).increment(1);
}
