//! Start-up errors: each names the variable or path and says how to fix it.

use std::fmt;
use std::path::PathBuf;

use portcullis_identity::pem::PemError;

/// A TLS configuration that cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// One of a pair of settings is set without the other.
    MissingPair {
        /// The setting that is present.
        set: &'static str,
        /// The one that must accompany it.
        missing: &'static str,
    },
    /// A setting needs TLS, but no server certificate is configured.
    NeedsServerCertificate {
        /// The setting.
        var: &'static str,
    },
    /// `TLS_CLIENT_AUTH` asks for client certificates but no CA is set.
    ClientAuthWithoutCa {
        /// The mode asked for.
        mode: &'static str,
    },
    /// A value that is not one of those allowed.
    InvalidValue {
        /// The setting.
        var: &'static str,
        /// The value as given.
        value: String,
        /// What is allowed.
        expected: &'static str,
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
    },
    /// More than one of the above, all found in one reading of the
    /// environment (so one restart fixes them all).
    Several(Vec<ConfigError>),
}

impl ConfigError {
    /// Each problem on its own: the list of [`Several`](Self::Several), or
    /// this one alone.
    pub fn into_each(self) -> Vec<ConfigError> {
        match self {
            ConfigError::Several(all) => all,
            one => vec![one],
        }
    }

    /// One error for `problems`, `Ok` when there are none.
    pub(crate) fn from_all(mut problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Several(problems)),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MissingPair { set, missing } => write!(
                f,
                "{set} is set but {missing} is not: set both (the server certificate chain and its \
                 private key), or neither for plaintext"
            ),
            ConfigError::NeedsServerCertificate { var } => write!(
                f,
                "{var} is set but TLS_CERT and TLS_KEY are not: client certificates need TLS; set \
                 TLS_CERT and TLS_KEY, or unset {var}"
            ),
            ConfigError::ClientAuthWithoutCa { mode } => write!(
                f,
                "TLS_CLIENT_AUTH={mode} needs TLS_CLIENT_CA, the CA bundle client certificates are \
                 verified against; set it, or set TLS_CLIENT_AUTH=none"
            ),
            ConfigError::InvalidValue {
                var,
                value,
                expected,
            } => write!(
                f,
                "{var}={value:?} is not valid; expected one of: {expected}"
            ),
            ConfigError::Read {
                origin,
                path,
                source,
            } => write!(
                f,
                "{origin}: cannot read {}: {source}; check the path and its permissions",
                path.display()
            ),
            ConfigError::Pem { origin, error } => {
                write!(f, "{origin}: {error}; re-export the file as PEM")
            }
            ConfigError::NoCertificates { origin } => write!(
                f,
                "{origin}: no certificates found; it must hold PEM \"CERTIFICATE\" (or \"TRUSTED \
                 CERTIFICATE\") blocks, or one DER certificate"
            ),
            ConfigError::NoPrivateKey { origin, detail } => write!(
                f,
                "{origin}: no usable private key ({detail}); it must hold one PKCS#8 \"PRIVATE KEY\", \
                 PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\" block, unencrypted"
            ),
            ConfigError::Watch { path, detail } => write!(
                f,
                "cannot watch {} for TLS reloads: {detail}; check that the directory exists and \
                 inotify limits (fs.inotify.max_user_watches) are not exhausted",
                path.display()
            ),
            ConfigError::Rustls { what, detail } => write!(f, "{what}: {detail}"),
            ConfigError::Several(all) => {
                for (i, problem) in all.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Pem { error, .. } => Some(error),
            _ => None,
        }
    }
}
