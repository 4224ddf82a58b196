//! Settings from the environment: one lookup type, one typed problem.
//!
//! Every portcullis crate reads its settings the same way: a
//! `from_env(&Env, ..)` in its `env.rs` (the only place its variable
//! names appear) that turns an [`Env`] into its settings or an
//! [`EnvError`] listing *every* [`EnvProblem`] it found, each naming the
//! variable, the value, what is wrong and the fix, so one restart fixes
//! them all. The facade composes them and checks the combinations.
//!
//! ```
//! use portcullis_identity::TrustedProxies;
//! use portcullis_identity::env::Env;
//!
//! let env = Env::from_pairs([("TRUSTED_PROXY_CIDRS", "10.0.0.0/8"), ("CLIENT_IP_HEADER", "x-real-ip")]);
//! let proxies = TrustedProxies::from_env(&env)?;
//! assert!(proxies.contains("10.1.2.3".parse()?));
//!
//! let env = Env::from_pairs([("TRUSTED_PROXY_CIDRS", "10.0.0.1/8"), ("CLIENT_IP_HEADER", "bad header")]);
//! let error = TrustedProxies::from_env(&env).unwrap_err();
//! assert_eq!(error.vars().collect::<Vec<_>>(), ["TRUSTED_PROXY_CIDRS", "CLIENT_IP_HEADER"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use http::HeaderName;

/// Where settings come from: the process environment, a map, or any
/// function of the variable's name.
///
/// Values are read trimmed of surrounding white space, and a value of only
/// white space counts as unset (an empty `KEY=` line in a Kubernetes
/// manifest means "not set").
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
    /// What the readers noticed that works but is probably not meant.
    warnings: std::cell::RefCell<Vec<EnvWarning>>,
}

/// A variable's value by its name.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: never printed.
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Env::from_fn(|var| std::env::var(var).ok())
    }

    /// Exactly these variables, and no others (tests, and settings from a
    /// file the application read).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env::from_fn(move |var| map.get(var).cloned())
    }
}

impl<'a> Env<'a> {
    /// The variables `lookup` gives.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Env {
            lookup: Box::new(lookup),
            warnings: std::cell::RefCell::default(),
        }
    }

    /// Records a setting that works but is probably not what was meant;
    /// logged at once with the `tracing` feature, and kept for
    /// [`warnings`](Self::warnings) (the facade hands them to the
    /// application, which prints them).
    pub fn warn(&self, var: &'static str, message: impl Into<Cow<'static, str>>) {
        let warning = EnvWarning {
            var,
            message: message.into(),
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(var, message = %warning.message, "configuration warning");
        self.warnings.borrow_mut().push(warning);
    }

    /// Every warning recorded so far, in order.
    pub fn warnings(&self) -> Vec<EnvWarning> {
        self.warnings.borrow().clone()
    }

    /// `var`'s value, trimmed; `None` when unset or only white space.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `var`'s value exactly as set, white space included: for a value
    /// whose reader trims it itself and reports one of only white space.
    pub fn get_raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
    }

    /// Whether `var` holds anything but white space.
    pub fn is_set(&self, var: &str) -> bool {
        self.get(var).is_some()
    }

    /// `var`'s value as `parse` reads it; `None` when unset, or when it
    /// cannot be read, with the problem recorded.
    pub fn parse<T>(
        &self,
        var: &'static str,
        problems: &mut Problems,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        let value = self.get(var)?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(invalid) => {
                problems.push(invalid.of(var, value));
                None
            }
        }
    }

    /// A switch: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case).
    pub fn flag(&self, var: &'static str, problems: &mut Problems) -> Option<bool> {
        self.parse(var, problems, |text| {
            match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(Invalid::new("not a switch", "write true or false")),
            }
        })
    }

    /// A whole number above 0.
    pub fn count(&self, var: &'static str, problems: &mut Problems, example: u64) -> Option<u64> {
        self.parse(var, problems, |text| match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Invalid::new(
                "not a whole number above 0",
                format!("write one such as {example}"),
            )),
        })
    }

    /// A number of seconds, decimals allowed, at most a year; 0 only when
    /// `zero` allows it.
    pub fn seconds(
        &self,
        var: &'static str,
        problems: &mut Problems,
        zero: Zero,
    ) -> Option<Duration> {
        self.parse(var, problems, |text| {
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s <= 31_536_000.0)
                .filter(|s| *s > 0.0 || (zero == Zero::Allowed && *s == 0.0))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| match zero {
                    Zero::Allowed => {
                        Invalid::new("not a number of seconds", "write one such as 60 or 0.5")
                    }
                    Zero::Refused => Invalid::new(
                        "not a number of seconds above 0",
                        "write one such as 30 or 0.5",
                    ),
                })
        })
    }

    /// A header name; `example` is named in the fix.
    pub fn header_name(
        &self,
        var: &'static str,
        problems: &mut Problems,
        example: &'static str,
    ) -> Option<HeaderName> {
        self.parse(var, problems, |text| {
            HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
                Invalid::new("not a header name", format!("write one such as {example}"))
            })
        })
    }

    /// An address and port; `example` is named in the fix.
    pub fn socket_addr(
        &self,
        var: &'static str,
        problems: &mut Problems,
        example: &'static str,
    ) -> Option<std::net::SocketAddr> {
        self.parse(var, problems, |text| {
            text.parse().map_err(|_| {
                Invalid::new(
                    "not an address and port",
                    format!("write one such as {example}"),
                )
            })
        })
    }
}

