//! Which peers are trusted proxies, and who the client is behind them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::header::{FORWARDED, HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::forwarded::{self, Node};

/// The default for [`TrustedProxies::with_max_hops`].
pub const DEFAULT_MAX_HOPS: usize = 16;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Which header trusted proxies record the client address in.
///
/// Exactly one header is read; there is never a fall-back from one to
/// another, because a header the proxy does not set is one the client does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
    /// A header with the address as the proxy saw it, such as nginx's
    /// `X-Real-IP` or `CF-Connecting-IP`. Read like a list, so a client's
    /// forgery in an extra line or a left part is walked past.
    Single(HeaderName),
}

impl ClientIpHeader {
    /// The header's name.
    pub fn header_name(&self) -> &HeaderName {
        match self {
            ClientIpHeader::XForwardedFor => &X_FORWARDED_FOR,
            ClientIpHeader::Forwarded => &FORWARDED,
            ClientIpHeader::Single(name) => name,
        }
    }
}

impl FromStr for ClientIpHeader {
    type Err = ProxyConfigError;

    /// `x-forwarded-for`, `forwarded` (any case), or any other header name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(ClientIpHeader::XForwardedFor)
        } else if name.eq_ignore_ascii_case("forwarded") {
            Ok(ClientIpHeader::Forwarded)
        } else {
            HeaderName::from_bytes(name.as_bytes())
                .map(ClientIpHeader::Single)
                .map_err(|_| ProxyConfigError::InvalidHeaderName {
                    value: s.to_owned(),
                })
        }
    }
}

/// The reverse proxies whose forwarding headers are believed.
///
/// Nothing is trusted by default. A peer outside the set *is* the client,
/// whatever headers it sends. From a trusted peer, the configured header's
/// entries are walked from the right (the entry the nearest proxy appended)
/// past every trusted address; the first untrusted one is the client.
///
/// # Example
///
/// ```
/// use http::HeaderMap;
/// use portcullis_identity::TrustedProxies;
///
/// let proxies: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse()?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3".parse()?);
///
/// // Through our proxies: the address the outermost one saw.
/// assert_eq!(
///     proxies.client_ip(&headers, "10.9.9.9".parse()?),
///     "203.0.113.7".parse::<std::net::IpAddr>()?
/// );
/// // Straight from the internet: the header is the caller's own claim.
/// assert_eq!(
///     proxies.client_ip(&headers, "198.51.100.4".parse()?),
///     "198.51.100.4".parse::<std::net::IpAddr>()?
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    /// The same networks as integer network/mask pairs: one AND and one
    /// compare per check on the hot path.
    masks: Arc<[NetMask]>,
    header: ClientIpHeader,
    max_hops: usize,
}

