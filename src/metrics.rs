//! The Prometheus endpoint `METRICS_ADDR` names (feature `metrics`): every
//! metric of [`observe::METRICS`](crate::identity::observe::METRICS),
//! described, at `GET /metrics`, with the gauges sampled at each scrape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis_client_cert::{CertificateExpiry, ReloadStats, ServeOptions};
use portcullis_rate_limit::RateLimitLayer;
use portcullis_tenant::TenantLayer;

/// Histogram buckets for calls to the control plane and Redis, in seconds:
/// from a same-host round trip to a call about to time out.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often histograms are drained into their buckets between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The recorder this process installed, shared by every endpoint.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process, and describes every
/// metric to it.
fn recorder() -> std::io::Result<PrometheusHandle> {
    if let Some(handle) = RECORDER.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| {
            std::io::Error::other(format!(
                "METRICS_ADDR: cannot install the Prometheus recorder ({e}); an application \
                 that installs its own metrics recorder serves it itself: unset METRICS_ADDR"
            ))
        })?;
    portcullis_identity::observe::describe();
    Ok(RECORDER.get_or_init(|| handle).clone())
}

/// What a scrape samples besides the counters: the levels the gauges show.
#[derive(Debug, Clone)]
pub(crate) struct Levels {
    pub(crate) tenant: TenantLayer,
    pub(crate) rate_limit: RateLimitLayer,
    /// What the TLS files held at start-up.
    pub(crate) expiry: Option<CertificateExpiry>,
    /// What the latest reload installed, once one has.
    pub(crate) reloads: Option<Arc<ReloadStats>>,
}

impl Levels {
    fn sample(&self) {
        portcullis_identity::observe::levels(
            self.tenant.cached_entries(),
            self.rate_limit.bucket_count(),
        );
        let reloaded = self.reloads.as_ref().and_then(|r| r.served_expiry());
        if let Some(expiry) = reloaded.or(self.expiry) {
            expiry.observe();
        }
    }
}

/// The bound endpoint, served beside the application.
#[derive(Debug)]
pub(crate) struct MetricsEndpoint {
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    addr: SocketAddr,
}

impl MetricsEndpoint {
    /// Binds `addr` and installs the recorder.
    pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("METRICS_ADDR={addr}: {e}")))?;
        let addr = listener.local_addr()?;
        Ok(MetricsEndpoint {
            listener,
            handle: recorder()?,
            addr,
        })
    }

    /// `http://` and the bound address, with the path.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Serves `GET /metrics` until dropped (the task is aborted with it).
    pub(crate) fn spawn(self, levels: Levels) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let upkeep_handle = self.handle.clone();
            let upkeep = tokio::spawn(async move {
                let mut ticks = tokio::time::interval(UPKEEP);
                loop {
                    ticks.tick().await;
                    upkeep_handle.run_upkeep();
                }
            });
            let handle = self.handle;
            let service = tower::service_fn(move |req: Request<Incoming>| {
                let answer = scrape(&req, &handle, &levels);
                async move { Ok::<_, Infallible>(answer) }
            });
            ServeOptions::default()
                .serve_tcp(self.listener, service, std::future::pending())
                .await;
            upkeep.abort();
        })
    }
}

/// `GET /metrics`: the gauges sampled, then everything rendered.
fn scrape(req: &Request<Incoming>, handle: &PrometheusHandle, levels: &Levels) -> Response<String> {
    let answer = |status: StatusCode, body: String| {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response
    };
    if req.uri().path() != "/metrics" {
        return answer(
            StatusCode::NOT_FOUND,
            "not found: try /metrics\n".to_owned(),
        );
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics only\n".to_owned(),
        );
    }
    levels.sample();
    let mut response = answer(StatusCode::OK, handle.render());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
