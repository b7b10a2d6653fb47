//! Packets from the client: publishes, acknowledgements of deliveries, subscriptions, DISCONNECT.

use std::sync::Arc;

use bytes::BytesMut;
use ferrule_mqtt::{
    Auth, Disconnect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, TopicName, UnsubAck, Unsubscribe,
};

use super::connect::check_topic_limits;
use super::{Conn, End, ack, fit_diagnostics};
use crate::auth::reserved_for_publish;
use crate::broker::now_ms;
use crate::session::{Delivery, InflightState, Message, SubOptions};

impl Conn {
    /// Handles one packet from the client. `Some` ends the connection.
    pub(super) fn handle(&mut self, packet: Packet, wbuf: &mut BytesMut) -> Option<End> {
        match packet {
            Packet::Publish(p) => return self.on_publish(p, wbuf),
            Packet::PubAck(a) => {
                let mut st = self.session.lock();
                if st
                    .inflight
                    .get(&a.packet_id)
                    .is_some_and(|i| i.state == InflightState::Publish)
                {
                    st.inflight.remove(&a.packet_id);
                }
            }
            Packet::PubRec(a) => {
                let mut st = self.session.lock();
                let state = st.inflight.get(&a.packet_id).map(|i| i.state);
                if a.reason.is_error() {
                    if state == Some(InflightState::Publish) {
                        st.inflight.remove(&a.packet_id);
                    }
                } else {
                    // A repeated PUBREC (the state is already Release) gets its PUBREL again.
                    if let Some(i) = st.inflight.get_mut(&a.packet_id) {
                        i.state = InflightState::Release;
                    }
                    drop(st);
                    let reason = if state.is_some() {
                        ReasonCode::SUCCESS
                    } else {
                        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                    };
                    self.send(&Packet::PubRel(ack(a.packet_id, reason)), wbuf);
                }
            }
            Packet::PubComp(a) => {
                let mut st = self.session.lock();
                if st
                    .inflight
                    .get(&a.packet_id)
                    .is_some_and(|i| i.state == InflightState::Release)
                {
                    st.inflight.remove(&a.packet_id);
                }
            }
            Packet::PubRel(a) => {
                let known = self.session.lock().incoming_qos2.remove(&a.packet_id);
                let reason = if known {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.send(&Packet::PubComp(ack(a.packet_id, reason)), wbuf);
            }
            Packet::Subscribe(s) => return self.on_subscribe(s, wbuf),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, wbuf),
            Packet::PingReq => self.send(&Packet::PingResp, wbuf),
            Packet::Disconnect(d) => return Some(self.on_disconnect(d)),
            Packet::Auth(Auth { .. }) => {
                return Some(End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "AUTH without enhanced authentication",
                ));
            }
            Packet::Connect(_) => {
                return Some(End::violation(ReasonCode::PROTOCOL_ERROR, "second CONNECT"));
            }
            other => {
                return Some(End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("{} is sent by servers, not clients", other.kind()),
                ));
            }
        }
        None
    }

    fn on_publish(&mut self, p: Publish, wbuf: &mut BytesMut) -> Option<End> {
        let mut properties = p.properties;
        let topic = match (p.topic, properties.topic_alias.take()) {
            (topic, Some(alias)) => {
                if alias == 0 || alias > self.broker.config.topic_alias_maximum {
                    return Some(End::violation(
                        ReasonCode::TOPIC_ALIAS_INVALID,
                        format!(
                            "topic alias {alias} is outside 1..={}",
                            self.broker.config.topic_alias_maximum
                        ),
                    ));
                }
                match topic {
                    Some(t) => {
                        self.topic_aliases
                            .get_or_insert_default()
                            .insert(alias, t.clone());
                        t
                    }
                    None => match self.topic_aliases.as_ref().and_then(|m| m.get(&alias)) {
                        Some(t) => t.clone(),
                        None => {
                            return Some(End::violation(
                                ReasonCode::PROTOCOL_ERROR,
                                format!("topic alias {alias} was never set"),
                            ));
                        }
                    },
                }
            }
            (Some(t), None) => t,
            (None, None) => {
                return Some(End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "PUBLISH without a topic",
                ));
            }
        };
        if let Err(why) = check_topic_limits(&self.broker, topic.as_str()) {
            return Some(End::violation(
                ReasonCode::TOPIC_NAME_INVALID,
                format!("topic {why}"),
            ));
        }
        // Reserved topics are AWS IoT's rule: a broker without device authorization is a plain
        // MQTT broker, and `$` topics are the clients' business there.
        let reserved = match self.broker.auth() {
            Some(_) => reserved_for_publish(topic.as_str(), p.retain),
            None => None,
        };
        let refusal = match reserved {
            Some(why) => Some(why),
            None => self
                .authz
                .as_mut()
                .is_some_and(|a| !a.may_publish(&topic, p.retain))
                .then_some("not authorized by the connection's policies"),
        };
        if let Some(why) = refusal {
            return self.deny_publish(&topic, p.qos, p.packet_id, why, wbuf);
        }
        if let Some(rt) = &properties.response_topic
            && TopicName::new(rt.as_str()).is_err()
        {
            return Some(End::violation(
                ReasonCode::PROTOCOL_ERROR,
                "response topic is not a valid topic name",
            ));
        }
        self.broker.metrics.message_in(p.qos);
        let format_ok = properties.payload_format_indicator != Some(1)
            || std::str::from_utf8(&p.payload).is_ok();

        if p.qos == QoS::ExactlyOnce {
            let id = p.packet_id.unwrap_or(0);
            let mut st = self.session.lock();
            if st.incoming_qos2.contains(&id) {
                // A retransmission: the message was already routed.
                drop(st);
                self.send(&Packet::PubRec(ack(id, ReasonCode::SUCCESS)), wbuf);
                return None;
            }
            if st.incoming_qos2.len() >= usize::from(self.broker.config.max_inflight) {
                return Some(End::violation(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    format!(
                        "more than {} QoS 2 messages awaiting PUBREL",
                        self.broker.config.max_inflight
                    ),
                ));
            }
            if format_ok {
                st.incoming_qos2.insert(id);
            }
        }
        if !format_ok {
            if p.qos == QoS::AtMostOnce {
                return Some(End::violation(
                    ReasonCode::PAYLOAD_FORMAT_INVALID,
                    "payload is not UTF-8 as its format says",
                ));
            }
            let a = ack(p.packet_id.unwrap_or(0), ReasonCode::PAYLOAD_FORMAT_INVALID);
            self.send(
                &if p.qos == QoS::AtLeastOnce {
                    Packet::PubAck(a)
                } else {
                    Packet::PubRec(a)
                },
                wbuf,
            );
            return None;
        }
        let expires_at_ms = properties
            .message_expiry_interval
            .map(|s| now_ms() + u64::from(s) * 1000);
        properties.message_expiry_interval = None;
        properties.subscription_identifiers.clear();
        let msg = Arc::new(Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            expires_at_ms,
            publisher: Some(self.client_id.clone()),
            principal: self.principal.clone(),
            rule_hops: 0,
        });
        let receivers = self.broker.publish_from(&msg, &mut self.congested);
        let reason = if receivers == 0 && self.protocol == ProtocolVersion::V5 {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        } else {
            ReasonCode::SUCCESS
        };
        match (p.qos, p.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(ack(id, reason)), wbuf),
            (QoS::ExactlyOnce, Some(id)) => self.send(&Packet::PubRec(ack(id, reason)), wbuf),
            _ => {}
        }
        None
    }

    /// A publish the client may not make: MQTT 3.1.1 has no way to say so but closing the
    /// connection (as AWS IoT does); MQTT 5 gets 0x87 in its PUBACK/PUBREC, or a DISCONNECT
    /// for QoS 0.
    fn deny_publish(
        &mut self,
        topic: &TopicName,
        qos: QoS,
        packet_id: Option<u16>,
        why: &str,
        wbuf: &mut BytesMut,
    ) -> Option<End> {
        self.broker.metrics.publish_denied.increment(1);
        let detail = format!("publish to {topic} refused: {why}");
        tracing::debug!(client_id = %self.client_id, "{detail}");
        match (self.protocol, qos, packet_id) {
            (ProtocolVersion::V5, QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) => {
                let mut a = ack(id, ReasonCode::NOT_AUTHORIZED);
                if self.problem_info {
                    a.properties.reason_string = Some(detail);
                }
                let packet = if qos == QoS::AtLeastOnce {
                    Packet::PubAck(a)
                } else {
                    Packet::PubRec(a)
                };
                self.send(&packet, wbuf);
                None
            }
            _ => Some(End::Forbidden(detail)),
        }
    }

    fn on_subscribe(&mut self, s: Subscribe, wbuf: &mut BytesMut) -> Option<End> {
        if s.properties.subscription_identifiers.len() > 1 {
            return Some(End::violation(
                ReasonCode::PROTOCOL_ERROR,
                "more than one subscription identifier",
            ));
        }
        let sub_id = s.properties.subscription_identifiers.first().copied();
        let now = now_ms();
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained: Vec<(Arc<Message>, SubOptions)> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut granted: Vec<String> = Vec::new();
        for sub in s.filters {
            if sub.no_local && sub.filter.share_group().is_some() {
                return Some(End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "no-local on a shared subscription",
                ));
            }
            // Limits are about the topic tree: a `$share/{group}/` prefix is not part of it.
            if let Err(why) = check_topic_limits(&self.broker, sub.filter.match_filter()) {
                tracing::info!(client_id = %self.client_id, filter = %sub.filter, "subscription refused: filter {why}");
                refused.push(format!("{}: {why}", sub.filter));
                reasons.push(ReasonCode::TOPIC_FILTER_INVALID);
                continue;
            }
            if let Some(authz) = &mut self.authz
                && !authz.may_subscribe(sub.filter.as_str())
            {
                tracing::info!(client_id = %self.client_id, filter = %sub.filter, "subscription refused: not authorized by the connection's policies");
                refused.push(format!("{}: not authorized", sub.filter));
                reasons.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            granted.push(sub.filter.to_string());
            let opts = SubOptions {
                qos: sub.qos,
                no_local: sub.no_local,
                retain_as_published: sub.retain_as_published,
                retain_handling: sub.retain_handling,
                subscription_id: sub_id,
            };
            let existed = {
                let mut st = self.session.lock();
                st.dirty = true;
                st.subscriptions.insert(sub.filter.clone(), opts).is_some()
            };
            self.broker
                .index_subscription(&self.session, &sub.filter, opts);
            let send_retained = sub.filter.share_group().is_none()
                && match sub.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained.extend(
                    self.broker
                        .retained_matching(&sub.filter, now)
                        .into_iter()
                        .map(|m| (m, opts)),
                );
            }
            reasons.push(ReasonCode(sub.qos as u8));
        }
        tracing::debug!(client_id = %self.client_id, ?reasons, "subscribed");
        let mut properties = Properties::default();
        if self.problem_info && !refused.is_empty() {
            properties.reason_string = Some(format!("refused {}", refused.join("; ")));
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            reasons,
            properties,
        });
        self.send(
            &fit_diagnostics(suback, self.protocol, self.client_max_packet),
            wbuf,
        );
        self.lifecycle_event()
            .subscriptions(&self.broker, true, &granted);
        for (msg, opts) in retained {
            let d = Delivery {
                qos: opts.qos.min(msg.qos),
                retain: true,
                subscription_ids: opts.subscription_id.into_iter().collect(),
                msg,
            };
            // Straight into the queue, bypassing the offline-QoS-0 rule: the client is here.
            let mut st = self.session.lock();
            if st.queue.len() < self.broker.config.max_queued_messages {
                st.queue.push_back(d);
            } else {
                self.broker.metrics.dropped_queue_full.increment(1);
            }
        }
        None
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, wbuf: &mut BytesMut) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut removed = Vec::new();
        for filter in &u.filters {
            let existed = {
                let mut st = self.session.lock();
                st.dirty = true;
                st.subscriptions.remove(filter).is_some()
            };
            if existed {
                self.broker.unindex_subscription(&self.session, filter);
                removed.push(filter.to_string());
            }
            reasons.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        self.send(
            &Packet::UnsubAck(UnsubAck {
                packet_id: u.packet_id,
                reasons,
                properties: Properties::default(),
            }),
            wbuf,
        );
        self.lifecycle_event()
            .subscriptions(&self.broker, false, &removed);
    }

    fn on_disconnect(&mut self, d: Disconnect) -> End {
        if let Some(new_expiry) = d.properties.session_expiry_interval {
            let mut st = self.session.lock();
            if st.expiry == 0 && new_expiry != 0 {
                return End::violation(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set on DISCONNECT after CONNECT had 0",
                );
            }
            st.expiry = new_expiry.min(self.broker.config.max_session_expiry);
        }
        // Only a normal disconnection (0x00) deletes the will (MQTT 5, 3.1.2.5).
        End::Disconnect {
            will: d.reason != ReasonCode::NORMAL_DISCONNECTION,
        }
    }
}
