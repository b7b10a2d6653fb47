//! Evaluation: explicit Deny wins, then any Allow, else the implicit deny.

use std::sync::Arc;

use crate::document::{Effect, Policy, Statement};

/// The request: an action such as `iot:Publish` and the resource ARN it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// For example `iot:Connect`, `iot:Publish`, `iot:Subscribe`, `iot:Receive`.
    pub action: &'a str,
    /// For example `arn:aws:iot:us-east-1:123456789012:topic/a/b`.
    pub resource: &'a str,
}

/// Most values of one certificate attribute that policies see.
const MAX_CERTIFICATE_VALUES: usize = 5;
/// The variable listing the certificate variables that have values.
const AVAILABLE_KEYS: &str = "iot:Certificate.AvailableKeys";

/// Values of policy variables and condition keys for one connection: `iot:ClientId`,
/// `iot:Connection.Thing.ThingName`, `iot:Certificate.Subject.CommonName`, `aws:SourceIp`, ...
///
/// A context can sit over a shared base ([`Context::over`]): keys it does not set itself are
/// read from the base, so many contexts that differ in a few keys share the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Sorted by key, each allocation exact: a connection keeps its context for its lifetime,
    /// and a few dozen keys are found by binary search as fast as by hashing.
    values: Vec<(Box<str>, Box<[String]>)>,
    base: Option<Arc<Context>>,
}

impl Context {
    /// An empty context over `base`: it reads as `base` until keys are set or removed.
    pub fn over(base: Arc<Context>) -> Context {
        Context {
            values: Vec::new(),
            base: Some(base),
        }
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.put(key.into(), Box::new([exact(value.into())]));
    }

    /// Sets a multi-valued key (condition keys such as `iot:ConnectAttributes`).
    pub fn set_multi<I, S>(&mut self, key: impl Into<String>, values: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(|v| exact(v.into())).collect();
        self.put(key.into(), values.into_boxed_slice());
    }

    /// Releases spare capacity, once a context is complete.
    pub fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
    }

    fn put(&mut self, key: String, values: Box<[String]>) {
        match self
            .values
            .binary_search_by(|(k, _)| (**k).cmp(key.as_str()))
        {
            Ok(i) => self.values[i].1 = values,
            Err(i) => self.values.insert(i, (key.into_boxed_str(), values)),
        }
    }

    fn own(&self, key: &str) -> Option<&[String]> {
        self.values
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.values[i].1)
    }

    /// Sets a certificate attribute the way AWS exposes multi-valued ones: `NAME` is the first
    /// value, `NAME.1` the second, and so on, and `NAME.List` all of them. Only the first five
    /// values count, as AWS documents for certificate attributes; `iot:Certificate.AvailableKeys`
    /// is not an attribute but the list of variables that have values, and keeps all of them.
    pub fn set_certificate_attribute(&mut self, name: &str, values: &[String]) {
        let cap = if name == AVAILABLE_KEYS {
            values.len()
        } else {
            MAX_CERTIFICATE_VALUES
        };
        let values = &values[..values.len().min(cap)];
        if let Some(first) = values.first() {
            self.set(name, first.clone());
        }
        for (i, v) in values.iter().enumerate().skip(1) {
            self.set(format!("{name}.{i}"), v.clone());
        }
        if !values.is_empty() {
            self.set_multi(format!("{name}.List"), values.iter().cloned());
        }
    }

    /// Removes a key (from this context's view; the base is shared and stays as it is).
    pub fn remove(&mut self, key: &str) {
        if self
            .base
            .as_ref()
            .is_some_and(|b| !b.values(key).is_empty())
        {
            // No values reads as unset.
            self.put(key.to_owned(), Box::new([]));
        } else if let Ok(i) = self.values.binary_search_by(|(k, _)| (**k).cmp(key)) {
            self.values.remove(i);
        }
    }

    /// The first value of a key.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.values(key).first().map(String::as_str)
    }

    /// All values of a key; empty when unset.
    pub fn values(&self, key: &str) -> &[String] {
        match (self.own(key), &self.base) {
            (Some(v), _) => v,
            (None, Some(base)) => base.values(key),
            (None, None) => &[],
        }
    }
}

/// `s` without spare capacity.
fn exact(mut s: String) -> String {
    s.shrink_to_fit();
    s
}

/// The outcome, with which policy and statement decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A statement allowed it and none denied it.
    Allow {
        /// The allowing policy's name.
        policy: String,
        /// The allowing statement's Sid, if any.
        sid: Option<String>,
    },
    /// A statement denied it explicitly.
    ExplicitDeny {
        /// The denying policy's name.
        policy: String,
        /// The denying statement's Sid, if any.
        sid: Option<String>,
    },
    /// No statement allowed it.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl Statement {
    fn applies(&self, action: &str, req: &Request<'_>, ctx: &Context) -> bool {
        let action_hit = self.actions.iter().any(|a| a.matches(action, ctx, false));
        if action_hit == self.not_action {
            return false;
        }
        let resource_hit = self
            .resources
            .iter()
            .any(|r| r.matches(req.resource, ctx, false));
        if resource_hit == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// Evaluates `req` against every named policy: explicit Deny wins, then the first Allow,
/// otherwise [`Decision::ImplicitDeny`].
pub fn evaluate<'p, I>(policies: I, req: &Request<'_>, ctx: &Context) -> Decision
where
    I: IntoIterator<Item = (&'p str, &'p Policy)>,
{
    let action = req.action.to_ascii_lowercase();
    let mut allow: Option<Decision> = None;
    for (name, policy) in policies {
        for st in &policy.statements {
            if !st.applies(&action, req, ctx) {
                continue;
            }
            match st.effect {
                Effect::Deny => {
                    return Decision::ExplicitDeny {
                        policy: name.to_owned(),
                        sid: st.sid.clone(),
                    };
                }
                Effect::Allow => {
                    if allow.is_none() {
                        allow = Some(Decision::Allow {
                            policy: name.to_owned(),
                            sid: st.sid.clone(),
                        });
                    }
                }
            }
        }
    }
    allow.unwrap_or(Decision::ImplicitDeny)
}
