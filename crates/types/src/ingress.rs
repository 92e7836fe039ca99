//! What a workload serves over HTTP on its nodes: the routes a node's ingress sends to its
//! instances, the host name they answer for, and whether clients get evidence of the code that
//! serves them. Checked once where they enter (a manifest, the control plane's API) and
//! carried as their own types after.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A route: an absolute path prefix (`/readings`) that a node's ingress sends to a workload's
/// instances. It matches the path itself and every path below it (`/readings/today`), never a
/// longer name (`/readingsx`). `/` matches every path.
///
/// 1 to [`Route::MAX_LEN`] bytes; starts with `/`; path characters only (RFC 3986 `pchar`s
/// and `/`, no `%`-escapes); no empty, `.` or `..` segment; no trailing `/` except for `/`
/// itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Route(String);

/// Why a text is not a [`Route`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// It does not start with `/`.
    #[error("it does not start with `/`")]
    NotAbsolute,
    /// Longer than [`Route::MAX_LEN`] bytes.
    #[error("it is {0} bytes long; the most is {max}", max = Route::MAX_LEN)]
    TooLong(usize),
    /// A character a path may not hold unescaped (or a `%`-escape, a query or a fragment).
    #[error("{0:?} is not allowed in a route (use letters, digits and -._~!$&'()*+,;=:@ between slashes)")]
    Character(char),
    /// An empty, `.` or `..` segment, or a trailing `/`.
    #[error("it has an empty, `.` or `..` segment, or ends with `/`")]
    Segment,
}

