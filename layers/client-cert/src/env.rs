//! Server TLS and serving limits from the environment: `TLS_CERT`,
//! `TLS_KEY`, `TLS_CLIENT_CA`, `TLS_CLIENT_AUTH`, `TLS_CLIENT_CRL`,
//! `TLS_RELOAD`, `HEADER_READ_TIMEOUT_SECS`, `MAX_CONNECTIONS`,
//! `SHUTDOWN_GRACE_SECS` and `PROXY_PROTOCOL*`.

use std::path::{Path, PathBuf};

use portcullis_identity::env::{Env, EnvError, EnvProblem, Invalid, Problems, Zero};

use portcullis_identity::TrustedProxies;

use crate::{
    ClientAuth, ProxyProtocol, ProxyProtocolVersions, Revocation, ServeOptions, ServerTls,
    TlsConfigError, TlsFiles,
};

/// TLS settings read from the environment.
#[derive(Debug, Clone)]
pub struct EnvTls {
    /// The server configuration.
    pub tls: ServerTls,
    /// The files it came from, for [`TlsReloader`](crate::TlsReloader).
    pub files: TlsFiles,
    /// `TLS_RELOAD` (default `true`): whether the server watches
    /// [`files`](Self::files) and serves a renewed certificate, CA or CRL
    /// from the next handshake on, without a restart.
    pub reload: bool,
}

/// The TLS variables as set, before any file is read.
struct TlsSettings {
    cert: String,
    key: String,
    ca: Option<String>,
    crls: Vec<String>,
    client_auth: ClientAuth,
    reload: bool,
}

const PAIR_FIX: &str =
    "set both (the server certificate chain and its private key), or neither for plaintext";

impl ServerTls {
    /// Reads `TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`, `TLS_CLIENT_AUTH`,
    /// `TLS_CLIENT_CRL` (comma-separated) and `TLS_RELOAD` (default
    /// `true`: serve renewed files without a restart). `Ok(None)` means
    /// plaintext: nothing TLS is set.
    ///
    /// Refused: a certificate without a key or a key without a certificate;
    /// `TLS_CLIENT_AUTH=required|optional` without `TLS_CLIENT_CA`; a client
    /// CA, CRL or mode without a server certificate; values other than those
    /// listed; files that cannot be read or do not hold what they should. A
    /// CA with no mode means `required` (with a warning). Every variable is
    /// read and every file opened before any is parsed, so a wrong path
    /// among several is reported with the rest.
    ///
    /// ```
    /// use portcullis_client_cert::ServerTls;
    /// use portcullis_identity::env::Env;
    ///
    /// assert!(ServerTls::from_env(&Env::from_pairs([("LISTEN_ADDR", "0.0.0.0:8443")]))?.is_none());
    /// let error = ServerTls::from_env(&Env::from_pairs([("TLS_CERT", "/srv/cert.pem")])).unwrap_err();
    /// assert_eq!(error.vars().collect::<Vec<_>>(), ["TLS_CERT"]);
    /// # Ok::<(), portcullis_identity::env::EnvError>(())
    /// ```
    pub fn from_env(env: &Env<'_>) -> Result<Option<EnvTls>, EnvError> {
        let mut problems = Problems::new();
        let Some(settings) = TlsSettings::read(env, &mut problems) else {
            #[cfg(feature = "tracing")]
            if problems.is_empty() {
                tracing::info!("TLS_CERT and TLS_KEY are unset: serving plaintext");
            }
            return problems.finish(|| None);
        };
        // The files are read even when a setting is wrong, so their
        // problems come too.
        let tls = problems.take(settings.load());
        problems.finish(|| tls)
    }
}

