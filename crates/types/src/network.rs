//! Which network destinations a guest may reach: outgoing HTTP (`wasi:http`) and sockets
//! (`wasi:sockets`), both denied unless a rule allows them.
//!
//! A rule is written as users of other Wasm hosts write their `allowed_outbound_hosts`:
//! `SCHEME://HOST[:PORT]`.
//!
//! - `SCHEME` is `http`, `https` (outgoing HTTP), `tcp`, `udp` (sockets) or `*` (any of the
//!   kind it is used for).
//! - `HOST` is a name (`api.example.com`, matched without regard to case), a wildcard over the
//!   subdomains of a name (`*.example.com`, which does not match `example.com` itself), an IP
//!   address (`127.0.0.1`, `[::1]`), a CIDR block (`10.0.0.0/8`, `[fd00::]/8`) or `*` (any host).
//! - `PORT` is a number, a range (`8000-8099`) or `*`; when left out it is the scheme's default
//!   (80 for `http`, 443 for `https`); `tcp` and `udp` rules must name their port.
//!
//! Socket rules are checked against the address a guest connects, binds or sends to, which is
//! always an IP address: a name in a socket rule is refused (give its addresses), except
//! `localhost`, which stands for the loopback addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest rule accepted, in bytes: far beyond any real host name and port.
pub const MAX_RULE_LEN: usize = 512;

/// What a rule's scheme allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// TCP sockets.
    Tcp,
    /// UDP sockets.
    Udp,
    /// Any scheme of the kind the rule is used for.
    Any,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
            Scheme::Udp => "udp",
            Scheme::Any => "*",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
            Scheme::Tcp | Scheme::Udp | Scheme::Any => None,
        }
    }

    fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https | Scheme::Any)
    }

    fn is_socket(self) -> bool {
        matches!(self, Scheme::Tcp | Scheme::Udp | Scheme::Any)
    }
}

/// Which hosts a rule matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Every host.
    Any,
    /// Exactly this name (lower case, without a trailing dot).
    Name(String),
    /// Every subdomain of this name (`*.example.com` holds `example.com`).
    Subdomains(String),
    /// Addresses in a block (a single address is a block of its full length).
    Block {
        /// The block's first address (host bits cleared).
        network: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// The loopback addresses (`localhost`): `127.0.0.0/8` and `::1`, and the name itself.
    Localhost,
}

impl HostPattern {
    fn matches_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.matches_ip(ip);
        }
        match self {
            HostPattern::Any => true,
            HostPattern::Name(name) => *name == host,
            HostPattern::Subdomains(base) => {
                host.len() > base.len() + 1 && host.ends_with(base.as_str()) && {
                    let cut = host.len() - base.len() - 1;
                    host.as_bytes()[cut] == b'.'
                }
            }
            HostPattern::Localhost => host == "localhost",
            HostPattern::Block { .. } => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            HostPattern::Any => true,
            HostPattern::Name(_) | HostPattern::Subdomains(_) => false,
            HostPattern::Localhost => ip.is_loopback(),
            HostPattern::Block { network, prefix } => in_block(ip, *network, *prefix),
        }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_block(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Which ports a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortPattern {
    /// Every port.
    Any,
    /// Ports from the first to the second, both included (a single port is a range of one).
    Range(u16, u16),
}

impl PortPattern {
    fn matches(self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
        }
    }
}

/// One allowed destination pattern: `SCHEME://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundRule {
    /// The scheme it allows.
    pub scheme: Scheme,
    /// The hosts it allows.
    pub host: HostPattern,
    /// The ports it allows.
    pub port: PortPattern,
    text: String,
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "network rule `{rule}`: {reason} (write rules as SCHEME://HOST[:PORT], e.g. https://api.example.com, http://127.0.0.1:8080, tcp://10.0.0.0/8:5432, udp://*:53)"
)]
pub struct RuleError {
    /// The rule as given (cut to a readable length).
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl OutboundRule {
    /// Whether this rule allows an HTTP request with this scheme (`http` or `https`), host
    /// (a name or an address, IPv6 in brackets or not) and port.
    pub fn allows_http(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            Scheme::Any => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
            Scheme::Http => scheme.eq_ignore_ascii_case("http"),
            Scheme::Https => scheme.eq_ignore_ascii_case("https"),
            Scheme::Tcp | Scheme::Udp => false,
        };
        scheme_ok && self.port.matches(port) && self.host.matches_name(host)
    }

