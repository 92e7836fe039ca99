use super::*;
use proptest::prelude::*;

fn node(name: &str, zone: &str, platform: PlatformKind, target: Target, mib: u64) -> Node {
    Node {
        spec: NodeSpec {
            name: name.into(),
            target,
            platform,
            memory: ByteSize::mib(mib),
            labels: BTreeMap::new(),
            zone: zone.into(),
        },
        ready: true,
        ingress: false,
    }
}

/// A workload name the tests know is one.
fn wname(name: &str) -> WorkloadName {
    name.parse().expect("a workload name")
}

fn workload(name: &str, replicas: u32, mib: u64, constraints: Constraints) -> Workload {
    Workload { name: wname(name), replicas, memory: ByteSize::mib(mib), constraints, serves_http: false }
}

fn continuum() -> Vec<Node> {
    vec![
        node("cloud-1", "cloud", PlatformKind::Snp, Target::X86_64Linux, 4096),
        node("cloud-2", "cloud", PlatformKind::Tdx, Target::X86_64Linux, 4096),
        node("edge-1", "edge", PlatformKind::Tpm, Target::Aarch64Linux, 512),
        node("edge-2", "edge", PlatformKind::Sim, Target::Aarch64Linux, 512),
    ]
}

#[test]
fn replicas_spread_across_zones_then_nodes() {
    let w = workload("api", 4, 64, Constraints::default());
    let plan = schedule(&[w], &continuum(), &[]);
    assert!(plan.unplaced.is_empty());
    let nodes: BTreeSet<&str> = plan.placements.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes.len(), 4, "one replica per node: {plan:?}");
}

#[test]
fn constraints_select_nodes() {
    let c = Constraints {
        architectures: vec![Target::Aarch64Linux],
        platforms: vec![PlatformKind::Tpm],
        ..Constraints::default()
    };
    let plan = schedule(&[workload("filter", 2, 64, c)], &continuum(), &[]);
    assert!(plan.placements.iter().all(|p| p.node == "edge-1"), "{plan:?}");
    assert_eq!(plan.placements.len(), 2, "both replicas fit on the one tpm node");
}

#[test]
fn an_unsatisfiable_workload_gets_a_reason() {
    let cases = [
        (
            Constraints { zones: vec!["edge".into()], platforms: vec![PlatformKind::Snp], ..Constraints::default() },
            "no node in zone edge offers platform snp",
        ),
        (Constraints { zones: vec!["moon".into()], ..Constraints::default() }, "no ready node is in zone moon"),
        (
            Constraints {
                zones: vec!["cloud".into()],
                architectures: vec![Target::Riscv64Linux],
                ..Constraints::default()
            },
            "no node in zone cloud is of architecture riscv64",
        ),
        (
            Constraints { labels: BTreeMap::from([("gpu".into(), "yes".into())]), ..Constraints::default() },
            "no node has labels gpu=yes",
        ),
        (
            Constraints { zones: vec!["edge".into()], min_memory: Some(ByteSize::gib(1)), ..Constraints::default() },
            "no node in zone edge offers at least 1 GiB",
        ),
    ];
    for (c, reason) in cases {
        let plan = schedule(&[workload("w", 1, 64, c)], &continuum(), &[]);
        assert_eq!(plan.unplaced.len(), 1);
        assert_eq!(plan.unplaced[0].reason, reason);
        assert_eq!(plan.unplaced[0].missing, 1);
    }
}

#[test]
fn memory_is_a_reason_too() {
    let c = Constraints { zones: vec!["edge".into()], ..Constraints::default() };
    let plan = schedule(&[workload("big", 3, 400, c)], &continuum(), &[]);
    assert_eq!(plan.placements.len(), 2, "one per edge node");
    assert_eq!(plan.unplaced[0].missing, 1);
    assert!(
        plan.unplaced[0].reason.starts_with("no node in zone edge has 400 MiB free"),
        "{}",
        plan.unplaced[0].reason
    );
    let plan = schedule(&[workload("w", 1, 64, Constraints::default())], &[], &[]);
    assert_eq!(plan.unplaced[0].reason, "no node has joined");
}