/// A setting that works but is probably not what was meant: the variable
/// and what will happen. Displayed as `VAR: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWarning {
    var: &'static str,
    message: Cow<'static, str>,
}

impl EnvWarning {
    /// The variable it is about.
    pub fn var(&self) -> &'static str {
        self.var
    }

    /// What will happen, and what was probably meant.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// Whether [`Env::seconds`] accepts 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// 0 is a valid setting (a cache duration: "do not cache").
    Allowed,
    /// 0 is refused (a timeout: it would cut off every client).
    Refused,
}

/// Why a value cannot be used, before it is tied to its variable: what a
/// parser passed to [`Env::parse`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    problem: Cow<'static, str>,
    fix: Cow<'static, str>,
}

impl Invalid {
    /// What is wrong, and the fix.
    pub fn new(problem: impl Into<Cow<'static, str>>, fix: impl Into<Cow<'static, str>>) -> Self {
        Invalid {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The problem with `var`'s `value`.
    pub fn of(self, var: impl Into<Cow<'static, str>>, value: impl Into<String>) -> EnvProblem {
        EnvProblem {
            var: var.into(),
            value: Some(value.into()),
            problem: self.problem,
            fix: self.fix,
        }
    }
}

/// One setting that cannot be used: the variable, its value (unless the
/// problem is its presence or absence, or the value is a secret), what is
/// wrong and the fix.
///
/// Displayed as `VAR="value": problem; fix`, or `VAR: problem; fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProblem {
    var: Cow<'static, str>,
    value: Option<String>,
    problem: Cow<'static, str>,
    fix: Cow<'static, str>,
}

impl EnvProblem {
    /// A problem with `var`'s value.
    pub fn invalid(
        var: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Invalid::new(problem, fix).of(var, value)
    }

    /// A problem with `var` being set (or not) that does not quote the
    /// value: a missing partner, a combination that cannot work, a secret.
    pub fn setting(
        var: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        EnvProblem {
            var: var.into(),
            value: None,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// `set` is set without `missing`, which must come with it.
    pub fn missing_partner(
        set: impl Into<Cow<'static, str>>,
        missing: &str,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::setting(set, format!("set without {missing}"), fix)
    }

    /// The variable at fault.
    pub fn var(&self) -> &str {
        &self.var
    }

    /// Its value, when the value is at fault and is not a secret.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// What is wrong.
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// How to fix it.
    pub fn fix(&self) -> &str {
        &self.fix
    }
}

impl fmt::Display for EnvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.var)?;
        if let Some(value) = &self.value {
            write!(f, "={value:?}")?;
        }
        write!(f, ": {}; {}", self.problem, self.fix)
    }
}

/// Problems found so far while reading settings; [`finish`](Self::finish)
/// turns them into the result.
#[derive(Debug, Default)]
pub struct Problems(Vec<EnvProblem>);

impl Problems {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one.
    pub fn push(&mut self, problem: EnvProblem) {
        self.0.push(problem);
    }

