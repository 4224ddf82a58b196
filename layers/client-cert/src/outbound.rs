//! Trust for the service's own outbound HTTPS (a control plane, say).
//!
//! Policy: `<PREFIX>_CA_CERTIFICATE` (the prefix defaults to `PORTCULLIS`),
//! else `SSL_CERT_FILE`, names an extra CA bundle, which is **added to** the
//! platform's roots, never replacing them; with neither, the platform's
//! roots alone. Host name verification always stays on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;

use crate::ConfigError;
use portcullis_identity::pem::parse_bundle;

/// The prefix [`OutboundTrust::from_env`] uses.
pub const DEFAULT_PREFIX: &str = "PORTCULLIS";

/// Where distributions keep their bundle (the list Go's `crypto/x509` uses),
/// read when `SSL_CERT_FILE` names our extra bundle instead of the store.
const PLATFORM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Root certificates for outbound TLS, and where they came from.
///
/// # Example
///
/// ```no_run
/// use portcullis_client_cert::OutboundTrust;
///
/// // PORTCULLIS_CA_CERTIFICATE=/etc/company/ca.pem, or SSL_CERT_FILE=...
/// let trust = OutboundTrust::from_env()?;
/// let config = trust.client_config()?;
/// # Ok::<(), portcullis_client_cert::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OutboundTrust {
    roots: Arc<RootCertStore>,
    extra: Option<(String, PathBuf)>,
    platform_count: usize,
    extra_count: usize,
}

impl OutboundTrust {
    /// Reads `PORTCULLIS_CA_CERTIFICATE` and `SSL_CERT_FILE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(DEFAULT_PREFIX, |var| std::env::var(var).ok())
    }

    /// Reads `<prefix>_CA_CERTIFICATE` and `SSL_CERT_FILE` through `lookup`.
    pub fn from_env_with(
        prefix: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let prefixed = format!("{prefix}_CA_CERTIFICATE");
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let ssl_cert_file = get("SSL_CERT_FILE");
        let extra = get(&prefixed)
            .map(|path| (prefixed.clone(), path))
            .or_else(|| {
                ssl_cert_file
                    .clone()
                    .map(|path| ("SSL_CERT_FILE".to_owned(), path))
            });
        let platform = platform_roots(ssl_cert_file.is_some() || get("SSL_CERT_DIR").is_some());
        Self::assemble(
            platform,
            extra.map(|(var, path)| (var, PathBuf::from(path))),
        )
    }

    /// The platform's roots plus the bundle at `path`.
    pub fn with_extra_bundle(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        Self::assemble(
            platform_roots(false),
            Some((path.display().to_string(), path.to_owned())),
        )
    }

    fn assemble(
        platform: Vec<rustls_pki_types::CertificateDer<'static>>,
        extra: Option<(String, PathBuf)>,
    ) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        let (platform_count, _) = roots.add_parsable_certificates(platform);
        let mut extra_count = 0;
        if let Some((var, path)) = &extra {
            let origin = format!("{var} ({})", path.display());
            let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
                origin: origin.clone(),
                path: path.clone(),
                source,
            })?;
            let bundle = parse_bundle(&bytes).map_err(|error| ConfigError::Pem {
                origin: origin.clone(),
                error,
            })?;
            if bundle.certificates.is_empty() {
                return Err(ConfigError::NoCertificates { origin });
            }
            #[cfg(feature = "tracing")]
            if !bundle.crls.is_empty() {
                tracing::info!(%origin, crls = bundle.crls.len(), "CRLs in an outbound CA bundle are ignored");
            }
            for (index, certificate) in bundle.certificates.into_iter().enumerate() {
                roots.add(certificate).map_err(|e| ConfigError::Rustls {
                    what: "outbound CA bundle",
                    detail: format!("{origin}: certificate {}: {e}", index + 1),
                })?;
                extra_count += 1;
            }
        }
        if roots.is_empty() {
            return Err(ConfigError::NoCertificates {
                origin: format!(
                    "the platform's trust store (and no {DEFAULT_PREFIX}_CA_CERTIFICATE or SSL_CERT_FILE): \
                     install the ca-certificates package or name a bundle"
                ),
            });
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            platform = platform_count,
            extra = extra_count,
            source = extra
                .as_ref()
                .map(|(var, _)| var.as_str())
                .unwrap_or("platform"),
            path = extra
                .as_ref()
                .map(|(_, p)| p.display().to_string())
                .unwrap_or_default(),
            "outbound TLS roots loaded"
        );
        Ok(OutboundTrust {
            roots: Arc::new(roots),
            extra,
            platform_count,
            extra_count,
        })
    }

    /// The roots.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// How many roots came from the platform.
    pub fn platform_count(&self) -> usize {
        self.platform_count
    }

    /// How many came from the extra bundle.
    pub fn extra_count(&self) -> usize {
        self.extra_count
    }

    /// The variable (or path) and path of the extra bundle, if any.
    pub fn extra_source(&self) -> Option<(&str, &Path)> {
        self.extra
            .as_ref()
            .map(|(var, path)| (var.as_str(), path.as_path()))
    }

    /// A client configuration with these roots, ALPN `h2` and `http/1.1`,
    /// no client certificate, host names verified. Fails only when an
    /// application-installed crypto provider supports neither TLS 1.2 nor 1.3.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
        let mut config = rustls::ClientConfig::builder_with_provider(crate::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Rustls {
                what: "outbound TLS protocol versions",
                detail: e.to_string(),
            })?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The platform store. When `SSL_CERT_FILE`/`SSL_CERT_DIR` are set,
/// rustls-native-certs would read those *instead of* the store, so the
/// distributions' bundle paths are read directly.
fn platform_roots(env_overrides_store: bool) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    if !env_overrides_store {
        return rustls_native_certs::load_native_certs().certs;
    }
    PLATFORM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .map(|path| rustls_native_certs::load_certs_from_paths(Some(path), None).certs)
        .unwrap_or_default()
}

impl fmt::Debug for OutboundTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundTrust")
            .field("platform", &self.platform_count)
            .field("extra", &self.extra_count)
            .field("extra_source", &self.extra)
            .finish()
    }
}
