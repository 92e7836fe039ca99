//! The agent's decisions, as one pure function: from the desired state, what the node runs and
//! the clock, to the actions that bring the one to the other. No threads, files or network:
//! the agent (`agent.rs`) observes its instances, calls [`step`] and carries the actions out,
//! so every decision is a unit test here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lamina_types::WorkloadSpec;
use lamina_wire::{Assignment, InstanceState};

/// An instance: its workload and replica.
pub(crate) type InstanceKey = (lamina_types::WorkloadName, u32);

/// Where an instance stands, as the agent last observed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its guest runs.
    Running,
    /// Its guest has ended (it exited or trapped), and the agent has not acted on it yet.
    Ended,
    /// It ended or could not start; it is started again at `retry_at`.
    BackingOff {
        /// When.
        retry_at: Instant,
    },
}

impl Phase {
    /// How a heartbeat reports it.
    pub(crate) fn reported(self) -> InstanceState {
        match self {
            // An end not yet acted on is reported at the next heartbeat, after the step.
            Phase::Running | Phase::Ended => InstanceState::Running,
            Phase::BackingOff { .. } => InstanceState::Failed,
        }
    }
}

/// What the step knows of one instance the node has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The specification it was started with.
    pub(crate) spec: WorkloadSpec,
    /// Where it stands.
    pub(crate) phase: Phase,
    /// How often it has been restarted after ending.
    pub(crate) restarts: u32,
}

/// What the agent is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Stop the instance. `forget` when it is no longer this node's at all (its cached secrets
    /// go too), not when it is only to be started again with another specification.
    Stop {
        /// The instance.
        key: InstanceKey,
        /// Whether it left this node.
        forget: bool,
    },
    /// Its guest ended: count the restart and wait until `retry_at` before starting it again.
    BackOff {
        /// The instance.
        key: InstanceKey,
        /// Its restarts, this one included.
        restarts: u32,
        /// When to start it again.
        retry_at: Instant,
    },
    /// Start the instance (new here, with a new specification, or at the end of its back-off).
    Start {
        /// What to run.
        assignment: Box<Assignment>,
        /// Its restarts so far (0 for an instance new here).
        restarts: u32,
    },
}

/// The longest wait before a restart.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long an instance that could not start waits before the next try.
pub(crate) const START_RETRY: Duration = Duration::from_secs(5);

/// The wait before the `restarts`th restart: 2, 4, 8, 16, then 30 seconds.
pub(crate) fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(5)).min(MAX_BACKOFF)
}

/// The actions that bring what the node runs (`seen`) to what it is assigned (`desired`), at
/// `now`: stops first, then back-offs, then starts, each in instance order.
pub(crate) fn step(desired: &[Assignment], seen: &BTreeMap<InstanceKey, Seen>, now: Instant) -> Vec<Action> {
    let wanted: BTreeMap<InstanceKey, &Assignment> =
        desired.iter().map(|a| ((a.placement.workload.clone(), a.placement.replica), a)).collect();
    let mut stops = Vec::new();
    let mut backoffs = Vec::new();
    let mut starts = Vec::new();
    for (key, instance) in seen {
        match wanted.get(key) {
            None => stops.push(Action::Stop { key: key.clone(), forget: true }),
            Some(a) if a.spec != instance.spec => {
                stops.push(Action::Stop { key: key.clone(), forget: false });
                starts.push(Action::Start { assignment: Box::new((*a).clone()), restarts: 0 });
            }
            Some(a) => match instance.phase {
                Phase::Running => {}
                Phase::Ended => {
                    let restarts = instance.restarts.saturating_add(1);
                    backoffs.push(Action::BackOff { key: key.clone(), restarts, retry_at: now + backoff(restarts) });
                }
                Phase::BackingOff { retry_at } if now >= retry_at => {
                    starts.push(Action::Start { assignment: Box::new((*a).clone()), restarts: instance.restarts });
                }
                Phase::BackingOff { .. } => {}
            },
        }
    }
    for (key, a) in &wanted {
        if !seen.contains_key(key) {
            starts.push(Action::Start { assignment: Box::new((*a).clone()), restarts: 0 });
        }
    }
    starts.sort_by(|a, b| start_key(a).cmp(&start_key(b)));
    stops.into_iter().chain(backoffs).chain(starts).collect()
}

