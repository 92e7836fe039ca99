//! The deployment manifest (`lamina deploy app.toml`): which workloads to run across the
//! continuum, how many of each, and where they may run.
//!
//! Parsed in two steps, as the house style asks: the TOML is read into a raw tree (unknown
//! fields refused), then resolved into typed [`WorkloadSpec`]s. Every error names the line, the
//! workload and the field, so a typo is found without guessing:
//! `app.toml:14: workload "filter": replicas: must be 1 to 1000`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::ingress::{EndpointAttestation, HttpService};
use crate::{ByteSize, ModuleHash, NetworkRules, PlatformKind, Target};

/// The most replicas of one workload.
pub const MAX_REPLICAS: u32 = 1000;

/// Where a workload may run. An empty list allows anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    /// Allowed architectures.
    pub architectures: Vec<Target>,
    /// Allowed platforms.
    pub platforms: Vec<PlatformKind>,
    /// Labels the node must carry, with these values.
    pub labels: BTreeMap<String, String>,
    /// Allowed zones.
    pub zones: Vec<String>,
    /// The least memory the node must offer in total.
    pub min_memory: Option<ByteSize>,
}

/// Which module a workload runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleRef {
    /// A `.wasm` file, relative to the directory `lamina deploy` runs in; it uploads it.
    Path(PathBuf),
    /// A module the control plane already has.
    Hash(ModuleHash),
}

/// One workload of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Its name.
    pub name: crate::WorkloadName,
    /// The module it runs.
    pub module: ModuleRef,
    /// How many instances.
    pub replicas: u32,
    /// Memory each instance may use (its `--max-memory`).
    pub memory: ByteSize,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Names of the secrets the control plane releases to its attested instances.
    pub secrets: Vec<crate::SecretName>,
    /// Guest paths of its sealed directories.
    pub sealed: Vec<String>,
    /// Topic patterns it subscribes to or publishes on.
    pub topics: Vec<crate::topic::TopicPattern>,
    /// Where it may run.
    pub constraints: Constraints,
    /// What its instances may reach on the network (outgoing HTTP, sockets, name lookups):
    /// nothing unless listed.
    #[serde(default, skip_serializing_if = "NetworkRules::is_empty")]
    pub network: NetworkRules,
    /// What it serves over HTTP on its nodes' ingress, when it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpService>,
}

/// A parsed deployment manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The workloads, in the file's order.
    pub workloads: Vec<WorkloadSpec>,
}

/// A manifest that cannot be used: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line of the offending value (0 when unknown).
    pub line: usize,
    /// The workload it is in, when known.
    pub workload: Option<String>,
    /// The field, as a dotted path within the workload (`constraints.platforms`).
    pub field: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if let Some(w) = &self.workload {
            write!(f, "workload \"{w}\": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    workload: Vec<Spanned<RawWorkload>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: Spanned<String>,
    module: Spanned<String>,
    #[serde(default)]
    replicas: Option<Spanned<i64>>,
    #[serde(default)]
    memory: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    #[serde(default)]
    sealed: Vec<Spanned<String>>,
    #[serde(default)]
    topics: Vec<Spanned<String>>,
    #[serde(default)]
    constraints: Option<RawConstraints>,
    #[serde(default)]
    network: Option<RawNetwork>,
    #[serde(default)]
    http: Option<Spanned<RawHttp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    http: Vec<Spanned<String>>,
    #[serde(default)]
    sockets: Vec<Spanned<String>>,
    #[serde(default)]
    name_lookup: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    routes: Vec<Spanned<String>>,
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    attestation: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraints {
    #[serde(default)]
    architectures: Vec<Spanned<String>>,
    #[serde(default)]
    platforms: Vec<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    zones: Vec<Spanned<String>>,
    #[serde(default)]
    min_memory: Option<Spanned<String>>,
}

/// Resolves spans to lines and carries the workload being read.
struct Resolver<'a> {
    text: &'a str,
    workload: Option<String>,
}

impl Resolver<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text.get(..offset).map_or(0, |t| t.matches('\n').count() + 1)
    }

    fn error<T>(&self, at: &Spanned<T>, field: &str, message: impl Into<String>) -> ManifestError {
        ManifestError {
            line: self.line(at.span().start),
            workload: self.workload.clone(),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn parse<T: FromStr>(&self, value: &Spanned<String>, field: &str) -> Result<T, ManifestError>
    where
        T::Err: fmt::Display,
    {
        value.get_ref().parse().map_err(|e: T::Err| self.error(value, field, e.to_string()))
    }
}

/// Checks a secret name ([`SecretName`](crate::SecretName)'s rule: 1 to 128 of
/// `A-Z a-z 0-9 _ - .`, not starting with a dot).
///
/// # Errors
/// Why it is not one.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    crate::SecretName::check(name).map_err(|e| {
        format!(
            "`{}` is not a secret name: {e} (use 1 to 128 of A-Z a-z 0-9 _ - ., not starting with a dot)",
            name.escape_debug()
        )
    })
}