    /// Records every problem of `error` (a sibling reader's), keeping
    /// their order.
    pub fn append(&mut self, error: EnvError) {
        self.0.extend(error.problems);
    }

    /// Records `result`'s problems, giving its value when there were none.
    pub fn take<T>(&mut self, result: Result<T, EnvError>) -> Option<T> {
        result.map_err(|e| self.append(e)).ok()
    }

    /// Whether none were found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` when nothing was found, else every problem.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, EnvError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(EnvError { problems: self.0 })
        }
    }
}

/// Settings that cannot be used: every problem found, in the order the
/// variables were read (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    problems: Vec<EnvProblem>,
}

impl EnvError {
    /// The problems.
    pub fn problems(&self) -> &[EnvProblem] {
        &self.problems
    }

    /// The variables at fault, in order.
    pub fn vars(&self) -> impl Iterator<Item = &str> + '_ {
        self.problems.iter().map(EnvProblem::var)
    }
}

impl From<EnvProblem> for EnvError {
    fn from(problem: EnvProblem) -> Self {
        EnvError {
            problems: vec![problem],
        }
    }
}

impl IntoIterator for EnvError {
    type Item = EnvProblem;
    type IntoIter = std::vec::IntoIter<EnvProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.problems.into_iter()
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EnvError {}

impl crate::TrustedProxies {
    /// The trusted proxies the environment names: `TRUSTED_PROXY_CIDRS`
    /// (comma-separated networks and addresses; unset: nobody) and
    /// `CLIENT_IP_HEADER` (where they record the client's address;
    /// `x-forwarded-for` by default). Read once, here, and handed to every
    /// layer that needs them.
    pub fn from_env(env: &Env<'_>) -> Result<Self, EnvError> {
        let mut problems = Problems::new();
        let proxies = env.parse("TRUSTED_PROXY_CIDRS", &mut problems, |list| {
            crate::TrustedProxies::parse(list).map_err(|e| {
                const FIX: &str =
                    "write networks and addresses, comma-separated, such as 10.0.0.0/8, 192.168.1.10";
                // The entry's reason may carry its own fix.
                let text = e.to_string();
                match text.split_once("; ") {
                    Some((problem, fix)) => Invalid::new(problem.to_owned(), fix.to_owned()),
                    None => Invalid::new(text, FIX),
                }
            })
        });
        let header = env.parse("CLIENT_IP_HEADER", &mut problems, |name| {
            name.parse::<crate::ClientIpHeader>().map_err(|_| {
                Invalid::new(
                    "not a header name",
                    "write x-forwarded-for, forwarded, or a header such as x-real-ip",
                )
            })
        });
        problems.finish(|| {
            let proxies = proxies.unwrap_or_else(crate::TrustedProxies::none);
            match header {
                Some(header) => proxies.with_header(header),
                None => proxies,
            }
        })
    }
}

impl Env<'_> {
    /// The extra roots for outbound TLS: the bundle `<prefix>_CA_CERTIFICATE`
    /// names, else the one `SSL_CERT_FILE` names, as (variable, path). The
    /// outbound trust adds it to the platform's roots; a client that takes
    /// one bundle only (Redis over TLS) trusts it alone.
    pub fn outbound_extra_bundle(&self, prefix: &str) -> Option<(String, String)> {
        let prefixed = format!("{prefix}_CA_CERTIFICATE");
        self.get(&prefixed)
            .map(|path| (prefixed, path))
            .or_else(|| {
                self.get("SSL_CERT_FILE")
                    .map(|path| ("SSL_CERT_FILE".to_owned(), path))
            })
    }
}

/// The prefix of [`OutboundTrust::from_env`](crate::OutboundTrust::from_env)'s
/// variable: `PORTCULLIS_CA_CERTIFICATE` (also what
/// [`Env::outbound_extra_bundle`] is asked with for Redis's TLS).
pub const DEFAULT_PREFIX: &str = "PORTCULLIS";

#[cfg(feature = "outbound-tls")]
impl crate::OutboundTrust {
    /// The platform's roots plus the bundle `PORTCULLIS_CA_CERTIFICATE`
    /// names, else the one `SSL_CERT_FILE` names (added to the platform's
    /// roots, never replacing them); see
    /// [`from_env_prefixed`](Self::from_env_prefixed).
    pub fn from_env(env: &Env<'_>) -> Result<Self, EnvError> {
        Self::from_env_prefixed(env, DEFAULT_PREFIX)
    }

