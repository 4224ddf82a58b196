//! Helpers for the benches: paired rounds against a baseline, keep-alive
//! load, loopback servers.

/// Compares a baseline and a candidate in alternating rounds, so the
/// machine's drift (±10% from one run to the next on shared machines)
/// falls on both sides alike, and prints the ratio of totals and the
/// median round ratio (> 1: the candidate is faster).
///
/// `run(side, n)` performs `n` operations against `side` (`false`: the
/// baseline) and returns how long they took. A quarter round of each warms
/// up first.
pub fn paired_rounds(
    name: &str,
    rounds: usize,
    per_round: u64,
    mut run: impl FnMut(bool, u64) -> std::time::Duration,
) -> f64 {
    run(false, per_round / 4);
    run(true, per_round / 4);
    let (mut base_total, mut cand_total) = (0.0, 0.0);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (b, c) = if round % 2 == 0 {
            let b = run(false, per_round);
            (b, run(true, per_round))
        } else {
            let c = run(true, per_round);
            (run(false, per_round), c)
        };
        base_total += b.as_secs_f64();
        cand_total += c.as_secs_f64();
        ratios.push(b.as_secs_f64() / c.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let ops = per_round as f64 * rounds as f64;
    let ratio = base_total / cand_total;
    println!(
        "{name}: baseline {:.0}/s, candidate {:.0}/s; ratio of totals {ratio:.3}, median round {:.3} (min {:.3}, max {:.3})",
        ops / base_total,
        ops / cand_total,
        ratios[rounds / 2],
        ratios[0],
        ratios[rounds - 1]
    );
    ratio
}

/// The middle value of `values` (the upper of the two middle ones when
/// their number is even).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The name filter a bench was given (`cargo bench --bench X -- <filter>`):
/// its first argument that is not a flag.
pub fn bench_filter() -> Option<String> {
    std::env::args().skip(1).find(|a| !a.starts_with('-'))
}

/// Sends `n` requests made by `request` on one keep-alive HTTP/1.1
/// connection to `addr`, each answered `2xx` and read whole, and returns
/// how long they took (the connection set-up excluded). For benches.
pub async fn keep_alive_requests(
    addr: std::net::SocketAddr,
    n: u64,
    request: impl Fn() -> http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> std::time::Duration {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap_or_else(|e| panic!("handshake: {e}"));
    tokio::spawn(conn);
    let start = std::time::Instant::now();
    for _ in 0..n {
        sender
            .ready()
            .await
            .unwrap_or_else(|e| panic!("connection: {e}"));
        let res = sender
            .send_request(request())
            .await
            .unwrap_or_else(|e| panic!("request: {e}"));
        assert!(res.status().is_success(), "{}", res.status());
        let body = res
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"));
        std::hint::black_box(body);
    }
    start.elapsed()
}

/// A service as [`serve_loopback`] serves it: any body, boxed, so a layered
/// and a bare variant of one app differ only by the layer.
pub type BenchService = tower::util::BoxCloneService<
    http::Request<hyper::body::Incoming>,
    http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>>,
    std::convert::Infallible,
>;

/// Boxes `service`'s response body for [`serve_loopback`].
pub fn bench_service<S, B>(service: S) -> BenchService
where
    S: tower_service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes, Error = std::convert::Infallible>
        + Send
        + Sync
        + 'static,
{
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    BenchService::new(service.map_response(|res: http::Response<B>| res.map(|b| b.boxed())))
}

/// Serves `service` over HTTP/1.1 and h2 on a loopback port (nodelay), on
/// the current runtime; returns the address. For benches.
pub async fn serve_loopback(service: BenchService) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    addr
}

/// Runs `setup` on a single-threaded runtime in a thread of its own, hands
/// back what it returns, and keeps that runtime (and the servers `setup`
/// spawned on it) running for the life of the process. For benches, so a
/// server and its client do not share, or steal, one runtime's workers.
pub fn on_own_thread<T, F>(setup: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(async move {
            let _ = tx.send(setup().await);
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .unwrap_or_else(|e| panic!("the server thread ended before its set-up: {e}"))
}
