//! MQTT 3.1.1 and 5.0 packets for the Ferrule broker, without IO.
//!
//! What it is for: turning bytes from a connection into typed [`Packet`]s and back, strictly
//! enough that the broker can trust what it gets (every field validated, every spec "Malformed
//! Packet" and "Protocol Error" that is visible in a single packet rejected with the reason code
//! to disconnect with), plus the topic rules the broker routes by: [`TopicName`] and
//! [`TopicFilter`] as validated newtypes, [`matches`] for wildcard matching, and [`TopicTrie`],
//! the subscription index on the publish path.
//!
//! What it may depend on: `bytes` and `thiserror`. No sockets, no async runtime, no clock, no
//! logging; session state (packet id allocation, topic alias tables, keep alive, receive
//! maximum) belongs to the broker.
//!
//! Order of calls on a connection:
//! 1. Append received bytes to a `BytesMut` and call [`decode`] with [`ProtocolVersion::V5`] and
//!    the server's maximum packet size until it returns `Ok(None)` ("need more bytes"). The first
//!    packet must be [`Packet::Connect`]; its `protocol` is the version for the rest of the
//!    connection.
//! 2. From then on pass that version to both [`decode`] and [`encode`]. On a [`DecodeError`],
//!    send a DISCONNECT (v5) or CONNACK carrying [`DecodeError::reason_code`] and close.
//! 3. [`encode`] appends to the outgoing buffer; an [`EncodeError`] is a bug in the caller.
//!
//! Payloads and binary fields are `Bytes` sliced from the input buffer without copying.
//!
//! ```
//! use bytes::BytesMut;
//! use ferrule_mqtt::{Packet, ProtocolVersion, decode, encode};
//!
//! let mut inbound = BytesMut::from(&b"\xc0\x00\xc0"[..]); // PINGREQ and a partial packet
//! let mut outbound = BytesMut::new();
//! while let Some(packet) = decode(&mut inbound, ProtocolVersion::V311, 65_536)? {
//!     assert_eq!(packet, Packet::PingReq);
//!     encode(&Packet::PingResp, ProtocolVersion::V311, &mut outbound)?;
//! }
//! assert_eq!(&inbound[..], b"\xc0"); // kept until the rest arrives
//! assert_eq!(&outbound[..], b"\xd0\x00");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod reason;
mod topic;
mod trie;

pub use codec::MAX_REMAINING_LENGTH;
pub use decode::decode;
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PubResp, Publish, SubAck, Subscribe, Subscription,
    UnsubAck, Unsubscribe, Will,
};
pub use properties::{MAX_SUBSCRIPTION_IDENTIFIER, Properties, id as property_id, property_name};
pub use reason::{ProtocolVersion, QoS, ReasonCode, RetainHandling, allowed_reason_codes};
pub use topic::{MAX_TOPIC_LEN, TopicError, TopicFilter, TopicName, matches};
pub use trie::TopicTrie;
