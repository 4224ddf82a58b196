//! The smuggling matrix: spellings × line counts × authenticated or not ×
//! Connection nomination. Nothing a client sends reaches the app as a
//! protected header.

use http::StatusCode;
use portcullis_tenant::TenantLayer;

use crate::support::{Observed, request, run, store};

const PROTECTED: [&str; 3] = [
    "x-llm-router-tenant",
    "x-llm-router-caller",
    "x-internal-secret",
];

fn spellings(name: &str) -> Vec<String> {
    vec![
        name.to_owned(),
        name.to_uppercase(),
        name.replace('-', "_"),
        name.replace('-', "."),
        name.replace('-', ""),
        format!("{}-", name.replace('-', "_")),
    ]
}

#[tokio::test]
async fn nothing_a_client_sends_reaches_the_app_as_a_protected_header() {
    let layer = TenantLayer::new(store());
    let mut cells = 0;
    for protected in PROTECTED {
        for spelling in spellings(protected) {
            for lines in 1..=3 {
                for authenticated in [true, false] {
                    for nominate in [false, true] {
                        cells += 1;
                        let cell = format!(
                            "{spelling} ×{lines} auth={authenticated} connection={nominate}"
                        );
                        let mut headers: Vec<(&str, &str)> =
                            (0..lines).map(|_| (spelling.as_str(), "forged")).collect();
                        if authenticated {
                            headers.push(("authorization", "Bearer sk-acme"));
                        }
                        let connection = format!("keep-alive, {spelling}");
                        if nominate {
                            headers.push(("connection", connection.as_str()));
                        }
                        let out = run(&layer, request(&headers)).await;
                        match (nominate, authenticated) {
                            (true, _) => {
                                assert_eq!(out.status, StatusCode::BAD_REQUEST, "{cell}");
                                assert!(out.body.contains("Connection header nominates"), "{cell}");
                                assert!(out.seen.is_none(), "{cell}");
                            }
                            (false, false) => {
                                assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{cell}");
                                assert!(out.seen.is_none(), "{cell}");
                            }
                            (false, true) => {
                                assert_eq!(out.status, StatusCode::OK, "{cell}: {}", out.body);
                                let seen = out.seen();
                                for (name, value) in &seen.headers {
                                    assert_ne!(value, "forged", "{cell}: {name} reached the app");
                                }
                                assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"], "{cell}");
                                assert_eq!(
                                    out.stamped("x-llm-router-caller"),
                                    ["billing"],
                                    "{cell}"
                                );
                                assert!(out.stamped("x-internal-secret").is_empty(), "{cell}");
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cells, 3 * 6 * 3 * 2 * 2);
}