impl Route {
    /// The longest route, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Checks `route` without keeping it.
    ///
    /// # Errors
    /// [`RouteError`] saying what is wrong with it.
    pub fn check(route: &str) -> Result<(), RouteError> {
        let Some(rest) = route.strip_prefix('/') else { return Err(RouteError::NotAbsolute) };
        if route.len() > Self::MAX_LEN {
            return Err(RouteError::TooLong(route.len()));
        }
        if let Some(c) = route.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(*c))) {
            return Err(RouteError::Character(c));
        }
        if !rest.is_empty() && rest.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(RouteError::Segment);
        }
        Ok(())
    }

    /// The route as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request's path (without its query) is this route or below it.
    pub fn matches(&self, path: &str) -> bool {
        if self.0 == "/" {
            return path.starts_with('/');
        }
        path.strip_prefix(self.0.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

impl TryFrom<String> for Route {
    type Error = RouteError;

    fn try_from(route: String) -> Result<Self, RouteError> {
        Self::check(&route)?;
        Ok(Self(route))
    }
}

impl FromStr for Route {
    type Err = RouteError;

    fn from_str(route: &str) -> Result<Self, RouteError> {
        Self::check(route)?;
        Ok(Self(route.to_owned()))
    }
}

impl From<Route> for String {
    fn from(route: Route) -> String {
        route.0
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS host name a workload answers for (the request's `Host`, and the name a client asks
/// for in TLS): 1 to 253 bytes of dot-separated labels, each 1 to 63 of `a-z 0-9 -`, not
/// starting or ending with `-`. Lower case only, so that one name has one spelling; no
/// trailing dot; not an IP address (the last label is not all digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostName(String);

/// Why a text is not a [`HostName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    /// Empty, or longer than 253 bytes.
    #[error("a host name is 1 to 253 bytes long, not {0}")]
    Length(usize),
    /// A label that is empty, longer than 63 bytes, or starts or ends with `-`.
    #[error("the label `{0}` is not 1 to 63 of a-z 0-9 - (not starting or ending with -)")]
    Label(String),
    /// A character other than `a-z 0-9 - .`.
    #[error("{0:?} is not allowed in a host name (use lower-case a-z, 0-9, - and .)")]
    Character(char),
    /// The last label is all digits: an address, not a name.
    #[error("it is an address, not a name")]
    Numeric,
}

impl HostName {
    /// Checks `name` without keeping it.
    ///
    /// # Errors
    /// [`HostNameError`] saying what is wrong with it.
    pub fn check(name: &str) -> Result<(), HostNameError> {
        if name.is_empty() || name.len() > 253 {
            return Err(HostNameError::Length(name.len()));
        }
        if let Some(c) =
            name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
        {
            return Err(HostNameError::Character(c));
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
                return Err(HostNameError::Label(label.to_owned()));
            }
        }
        if name.rsplit('.').next().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit())) {
            return Err(HostNameError::Numeric);
        }
        Ok(())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request's `Host` (or TLS server name) names this host: compared without case,
    /// a port after it ignored.
    pub fn matches(&self, host: &str) -> bool {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        name.trim_end_matches('.').eq_ignore_ascii_case(&self.0)
    }
}

impl TryFrom<String> for HostName {
    type Error = HostNameError;

    fn try_from(name: String) -> Result<Self, HostNameError> {
        Self::check(&name)?;
        Ok(Self(name))
    }
}

impl FromStr for HostName {
    type Err = HostNameError;

    fn from_str(name: &str) -> Result<Self, HostNameError> {
        Self::check(name)?;
        Ok(Self(name.to_owned()))
    }
}

impl From<HostName> for String {
    fn from(name: HostName) -> String {
        name.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a client connecting to a workload's endpoint can verify before it sends anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointAttestation {
    /// The node's attested TLS certificate: evidence of the node's platform, bound to the
    /// certificate's key, and the modules the node serves. The default.
    #[default]
    Node,
    /// A certificate of the instance's own, its evidence bound to the workload's module hash
    /// and the certificate's key (the certificate is chosen by the host name the client asks
    /// for, so the workload needs a `host`).
    Instance,
    /// TLS without evidence: a client cannot tell what serves it. Only for data that needs no
    /// such proof; the name says so.
    UnattestedTls,
}

impl EndpointAttestation {
    /// Every choice, in the order the manifest's documentation lists them.
    pub const ALL: [EndpointAttestation; 3] =
        [EndpointAttestation::Node, EndpointAttestation::Instance, EndpointAttestation::UnattestedTls];

    /// The name a manifest uses.
    pub fn name(self) -> &'static str {
        match self {
            EndpointAttestation::Node => "node",
            EndpointAttestation::Instance => "instance",
            EndpointAttestation::UnattestedTls => "unattested-tls",
        }
    }
}

impl fmt::Display for EndpointAttestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a workload serves over HTTP on its nodes' ingress (`[workload.http]` in a manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpService {
    /// The path prefixes the ingress sends to the workload's instances; at least one.
    pub routes: Vec<Route>,
    /// The host name the workload answers for; without one, any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostName>,
    /// What a client can verify of the endpoint.
    #[serde(default)]
    pub attestation: EndpointAttestation,
}

/// How well a request matches a service: a request goes to the service that matches it best,
/// as HTTP routers do. A service that names the request's host beats one that names none; among
/// those, the longest matching route wins (`/readings/raw` over `/readings` over `/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatchRank {
    /// The service names the request's host.
    pub by_host: bool,
    /// The length of the route that matched.
    pub route_len: usize,
}

impl HttpService {
    /// How well a request with this `Host` (or none) and path (without its query) matches the
    /// service, or `None` when it is not the service's.
    pub fn rank(&self, host: Option<&str>, path: &str) -> Option<MatchRank> {
        let by_host = match (&self.host, host) {
            (None, _) => false,
            (Some(mine), Some(asked)) if mine.matches(asked) => true,
            (Some(_), _) => return None,
        };
        let route_len = self.routes.iter().filter(|r| r.matches(path)).map(|r| r.as_str().len()).max()?;
        Some(MatchRank { by_host, route_len })
    }

