//! The tenant layer end to end: in process, and against a real control
//! plane over TLS on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod control_plane;
mod guard;
mod layer;
mod smuggling;
mod store;
mod support;