    /// Whether this rule allows a socket of this protocol to reach (connect, send to, or bind)
    /// this address.
    pub fn allows_socket(&self, protocol: SocketProtocol, ip: IpAddr, port: u16) -> bool {
        self.allows_protocol(protocol) && self.port.matches(port) && self.host.matches_ip(ip)
    }
}

impl OutboundRule {
    /// Whether this rule can allow sockets of this protocol at all.
    pub fn allows_protocol(&self, protocol: SocketProtocol) -> bool {
        match self.scheme {
            Scheme::Any => true,
            Scheme::Tcp => protocol == SocketProtocol::Tcp,
            Scheme::Udp => protocol == SocketProtocol::Udp,
            Scheme::Http | Scheme::Https => false,
        }
    }

    /// Whether this rule allows this protocol to this address on some port.
    pub fn allows_socket_host(&self, protocol: SocketProtocol, ip: IpAddr) -> bool {
        self.allows_protocol(protocol) && self.host.matches_ip(ip)
    }
}

/// A socket's protocol, for [`OutboundRule::allows_socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for OutboundRule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, RuleError> {
        let refuse =
            |reason: &str| RuleError { rule: text.chars().take(80).collect::<String>(), reason: reason.to_owned() };
        if text.len() > MAX_RULE_LEN {
            return Err(refuse(&format!("longer than {MAX_RULE_LEN} bytes")));
        }
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or_else(|| refuse("it has no `://`"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "tcp" => Scheme::Tcp,
            "udp" => Scheme::Udp,
            "*" => Scheme::Any,
            _ => return Err(refuse("the scheme must be http, https, tcp, udp or *")),
        };
        if rest.contains(['/', '?', '#', '@']) && !looks_like_block(rest) {
            return Err(refuse("a rule names a host and port only: no path, query, fragment or user"));
        }
        let (host, port) = split_host_port(rest).map_err(|r| refuse(&r))?;
        let host = parse_host(host).map_err(|r| refuse(&r))?;
        let port = match port {
            None => match scheme.default_port() {
                Some(p) => PortPattern::Range(p, p),
                None => return Err(refuse("tcp, udp and * rules must name their port (a number, a range or *)")),
            },
            Some("*") => PortPattern::Any,
            Some(p) => parse_ports(p).map_err(|r| refuse(&r))?,
        };
        Ok(Self { scheme, host, port, text: text.to_owned() })
    }
}

impl Serialize for OutboundRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for OutboundRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `10.0.0.0/8:80` has a `/` that is part of the host.
fn looks_like_block(rest: &str) -> bool {
    !rest.contains(['?', '#', '@']) && rest.matches('/').count() == 1
}