    /// A route that `self` and `other` both list for the same host (or both for any host): a
    /// request could go to either, so two workloads may not share one.
    pub fn clash<'a>(&'a self, other: &'a HttpService) -> Option<&'a Route> {
        if self.host != other.host {
            return None;
        }
        self.routes.iter().find(|a| other.routes.contains(a))
    }
}

/// One instance a node's ingress serves, as the node's ingress certificate declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedEndpoint {
    /// The workload it is an instance of.
    pub workload: crate::WorkloadName,
    /// Which replica.
    pub replica: u32,
    /// Its routes, host and attestation.
    pub service: HttpService,
    /// The module it runs.
    pub module: crate::ModuleHash,
    /// The digest of its configuration, as its own evidence would claim it.
    pub config_digest: [u8; 32],
}

/// What a node's ingress serves: carried in its attested certificate, whose evidence claims
/// the SHA-256 of these bytes as its configuration digest. A client finds the endpoint its URL
/// reaches ([`ServedTable::endpoint_for`]) and checks its module before it sends anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedTable {
    /// The endpoints, ordered by workload and replica.
    pub endpoints: Vec<ServedEndpoint>,
}

/// Why bytes are not a [`ServedTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ingress certificate's table of served endpoints is malformed: {0}")]
pub struct ServedTableError(String);

impl ServedTable {
    /// The most bytes a table may take (it travels in a TLS certificate, at most 64 KiB).
    pub const MAX_LEN: usize = 32 * 1024;

    /// A table of these endpoints, put in order.
    pub fn new(mut endpoints: Vec<ServedEndpoint>) -> Self {
        endpoints.sort_by(|a, b| (&a.workload, a.replica).cmp(&(&b.workload, b.replica)));
        Self { endpoints }
    }

    /// Its bytes (CBOR), as the certificate carries them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail, and every field serialises.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Reads a table from a certificate's bytes.
    ///
    /// # Errors
    /// [`ServedTableError`] when the bytes are too many, not one CBOR item, or not a table (a
    /// route or host that is not one included).
    pub fn decode(bytes: &[u8]) -> Result<Self, ServedTableError> {
        let value = crate::cbor::decode_one(bytes, Self::MAX_LEN).map_err(|e| ServedTableError(e.to_string()))?;
        value.deserialized().map_err(|e| ServedTableError(e.to_string()))
    }

