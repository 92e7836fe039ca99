use super::*;
use lamina_types::{ByteSize, PlatformKind, Target};

const APP: &str = r#"
[[workload]]
name = "filter"
module = "filter.wasm"
replicas = 2
memory = "32MiB"
[workload.constraints]
zones = ["edge"]

[[workload]]
name = "aggregate"
module = "aggregate.wasm"
memory = "64MiB"
sealed = ["/data"]
[workload.constraints]
zones = ["cloud"]
"#;

fn enroll(r: &mut Cluster, name: &str, zone: &str, target: Target, now: u64) {
    r.step(
        Event::Enrolled {
            spec: NodeSpec {
                name: name.into(),
                target,
                platform: PlatformKind::Sim,
                memory: ByteSize::mib(512),
                labels: BTreeMap::new(),
                zone: zone.into(),
            },
            profile: lamina_types::Profile::Server,
        },
        now,
    )
    .expect("enrols");
}

fn continuum() -> Cluster {
    let mut r =
        Cluster::new(Settings { lost_after: Duration::from_secs(15), attestation_valid_for: Duration::from_secs(600) });
    enroll(&mut r, "cloud-1", "cloud", Target::X86_64Linux, 1000);
    enroll(&mut r, "edge-1", "edge", Target::Aarch64Linux, 1000);
    enroll(&mut r, "edge-2", "edge", Target::Aarch64Linux, 1000);
    r.step(Event::Deployed(Deployment::parse(APP).expect("valid app")), 1000).expect("deploys");
    r
}

fn on(r: &Cluster, node: &str) -> Vec<String> {
    r.desired.get(node).map_or_else(Vec::new, |d| {
        d.assignments.iter().map(|a| format!("{}/{}", a.placement.workload, a.placement.replica)).collect()
    })
}

fn beat(r: &mut Cluster, nodes: &[&str], now: u64) {
    for n in nodes {
        r.step(Event::Heartbeat { node: (*n).into(), instances: Vec::new(), degraded: None, ingress: None }, now)
            .expect("heartbeat");
    }
}

#[test]
fn a_deployment_is_placed_by_zone() {
    let r = continuum();
    assert_eq!(on(&r, "cloud-1"), vec!["aggregate/0"]);
    assert_eq!(on(&r, "edge-1").len() + on(&r, "edge-2").len(), 2);
    assert_eq!(on(&r, "edge-1").len(), 1, "spread over both edge nodes");
    assert!(r.plan.unplaced.is_empty());
}

#[test]
fn a_silent_node_is_lost_and_its_instances_move() {
    let mut r = continuum();
    let before = on(&r, "edge-1");
    beat(&mut r, &["cloud-1", "edge-2"], 1010);
    let changed = r.step(Event::Tick, 1016).expect("tick");
    assert_eq!(r.nodes["edge-1"].state, NodeState::Lost);
    assert!(on(&r, "edge-1").is_empty());
    assert_eq!(on(&r, "edge-2").len(), 2, "both filters on the remaining edge node");
    assert!(changed.contains(&"edge-1".to_owned()) && changed.contains(&"edge-2".to_owned()));
    assert!(!changed.contains(&"cloud-1".to_owned()), "the cloud stage is untouched");
    // When it comes back, nothing moves back: healthy instances are not restarted.
    let generation = r.desired["edge-2"].generation;
    beat(&mut r, &["cloud-1", "edge-1", "edge-2"], 1020);
    assert_eq!(r.nodes["edge-1"].state, NodeState::Ready);
    assert_eq!(r.desired["edge-2"].generation, generation);
    assert!(!before.is_empty());
}

#[test]
fn a_restarted_control_plane_changes_nothing_healthy() {
    let mut r = continuum();
    beat(&mut r, &["cloud-1", "edge-1", "edge-2"], 1005);
    let stored = r.to_json().expect("serialises");
    let mut restarted = Cluster::from_json(&stored).expect("restores");
    assert_eq!(restarted, r);
    let generations: Vec<u64> = restarted.desired.values().map(|d| d.generation).collect();
    // The nodes reconnect and heartbeat; nothing is re-planned.
    beat(&mut restarted, &["cloud-1", "edge-1", "edge-2"], 1012);
    let changed = restarted.step(Event::Tick, 1013).expect("tick");
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(restarted.desired.values().map(|d| d.generation).collect::<Vec<_>>(), generations);
}

#[test]
fn a_node_that_fails_the_policy_is_drained() {
    let mut r = continuum();
    r.step(Event::Attested { node: "edge-2".into(), verdict: Err("policy.module_hash".into()) }, 1001)
        .expect("appraised");
    assert!(
        matches!(&r.nodes["edge-2"].state, NodeState::Untrusted { reason } if reason.contains("policy.module_hash"))
    );
    assert!(on(&r, "edge-2").is_empty(), "drained");
    assert_eq!(on(&r, "edge-1").len(), 2);
    // A passing verdict later makes it ready again.
    r.step(Event::Attested { node: "edge-2".into(), verdict: Ok(()) }, 1002).expect("appraised");
    assert_eq!(r.nodes["edge-2"].state, NodeState::Ready);
}

