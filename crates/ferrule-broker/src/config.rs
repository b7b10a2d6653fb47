//! Broker limits and behaviour knobs, already validated by the caller.

use std::time::Duration;

/// How the broker behaves and what it allows. Every limit has a default close to Mosquitto's and
/// EMQX's, and the `ferrule` binary maps each field to a config key, a flag and an environment
/// variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Largest packet accepted from a client, fixed header included (MQTT 5 `Maximum Packet Size`).
    pub max_packet_size: u32,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels (`/`-separated parts) in a topic name or filter.
    pub max_topic_levels: usize,
    /// Most simultaneous client connections across all listeners.
    pub max_connections: usize,
    /// Most unacknowledged QoS 1/2 messages in flight to one client, and the `Receive Maximum`
    /// the broker announces for messages from it.
    pub max_inflight: u16,
    /// Most messages queued for one session (online or offline); further messages are dropped and
    /// counted.
    pub max_queued_messages: usize,
    /// Whether QoS 0 messages are queued for offline persistent sessions (Mosquitto's
    /// `queue_qos0_messages`).
    pub queue_qos0_offline: bool,
    /// Largest keep-alive a client may ask for, in seconds; larger (or zero) requests are lowered
    /// to it (MQTT 5 `Server Keep Alive`). Zero means no limit.
    pub max_keep_alive: u16,
    /// Largest session expiry a client may ask for, in seconds. MQTT 3.1.1 persistent sessions get
    /// this value.
    pub max_session_expiry: u32,
    /// The `Topic Alias Maximum` announced to MQTT 5 clients.
    pub topic_alias_maximum: u16,
    /// How long a new connection may take to send its CONNECT.
    pub connect_timeout: Duration,
    /// How often offline sessions with changes are written to the store.
    pub persist_interval: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_packet_size: 268_435_460,
            max_topic_length: 65_535,
            max_topic_levels: 128,
            max_connections: 100_000,
            max_inflight: 1024,
            max_queued_messages: 1000,
            queue_qos0_offline: false,
            max_keep_alive: 0,
            max_session_expiry: u32::MAX,
            topic_alias_maximum: 64,
            connect_timeout: Duration::from_secs(10),
            persist_interval: Duration::from_secs(1),
        }
    }
}
