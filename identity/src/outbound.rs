//! Trust for the service's own outbound TLS: the control plane, Redis.
//!
//! Policy: an extra CA bundle (from the environment, see
//! [`OutboundTrust::from_env`]) is **added to** the platform's roots, never
//! replacing them; roots made in memory (a throwaway CA at start-up) may be
//! added too. Host-name verification always stays on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::pem::{PemError, parse_bundle};

/// Where distributions keep their bundle (the list Go's `crypto/x509`
/// uses), read when the environment points rustls-native-certs elsewhere.
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
/// use portcullis_identity::OutboundTrust;
/// use portcullis_identity::env::Env;
///
/// // PORTCULLIS_CA_CERTIFICATE=/etc/company/ca.pem, or SSL_CERT_FILE=...
/// let trust = OutboundTrust::from_env(&Env::process())?;
/// let config = trust.client_config()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct OutboundTrust {
    roots: Arc<RootCertStore>,
    extra: Option<(String, PathBuf)>,
    platform_count: usize,
    extra_count: usize,
}

/// Outbound trust that cannot be assembled.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutboundTrustError {
    /// The extra bundle could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM block of the extra bundle could not be decoded.
    Pem {
        /// The path.
        path: PathBuf,
        /// The block.
        error: PemError,
    },
    /// The extra bundle held no certificate.
    NoCertificates {
        /// The path.
        path: PathBuf,
    },
    /// rustls refused a root (or a client configuration could not be built).
    Rustls {
        /// What was refused and why.
        detail: String,
    },
    /// No root at all: the platform store is empty and nothing was added.
    NoRoots,
}

impl OutboundTrustError {
    /// What is wrong, and the fix, apart (for a start-up problem that names
    /// the variable the path came from).
    pub fn problem_and_fix(&self) -> (String, &'static str) {
        match self {
            OutboundTrustError::Read { source, .. } => (
                format!("cannot read it: {source}"),
                "check the path and its permissions",
            ),
            OutboundTrustError::Pem { error, .. } => {
                (error.to_string(), "re-export the file as PEM")
            }
            OutboundTrustError::NoCertificates { .. } => (
                "no certificates found".to_owned(),
                "it must hold PEM \"CERTIFICATE\" (or \"TRUSTED CERTIFICATE\") blocks, or one DER \
                 certificate",
            ),
            OutboundTrustError::Rustls { detail } => (
                detail.clone(),
                "check that the bundle holds CA certificates",
            ),
            OutboundTrustError::NoRoots => (
                "the platform's trust store is empty and no bundle is named".to_owned(),
                "install the ca-certificates package, or name a bundle",
            ),
        }
    }
}

impl fmt::Display for OutboundTrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (problem, fix) = self.problem_and_fix();
        match self {
            OutboundTrustError::Read { path, .. }
            | OutboundTrustError::Pem { path, .. }
            | OutboundTrustError::NoCertificates { path } => {
                write!(f, "outbound CA bundle {}: {problem}; {fix}", path.display())
            }
            _ => write!(f, "outbound TLS trust: {problem}; {fix}"),
        }
    }
}

impl std::error::Error for OutboundTrustError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OutboundTrustError::Read { source, .. } => Some(source),
            OutboundTrustError::Pem { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl OutboundTrust {
    /// The platform's roots alone.
    pub fn platform() -> Result<Self, OutboundTrustError> {
        Self::assemble(None, false)
    }

    /// The platform's roots plus the bundle at `path`.
    pub fn with_extra_bundle(path: impl AsRef<Path>) -> Result<Self, OutboundTrustError> {
        let path = path.as_ref();
        Self::assemble(Some((path.display().to_string(), path.to_owned())), false)
    }

    /// These roots added too: certificates made in memory, such as a
    /// throwaway CA generated at start-up.
    pub fn add_roots(
        mut self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, OutboundTrustError> {
        let mut store = (*self.roots).clone();
        for (index, root) in roots.into_iter().enumerate() {
            store.add(root).map_err(|e| OutboundTrustError::Rustls {
                detail: format!("root {} given in memory: {e}", index + 1),
            })?;
            self.extra_count += 1;
        }
        self.roots = Arc::new(store);
        Ok(self)
    }

    /// The platform's roots plus the bundle `extra` names (the setting or
    /// path that named it, and the path); `env_overrides_store`: whether
    /// the environment points rustls-native-certs away from the store
    /// (`SSL_CERT_FILE`, `SSL_CERT_DIR`), so the distributions' bundle is
    /// read directly.
    pub(crate) fn assemble(
        extra: Option<(String, PathBuf)>,
        env_overrides_store: bool,
    ) -> Result<Self, OutboundTrustError> {
        let mut roots = RootCertStore::empty();
        let (platform_count, _) =
            roots.add_parsable_certificates(platform_roots(env_overrides_store));
        let mut extra_count = 0;
        if let Some((_, path)) = &extra {
            let bytes = std::fs::read(path).map_err(|source| OutboundTrustError::Read {
                path: path.clone(),
                source,
            })?;
            let bundle = parse_bundle(&bytes).map_err(|error| OutboundTrustError::Pem {
                path: path.clone(),
                error,
            })?;
            if bundle.certificates.is_empty() {
                return Err(OutboundTrustError::NoCertificates { path: path.clone() });
            }
            #[cfg(feature = "tracing")]
            if !bundle.crls.is_empty() {
                tracing::info!(path = %path.display(), crls = bundle.crls.len(), "CRLs in an outbound CA bundle are ignored");
            }
            for (index, certificate) in bundle.certificates.into_iter().enumerate() {
                roots
                    .add(certificate)
                    .map_err(|e| OutboundTrustError::Rustls {
                        detail: format!("{}: certificate {}: {e}", path.display(), index + 1),
                    })?;
                extra_count += 1;
            }
        }
        if roots.is_empty() {
            return Err(OutboundTrustError::NoRoots);
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            platform = platform_count,
            extra = extra_count,
            source = extra
                .as_ref()
                .map(|(source, _)| source.as_str())
                .unwrap_or("platform"),
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

    /// How many were added: the extra bundle's and those given in memory.
    pub fn extra_count(&self) -> usize {
        self.extra_count
    }

    /// The setting (or path) that named the extra bundle, and its path.
    pub fn extra_source(&self) -> Option<(&str, &Path)> {
        self.extra
            .as_ref()
            .map(|(source, path)| (source.as_str(), path.as_path()))
    }

    /// A client configuration with these roots, ALPN `h2` and `http/1.1`,
    /// no client certificate, host names verified, on the process-default
    /// crypto provider (else *ring*). Fails only when an installed provider
    /// supports neither TLS 1.2 nor 1.3.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, OutboundTrustError> {
        let mut config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundTrustError::Rustls {
                detail: format!("outbound TLS protocol versions: {e}"),
            })?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The process-default crypto provider when the application installed one,
/// otherwise *ring*: what every rustls configuration portcullis builds uses.
/// Plumbing for the sibling crates.
#[doc(hidden)]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The platform store. When `SSL_CERT_FILE`/`SSL_CERT_DIR` are set,
/// rustls-native-certs would read those *instead of* the store, so the
/// distributions' bundle paths are read directly.
fn platform_roots(env_overrides_store: bool) -> Vec<CertificateDer<'static>> {
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
