//! The PROXY protocol (v1 text, v2 binary) on the listeners: the client's
//! address as a layer-4 load balancer (AWS NLB, HAProxy `mode tcp`, nginx
//! `stream`) saw it, read before the TLS handshake, and only from peers
//! trusted to send it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use portcullis_identity::{ClientIdentity, ProxiedTls, TrustedProxies};
use tokio::net::TcpStream;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// The largest v2 header read: HAProxy's SSL TLVs fit many times over.
const V2_MAX: usize = 16 + 4096;

/// Which PROXY protocol versions a listener accepts from trusted peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProxyProtocolVersions {
    /// None: the PROXY protocol is off (the default).
    #[default]
    Off,
    /// The text header (`send-proxy`).
    V1,
    /// The binary header (`send-proxy-v2`).
    V2,
    /// Either.
    Any,
}

impl ProxyProtocolVersions {
    fn accepts(self, version: Version) -> bool {
        matches!(
            (self, version),
            (ProxyProtocolVersions::Any, _)
                | (ProxyProtocolVersions::V1, Version::V1)
                | (ProxyProtocolVersions::V2, Version::V2)
        )
    }
}

/// How a listener reads the PROXY protocol: which versions, from which
/// peers (by TCP address: the load balancers), and whether a trusted peer
/// may also connect without a header.
///
/// A peer outside `trusted` is its own client: its connection is served as
/// it is, unless it *starts* with a PROXY header, which is refused (never
/// read as a trusted one). From a trusted peer the header is required
/// (a missing or malformed one is refused) unless
/// [`allow_missing`](Self::allow_missing) is set. A `LOCAL` header (a
/// health check) keeps the peer's own address. The header is read under
/// [`read_timeout`](Self::read_timeout).
///
/// ```
/// use portcullis_client_cert::{ProxyProtocol, ProxyProtocolVersions};
///
/// let nlb = ProxyProtocol::new(ProxyProtocolVersions::V2, "10.0.0.0/8".parse()?);
/// assert!(nlb.is_on());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    versions: ProxyProtocolVersions,
    trusted: TrustedProxies,
    allow_missing: bool,
    read_timeout: Duration,
}

impl Default for ProxyProtocol {
    fn default() -> Self {
        ProxyProtocol::new(ProxyProtocolVersions::Off, TrustedProxies::none())
    }
}

/// What a PROXY header said about the connection.
#[derive(Debug, Clone)]
pub(crate) struct Proxied {
    /// The client, as the load balancer saw it.
    pub(crate) client: SocketAddr,
    /// The load balancer, when a header named another client.
    pub(crate) proxy: Option<SocketAddr>,
    /// The client certificate the load balancer verified (its SSL TLVs).
    pub(crate) identity: Option<ClientIdentity>,
    /// What its SSL TLVs said of the client's TLS.
    pub(crate) tls: Option<ProxiedTls>,
}

