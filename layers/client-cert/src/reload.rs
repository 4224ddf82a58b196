//! Hot reload: rebuild the whole TLS configuration when its files change,
//! keep the last good one when they are bad.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_identity::watch::{DEFAULT_SETTLE, FileWatcher};

use crate::{CertificateExpiry, ClientAuth, Revocation, ServerTls, TlsAcceptor, TlsConfigError};

/// The files a [`ServerTls`] is built from, and how to use them: what a
/// reload reads again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// Client CA bundle, PEM (CRLs in it count too).
    pub client_ca: Option<PathBuf>,
    /// CRL files, PEM.
    pub crls: Vec<PathBuf>,
    /// Whether clients must present a certificate.
    pub client_auth: ClientAuth,
    /// How CRLs are applied.
    pub revocation: Revocation,
}

impl TlsFiles {
    /// A server certificate chain and key; no client certificates.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            crls: Vec::new(),
            client_auth: ClientAuth::None,
            revocation: Revocation::default(),
        }
    }

    /// Reads every file and assembles the configuration.
    pub fn load(&self) -> Result<ServerTls, TlsConfigError> {
        let mut tls = ServerTls::from_files(&self.cert, &self.key)?;
        if let Some(ca) = &self.client_ca {
            tls = tls.with_client_ca_file(ca)?;
        }
        for crl in &self.crls {
            tls = tls.with_crl_file(crl)?;
        }
        Ok(tls
            .with_client_auth(self.client_auth)
            .with_revocation(self.revocation))
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [self.cert.as_path(), self.key.as_path()]
            .into_iter()
            .chain(self.client_ca.as_deref())
            .chain(self.crls.iter().map(PathBuf::as_path))
    }
}

/// Counts of reloads, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct ReloadStats {
    succeeded: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    served: Mutex<Option<CertificateExpiry>>,
}

impl ReloadStats {
    /// Reloads that installed a new configuration.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// Reloads that failed and kept the previous configuration.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// When what the latest successful reload installed expires (`None`
    /// before the first).
    pub fn served_expiry(&self) -> Option<CertificateExpiry> {
        *self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the latest failed reload failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Watches a [`TlsFiles`] set and swaps rebuilt configurations into a
/// [`TlsAcceptor`]. Dropping it stops watching.
///
/// It watches the files' parent directories, not the files: editors
/// replace files by renaming, and Kubernetes swaps a `..data` symlink, and
/// a watch on the old file would see neither. A change to any of the files
/// (or to a `..`-prefixed entry beside them) rebuilds the whole
/// configuration from all of them; if that fails, the acceptor keeps the
/// last good one, [`ReloadStats::failed`] goes up and the error is logged.
pub struct TlsReloader {
    stats: Arc<ReloadStats>,
    watcher: FileWatcher,
}

impl TlsReloader {
    /// Starts watching `files` for `acceptor`.
    pub fn watch(acceptor: TlsAcceptor, files: TlsFiles) -> Result<Self, TlsConfigError> {
        let stats = Arc::new(ReloadStats::default());
        let thread_stats = stats.clone();
        let paths: Vec<PathBuf> = files.paths().map(Path::to_owned).collect();
        let watcher = FileWatcher::watch(paths, DEFAULT_SETTLE, move || {
            reload(&acceptor, &files, &thread_stats);
        })
        .map_err(|e| TlsConfigError::Watch {
            path: e.path.unwrap_or_default(),
            detail: e.detail,
        })?;
        Ok(TlsReloader { stats, watcher })
    }

    /// Reloads now (for a `SIGHUP` handler, say), as if a file changed.
    pub fn reload_now(&self) {
        self.watcher.trigger();
    }

    /// Reload counts.
    pub fn stats(&self) -> &ReloadStats {
        &self.stats
    }

    /// The counts, shared: for a task that outlives this borrow (a
    /// metrics endpoint reading [`ReloadStats::served_expiry`]).
    pub fn shared_stats(&self) -> Arc<ReloadStats> {
        self.stats.clone()
    }
}

impl fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsReloader")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Rebuilds the configuration from every file; the last good one stays on
/// failure.
fn reload(acceptor: &TlsAcceptor, files: &TlsFiles, stats: &ReloadStats) {
    match files
        .load()
        .and_then(|tls| tls.build().map(|config| (config, tls.expiry())))
    {
        Ok((config, expiry)) => {
            acceptor.set_config(config);
            *stats.served.lock().unwrap_or_else(|p| p.into_inner()) = Some(expiry);
            expiry.observe();
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            portcullis_identity::observe::reloaded("tls", true);
            #[cfg(feature = "tracing")]
            tracing::info!(cert = %files.cert.display(), "TLS configuration reloaded");
        }
        Err(error) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            portcullis_identity::observe::reloaded("tls", false);
            #[cfg(feature = "tracing")]
            tracing::warn!(%error, "TLS reload failed; keeping the previous configuration");
            *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        }
    }
}
