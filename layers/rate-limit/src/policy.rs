//! [`Policy`]: a named quota, a bucket of its own for every key, and the
//! `RATE_LIMIT_POLICIES` syntax.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{BucketKey, Quota};

/// The most policies one layer applies to a request (each is a bucket
/// checked, and a header item sent).
pub const MAX_POLICIES: usize = 8;

/// A named quota. Each policy is a bucket of its own for every key, so a
/// caller under `second:10/s:20` and `hour:1000/h` has two buckets, and
/// two layers sharing one store with different policy names (a stricter
/// one on `/login`, a looser one elsewhere) never share a bucket.
///
/// The name is what the `RateLimit` and `RateLimit-Policy` headers and
/// [`RateLimitDecision`](crate::RateLimitDecision) call it: 1 to 32
/// lowercase letters, digits, `-` or `_`.
///
/// ```
/// use portcullis_identity::Quota;
/// use portcullis_rate_limit::Policy;
/// use std::time::Duration;
///
/// let login = Policy::new("login", Quota::new(5, Duration::from_secs(60), 5)?)?;
/// assert_eq!(login.name(), "login");
/// assert!(Policy::new("Login!", login.quota()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    name: Arc<str>,
    quota: Quota,
    /// Mixed into every bucket of this policy; worked out once.
    name_hash: u64,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}s:{}",
            self.name,
            self.quota.rate(),
            self.quota.period().as_secs_f64(),
            self.quota.burst()
        )
    }
}

/// A policy, or a list of them, that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The name is empty, too long, or has a character other than
    /// lowercase letters, digits, `-` and `_`.
    BadName(String),
    /// An entry is not `name:rate/period[:burst]`.
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Two policies with one name.
    Duplicate(String),
    /// No policy at all.
    Empty,
    /// More than [`MAX_POLICIES`].
    TooMany(usize),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadName(name) => write!(
                f,
                "policy name {name:?} is not 1 to 32 lowercase letters, digits, - or _"
            ),
            PolicyError::BadEntry { entry, problem } => write!(f, "{entry:?}: {problem}"),
            PolicyError::Duplicate(name) => write!(f, "two policies are named {name:?}"),
            PolicyError::Empty => f.write_str("no policy"),
            PolicyError::TooMany(n) => write!(f, "{n} policies, more than {MAX_POLICIES}"),
        }
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// `quota`, called `name`.
    pub fn new(name: &str, quota: Quota) -> Result<Self, PolicyError> {
        Ok(Policy::named(PolicyName::new(name)?, quota))
    }

    /// `quota` under a name already checked.
    pub(crate) fn named(name: PolicyName, quota: Quota) -> Self {
        Policy {
            name: name.name,
            quota,
            name_hash: name.hash,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name, shared.
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// This policy with another quota (a tenant's plan), same name and
    /// buckets.
    pub(crate) fn with_quota(&self, quota: Quota) -> Policy {
        Policy {
            quota,
            ..self.clone()
        }
    }

    /// `key`'s bucket under this policy. Bytes 8..16 carry the name (byte
    /// 0 still picks the memory shard, and bytes 0..8, the Redis hash tag,
    /// stay the key's: a request's policies share one Cluster slot).
    pub(crate) fn bucket(&self, key: BucketKey) -> BucketKey {
        let mut bytes = key.0;
        for (byte, h) in bytes[8..].iter_mut().zip(self.name_hash.to_le_bytes()) {
            *byte ^= h;
        }
        BucketKey(bytes)
    }

    /// Parses `RATE_LIMIT_POLICIES`: comma-separated
    /// `name:rate/period[:burst]`, the period `s`, `m`, `h` or `d`, with
    /// an optional count (`100/15m`); the burst defaults to the rate.
    ///
    /// ```
    /// use portcullis_rate_limit::Policy;
    ///
    /// let policies = Policy::parse_list("second:10/s:20, hour:1000/h")?;
    /// assert_eq!(policies[0].name(), "second");
    /// assert_eq!((policies[0].quota().rate(), policies[0].quota().burst()), (10, 20));
    /// assert_eq!(policies[1].quota().period().as_secs(), 3600);
    /// assert_eq!(policies[1].quota().burst(), 1000);
    /// # Ok::<(), portcullis_rate_limit::PolicyError>(())
    /// ```
    pub fn parse_list(text: &str) -> Result<Vec<Policy>, PolicyError> {
        let mut policies: Vec<Policy> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let policy = Self::parse_entry(entry)?;
            if policies.iter().any(|p| p.name == policy.name) {
                return Err(PolicyError::Duplicate(policy.name.to_string()));
            }
            policies.push(policy);
        }
        match policies.len() {
            0 => Err(PolicyError::Empty),
            n if n > MAX_POLICIES => Err(PolicyError::TooMany(n)),
            _ => Ok(policies),
        }
    }

    fn parse_entry(entry: &str) -> Result<Policy, PolicyError> {
        let bad = |problem: &str| PolicyError::BadEntry {
            entry: entry.to_owned(),
            problem: problem.to_owned(),
        };
        let mut fields = entry.split(':').map(str::trim);
        let (Some(name), Some(rate_period)) = (fields.next(), fields.next()) else {
            return Err(bad("write name:rate/period[:burst], e.g. second:10/s:20"));
        };
        let burst = fields.next();
        if fields.next().is_some() {
            return Err(bad("too many fields: write name:rate/period[:burst]"));
        }
        let (rate, period) = rate_period
            .split_once('/')
            .ok_or_else(|| bad("the rate needs a period: rate/s, rate/m, rate/h or rate/d"))?;
        let rate: u32 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| bad("the rate is not a whole number above 0"))?;
        let period = parse_period(period.trim())
            .ok_or_else(|| bad("the period is not s, m, h or d, with an optional count (15m)"))?;
        let burst = match burst {
            None => rate,
            Some(burst) => burst
                .parse()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| bad("the burst is not a whole number above 0"))?,
        };
        let quota = Quota::new(rate, period, burst).map_err(|e| bad(&e.to_string()))?;
        Policy::new(&name.to_ascii_lowercase(), quota)
    }
}

