//! The spoof matrix: peer × spelling × number of lines × mode.

use http::StatusCode;
use portcullis_identity::{ClientIdentity, TrustedProxies};
use portcullis_test_support::pki;
use portcullis_xfcc::{CertFormat, Mode, XfccLayer};

use crate::support::{Observed, request, run};

const MODES: [Mode; 5] = [
    Mode::Sanitize,
    Mode::ForwardOnly,
    Mode::AppendForward,
    Mode::SanitizeSet,
    Mode::DangerousAlwaysForward,
];

const SPELLINGS: [&str; 4] = [
    "x-forwarded-client-cert",
    "x_forwarded_client_cert",
    "X-FORWARDED_CLIENT-CERT",
    "x.forwarded.client.cert",
];

#[tokio::test]
async fn no_cell_of_the_matrix_yields_a_forged_identity() {
    let forged_der = pki().client().der();
    let hash = ClientIdentity::from_der(forged_der)
        .unwrap()
        .fingerprint_sha256_hex();
    let element = format!(
        "Hash={hash};Cert=\"{}\"",
        CertFormat::Nginx.encode(&[forged_der])
    );
    let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
    let mut cells = 0;
    for mode in MODES {
        let layer = XfccLayer::new(proxies.clone()).mode(mode);
        for (peer_name, peer) in [
            ("trusted", Some("10.1.2.3:5")),
            ("untrusted", Some("198.51.100.7:5")),
            ("unknown", None),
        ] {
            for spelling in SPELLINGS {
                for lines in 1..=2 {
                    let headers: Vec<(&str, &str)> =
                        (0..lines).map(|_| (spelling, element.as_str())).collect();
                    let out = run(&layer, request(peer, &headers)).await;
                    cells += 1;
                    let cell = format!("{mode:?} {peer_name} {spelling} ×{lines}");
                    assert_eq!(out.status, StatusCode::OK, "{cell}: {}", out.body);

                    // Header names are case-insensitive: only the exact
                    // name, in any case, is the configured header.
                    let is_canonical_name =
                        spelling.eq_ignore_ascii_case("x-forwarded-client-cert");
                    let reads = matches!(mode, Mode::ForwardOnly | Mode::AppendForward);
                    let expect_identity = reads && peer_name == "trusted" && is_canonical_name;
                    assert_eq!(out.seen().identity.is_some(), expect_identity, "{cell}");

                    // What the app received under every spelling.
                    let received: Vec<String> = out
                        .seen()
                        .headers
                        .keys()
                        .map(|n| n.as_str().to_owned())
                        .collect();
                    let expect_kept = is_canonical_name
                        && (expect_identity || mode == Mode::DangerousAlwaysForward);
                    if expect_kept {
                        assert_eq!(received, ["x-forwarded-client-cert"], "{cell}");
                        assert_eq!(out.header("x-forwarded-client-cert").len(), lines, "{cell}");
                    } else {
                        assert!(received.is_empty(), "{cell}: {received:?}");
                    }
                }
            }
        }
    }
    assert_eq!(cells, 5 * 3 * 4 * 2);
}