/// Checks a workload (or node) name: 1 to 63 of `a-z 0-9 -`, starting with a letter, not
/// ending with `-`.
///
/// # Errors
/// A message saying what a name must be.
pub fn check_name(name: &str) -> Result<(), String> {
    crate::WorkloadName::check(name).map_err(|e| e.to_string())
}

impl FromStr for Deployment {
    type Err = ManifestError;

    fn from_str(text: &str) -> Result<Self, ManifestError> {
        Deployment::parse(text)
    }
}

impl Deployment {
    /// Parses and checks a manifest.
    ///
    /// # Errors
    /// [`ManifestError`] naming the line, the workload and the field.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let mut r = Resolver { text, workload: None };
        let raw: RawFile = toml::from_str(text).map_err(|e| ManifestError {
            line: e.span().map_or(0, |s| r.line(s.start)),
            workload: None,
            field: None,
            message: e.message().trim().to_owned(),
        })?;
        if raw.workload.is_empty() {
            return Err(ManifestError {
                line: 0,
                workload: None,
                field: None,
                message: "no workloads: add a [[workload]] table with at least `name` and `module`".into(),
            });
        }
        let mut seen = BTreeMap::new();
        let mut workloads: Vec<WorkloadSpec> = Vec::new();
        for w in raw.workload {
            let at = r.line(w.span().start);
            let w = w.into_inner();
            r.workload = Some(w.name.get_ref().clone());
            check_name(w.name.get_ref()).map_err(|m| r.error(&w.name, "name", m))?;
            if let Some(first) = seen.insert(w.name.get_ref().clone(), at) {
                return Err(r.error(&w.name, "name", format!("the name is used twice (first on line {first})")));
            }
            let route_spans: Vec<_> = w.http.as_ref().map(|h| h.get_ref().routes.clone()).unwrap_or_default();
            let spec = resolve(&r, w)?;
            if let Some(http) = &spec.http {
                for earlier in &workloads {
                    let Some(mine) = earlier.http.as_ref().and_then(|e| http.clash(e)) else { continue };
                    let message = clash_message(mine, &earlier.name);
                    return Err(match route_spans.iter().find(|s| s.get_ref() == mine.as_str()) {
                        Some(at) => r.error(at, "http.routes", message),
                        None => ManifestError {
                            line: at,
                            workload: r.workload.clone(),
                            field: Some("http.routes".into()),
                            message,
                        },
                    });
                }
            }
            workloads.push(spec);
        }
        Ok(Deployment { workloads })
    }
}

/// What is said of a route that another workload serves for the same host.
pub fn clash_message(route: &crate::ingress::Route, other: &crate::WorkloadName) -> String {
    format!(
        "route `{route}` is also served by workload \"{other}\" for the same host: give each its own routes, or each a \
         different `host`"
    )
}

