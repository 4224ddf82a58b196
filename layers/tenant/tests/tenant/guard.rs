//! The internal-route guard, on every guarded route, both configurations.

use portcullis_identity::env::{Env, EnvError};
use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use portcullis_tenant::InternalGuardLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const ROUTES: [&str; 3] = [
    "/internal/usage",
    "/internal/keys/resolve",
    "/internal/tenants/acme/provider-env",
];

async fn call(
    guard: &InternalGuardLayer,
    path: &str,
    secrets: &[&str],
) -> (StatusCode, Option<bool>) {
    let mut service = ServiceBuilder::new()
        .layer(guard.clone())
        .service(service_fn(|req: Request<()>| async move {
            // Whether the secret was passed on to the route.
            let leaked = req.headers().contains_key("x-internal-secret");
            Ok::<_, Infallible>(Response::new(leaked.to_string()))
        }));
    let mut builder = Request::get(path);
    for secret in secrets {
        builder = builder.header("x-internal-secret", *secret);
    }
    let res = service
        .ready()
        .await
        .unwrap()
        .call(builder.body(()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let leaked = (status == StatusCode::OK).then(|| body.as_ref() == b"true");
    (status, leaked)
}

fn guard_from_env(secret: &str) -> Result<InternalGuardLayer, EnvError> {
    InternalGuardLayer::from_env(&Env::from_pairs([(
        "CONTROL_PLANE_INTERNAL_SECRET",
        secret,
    )]))
}

#[tokio::test]
async fn hidden_without_a_secret_forbidden_with_a_wrong_one() {
    let hidden = InternalGuardLayer::from_env(&Env::from_pairs([("LISTEN_ADDR", "")])).unwrap();
    let guarded = guard_from_env("s3cret").unwrap();
    for route in ROUTES {
        assert_eq!(
            call(&hidden, route, &[]).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        assert_eq!(
            call(&hidden, route, &["s3cret"]).await.0,
            StatusCode::NOT_FOUND,
            "{route}"
        );
        assert_eq!(
            call(&guarded, route, &[]).await.0,
            StatusCode::FORBIDDEN,
            "{route}"
        );
        assert_eq!(
            call(&guarded, route, &["s3cre"]).await.0,
            StatusCode::FORBIDDEN,
            "{route}"
        );
        assert_eq!(
            call(&guarded, route, &["s3cret!"]).await.0,
            StatusCode::FORBIDDEN,
            "{route}"
        );
        assert_eq!(
            call(&guarded, route, &["s3cret", "s3cret"]).await.0,
            StatusCode::FORBIDDEN,
            "{route}"
        );
        // Right: through, and the secret does not travel on.
        assert_eq!(
            call(&guarded, route, &["s3cret"]).await,
            (StatusCode::OK, Some(false)),
            "{route}"
        );
    }
}

#[tokio::test]
async fn a_secret_from_a_file_is_trimmed_as_the_control_plane_trims_it() {
    // A Kubernetes secret made from a file ends in a newline.
    let guarded = guard_from_env("s3cret\n").unwrap();
    assert_eq!(
        call(&guarded, "/internal/usage", &["s3cret"]).await,
        (StatusCode::OK, Some(false))
    );
    assert_eq!(
        call(&guarded, "/internal/usage", &["s3cre"]).await.0,
        StatusCode::FORBIDDEN
    );
    // Only white space is no secret: refused at start-up, as the control
    // plane's reader refuses it; built in code, the routes stay hidden.
    let error = guard_from_env(" \n").unwrap_err();
    assert_eq!(
        error.vars().collect::<Vec<_>>(),
        ["CONTROL_PLANE_INTERNAL_SECRET"]
    );
    let blank = InternalGuardLayer::new(Some(" \n"));
    assert_eq!(
        call(&blank, "/internal/usage", &[" "]).await.0,
        StatusCode::NOT_FOUND
    );
}