impl TlsSettings {
    /// The settings, or `None` for plaintext; problems recorded.
    fn read(env: &Env<'_>, problems: &mut Problems) -> Option<Self> {
        let mode = env.parse("TLS_CLIENT_AUTH", problems, |text| {
            match text.to_ascii_lowercase().as_str() {
                "none" => Ok(ClientAuth::None),
                "optional" => Ok(ClientAuth::Optional),
                "required" => Ok(ClientAuth::Required),
                _ => Err(Invalid::new(
                    "not a client-certificate mode",
                    "write none, optional or required",
                )),
            }
        });
        let ca = env.get("TLS_CLIENT_CA");
        let crl = env.get("TLS_CLIENT_CRL");
        let reload = env.flag("TLS_RELOAD", problems);
        let (cert, key) = match (env.get("TLS_CERT"), env.get("TLS_KEY")) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                let needs_tls = [
                    ("TLS_CLIENT_CA", ca.is_some()),
                    ("TLS_CLIENT_CRL", crl.is_some()),
                    (
                        "TLS_CLIENT_AUTH",
                        mode.is_some_and(|m| m != ClientAuth::None),
                    ),
                ];
                for (var, _) in needs_tls.into_iter().filter(|(_, set)| *set) {
                    problems.push(EnvProblem::setting(
                        var,
                        "set without TLS_CERT and TLS_KEY",
                        format!(
                            "client certificates need TLS: set TLS_CERT and TLS_KEY, or unset {var}"
                        ),
                    ));
                }
                return None;
            }
            (Some(_), None) => {
                problems.push(EnvProblem::missing_partner("TLS_CERT", "TLS_KEY", PAIR_FIX));
                return None;
            }
            (None, Some(_)) => {
                problems.push(EnvProblem::missing_partner("TLS_KEY", "TLS_CERT", PAIR_FIX));
                return None;
            }
        };
        let client_auth = client_auth(mode, ca.is_some(), problems);
        if mode.is_none() && ca.is_some() {
            env.warn(
                "TLS_CLIENT_CA",
                "set without TLS_CLIENT_AUTH: client certificates are now required (you probably \
                 meant mTLS; set TLS_CLIENT_AUTH=required to say so, or optional)",
            );
        }
        if crl.is_some() && ca.is_none() {
            problems.push(EnvProblem::missing_partner(
                "TLS_CLIENT_CRL",
                "TLS_CLIENT_CA",
                "CRLs revoke client certificates: set TLS_CLIENT_CA too, or unset TLS_CLIENT_CRL",
            ));
        }
        let crls = crl
            .iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        Some(TlsSettings {
            cert,
            key,
            ca,
            crls,
            client_auth,
            reload: reload.unwrap_or(true),
        })
    }

    /// Reads every file, then builds and checks the configuration.
    fn load(self) -> Result<EnvTls, EnvError> {
        let mut problems = Problems::new();
        let mut read = |var: &'static str, path: &str| {
            std::fs::read(path)
                .map_err(|source| {
                    problems.push(file_problem(
                        var,
                        path,
                        &TlsConfigError::Read {
                            origin: path.to_owned(),
                            path: PathBuf::from(path),
                            source,
                        },
                    ));
                })
                .ok()
        };
        let cert = read("TLS_CERT", &self.cert);
        let key = read("TLS_KEY", &self.key);
        let ca = self.ca.as_deref().map(|path| read("TLS_CLIENT_CA", path));
        let crls: Vec<_> = self
            .crls
            .iter()
            .map(|path| read("TLS_CLIENT_CRL", path))
            .collect();
        problems.finish(|| ())?;
        // Every read succeeded: nothing below is a default.
        let (cert, key) = (cert.unwrap_or_default(), key.unwrap_or_default());
        let mut tls = ServerTls::from_pem_with_origin(&cert, &self.cert, &key, &self.key).map_err(
            |e| match e {
                TlsConfigError::NoPrivateKey { .. } => at("TLS_KEY", &self.key)(e),
                e => at("TLS_CERT", &self.cert)(e),
            },
        )?;
        if let (Some(path), Some(Some(pem))) = (&self.ca, ca) {
            tls = tls
                .with_client_ca_origin(&pem, path)
                .map_err(at("TLS_CLIENT_CA", path))?;
        }
        for (path, pem) in self.crls.iter().zip(crls) {
            tls = tls
                .with_crl_origin(&pem.unwrap_or_default(), path)
                .map_err(at("TLS_CLIENT_CRL", path))?;
        }
        let tls = tls.with_client_auth(self.client_auth);
        // Fail at start-up, not at the first handshake.
        tls.build().map_err(at("TLS_KEY", &self.key))?;
        let files = TlsFiles {
            cert: PathBuf::from(self.cert),
            key: PathBuf::from(self.key),
            client_ca: self.ca.map(PathBuf::from),
            crls: self.crls.into_iter().map(PathBuf::from).collect(),
            client_auth: self.client_auth,
            revocation: Revocation::default(),
        };
        Ok(EnvTls {
            tls,
            files,
            reload: self.reload,
        })
    }
}