/// A checked policy name and its mark on buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyName {
    name: Arc<str>,
    hash: u64,
}

impl PolicyName {
    /// 1 to 32 lowercase letters, digits, `-` or `_`.
    pub(crate) fn new(name: &str) -> Result<Self, PolicyError> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(PolicyError::BadName(name.to_owned()));
        }
        Ok(PolicyName {
            name: Arc::from(name),
            hash: fnv1a(name.as_bytes()),
        })
    }

    /// A name written in this crate, known to be valid.
    pub(crate) fn known(name: &'static str) -> Self {
        PolicyName {
            name: Arc::from(name),
            hash: fnv1a(name.as_bytes()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }
}

/// `s`, `m`, `h`, `d`, optionally after a count: `15m`.
fn parse_period(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (count, unit) = text.split_at(unit_at);
    let count: u64 = if count.is_empty() {
        1
    } else {
        count.parse().ok().filter(|c| *c > 0)?
    };
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "d" | "day" => 86_400,
        _ => return None,
    };
    count.checked_mul(seconds).map(Duration::from_secs)
}

/// FNV-1a, 64-bit: a policy name's stable mark on its buckets (the same
/// in every process, so instances sharing Redis agree).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let list = Policy::parse_list("second:10/s:20,hour:1000/h:1000, quarter:100/15m").unwrap();
        let shape: Vec<(&str, u32, u64, u32)> = list
            .iter()
            .map(|p| {
                (
                    p.name(),
                    p.quota().rate(),
                    p.quota().period().as_secs(),
                    p.quota().burst(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("second", 10, 1, 20),
                ("hour", 1000, 3600, 1000),
                ("quarter", 100, 900, 100)
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_naming_the_entry() {
        for (text, expected) in [
            ("", "no policy"),
            ("second", "\"second\": write name:rate/period[:burst]"),
            ("second:10", "the rate needs a period"),
            ("second:0/s", "the rate is not a whole number above 0"),
            ("second:10/fortnight", "the period is not s, m, h or d"),
            ("second:10/s:0", "the burst is not a whole number above 0"),
            ("second:10/s:1:2", "too many fields"),
            ("a:1/s,a:2/s", "two policies are named \"a\""),
            ("sec ond:1/s", "policy name \"sec ond\""),
        ] {
            let error = Policy::parse_list(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let many = (0..9)
            .map(|i| format!("p{i}:1/s"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Policy::parse_list(&many), Err(PolicyError::TooMany(9)));
    }

    proptest::proptest! {
        /// Anything at all: an answer, never a panic.
        #[test]
        fn any_text_gets_an_answer(text in ".{0,80}") {
            let _ = Policy::parse_list(&text);
        }

        /// Well-formed lists read as written, whatever the spacing and case.
        #[test]
        fn well_formed_lists_read_as_written(
            entries in proptest::collection::vec(
                ("[a-z][a-z0-9_-]{0,10}", 1u32..100_000, 1u64..1000, proptest::sample::select(vec!["s", "m", "h", "d"]), proptest::option::of(1u32..100_000)),
                1..=MAX_POLICIES,
            )
        ) {
            let mut names = std::collections::HashSet::new();
            let entries: Vec<_> = entries.into_iter().filter(|e| names.insert(e.0.clone())).collect();
            let text: Vec<String> = entries
                .iter()
                .map(|(name, rate, count, unit, burst)| match burst {
                    Some(burst) => format!(" {}:{rate}/{count}{} : {burst} ", name.to_uppercase(), unit.to_uppercase()),
                    None => format!("{name}:{rate}/{count}{unit}"),
                })
                .collect();
            let policies = Policy::parse_list(&text.join(",")).unwrap();
            for ((name, rate, count, unit, burst), policy) in entries.iter().zip(&policies) {
                let seconds = count * match *unit { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
                proptest::prop_assert_eq!(policy.name(), name.as_str());
                proptest::prop_assert_eq!(policy.quota().rate(), *rate);
                proptest::prop_assert_eq!(policy.quota().period().as_secs(), seconds);
                proptest::prop_assert_eq!(policy.quota().burst(), burst.unwrap_or(*rate));
            }
        }
    }

    #[test]
    fn each_policy_is_its_own_bucket_in_the_keys_slot() {
        let quota = Quota::per_minute(10, 10).unwrap();
        let (a, b) = (
            Policy::new("login", quota).unwrap(),
            Policy::new("api", quota).unwrap(),
        );
        let key = BucketKey([7; 16]);
        assert_ne!(a.bucket(key), b.bucket(key));
        assert_eq!(a.bucket(key).0[..8], key.0[..8]);
        assert_eq!(
            a.bucket(key),
            a.with_quota(Quota::per_minute(1, 1).unwrap()).bucket(key)
        );
    }
}
