//! Running requests through a layer in process, and serving on loopback
//! in plaintext the way a listener under test would.

/// What a request through a layer came to: the response, and what the
/// application behind the layer saw (`None` when it never ran).
#[derive(Debug)]
pub struct Recorded<T> {
    /// The response status.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The response extensions (a layer's rejection value, say).
    pub extensions: http::Extensions,
    /// The response body, as text.
    pub body: String,
    /// What `record` took from the request the application received.
    pub seen: Option<T>,
}

impl<T> Recorded<T> {
    /// What the application saw; panics, with the response, when it never
    /// ran.
    pub fn seen(&self) -> &T {
        self.seen
            .as_ref()
            .unwrap_or_else(|| panic!("the app did not run: {} {}", self.status, self.body))
    }

    /// The layer's rejection value of type `R`, if the response has one.
    pub fn rejection<R: Clone + Send + Sync + 'static>(&self) -> Option<&R> {
        self.extensions.get::<R>()
    }
}

/// The application [`through_layer`] puts behind a layer.
pub type RecordingApp = tower::util::BoxCloneService<
    http::Request<()>,
    http::Response<http_body_util::Full<bytes::Bytes>>,
    std::convert::Infallible,
>;

/// Runs `req` through `layer` in front of an application that answers
/// `200 ok` and keeps `record(&request)` of the request it received.
pub async fn through_layer<L, B, T>(
    layer: &L,
    req: http::Request<()>,
    record: fn(&http::Request<()>) -> T,
) -> Recorded<T>
where
    L: tower_layer::Layer<RecordingApp>,
    L::Service: tower_service::Service<
            http::Request<()>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        >,
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Debug,
    T: Send + 'static,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let app = tower::service_fn(move |req: http::Request<()>| {
        let _ = tx.send(record(&req));
        std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
        )))
    });
    let service = layer.layer(RecordingApp::new(app));
    let Ok(res) = service.oneshot(req).await;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("response body: {e:?}"))
        .to_bytes();
    Recorded {
        status: parts.status,
        headers: parts.headers,
        extensions: parts.extensions,
        body: String::from_utf8_lossy(&body).into_owned(),
        seen: rx.try_recv().ok(),
    }
}

/// Serves HTTP/1.1 and h2 in plaintext on every connection `listener`
/// accepts, with `service_for(peer)` (which stamps the peer as the
/// listener under test would), until the task running this is dropped,
/// which closes every connection it accepted too.
pub async fn serve_plain<S, B>(
    listener: tokio::net::TcpListener,
    service_for: impl Fn(std::net::SocketAddr) -> S,
) where
    S: tower_service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    // Connections live as long as this future: aborting its task closes
    // them all, as a killed server would (a pooled client's keep-alive
    // connection must not outlive the "outage").
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { break };
                let service = hyper_util::service::TowerToHyperService::new(service_for(peer));
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
