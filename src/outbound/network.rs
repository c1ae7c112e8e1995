//! Which addresses Plugboard may send to. Public addresses always;
//! link-local and cloud metadata addresses never; loopback and private
//! ranges only when the operator allows them (`PLUGBOARD_ALLOW_NETWORKS`),
//! because a base URL a user may set must not become a way into the
//! internal network.
//!
//! Enforced on the addresses a name resolves to (in the HTTP client's
//! resolver), so a hostname that resolves to 169.254.169.254 is refused too;
//! URLs that name an address never reach the resolver, so
//! [`super::Outbound::send`] judges those itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    allowed_private: Vec<IpNet>,
    /// Off for deployments (and tests) whose checks must stay inside the
    /// allowed private ranges: then no name is even looked up in DNS.
    allow_public: bool,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy { allowed_private: Vec::new(), allow_public: true }
    }
}

/// Raised when every address of a host is refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("{host} is not on a network checks may reach{}", addr.map(|a| format!(" ({a})")).unwrap_or_default())]
pub struct Blocked {
    pub host: String,
    pub addr: Option<IpAddr>,
}

/// Raised when a name has no address. A type of our own, so that the
/// client's error can be recognised as a DNS failure without reading its
/// words.
#[derive(Debug, thiserror::Error)]
#[error("DNS lookup failed for {host}")]
pub struct DnsFailed {
    pub host: String,
    #[source]
    pub source: Option<std::io::Error>,
}

impl NetworkPolicy {
    /// `allowed` lists CIDR ranges (`127.0.0.0/8, 10.1.0.0/16`) that checks
    /// may reach although they are private.
    pub fn parse(allowed: &str) -> Result<NetworkPolicy, String> {
        let mut nets = Vec::new();
        for part in allowed.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{part}` is not an IP address or CIDR range such as 10.0.0.0/8"))?;
            if is_forbidden(net.network()) {
                return Err(format!(
                    "`{part}` is link-local or a cloud metadata range; it cannot be allowed"
                ));
            }
            nets.push(net);
        }
        Ok(NetworkPolicy { allowed_private: nets, allow_public: true })
    }

    pub fn without_public(mut self) -> NetworkPolicy {
        self.allow_public = false;
        self
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if is_forbidden(ip) {
            return false;
        }
        if is_private(ip) {
            return self.allowed_private.iter().any(|net| net.contains(&ip));
        }
        self.allow_public
    }
}

/// IPv4 written as IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Never reachable, whatever the operator says.
fn is_forbidden(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0) == 0xfe80 // link-local
                || v6.is_unspecified()
                || s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] // AWS metadata over IPv6
        }
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
                || o[0] >= 224 // multicast and reserved
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || v6.is_multicast()
        }
    }
}

/// The HTTP client's resolver: the system's lookup, then the policy.
pub struct PolicyResolver(pub Arc<NetworkPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if !policy.allow_public && host != "localhost" {
                return Err(Box::new(Blocked { host, addr: None }) as _);
            }
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((host.clone(), 0)).await {
                Ok(found) => found.collect(),
                Err(source) => return Err(Box::new(DnsFailed { host, source: Some(source) }) as _),
            };
            let Some(first) = found.first().copied() else {
                return Err(Box::new(DnsFailed { host, source: None }) as _);
            };
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Blocked { host, addr: Some(first.ip()) }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_allowed_metadata_never() {
        let policy = NetworkPolicy::parse("").unwrap();
        assert!(policy.allows(ip("93.184.216.34")));
        assert!(!policy.allows(ip("169.254.169.254")));
        assert!(!policy.allows(ip("::ffff:169.254.169.254")));
        assert!(!policy.allows(ip("fd00:ec2::254")));
        assert!(!policy.allows(ip("127.0.0.1")));
        assert!(!policy.allows(ip("10.0.0.5")));
        assert!(!policy.allows(ip("::1")));
        assert!(!policy.allows(ip("0.0.0.0")));
    }

    #[test]
    fn operator_can_allow_private_ranges_but_not_link_local() {
        let policy = NetworkPolicy::parse("127.0.0.0/8, 10.1.0.0/16, ::1").unwrap();
        assert!(policy.allows(ip("127.0.0.1")));
        assert!(policy.allows(ip("10.1.2.3")));
        assert!(!policy.allows(ip("10.2.0.1")));
        assert!(policy.allows(ip("::1")));
        assert!(NetworkPolicy::parse("169.254.0.0/16").is_err());
        assert!(NetworkPolicy::parse("nonsense").is_err());
    }
}
