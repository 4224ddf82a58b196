//! Start-up errors: each names the variable or path and says how to fix it.

use std::fmt;
use std::path::PathBuf;

use portcullis_identity::pem::PemError;

/// A TLS configuration that cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// [`ClientAuth::Optional`](crate::ClientAuth) or `Required` with no
    /// client CA to verify certificates against.
    ClientAuthWithoutCa {
        /// The mode asked for.
        mode: &'static str,
    },
    /// A file could not be read.
    Read {
        /// Where the path came from (a variable or a builder method).
        origin: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM block in a file could not be decoded.
    Pem {
        /// Where the bytes came from.
        origin: String,
        /// The block.
        error: PemError,
    },
    /// A certificate file or bundle held no certificate.
    NoCertificates {
        /// Where the bytes came from.
        origin: String,
    },
    /// A key file held no usable private key.
    NoPrivateKey {
        /// Where the bytes came from.
        origin: String,
        /// Why.
        detail: String,
    },
    /// Watching files for reload could not start.
    Watch {
        /// The directory that could not be watched, if it got that far.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the assembled configuration (key does not match the
    /// certificate, a CRL does not parse, ...).
    Rustls {
        /// What was being built.
        what: &'static str,
        /// rustls's reason.
        detail: String,
        /// How to fix it.
        fix: &'static str,
    },
}

/// The fix for a [`TlsConfigError::Rustls`] whose files may not hold what
/// they should.
pub(crate) const CHECK_THE_FILES: &str = "check that the files hold what they should";

impl TlsConfigError {
    /// What is wrong and the fix, apart from where the bytes came from (for
    /// a start-up problem that names the variable instead).
    pub fn problem_and_fix(&self) -> (String, &'static str) {
        match self {
            TlsConfigError::ClientAuthWithoutCa { mode } => (
                format!("client certificates are {mode} but no client CA bundle is given"),
                "give the CA bundle client certificates are verified against, or ClientAuth::None",
            ),
            TlsConfigError::Read { source, .. } => (
                format!("cannot read it: {source}"),
                "check the path and its permissions",
            ),
            TlsConfigError::Pem { error, .. } => (error.to_string(), "re-export the file as PEM"),
            TlsConfigError::NoCertificates { .. } => (
                "no certificates found".to_owned(),
                "it must hold PEM \"CERTIFICATE\" (or \"TRUSTED CERTIFICATE\") blocks, or one DER \
                 certificate",
            ),
            TlsConfigError::NoPrivateKey { detail, .. } => (
                format!("no usable private key ({detail})"),
                "it must hold one PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \
                 \"EC PRIVATE KEY\" block, unencrypted",
            ),
            TlsConfigError::Watch { detail, .. } => (
                format!("cannot watch for reloads: {detail}"),
                "check that the directory exists and inotify limits \
                 (fs.inotify.max_user_watches) are not exhausted",
            ),
            TlsConfigError::Rustls { what, detail, fix } => (format!("{what}: {detail}"), fix),
        }
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (problem, fix) = self.problem_and_fix();
        match self {
            TlsConfigError::Read { origin, .. }
            | TlsConfigError::Pem { origin, .. }
            | TlsConfigError::NoCertificates { origin }
            | TlsConfigError::NoPrivateKey { origin, .. } => {
                write!(f, "{origin}: {problem}; {fix}")
            }
            TlsConfigError::Watch { path, .. } => write!(f, "{}: {problem}; {fix}", path.display()),
            TlsConfigError::ClientAuthWithoutCa { .. } | TlsConfigError::Rustls { .. } => {
                write!(f, "{problem}; {fix}")
            }
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Read { source, .. } => Some(source),
            TlsConfigError::Pem { error, .. } => Some(error),
            _ => None,
        }
    }
}