/// Splits `HOST[:PORT]`, with IPv6 addresses in brackets (`[::1]:80`, `[fd00::]/8:*`).
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if rest.is_empty() {
        return Err("the host is missing".into());
    }
    if let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']').ok_or("an IPv6 address is missing its `]`")?;
        let end = close + 2; // the brackets
        let (host, tail) = rest.split_at(end);
        // A CIDR suffix after the bracket belongs to the host.
        let (host_len, tail) = match tail.strip_prefix('/') {
            Some(t) => {
                let digits = t.find(':').unwrap_or(t.len());
                (end + 1 + digits, &t[digits..])
            }
            None => (host.len(), tail),
        };
        let host = &rest[..host_len];
        return match tail {
            "" => Ok((host, None)),
            t => t.strip_prefix(':').map(|p| (host, Some(p))).ok_or_else(|| "junk after the IPv6 address".into()),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err("write an IPv6 address in brackets: [::1]".into()),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((rest, None)),
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let bare = host.trim_start_matches('[');
    let bare = match bare.split_once(']') {
        Some((addr, suffix)) => format!("{addr}{suffix}"),
        None => bare.to_owned(),
    };
    if let Some((addr, prefix)) = bare.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("`{addr}` is not an IP address: a rule names a host and port only (no path), and a block is ADDRESS/BITS")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("the prefix length must be a number from 0 to {max}"))?;
        // An IPv4-mapped block (`::ffff:10.0.0.0/104`) is the IPv4 block it maps, as the
        // addresses checked against it are.
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            if prefix < 96 {
                return Err("an IPv4-mapped block must be at least /96; write the IPv4 block instead".into());
            }
            return Ok(HostPattern::Block { network: IpAddr::V4(v4), prefix: prefix - 96 });
        }
        return Ok(HostPattern::Block { network: ip, prefix });
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let ip = canonical(ip);
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(HostPattern::Block { network: ip, prefix });
    }
    if host.starts_with('[') {
        return Err(format!("`{host}` is not an IPv6 address"));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" {
        return Ok(HostPattern::Localhost);
    }
    let (wild, name) = match name.strip_prefix("*.") {
        Some(base) => (true, base.to_owned()),
        None => (false, name),
    };
    check_name(&name)?;
    Ok(if wild { HostPattern::Subdomains(name) } else { HostPattern::Name(name) })
}

fn check_name(name: &str) -> Result<(), String> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "`{name}` is not a host name (letters, digits, `-` and dots; a wildcard only as `*.` in front or `*` alone)"
        ));
    }
    Ok(())
}

fn parse_ports(text: &str) -> Result<PortPattern, String> {
    let number = |t: &str| t.parse::<u16>().map_err(|_| format!("`{t}` is not a port (0-65535)"));
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (number(low)?, number(high)?);
            if low > high {
                return Err(format!("the port range {low}-{high} is empty"));
            }
            Ok(PortPattern::Range(low, high))
        }
        None => {
            let p = number(text)?;
            Ok(PortPattern::Range(p, p))
        }
    }
}

/// A guest's network allowances: empty (the default) denies everything.
///
/// Read from serialised form, the rules are checked as [`NetworkRules::parse`] checks them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRules")]
pub struct NetworkRules {
    /// Allowed outgoing HTTP requests (`wasi:http/outgoing-handler`, `wasi:http/client`).
    #[serde(default)]
    pub http: Vec<OutboundRule>,
    /// Allowed socket destinations (`wasi:sockets`: connect, send, bind).
    #[serde(default)]
    pub sockets: Vec<OutboundRule>,
    /// Whether the guest may resolve names (`wasi:sockets/ip-name-lookup`). Off by default: a
    /// lookup reaches the resolver whatever the rules say, and a name can carry data out.
    #[serde(default)]
    pub name_lookup: bool,
}

/// The serialised form, checked into [`NetworkRules`].
#[derive(Deserialize)]
struct RawRules {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    sockets: Vec<String>,
    #[serde(default)]
    name_lookup: bool,
}

impl TryFrom<RawRules> for NetworkRules {
    type Error = RuleError;

    fn try_from(raw: RawRules) -> Result<Self, RuleError> {
        NetworkRules::parse(&raw.http, &raw.sockets, raw.name_lookup)
    }
}