/// The instance a start is of, for ordering.
fn start_key(action: &Action) -> Option<(&str, u32)> {
    match action {
        Action::Start { assignment, .. } => Some((&assignment.placement.workload, assignment.placement.replica)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_scheduler::Placement;
    use proptest::prelude::*;

    fn spec(name: &str, memory_mib: u64) -> WorkloadSpec {
        let toml = format!(
            "[[workload]]\nname = \"{name}\"\nmodule = \"sha256:{}\"\nmemory = \"{memory_mib}MiB\"\n",
            "ab".repeat(32)
        );
        lamina_types::Deployment::parse(&toml).expect("a manifest").workloads.remove(0)
    }

    /// A workload name the tests know is one.
    fn wname(name: &str) -> lamina_types::WorkloadName {
        name.parse().expect("a workload name")
    }

    fn assignment(workload: &str, replica: u32, memory_mib: u64) -> Assignment {
        Assignment {
            placement: Placement { workload: wname(workload), replica, node: "edge-1".into() },
            spec: spec(workload, memory_mib),
        }
    }

    fn seen(a: &Assignment, phase: Phase, restarts: u32) -> (InstanceKey, Seen) {
        ((a.placement.workload.clone(), a.placement.replica), Seen { spec: a.spec.clone(), phase, restarts })
    }

    #[test]
    fn what_is_assigned_and_not_running_is_started() {
        let now = Instant::now();
        let (a, b) = (assignment("a", 0, 64), assignment("b", 1, 64));
        let actions = step(&[b.clone(), a.clone()], &BTreeMap::new(), now);
        assert_eq!(
            actions,
            vec![
                Action::Start { assignment: Box::new(a), restarts: 0 },
                Action::Start { assignment: Box::new(b), restarts: 0 }
            ]
        );
    }

    #[test]
    fn what_runs_as_assigned_is_left_alone() {
        let a = assignment("a", 0, 64);
        let seen = BTreeMap::from([seen(&a, Phase::Running, 3)]);
        assert_eq!(step(&[a], &seen, Instant::now()), vec![]);
    }

    #[test]
    fn what_is_no_longer_assigned_is_stopped_and_forgotten() {
        let a = assignment("a", 0, 64);
        let seen = BTreeMap::from([seen(&a, Phase::Running, 0)]);
        assert_eq!(step(&[], &seen, Instant::now()), vec![Action::Stop { key: (wname("a"), 0), forget: true }]);
    }

    #[test]
    fn a_new_specification_stops_the_instance_and_starts_it_afresh() {
        let (old, new) = (assignment("a", 0, 64), assignment("a", 0, 128));
        let seen = BTreeMap::from([seen(&old, Phase::BackingOff { retry_at: Instant::now() }, 4)]);
        assert_eq!(
            step(std::slice::from_ref(&new), &seen, Instant::now()),
            vec![
                Action::Stop { key: (wname("a"), 0), forget: false },
                Action::Start { assignment: Box::new(new), restarts: 0 }
            ]
        );
    }

    #[test]
    fn an_instance_that_ended_backs_off_longer_each_time_up_to_the_most() {
        let now = Instant::now();
        let a = assignment("a", 0, 64);
        let delays: Vec<Duration> = (0..8)
            .map(|restarts| {
                let seen = BTreeMap::from([seen(&a, Phase::Ended, restarts)]);
                match step(std::slice::from_ref(&a), &seen, now).as_slice() {
                    [Action::BackOff { restarts: counted, retry_at, .. }] => {
                        assert_eq!(*counted, restarts + 1);
                        *retry_at - now
                    }
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn a_backing_off_instance_starts_when_its_time_comes_with_its_restarts_kept() {
        let now = Instant::now();
        let a = assignment("a", 0, 64);
        let later = BTreeMap::from([seen(&a, Phase::BackingOff { retry_at: now + Duration::from_secs(1) }, 2)]);
        assert_eq!(step(std::slice::from_ref(&a), &later, now), vec![]);
        let due = BTreeMap::from([seen(&a, Phase::BackingOff { retry_at: now }, 2)]);
        assert_eq!(
            step(std::slice::from_ref(&a), &due, now),
            vec![Action::Start { assignment: Box::new(a), restarts: 2 }]
        );
    }

    #[test]
    fn a_heartbeat_reports_an_instance_backing_off_as_failed() {
        assert_eq!(Phase::Running.reported(), InstanceState::Running);
        assert_eq!(Phase::Ended.reported(), InstanceState::Running);
        assert_eq!(Phase::BackingOff { retry_at: Instant::now() }.reported(), InstanceState::Failed);
    }

    /// The agent carrying out a step's actions, with every start succeeding.
    fn apply(seen: &mut BTreeMap<InstanceKey, Seen>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Stop { key, .. } => {
                    seen.remove(&key);
                }
                Action::BackOff { key, restarts, retry_at } => {
                    let instance = seen.get_mut(&key).expect("backs off what it has");
                    instance.phase = Phase::BackingOff { retry_at };
                    instance.restarts = restarts;
                }
                Action::Start { assignment, restarts } => {
                    let key = (assignment.placement.workload.clone(), assignment.placement.replica);
                    let instance = Seen { spec: assignment.spec.clone(), phase: Phase::Running, restarts };
                    // Only what does not run is started: a guest is never started twice.
                    let before = seen.insert(key, instance).map(|i| i.phase);
                    assert!(matches!(before, None | Some(Phase::BackingOff { .. })), "a start over {before:?}");
                }
            }
        }
    }

    fn phase() -> impl Strategy<Value = Phase> {
        let now = Instant::now();
        prop_oneof![
            Just(Phase::Running),
            Just(Phase::Ended),
            (0u64..3).prop_map(move |s| Phase::BackingOff { retry_at: now + Duration::from_secs(s) }),
        ]
    }

    proptest! {
        /// Whatever the node runs and whatever it is assigned, one step's actions leave it
        /// running exactly its assignments (or backing off them) with their specifications, and
        /// a second step at the same time starts and stops nothing.
        #[test]
        fn one_step_converges(
            desired in proptest::collection::btree_map(("[ab]", 0u32..3), 1u64..3, 0..5),
            have in proptest::collection::btree_map(("[abc]", 0u32..3), (1u64..3, phase(), 0u32..7), 0..6),
        ) {
            let now = Instant::now();
            let desired: Vec<Assignment> =
                desired.iter().map(|((w, r), m)| assignment(w, *r, 64 * m)).collect();
            let mut seen: BTreeMap<InstanceKey, Seen> = have
                .iter()
                .map(|((w, r), (m, phase, restarts))| {
                    let a = assignment(w, *r, 64 * m);
                    ((wname(w), *r), Seen { spec: a.spec, phase: *phase, restarts: *restarts })
                })
                .collect();
            let actions = step(&desired, &seen, now);
            apply(&mut seen, actions);
            let keys: Vec<InstanceKey> = seen.keys().cloned().collect();
            let wanted: Vec<InstanceKey> =
                desired.iter().map(|a| (a.placement.workload.clone(), a.placement.replica)).collect();
            prop_assert_eq!(keys, wanted);
            for a in &desired {
                prop_assert_eq!(&seen[&(a.placement.workload.clone(), a.placement.replica)].spec, &a.spec);
            }
            let again = step(&desired, &seen, now);
            prop_assert!(
                again.iter().all(|a| !matches!(a, Action::Stop { .. } | Action::Start { .. })),
                "{:?}", again
            );
        }
    }
}
