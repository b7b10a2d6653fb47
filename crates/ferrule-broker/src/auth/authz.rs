//! Per-packet authorization, answered from a per-connection cache: the publish and delivery
//! paths evaluate a topic's policies once and then look the answer up, and never touch the
//! database.

use std::collections::HashMap;
use std::sync::Arc;

use ferrule_mqtt::TopicName;
use ferrule_policy::Context;

use super::{Grant, PolicySet};

/// Most cached answers per kind before the cache starts over: a client walking through
/// endless distinct topics costs evaluations, not memory.
const CACHE_MAX: usize = 1024;

/// Prefixes of `$` topics that clients publish requests to (shadows, jobs, Basic Ingest, fleet
/// provisioning); their policies decide. Every other `$` topic belongs to the broker.
const CLIENT_REQUEST_PREFIXES: [&str; 4] = [
    "$aws/things/",
    "$aws/rules/",
    "$aws/certificates/",
    "$aws/provisioning-templates/",
];

/// Why no client may publish to `topic` (with `retain`), whatever its policies say: events
/// (`$aws/events/...`, `$ferrule/...`) and other reserved topics are published by the broker
/// only, and nothing is retained on a reserved topic (reference 10.1).
pub(crate) fn reserved_for_publish(topic: &str, retain: bool) -> Option<&'static str> {
    if !topic.starts_with('$') {
        return None;
    }
    if !CLIENT_REQUEST_PREFIXES.iter().any(|p| topic.starts_with(p)) {
        return Some("the topic is reserved for the broker's own events");
    }
    retain.then_some("messages cannot be retained on reserved topics")
}

/// One connection's view of its [`Grant`], with cached answers. Notices a new grant version
/// on every question.
pub(crate) struct Authz {
    grant: Arc<Grant>,
    arn_prefix: Arc<str>,
    version: u64,
    policies: Arc<PolicySet>,
    ctx: Arc<Context>,
    publish: HashMap<TopicName, bool>,
    retain: HashMap<TopicName, bool>,
    receive: HashMap<TopicName, bool>,
}

impl Authz {
    pub(crate) fn new(grant: Arc<Grant>, arn_prefix: Arc<str>) -> Authz {
        let version = grant.version();
        let (policies, ctx) = grant.current();
        Authz {
            grant,
            arn_prefix,
            version,
            policies,
            ctx,
            publish: HashMap::new(),
            retain: HashMap::new(),
            receive: HashMap::new(),
        }
    }

    pub(crate) fn grant(&self) -> &Arc<Grant> {
        &self.grant
    }

    /// Picks up a changed grant, dropping cached answers. True if it changed.
    pub(crate) fn refresh(&mut self) -> bool {
        let version = self.grant.version();
        if version == self.version {
            return false;
        }
        (self.policies, self.ctx) = self.grant.current();
        self.version = version;
        self.publish.clear();
        self.retain.clear();
        self.receive.clear();
        true
    }

    fn evaluate(&self, action: &str, kind: &str, name: &str) -> bool {
        match &*self.policies {
            PolicySet::FullAccess => true,
            policies => {
                let resource = format!("{}{kind}/{name}", self.arn_prefix);
                policies.allows(action, &resource, &self.ctx)
            }
        }
    }

    fn cached(&mut self, which: Which, action: &str, topic: &TopicName) -> bool {
        self.refresh();
        if matches!(*self.policies, PolicySet::FullAccess) {
            return true;
        }
        let cache = match which {
            Which::Publish => &self.publish,
            Which::Retain => &self.retain,
            Which::Receive => &self.receive,
        };
        if let Some(&answer) = cache.get(topic) {
            return answer;
        }
        let answer = self.evaluate(action, "topic", topic.as_str());
        let cache = match which {
            Which::Publish => &mut self.publish,
            Which::Retain => &mut self.retain,
            Which::Receive => &mut self.receive,
        };
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(topic.clone(), answer);
        answer
    }

    /// `iot:Publish` on the topic, and `iot:RetainPublish` too for a retained message.
    pub(crate) fn may_publish(&mut self, topic: &TopicName, retain: bool) -> bool {
        self.cached(Which::Publish, "iot:Publish", topic)
            && (!retain || self.cached(Which::Retain, "iot:RetainPublish", topic))
    }

    /// `iot:Subscribe` on the filter (`topicfilter/...`, where `+` and `#` are literal).
    pub(crate) fn may_subscribe(&mut self, filter: &str) -> bool {
        self.refresh();
        self.evaluate("iot:Subscribe", "topicfilter", filter)
    }

    /// `iot:Receive` on the topic of a message about to be delivered.
    pub(crate) fn may_receive(&mut self, topic: &TopicName) -> bool {
        self.cached(Which::Receive, "iot:Receive", topic)
    }
}

#[derive(Clone, Copy)]
enum Which {
    Publish,
    Retain,
    Receive,
}

#[cfg(test)]
mod tests {
    use super::reserved_for_publish;

    #[test]
    fn event_topics_are_never_publishable() {
        for topic in [
            "$aws/events/certificates/registered/abc",
            "$aws/events/presence/connected/c1",
            "$ferrule/events/connections/rejected",
            "$SYS/broker/uptime",
            "$anything",
        ] {
            assert!(reserved_for_publish(topic, false).is_some(), "{topic}");
        }
    }

    #[test]
    fn request_topics_are_left_to_policies_but_never_retained() {
        for topic in [
            "$aws/things/t1/shadow/update",
            "$aws/rules/r1/x",
            "$aws/certificates/create/json",
        ] {
            assert_eq!(reserved_for_publish(topic, false), None, "{topic}");
            assert!(reserved_for_publish(topic, true).is_some(), "{topic}");
        }
        assert_eq!(reserved_for_publish("a/b", true), None);
    }
}
