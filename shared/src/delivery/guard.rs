//! Outbound guard against server-side request forgery (SSRF).
//!
//! Integration URLs are checked when they are saved ([`OutboundGuard::check_url`]) and
//! again before each send ([`OutboundGuard::check_target`]); host names are checked when
//! they are resolved ([`GuardedResolver`]), so the connection only ever goes to an
//! address that passed [`OutboundGuard::check_ip`].

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Longest integration URL accepted at save time, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Environment variable through which an operator allows networks.
pub const ALLOW_NETWORKS_ENV: &str = "AUTOMATIONS_ALLOW_NETWORKS";

const V4_REFUSED: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "the \"this network\" range"),
    (v4(10, 0, 0, 0, 8), "a private network"),
    (v4(100, 64, 0, 0, 10), "the carrier-grade NAT network"),
    (v4(127, 0, 0, 0, 8), "the loopback network"),
    (
        v4(169, 254, 0, 0, 16),
        "a link-local network (used by cloud metadata services)",
    ),
    (v4(172, 16, 0, 0, 12), "a private network"),
    (
        v4(192, 0, 0, 0, 24),
        "the IETF protocol assignments network",
    ),
    (v4(192, 0, 2, 0, 24), "a documentation network"),
    (v4(192, 88, 99, 0, 24), "the 6to4 relay anycast network"),
    (v4(192, 168, 0, 0, 16), "a private network"),
    (v4(198, 18, 0, 0, 15), "a benchmarking network"),
    (v4(198, 51, 100, 0, 24), "a documentation network"),
    (v4(203, 0, 113, 0, 24), "a documentation network"),
    (v4(224, 0, 0, 0, 4), "a multicast network"),
    (
        v4(240, 0, 0, 0, 4),
        "a reserved network (includes broadcast 255.255.255.255)",
    ),
];

/// First match wins, so specific entries come before the reserved blocks that contain them.
/// The reserved blocks together cover everything outside global unicast 2000::/3.
const V6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "the unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "the loopback address"),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "the local-use NAT64 network",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "the discard-only network",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        "the Teredo tunnel network (the real address is hidden)",
    ),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        "a benchmarking network",
    ),
    (
        v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),
        "an ORCHID network",
    ),
    (
        v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
        "an ORCHID network",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "a documentation network",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "a documentation network",
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "the SRv6 segment routing network",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "a unique-local (private) network",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "a link-local network",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "a site-local network",
    ),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast network"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 8), "a reserved network"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 8), "a reserved network"),
    (v6([0x200, 0, 0, 0, 0, 0, 0, 0], 7), "a reserved network"),
    (v6([0x400, 0, 0, 0, 0, 0, 0, 0], 6), "a reserved network"),
    (v6([0x800, 0, 0, 0, 0, 0, 0, 0], 5), "a reserved network"),
    (v6([0x1000, 0, 0, 0, 0, 0, 0, 0], 4), "a reserved network"),
    (v6([0x4000, 0, 0, 0, 0, 0, 0, 0], 2), "a reserved network"),
    (v6([0x8000, 0, 0, 0, 0, 0, 0, 0], 2), "a reserved network"),
    (v6([0xc000, 0, 0, 0, 0, 0, 0, 0], 3), "a reserved network"),
    (v6([0xe000, 0, 0, 0, 0, 0, 0, 0], 4), "a reserved network"),
    (v6([0xf000, 0, 0, 0, 0, 0, 0, 0], 5), "a reserved network"),
    (v6([0xf800, 0, 0, 0, 0, 0, 0, 0], 6), "a reserved network"),
    (v6([0xfe00, 0, 0, 0, 0, 0, 0, 0], 9), "a reserved network"),
];

/// IPv6 forms whose last 32 bits are an IPv4 address: mapped, translated, NAT64, compatible.
const V6_EMBED_LOW32: &[Ipv6Net] = &[
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
    v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
];

/// `::` and `::1` sit inside the IPv4-compatible block but are not IPv4 addresses.
const V6_NOT_COMPATIBLE: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 0], 127);

