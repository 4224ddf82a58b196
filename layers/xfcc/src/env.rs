//! The forwarded-certificate layer from the environment:
//! `FORWARDED_CERT_FORMAT`, `FORWARDED_CERT_HEADER` and
//! `TRUSTED_PROXY_IDENTITIES`. The proxies themselves
//! (`TRUSTED_PROXY_CIDRS`, `CLIENT_IP_HEADER`) are read once, by
//! [`TrustedProxies::from_env`], and handed in.

use portcullis_identity::TrustedProxies;
use portcullis_identity::env::{Env, EnvError, EnvProblem, Invalid, Problems};

use crate::layer::ProxyPrincipals;
use crate::{CertFormat, ForwardingProxy, XfccLayer};

impl XfccLayer {
    /// The layer the environment describes, for `proxies` (see
    /// [`TrustedProxies::from_env`]): `FORWARDED_CERT_FORMAT` (`envoy` by
    /// default), `FORWARDED_CERT_HEADER` (the format's default header) and
    /// `TRUSTED_PROXY_IDENTITIES` (the proxies' own certificate SPIFFE IDs
    /// or CNs: when set, a peer in the trusted networks counts only if its
    /// own TLS client certificate names one).
    ///
    /// ```
    /// use portcullis_identity::TrustedProxies;
    /// use portcullis_identity::env::Env;
    /// use portcullis_xfcc::XfccLayer;
    ///
    /// let env = Env::from_pairs([
    ///     ("TRUSTED_PROXY_CIDRS", "10.0.0.0/8, 192.168.1.10"),
    ///     ("FORWARDED_CERT_FORMAT", "nginx"),
    ///     ("FORWARDED_CERT_HEADER", "X-Client-Cert"),
    /// ]);
    /// let proxies = TrustedProxies::from_env(&env)?;
    /// let layer = XfccLayer::from_env(&env, &proxies)?;
    ///
    /// let bad = Env::from_pairs([("FORWARDED_CERT_FORMAT", "haproxy")]);
    /// let err = XfccLayer::from_env(&bad, &proxies).unwrap_err();
    /// assert!(err.to_string().starts_with("FORWARDED_CERT_FORMAT=\"haproxy\": unknown"));
    /// # Ok::<(), portcullis_identity::env::EnvError>(())
    /// ```
    pub fn from_env(env: &Env<'_>, proxies: &TrustedProxies) -> Result<Self, EnvError> {
        let mut problems = Problems::new();
        let format = env.parse("FORWARDED_CERT_FORMAT", &mut problems, |text| {
            text.parse::<CertFormat>().map_err(|_| {
                let names: Vec<&str> = CertFormat::ALL.iter().map(|f| f.name()).collect();
                Invalid::new(
                    format!("unknown forwarded-certificate format {text:?}"),
                    format!("expected one of {}", names.join(", ")),
                )
            })
        });
        let identities = env.parse("TRUSTED_PROXY_IDENTITIES", &mut problems, |list| {
            let principals = ProxyPrincipals::parse(list.split(','))
                .map_err(|e| Invalid::new(e, "write SPIFFE IDs or CNs, comma-separated"))?;
            if principals.is_empty() {
                return Err(Invalid::new(
                    "names no proxy",
                    "name at least one proxy SPIFFE ID or CN, comma-separated",
                ));
            }
            Ok(principals)
        });
        if identities.is_some() && proxies.is_empty() {
            problems.push(EnvProblem::missing_partner(
                "TRUSTED_PROXY_IDENTITIES",
                "TRUSTED_PROXY_CIDRS",
                "a proxy is trusted by its address and its certificate together; set \
                 TRUSTED_PROXY_CIDRS too",
            ));
        }
        let header = env.header_name(
            "FORWARDED_CERT_HEADER",
            &mut problems,
            "x-forwarded-client-cert",
        );
        problems.finish(|| {
            let mut upstream =
                ForwardingProxy::new(proxies.clone(), format.unwrap_or(CertFormat::Envoy));
            if let Some(identities) = identities {
                upstream.identities = identities;
            }
            if let Some(header) = header {
                upstream = upstream.header(header);
            }
            XfccLayer::forwarding(upstream)
        })
    }
}