    /// The digest an ingress certificate's evidence claims for these bytes.
    pub fn digest_of(bytes: &[u8]) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).into()
    }

    /// The endpoint a request to this host and path reaches, as the ingress routes it: the best
    /// match ([`HttpService::rank`]); among instances of one workload, any (they run one
    /// module under one configuration but for their replica number).
    pub fn endpoint_for(&self, host: Option<&str>, path: &str) -> Option<&ServedEndpoint> {
        self.endpoints
            .iter()
            .filter_map(|e| e.service.rank(host, path).map(|r| (r, e)))
            .fold(None, |best: Option<(MatchRank, &ServedEndpoint)>, (r, e)| match best {
                Some((b, _)) if b >= r => best,
                _ => Some((r, e)),
            })
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_route_matches_itself_and_below_it_never_a_longer_name() {
        let r: Route = "/readings".parse().expect("route");
        assert!(r.matches("/readings"));
        assert!(r.matches("/readings/today"));
        assert!(!r.matches("/readingsx"));
        assert!(!r.matches("/"));
        let root: Route = "/".parse().expect("route");
        assert!(root.matches("/anything/at/all"));
        assert!(!root.matches("anything"));
    }

    #[test]
    fn routes_that_could_escape_or_confuse_are_refused() {
        for (bad, why) in [
            ("readings", RouteError::NotAbsolute),
            ("", RouteError::NotAbsolute),
            ("/a/../b", RouteError::Segment),
            ("/a/./b", RouteError::Segment),
            ("/a//b", RouteError::Segment),
            ("/a/", RouteError::Segment),
            ("/a%2fb", RouteError::Character('%')),
            ("/a?b", RouteError::Character('?')),
            ("/a#b", RouteError::Character('#')),
            ("/a b", RouteError::Character(' ')),
            ("/é", RouteError::Character('é')),
        ] {
            assert_eq!(bad.parse::<Route>(), Err(why), "{bad}");
        }
        let long = format!("/{}", "a".repeat(Route::MAX_LEN));
        assert!(matches!(long.parse::<Route>(), Err(RouteError::TooLong(_))));
    }

    #[test]
    fn host_names_are_lower_case_dns_names_and_match_without_case_or_port() {
        let h: HostName = "sensor.edge.example".parse().expect("name");
        assert!(h.matches("sensor.edge.example"));
        assert!(h.matches("Sensor.Edge.Example:8443"));
        assert!(h.matches("sensor.edge.example."));
        assert!(!h.matches("other.edge.example"));
        assert!(matches!("Sensor.example".parse::<HostName>(), Err(HostNameError::Character('S'))));
        assert!(matches!("-a.example".parse::<HostName>(), Err(HostNameError::Label(_))));
        assert!(matches!("a..example".parse::<HostName>(), Err(HostNameError::Label(_))));
        assert!(matches!("10.0.0.1".parse::<HostName>(), Err(HostNameError::Numeric)));
        assert!(matches!("".parse::<HostName>(), Err(HostNameError::Length(0))));
        assert!(matches!(format!("{}.example", "a".repeat(64)).parse::<HostName>(), Err(HostNameError::Label(_))));
    }

    fn svc(host: Option<&str>, routes: &[&str]) -> HttpService {
        HttpService {
            routes: routes.iter().map(|r| r.parse().expect("route")).collect(),
            host: host.map(|h| h.parse().expect("host")),
            attestation: EndpointAttestation::Node,
        }
    }

    #[test]
    fn a_request_goes_to_the_service_naming_its_host_then_to_the_longest_route() {
        let any_root = svc(None, &["/"]);
        let any_readings = svc(None, &["/readings"]);
        let x_root = svc(Some("x.example"), &["/"]);
        let rank = |s: &HttpService, host, path| s.rank(host, path);
        // By host first: x.example's `/` beats the host-less `/readings`.
        assert!(
            rank(&x_root, Some("X.example:443"), "/readings/1") > rank(&any_readings, Some("x.example"), "/readings/1")
        );
        // Then by route: `/readings` beats `/`.
        assert!(
            rank(&any_readings, Some("y.example"), "/readings/1") > rank(&any_root, Some("y.example"), "/readings/1")
        );
        assert_eq!(rank(&x_root, Some("y.example"), "/"), None, "another host's request is not x's");
        assert_eq!(rank(&x_root, None, "/"), None, "nor one that names no host");
        assert_eq!(rank(&any_readings, None, "/queries"), None);
    }

    #[test]
    fn two_services_clash_only_on_the_same_route_for_the_same_host() {
        let a = svc(None, &["/readings", "/health"]);
        assert_eq!(a.clash(&svc(None, &["/health"])).map(Route::as_str), Some("/health"));
        assert!(a.clash(&svc(None, &["/readings/raw"])).is_none(), "the longer route wins below it");
        assert!(a.clash(&svc(Some("x.example"), &["/readings"])).is_none(), "x.example's requests go to x");
        let x = svc(Some("x.example"), &["/"]);
        assert!(x.clash(&svc(Some("y.example"), &["/"])).is_none());
        assert!(x.clash(&svc(Some("x.example"), &["/"])).is_some());
    }

    #[test]
    fn serialised_forms_are_checked_when_read() {
        let ok: HttpService =
            serde_json::from_str(r#"{"routes":["/a"],"attestation":"instance","host":"a.example"}"#).expect("valid");
        assert_eq!(ok.attestation, EndpointAttestation::Instance);
        assert!(serde_json::from_str::<HttpService>(r#"{"routes":["a"]}"#).is_err());
        assert!(serde_json::from_str::<HttpService>(r#"{"routes":["/a"],"host":"A"}"#).is_err());
        assert!(serde_json::from_str::<HttpService>(r#"{"routes":["/a"],"attestation":"none"}"#).is_err());
        let default: HttpService = serde_json::from_str(r#"{"routes":["/"]}"#).expect("valid");
        assert_eq!(default.attestation, EndpointAttestation::Node, "attested unless asked otherwise");
    }

    #[test]
    fn a_served_table_round_trips_through_its_bytes_and_finds_the_endpoint_a_request_reaches() {
        let endpoint = |workload: &str, replica: u32, service: HttpService| ServedEndpoint {
            workload: workload.parse().expect("name"),
            replica,
            service,
            module: crate::ModuleHash::of(workload.as_bytes()),
            config_digest: [replica as u8; 32],
        };
        let table = ServedTable::new(vec![
            endpoint("queries", 0, svc(Some("cloud.example"), &["/"])),
            endpoint("edge", 1, svc(None, &["/readings"])),
            endpoint("edge", 0, svc(None, &["/readings"])),
        ]);
        assert_eq!(table.endpoints.iter().map(|e| e.replica).collect::<Vec<_>>(), [0, 1, 0], "ordered");
        let bytes = table.encode();
        assert_eq!(ServedTable::decode(&bytes), Ok(table.clone()));
        assert_ne!(ServedTable::digest_of(&bytes), ServedTable::digest_of(&ServedTable::default().encode()));
        let reached = |host, path| table.endpoint_for(host, path).map(|e| e.workload.to_string());
        assert_eq!(reached(Some("cloud.example"), "/readings/1").as_deref(), Some("queries"), "the named host");
        assert_eq!(reached(Some("10.0.0.2:8443"), "/readings/1").as_deref(), Some("edge"));
        assert_eq!(reached(None, "/other"), None);
    }

    #[test]
    fn a_served_table_that_is_not_one_is_refused() {
        assert!(ServedTable::decode(b"").is_err());
        assert!(ServedTable::decode(&[0xff; 10]).is_err());
        assert!(ServedTable::decode(&vec![0; ServedTable::MAX_LEN + 1]).is_err());
        let mut bad = ServedTable::new(vec![ServedEndpoint {
            workload: "edge".parse().expect("name"),
            replica: 0,
            service: svc(None, &["/readings"]),
            module: crate::ModuleHash::of(b"m"),
            config_digest: [0; 32],
        }])
        .encode();
        // The route `/readings` becomes `?readings`: not a route.
        let at = bad.windows(9).position(|w| w == b"/readings").expect("the route's bytes");
        bad[at] = b'?';
        let e = ServedTable::decode(&bad).expect_err("refused");
        assert!(e.to_string().contains("does not start with `/`"), "{e}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_as_a_served_table_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ServedTable::decode(&bytes);
        }

        #[test]
        fn checking_arbitrary_text_never_panics_and_what_passes_matches_itself(text in "\\PC{0,40}") {
            if let Ok(route) = text.parse::<Route>() {
                prop_assert!(route.matches(&text));
            }
            if let Ok(host) = text.parse::<HostName>() {
                prop_assert!(host.matches(&text));
            }
        }

        #[test]
        fn a_route_matches_exactly_the_paths_it_is_a_segment_prefix_of(r in "(/[a-c]{1,2}){0,3}", p in "(/[a-c]{1,2}){0,4}") {
            let route: Route = (if r.is_empty() { "/".to_owned() } else { r.clone() }).parse().expect("route");
            let path = if p.is_empty() { "/".to_owned() } else { p.clone() };
            let (rs, ps): (Vec<&str>, Vec<&str>) = (r.split('/').skip(1).collect(), p.split('/').skip(1).collect());
            prop_assert_eq!(route.matches(&path), ps.starts_with(&rs));
        }
    }
}