const V6_6TO4: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The address that was checked, as given.
    pub ip: IpAddr,
    /// The IPv4 address embedded in `ip` that decided the refusal, if any.
    pub embedded: Option<Ipv4Addr>,
    /// The refused network that matched.
    pub network: IpNet,
    /// What the network is, in words (e.g. "a private network").
    pub kind: &'static str,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            ip,
            network,
            kind,
            embedded,
        } = self;
        match embedded {
            Some(inner) => write!(
                f,
                "{ip} embeds the IPv4 address {inner}, which is in {kind} ({network})"
            ),
            None => write!(f, "{ip} is in {kind} ({network})"),
        }
    }
}

/// A refused URL, address or configuration entry.
///
/// Messages are shown to users after the caller's context (`url: `,
/// `AUTOMATIONS_ALLOW_NETWORKS: `), so they do not repeat it; they never contain a URL's
/// user name or password.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("the URL is {len} bytes long; the limit is {max} bytes, use a shorter address")]
    TooLong {
        /// Length of the URL in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The URL could not be parsed.
    #[error("not a valid URL ({reason}); enter a full address such as https://example.com/hook")]
    Invalid {
        /// The parser's reason (never contains the URL itself).
        reason: String,
    },
    /// The scheme is not http or https.
    #[error("scheme \"{scheme}\" is not supported; use an http:// or https:// address")]
    UnsupportedScheme {
        /// The refused scheme.
        scheme: String,
    },
    /// The URL carries a user name or password.
    #[error(
        "the URL must not contain a user name or password (user:password@); \
         remove them and send credentials in a request header instead"
    )]
    Userinfo,
    /// The URL has no host.
    #[error("the URL has no host; enter an address such as https://example.com/hook")]
    MissingHost,
    /// The URL has a `#fragment`.
    #[error(
        "the URL must not contain a fragment (#...); \
         remove the part from # on, it is never sent to the server"
    )]
    Fragment,
    /// The host is `localhost` or a name under it.
    #[error("host {host} is a local host name; outbound requests may only go to public hosts")]
    LocalHost {
        /// The refused host name.
        host: String,
    },
    /// The host is an IP address outside every allowed network.
    #[error(
        "host {ip} is an IP address; use a host name instead \
         (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
    )]
    IpLiteral {
        /// The address, canonicalised by the URL parser.
        ip: IpAddr,
    },
    /// The address is in a refused network.
    #[error(
        "host {0}; outbound requests may only go to public addresses \
         (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
    )]
    BlockedAddress(Refusal),
    /// The host name resolved to at least one address in a refused network.
    #[error(
        "host {host} resolves to an address that is not allowed: {refusal}; \
         outbound requests may only go to public addresses \
         (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
    )]
    BlockedResolution {
        /// The resolved host name.
        host: String,
        /// The first refused address.
        refusal: Refusal,
    },
    /// The host name resolved to no address at all.
    #[error("host {host} resolves to no address; check the host name")]
    EmptyResolution {
        /// The resolved host name.
        host: String,
    },
    /// The system resolver failed.
    #[error("host {host} could not be resolved ({reason}); check the host name")]
    ResolutionFailed {
        /// The resolved host name.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// An entry of the allow list is neither a network nor an address.
    #[error(
        "entry \"{entry}\" is not an IP network or address; \
         use comma-separated entries such as 10.1.0.0/16 or 192.0.2.7"
    )]
    InvalidAllowNetwork {
        /// The bad entry, trimmed.
        entry: String,
    },
}

/// Parses an allow list such as `"127.0.0.0/8, 10.1.0.0/16, 192.0.2.7"`.
///
/// Bare addresses become /32 or /128, empty entries are skipped (so `""` is an empty list),
/// and host bits are cleared. The error names the bad entry.
pub fn parse_allow_networks(spec: &str) -> Result<Vec<IpNet>, GuardError> {
    spec.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| GuardError::InvalidAllowNetwork {
                    entry: entry.to_owned(),
                })
        })
        .collect()
}

