//! Events the broker publishes itself: AWS IoT's (`$aws/events/...`, with AWS's payloads) and
//! Ferrule's own (`$ferrule/events/...`). All go out at QoS 0, not retained, through the
//! ordinary routing, so devices, admin clients and (later) rules see them alike. Clients can
//! subscribe to them but never publish to them (see `auth::reserved_for_publish`).

use std::sync::Arc;

use bytes::Bytes;
use ferrule_mqtt::{Properties, QoS, TopicName};
use ferrule_pki::ParsedCertificate;
use ferrule_store::CertRecord;
use serde_json::{Value, json};

use crate::auth::Auth;
use crate::broker::{BrokerInner, now_ms};
use crate::client_auth::ClientIdentity;
use crate::session::Message;
use crate::transport::ConnInfo;

/// Where every refused connection is announced.
pub(crate) const REJECTED_TOPIC: &str = "$ferrule/events/connections/rejected";

/// Publishes the event `body` makes on `topic`, if anyone would receive it (a subscriber or a
/// topic rule): connections come and go by the thousand, and most events have no audience.
fn publish(broker: &BrokerInner, topic: &str, body: impl FnOnce() -> Value) {
    if !broker.has_audience(topic) {
        return;
    }
    let body = body();
    let Ok(topic) = TopicName::new(topic) else {
        tracing::debug!(topic, "no event: not a valid topic name");
        return;
    };
    let msg = Arc::new(Message {
        topic,
        payload: Bytes::from(body.to_string()),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
        expires_at_ms: None,
        publisher: None,
        principal: None,
        rule_hops: 0,
    });
    broker.publish(&msg);
}

/// `$aws/events/certificates/registered/{caCertificateId}` (reference 5.4).
/// `certificateRegistrationTimestamp` is null on the event of the connection that registered
/// the certificate and the registration time (a string of milliseconds) on later ones.
pub(crate) fn certificate_registered(
    broker: &BrokerInner,
    auth: &Auth,
    record: &CertRecord,
    registering: bool,
) {
    let Some(ca_id) = &record.ca_id else { return };
    let registered: Value = if registering {
        Value::Null
    } else {
        Value::String(record.created_ms.to_string())
    };
    publish(
        broker,
        &format!("$aws/events/certificates/registered/{ca_id}"),
        || {
            json!({
                "certificateId": record.id,
                "caCertificateId": ca_id,
                "timestamp": now_ms(),
                "certificateStatus": record.status.as_str(),
                "awsAccountId": auth.settings.account_id,
                "certificateRegistrationTimestamp": registered,
            })
        },
    );
}

/// What is known of a refused connection's certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct CertFacts {
    pub(crate) id: Option<String>,
    pub(crate) ca_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) not_before: Option<i64>,
    pub(crate) not_after: Option<i64>,
}

impl CertFacts {
    pub(crate) fn of_identity(identity: &ClientIdentity) -> CertFacts {
        CertFacts {
            id: Some(identity.certificate_id.clone()),
            ca_id: identity.ca_id.clone(),
            ..CertFacts::of_certificate(&identity.certificate)
        }
    }

    pub(crate) fn of_certificate(cert: &ParsedCertificate) -> CertFacts {
        CertFacts {
            id: Some(cert.id.as_str().to_owned()),
            ca_id: None,
            subject: Some(cert.subject.clone()),
            issuer: Some(cert.issuer.clone()),
            not_before: Some(cert.not_before_unix),
            not_after: Some(cert.not_after_unix),
        }
    }
}

/// A refused connection, made visible three ways: a log line, the
/// `ferrule_connections_rejected_total{reason}` counter, and an event on [`REJECTED_TOPIC`].
pub(crate) fn connection_rejected(
    broker: &BrokerInner,
    info: &ConnInfo,
    client_id: Option<&str>,
    reason: &'static str,
    message: &str,
    cert: &CertFacts,
) {
    tracing::info!(
        reason = %reason,
        peer = %info.peer,
        listener = %info.listener,
        client_id = client_id.unwrap_or("-"),
        certificate_id = cert.id.as_deref().unwrap_or("-"),
        subject = cert.subject.as_deref().unwrap_or("-"),
        "connection rejected: {message}"
    );
    metrics::counter!("ferrule_connections_rejected_total", "reason" => reason).increment(1);
    publish(broker, REJECTED_TOPIC, || {
        json!({
            "eventType": "rejected",
            "timestamp": now_ms(),
            "reason": reason,
            "message": message,
            "listener": info.listener.as_str(),
            "sourceIp": info.peer.ip().to_string(),
            "sourcePort": info.peer.port(),
            "clientId": client_id,
            "certificateId": cert.id,
            "caCertificateId": cert.ca_id,
            "subject": cert.subject,
            "issuer": cert.issuer,
            "notBefore": cert.not_before.map(iso8601),
            "notAfter": cert.not_after.map(iso8601),
        })
    });
}

