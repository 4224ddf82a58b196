//! End-to-end tests of portcullis-client-cert over real sockets and real
//! TLS handshakes, one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "axum")]
mod axum_serve;
mod env;
mod handshakes;
mod interop;
mod outbound;
mod reload;
mod stalled;
mod support;
