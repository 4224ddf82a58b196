//! `REDIS_URL`'s forms: one server, or a Redis Cluster's nodes,
//! comma-separated. Read once here for the environment's start-up check
//! and for the store's connection alike. Never echoes the URL: it may
//! carry a password.

/// A Redis URL whose form is right: one server, or a Cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisNodes<'a> {
    nodes: Vec<&'a str>,
}

/// What is wrong with a Redis URL's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedisUrlError {
    /// Not `redis://`, `rediss://` (or, alone, a Unix socket).
    NotRedis,
    /// A Cluster's nodes mix `redis://` and `rediss://`.
    MixedTls,
}

impl RedisUrlError {
    /// What is wrong.
    pub(crate) fn problem(self) -> &'static str {
        match self {
            RedisUrlError::NotRedis => "not a Redis URL, nor a Cluster's nodes",
            RedisUrlError::MixedTls => "a Cluster's nodes mix redis:// and rediss://",
        }
    }

    /// How to write it.
    pub(crate) fn fix(self) -> &'static str {
        match self {
            RedisUrlError::NotRedis => {
                "write redis://host:6379/0, rediss://host:6380 for TLS, or a Cluster's nodes \
                 comma-separated: redis://10.0.0.1:6379,redis://10.0.0.2:6379"
            }
            RedisUrlError::MixedTls => {
                "write every node with rediss:// for TLS, or every one with redis://"
            }
        }
    }
}

impl<'a> RedisNodes<'a> {
    /// `url` read as one server or a Cluster's nodes.
    pub(crate) fn parse(url: &'a str) -> Result<Self, RedisUrlError> {
        let nodes: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let tcp = |node: &&str| node.starts_with("redis://") || node.starts_with("rediss://");
        let unix = |node: &&str| node.starts_with("redis+unix://") || node.starts_with("unix://");
        let fine = match nodes.as_slice() {
            [] => false,
            [one] => tcp(one) || unix(one),
            many => many.iter().all(tcp),
        };
        if !fine {
            return Err(RedisUrlError::NotRedis);
        }
        let parsed = RedisNodes { nodes };
        let tls = parsed.nodes.iter().filter(|n| is_tls(n)).count();
        if tls != 0 && tls != parsed.nodes.len() {
            return Err(RedisUrlError::MixedTls);
        }
        Ok(parsed)
    }

    /// The nodes (one for a single server).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn nodes(&self) -> &[&'a str] {
        &self.nodes
    }

    /// Whether several nodes name a Cluster.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    /// Whether the connection is TLS (`rediss://`).
    pub(crate) fn tls(&self) -> bool {
        self.nodes.iter().all(|n| is_tls(n))
    }
}

fn is_tls(node: &str) -> bool {
    node.starts_with("rediss://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_or_a_clusters_nodes() {
        let one = RedisNodes::parse(" rediss://:secret@redis.internal:6380/0 ").unwrap();
        assert_eq!(one.nodes(), ["rediss://:secret@redis.internal:6380/0"]);
        assert!(one.tls() && !one.is_cluster());
        let cluster = RedisNodes::parse("redis://10.0.0.1:6379, redis://10.0.0.2:6379,").unwrap();
        assert!(cluster.is_cluster() && !cluster.tls());
        assert!(RedisNodes::parse("redis+unix:///run/redis.sock").is_ok());
        for (url, error) in [
            ("", RedisUrlError::NotRedis),
            ("http://example/", RedisUrlError::NotRedis),
            (
                "redis+unix:///a.sock,redis://b:6379",
                RedisUrlError::NotRedis,
            ),
            ("redis://a:6379,rediss://b:6380", RedisUrlError::MixedTls),
        ] {
            assert_eq!(RedisNodes::parse(url), Err(error), "{url}");
        }
    }
}
