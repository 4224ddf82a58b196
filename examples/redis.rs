//! Two instances of a service sharing one rate limit through Redis.
//!
//! Both build the whole stack from the same environment (`REDIS_URL`, a
//! default quota of 5 a minute keyed by the caller's address: with no
//! tenants configured no bearer is authenticated, so none names a bucket) and
//! serve on loopback; requests alternate between them, and the sixth is
//! refused by whichever instance receives it: the bucket lives in Redis,
//! not in either process.
//!
//! ```text
//! redis-server --port 6379 &
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis --features redis
//! ```

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::process::ExitCode;

use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tower::ServiceBuilder;

async fn instance(name: &'static str, redis_url: String) -> Result<std::net::SocketAddr, String> {
    let vars = [
        ("REDIS_URL", redis_url),
        ("RATE_LIMIT_PER_MIN", "5".to_owned()),
        ("RATE_LIMIT_KEY", "ip".to_owned()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
    ];
    let stack = portcullis::from_env(&Env::from_fn(|var| {
        vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone())
    }))
    .await
    .map_err(|e| e.to_string())?;
    let app = ServiceBuilder::new().layer(stack.layer()).service_fn(
        move |_req: Request<hyper::body::Incoming>| async move {
            Ok::<_, Infallible>(Response::new(format!("served by {name}")))
        },
    );
    let listener = tokio::net::TcpListener::bind(stack.listen_addr())
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Each request carries its TCP peer (PeerAddr), which the ip key reads.
    tokio::spawn(
        stack
            .serve_options()
            .serve_tcp(listener, app, std::future::pending()),
    );
    Ok(addr)
}

async fn get(addr: std::net::SocketAddr) -> Result<(u16, String, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "example")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let limit = res
        .headers()
        .get("ratelimit")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        limit,
        String::from_utf8_lossy(&body.to_bytes()).trim().to_owned(),
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let run = async {
        let a = instance("instance A", redis_url.clone()).await?;
        let b = instance("instance B", redis_url).await?;
        let mut refused = 0;
        for n in 0..6 {
            let (status, limit, body) = get(if n % 2 == 0 { a } else { b }).await?;
            println!("request {}: {status} {body:?} ratelimit={limit:?}", n + 1);
            refused += usize::from(status == 429);
        }
        Ok::<_, String>(refused)
    };
    match run.await {
        Ok(1) => {
            println!("five requests across two instances, then one refused: the quota is shared");
            ExitCode::SUCCESS
        }
        Ok(refused) => {
            eprintln!("expected exactly one refusal, got {refused} (was the bucket already used?)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
