//! Test PKI and helpers for portcullis's tests, examples and benches.
//!
//! - [`pki`]: the committed test PKI under `test-ca/ecdsa-p256/` (root CA,
//!   intermediate, server and client certificates, client variants for every
//!   `ClientIdentity` field), embedded at compile time.
//! - [`ThrowawayPki`]: the same shapes made fresh with rcgen, for the demo
//!   and for certificates a test needs once (a wrong CA, an expiry).
//! - [`client`]: a real rustls + hyper client, with or without a client
//!   certificate, over HTTP/1.1 or h2.
//! - [`interop_binary`]: find an outside tool (openssl, curl, nginx), or skip
//!   with a notice, or fail when `PORTCULLIS_INTEROP=require`.
//!
//! - With the `bench` feature: `paired_rounds` and the loopback load
//!   helpers the benches use.
//!
//! Regenerate the committed PKI with
//! `cargo run -p portcullis-test-support --bin gen-test-pki`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "bench")]
mod bench;
pub mod client;
mod daemons;
mod example;
mod pki;
mod redis;
mod serve;

#[cfg(feature = "bench")]
pub use bench::*;
pub use daemons::*;
pub use example::Example;
pub use pki::*;
pub use redis::{RedisCluster, redis_tls_and_plain_server, redis_tls_server};
pub use serve::*;
