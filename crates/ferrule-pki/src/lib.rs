//! X.509 for Ferrule.
//!
//! What it is for:
//! - **Certificates as the control plane sees them**: [`parse_certificate_pem`] (and the DER
//!   and chain variants) turns input into a [`ParsedCertificate`] once, at the edge: its
//!   [`CertificateId`] (AWS's: SHA-256 of the DER), subject and issuer (RFC 4514 strings and
//!   raw DER for matching), validity, version, CA flag and key type; and the name attributes
//!   and alternative names behind AWS IoT's certificate policy variables, which
//!   [`ParsedCertificate::policy_variables`] lists under the names policies use.
//! - **Signature checks** without path building: [`verify_signed_by`] (works for the X.509 v1
//!   certificates `openssl x509 -req` makes, which webpki refuses) and CA proof of
//!   possession for RegisterCACertificate, [`check_proof_of_possession`].
//! - **Issuing device certificates** as AWS does: [`Issuer`], Ferrule's own CA, for
//!   CreateCertificateFromCsr ([`parse_csr_pem`] then [`Issuer::issue_from_csr`]) and
//!   CreateKeysAndCertificate ([`Issuer::create_keys_and_certificate`]); [`random_hex`] for
//!   registration codes.
//! - **The broker's own TLS identity**: the development PKI that `ferrule serve` creates when
//!   no `--tls-cert/--tls-key` is given ([`DevPki`]), loading the PEM files given with those
//!   flags ([`load_cert_chain`], [`load_private_key`]), and a throwaway CA for tests
//!   ([`TestCa`]).
//!
//! Errors are one enum, [`PkiError`]; those about parsing and checking certificates and CSRs
//! are written for API users, since the control plane returns them as
//! `CertificateValidationException` messages. [`PossessionError`] maps one to one onto AWS's
//! error codes.
//!
//! Dependencies: `x509-parser` (parsing only), `aws-lc-rs` (SHA-256, the system RNG and
//! signature verification; it is the TLS provider already), `rustls` (its `pki_types`,
//! PEM sections, and the aws-lc-rs provider to check that a key is usable and matches its
//! certificate), `rcgen` with aws-lc-rs only (no `ring` anywhere), `time` for validity
//! dates, `thiserror`. No tokio, no sockets. Parsing and checking are pure: where validity
//! matters the time comes in as `now_unix`. Blocking file IO happens only in
//! [`load_cert_chain`], [`load_private_key`], [`DevPki::load_or_create`] and
//! [`Issuer::load_or_create`]; those and [`TestCa`] also read the clock. Call them at startup
//! or from `spawn_blocking`, not on a hot path.
//!
//! Order of calls:
//! 1. At startup, either [`load_cert_chain`] + [`load_private_key`] for operator-provided files,
//!    or [`DevPki::load_or_create`] on the data dir, then [`DevPki::server_chain`] and
//!    [`DevPki::server_key`]; hand them to `rustls::ServerConfig` (built with the aws-lc-rs
//!    provider). Also [`Issuer::load_or_create`] on the data dir, kept for the process's life.
//! 2. Per control-plane request: parse the PEM in the request, then check
//!    ([`check_proof_of_possession`], [`verify_signed_by`]) or issue ([`Issuer`]). RSA key
//!    generation in [`Issuer::create_keys_and_certificate`] takes a noticeable fraction of a
//!    second; run it in `spawn_blocking`.
//!
//! [`TestCa`] is independent of the above: `new`, then `issue_server` / `issue_client` as
//! often as needed.

mod cert;
mod csr;
mod der;
mod dev;
mod error;
mod files;
mod id;
mod issue;
mod issuer;
mod name;
mod pem;
mod possession;
mod test_ca;
mod variables;
mod verify;

pub use cert::{
    KeyType, ParsedCertificate, parse_certificate_chain_pem, parse_certificate_der,
    parse_certificate_pem,
};
pub use csr::{ParsedCsr, parse_csr_der, parse_csr_pem};
pub use dev::DevPki;
pub use error::PkiError;
pub use id::{CertificateId, CertificateIdError, random_hex};
pub use issuer::{IssuedKeys, Issuer};
pub use pem::{load_cert_chain, load_private_key};
pub use possession::{PossessionError, check_proof_of_possession};
pub use test_ca::TestCa;
pub use verify::verify_signed_by;
