//! The cross-layer attack matrix: every forgeable input, in every spelling,
//! on one line and on two, from an untrusted and from a trusted peer, sent
//! as raw HTTP/1.1 over real sockets to the whole stack `from_env` builds.
//! Each cell asserts what the application received; the test prints the
//! matrix size and how many forgeries got through (must be 0).
#![cfg(all(
    feature = "client-cert",
    feature = "xfcc",
    feature = "tenant",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis::identity::env::Env;
use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use portcullis::identity::{
    BearerDigest, ClientIdentity, ClientIp, ClientIpLayer, PeerAddr, Tenant,
};
use portcullis_test_support::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tower::{ServiceBuilder, ServiceExt};

const TOKEN: &str = "sk-matrix-acme-0123456789";
/// The trusted proxy's address: a second loopback address.
const TRUSTED: &str = "127.0.0.2";
const UNTRUSTED: &str = "127.0.0.1";

/// What the application saw: every header line, the identity's CN, the
/// tenant and the client address, one per line.
async fn app(req: Request<hyper::body::Incoming>) -> Result<Response<String>, Infallible> {
    let mut seen = String::new();
    for (name, value) in req.headers() {
        seen.push_str(&format!(
            "header {}: {}\n",
            name,
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let ext = req.extensions();
    seen.push_str(&format!(
        "cn {}\ntenant {}\nclient_ip {}\n",
        ext.get::<ClientIdentity>()
            .and_then(ClientIdentity::common_name)
            .unwrap_or("-"),
        ext.get::<Tenant>().map_or("-", Tenant::id),
        ext.get::<ClientIp>()
            .map_or("-".to_owned(), |ip| ip.0.to_string()),
    ));
    Ok(Response::new(seen))
}

async fn serve_stack(dir: &TempDir) -> SocketAddr {
    let digest = BearerDigest::from_headers(&{
        let mut h = http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        h
    })
    .unwrap()
    .unwrap();
    let tenants = dir.write(
        "tenants.json",
        format!(
            r#"{{"keys": [{{"sha256": "{}", "tenant_id": "acme", "consumer": "billing", "active": true}}]}}"#,
            digest.to_hex()
        ),
    );
    let vars = [
        ("TRUSTED_PROXY_CIDRS", format!("{TRUSTED}/32")),
        ("TENANTS_FILE", tenants),
        ("RATE_LIMIT_PER_MIN", "1000000".to_owned()),
        ("RATE_LIMIT_KEY", "bearer".to_owned()),
    ];
    let stack = portcullis::from_env(&Env::from_fn(|var| {
        vars.iter().find(|(k, _)| *k == var).map(|(_, v)| v.clone())
    }))
    .await
    .unwrap();
    let service = ServiceBuilder::new()
        .layer(stack.layer())
        .layer(ClientIpLayer::new(stack.trusted_proxies().clone()))
        .service_fn(app);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            let hyper_service = hyper::service::service_fn(move |mut req| {
                req.extensions_mut().insert(PeerAddr(peer));
                service.clone().oneshot(req)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_service),
            );
        }
    });
    addr
}

/// One raw HTTP/1.1 request from `from`; the status and the body.
async fn raw(addr: SocketAddr, from: &str, header_lines: &[String]) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut request = format!(
        "GET / HTTP/1.1\r\nhost: app\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n"
    );
    for line in header_lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A forgeable input: its canonical header name, the forged value, and
/// whether a trusted proxy may legitimately set it.
struct Input {
    name: &'static str,
    value: String,
    trusted_may_set: bool,
}