/// Finds a [`GuardError`] in an error or anywhere in its source chain, e.g. inside a
/// `reqwest::Error` produced by a client that uses [`GuardedResolver`].
impl GuardError {
    /// Whether the same request can succeed later: a lookup that failed or came back empty
    /// can; a refused destination cannot.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GuardError::ResolutionFailed { .. } | GuardError::EmptyResolution { .. }
        )
    }

    /// Why the URL was refused, naming no part of it: for a URL that is itself a secret
    /// (a Slack or Teams webhook URL), whose host or address must not be shown either.
    pub fn without_values(&self) -> &'static str {
        match self {
            GuardError::TooLong { .. } => "the URL is too long",
            GuardError::Invalid { .. } => "it is not a valid URL",
            GuardError::UnsupportedScheme { .. } => "its scheme is not http or https",
            GuardError::Userinfo => "it holds a user name or password",
            GuardError::MissingHost => "it has no host",
            GuardError::Fragment => "it has a #fragment",
            GuardError::LocalHost { .. } => "its host is a local host name",
            GuardError::IpLiteral { .. } => {
                "its host is an IP address (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
            }
            GuardError::BlockedAddress(_) | GuardError::BlockedResolution { .. } => {
                "its host is or resolves to an address that is not public (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
            }
            GuardError::EmptyResolution { .. } => "its host resolves to no address",
            GuardError::ResolutionFailed { .. } => "its host could not be resolved",
            GuardError::InvalidAllowNetwork { .. } => "the allow list is invalid",
        }
    }
}

pub fn find_guard_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a GuardError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<GuardError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Builds a reqwest client builder that enforces the guard: resolution through
/// [`GuardedResolver`], no redirects, no proxies from the environment.
pub fn guarded_client_builder(guard: Arc<OutboundGuard>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(GuardedResolver::new(guard))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// The IPv4 address embedded in an IPv6 address (mapped, translated, compatible, NAT64, 6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if V6_EMBED_LOW32.iter().any(|net| net.contains(&ip)) && !V6_NOT_COMPATIBLE.contains(&ip) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    V6_6TO4
        .contains(&ip)
        .then(|| Ipv4Addr::new(o[2], o[3], o[4], o[5]))
}

fn refused_v4(ip: Ipv4Addr) -> Option<(IpNet, &'static str)> {
    V4_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|&(net, kind)| (IpNet::V4(net), kind))
}

fn refused_v6(ip: Ipv6Addr) -> Option<(IpNet, &'static str)> {
    V6_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|&(net, kind)| (IpNet::V6(net), kind))
}

fn check_scheme_and_userinfo(url: &Url) -> Result<(), GuardError> {
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(GuardError::UnsupportedScheme {
                scheme: other.to_owned(),
            });
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::Userinfo);
    }
    Ok(())
}

fn host_ip(host: &Host<&str>) -> Option<IpAddr> {
    match *host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

fn is_localhost(domain: &str) -> bool {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Checks outbound URLs and addresses against the refused networks and an operator allow list.
#[derive(Debug, Clone, Default)]
pub struct OutboundGuard {
    allow: Vec<IpNet>,
}

impl OutboundGuard {
    /// Creates a guard; addresses inside `allow` are accepted even if otherwise refused.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// The networks the operator allowed.
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allow
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Checks one address. An IPv6 form that embeds an IPv4 address (mapped, translated,
    /// compatible, NAT64, 6to4) is refused when that IPv4 address is. Allowed networks win
    /// over every refusal, but only for the address as given: an embedded IPv4 address can
    /// make an address refused, never allowed, since `2002:7f00:1::` goes to a 6to4 relay
    /// and `64:ff9b::7f00:1` to a NAT64 gateway, not to the allowed `127.0.0.1`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), GuardError> {
        if self.allows(ip) {
            return Ok(());
        }
        let refusal = match ip {
            IpAddr::V4(v4) => refused_v4(v4).map(|found| (found, None)),
            // An embedded IPv4 address alone decides: the IPv6 form is only a wrapper.
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(inner) => refused_v4(inner).map(|found| (found, Some(inner))),
                None => refused_v6(v6).map(|found| (found, None)),
            },
        };
        match refusal {
            None => Ok(()),
            Some(((network, kind), embedded)) => Err(GuardError::BlockedAddress(Refusal {
                ip,
                embedded,
                network,
                kind,
            })),
        }
    }

    /// Save-time check of an integration URL; returns the parsed URL.
    ///
    /// Refuses: more than [`MAX_URL_LEN`] bytes, schemes other than http/https, user names
    /// and passwords, fragments, a missing host, `localhost` and names under it (always),
    /// and IP-literal hosts in any form the URL parser canonicalises unless inside an
    /// allowed network (then [`Self::check_ip`] applies).
    pub fn check_url(&self, raw: &str) -> Result<Url, GuardError> {
        if raw.len() > MAX_URL_LEN {
            return Err(GuardError::TooLong {
                len: raw.len(),
                max: MAX_URL_LEN,
            });
        }
        let url = Url::parse(raw).map_err(|e| GuardError::Invalid {
            reason: e.to_string(),
        })?;
        // Percent-encoding and IDNA can make the stored form longer than the input.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(GuardError::TooLong {
                len: url.as_str().len(),
                max: MAX_URL_LEN,
            });
        }
        check_scheme_and_userinfo(&url)?;
        if url.fragment().is_some() {
            return Err(GuardError::Fragment);
        }
        let host = url.host().ok_or(GuardError::MissingHost)?;
        match host_ip(&host) {
            Some(ip) if self.allows(ip) => {}
            Some(ip) => {
                self.check_ip(ip)?;
                return Err(GuardError::IpLiteral { ip });
            }
            None => {
                if let Host::Domain(domain) = host
                    && is_localhost(domain)
                {
                    return Err(GuardError::LocalHost {
                        host: domain.to_owned(),
                    });
                }
            }
        }
        Ok(url)
    }

    /// Send-time check of a saved URL, since the allow list may have changed: scheme,
    /// user name and password, and [`Self::check_ip`] for an IP-literal host. Host names
    /// are checked when [`GuardedResolver`] resolves them.
    pub fn check_target(&self, url: &Url) -> Result<(), GuardError> {
        check_scheme_and_userinfo(url)?;
        let host = url.host().ok_or(GuardError::MissingHost)?;
        match host_ip(&host) {
            Some(ip) => self.check_ip(ip),
            None => Ok(()),
        }
    }
}