impl TrustedProxies {
    /// Trusts these networks. IPv4-mapped IPv6 networks
    /// (`::ffff:10.0.0.0/104`) are folded to IPv4.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Arc<[IpNet]> = nets.into_iter().map(canonical_net).collect();
        TrustedProxies {
            masks: nets.iter().map(NetMask::from).collect(),
            nets,
            header: ClientIpHeader::default(),
            max_hops: DEFAULT_MAX_HOPS,
        }
    }

    /// Trusts no one: every peer is the client.
    pub fn none() -> Self {
        Self::new([])
    }

    /// Parses a comma-separated list of CIDRs and bare addresses (`/32` or
    /// `/128`), e.g. `"10.0.0.0/8, 192.168.1.1, 2001:db8::/32"`. Empty
    /// entries are skipped, so `""` trusts no one.
    ///
    /// Refused, with an error naming the entry: anything that is not an
    /// address or network, a network with host bits set (`10.0.0.1/8`:
    /// write `10.0.0.0/8`), and a `/0`, which would let every client forge
    /// its address.
    pub fn parse(list: &str) -> Result<Self, ProxyConfigError> {
        let mut nets = Vec::new();
        for (index, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let invalid = |reason: &'static str| ProxyConfigError::InvalidProxyEntry {
                position: index + 1,
                entry: entry.to_owned(),
                reason,
            };
            let net = if entry.contains('/') {
                let net: IpNet = entry
                    .parse()
                    .map_err(|_| invalid("not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"))?;
                if net.network() != net.addr() {
                    return Err(invalid(
                        "host bits are set; write the network address (e.g. 10.0.0.0/8)",
                    ));
                }
                net
            } else {
                let ip: IpAddr = entry
                    .parse()
                    .map_err(|_| invalid("not an IP address or CIDR"))?;
                IpNet::from(ip)
            };
            if net.prefix_len() == 0 {
                return Err(invalid(
                    "a /0 trusts every address, so any client could forge its forwarding headers",
                ));
            }
            nets.push(net);
        }
        Ok(Self::new(nets))
    }

    /// Reads the client address from `header` instead of `X-Forwarded-For`.
    #[must_use]
    pub fn with_header(mut self, header: ClientIpHeader) -> Self {
        self.header = header;
        self
    }

    /// Examines at most `max_hops` header entries (default
    /// [`DEFAULT_MAX_HOPS`]); past that the walk stops at the last trusted
    /// address reached. Long headers are not refused, only not walked.
    #[must_use]
    pub fn with_max_hops(mut self, max_hops: usize) -> Self {
        self.max_hops = max_hops;
        self
    }

    /// The trusted networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// The header client addresses are read from.
    pub fn header(&self) -> &ClientIpHeader {
        &self.header
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 compares as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.masks.iter().any(|mask| mask.contains(ip))
    }

    /// The client's address for a request that arrived from `peer`.
    pub fn client_ip(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        self.resolve(headers, peer).ip()
    }

    /// Like [`client_ip`](Self::client_ip), and says how the answer was
    /// reached.
    pub fn resolve(&self, headers: &HeaderMap, peer: IpAddr) -> ClientIpResolution {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return ClientIpResolution::new(peer, ResolvedBy::UntrustedPeer);
        }
        let is_forwarded = matches!(self.header, ClientIpHeader::Forwarded);
        // Lines in order form one list; walk it from the right.
        let entries = headers
            .get_all(self.header.header_name())
            .into_iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','));

        let mut last_trusted = peer;
        let mut hops = 0;
        for entry in entries {
            if hops == self.max_hops {
                return self.stopped(last_trusted, ResolvedBy::HopLimit { hops });
            }
            hops += 1;
            let node = if is_forwarded {
                forwarded::parse_forwarded_element(entry)
            } else {
                forwarded::parse_list_entry(entry)
            };
            match node {
                Node::Addr(ip) if self.contains(ip) => last_trusted = ip,
                Node::Addr(ip) => {
                    return ClientIpResolution::new(ip, ResolvedBy::Forwarded { hops });
                }
                Node::Unknown | Node::Obfuscated | Node::Invalid => {
                    return self.stopped(last_trusted, ResolvedBy::Unresolvable { hops });
                }
            }
        }
        let by = if hops == 0 {
            ResolvedBy::NoForwardingHeader
        } else {
            ResolvedBy::AllTrusted { hops }
        };
        ClientIpResolution::new(last_trusted, by)
    }

    fn stopped(&self, ip: IpAddr, by: ResolvedBy) -> ClientIpResolution {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            header = %self.header.header_name(),
            client_ip = %ip,
            reason = ?by,
            "client IP walk stopped at the last trusted address"
        );
        ClientIpResolution::new(ip, by)
    }
}

impl Default for TrustedProxies {
    /// The same as [`TrustedProxies::none`].
    fn default() -> Self {
        Self::none()
    }
}