    /// As [`from_env`](Self::from_env), reading `<prefix>_CA_CERTIFICATE`.
    /// With `SSL_CERT_FILE` or `SSL_CERT_DIR` set, the platform's roots are
    /// read from the distribution's bundle path rather than where those
    /// point (which is the extra bundle, not a replacement store).
    pub fn from_env_prefixed(env: &Env<'_>, prefix: &str) -> Result<Self, EnvError> {
        let prefixed = format!("{prefix}_CA_CERTIFICATE");
        let extra = env.outbound_extra_bundle(prefix);
        let overrides_store = env.is_set("SSL_CERT_FILE") || env.is_set("SSL_CERT_DIR");
        crate::OutboundTrust::assemble(
            extra
                .clone()
                .map(|(var, path)| (var, std::path::PathBuf::from(path))),
            overrides_store,
        )
        .map_err(|error| {
            let (problem, fix) = error.problem_and_fix();
            match extra {
                Some((var, path)) => EnvProblem::invalid(var, path, problem, fix),
                None => EnvProblem::setting(prefixed, problem, fix),
            }
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_blank_is_unset() {
        let env = Env::from_pairs([("A", "  x \n"), ("B", " \t")]);
        assert_eq!(env.get("A").as_deref(), Some("x"));
        assert!(!env.is_set("B"));
        assert!(!env.is_set("C"));
    }

    #[test]
    fn readers_record_each_problem_with_its_variable() {
        let env = Env::from_pairs([
            ("FLAG", "perhaps"),
            ("COUNT", "0"),
            ("WAIT", "0"),
            ("CACHE", "0"),
            ("HEADER", "a b"),
        ]);
        let mut problems = Problems::new();
        assert_eq!(env.flag("FLAG", &mut problems), None);
        assert_eq!(env.count("COUNT", &mut problems, 600), None);
        assert_eq!(env.seconds("WAIT", &mut problems, Zero::Refused), None);
        assert_eq!(
            env.seconds("CACHE", &mut problems, Zero::Allowed),
            Some(Duration::ZERO)
        );
        assert_eq!(
            env.header_name("HEADER", &mut problems, "x-tenant-id"),
            None
        );
        assert_eq!(env.flag("UNSET", &mut problems), None);
        let error = problems.finish(|| ()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "FLAG=\"perhaps\": not a switch; write true or false\n\
             COUNT=\"0\": not a whole number above 0; write one such as 600\n\
             WAIT=\"0\": not a number of seconds above 0; write one such as 30 or 0.5\n\
             HEADER=\"a b\": not a header name; write one such as x-tenant-id"
        );
        assert_eq!(
            error.vars().collect::<Vec<_>>(),
            ["FLAG", "COUNT", "WAIT", "HEADER"]
        );
        assert_eq!(error.problems()[0].value(), Some("perhaps"));
        assert_eq!(error.problems()[0].fix(), "write true or false");
    }

    #[test]
    fn a_setting_problem_does_not_quote_the_value() {
        let problem = EnvProblem::missing_partner("TLS_CERT", "TLS_KEY", "set both");
        assert_eq!(
            problem.to_string(),
            "TLS_CERT: set without TLS_KEY; set both"
        );
        assert_eq!(problem.value(), None);
        assert!(Problems::new().finish(|| 1).is_ok());
    }

    #[test]
    fn trusted_proxies_name_the_entry_and_the_fix() {
        let env = Env::from_pairs([("TRUSTED_PROXY_CIDRS", "10.0.0.1/8")]);
        assert_eq!(
            crate::TrustedProxies::from_env(&env)
                .unwrap_err()
                .to_string(),
            "TRUSTED_PROXY_CIDRS=\"10.0.0.1/8\": trusted proxy entry 1 (\"10.0.0.1/8\"): host bits \
             are set; write the network address (e.g. 10.0.0.0/8)"
        );
        let env = Env::from_pairs([("CLIENT_IP_HEADER", "X-Real-IP")]);
        let proxies = crate::TrustedProxies::from_env(&env).unwrap();
        assert!(proxies.is_empty());
        assert_eq!(proxies.header().header_name(), "x-real-ip");
    }
}