/// reqwest DNS resolver that refuses a lookup if any resolved address fails
/// [`OutboundGuard::check_ip`] and otherwise returns exactly the checked addresses.
///
/// Errors are boxed [`GuardError`]s; [`find_guard_error`] digs them out of a `reqwest::Error`.
/// reqwest does not resolve IP-literal hosts, so call [`OutboundGuard::check_target`] too.
#[derive(Clone)]
pub struct GuardedResolver {
    guard: Arc<OutboundGuard>,
}

impl GuardedResolver {
    /// Creates a resolver that checks every address with `guard`.
    pub fn new(guard: Arc<OutboundGuard>) -> Self {
        Self { guard }
    }

    async fn lookup(guard: &OutboundGuard, host: String) -> Result<Vec<SocketAddr>, GuardError> {
        let addrs = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|e| GuardError::ResolutionFailed {
                host: host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        check_resolved(guard, host, addrs)
    }
}

/// One bad address refuses the whole answer: a mixed answer is a rebinding attempt.
fn check_resolved(
    guard: &OutboundGuard,
    host: String,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, GuardError> {
    if addrs.is_empty() {
        return Err(GuardError::EmptyResolution { host });
    }
    for addr in &addrs {
        if let Err(e) = guard.check_ip(addr.ip()) {
            return Err(match e {
                GuardError::BlockedAddress(refusal) => {
                    GuardError::BlockedResolution { host, refusal }
                }
                other => other,
            });
        }
    }
    Ok(addrs)
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("allowed_networks", &self.guard.allowed_networks())
            .finish()
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = Self::lookup(&guard, host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

    fn guard(spec: &str) -> OutboundGuard {
        OutboundGuard::new(parse_allow_networks(spec).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn blocked_network(err: &GuardError) -> IpNet {
        match err {
            GuardError::BlockedAddress(r) | GuardError::BlockedResolution { refusal: r, .. } => {
                r.network
            }
            other => panic!("expected a blocked address, got {other:?}"),
        }
    }

    #[test]
    fn url_crate_canonicalises_ipv4_forms() {
        let forms = [
            ("http://2130706433/", LOOPBACK),
            ("http://017700000001/", LOOPBACK),
            ("http://0177.0.0.1/", LOOPBACK),
            ("http://0x7f.1/", LOOPBACK),
            ("http://0x7f000001/", LOOPBACK),
            ("http://0X7F.0.0.1/", LOOPBACK),
            ("http://127.1/", LOOPBACK),
            ("http://127.0.1/", LOOPBACK),
            ("http://127.0.0.1./", LOOPBACK),
            ("http://%31%32%37.0.0.1/", LOOPBACK),
            ("https://2852039166/", METADATA),
            ("http://0251.0376.0251.0376/", METADATA),
            ("http://0xa9.0xfe.0xa9.0xfe/", METADATA),
            ("http://0xa9fea9fe/", METADATA),
            ("http://169.254.43518/", METADATA),
            ("http://169.16689662/", METADATA),
            ("http://0/", Ipv4Addr::UNSPECIFIED),
        ];
        for (raw, want) in forms {
            let url = Url::parse(raw).unwrap();
            assert_eq!(url.host(), Some(Host::Ipv4(want)), "{raw}");
            let err = OutboundGuard::default().check_url(raw).unwrap_err();
            assert!(
                matches!(err, GuardError::BlockedAddress(ref r) if r.ip == IpAddr::V4(want)),
                "{raw}: {err:?}"
            );
        }
    }

    #[test]
    fn hostile_urls_are_refused() {
        let g = OutboundGuard::default();
        let hostile = [
            "http://127.0.0.1/",
            "http://127.255.255.254:8080/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:0:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[64:ff9b:1::808:808]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://[fd00::1]/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            "http://[::]/",
            "http://[::1]/",
            "http://[100::1]/",
            "http://[2001:db8::1]/",
            "http://[3fff::1]/",
            "http://[5f00::1]/",
            "http://0.0.0.0/",
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://198.18.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.0.8/",
            "http://192.0.2.1/",
            "http://192.88.99.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://240.0.0.1/",
        ];
        for raw in hostile {
            let err = g.check_url(raw).unwrap_err();
            assert!(
                matches!(err, GuardError::BlockedAddress(_)),
                "{raw}: {err:?}"
            );
        }
    }

    #[test]
    fn local_host_names_are_refused_even_when_allowed() {
        let open = guard("127.0.0.0/8, ::1/128");
        for raw in [
            "http://localhost/",
            "http://LOCALHOST/",
            "http://foo.localhost/",
            "http://localhost./",
            "http://localhost../",
            "http://a.b.LocalHost./x",
            "https://localhost:8443/hook",
            "http://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/",
        ] {
            for g in [&OutboundGuard::default(), &open] {
                let err = g.check_url(raw).unwrap_err();
                assert!(
                    matches!(err, GuardError::LocalHost { .. }),
                    "{raw}: {err:?}"
                );
            }
        }
        assert!(
            OutboundGuard::default()
                .check_url("http://localhost.example.com/")
                .is_ok()
        );
        assert!(
            OutboundGuard::default()
                .check_url("http://mylocalhost/")
                .is_ok()
        );
    }

    type Expect = fn(&GuardError) -> bool;

    #[test]
    fn malformed_and_non_http_urls_are_refused() {
        let g = OutboundGuard::default();
        let cases: [(&str, Expect); 15] = [
            ("http://user:pw@example.com/", |e| {
                *e == GuardError::Userinfo
            }),
            ("http://user@example.com/", |e| *e == GuardError::Userinfo),
            ("https://:pw@example.com/", |e| *e == GuardError::Userinfo),
            (
                "ftp://example.com/",
                |e| matches!(e, GuardError::UnsupportedScheme { scheme } if scheme == "ftp"),
            ),
            ("file:///etc/passwd", |e| {
                matches!(e, GuardError::UnsupportedScheme { .. })
            }),
            ("gopher://example.com:70/_x", |e| {
                matches!(e, GuardError::UnsupportedScheme { .. })
            }),
            ("javascript:alert(1)", |e| {
                matches!(e, GuardError::UnsupportedScheme { .. })
            }),
            ("ws://example.com/", |e| {
                matches!(e, GuardError::UnsupportedScheme { .. })
            }),
            ("http://", |e| matches!(e, GuardError::Invalid { .. })),
            ("https://:443/", |e| matches!(e, GuardError::Invalid { .. })),
            ("example.com/hook", |e| {
                matches!(e, GuardError::Invalid { .. })
            }),
            ("http://1.2.3.4.5/", |e| {
                matches!(e, GuardError::Invalid { .. })
            }),
            ("http://0x100000000/", |e| {
                matches!(e, GuardError::Invalid { .. })
            }),
            ("https://example.com/hook#frag", |e| {
                *e == GuardError::Fragment
            }),
            ("https://example.com/hook#", |e| *e == GuardError::Fragment),
        ];
        for (raw, ok) in cases {
            let err = g.check_url(raw).unwrap_err();
            assert!(ok(&err), "{raw}: {err:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(
            g.check_url(&long),
            Err(GuardError::TooLong { .. })
        ));
        let expands = format!("https://example.com/{}", "\"".repeat(MAX_URL_LEN / 2));
        assert!(matches!(
            g.check_url(&expands),
            Err(GuardError::TooLong { .. })
        ));
    }

    #[test]
    fn public_ip_literals_are_refused_at_save_time() {
        let g = OutboundGuard::default();
        for (raw, want) in [
            ("http://1.1.1.1/", ip("1.1.1.1")),
            ("http://16843009/", ip("1.1.1.1")),
            (
                "https://[2606:4700:4700::1111]/",
                ip("2606:4700:4700::1111"),
            ),
            ("https://[::ffff:1.1.1.1]/", ip("::ffff:1.1.1.1")),
        ] {
            assert_eq!(
                g.check_url(raw),
                Err(GuardError::IpLiteral { ip: want }),
                "{raw}"
            );
        }
        let ok = guard("1.1.1.0/24");
        assert!(ok.check_url("http://1.1.1.1/").is_ok());
        // The allow list names IPv4 networks: their IPv6 forms stay IP literals.
        assert!(matches!(
            ok.check_url("http://[::ffff:1.1.1.1]/"),
            Err(GuardError::IpLiteral { .. })
        ));
    }

    #[test]
    fn public_urls_are_accepted() {
        let g = OutboundGuard::default();
        for raw in [
            "https://example.com/hook",
            "https://hooks.slack.com/services/x",
            "http://api.github.com:8443/x",
            "https://EXAMPLE.com./a?b=c",
            "https://b\u{fc}cher.example/hook",
        ] {
            let url = g.check_url(raw).unwrap();
            assert!(g.check_target(&url).is_ok(), "{raw}");
        }
        assert_eq!(
            g.check_url("https://example.com/hook").unwrap().as_str(),
            "https://example.com/hook"
        );
    }

    #[test]
    fn check_ip_refuses_special_addresses() {
        let g = OutboundGuard::default();
        let cases = [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.1.2.3", "0.0.0.0/8"),
            ("10.255.0.1", "10.0.0.0/8"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.20.1.1", "172.16.0.0/12"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.2.7", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.0.1", "192.168.0.0/16"),
            ("198.19.255.1", "198.18.0.0/15"),
            ("198.51.100.1", "198.51.100.0/24"),
            ("203.0.113.1", "203.0.113.0/24"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("255.255.255.255", "240.0.0.0/4"),
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("::ffff:0:10.0.0.1", "10.0.0.0/8"),
            ("::192.168.0.1", "192.168.0.0/16"),
            ("::2", "0.0.0.0/8"),
            ("64:ff9b::7f00:1", "127.0.0.0/8"),
            ("64:ff9b:1::1", "64:ff9b:1::/48"),
            ("2002:c0a8:101::1", "192.168.0.0/16"),
            ("2002:a00:1::", "10.0.0.0/8"),
            ("2001::1", "2001::/32"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
            ("2001:2::1", "2001:2::/48"),
            ("2001:10::1", "2001:10::/28"),
            ("2001:20::1", "2001:20::/28"),
            ("2001:db8:1::1", "2001:db8::/32"),
            ("3fff:fff::1", "3fff::/20"),
            ("100::1", "100::/64"),
            ("5f00::1", "5f00::/16"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("4000::1", "4000::/2"),
            ("1234::1", "1000::/4"),
            ("::fffe:1:1", "::/8"),
        ];
        for (addr, network) in cases {
            let err = g.check_ip(ip(addr)).unwrap_err();
            assert_eq!(blocked_network(&err), net(network), "{addr}");
        }
    }

    #[test]
    fn check_ip_accepts_public_addresses() {
        let g = OutboundGuard::default();
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(g.check_ip(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_list_wins_but_never_through_an_embedded_address() {
        let g = guard("127.0.0.0/8");
        assert_eq!(g.allowed_networks(), &[net("127.0.0.0/8")]);
        assert_eq!(
            g.check_url("http://127.0.0.1:9999/").unwrap().as_str(),
            "http://127.0.0.1:9999/"
        );
        assert!(g.check_url("http://2130706433/").is_ok());
        // IPv6 forms that embed an allowed IPv4 address go elsewhere (a 6to4 relay, a NAT64
        // gateway, off the host): the embedded address can only refuse them.
        let exact = guard("127.0.0.1/32");
        for form in [
            "2002:7f00:1::",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:127.0.0.1",
            "::ffff:0:7f00:1",
        ] {
            for g in [&g, &exact] {
                let err = g.check_ip(ip(form)).unwrap_err();
                assert!(
                    matches!(err, GuardError::BlockedAddress(ref r) if r.embedded == Some(LOOPBACK)),
                    "{form}: {err:?}"
                );
                let url = format!("http://[{form}]/");
                assert!(
                    matches!(g.check_url(&url), Err(GuardError::BlockedAddress(_))),
                    "{url}"
                );
            }
        }
        // Allowing the IPv6 form itself is the operator's explicit choice.
        assert_eq!(
            guard("::ffff:0:0/96").check_ip(ip("::ffff:127.0.0.1")),
            Ok(())
        );
        assert!(g.check_ip(ip("::1")).is_err());
        assert!(g.check_ip(ip("10.0.0.1")).is_err());
        assert!(g.check_url("http://10.0.0.1/").is_err());
        assert!(g.check_url("http://localhost/").is_err());
        assert!(matches!(
            g.check_url("http://1.1.1.1/"),
            Err(GuardError::IpLiteral { .. })
        ));

        let v6 = guard("fd00::/8, 2001:db8::1");
        assert_eq!(v6.check_ip(ip("fd00::5")), Ok(()));
        assert!(v6.check_url("http://[fd00::5]:81/").is_ok());
        assert_eq!(v6.check_ip(ip("2001:db8::1")), Ok(()));
        assert!(v6.check_ip(ip("2001:db8::2")).is_err());
    }

    #[test]
    fn check_target_rechecks_saved_urls() {
        let open = guard("10.1.0.0/16");
        let url = open.check_url("https://10.1.2.3/hook").unwrap();
        assert_eq!(open.check_target(&url), Ok(()));
        let closed = OutboundGuard::default();
        assert_eq!(
            blocked_network(&closed.check_target(&url).unwrap_err()),
            net("10.0.0.0/8")
        );
        let name = Url::parse("https://internal.example/hook").unwrap();
        assert_eq!(closed.check_target(&name), Ok(()));
        for raw in [
            "ftp://example.com/",
            "https://u:p@example.com/",
            "mailto:a@example.com",
        ] {
            let url = Url::parse(raw).unwrap();
            assert!(closed.check_target(&url).is_err(), "{raw}");
        }
    }

    #[test]
    fn parse_allow_networks_accepts_lists_and_names_bad_entries() {
        assert_eq!(parse_allow_networks(""), Ok(vec![]));
        assert_eq!(parse_allow_networks("  "), Ok(vec![]));
        assert_eq!(
            parse_allow_networks("127.0.0.0/8, 10.1.0.0/16,192.0.2.7 , ::1, fd00::/8,"),
            Ok(vec![
                net("127.0.0.0/8"),
                net("10.1.0.0/16"),
                net("192.0.2.7/32"),
                net("::1/128"),
                net("fd00::/8"),
            ])
        );
        assert_eq!(
            parse_allow_networks("10.1.2.3/16"),
            Ok(vec![net("10.1.0.0/16")])
        );
        for (spec, bad) in [
            ("127.0.0.0/8, banana", "banana"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("10.0.0.0/8; 10.1.0.0/16", "10.0.0.0/8; 10.1.0.0/16"),
            ("localhost", "localhost"),
            ("0x7f.1", "0x7f.1"),
        ] {
            let err = parse_allow_networks(spec).unwrap_err();
            assert_eq!(err, GuardError::InvalidAllowNetwork { entry: bad.into() });
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn messages_are_actionable_and_never_leak_passwords() {
        let g = guard("127.0.0.0/8");
        for raw in [
            "http://alice:s3cretPW@example.com/",
            "http://alice:s3cretPW@10.0.0.1/",
            "http://alice:s3cretPW@localhost/",
            "ftp://alice:s3cretPW@example.com/",
            "http://alice:s3cretPW@127.0.0.1/",
            "http://alice:s3cretPW@[::1]/",
            "http://alice:s3cretPW@exa mple.com/",
            "http://alice:s3cretPW@example.com:99999/",
            "https://alice:s3cretPW@example.com/#x",
            "s3cretPW",
        ] {
            let msg = g.check_url(raw).unwrap_err().to_string();
            assert!(!msg.contains("s3cretPW") && !msg.contains("alice"), "{msg}");
            assert!(msg.contains("; "), "no advice in {msg}");
        }
        let url = Url::parse("https://alice:s3cretPW@example.com/").unwrap();
        let msg = g.check_target(&url).unwrap_err().to_string();
        assert!(!msg.contains("s3cretPW"), "{msg}");

        let msg = OutboundGuard::default()
            .check_url("http://10.0.0.1/")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "host 10.0.0.1 is in a private network (10.0.0.0/8); outbound requests may only \
             go to public addresses (an operator can allow networks with AUTOMATIONS_ALLOW_NETWORKS)"
        );
        let msg = OutboundGuard::default()
            .check_ip(ip("::ffff:169.254.169.254"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("embeds the IPv4 address 169.254.169.254"),
            "{msg}"
        );
    }

    #[test]
    fn resolved_answers_are_refused_whole() {
        let g = OutboundGuard::default();
        let addr = |s: &str| SocketAddr::new(ip(s), 0);
        let mixed = vec![addr("1.1.1.1"), addr("10.0.0.1")];
        let err = check_resolved(&g, "rebind.example".into(), mixed).unwrap_err();
        assert!(
            matches!(&err, GuardError::BlockedResolution { host, refusal }
                if host == "rebind.example" && refusal.ip == ip("10.0.0.1")),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("host rebind.example resolves to")
        );
        assert_eq!(
            check_resolved(&g, "none.example".into(), vec![]),
            Err(GuardError::EmptyResolution {
                host: "none.example".into()
            })
        );
        let good = vec![addr("1.1.1.1"), addr("2606:4700:4700::1111")];
        assert_eq!(
            check_resolved(&g, "ok.example".into(), good.clone()),
            Ok(good)
        );
    }

    fn resolver(spec: &str) -> GuardedResolver {
        GuardedResolver::new(Arc::new(guard(spec)))
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_without_allow_list() {
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver("").resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        let guard_err = err.downcast_ref::<GuardError>().unwrap();
        assert!(
            matches!(guard_err, GuardError::BlockedResolution { host, .. } if host == "localhost"),
            "{guard_err:?}"
        );
        let literal: Name = "169.254.169.254".parse().unwrap();
        let err = resolver("").resolve(literal).await.err().unwrap();
        assert!(err.downcast_ref::<GuardError>().is_some());
    }

    #[tokio::test]
    async fn resolver_accepts_localhost_when_allowed() {
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = resolver("127.0.0.0/8, ::1/128")
            .resolve(name)
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    /// Serves one connection with a fixed response; returns the port.
    async fn serve_once(response: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                stream.readable().await.unwrap();
                match stream.try_read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            let mut rest = response.as_bytes();
            while !rest.is_empty() {
                stream.writable().await.unwrap();
                match stream.try_write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
        port
    }

    const REDIRECT: &str = "HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\n\
                            Content-Length: 0\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn client_is_refused_before_connecting() {
        let port = serve_once(REDIRECT).await;
        let client = guarded_client_builder(Arc::new(OutboundGuard::default()))
            .build()
            .unwrap();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let found = find_guard_error(&err).unwrap();
        assert!(
            matches!(found, GuardError::BlockedResolution { .. }),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn client_connects_when_allowed_and_does_not_follow_redirects() {
        let port = serve_once(REDIRECT).await;
        let client = guarded_client_builder(Arc::new(guard("127.0.0.0/8, ::1/128")))
            .build()
            .unwrap();
        let resp = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 302);
    }
}