impl Proxied {
    /// The peer is its own client: no header named another.
    fn own(peer: SocketAddr) -> Self {
        Proxied {
            client: peer,
            proxy: None,
            identity: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl ProxyProtocol {
    /// Reads `versions` from `trusted` peers, requiring the header from
    /// them, within 10 s.
    pub fn new(versions: ProxyProtocolVersions, trusted: TrustedProxies) -> Self {
        ProxyProtocol {
            versions,
            trusted,
            allow_missing: false,
            read_timeout: Duration::from_secs(10),
        }
    }

    /// Trusted peers may also connect without a header (mixed traffic:
    /// health checks, or a migration); their connections are then their
    /// own.
    #[must_use]
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// How long a peer has to send its header (default 10 s).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Whether any version is read.
    pub fn is_on(&self) -> bool {
        self.versions != ProxyProtocolVersions::Off
    }

    /// Reads the header, if this connection carries one it may: the
    /// client's address and the load balancer's; or an error, and the
    /// connection is to be closed.
    pub(crate) async fn read(&self, stream: &mut TcpStream) -> io::Result<Proxied> {
        self.read_until(stream, tokio::time::Instant::now() + self.read_timeout)
            .await
    }

    /// [`read`](Self::read), by `deadline` at the latest (a TLS listener's
    /// handshake deadline, which the header's read counts against).
    pub(crate) async fn read_until(
        &self,
        stream: &mut TcpStream,
        deadline: tokio::time::Instant,
    ) -> io::Result<Proxied> {
        let peer = stream.peer_addr()?;
        if !self.is_on() {
            return Ok(Proxied::own(peer));
        }
        let deadline = deadline.min(tokio::time::Instant::now() + self.read_timeout);
        tokio::time::timeout_at(deadline, self.read_header(stream, peer))
            .await
            .map_err(|_| refused("no complete PROXY header in time"))?
    }

    async fn read_header(&self, stream: &mut TcpStream, peer: SocketAddr) -> io::Result<Proxied> {
        let own = Proxied::own(peer);
        let trusted = self.trusted.contains(peer.ip());
        let Some((version, length)) = header_extent(stream).await? else {
            return if trusted && !self.allow_missing {
                Err(refused("a trusted peer sent no PROXY header"))
            } else {
                Ok(own)
            };
        };
        if !trusted {
            return Err(refused(
                "a PROXY header from a peer not trusted to send one",
            ));
        }
        if !self.versions.accepts(version) {
            return Err(refused("a PROXY header of a version not accepted"));
        }
        let mut header = vec![0; length];
        tokio::io::AsyncReadExt::read_exact(stream, &mut header).await?;
        let parsed = parse(&header).map_err(|e| refused(&e.to_string()))?;
        let identity = parsed
            .ssl
            .as_ref()
            .and_then(|ssl| ssl.verified_common_name.as_deref())
            .map(|cn| ClientIdentity::from_proxy_protocol(peer.ip(), cn));
        let tls = parsed.ssl.map(|ssl| ProxiedTls {
            version: ssl.version.map(String::into_boxed_str),
            certificate_verified: ssl.verified_common_name.is_some(),
        });
        Ok(match parsed.client {
            Some(client) => Proxied {
                client,
                proxy: Some(peer),
                identity,
                tls,
            },
            None => own,
        })
    }
}

/// The connection is closed: why, for the log.
fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// Looks at the connection's first bytes without taking them: a PROXY
/// header's version and length, or `None` when it does not start with one.
async fn header_extent(stream: &TcpStream) -> io::Result<Option<(Version, usize)>> {
    // Enough for a whole v1 header and a v2 header's fixed 16 bytes; on
    // the stack, as this runs for every new connection.
    let mut buf = [0u8; V1_MAX];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match extent(&buf[..n]) {
            Extent::Header(version, length) if length <= V2_MAX => {
                return Ok(Some((version, length)));
            }
            Extent::Header(..) => return Err(refused("a PROXY header longer than accepted")),
            Extent::NotAHeader => return Ok(None),
            Extent::Malformed(why) => return Err(refused(why)),
            Extent::NeedMore if n >= buf.len() => {
                return Err(refused("a PROXY v1 header without its CRLF"));
            }
            Extent::NeedMore => {
                // The rest of the header has not arrived yet: peek again
                // once it may have, without spinning.
                if n == seen {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = n;
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Extent {
    Header(Version, usize),
    NotAHeader,
    NeedMore,
    Malformed(&'static str),
}

/// Where a header starting `bytes` ends, from what has arrived so far.
fn extent(bytes: &[u8]) -> Extent {
    const V1_PREFIX: &[u8] = b"PROXY ";
    if bytes.len() < V2_SIGNATURE.len() && V2_SIGNATURE.starts_with(bytes) {
        return Extent::NeedMore;
    }
    if bytes.starts_with(V2_SIGNATURE) {
        let Some(length) = bytes.get(14..16) else {
            return Extent::NeedMore;
        };
        return Extent::Header(
            Version::V2,
            16 + usize::from(u16::from_be_bytes([length[0], length[1]])),
        );
    }
    if bytes.len() < V1_PREFIX.len() && V1_PREFIX.starts_with(bytes) {
        return Extent::NeedMore;
    }
    if !bytes.starts_with(V1_PREFIX) {
        return Extent::NotAHeader;
    }
    match bytes.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end + 2 <= V1_MAX => Extent::Header(Version::V1, end + 2),
        Some(_) => Extent::Malformed("a PROXY v1 header longer than 107 bytes"),
        None if bytes.len() >= V1_MAX => {
            Extent::Malformed("a PROXY v1 header without its CRLF in 107 bytes")
        }
        None => Extent::NeedMore,
    }
}

/// A PROXY header that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeaderError(String);

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed PROXY header: {}", self.0)
    }
}

impl std::error::Error for ProxyHeaderError {}

/// Parses one whole PROXY header (v1 or v2): the client's address, or
/// `None` for a `LOCAL` command, `UNKNOWN` or a non-IP address family
/// (the peer's own address stands). Never panics (fuzzed).
///
/// ```
/// use portcullis_client_cert::parse_proxy_header;
///
/// let client = parse_proxy_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n")?;
/// assert_eq!(client, Some("203.0.113.7:51000".parse()?));
/// assert_eq!(parse_proxy_header(b"PROXY UNKNOWN\r\n")?, None);
/// assert!(parse_proxy_header(b"PROXY TCP4 nowhere\r\n").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_proxy_header(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    parse(header).map(|parsed| parsed.client)
}

/// What a header holds that the listener uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    client: Option<SocketAddr>,
    /// The SSL TLV, when the balancer terminated TLS.
    ssl: Option<Ssl>,
}

/// An SSL TLV: the client's TLS version, and the CN of a client
/// certificate the balancer verified.
#[derive(Debug, Default, PartialEq, Eq)]
struct Ssl {
    version: Option<String>,
    verified_common_name: Option<String>,
}

/// `PP2_TYPE_SSL` and its sub-types `PP2_SUBTYPE_SSL_VERSION` and
/// `PP2_SUBTYPE_SSL_CN`.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
/// `PP2_CLIENT_SSL`: the client connected over TLS.
const PP2_CLIENT_SSL: u8 = 0x01;
/// `PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS`: a certificate was
/// presented on this connection or its session.
const PP2_CLIENT_CERT: u8 = 0x02 | 0x04;

/// A sub-TLV value as one line of text: UTF-8 with no control character.
fn text(value: &[u8]) -> Option<String> {
    std::str::from_utf8(value)
        .ok()
        .filter(|text| !text.is_empty() && !text.chars().any(char::is_control))
        .map(str::to_owned)
}

/// Reads an SSL TLV; `None` when it is malformed or the client did not
/// connect over TLS. The CN counts only when a certificate was presented
/// and `verify` is 0 (verified).
fn ssl(value: &[u8]) -> Option<Ssl> {
    let (&client, rest) = value.split_first()?;
    let verify = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    if client & PP2_CLIENT_SSL == 0 {
        return None;
    }
    let verified = client & PP2_CLIENT_CERT != 0 && verify == 0;
    let mut ssl = Ssl::default();
    let mut sub = &rest[4..];
    while let [kind, hi, lo, tail @ ..] = sub {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let value = tail.get(..len)?;
        match *kind {
            PP2_SUBTYPE_SSL_VERSION => ssl.version = text(value),
            PP2_SUBTYPE_SSL_CN if verified => ssl.verified_common_name = text(value),
            _ => {}
        }
        sub = &tail[len..];
    }
    Some(ssl)
}

fn parse(header: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let malformed = |e: &dyn fmt::Display| ProxyHeaderError(e.to_string());
    if header.starts_with(V2_SIGNATURE) {
        let parsed = ppp::v2::Header::try_from(header).map_err(|e| malformed(&e))?;
        if parsed.len() != header.len() {
            return Err(ProxyHeaderError("trailing bytes".to_owned()));
        }
        if parsed.command == ppp::v2::Command::Local {
            return Ok(Parsed::default());
        }
        let client = match parsed.addresses {
            ppp::v2::Addresses::IPv4(ip) => {
                Some(SocketAddr::from((ip.source_address, ip.source_port)))
            }
            ppp::v2::Addresses::IPv6(ip) => {
                Some(SocketAddr::from((ip.source_address, ip.source_port)))
            }
            _ => None,
        };
        let mut ssl = None;
        for tlv in parsed.tlvs() {
            let tlv = tlv.map_err(|e| malformed(&e))?;
            if tlv.kind == PP2_TYPE_SSL && ssl.is_none() {
                ssl = self::ssl(&tlv.value);
            }
        }
        return Ok(Parsed { client, ssl });
    }
    let parsed = ppp::v1::Header::try_from(header).map_err(|e| malformed(&e))?;
    if parsed.header.len() != header.len() {
        return Err(ProxyHeaderError("trailing bytes".to_owned()));
    }
    let client = match parsed.addresses {
        ppp::v1::Addresses::Tcp4(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        ppp::v1::Addresses::Tcp6(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        ppp::v1::Addresses::Unknown => None,
    };
    Ok(Parsed { client, ssl: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SSL TLV: client flags, verify result, then a CN sub-TLV.
    fn ssl_tlv(client: u8, verify: u32, cn: &[u8]) -> Vec<u8> {
        let mut value = vec![client];
        value.extend_from_slice(&verify.to_be_bytes());
        value.push(PP2_SUBTYPE_SSL_CN);
        value.extend_from_slice(&u16::try_from(cn.len()).unwrap().to_be_bytes());
        value.extend_from_slice(cn);
        let mut tlv = vec![PP2_TYPE_SSL];
        tlv.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        tlv.extend_from_slice(&value);
        tlv
    }

    #[test]
    fn only_a_verified_certificate_names_a_client() {
        let addresses = [203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 1, 0xBB];
        let with = |tlv: Vec<u8>| {
            let mut payload = addresses.to_vec();
            payload.extend_from_slice(&tlv);
            parse(&v2(1, 0x11, &payload))
                .unwrap()
                .ssl
                .and_then(|ssl| ssl.verified_common_name)
        };
        // SSL, a certificate on the connection, verified.
        assert_eq!(
            with(ssl_tlv(0x01 | 0x02, 0, b"client.example.com")),
            Some("client.example.com".to_owned())
        );
        // Not verified (verify != 0): nothing.
        assert_eq!(with(ssl_tlv(0x01 | 0x02, 1, b"client.example.com")), None);
        // No certificate presented: nothing.
        assert_eq!(with(ssl_tlv(0x01, 0, b"client.example.com")), None);
        // Not over TLS at all: nothing.
        assert_eq!(with(ssl_tlv(0x02, 0, b"client.example.com")), None);
        // A CN with a control character: nothing.
        assert_eq!(with(ssl_tlv(0x03, 0, b"a\nb")), None);
        // A truncated sub-TLV: nothing, never a panic.
        // The version sub-TLV is read beside the CN.
        let mut versioned = ssl_tlv(0x03, 0, b"client.example.com");
        versioned.extend_from_slice(&[PP2_SUBTYPE_SSL_VERSION, 0, 7]);
        versioned.extend_from_slice(b"TLSv1.3");
        let len = u16::try_from(versioned.len() - 3).unwrap().to_be_bytes();
        versioned[1..3].copy_from_slice(&len);
        let mut payload = addresses.to_vec();
        payload.extend_from_slice(&versioned);
        let ssl = parse(&v2(1, 0x11, &payload)).unwrap().ssl.unwrap();
        assert_eq!(ssl.version.as_deref(), Some("TLSv1.3"));
        assert_eq!(
            ssl.verified_common_name.as_deref(),
            Some("client.example.com")
        );
        let mut short = ssl_tlv(0x03, 0, b"client");
        short.truncate(short.len() - 2);
        let len = u16::try_from(short.len() - 3).unwrap().to_be_bytes();
        short[1..3].copy_from_slice(&len);
        assert_eq!(with(short), None);
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        let len = u16::try_from(addresses.len()).unwrap();
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    #[test]
    fn extents_from_partial_bytes() {
        assert_eq!(extent(b"PRO"), Extent::NeedMore);
        assert_eq!(extent(b"PROXY TCP4 1.2.3.4"), Extent::NeedMore);
        assert_eq!(
            extent(b"PROXY UNKNOWN\r\n\x16\x03\x01"),
            Extent::Header(Version::V1, 15)
        );
        assert_eq!(extent(b"\x16\x03\x01\x02\x00"), Extent::NotAHeader);
        assert_eq!(extent(b"GET / HTTP/1.1\r\n"), Extent::NotAHeader);
        assert_eq!(extent(&V2_SIGNATURE[..5]), Extent::NeedMore);
        let header = v2(1, 0x11, &[203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 1, 0xBB]);
        assert_eq!(extent(&header[..14]), Extent::NeedMore);
        assert_eq!(extent(&header), Extent::Header(Version::V2, 28));
        assert!(matches!(
            extent(&[b'P', b'R', b'O', b'X', b'Y', b' '].repeat(20)),
            Extent::Malformed(_)
        ));
    }

    #[test]
    fn both_versions_name_the_client() {
        let header = v2(1, 0x11, &[203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 1, 0xBB]);
        let client = |bytes: &[u8]| parse(bytes).map(|p| p.client);
        assert_eq!(
            client(&header),
            Ok(Some("203.0.113.7:51000".parse().unwrap()))
        );
        // LOCAL (a health check): the peer's own address stands.
        let local = v2(0, 0x00, &[]);
        assert_eq!(client(&local), Ok(None));
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        assert_eq!(client(v6), Ok(Some("[2001:db8::7]:51000".parse().unwrap())));
        assert!(parse(b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n").is_err());
        assert!(parse(&v2(1, 0x11, &[1, 2, 3])).is_err());
    }
}
