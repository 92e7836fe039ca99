//! The control plane's routes: each a template the server routes (`{name}` marks a segment)
//! and a function that makes the path a client calls, its segments percent-encoded, so both
//! sides name a route once.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What is escaped in a path segment: controls, and what would end or split it (`/ ? #`), start
/// an escape (`%`), or that URL parsers treat specially; `.` and `..` as whole segments are
/// escaped apart (see `fill`).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// `GET`: liveness, the control plane's fingerprint and artifact key.
pub const HEALTH: &str = "/v1/health";
/// `POST`: a challenge for evidence to answer.
pub const CHALLENGE: &str = "/v1/challenge";
/// `POST` (admin): a join token.
pub const TOKENS: &str = "/v1/tokens";
/// `POST` (admin): upload a module.
pub const MODULES: &str = "/v1/modules";
/// `PUT` (admin): deploy workloads.
pub const DEPLOYMENTS: &str = "/v1/deployments";
/// `DELETE` (admin): undeploy a workload.
pub const DEPLOYMENT: &str = "/v1/deployments/{name}";
/// `GET` (admin): nodes, placements and what could not be placed.
pub const STATUS: &str = "/v1/status";
/// Where the HTTP workloads are served.
pub const ENDPOINTS: &str = "/v1/endpoints";
/// `POST` (attested TLS): a node enrols.
pub const ENROL: &str = "/v1/nodes/enroll";
/// `DELETE` (admin): remove a node.
pub const NODE: &str = "/v1/nodes/{name}";
/// `GET` (enrolled node): a signed artifact of a module for the node.
pub const ARTIFACT: &str = "/v1/nodes/{name}/artifacts/{hash}";
/// `POST` (enrolled node): fresh evidence.
pub const ATTEST: &str = "/v1/nodes/{name}/attest";
/// `POST` (enrolled node): a heartbeat; answered with the node's signed desired state.
pub const HEARTBEAT: &str = "/v1/nodes/{name}/heartbeat";
/// `POST` (enrolled, attested node): release an instance's secrets and sealing root.
pub const RELEASE: &str = "/v1/nodes/{name}/release";
/// `POST` (enrolled, attested node): release topic keys to an instance.
pub const TOPIC_KEYS: &str = "/v1/nodes/{name}/topic-keys";
/// `GET` (enrolled node): the signed desired state, as a long poll.
pub const DESIRED: &str = "/v1/nodes/{name}/desired";
/// `POST` (attested replica over TLS): the cluster key.
pub const CLUSTER_KEY: &str = "/v1/replicas/cluster-key";
/// `GET` (admin): the names of the secrets.
pub const SECRETS: &str = "/v1/secrets";
/// `PUT`, `DELETE` (admin): one secret.
pub const SECRET: &str = "/v1/secrets/{name}";
/// `GET` (admin): a workload's recent output.
pub const LOGS: &str = "/v1/workloads/{name}/logs";

/// `template` with each `{…}` segment replaced, in order, by `values`, percent-encoded (a name
/// with a `/` or `?` stays one segment).
///
/// # Panics
/// When the counts differ: a mistake in this crate, caught by its tests.
fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut values = values.iter();
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if segment.starts_with('{') && segment.ends_with('}') {
            let value = values.next().unwrap_or_else(|| unreachable!("too few values for {template}"));
            match *value {
                // A URL parser resolves these as the current and the parent directory.
                "." => out.push_str("%2E"),
                ".." => out.push_str("%2E%2E"),
                _ => out.extend(utf8_percent_encode(value, SEGMENT)),
            }
        } else {
            out.push_str(segment);
        }
    }
    assert!(values.next().is_none(), "too many values for {template}");
    out
}

/// [`DEPLOYMENT`] of a workload.
pub fn deployment(workload: &str) -> String {
    fill(DEPLOYMENT, &[workload])
}

/// [`NODE`] of a node.
pub fn node(node: &str) -> String {
    fill(NODE, &[node])
}

/// [`ARTIFACT`] of a module (`sha256:…`) for a node.
pub fn artifact(node: &str, module: &lamina_types::ModuleHash) -> String {
    fill(ARTIFACT, &[node, &module.to_string()])
}

/// [`ATTEST`] of a node.
pub fn attest(node: &str) -> String {
    fill(ATTEST, &[node])
}

/// [`HEARTBEAT`] of a node.
pub fn heartbeat(node: &str) -> String {
    fill(HEARTBEAT, &[node])
}

/// [`RELEASE`] of a node.
pub fn release(node: &str) -> String {
    fill(RELEASE, &[node])
}

/// [`TOPIC_KEYS`] of a node.
pub fn topic_keys(node: &str) -> String {
    fill(TOPIC_KEYS, &[node])
}

/// [`DESIRED`] of a node: answered once its generation is not `after`, waiting at most `wait`.
pub fn desired(node: &str, query: &crate::DesiredQuery) -> String {
    let mut path = fill(DESIRED, &[node]);
    let mut sep = '?';
    if let Some(after) = query.after {
        path.push_str(&format!("{sep}after={after}"));
        sep = '&';
    }
    if let Some(wait) = query.wait_ms {
        path.push_str(&format!("{sep}wait_ms={wait}"));
    }
    path
}

/// [`SECRET`] of a secret.
pub fn secret(name: &lamina_types::SecretName) -> String {
    fill(SECRET, &[name.as_str()])
}

/// [`LOGS`] of a workload.
pub fn logs(workload: &str) -> String {
    fill(LOGS, &[workload])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_filled_in_order_and_escaped() {
        assert_eq!(node("edge-1"), "/v1/nodes/edge-1");
        assert_eq!(logs("a/b?c"), "/v1/workloads/a%2Fb%3Fc/logs");
        let module = lamina_types::ModuleHash::of(b"m");
        assert_eq!(artifact("n", &module), format!("/v1/nodes/n/artifacts/{module}"));
        assert_eq!(
            desired("n", &crate::DesiredQuery { after: Some(3), wait_ms: Some(500) }),
            "/v1/nodes/n/desired?after=3&wait_ms=500"
        );
        assert_eq!(desired("n", &crate::DesiredQuery::default()), "/v1/nodes/n/desired");
        assert_eq!(node(".."), "/v1/nodes/%2E%2E");
        assert_eq!(node("."), "/v1/nodes/%2E");
    }

    proptest::proptest! {
        /// Whatever a name holds, it stays one segment and comes back as it was.
        #[test]
        fn any_name_is_one_segment(name in "\\PC{0,40}") {
            let path = node(&name);
            let segment = path.strip_prefix("/v1/nodes/").expect("prefix");
            proptest::prop_assert!(!segment.contains('/') && !segment.contains('?') && !segment.contains('#'));
            proptest::prop_assert!(segment != "." && segment != "..");
            let back = percent_encoding::percent_decode_str(segment).decode_utf8().expect("utf-8");
            proptest::prop_assert_eq!(back, name);
        }
    }
}
