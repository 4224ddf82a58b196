//! A control plane for tests: it answers every resolve with the active
//! tenant `acme`, once the test releases it, and reports each call as it
//! arrives (so a test knows a request is in flight).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// A control plane that answers every resolve with `acme`, but only once
/// the test releases it; each call is reported when it arrives.
pub(crate) async fn held_control_plane()
-> (SocketAddr, mpsc::UnboundedReceiver<()>, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (called, calls) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (called, mut released) = (called.clone(), released.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = called.send(());
                let _ = released.wait_for(|go| *go).await;
                let body = r#"{"active": true, "tenant_id": "acme"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, calls, release)
}
