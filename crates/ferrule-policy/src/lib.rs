//! AWS IoT policy documents: parsing into a typed form, and evaluating a request against the
//! policies that apply to a principal.
//!
//! What it is for: the broker asks "may this connection do `iot:Publish` on
//! `arn:aws:iot:us-east-1:123456789012:topic/a/b`?" on every CONNECT, PUBLISH, SUBSCRIBE and
//! delivery; the control plane rejects malformed documents with a message naming the problem,
//! and answers `TestAuthorization`.
//!
//! [`Policy::parse_identity`] reads IAM identity policies (users' and roles' inline policies) in
//! the same typed form, so the control plane authorises its callers with the same evaluator.
//!
//! What it may depend on: `serde_json` and `thiserror`. No IO, no clock, no async.
//!
//! Order of calls: [`Policy::parse`] once per policy version (when it is created or loaded);
//! build a [`Context`] once per connection (client id, thing, certificate fields); then
//! [`evaluate`] per request. Explicit Deny wins over Allow, and nothing is allowed unless a
//! statement allows it.

mod condition;
mod document;
mod eval;
mod pattern;

pub use document::{Effect, MAX_POLICY_CHARS, Policy, PolicyError, PolicyVersion, Statement};
pub use eval::{Context, Decision, Request, evaluate};
pub use pattern::glob_match;
