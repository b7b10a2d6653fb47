//! X.509 for Ferrule.
//!
//! Today: the development PKI that `ferrule serve` creates when no `--tls-cert/--tls-key` is
//! given ([`DevPki`]), loading the PEM files given with those flags ([`load_cert_chain`],
//! [`load_private_key`]), and a throwaway CA for tests ([`TestCa`]). Certificate parsing,
//! certificate ids, chain checks against registered CAs and proof of possession come later.
//!
//! Dependencies: `rustls` (its `pki_types` and the aws-lc-rs provider, to check that a key is
//! usable and matches its certificate), `rcgen` with aws-lc-rs only (no `ring` anywhere),
//! `time` for validity dates, `thiserror`. No tokio, no sockets. The file helpers and
//! [`DevPki::load_or_create`] do blocking file IO, and the issuing functions read the clock
//! for validity dates; call them at startup or from `spawn_blocking`, not on a hot path.
//!
//! Order of calls:
//! 1. At startup, either [`load_cert_chain`] + [`load_private_key`] for operator-provided files,
//!    or [`DevPki::load_or_create`] on the data dir, then [`DevPki::server_chain`] and
//!    [`DevPki::server_key`].
//! 2. Hand the chain and key to `rustls::ServerConfig` (built with the aws-lc-rs provider).
//!
//! [`TestCa`] is independent of the above: `new`, then `issue_server` / `issue_client` as
//! often as needed.

mod dev;
mod error;
mod issue;
mod pem;
mod test_ca;

pub use dev::DevPki;
pub use error::PkiError;
pub use pem::{load_cert_chain, load_private_key};
pub use test_ca::TestCa;
