//! TenantLayer's rules.

use http::StatusCode;
use portcullis_identity::{ClientIdentity, TenantStatus};
use portcullis_tenant::{
    AuthPolicy, CertificatePrincipal, Chain, TenantLayer, TenantRejectionKind,
};
use portcullis_test_support::pki;

use crate::support::{Observed, request, run, store};

fn with_cert(mut req: http::Request<()>, der: &[u8]) -> http::Request<()> {
    req.extensions_mut()
        .insert(ClientIdentity::from_der(der).unwrap());
    req
}

#[tokio::test]
async fn an_active_key_is_stamped_after_resolution() {
    let layer = TenantLayer::new(store());
    let out = run(&layer, request(&[("authorization", "Bearer sk-acme")])).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"]);
    assert_eq!(out.stamped("x-llm-router-caller"), ["billing"]);
    let tenant = out.seen().tenant.clone().unwrap();
    assert_eq!(
        (tenant.id(), tenant.status()),
        ("acme", TenantStatus::Active)
    );
}

#[tokio::test]
async fn unknown_inactive_missing_and_malformed_each_get_their_answer() {
    let layer = TenantLayer::new(store());
    for (headers, status, kind, body) in [
        (
            vec![("authorization", "Bearer sk-nobody")],
            StatusCode::UNAUTHORIZED,
            TenantRejectionKind::Unauthenticated,
            "unknown API key\n",
        ),
        (
            vec![("authorization", "Bearer sk-off")],
            StatusCode::FORBIDDEN,
            TenantRejectionKind::Forbidden,
            "the tenant is inactive\n",
        ),
        (
            vec![],
            StatusCode::UNAUTHORIZED,
            TenantRejectionKind::Unauthenticated,
            "a bearer API key is required\n",
        ),
        (
            vec![("authorization", "Basic dXNlcg==")],
            StatusCode::UNAUTHORIZED,
            TenantRejectionKind::Unauthenticated,
            "a bearer API key is required\n",
        ),
        (
            vec![("authorization", "Bearer sk acme")],
            StatusCode::BAD_REQUEST,
            TenantRejectionKind::BadRequest,
            "",
        ),
        (
            vec![("authorization", "Bearer ")],
            StatusCode::BAD_REQUEST,
            TenantRejectionKind::BadRequest,
            "",
        ),
        (
            vec![
                ("authorization", "Bearer sk-acme"),
                ("authorization", "Bearer sk-acme"),
            ],
            StatusCode::BAD_REQUEST,
            TenantRejectionKind::BadRequest,
            "",
        ),
    ] {
        let out = run(&layer, request(&headers)).await;
        assert_eq!(out.status, status, "{headers:?}: {}", out.body);
        assert_eq!(
            out.rejection::<portcullis_tenant::TenantRejection>()
                .unwrap()
                .kind(),
            kind
        );
        assert!(out.seen.is_none(), "the app ran for {headers:?}");
        if !body.is_empty() {
            assert_eq!(out.body, body);
        }
        // Never the key, in any answer.
        assert!(!out.body.contains("sk-"), "{}", out.body);
    }
    let out = run(&layer, request(&[("authorization", "Bearer sk-nobody")])).await;
    assert_eq!(out.headers["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn the_certificate_policies() {
    let client = pki().client().der();
    let spiffe = pki().client_spiffe().der();
    // Bearer (default): a certificate alone is not enough.
    let out = run(&TenantLayer::new(store()), with_cert(request(&[]), client)).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    // Cert alone.
    let cert = TenantLayer::new(store()).policy(AuthPolicy::Cert);
    let out = run(&cert, with_cert(request(&[]), client)).await;
    assert_eq!(out.stamped("x-llm-router-caller"), ["cert-client"]);
    let out = run(&cert, request(&[("authorization", "Bearer sk-acme")])).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    // The SPIFFE ID is the principal when there is one.
    let out = run(&cert, with_cert(request(&[]), spiffe)).await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["globex"]);
    let by_cn = cert
        .clone()
        .certificate_principal(CertificatePrincipal::CommonName);
    let out = run(&by_cn, with_cert(request(&[]), spiffe)).await;
    assert_eq!(
        out.status,
        StatusCode::UNAUTHORIZED,
        "workload.example.com is not in the store"
    );
    // Both must agree.
    let both = TenantLayer::new(store()).policy(AuthPolicy::BearerAndCert);
    let out = run(
        &both,
        with_cert(request(&[("authorization", "Bearer sk-acme")]), client),
    )
    .await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"]);
    let out = run(
        &both,
        with_cert(request(&[("authorization", "Bearer sk-acme")]), spiffe),
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(
        out.body,
        "the client certificate and the API key belong to different tenants\n"
    );
    let out = run(&both, request(&[("authorization", "Bearer sk-acme")])).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    // Either: the bearer first.
    let either = TenantLayer::new(store()).policy(AuthPolicy::BearerOrCert);
    let out = run(&either, with_cert(request(&[]), client)).await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"]);
    let out = run(
        &either,
        with_cert(request(&[("authorization", "Bearer sk-acme")]), spiffe),
    )
    .await;
    assert_eq!(out.stamped("x-llm-router-tenant"), ["acme"]);
    assert_eq!(
        "bearer-or-cert".parse::<AuthPolicy>(),
        Ok(AuthPolicy::BearerOrCert)
    );
    assert!(
        "mtls"
            .parse::<AuthPolicy>()
            .unwrap_err()
            .to_string()
            .starts_with("\"mtls\" is not an authentication policy")
    );
}

#[tokio::test]
async fn the_kill_switch_blocks_a_tenant_the_remote_calls_active() {
    let local = store();
    let remote = portcullis_tenant::MemoryStore::new();
    remote.insert(
        crate::support::bearer("sk-remote"),
        portcullis_identity::Tenant::new("acme", TenantStatus::Active),
    );
    let chain = Chain::new([local.clone()]).with_remote(remote);
    let layer = TenantLayer::new(chain);
    let out = run(&layer, request(&[("authorization", "Bearer sk-remote")])).await;
    assert_eq!(out.status, StatusCode::OK);
    local.set_tenant_status("acme", TenantStatus::Inactive);
    let out = run(&layer, request(&[("authorization", "Bearer sk-remote")])).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    // The local key of the switched-off tenant too.
    let out = run(&layer, request(&[("authorization", "Bearer sk-acme")])).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn custom_stamp_headers_are_protected_too() {
    let layer = TenantLayer::new(store())
        .tenant_header(http::HeaderName::from_static("x-tenant-id"))
        .caller_header(http::HeaderName::from_static("x-caller"));
    let out = run(
        &layer,
        request(&[
            ("authorization", "Bearer sk-acme"),
            ("X_Tenant_Id", "forged"),
            ("x-caller", "forged"),
        ]),
    )
    .await;
    assert_eq!(out.stamped("x-tenant-id"), ["acme"]);
    assert_eq!(out.stamped("x-caller"), ["billing"]);
    assert!(out.stamped("x_tenant_id").is_empty());
}

#[tokio::test]
async fn strip_only_removes_forgeries_and_stamps_nothing() {
    let layer = TenantLayer::strip_only();
    let out = run(
        &layer,
        request(&[
            ("authorization", "Bearer sk-acme"),
            ("x-llm-router-tenant", "forged"),
            ("X_LLM_Router_Caller", "forged"),
            ("x-internal-secret", "guess"),
        ]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "no credential is demanded");
    assert!(out.stamped("x-llm-router-tenant").is_empty());
    assert!(out.stamped("x_llm_router_caller").is_empty());
    assert!(out.stamped("x-internal-secret").is_empty());
    assert!(out.seen().tenant.is_none());
    // A Connection header nominating a protected header is still refused.
    let out = run(&layer, request(&[("connection", "x-llm-router-tenant")])).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST);
}
