//! The conformance tests proper, by area. Each is a `pub(crate) async fn(Registry)` that
//! `registry_conformance.rs` runs once per backend.

pub(crate) mod account;
pub(crate) mod cas;
pub(crate) mod certs;
pub(crate) mod feed;
pub(crate) mod functions;
pub(crate) mod iam;
pub(crate) mod logs;
pub(crate) mod policies;
pub(crate) mod rules;
pub(crate) mod things;
