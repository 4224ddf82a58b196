//! The server's TLS configuration: certificate, key, client CAs, CRLs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::{ConfigError, TlsFiles};
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
    fn as_str(self) -> &'static str {
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
/// # Ok::<(), portcullis_client_cert::ConfigError>(())
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

impl ServerTls {
    /// A chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        Self::from_pem_with_origin(
            chain_pem,
            "server certificate chain",
            key_pem,
            "server private key",
        )
    }

    /// Reads the chain and key from files.
    pub fn from_files(chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, ConfigError> {
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

    fn from_pem_with_origin(
        chain_pem: &[u8],
        chain_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, ConfigError> {
        let chain = parse_bundle(chain_pem)
            .map_err(|error| ConfigError::Pem {
                origin: chain_origin.to_owned(),
                error,
            })?
            .certificates;
        if chain.is_empty() {
            return Err(ConfigError::NoCertificates {
                origin: chain_origin.to_owned(),
            });
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ConfigError::NoPrivateKey {
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
    pub fn with_client_ca_pem(self, bundle: &[u8]) -> Result<Self, ConfigError> {
        self.with_client_ca_origin(bundle, "client CA bundle")
    }

    /// Like [`with_client_ca_pem`](Self::with_client_ca_pem), from a file.
    pub fn with_client_ca_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let origin = format!("client CA bundle {}", path.as_ref().display());
        let bytes = read(path.as_ref(), &origin)?;
        self.with_client_ca_origin(&bytes, &origin)
    }

    fn with_client_ca_origin(mut self, bytes: &[u8], origin: &str) -> Result<Self, ConfigError> {
        let bundle = parse_bundle(bytes).map_err(|error| ConfigError::Pem {
            origin: origin.to_owned(),
            error,
        })?;
        if bundle.certificates.is_empty() {
            return Err(ConfigError::NoCertificates {
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
    pub fn with_crl_pem(self, bundle: &[u8]) -> Result<Self, ConfigError> {
        self.with_crl_origin(bundle, "CRL bundle")
    }

    /// Adds the CRLs in a file (PEM `X509 CRL` blocks).
    pub fn with_crl_file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let origin = format!("CRL file {}", path.as_ref().display());
        let bytes = read(path.as_ref(), &origin)?;
        self.with_crl_origin(&bytes, &origin)
    }

    fn with_crl_origin(mut self, bytes: &[u8], origin: &str) -> Result<Self, ConfigError> {
        let bundle = parse_bundle(bytes).map_err(|error| ConfigError::Pem {
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

    /// Builds the rustls configuration.
    ///
    /// Uses the process-default crypto provider when the application
    /// installed one, otherwise *ring*.
    pub fn build(&self) -> Result<Arc<ServerConfig>, ConfigError> {
        let provider = crate::crypto_provider();
        let verifier = match self.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            mode => {
                if self.client_roots.is_empty() {
                    return Err(ConfigError::ClientAuthWithoutCa {
                        mode: mode.as_str(),
                    });
                }
                let mut roots = RootCertStore::empty();
                for (index, root) in self.client_roots.iter().enumerate() {
                    roots.add(root.clone()).map_err(|e| ConfigError::Rustls {
                        what: "client CA bundle",
                        detail: format!("certificate {}: {e}", index + 1),
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
                builder.build().map_err(|e| ConfigError::Rustls {
                    what: "client certificate verifier",
                    detail: e.to_string(),
                })?
            }
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Rustls {
                what: "TLS protocol versions",
                detail: e.to_string(),
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| ConfigError::Rustls {
                what: "server certificate and key",
                detail: match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "the private key is not the key of the first certificate in the chain; check that \
                         TLS_KEY belongs to the leaf certificate at the top of TLS_CERT"
                            .to_owned()
                    }
                    other => format!("{other}; check that TLS_KEY belongs to the leaf certificate at the top of TLS_CERT"),
                },
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reads the process environment; see [`from_env_with`](Self::from_env_with).
    pub fn from_env() -> Result<Option<EnvTls>, ConfigError> {
        Self::from_env_with(|var| std::env::var(var).ok())
    }

    /// Reads `TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`, `TLS_CLIENT_AUTH`,
    /// `TLS_CLIENT_CRL` (comma-separated) and `USE_CERT_AS_PRINCIPAL`
    /// through `lookup`. `Ok(None)` means plaintext: nothing TLS is set.
    ///
    /// Refused: a certificate without a key or a key without a certificate;
    /// `TLS_CLIENT_AUTH=required|optional` without `TLS_CLIENT_CA`; a client
    /// CA, CRL or mode without a server certificate; values other than those
    /// listed. A CA with no mode means `required` (with a warning).
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<EnvTls>, ConfigError> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let cert = get("TLS_CERT");
        let key = get("TLS_KEY");
        let ca = get("TLS_CLIENT_CA");
        let crl = get("TLS_CLIENT_CRL");
        let mode = get("TLS_CLIENT_AUTH").and_then(|value| {
            match value.trim().to_ascii_lowercase().as_str() {
                "none" => Some(ClientAuth::None),
                "optional" => Some(ClientAuth::Optional),
                "required" => Some(ClientAuth::Required),
                _ => {
                    problems.push(ConfigError::InvalidValue {
                        var: "TLS_CLIENT_AUTH",
                        value,
                        expected: "none, optional, required",
                    });
                    None
                }
            }
        });
        let use_cert_as_principal = match get("USE_CERT_AS_PRINCIPAL") {
            None => false,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    problems.push(ConfigError::InvalidValue {
                        var: "USE_CERT_AS_PRINCIPAL",
                        value,
                        expected: "true, false",
                    });
                    false
                }
            },
        };

        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                problems.extend(
                    [
                        ("TLS_CLIENT_CA", ca.is_some()),
                        ("TLS_CLIENT_CRL", crl.is_some()),
                        (
                            "TLS_CLIENT_AUTH",
                            mode.is_some_and(|m| m != ClientAuth::None),
                        ),
                        ("USE_CERT_AS_PRINCIPAL", use_cert_as_principal),
                    ]
                    .into_iter()
                    .filter(|(_, set)| *set)
                    .map(|(var, _)| ConfigError::NeedsServerCertificate { var }),
                );
                ConfigError::from_all(problems)?;
                #[cfg(feature = "tracing")]
                tracing::info!("TLS_CERT and TLS_KEY are unset: serving plaintext");
                return Ok(None);
            }
            (cert, key) => {
                let (set, missing) = if cert.is_some() {
                    ("TLS_CERT", "TLS_KEY")
                } else {
                    ("TLS_KEY", "TLS_CERT")
                };
                problems.push(ConfigError::MissingPair { set, missing });
                (cert.unwrap_or_default(), key.unwrap_or_default())
            }
        };
        let client_auth = match (mode, &ca) {
            (Some(ClientAuth::None), _) => ClientAuth::None,
            (Some(mode), Some(_)) => mode,
            (Some(mode), None) => {
                problems.push(ConfigError::ClientAuthWithoutCa {
                    mode: mode.as_str(),
                });
                mode
            }
            (None, Some(_)) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    "TLS_CLIENT_CA is set without TLS_CLIENT_AUTH: requiring client certificates"
                );
                ClientAuth::Required
            }
            (None, None) => ClientAuth::None,
        };
        if crl.is_some() && ca.is_none() {
            problems.push(ConfigError::MissingPair {
                set: "TLS_CLIENT_CRL",
                missing: "TLS_CLIENT_CA",
            });
        }
        let crl_paths: Vec<PathBuf> = crl
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();

        // Every file is read before any is parsed, so a wrong path among
        // several is reported with the rest.
        let mut read_named = |var: &str, path: &Path| {
            let origin = format!("{var} ({})", path.display());
            read(path, &origin)
                .map_err(|e| problems.push(e))
                .ok()
                .map(|bytes| (bytes, origin))
        };
        let (cert_file, key_file) = if cert.is_empty() || key.is_empty() {
            (None, None)
        } else {
            (
                read_named("TLS_CERT", Path::new(&cert)),
                read_named("TLS_KEY", Path::new(&key)),
            )
        };
        let ca_file = ca
            .as_deref()
            .map(|ca| read_named("TLS_CLIENT_CA", Path::new(ca)));
        let crl_files: Vec<_> = crl_paths
            .iter()
            .map(|path| read_named("TLS_CLIENT_CRL", path))
            .collect();
        ConfigError::from_all(problems)?;
        let (Some((cert_pem, cert_origin)), Some((key_pem, key_origin))) = (cert_file, key_file)
        else {
            unreachable!("a missing file or variable is a problem above");
        };

        let mut tls = Self::from_pem_with_origin(&cert_pem, &cert_origin, &key_pem, &key_origin)?;
        if let Some(Some((pem, origin))) = ca_file {
            tls = tls.with_client_ca_origin(&pem, &origin)?;
        }
        for (pem, origin) in crl_files.into_iter().flatten() {
            tls = tls.with_crl_origin(&pem, &origin)?;
        }
        let tls = tls.with_client_auth(client_auth);
        // Fail at start-up, not at the first handshake.
        tls.build()?;
        let files = TlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
            client_ca: ca.map(PathBuf::from),
            crls: crl_paths,
            client_auth,
            revocation: Revocation::default(),
        };
        Ok(Some(EnvTls {
            tls,
            files,
            use_cert_as_principal,
        }))
    }
}

fn read(path: &Path, origin: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
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

/// TLS settings read from the environment.
#[derive(Debug, Clone)]
pub struct EnvTls {
    /// The server configuration.
    pub tls: ServerTls,
    /// The files it came from, for [`TlsReloader`](crate::TlsReloader).
    pub files: TlsFiles,
    /// `USE_CERT_AS_PRINCIPAL`: the certificate, not the bearer, names the
    /// caller.
    pub use_cert_as_principal: bool,
}
