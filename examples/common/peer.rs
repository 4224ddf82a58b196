//! For examples serving plain HTTP under `axum::serve`: axum records the
//! TCP peer as `ConnectInfo`; the layers read `PeerAddr`. (The TLS listener
//! sets both itself.)

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use portcullis::identity::PeerAddr;

/// Copies axum's `ConnectInfo<SocketAddr>` into a `PeerAddr`.
pub(crate) fn connect_info_as_peer(mut req: Request) -> Request {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(PeerAddr(peer));
    }
    req
}