#[test]
fn healthy_placements_stay_and_lost_nodes_lose_theirs() {
    let nodes = continuum();
    let w = [workload("api", 2, 64, Constraints::default())];
    let first = schedule(&w, &nodes, &[]);
    let again = schedule(&w, &nodes, &first.placements);
    assert_eq!(again, first, "nothing moves when nothing changed");
    let mut lost = nodes.clone();
    let victim = first.placements[0].node.clone();
    for n in &mut lost {
        if n.spec.name == victim {
            n.ready = false;
        }
    }
    let moved = schedule(&w, &lost, &first.placements);
    assert!(moved.placements.iter().all(|p| p.node != victim), "{moved:?}");
    assert_eq!(moved.stopped(&first.placements).len(), 1);
    assert_eq!(moved.started(&first.placements).len(), 1);
    assert!(moved.placements.contains(&first.placements[1]), "the healthy replica stays");
}

#[test]
fn fewer_replicas_stop_the_highest() {
    let nodes = continuum();
    let three = schedule(&[workload("api", 3, 64, Constraints::default())], &nodes, &[]);
    let one = schedule(&[workload("api", 1, 64, Constraints::default())], &nodes, &three.placements);
    assert_eq!(one.placements.len(), 1);
    assert_eq!(one.placements[0].replica, 0);
    assert!(three.placements.contains(&one.placements[0]));
}

fn arb_node() -> impl Strategy<Value = Node> {
    (0usize..3, 0usize..6, 0usize..3, 0u64..2048, proptest::option::of(0u8..2), any::<bool>(), any::<bool>()).prop_map(
        |(t, p, z, mib, label, ready, ingress)| Node {
            spec: NodeSpec {
                name: String::new(),
                target: Target::ALL[t],
                platform: PlatformKind::ALL[p],
                memory: ByteSize::mib(mib),
                labels: label.map(|l| BTreeMap::from([("tier".to_owned(), l.to_string())])).unwrap_or_default(),
                zone: format!("z{z}"),
            },
            ready,
            ingress,
        },
    )
}

fn arb_workload() -> impl Strategy<Value = Workload> {
    (
        0u32..6,
        1u64..512,
        proptest::collection::vec(0usize..3, 0..2),
        proptest::collection::vec(0usize..6, 0..3),
        proptest::collection::vec(0usize..3, 0..2),
        proptest::option::of(0u8..2),
        any::<bool>(),
    )
        .prop_map(|(replicas, mib, t, p, z, label, serves_http)| Workload {
            name: wname("w"),
            replicas,
            memory: ByteSize::mib(mib),
            constraints: Constraints {
                architectures: t.into_iter().map(|i| Target::ALL[i]).collect(),
                platforms: p.into_iter().map(|i| PlatformKind::ALL[i]).collect(),
                zones: z.into_iter().map(|i| format!("z{i}")).collect(),
                labels: label.map(|l| BTreeMap::from([("tier".to_owned(), l.to_string())])).unwrap_or_default(),
                min_memory: None,
            },
            serves_http,
        })
}

#[test]
fn an_http_workload_goes_only_to_nodes_with_an_ingress_and_says_so_when_none_has_one() {
    let mut nodes = vec![
        node("plain", "edge", PlatformKind::Sim, Target::X86_64Linux, 1024),
        node("serving", "edge", PlatformKind::Sim, Target::X86_64Linux, 1024),
    ];
    nodes[1].ingress = true;
    let web = Workload { serves_http: true, ..workload("web", 2, 64, Constraints::default()) };
    let plan = schedule(std::slice::from_ref(&web), &nodes, &[]);
    assert!(plan.placements.iter().all(|p| p.node == "serving"), "{plan:?}");
    assert_eq!(plan.placements.len(), 2);
    // A command workload goes anywhere.
    let plan = schedule(&[workload("job", 2, 64, Constraints::default())], &nodes, &[]);
    assert!(plan.placements.iter().any(|p| p.node == "plain"), "{plan:?}");
    nodes[1].ingress = false;
    let plan = schedule(&[web], &nodes, &[]);
    assert_eq!(plan.unplaced.len(), 1);
    assert_eq!(plan.unplaced[0].reason, "no node serves HTTP (start nodes with --ingress ADDR)");
}

