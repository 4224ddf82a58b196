//! The server's TLS configuration: certificate, key, client CAs, CRLs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::TlsConfigError;
use portcullis_identity::pem::parse_bundle;

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for and verified when sent; clients without
    /// one still connect (the layer decides per route).
    Optional,
    /// A verified certificate is required to complete the handshake.
    Required,
}

impl ClientAuth {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

/// How client certificates are checked against CRLs.
///
/// The defaults are nginx's (`ssl_crl`): only the client's own certificate
/// is checked, so a bundle holding just the issuing CA's CRL works for
/// chains through intermediates; a certificate whose issuer has no CRL in
/// the bundle is refused; an expired CRL refuses every certificate it
/// covers. rustls alone defaults to checking the whole chain and to
/// accepting expired CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Which certificates of the chain are checked.
    pub depth: RevocationDepth,
    /// What a certificate whose issuer has no CRL gets.
    pub unknown_status: Policy,
    /// What a CRL past its `nextUpdate` does.
    pub expired_crl: Policy,
}

impl Default for Revocation {
    fn default() -> Self {
        Revocation {
            depth: RevocationDepth::EndEntity,
            unknown_status: Policy::Deny,
            expired_crl: Policy::Deny,
        }
    }
}

/// Which certificates are checked for revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationDepth {
    /// The client's certificate only.
    EndEntity,
    /// Every certificate of the chain; needs a CRL from every CA in it.
    Chain,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Accept.
    Allow,
    /// Refuse the handshake.
    Deny,
}

/// The server side of TLS: certificate chain and key, and the client
/// certificate policy. [`build`](Self::build) makes the rustls config,
/// with ALPN `h2` and `http/1.1` and TLS 1.2 and 1.3.
///
/// # Example
///
/// ```
/// use portcullis_client_cert::{ClientAuth, ServerTls};
/// # let pki = portcullis_test_support::pki();
///
/// let tls = ServerTls::from_pem(pki.end().chain_pem().as_bytes(), pki.end().key_pem().as_bytes())?
///     .with_client_ca_pem(pki.ca().cert_pem().as_bytes())?
///     .with_client_auth(ClientAuth::Required);
/// let config = tls.build()?;
/// assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// # Ok::<(), portcullis_client_cert::TlsConfigError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_roots: Vec<CertificateDer<'static>>,
    client_auth: ClientAuth,
    crls: Vec<CertificateRevocationListDer<'static>>,
    revocation: Revocation,
}

/// When the certificates a [`ServerTls`] serves and trusts expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CertificateExpiry {
    /// The served (leaf) certificate's `notAfter`.
    pub server: Option<std::time::SystemTime>,
    /// The earliest `notAfter` among the client CAs.
    pub client_ca: Option<std::time::SystemTime>,
}

impl CertificateExpiry {
    /// Sets the `portcullis_certificate_expiry_days` gauges, as of now
    /// (feature `metrics`).
    pub fn observe(&self) {
        use portcullis_identity::observe::certificate_expiry;
        if let Some(server) = self.server {
            certificate_expiry("server", server);
        }
        if let Some(client_ca) = self.client_ca {
            certificate_expiry("client_ca", client_ca);
        }
    }
}

