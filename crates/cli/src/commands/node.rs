//! `lamina node`: the node agent, which enrols with a join token and runs what the control
//! plane assigns it.

use anyhow::Context as _;

use crate::cli::NodeArgs;

/// How long `lamina node` takes at most to exit after SIGTERM or Ctrl-C.
const NODE_STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn node(args: NodeArgs) -> anyhow::Result<i32> {
    let platform_state = crate::commands::platform::state_dir(&args.platform)?;
    let state = platform_state.join("node");
    let name = match &args.name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .context("no --name, and the host name cannot be read")?,
    };
    let options = lamina_node::NodeOptions {
        state: state.clone(),
        name,
        target: lamina_types::Target::host().context("this machine's architecture is not supported")?,
        memory: args.memory,
        labels: args.labels.iter().cloned().collect(),
        zone: args.zone.clone(),
        heartbeat: args.heartbeat,
        reattest: args.reattest,
        control_verifier: match &args.control_policy {
            Some(path) => {
                let mut anchors = lamina_attest::TrustAnchors::default();
                let policy = lamina_attest::Policy::load(path, &mut anchors)
                    .context("cannot use the control plane's policy (--control-policy)")?;
                Some(std::sync::Arc::new(lamina_attest::Verifier::new(Some(policy), anchors)))
            }
            None => None,
        },
        nats: args.nats.clone(),
        metrics: args.metrics,
        ingress: args.ingress,
        ingress_url: args.ingress_url.clone(),
        profile: args.profile,
        logs: lamina_node::LogLimits {
            max_file: args.log_max_file.bytes().max(1),
            rate: args.log_rate.bytes().max(1),
            burst: args.log_rate.bytes().saturating_mul(4).max(1),
        },
        sealed_absent: if args.danger_sealed_start_over {
            lamina_seal::Absent::StartOver
        } else {
            lamina_seal::Absent::Refuse
        },
    };
    let platform = crate::commands::platform::open_platform(&args.platform, None, false)?;
    let identity = match lamina_node::Identity::load(&state)? {
        Some(identity) => {
            if args.join.is_some() {
                eprintln!(
                    "lamina: already enrolled as `{}` with {}; --join is ignored",
                    identity.name, identity.control
                );
            }
            identity
        }
        None => {
            let token = args
                .join
                .as_deref()
                .context("this node has not enrolled: pass --join TOKEN (from `lamina token create`)")?;
            let token: lamina_types::JoinToken = token.parse()?;
            let identity = lamina_node::enrol(&token, &options, platform.as_ref())
                .with_context(|| format!("cannot enrol with the control plane at {}", token.control))?;
            eprintln!("lamina: enrolled as `{}` with {}", identity.name, identity.control);
            identity
        }
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    let mut term = {
        let _guard = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot watch for SIGTERM")?
    };
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        // The agent ends its loop within a heartbeat interval and its instances within
        // lamina_node::STOP_WAIT; whatever holds it longer (a request to an unresponsive
        // control plane) does not hold the process.
        std::thread::sleep(NODE_STOP_BOUND);
        eprintln!("lamina: the node agent did not stop within {NODE_STOP_BOUND:?} of the signal; exiting");
        std::process::exit(crate::exit::SIGNALLED);
    });
    let mut agent = lamina_node::Agent::new(identity, options, platform)?;
    agent.run(&stop).context("the node agent stopped")?;
    eprintln!("lamina: node agent stopped");
    Ok(0)
}
