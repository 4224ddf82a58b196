//! The operator's documentation says what the tests run: the proxy
//! configurations in `docs/deployment.md` are, word for word, the files
//! the interop tests start nginx, HAProxy and Caddy with, and the
//! control-plane contract in `docs/control-plane.openapi.json` is what
//! `examples/control_plane.rs` answers, request by request, checked
//! against the schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

const DEPLOYMENT: &str = include_str!("../docs/deployment.md");

#[test]
fn the_deployment_guide_quotes_the_configurations_the_tests_run() {
    for (name, text) in [
        (
            "examples/behind_proxy/nginx.conf",
            include_str!("../examples/behind_proxy/nginx.conf"),
        ),
        (
            "docs/proxies/haproxy.cfg",
            include_str!("../docs/proxies/haproxy.cfg"),
        ),
        (
            "docs/proxies/Caddyfile",
            include_str!("../docs/proxies/Caddyfile"),
        ),
    ] {
        assert!(
            DEPLOYMENT.contains(text.trim_end()),
            "docs/deployment.md does not quote {name} as the tests run it"
        );
        assert!(
            DEPLOYMENT.contains(name),
            "docs/deployment.md does not name {name}"
        );
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema the
/// contract uses), resolving `$ref` in `spec`.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let path = reference.trim_start_matches("#/");
        let target = path.split('/').fold(spec, |node, part| &node[part]);
        return check(spec, target, value, at);
    }
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(
        kinds.is_empty() || kinds.contains(&kind),
        "{at}: {value} is {kind}, the contract says {kinds:?}"
    );
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), value.as_i64()) {
        assert!(n >= min, "{at}: {n} < {min}");
    }
    if let (Some(min), Some(text)) = (schema["minLength"].as_u64(), value.as_str()) {
        assert!(text.len() as u64 >= min, "{at}: {text:?} too short");
    }
    if let Value::Object(object) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            assert!(
                object.contains_key(name),
                "{at}: {name} missing from {value}"
            );
        }
        for (name, member) in object {
            let member_schema = match schema["properties"].get(name) {
                Some(declared) => declared,
                None => {
                    let extra = &schema["additionalProperties"];
                    assert!(
                        extra.is_object(),
                        "{at}: {name} is not in the contract ({value})"
                    );
                    extra
                }
            };
            check(spec, member_schema, member, &format!("{at}.{name}"));
        }
    }
}

#[cfg(all(feature = "client-cert", feature = "tenant"))]
#[test]
fn the_control_plane_example_answers_the_openapi_contract() {
    use portcullis::identity::BearerDigest;
    use portcullis_test_support::{Example, TempDir, curl, interop_binary};

    if interop_binary("curl").is_none() {
        return;
    }
    let spec: Value =
        serde_json::from_str(include_str!("../docs/control-plane.openapi.json")).unwrap();
    let dir = TempDir::new("openapi");
    let token = "sk-openapi-acme-0123456789";
    let digest = BearerDigest::of_token(token).to_hex();
    let tenants = dir.write(
        "tenants.json",
        format!(
            r#"{{"keys": [
                {{"sha256": "{digest}", "tenant_id": "acme", "consumer": "billing", "rate_per_min": 600, "burst": 20}},
                {{"cn": "client.example.com", "tenant_id": "acme"}},
                {{"spiffe_id": "spiffe://example.org/worker", "tenant_id": "globex", "active": false}}
            ]}}"#
        ),
    );
    let provider_env = dir.write("env.json", r#"{"acme": {"REGION": "eu-west-1"}}"#);
    let example = Example::start(
        "control_plane",
        &[
            ("CONTROL_PLANE_INTERNAL_SECRET", "s3cret"),
            ("TENANTS_FILE", &tenants),
            ("PROVIDER_ENV_FILE", &provider_env),
        ],
        dir.join("control_plane.log"),
    );
    let base = format!("http://{}", example.addr());
    let exchanges = [
        (
            "/internal/keys/resolve",
            format!("sha256={digest}"),
            true,
            "200",
        ),
        (
            "/internal/keys/resolve",
            "cn=client.example.com".to_owned(),
            true,
            "200",
        ),
        (
            "/internal/keys/resolve",
            "spiffe_id=spiffe%3A%2F%2Fexample.org%2Fworker".to_owned(),
            true,
            "200",
        ),
        (
            "/internal/keys/resolve",
            format!("fingerprint_sha256={}", "ab".repeat(32)),
            true,
            "404",
        ),
        (
            "/internal/keys/resolve",
            format!("sha256={}", "0".repeat(64)),
            true,
            "404",
        ),
        (
            "/internal/keys/resolve",
            "colour=blue".to_owned(),
            true,
            "400",
        ),
        (
            "/internal/keys/resolve",
            format!("sha256={digest}"),
            false,
            "403",
        ),
        (
            "/internal/tenants/{tenant_id}/provider-env",
            "acme".to_owned(),
            true,
            "200",
        ),
        (
            "/internal/tenants/{tenant_id}/provider-env",
            "initech".to_owned(),
            true,
            "404",
        ),
        (
            "/internal/tenants/{tenant_id}/provider-env",
            "acme".to_owned(),
            false,
            "403",
        ),
    ];
    let mut seen_paths = std::collections::BTreeSet::new();
    for (path, argument, with_secret, expected) in exchanges {
        let url = if path.contains("{tenant_id}") {
            format!("{base}{}", path.replace("{tenant_id}", &argument))
        } else {
            format!("{base}{path}?{argument}")
        };
        let mut args = vec!["-D".to_owned(), "-".to_owned()];
        if with_secret {
            args.extend(["-H".to_owned(), "x-internal-secret: s3cret".to_owned()]);
        }
        args.push(url.clone());
        let out = curl(&args);
        assert_eq!(out.status, expected, "{url}: {out:?}");
        let (head, body) = out.body.split_once("\r\n\r\n").unwrap();
        let content_type = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let operation = &spec["paths"][path]["get"];
        assert!(operation.is_object(), "{path} is not in the contract");
        let response = &operation["responses"][expected];
        assert!(
            response.is_object(),
            "{url}: {expected} is not in the contract"
        );
        let media = content_type.split(';').next().unwrap().trim();
        let schema = &response["content"][media]["schema"];
        assert!(
            schema.is_object(),
            "{url}: {expected} as {media} is not in the contract"
        );
        if media == "application/json" {
            let value: Value = serde_json::from_str(body).unwrap();
            check(&spec, schema, &value, &url);
        }
        seen_paths.insert(path);
        // Every query parameter sent is declared.
        if !path.contains("{tenant_id}") {
            let name = argument.split('=').next().unwrap();
            let declared = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name);
            assert!(
                declared || expected == "400",
                "{name} is not in the contract"
            );
        }
    }
    let declared: std::collections::BTreeSet<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(seen_paths, declared);
}