impl FromStr for TrustedProxies {
    type Err = ProxyConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedProxies")
            .field("nets", &self.nets)
            .field("header", &self.header.header_name())
            .field("max_hops", &self.max_hops)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NetMask {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl NetMask {
    fn contains(self, ip: IpAddr) -> bool {
        match (self, ip) {
            (NetMask::V4 { network, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == network,
            (NetMask::V6 { network, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == network,
            _ => false,
        }
    }
}

impl From<&IpNet> for NetMask {
    fn from(net: &IpNet) -> Self {
        match net {
            IpNet::V4(v4) => {
                let mask = u32::from(v4.netmask());
                NetMask::V4 {
                    network: u32::from(v4.addr()) & mask,
                    mask,
                }
            }
            IpNet::V6(v6) => {
                let mask = u128::from(v6.netmask());
                NetMask::V6 {
                    network: u128::from(v6.addr()) & mask,
                    mask,
                }
            }
        }
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// The client address and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIpResolution {
    ip: IpAddr,
    by: ResolvedBy,
}

impl ClientIpResolution {
    fn new(ip: IpAddr, by: ResolvedBy) -> Self {
        ClientIpResolution { ip, by }
    }

    /// The client address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// How it was found.
    pub fn by(&self) -> ResolvedBy {
        self.by
    }
}

/// How [`TrustedProxies::resolve`] reached its answer. `hops` counts the
/// header entries examined, the last one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolvedBy {
    /// The peer is not a trusted proxy, so it is the client; headers were
    /// ignored.
    UntrustedPeer,
    /// The peer is trusted but sent no forwarding header: it is the client.
    NoForwardingHeader,
    /// The first untrusted entry from the right.
    Forwarded {
        /// Entries examined.
        hops: usize,
    },
    /// Every entry was a trusted proxy; the leftmost is the answer.
    AllTrusted {
        /// Entries examined.
        hops: usize,
    },
    /// An entry was garbage, `unknown` or obfuscated; the answer is the last
    /// trusted address reached (the walk never skips past such an entry).
    Unresolvable {
        /// Entries examined, the bad one included.
        hops: usize,
    },
    /// The hop cap was reached; the answer is the last trusted address.
    HopLimit {
        /// Entries examined.
        hops: usize,
    },
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyConfigError {
    /// An entry of a trusted-proxy list.
    InvalidProxyEntry {
        /// 1-based position in the comma-separated list.
        position: usize,
        /// The entry as written.
        entry: String,
        /// What is wrong and how to write it.
        reason: &'static str,
    },
    /// A client-IP header setting that is not a header name.
    InvalidHeaderName {
        /// The value as written.
        value: String,
    },
}

impl fmt::Display for ProxyConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyConfigError::InvalidProxyEntry {
                position,
                entry,
                reason,
            } => write!(f, "trusted proxy entry {position} ({entry:?}): {reason}"),
            ProxyConfigError::InvalidHeaderName { value } => write!(
                f,
                "{value:?} is not a header name; use x-forwarded-for, forwarded, or a header \
                 such as x-real-ip"
            ),
        }
    }
}

impl std::error::Error for ProxyConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_names_bad_entries() {
        let proxies = TrustedProxies::parse(" 10.0.0.0/8,192.168.1.1 , ,2001:db8::/32,").unwrap();
        assert_eq!(proxies.nets().len(), 3);
        assert!(proxies.contains("192.168.1.1".parse().unwrap()));
        assert!(!proxies.contains("192.168.1.2".parse().unwrap()));
        assert!(TrustedProxies::parse("").unwrap().is_empty());

        let err = TrustedProxies::parse("10.0.0.0/8, 10.0.0.0/33").unwrap_err();
        assert_eq!(
            err.to_string(),
            "trusted proxy entry 2 (\"10.0.0.0/33\"): not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
        );
        let err = TrustedProxies::parse("proxy.internal").unwrap_err();
        assert_eq!(
            err.to_string(),
            "trusted proxy entry 1 (\"proxy.internal\"): not an IP address or CIDR"
        );
        assert!(matches!(
            TrustedProxies::parse("10.0.0.1/8"),
            Err(ProxyConfigError::InvalidProxyEntry { position: 1, .. })
        ));
        assert!(TrustedProxies::parse("0.0.0.0/0").is_err());
        assert!(TrustedProxies::parse("::/0").is_err());
    }

    #[test]
    fn mapped_networks_and_peers_compare_as_ipv4() {
        let proxies = TrustedProxies::new(["::ffff:10.0.0.0/104".parse().unwrap()]);
        assert_eq!(proxies.nets(), &["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert!(proxies.contains("10.1.1.1".parse().unwrap()));
        assert!(proxies.contains("::ffff:10.1.1.1".parse().unwrap()));
        let v4 = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert!(v4.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!v4.contains("::10.1.1.1".parse().unwrap()));
    }

    #[test]
    fn header_setting_parses() {
        assert_eq!("X-Forwarded-For".parse(), Ok(ClientIpHeader::XForwardedFor));
        assert_eq!("forwarded".parse(), Ok(ClientIpHeader::Forwarded));
        assert_eq!(
            "X-Real-IP".parse(),
            Ok(ClientIpHeader::Single(HeaderName::from_static("x-real-ip")))
        );
        assert!("bad header".parse::<ClientIpHeader>().is_err());
    }
}