/// The first two workloads of `workloads` whose HTTP routes meet, with the routes, in the
/// message [`clash_message`] gives: a deployment that would make one request reach two
/// workloads is refused.
pub fn find_clash<'a>(workloads: impl IntoIterator<Item = &'a WorkloadSpec> + Clone) -> Option<String> {
    let all: Vec<&WorkloadSpec> = workloads.into_iter().collect();
    for (i, a) in all.iter().enumerate() {
        let Some(ha) = &a.http else { continue };
        for b in &all[i + 1..] {
            if let Some(mine) = b.http.as_ref().and_then(|hb| ha.clash(hb)) {
                return Some(format!("workload \"{}\": {}", a.name, clash_message(mine, &b.name)));
            }
        }
    }
    None
}

/// The prefix of the variables the runtime sets for an instance (`LAMINA_WORKLOAD`, …): a
/// manifest may not set them, so a guest can rely on what they say.
pub const RESERVED_ENV_PREFIX: &str = "LAMINA_";

/// Checks one environment variable of a manifest: a name without `=` or NUL, not reserved, and
/// a value without NUL.
pub fn check_env(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("an empty variable name".into());
    }
    if key.contains('=') || key.contains('\0') {
        return Err(format!("the variable name `{}` contains `=` or a NUL", key.escape_debug()));
    }
    if key.to_ascii_uppercase().starts_with(RESERVED_ENV_PREFIX) {
        return Err(format!("`{key}`: names starting with {RESERVED_ENV_PREFIX} are the runtime's own"));
    }
    if value.contains('\0') {
        return Err(format!("the value of `{key}` contains a NUL"));
    }
    Ok(())
}