impl ServerTls {
    /// A chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsConfigError> {
        Self::from_pem_with_origin(
            chain_pem,
            "server certificate chain",
            key_pem,
            "server private key",
        )
    }

    /// Reads the chain and key from files.
    pub fn from_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let chain_origin = format!("server certificate chain {}", chain.display());
        let key_origin = format!("server private key {}", key.display());
        Self::from_pem_with_origin(
            &read(chain, &chain_origin)?,
            &chain_origin,
            &read(key, &key_origin)?,
            &key_origin,
        )
    }

    pub(crate) fn from_pem_with_origin(
        chain_pem: &[u8],
        chain_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsConfigError> {
        let chain = parse_bundle(chain_pem)
            .map_err(|error| TlsConfigError::Pem {
                origin: chain_origin.to_owned(),
                error,
            })?
            .certificates;
        if chain.is_empty() {
            return Err(TlsConfigError::NoCertificates {
                origin: chain_origin.to_owned(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsConfigError::NoPrivateKey {
                origin: key_origin.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(ServerTls {
            chain,
            key: Arc::new(key),
            client_roots: Vec::new(),
            client_auth: ClientAuth::None,
            crls: Vec::new(),
            revocation: Revocation::default(),
        })
    }

    /// Trusts the CAs in a PEM bundle for client certificates (CRLs in the
    /// bundle are added too). An empty bundle is an error.
    pub fn with_client_ca_pem(self, bundle: &[u8]) -> Result<Self, TlsConfigError> {
        self.with_client_ca_origin(bundle, "client CA bundle")
    }

    /// Like [`with_client_ca_pem`](Self::with_client_ca_pem), from a file.
    pub fn with_client_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let origin = format!("client CA bundle {}", path.as_ref().display());
        let bytes = read(path.as_ref(), &origin)?;
        self.with_client_ca_origin(&bytes, &origin)
    }

    pub(crate) fn with_client_ca_origin(
        mut self,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Self, TlsConfigError> {
        let bundle = parse_bundle(bytes).map_err(|error| TlsConfigError::Pem {
            origin: origin.to_owned(),
            error,
        })?;
        if bundle.certificates.is_empty() {
            return Err(TlsConfigError::NoCertificates {
                origin: origin.to_owned(),
            });
        }
        #[cfg(feature = "tracing")]
        for (position, label) in &bundle.skipped {
            tracing::info!(%origin, position, %label, "skipped a PEM block that is neither a certificate nor a CRL");
        }
        self.client_roots.extend(bundle.certificates);
        self.crls.extend(bundle.crls);
        Ok(self)
    }

    /// Adds the CRLs in a PEM bundle.
    pub fn with_crl_pem(self, bundle: &[u8]) -> Result<Self, TlsConfigError> {
        self.with_crl_origin(bundle, "CRL bundle")
    }

    /// Adds the CRLs in a file (PEM `X509 CRL` blocks).
    pub fn with_crl_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        let origin = format!("CRL file {}", path.as_ref().display());
        let bytes = read(path.as_ref(), &origin)?;
        self.with_crl_origin(&bytes, &origin)
    }

    pub(crate) fn with_crl_origin(
        mut self,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Self, TlsConfigError> {
        let bundle = parse_bundle(bytes).map_err(|error| TlsConfigError::Pem {
            origin: origin.to_owned(),
            error,
        })?;
        self.crls.extend(bundle.crls);
        Ok(self)
    }

    /// Whether clients must present a certificate.
    #[must_use]
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// How CRLs are applied; see [`Revocation`] for the defaults.
    #[must_use]
    pub fn with_revocation(mut self, revocation: Revocation) -> Self {
        self.revocation = revocation;
        self
    }

    /// The client certificate mode.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// When the served certificate, and the first of the client CAs,
    /// expire.
    pub fn expiry(&self) -> CertificateExpiry {
        let not_after = |der: &CertificateDer<'_>| {
            portcullis_identity::ClientIdentity::from_der(der)
                .ok()
                .map(|c| c.not_after())
        };
        CertificateExpiry {
            server: self.chain.first().and_then(not_after),
            client_ca: self.client_roots.iter().filter_map(not_after).min(),
        }
    }

    /// Builds the rustls configuration.
    ///
    /// Uses the process-default crypto provider when the application
    /// installed one, otherwise *ring*.
    pub fn build(&self) -> Result<Arc<ServerConfig>, TlsConfigError> {
        let provider = crate::crypto_provider();
        let verifier = match self.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            mode => {
                if self.client_roots.is_empty() {
                    return Err(TlsConfigError::ClientAuthWithoutCa {
                        mode: mode.as_str(),
                    });
                }
                let mut roots = RootCertStore::empty();
                for (index, root) in self.client_roots.iter().enumerate() {
                    roots
                        .add(root.clone())
                        .map_err(|e| TlsConfigError::Rustls {
                            what: "client CA bundle",
                            detail: format!("certificate {}: {e}", index + 1),
                            fix: crate::error::CHECK_THE_FILES,
                        })?;
                }
                let mut builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .with_crls(self.crls.iter().cloned());
                if mode == ClientAuth::Optional {
                    builder = builder.allow_unauthenticated();
                }
                if self.revocation.depth == RevocationDepth::EndEntity {
                    builder = builder.only_check_end_entity_revocation();
                }
                if self.revocation.unknown_status == Policy::Allow {
                    builder = builder.allow_unknown_revocation_status();
                }
                if self.revocation.expired_crl == Policy::Deny {
                    builder = builder.enforce_revocation_expiration();
                }
                builder.build().map_err(|e| TlsConfigError::Rustls {
                    what: "client certificate verifier",
                    detail: e.to_string(),
                    fix: crate::error::CHECK_THE_FILES,
                })?
            }
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Rustls {
                what: "TLS protocol versions",
                detail: e.to_string(),
                fix: crate::error::CHECK_THE_FILES,
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsConfigError::Rustls {
                what: "server certificate and key",
                fix: "check that the key belongs to the leaf certificate at the top of the chain",
                detail: match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "the private key is not the key of the first certificate in the chain"
                            .to_owned()
                    }
                    other => other.to_string(),
                },
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read(path: &Path, origin: &str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        origin: origin.to_owned(),
        path: path.to_owned(),
        source,
    })
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("key", &"<private key>")
            .field("client_roots", &self.client_roots.len())
            .field("client_auth", &self.client_auth)
            .field("crls", &self.crls.len())
            .field("revocation", &self.revocation)
            .finish()
    }
}