fn named<T>(items: Vec<T>, prefix: &str, set: impl Fn(&mut T, String)) -> Vec<T> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            set(&mut item, format!("{prefix}{i}"));
            item
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_respect_constraints_capacity_and_counts(
        nodes in proptest::collection::vec(arb_node(), 0..8),
        workloads in proptest::collection::vec(arb_workload(), 0..5),
    ) {
        let nodes = named(nodes, "n", |n, s| n.spec.name = s);
        let workloads = named(workloads, "w", |w, s| w.name = wname(&s));
        let plan = schedule(&workloads, &nodes, &[]);
        let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.spec.name.as_str(), n)).collect();
        let mut used: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &plan.placements {
            let w = workloads.iter().find(|w| w.name == p.workload).expect("a known workload");
            let n = by_name[p.node.as_str()];
            prop_assert!(eligible(n, w), "{p:?} breaks the constraints");
            *used.entry(n.spec.name.as_str()).or_default() += w.memory.bytes();
        }
        for (name, bytes) in used {
            prop_assert!(bytes <= by_name[name].spec.memory.bytes(), "{name} is over its memory");
        }
        for w in &workloads {
            let placed = plan.placements.iter().filter(|p| p.workload == w.name).count() as u32;
            let missing = plan.unplaced.iter().find(|u| u.workload == w.name).map_or(0, |u| u.missing);
            prop_assert_eq!(placed + missing, w.replicas);
            if let Some(u) = plan.unplaced.iter().find(|u| u.workload == w.name) {
                prop_assert!(u.reason.starts_with("no "), "{}", u.reason);
            }
        }
        // Stable: scheduling again from the plan changes nothing.
        prop_assert_eq!(schedule(&workloads, &nodes, &plan.placements), plan);
    }

    #[test]
    fn with_room_to_spare_replicas_never_share_a_node_needlessly(
        nodes in proptest::collection::vec(arb_node(), 1..8),
        replicas in 1u32..8,
    ) {
        let nodes: Vec<Node> = named(nodes, "n", |n, s| n.spec.name = s)
            .into_iter()
            .map(|n| Node { spec: NodeSpec { memory: ByteSize::gib(64), ..n.spec }, ready: true, ingress: false })
            .collect();
        let plan = schedule(&[workload("w", replicas, 1, Constraints::default())], &nodes, &[]);
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for p in &plan.placements {
            *per_node.entry(p.node.as_str()).or_default() += 1;
        }
        let max = per_node.values().copied().max().unwrap_or(0);
        let min = nodes.iter().map(|n| per_node.get(n.spec.name.as_str()).copied().unwrap_or(0)).min().unwrap_or(0);
        let zones: BTreeSet<&str> = nodes.iter().map(|n| n.spec.zone.as_str()).collect();
        let used_zones: BTreeSet<&str> =
            plan.placements.iter().map(|p| nodes.iter().find(|n| n.spec.name == p.node).map_or("", |n| n.spec.zone.as_str())).collect();
        prop_assert_eq!(used_zones.len(), zones.len().min(replicas as usize), "every zone used before doubling up");
        prop_assert!(max - min <= 1 || zones.len() > 1, "spread within one zone: {per_node:?}");
    }
}

