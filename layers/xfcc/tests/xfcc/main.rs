//! XfccLayer end to end: in process, then behind real proxies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod layer;
mod proxies;
mod spoof;
mod support;