fn inputs() -> Vec<Input> {
    let mut inputs = vec![
        Input {
            name: "x-forwarded-client-cert",
            value: format!("Hash={};Subject=\"CN=FORGED\"", "ab".repeat(32)),
            trusted_may_set: true,
        },
        Input {
            name: "x-forwarded-for",
            value: "198.51.100.66".to_owned(),
            trusted_may_set: true,
        },
    ];
    for name in [
        "x-llm-router-tenant",
        "x-llm-router-caller",
        "x-internal-secret",
    ] {
        inputs.push(Input {
            name,
            value: "FORGED".to_owned(),
            trusted_may_set: false,
        });
    }
    // Other formats' and other proxies' certificate headers.
    let others = portcullis::xfcc::CertFormat::ALL
        .iter()
        .flat_map(|f| {
            std::iter::once(f.default_header()).chain(f.companion_headers().iter().copied())
        })
        .chain(portcullis::xfcc::KNOWN_CERT_HEADERS.iter().copied())
        .filter(|name| *name != "x-forwarded-client-cert");
    for name in others {
        inputs.push(Input {
            name,
            value: "FORGED".to_owned(),
            trusted_may_set: false,
        });
    }
    // Side headers (verify status, DNs, fingerprint): the trusted proxy's
    // own statements pass; anyone else's are removed.
    for name in portcullis::xfcc::CERT_SIDE_HEADERS {
        inputs.push(Input {
            name,
            value: "FORGED".to_owned(),
            trusted_may_set: true,
        });
    }
    inputs
}

/// The spellings a client might try for one header.
fn spellings(name: &str) -> Vec<String> {
    let title: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-");
    vec![
        name.to_owned(),
        name.to_ascii_uppercase(),
        title,
        name.replace('-', "_"),
        name.replace('-', "."),
    ]
}

#[tokio::test]
async fn no_forgery_reaches_the_application() {
    let dir = TempDir::new("matrix");
    let addr = serve_stack(&dir).await;
    let mut cells = 0;
    let mut through = Vec::new();
    for (peer, trusted) in [(UNTRUSTED, false), (TRUSTED, true)] {
        for input in inputs() {
            for spelling in spellings(input.name) {
                for lines in [1, 2] {
                    for nominate in [false, true] {
                        cells += 1;
                        let mut headers: Vec<String> = (0..lines)
                            .map(|_| format!("{spelling}: {}", input.value))
                            .collect();
                        if nominate {
                            headers.push(format!("x-extra: 1\r\nconnection: {spelling}"));
                        }
                        let (status, seen) = raw(addr, peer, &headers).await;
                        // The one legitimate path: the header itself (any
                        // case, not another spelling) from the trusted
                        // proxy. (Nominated by its Connection header, the
                        // certificate is refused with 400; the address is
                        // still the proxy's own statement.)
                        let honoured = trusted
                            && input.trusted_may_set
                            && spelling.eq_ignore_ascii_case(input.name);
                        // A forged certificate, tenant, caller or secret
                        // anywhere the application looks, or the forged
                        // address as the client's. (X-Forwarded-For itself
                        // is not removed: no layer reads it raw.)
                        let leaked = seen.contains("FORGED")
                            || seen.contains("client_ip 198.51.100.66")
                            || (status == 200 && !seen.contains("tenant acme\n"));
                        let cell = format!(
                            "{} peer, {spelling} x{lines}{}: {status}",
                            if trusted { "trusted" } else { "untrusted" },
                            if nominate { " +Connection" } else { "" }
                        );
                        if honoured {
                            let expected = if nominate && input.name != "x-forwarded-for" {
                                400
                            } else {
                                200
                            };
                            if status != expected {
                                through.push(format!(
                                    "{cell}: expected {expected} from the trusted proxy"
                                ));
                            }
                            continue;
                        }
                        if leaked {
                            through.push(format!("{cell}\n{seen}"));
                        }
                        if status != 200 && status != 400 {
                            through.push(format!("{cell}: unexpected status"));
                        }
                    }
                }
            }
        }
    }
    println!(
        "attack matrix: {cells} cells, {} got through",
        through.len()
    );
    assert!(through.is_empty(), "{}", through.join("\n---\n"));
}