fn resolve(r: &Resolver<'_>, w: RawWorkload) -> Result<WorkloadSpec, ManifestError> {
    let module_text = w.module.get_ref();
    let module = if module_text.starts_with("sha256:") {
        ModuleRef::Hash(r.parse(&w.module, "module")?)
    } else if module_text.is_empty() {
        return Err(r.error(&w.module, "module", "empty: give a .wasm path or a sha256: reference"));
    } else {
        ModuleRef::Path(module_text.into())
    };
    let replicas = match &w.replicas {
        None => 1,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=MAX_REPLICAS).contains(n))
            .ok_or_else(|| r.error(n, "replicas", format!("must be 1 to {MAX_REPLICAS}, not {}", n.get_ref())))?,
    };
    let memory = match &w.memory {
        None => ByteSize::mib(64),
        Some(m) => r.parse(m, "memory")?,
    };
    for s in &w.secrets {
        if let Err(e) = check_secret_name(s.get_ref()) {
            return Err(r.error(s, "secrets", e));
        }
    }
    let mut sealed_seen = std::collections::BTreeSet::new();
    for p in &w.sealed {
        let path = p.get_ref();
        if !path.starts_with('/') {
            return Err(r.error(p, "sealed", format!("`{path}` is not an absolute guest path such as /data")));
        }
        if path.split('/').any(|c| c == "." || c == "..") || path.contains('\0') {
            return Err(r.error(p, "sealed", format!("`{path}` has a `.` or `..` component (or a NUL)")));
        }
        if !sealed_seen.insert(path.trim_end_matches('/')) {
            return Err(r.error(p, "sealed", format!("`{path}` is listed twice")));
        }
    }
    for (key, value) in &w.env {
        if let Err(e) = check_env(key, value) {
            return Err(r.error(&w.name, "env", e));
        }
    }
    let mut topics = Vec::with_capacity(w.topics.len());
    for t in &w.topics {
        let pattern = t.get_ref().parse::<crate::topic::TopicPattern>().map_err(|e| {
            r.error(
                t,
                "topics",
                format!("`{}` is not a topic pattern such as sensors.>: {e}", t.get_ref().escape_debug()),
            )
        })?;
        topics.push(pattern);
    }
    let constraints = match w.constraints {
        None => Constraints::default(),
        Some(c) => Constraints {
            architectures: c
                .architectures
                .iter()
                .map(|a| r.parse(a, "constraints.architectures"))
                .collect::<Result<_, _>>()?,
            platforms: c
                .platforms
                .iter()
                .map(|p| {
                    PlatformKind::ALL.into_iter().find(|k| k.name() == p.get_ref()).ok_or_else(|| {
                        r.error(
                            p,
                            "constraints.platforms",
                            format!("`{}` is not a platform: use sim, tpm, sgx, tdx, snp or cca", p.get_ref()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            labels: c.labels,
            zones: c
                .zones
                .iter()
                .map(|z| {
                    if z.get_ref().is_empty() {
                        Err(r.error(z, "constraints.zones", "an empty zone name"))
                    } else {
                        Ok(z.get_ref().clone())
                    }
                })
                .collect::<Result<_, _>>()?,
            min_memory: c.min_memory.as_ref().map(|m| r.parse(m, "constraints.min_memory")).transpose()?,
        },
    };
    let network = match &w.network {
        None => NetworkRules::default(),
        Some(n) => {
            for (rules, field, socket) in [(&n.http, "network.http", false), (&n.sockets, "network.sockets", true)] {
                for rule in rules {
                    let one = std::slice::from_ref(rule.get_ref());
                    let checked = if socket {
                        NetworkRules::parse(&[], one, false)
                    } else {
                        NetworkRules::parse(one, &[], false)
                    };
                    checked.map_err(|e| r.error(rule, field, e.to_string()))?;
                }
            }
            let texts = |v: &[Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
            NetworkRules::parse(&texts(&n.http), &texts(&n.sockets), n.name_lookup)
                .map_err(|e| r.error(&w.name, "network", e.to_string()))?
        }
    };
    let http = w.http.as_ref().map(|h| resolve_http(r, h)).transpose()?;
    Ok(WorkloadSpec {
        name: r.parse(&w.name, "name")?,
        module,
        replicas,
        memory,
        args: w.args,
        env: w.env,
        secrets: w.secrets.iter().map(|s| r.parse(s, "secrets")).collect::<Result<_, _>>()?,
        sealed: w.sealed.into_iter().map(Spanned::into_inner).collect(),
        topics,
        constraints,
        network,
        http,
    })
}

fn resolve_http(r: &Resolver<'_>, raw: &Spanned<RawHttp>) -> Result<HttpService, ManifestError> {
    let h = raw.get_ref();
    if h.routes.is_empty() {
        return Err(r.error(
            raw,
            "http.routes",
            "no routes: list the path prefixes it serves, such as [\"/\"] or [\"/readings\"]",
        ));
    }
    let mut routes: Vec<crate::ingress::Route> = Vec::with_capacity(h.routes.len());
    for text in &h.routes {
        let route: crate::ingress::Route = text.get_ref().parse().map_err(|e| {
            r.error(
                text,
                "http.routes",
                format!("`{}` is not a route such as /readings: {e}", text.get_ref().escape_debug()),
            )
        })?;
        if routes.contains(&route) {
            return Err(r.error(text, "http.routes", format!("`{route}` is listed twice")));
        }
        routes.push(route);
    }
    let host = h
        .host
        .as_ref()
        .map(|t| {
            t.get_ref().parse::<crate::ingress::HostName>().map_err(|e| {
                r.error(
                    t,
                    "http.host",
                    format!("`{}` is not a host name such as sensor.example: {e}", t.get_ref().escape_debug()),
                )
            })
        })
        .transpose()?;
    let attestation = match &h.attestation {
        None => EndpointAttestation::default(),
        Some(a) => EndpointAttestation::ALL.into_iter().find(|k| k.name() == a.get_ref()).ok_or_else(|| {
            r.error(
                a,
                "http.attestation",
                format!("`{}` is not one of node, instance or unattested-tls", a.get_ref().escape_debug()),
            )
        })?,
    };
    if let (EndpointAttestation::Instance, None, Some(at)) = (attestation, &host, &h.attestation) {
        return Err(r.error(
            at,
            "http.attestation",
            "an instance's own certificate is chosen by the host name a client asks for: give the workload a `host`",
        ));
    }
    Ok(HttpService { routes, host, attestation })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
# A two-stage application.
[[workload]]
name = "filter"
module = "filter.wasm"
replicas = 2
memory = "32MiB"
topics = ["sensors.>"]

[workload.constraints]
architectures = ["aarch64"]
platforms = ["tpm", "sim"]
zones = ["edge"]

[[workload]]
name = "aggregate"
module = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
secrets = ["db-key"]
sealed = ["/data"]

[workload.constraints]
zones = ["cloud"]
labels = { tier = "gold" }
min_memory = "1GiB"
"#;

    #[test]
    fn a_manifest_resolves_into_typed_workloads() {
        let d = Deployment::parse(GOOD).expect("valid");
        assert_eq!(d.workloads.len(), 2);
        let filter = &d.workloads[0];
        assert_eq!(filter.module, ModuleRef::Path("filter.wasm".into()));
        assert_eq!(filter.replicas, 2);
        assert_eq!(filter.memory, ByteSize::mib(32));
        assert_eq!(filter.constraints.architectures, vec![Target::Aarch64Linux]);
        assert_eq!(filter.constraints.platforms, vec![PlatformKind::Tpm, PlatformKind::Sim]);
        let aggregate = &d.workloads[1];
        assert!(matches!(aggregate.module, ModuleRef::Hash(_)));
        assert_eq!(aggregate.replicas, 1, "one by default");
        assert_eq!(aggregate.constraints.min_memory, Some(ByteSize::gib(1)));
        assert_eq!(aggregate.constraints.labels.get("tier").map(String::as_str), Some("gold"));
    }

    fn error(text: &str) -> String {
        Deployment::parse(text).expect_err("invalid").to_string()
    }

    #[test]
    fn duplicate_sealed_paths_env_keys_with_equals_and_reserved_env_names_are_refused() {
        let dup = GOOD.replace(r#"sealed = ["/data"]"#, r#"sealed = ["/data", "/data/"]"#);
        assert!(error(&dup).contains("`/data/` is listed twice"), "{}", error(&dup));
        let dots = GOOD.replace(r#"sealed = ["/data"]"#, r#"sealed = ["/data/../etc"]"#);
        assert!(error(&dots).contains("`..`"), "{}", error(&dots));
        let with_env = |env: &str| {
            GOOD.replace(
                "[workload.constraints]\nzones = [\"cloud\"]",
                &format!("env = {env}\n[workload.constraints]\nzones = [\"cloud\"]"),
            )
        };
        let ok = with_env(r#"{ MODE = "fast" }"#);
        assert_eq!(
            Deployment::parse(&ok).expect("valid").workloads[1].env.get("MODE").map(String::as_str),
            Some("fast")
        );
        let equals = with_env(r#"{ "A=B" = "x" }"#);
        assert!(error(&equals).contains("contains `=`"), "{}", error(&equals));
        let spoof = with_env(r#"{ LAMINA_WORKLOAD = "someone-else" }"#);
        assert!(error(&spoof).contains("the runtime's own"), "{}", error(&spoof));
        let lower = with_env(r#"{ lamina_node = "x" }"#);
        assert!(error(&lower).contains("the runtime's own"), "{}", error(&lower));
    }

    #[test]
    fn errors_name_the_line_the_workload_and_the_field() {
        let bad = GOOD.replace("replicas = 2", "replicas = 0");
        assert_eq!(error(&bad), "line 6: workload \"filter\": replicas: must be 1 to 1000, not 0");
        let bad = GOOD.replace(r#"platforms = ["tpm", "sim"]"#, r#"platforms = ["tpm", "sev"]"#);
        assert_eq!(
            error(&bad),
            "line 12: workload \"filter\": constraints.platforms: `sev` is not a platform: use sim, tpm, sgx, tdx, snp or cca"
        );
        let huge = GOOD.replace(r#"memory = "32MiB""#, r#"memory = "18446744073709551615TiB""#);
        assert!(error(&huge).contains("too large"), "{}", error(&huge));
        let bad = GOOD.replace(r#"memory = "32MiB""#, r#"memory = "lots""#);
        assert!(
            error(&bad).starts_with("line 7: workload \"filter\": memory: `lots` is not a size"),
            "{}",
            error(&bad)
        );
        let bad = GOOD.replace("replicas = 2", "replica = 2");
        let e = error(&bad);
        assert!(e.starts_with("line 6: ") && e.contains("unknown field `replica`"), "{e}");
        let bad = GOOD.replace("name = \"aggregate\"", "name = \"filter\"");
        assert_eq!(error(&bad), "line 16: workload \"filter\": name: the name is used twice (first on line 3)");
        let bad = GOOD.replace("name = \"filter\"", "name = \"Filter_1\"");
        assert!(error(&bad).contains("name: `Filter_1` is not a workload name"), "{}", error(&bad));
        let bad = GOOD.replace("sha256:00", "sha256:zz");
        assert!(error(&bad).contains("module: `sha256:zz"), "{}", error(&bad));
        let bad = GOOD.replace(r#"sealed = ["/data"]"#, r#"sealed = ["data"]"#);
        assert!(error(&bad).contains("sealed: `data` is not an absolute guest path"), "{}", error(&bad));
        let bad = GOOD.replace(r#"architectures = ["aarch64"]"#, r#"architectures = ["mips"]"#);
        assert!(error(&bad).starts_with("line 11: workload \"filter\": constraints.architectures:"), "{}", error(&bad));
        assert!(error("").contains("no workloads"));
        assert!(error("[[workload]]\nname = \"x\"\n").contains("missing field `module`"));
        let e = error("[[workload]\n");
        assert!(e.starts_with("line 1: "), "{e}");
    }

    const SERVING: &str = r#"
[[workload]]
name = "edge"
module = "edge.wasm"

[workload.network]
http = ["https://api.example.com"]
sockets = ["tcp://10.0.0.0/8:5432"]

[workload.http]
routes = ["/readings", "/health"]

[[workload]]
name = "cloud"
module = "cloud.wasm"

[workload.http]
routes = ["/"]
host = "cloud.example"
attestation = "instance"
"#;

    #[test]
    fn serving_workloads_carry_their_routes_host_attestation_and_network_rules() {
        let d = Deployment::parse(SERVING).expect("valid");
        let edge = &d.workloads[0];
        let http = edge.http.as_ref().expect("serves");
        assert_eq!(http.routes.iter().map(|r| r.as_str()).collect::<Vec<_>>(), ["/readings", "/health"]);
        assert_eq!(http.host, None);
        assert_eq!(http.attestation, EndpointAttestation::Node, "attested by default");
        assert!(edge.network.allows_http("https", "api.example.com", 443));
        assert!(!edge.network.allows_http("https", "other.example", 443));
        assert!(!edge.network.name_lookup);
        let cloud = &d.workloads[1];
        assert_eq!(cloud.http.as_ref().and_then(|h| h.host.as_ref()).map(|h| h.as_str()), Some("cloud.example"));
        assert!(cloud.network.is_empty(), "nothing reachable unless listed");
        let plain = Deployment::parse(GOOD).expect("valid");
        assert!(plain.workloads.iter().all(|w| w.http.is_none() && w.network.is_empty()));
    }

    #[test]
    fn a_spec_without_network_or_http_serialises_as_before() {
        let d = Deployment::parse(GOOD).expect("valid");
        let json = serde_json::to_string(&d).expect("json");
        assert!(!json.contains("network") && !json.contains("\"http\""), "{json}");
        let back: Deployment = serde_json::from_str(&json).expect("read back");
        assert_eq!(back, d);
        let serving = Deployment::parse(SERVING).expect("valid");
        let back: Deployment = serde_json::from_str(&serde_json::to_string(&serving).expect("json")).expect("read");
        assert_eq!(back, serving);
    }

    #[test]
    fn serving_mistakes_name_their_line_and_field() {
        let bad = SERVING.replace(r#"routes = ["/readings", "/health"]"#, r#"routes = ["/readings", "health"]"#);
        assert_eq!(
            error(&bad),
            "line 11: workload \"edge\": http.routes: `health` is not a route such as /readings: it does not start with `/`"
        );
        let bad = SERVING.replace(r#"routes = ["/readings", "/health"]"#, "routes = []");
        assert!(error(&bad).starts_with("line 10: workload \"edge\": http.routes: no routes"), "{}", error(&bad));
        let bad = SERVING.replace(r#"routes = ["/readings", "/health"]"#, r#"routes = ["/a", "/a"]"#);
        assert!(error(&bad).contains("`/a` is listed twice"), "{}", error(&bad));
        let bad = SERVING.replace(r#"host = "cloud.example""#, r#"host = "Cloud.example""#);
        assert!(error(&bad).starts_with("line 19: workload \"cloud\": http.host: `Cloud.example`"), "{}", error(&bad));
        let bad = SERVING.replace(r#"attestation = "instance""#, r#"attestation = "none""#);
        assert!(error(&bad).contains("http.attestation: `none` is not one of node, instance or unattested-tls"));
        let bad = SERVING.replace("host = \"cloud.example\"\n", "");
        assert!(error(&bad).contains("give the workload a `host`"), "{}", error(&bad));
        let bad = SERVING.replace(r#"sockets = ["tcp://10.0.0.0/8:5432"]"#, r#"sockets = ["tcp://db.example:5432"]"#);
        assert!(error(&bad).starts_with("line 8: workload \"edge\": network.sockets: network rule"), "{}", error(&bad));
        let bad = SERVING.replace(r#"http = ["https://api.example.com"]"#, r#"http = ["tcp://1.2.3.4:80"]"#);
        assert!(error(&bad).starts_with("line 7: workload \"edge\": network.http:"), "{}", error(&bad));
        let bad = SERVING.replace("[workload.http]\nroutes = [\"/\"]", "[workload.http]\nroute = [\"/\"]");
        assert!(error(&bad).contains("unknown field `route`"), "{}", error(&bad));
    }

    #[test]
    fn two_workloads_that_one_request_could_reach_are_refused() {
        let bad = SERVING.replace(
            "routes = [\"/\"]\nhost = \"cloud.example\"\nattestation = \"instance\"\n",
            "routes = [\"/\", \"/health\"]\n",
        );
        assert_eq!(
            error(&bad),
            "line 18: workload \"cloud\": http.routes: route `/health` is also served by workload \"edge\" for the same \
             host: give each its own routes, or each a different `host`"
        );
        let d = Deployment::parse(SERVING).expect("valid");
        assert!(find_clash(&d.workloads).is_none());
        let mut other = d.workloads[0].clone();
        other.name = "edge-two".parse().expect("name");
        let clash = find_clash(d.workloads.iter().chain([&other])).expect("a clash");
        assert!(
            clash.starts_with("workload \"edge\": route `/readings` is also served by workload \"edge-two\""),
            "{clash}"
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = Deployment::parse(&text);
        }

        #[test]
        fn mutated_manifests_never_panic(cut in 0usize..600, insert in "\\PC{0,8}", serving: bool) {
            let base = if serving { SERVING } else { GOOD };
            let mut text = base.to_owned();
            let at = text.char_indices().map(|(i, _)| i).nth(cut % base.chars().count()).unwrap_or(0);
            text.insert_str(at, &insert);
            let _ = Deployment::parse(&text);
        }
    }
}
