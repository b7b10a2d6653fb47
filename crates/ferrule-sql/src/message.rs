//! What a statement is evaluated against, what it produces, and the source of the two things a
//! pure crate cannot make itself (unique ids, random numbers).

/// One message as the rules engine sees it, and the facts its functions return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The topic it was published to (`topic()`). For Basic Ingest, the whole
    /// `$aws/rules/<rule>/...` topic; `topic()` leaves the prefix out.
    pub topic: &'a str,
    /// The payload bytes: JSON, or anything else (a binary payload).
    pub payload: &'a [u8],
    /// The publisher's MQTT client id (`clientid()` gives `n/a` without one).
    pub client_id: Option<&'a str>,
    /// The publisher's principal (`principal()`): a certificate id for X.509 clients.
    pub principal: Option<&'a str>,
    /// When the rules engine received it, in epoch milliseconds (`timestamp()`).
    pub timestamp_ms: i64,
    /// The message's trace id (`traceid()`; Undefined without one).
    pub trace_id: Option<&'a str>,
    /// The account that owns the rule (`accountid()`).
    pub account_id: &'a str,
}

impl<'a> Message<'a> {
    /// A message with no client id, principal or trace id, and an empty account id.
    pub fn new(topic: &'a str, payload: &'a [u8], timestamp_ms: i64) -> Message<'a> {
        Message {
            topic,
            payload,
            client_id: None,
            principal: None,
            timestamp_ms,
            trace_id: None,
            account_id: "",
        }
    }
}

/// Unique ids and randomness, passed in so that evaluation is deterministic under test.
pub trait Env {
    /// A new random UUID in its 36-character text form (`newuuid()`).
    fn new_uuid(&mut self) -> String;
    /// A uniformly distributed number in `[0, 1)` (`rand()`).
    fn random(&mut self) -> f64;
}

/// What a statement outputs for a message its WHERE clause accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// JSON text.
    Json(Vec<u8>),
    /// Bytes that are not JSON: a binary payload passed through by `SELECT *`, or the empty
    /// output of `SELECT VALUE` of an Undefined value.
    Raw(Vec<u8>),
}

impl Output {
    /// The output bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Output::Json(b) | Output::Raw(b) => b,
        }
    }

    /// The output bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Output::Json(b) | Output::Raw(b) => b,
        }
    }

    /// Whether the output is JSON text (actions that need JSON, such as Lambda, fail otherwise).
    pub fn is_json(&self) -> bool {
        matches!(self, Output::Json(_))
    }
}