/// The client-certificate mode: `TLS_CLIENT_AUTH` when set, else
/// `required` when a client CA is (with a warning), else `none`.
fn client_auth(mode: Option<ClientAuth>, ca_set: bool, problems: &mut Problems) -> ClientAuth {
    match (mode, ca_set) {
        (Some(ClientAuth::None), _) => ClientAuth::None,
        (Some(mode), true) => mode,
        (Some(mode), false) => {
            problems.push(EnvProblem::invalid(
                "TLS_CLIENT_AUTH",
                mode.as_str(),
                "needs TLS_CLIENT_CA, the CA bundle client certificates are verified against",
                "set it, or set TLS_CLIENT_AUTH=none",
            ));
            mode
        }
        (None, true) => ClientAuth::Required,
        (None, false) => ClientAuth::None,
    }
}

/// Turns a configuration error about the file at `path` into a problem
/// with `var`.
fn at<'a>(var: &'static str, path: &'a str) -> impl Fn(TlsConfigError) -> EnvError + 'a {
    move |e| EnvError::from(file_problem(var, path, &e))
}

/// `error`, about the file at `path` that `var` names.
fn file_problem(var: &'static str, path: &str, error: &TlsConfigError) -> EnvProblem {
    let (problem, fix) = error.problem_and_fix();
    EnvProblem::invalid(var, Path::new(path).display().to_string(), problem, fix)
}

impl ServeOptions {
    /// The defaults, with `HEADER_READ_TIMEOUT_SECS` (default 30; it also
    /// closes an HTTP/1.1 keep-alive connection idle that long),
    /// `MAX_CONNECTIONS` (default 10,000), `SHUTDOWN_GRACE_SECS` (how long
    /// requests in flight may finish after the shutdown signal; default
    /// 10) and the PROXY protocol applied:
    /// `PROXY_PROTOCOL` (`off`, `v1`, `v2` or `any`; default `off`) from
    /// the peers in `proxies` (`TRUSTED_PROXY_CIDRS`), required from them
    /// unless `PROXY_PROTOCOL_ALLOW_MISSING=true`.
    pub fn from_env(env: &Env<'_>, proxies: &TrustedProxies) -> Result<Self, EnvError> {
        let mut problems = Problems::new();
        let timeout = env.seconds("HEADER_READ_TIMEOUT_SECS", &mut problems, Zero::Refused);
        let max = env.count("MAX_CONNECTIONS", &mut problems, 10_000);
        let grace = env.seconds("SHUTDOWN_GRACE_SECS", &mut problems, Zero::Allowed);
        let proxy = proxy_protocol(env, proxies, &mut problems);
        problems.finish(|| {
            let mut options = ServeOptions::default();
            if let Some(timeout) = timeout {
                options = options.header_read_timeout(timeout);
            }
            if let Some(max) = max {
                options = options.max_connections(usize::try_from(max).unwrap_or(usize::MAX));
            }
            if let Some(grace) = grace {
                options = options.shutdown_grace(grace);
            }
            options.proxy_protocol(proxy)
        })
    }
}

/// `PROXY_PROTOCOL` and `PROXY_PROTOCOL_ALLOW_MISSING`.
fn proxy_protocol(
    env: &Env<'_>,
    proxies: &TrustedProxies,
    problems: &mut Problems,
) -> ProxyProtocol {
    let versions = env
        .parse("PROXY_PROTOCOL", problems, |text| {
            match text.to_ascii_lowercase().as_str() {
                "off" => Ok(ProxyProtocolVersions::Off),
                "v1" => Ok(ProxyProtocolVersions::V1),
                "v2" => Ok(ProxyProtocolVersions::V2),
                "any" => Ok(ProxyProtocolVersions::Any),
                _ => Err(Invalid::new(
                    "not a PROXY protocol setting",
                    "write off, v1, v2 or any",
                )),
            }
        })
        .unwrap_or_default();
    let allow_missing = env
        .flag("PROXY_PROTOCOL_ALLOW_MISSING", problems)
        .unwrap_or(false);
    let proxy = ProxyProtocol::new(versions, proxies.clone());
    if proxy.is_on() && proxies.is_empty() {
        problems.push(EnvProblem::invalid(
            "PROXY_PROTOCOL",
            env.get("PROXY_PROTOCOL").unwrap_or_default(),
            "no peer is trusted to send it",
            "set TRUSTED_PROXY_CIDRS to the load balancers' addresses",
        ));
    }
    if allow_missing && !proxy.is_on() {
        problems.push(EnvProblem::missing_partner(
            "PROXY_PROTOCOL_ALLOW_MISSING",
            "PROXY_PROTOCOL",
            "set PROXY_PROTOCOL to v1, v2 or any, or unset PROXY_PROTOCOL_ALLOW_MISSING",
        ));
    }
    if allow_missing {
        proxy.allow_missing()
    } else {
        proxy
    }
}