/// Who a lifecycle event is about.
pub(crate) struct Lifecycle<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) session_identifier: SessionId,
    pub(crate) principal: &'a str,
    pub(crate) version: u64,
}

impl Lifecycle<'_> {
    /// Client ids with `+` or `#` get no lifecycle events (AWS does the same): they cannot be
    /// part of a topic name.
    fn topic(&self, kind: &str) -> Option<String> {
        (!self.client_id.contains(['+', '#']))
            .then(|| format!("$aws/events/{kind}/{}", self.client_id))
    }

    /// `$aws/events/presence/connected/{clientId}`.
    pub(crate) fn connected(&self, broker: &BrokerInner, info: &ConnInfo) {
        let Some(topic) = self.topic("presence/connected") else {
            return;
        };
        publish(broker, &topic, || {
            json!({
                "clientId": self.client_id,
                "timestamp": now_ms(),
                "eventType": "connected",
                "sessionIdentifier": self.session_identifier.to_string(),
                "principalIdentifier": self.principal,
                "ipAddress": info.peer.ip().to_string(),
                "versionNumber": self.version,
            })
        });
    }

    /// `$aws/events/presence/disconnected/{clientId}`.
    pub(crate) fn disconnected(
        &self,
        broker: &BrokerInner,
        client_initiated: bool,
        reason: &'static str,
    ) {
        let Some(topic) = self.topic("presence/disconnected") else {
            return;
        };
        publish(broker, &topic, || {
            json!({
                "clientId": self.client_id,
                "timestamp": now_ms(),
                "eventType": "disconnected",
                "sessionIdentifier": self.session_identifier.to_string(),
                "principalIdentifier": self.principal,
                "clientInitiatedDisconnect": client_initiated,
                "disconnectReason": reason,
                "versionNumber": self.version,
            })
        });
    }

    /// `$aws/events/subscriptions/subscribed|unsubscribed/{clientId}`.
    pub(crate) fn subscriptions(&self, broker: &BrokerInner, subscribed: bool, topics: &[String]) {
        if topics.is_empty() {
            return;
        }
        let kind = if subscribed {
            "subscribed"
        } else {
            "unsubscribed"
        };
        let Some(topic) = self.topic(&format!("subscriptions/{kind}")) else {
            return;
        };
        publish(broker, &topic, || {
            json!({
                "clientId": self.client_id,
                "timestamp": now_ms(),
                "eventType": kind,
                "sessionIdentifier": self.session_identifier.to_string(),
                "principalIdentifier": self.principal,
                "topics": topics,
            })
        });
    }
}

/// A session identifier in UUID form, as AWS's lifecycle events carry.
pub(crate) fn session_identifier() -> String {
    SessionId::new().to_string()
}

/// A random UUID-shaped identifier (a connection's `sessionIdentifier`), kept as its 128 bits
/// rather than as the 36 characters it is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionId(u128);

impl SessionId {
    pub(crate) fn new() -> SessionId {
        let hex = ferrule_pki::random_hex(16);
        SessionId(u128::from_str_radix(&hex, 16).expect("random_hex gives 32 hex digits"))
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn iso8601(secs: i64) -> String {
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 as (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::{SessionId, iso8601};

    #[test]
    fn session_ids_are_written_as_uuids() {
        assert_eq!(
            SessionId(0x0123_4567_89ab_cdef_0011_2233_4455_6677).to_string(),
            "01234567-89ab-cdef-0011-223344556677"
        );
        assert_eq!(
            SessionId(1).to_string(),
            "00000000-0000-0000-0000-000000000001"
        );
        let (a, b) = (SessionId::new(), SessionId::new());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert!(
            text.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{text}"
        );
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
        assert_eq!(iso8601(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