/// The planner as first written, scoring every node for every replica through maps keyed by
/// name: the indexed one must plan exactly as it does.
fn reference(workloads: &[Workload], nodes: &[Node], current: &[Placement]) -> Plan {
    let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.spec.name.as_str(), n)).collect();
    let mut free: BTreeMap<&str, u64> = nodes.iter().map(|n| (n.spec.name.as_str(), n.spec.memory.bytes())).collect();
    let mut sorted: Vec<&Workload> = workloads.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut plan = Plan::default();
    // First keep what is healthy, for every workload, so that capacity is taken by what already
    // runs before anything new is placed.
    let mut kept: BTreeMap<&str, Vec<Placement>> = BTreeMap::new();
    for w in &sorted {
        let mut replicas = BTreeSet::new();
        let mut mine: Vec<&Placement> = current.iter().filter(|p| p.workload == w.name).collect();
        mine.sort();
        for p in mine {
            if p.replica >= w.replicas || !replicas.insert(p.replica) {
                continue;
            }
            let Some(node) = by_name.get(p.node.as_str()) else { continue };
            let room = free.get(node.spec.name.as_str()).copied().unwrap_or(0);
            if !eligible(node, w) || room < w.memory.bytes() {
                replicas.remove(&p.replica);
                continue;
            }
            free.insert(node.spec.name.as_str(), room - w.memory.bytes());
            kept.entry(w.name.as_str()).or_default().push(p.clone());
        }
    }
    let mut short: Vec<(&Workload, u32)> = Vec::new();
    for w in &sorted {
        let mut placed: Vec<Placement> = kept.remove(w.name.as_str()).unwrap_or_default();
        let taken: BTreeSet<u32> = placed.iter().map(|p| p.replica).collect();
        let mut missing = 0;
        for replica in (0..w.replicas).filter(|r| !taken.contains(r)) {
            let per_zone = reference_count(&placed, &by_name, |n| n.spec.zone.as_str());
            let per_node = reference_count(&placed, &by_name, |n| n.spec.name.as_str());
            let choice = nodes
                .iter()
                .filter(|n| eligible(n, w))
                .filter(|n| free.get(n.spec.name.as_str()).copied().unwrap_or(0) >= w.memory.bytes())
                .min_by_key(|n| {
                    (
                        per_zone.get(n.spec.zone.as_str()).copied().unwrap_or(0),
                        per_node.get(n.spec.name.as_str()).copied().unwrap_or(0),
                        std::cmp::Reverse(free.get(n.spec.name.as_str()).copied().unwrap_or(0)),
                        n.spec.name.as_str(),
                    )
                });
            match choice {
                Some(node) => {
                    if let Some(room) = free.get_mut(node.spec.name.as_str()) {
                        *room -= w.memory.bytes();
                    }
                    placed.push(Placement { workload: w.name.clone(), replica, node: node.spec.name.clone() });
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            short.push((*w, missing));
        }
        plan.placements.extend(placed);
    }
    // Reasons are told against the final free memory, so that the same inputs always give the
    // same words.
    for (w, missing) in short {
        plan.unplaced.push(Unplaced { workload: w.name.clone(), missing, reason: explain(w, nodes, &free) });
    }
    plan.placements.sort();
    plan
}

fn reference_count<'a>(
    placed: &[Placement],
    nodes: &BTreeMap<&str, &'a Node>,
    key: impl Fn(&'a Node) -> &'a str,
) -> BTreeMap<&'a str, u32> {
    let mut out = BTreeMap::new();
    for p in placed {
        if let Some(node) = nodes.get(p.node.as_str()) {
            *out.entry(key(node)).or_insert(0) += 1;
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_indexed_planner_plans_as_the_reference_does(
        nodes in proptest::collection::vec(arb_node(), 0..8),
        workloads in proptest::collection::vec(arb_workload(), 0..5),
        fewer in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let nodes = named(nodes, "n", |n, s| n.spec.name = s);
        let workloads = named(workloads, "w", |w, s| w.name = wname(&s));
        let plan = schedule(&workloads, &nodes, &[]);
        prop_assert_eq!(&plan, &reference(&workloads, &nodes, &[]));
        // From a current plan, with some nodes gone or no longer ready.
        let changed: Vec<Node> = nodes
            .iter()
            .zip(fewer.iter().cycle())
            .filter(|(_, gone)| !**gone || nodes.len() < 2)
            .map(|(n, gone)| Node { ready: n.ready && !*gone, ..n.clone() })
            .collect();
        prop_assert_eq!(schedule(&workloads, &changed, &plan.placements), reference(&workloads, &changed, &plan.placements));
    }
}
