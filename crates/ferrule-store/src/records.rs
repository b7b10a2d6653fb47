//! The rows the broker hands over and gets back. Plain data, no behaviour.

/// A retained message, keyed by its topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedRecord {
    /// The topic name the message was published to (the key: one retained message per topic).
    pub topic: String,
    /// The message as the broker encodes it (QoS, properties, payload); opaque here.
    pub message: Vec<u8>,
    /// When the broker stored it, in milliseconds since the Unix epoch (for message expiry).
    pub stored_at_ms: i64,
}

/// One change to the retained messages, for [`crate::BrokerStore::write_retained`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetainedChange {
    /// Store this message, replacing the one of the same topic.
    Put(RetainedRecord),
    /// Remove the message of this topic, if there is one.
    Delete(String),
}

/// A persistent MQTT session, with its subscriptions and queued messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The MQTT client identifier (the key).
    pub client_id: String,
    /// The MQTT protocol level the client last connected with (4 = 3.1.1, 5 = 5.0).
    pub protocol_level: u8,
    /// Session expiry interval in seconds; `u32::MAX` means the session never expires.
    pub session_expiry_secs: u32,
    /// When the client disconnected, in milliseconds since the Unix epoch; `None` while it was
    /// connected when the session was saved.
    pub disconnected_at_ms: Option<i64>,
    /// The session's subscriptions, in the order the broker gave them.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// The session's outgoing messages, in delivery order.
    pub queue: Vec<QueuedRecord>,
}

/// One subscription of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The topic filter as the client sent it (shared subscriptions included).
    pub filter: String,
    /// The subscription options byte (maximum QoS, no-local, retain-as-published, retain
    /// handling) as MQTT 5 encodes it.
    pub options: u8,
    /// The MQTT 5 subscription identifier, if the client gave one.
    pub subscription_id: Option<u32>,
}

/// One message queued for a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecord {
    /// The message as the broker encodes it; opaque here.
    pub message: Vec<u8>,
    /// The packet identifier, when the message was in flight (sent, not yet acknowledged).
    pub packet_id: Option<u16>,
    /// QoS 2 only: PUBREC was received, so PUBREL is what must be resent.
    pub pubrel_pending: bool,
}