impl NetworkRules {
    /// Rules from the textual forms, each checked for the kind it is given as.
    ///
    /// # Errors
    /// The first rule that does not parse, or that names a scheme of the other kind (a `tcp`
    /// rule among HTTP rules), or a host name in a socket rule.
    pub fn parse(http: &[String], sockets: &[String], name_lookup: bool) -> Result<Self, RuleError> {
        let http = http
            .iter()
            .map(|t| {
                let rule: OutboundRule = t.parse()?;
                if !rule.scheme.is_http() {
                    return Err(RuleError {
                        rule: t.clone(),
                        reason: "an HTTP rule's scheme is http, https or *".into(),
                    });
                }
                Ok(rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sockets = sockets
            .iter()
            .map(|t| {
                let rule: OutboundRule = t.parse()?;
                if !rule.scheme.is_socket() {
                    return Err(RuleError {
                        rule: t.clone(),
                        reason: "a socket rule's scheme is tcp, udp or *".into(),
                    });
                }
                if matches!(rule.host, HostPattern::Name(_) | HostPattern::Subdomains(_)) {
                    return Err(RuleError {
                        rule: t.clone(),
                        reason: "sockets are checked by address: give an IP address, a block, localhost or *".into(),
                    });
                }
                Ok(rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { http, sockets, name_lookup })
    }

    /// Everything allowed: every HTTP destination, every socket, name lookups. Only for the
    /// explicitly dangerous opt-in.
    pub fn allow_all() -> Self {
        let any = |text: &str, scheme| OutboundRule {
            scheme,
            host: HostPattern::Any,
            port: PortPattern::Any,
            text: text.to_owned(),
        };
        Self { http: vec![any("*://*:*", Scheme::Any)], sockets: vec![any("*://*:*", Scheme::Any)], name_lookup: true }
    }

    /// Whether any rule allows this HTTP request.
    pub fn allows_http(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.http.iter().any(|r| r.allows_http(scheme, host, port))
    }

    /// Whether any rule allows this socket address.
    pub fn allows_socket(&self, protocol: SocketProtocol, ip: IpAddr, port: u16) -> bool {
        self.sockets.iter().any(|r| r.allows_socket(protocol, ip, port))
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.sockets.is_empty() && !self.name_lookup
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(text: &str) -> OutboundRule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn http_rules_match_scheme_host_and_default_port() {
        let r = rule("https://api.example.com");
        assert!(r.allows_http("https", "api.example.com", 443));
        assert!(r.allows_http("HTTPS", "API.Example.com.", 443));
        assert!(!r.allows_http("http", "api.example.com", 80));
        assert!(!r.allows_http("https", "api.example.com", 8443));
        assert!(!r.allows_http("https", "evil-api.example.com", 443));
        assert!(!r.allows_http("https", "api.example.com.evil.net", 443));
    }

    #[test]
    fn wildcards_cover_subdomains_only_and_any_port() {
        let r = rule("*://*.example.com:*");
        assert!(r.allows_http("http", "a.example.com", 8080));
        assert!(r.allows_http("https", "a.b.example.com", 1));
        assert!(!r.allows_http("https", "example.com", 443));
        assert!(!r.allows_http("https", "badexample.com", 443));
        let all = rule("*://*:*");
        assert!(all.allows_http("http", "10.1.2.3", 9));
    }

    #[test]
    fn addresses_blocks_and_localhost() {
        let r = rule("http://127.0.0.1:8000-8099");
        assert!(r.allows_http("http", "127.0.0.1", 8042));
        assert!(!r.allows_http("http", "127.0.0.1", 8100));
        assert!(!r.allows_http("http", "localhost", 8042), "names are not resolved for HTTP rules");
        let r = rule("tcp://10.0.0.0/8:5432");
        assert!(r.allows_socket(SocketProtocol::Tcp, "10.200.1.1".parse().expect("ip"), 5432));
        assert!(!r.allows_socket(SocketProtocol::Udp, "10.200.1.1".parse().expect("ip"), 5432));
        assert!(!r.allows_socket(SocketProtocol::Tcp, "11.0.0.1".parse().expect("ip"), 5432));
        let r = rule("udp://[fd00::]/8:53");
        assert!(r.allows_socket(SocketProtocol::Udp, "fd12::1".parse().expect("ip"), 53));
        let r = rule("tcp://localhost:*");
        assert!(r.allows_socket(SocketProtocol::Tcp, "127.9.9.9".parse().expect("ip"), 1));
        assert!(r.allows_socket(SocketProtocol::Tcp, "::1".parse().expect("ip"), 1));
        assert!(r.allows_socket(SocketProtocol::Tcp, "::ffff:127.0.0.1".parse().expect("ip"), 1));
        assert!(!r.allows_socket(SocketProtocol::Tcp, "192.168.0.1".parse().expect("ip"), 1));
        let r = rule("http://[::1]:8080");
        assert!(r.allows_http("http", "[::1]", 8080));
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (text, says) in [
            ("example.com", "://"),
            ("ftp://example.com", "scheme"),
            ("https://example.com/path", "no path"),
            ("https://user@example.com", "no path"),
            ("tcp://127.0.0.1", "must name their port"),
            ("http://example.com:99999", "not a port"),
            ("http://example.com:90-80", "empty"),
            ("http://ex ample.com", "not a host name"),
            ("http://a.*.com", "not a host name"),
            ("tcp://10.0.0.0/33:1", "prefix length"),
            ("http://::1:80", "brackets"),
            ("https://", "missing"),
        ] {
            let e = text.parse::<OutboundRule>().expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn kinds_are_kept_apart_and_socket_rules_name_addresses() {
        let e = NetworkRules::parse(&["tcp://1.2.3.4:1".into()], &[], false).expect_err("tcp among http");
        assert!(e.to_string().contains("HTTP rule"), "{e}");
        let e = NetworkRules::parse(&[], &["tcp://db.internal:5432".into()], false).expect_err("name");
        assert!(e.to_string().contains("by address"), "{e}");
        let rules =
            NetworkRules::parse(&["https://*.example.com".into()], &["udp://*:53".into()], false).expect("valid rules");
        assert!(rules.allows_http("https", "x.example.com", 443));
        assert!(rules.allows_socket(SocketProtocol::Udp, "8.8.8.8".parse().expect("ip"), 53));
        assert!(!rules.allows_socket(SocketProtocol::Tcp, "8.8.8.8".parse().expect("ip"), 53));
        assert!(NetworkRules::default().is_empty());
    }

    #[test]
    fn mapped_blocks_match_the_ipv4_addresses_they_map_and_serde_checks_kinds() {
        let r = rule("tcp://[::ffff:10.0.0.0]/104:*");
        assert!(r.allows_socket(SocketProtocol::Tcp, "10.9.8.7".parse().expect("ip"), 1));
        assert!(r.allows_socket(SocketProtocol::Tcp, "::ffff:10.9.8.7".parse().expect("ip"), 1));
        assert!(!r.allows_socket(SocketProtocol::Tcp, "11.0.0.1".parse().expect("ip"), 1));
        let bad = r#"{"http": [], "sockets": ["tcp://db.internal:5432"]}"#;
        assert!(serde_json::from_str::<NetworkRules>(bad).is_err(), "a name in a socket rule");
        let bad = r#"{"http": ["tcp://1.2.3.4:1"]}"#;
        assert!(serde_json::from_str::<NetworkRules>(bad).is_err(), "a socket rule among HTTP rules");
    }

    #[test]
    fn rules_round_trip_through_serde() {
        let rules =
            NetworkRules::parse(&["https://api.example.com".into()], &["tcp://[::1]:80".into()], true).expect("valid");
        let json = serde_json::to_string(&rules).expect("serialises");
        let back: NetworkRules = serde_json::from_str(&json).expect("parses");
        assert_eq!(rules, back);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,80}") {
            let _ = text.parse::<OutboundRule>();
        }

        #[test]
        fn parsing_rule_shaped_text_never_panics(
            scheme in "(http|https|tcp|udp|\\*|x)",
            host in "[a-z0-9.*:\\[\\]/-]{0,30}",
            port in "[0-9*-]{0,8}",
        ) {
            let _ = format!("{scheme}://{host}:{port}").parse::<OutboundRule>();
            let _ = format!("{scheme}://{host}").parse::<OutboundRule>();
        }

        #[test]
        fn an_exact_rule_allows_only_its_host(name in "[a-z]{1,10}\\.[a-z]{2,5}", other in "[a-z]{1,10}\\.[a-z]{2,5}", port: u16) {
            let r: OutboundRule = format!("http://{name}:{port}").parse().expect("valid");
            prop_assert!(r.allows_http("http", &name, port));
            prop_assert_eq!(r.allows_http("http", &other, port), other == name);
        }
    }
}
