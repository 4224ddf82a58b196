//! Integration tests for portcullis-identity, one binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod certificate;
mod client_ip;
mod openssl;
#[cfg(feature = "outbound-tls")]
mod outbound;
mod properties;
