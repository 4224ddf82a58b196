//! Rate limits per route, as `examples/per_route.rs` serves them with
//! axum: a strict `login` policy on `/login` and a loose `api` policy on
//! every route, one store, keyed by the client address. The login limit
//! refuses the fourth attempt while `/data` still answers; the `api`
//! budget counts every request; another address has budgets of its own;
//! the handlers see every policy's budget through the extractor.
#![cfg(all(feature = "rate-limit", feature = "client-cert", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_test_support::{CurlOutput, Example, TempDir, curl, interop_binary};

fn request(example: &Example, method: &str, path: &str, from: &str) -> CurlOutput {
    curl(&[
        "--interface".to_owned(),
        from.to_owned(),
        "-X".to_owned(),
        method.to_owned(),
        "-D".to_owned(),
        "-".to_owned(),
        format!("http://{}{path}", example.addr()),
    ])
}

/// The value of `name` in a `-D -` dump of the response head.
fn header<'a>(out: &'a CurlOutput, name: &str) -> Option<&'a str> {
    out.body.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_login_limit_beside_a_loose_one_in_one_store() {
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("per-route");
    let example = Example::start(
        "per_route",
        &[("LOGIN_POLICY", "login:3/m"), ("API_POLICY", "api:100/m")],
        dir.join("per_route.log"),
    );
    tokio::task::spawn_blocking(move || {
        for attempt in 1..=3 {
            let out = request(&example, "POST", "/login", "127.0.0.1");
            assert_eq!(out.status, "200", "{out:?}");
            // The extractor's report: both policies, tightest first.
            assert!(
                out.body.contains(&format!(
                    "logged in; cost 1; login remaining={} of 3/60s;",
                    3 - attempt
                )),
                "{out:?}"
            );
        }
        let refused = request(&example, "POST", "/login", "127.0.0.1");
        assert_eq!(refused.status, "429", "{refused:?}");
        assert!(header(&refused, "retry-after").is_some(), "{refused:?}");
        assert!(
            header(&refused, "ratelimit").is_some_and(|v| v.starts_with("\"login\";r=0;")),
            "{refused:?}"
        );

        // Browsing spends only the api budget: four login attempts, the
        // refused one included, were counted there too.
        let out = request(&example, "GET", "/data", "127.0.0.1");
        assert_eq!(out.status, "200", "{out:?}");
        assert!(
            out.body
                .contains("data; cost 1; api remaining=95 of 100/60s;"),
            "{out:?}"
        );
        assert_eq!(header(&out, "ratelimit-policy"), Some("\"api\";q=100;w=60"));

        // Another address: budgets of its own.
        let out = request(&example, "POST", "/login", "127.0.0.2");
        assert_eq!(out.status, "200", "{out:?}");
        assert!(out.body.contains("login remaining=2 of 3/60s;"), "{out:?}");
    })
    .await
    .unwrap();
}

/// The whole stack from the environment (the `axum` example): every
/// policy of `RATE_LIMIT_POLICIES` applied and reported, and a client's
/// own cost header removed before the limiter could read it.
#[cfg(all(feature = "xfcc", feature = "tenant"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stacks_policies_from_the_environment_and_no_client_sets_its_cost() {
    if interop_binary("curl").is_none() {
        return;
    }
    let dir = TempDir::new("policies-env");
    let example = Example::start(
        "axum",
        &[
            ("RATE_LIMIT_POLICIES", "second:2/s:2,hour:100/h"),
            ("RATE_LIMIT_COST_HEADER", "x-request-cost"),
            ("RATE_LIMIT_KEY", "ip"),
        ],
        dir.join("axum.log"),
    );
    tokio::task::spawn_blocking(move || {
        let free = |from: &str| {
            curl(&[
                "--interface".to_owned(),
                from.to_owned(),
                "-H".to_owned(),
                "x-request-cost: 0".to_owned(),
                "-D".to_owned(),
                "-".to_owned(),
                format!("http://{}/whoami", example.addr()),
            ])
        };
        let first = free("127.0.0.1");
        assert_eq!(first.status, "200", "{first:?}");
        assert_eq!(
            header(&first, "ratelimit-policy"),
            Some("\"second\";q=2;w=1, \"hour\";q=100;w=3600")
        );
        // Charged 1 each although the client said 0: the header was
        // removed by the stack before the limiter.
        assert!(
            header(&first, "ratelimit").is_some_and(|v| v.starts_with("\"second\";r=1;")),
            "{first:?}"
        );
        let second = free("127.0.0.1");
        assert_eq!(second.status, "200", "{second:?}");
        let third = free("127.0.0.1");
        assert_eq!(third.status, "429", "{third:?}");
        assert_eq!(free("127.0.0.2").status, "200");
    })
    .await
    .unwrap();
}