#[test]
fn an_expired_attestation_makes_a_node_untrusted() {
    let mut r = continuum();
    beat(&mut r, &["cloud-1", "edge-1", "edge-2"], 1590);
    r.step(Event::Tick, 1601).expect("tick");
    assert!(r.nodes.values().all(|n| matches!(n.state, NodeState::Untrusted { .. })));
    assert_eq!(r.plan.unplaced.len(), 2, "{:?}", r.plan.unplaced);
    assert!(r.plan.unplaced.iter().all(|u| u.reason.starts_with("no node is ready")), "{:?}", r.plan.unplaced);
}

#[test]
fn unknown_nodes_and_workloads_are_refused_without_change() {
    let mut r = continuum();
    let before = r.clone();
    assert_eq!(
        r.step(Event::Heartbeat { node: "ghost".into(), instances: Vec::new(), degraded: None, ingress: None }, 1001),
        Err(StepError::UnknownNode("ghost".into()))
    );
    assert_eq!(r.step(Event::Undeployed("nope".into()), 1001), Err(StepError::UnknownWorkload("nope".into())));
    assert_eq!(r, before);
}

#[test]
fn undeploying_stops_the_instances() {
    let mut r = continuum();
    r.step(Event::Undeployed("filter".into()), 1001).expect("undeploys");
    assert!(on(&r, "edge-1").is_empty() && on(&r, "edge-2").is_empty());
    assert_eq!(on(&r, "cloud-1"), vec!["aggregate/0"]);
}

#[test]
fn a_node_that_cannot_start_instances_gets_none_and_its_instances_move() {
    let mut r = continuum();
    assert!(!on(&r, "edge-1").is_empty());
    let reason = "cannot start filter/0: Too many open files (os error 24)";
    r.step(
        Event::Heartbeat { node: "edge-1".into(), instances: Vec::new(), degraded: Some(reason.into()), ingress: None },
        1010,
    )
    .expect("heartbeat");
    assert_eq!(r.nodes["edge-1"].state, NodeState::Degraded { reason: reason.into() });
    assert!(on(&r, "edge-1").is_empty(), "nothing stays on a node that cannot start it");
    assert_eq!(on(&r, "edge-2").len(), 2, "both filters on the other edge node");
    // Once its heartbeats no longer say so, it is ready for new placements again.
    beat(&mut r, &["edge-1"], 1012);
    assert_eq!(r.nodes["edge-1"].state, NodeState::Ready);
}

#[test]
fn an_http_workload_goes_to_nodes_with_an_ingress_and_its_endpoint_moves_with_its_replica() {
    let mut r =
        Cluster::new(Settings { lost_after: Duration::from_secs(15), attestation_valid_for: Duration::from_secs(600) });
    for name in ["edge-1", "edge-2", "edge-3"] {
        enroll(&mut r, name, "edge", Target::Aarch64Linux, 1000);
    }
    let ingress = |r: &mut Cluster, node: &str, url: Option<&str>, now: u64| {
        r.step(
            Event::Heartbeat { node: node.into(), instances: Vec::new(), degraded: None, ingress: url.map(Into::into) },
            now,
        )
        .expect("heartbeat");
    };
    ingress(&mut r, "edge-1", Some("https://10.0.0.1:8443"), 1000);
    ingress(&mut r, "edge-2", Some("https://10.0.0.2:8443"), 1000);
    let app = "[[workload]]\nname = \"web\"\nmodule = \"web.wasm\"\n[workload.http]\nroutes = [\"/readings\"]\n";
    r.step(Event::Deployed(Deployment::parse(app).expect("valid app")), 1000).expect("deploys");
    assert!(on(&r, "edge-3").is_empty(), "a node without an ingress gets no HTTP workload");
    let endpoints = r.endpoints();
    assert_eq!(endpoints.len(), 1);
    let first = endpoints[0].node.clone();
    let other = if first == "edge-1" { "edge-2" } else { "edge-1" };
    assert_eq!(endpoints[0].url, format!("https://10.0.0.{}:8443", &first[5..]));
    assert_eq!(endpoints[0].service.routes[0].as_str(), "/readings");
    assert!(!endpoints[0].running, "nothing reported yet");
    // Its node is lost: the replica, and its endpoint, move to the other node with an ingress.
    ingress(&mut r, other, Some(&format!("https://10.0.0.{}:8443", &other[5..])), 1010);
    ingress(&mut r, "edge-3", None, 1010);
    r.step(Event::Tick, 1016).expect("tick");
    let endpoints = r.endpoints();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].node, other);
    // A node that starts an ingress later is told about at its next heartbeat.
    ingress(&mut r, other, None, 1017);
    assert!(r.endpoints().is_empty());
    assert_eq!(r.plan.unplaced.len(), 1, "{:?}", r.plan);
    ingress(&mut r, "edge-3", Some("https://10.0.0.3:8443"), 1018);
    assert_eq!(r.endpoints().first().map(|e| e.node.as_str()), Some("edge-3"));
}
