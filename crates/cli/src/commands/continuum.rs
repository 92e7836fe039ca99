//! The continuum's commands: `lamina control` runs the control plane; `lamina token create`,
//! `deploy`, `undeploy` and `status` talk to it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
#[cfg(feature = "control")]
use lamina_control::{ServeOptions, Settings, Store};
use lamina_types::Deployment;
use lamina_wire::ControlClient;

#[cfg(feature = "control")]
use crate::cli::ControlArgs;
use crate::cli::{
    ControlClientArgs, DeployArgs, Format, LogsArgs, NodeArgs, RemoveNodeArgs, SecretCommand, StatusArgs, TokenCommand,
    UndeployArgs,
};

fn default_state(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => dirs::state_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
            .map(|d| d.join("lamina/control"))
            .context("no state directory: pass --state DIR"),
    }
}

#[cfg(feature = "control")]
pub(crate) fn control(args: ControlArgs) -> anyhow::Result<i32> {
    let state = default_state(&args.state)?;
    let mut anchors = lamina_attest::TrustAnchors::default();
    let policy = match (&args.policy, args.danger_dev_allow_any_sim_node) {
        (Some(path), _) => lamina_attest::Policy::load(path, &mut anchors).context("cannot use the policy")?,
        (None, true) => {
            eprintln!(
                "lamina: DANGER: --danger-dev-allow-any-sim-node: no policy; admitting any node on the sim platform \
                 (NO hardware protection: any module, any measurement, any sim key). For development only."
            );
            lamina_attest::Policy::parse("allow_sim = true\n", std::path::Path::new("."), &mut anchors)
                .context("the development policy")?
        }
        (None, false) => {
            eprintln!(
                "lamina: error: no --policy: the control plane admits only nodes whose evidence passes a policy; \
                 give one (see `lamina verify --policy`), or for development --danger-dev-allow-any-sim-node"
            );
            return Ok(crate::exit::USAGE);
        }
    };
    let verifier = lamina_attest::Verifier::new(Some(policy), anchors);
    let nats_authorization = match (&args.nats, &args.nats_users, args.danger_nats_unauthenticated) {
        (Some(_), Some(users_file), _) => Some(lamina_control::nats::NatsAuthorization {
            users_file: users_file.clone(),
            pid_file: args.nats_pid_file.clone(),
        }),
        (Some(_), None, true) => {
            eprintln!(
                "lamina: DANGER: --danger-nats-unauthenticated: nodes connect to NATS without credentials; anyone \
                 who reaches the server can read every subject and publish on any"
            );
            None
        }
        (Some(_), None, false) => {
            eprintln!(
                "lamina: error: --nats needs --nats-users FILE (the users file nats-server includes; with \
                 --nats-pid-file the server reloads it), so that only enrolled nodes use the server and each only \
                 its instances' subjects; or, for development, --danger-nats-unauthenticated"
            );
            return Ok(crate::exit::USAGE);
        }
        (None, _, _) => None,
    };
    let platform_args = crate::cli::PlatformArgs {
        platform: args.platform,
        state_dir: Some(state.clone()),
        tcti: args.tcti.clone(),
        tsm_root: "/sys/kernel/config/tsm/report".into(),
        sgx_root: "/dev/attestation".into(),
    };
    let platform = crate::commands::platform::open_platform(&platform_args, None, false)?;
    eprintln!("lamina: the control plane attests itself on {}", platform.info().kind);
    let replica_policy = match (&args.replica_policy, args.danger_dev_allow_any_sim_node) {
        (Some(path), _) => {
            let mut anchors = lamina_attest::TrustAnchors::default();
            let policy = lamina_attest::Policy::load(path, &mut anchors).context("cannot use the replica policy")?;
            Some(std::sync::Arc::new(lamina_attest::Verifier::new(Some(policy), anchors)))
        }
        (None, true) if args.store.is_some() => {
            eprintln!(
                "lamina: DANGER: --danger-dev-allow-any-sim-node: no --replica-policy; any sim platform's evidence \
                 gets the cluster key (and with it every secret). For development only."
            );
            let mut anchors = lamina_attest::TrustAnchors::default();
            let policy = lamina_attest::Policy::parse("allow_sim = true\n", std::path::Path::new("."), &mut anchors)
                .context("the development replica policy")?;
            Some(std::sync::Arc::new(lamina_attest::Verifier::new(Some(policy), anchors)))
        }
        (None, _) => None,
    };
    let store = match &args.store {
        None => Store::open(&state).with_context(|| format!("cannot use the state directory {}", state.display()))?,
        Some(url) => {
            if let Some(usage) = etcd_usage_error(&args) {
                eprintln!("lamina: error: {usage}");
                return Ok(crate::exit::USAGE);
            }
            let transport = etcd_transport(&args)?;
            let endpoints = lamina_control::etcd::endpoints(url)?;
            eprintln!("lamina: keeping the state in etcd at {}", transport.urls(&endpoints).join(", "));
            let etcd = lamina_control::etcd::EtcdStore::connect(&endpoints, "/lamina", &transport)
                .context("cannot use etcd (is it running? check --store and the --etcd-* files)")?;
            let cluster_key = match (&args.cluster_key, &replica_policy) {
                // The fallback: an operator-distributed key file.
                (Some(key_file), _) => cluster_key(key_file)?,
                (None, Some(policy)) => lamina_control::replicas::cluster_key(
                    &state,
                    &etcd,
                    platform.as_ref(),
                    policy.clone(),
                    Duration::from_secs(120),
                )
                .context("cannot get the cluster key")?,
                (None, None) => {
                    eprintln!(
                        "lamina: error: a replicated control plane needs --replica-policy FILE (the policy the other \
                         replicas' evidence must pass: they give each other the cluster key over mutually attested \
                         TLS), or, where the platform cannot seal, --cluster-key FILE given to every replica"
                    );
                    return Ok(crate::exit::USAGE);
                }
            };
            let store = Store::replicated(&state, etcd, cluster_key)
                .with_context(|| format!("cannot use the state directory {}", state.display()))?;
            store.check_cluster_key().context("the cluster key")?;
            store
        }
    };
    let options = ServeOptions {
        listen: args.listen,
        public_address: args.public_address.clone(),
        names: args.names.clone(),
        tick: Duration::from_secs(1),
        settings: Settings { lost_after: args.lost_after, ..Settings::default() },
        messaging: args.nats.clone(),
        nats_authorization,
        replica_policy,
        metrics: args.metrics,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let running = lamina_control::serve(store, verifier, platform, options)
            .await
            .context("cannot start the control plane")?;
        eprintln!("lamina: control plane at {} (listening on {})", running.public_address, running.address);
        eprintln!("lamina: key fingerprint {}", hex::encode(running.fingerprint));
        if let Some(endpoint) = &running.metrics {
            eprintln!("lamina: metrics at http://{}/metrics", endpoint.addr());
        }
        eprintln!(
            "lamina: admin token in {}; create join tokens with `lamina token create`",
            state.join("admin.token").display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        let mut lost = running.lost.clone();
        let lead_lost = async move {
            match &mut lost {
                Some(lost) => {
                    let _ = lost.wait_for(|l| *l).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            () = lead_lost => {
                running.stop().await;
                bail!("this replica lost the lead (etcd out of reach for longer than its lease); another replica \
                       serves now. Restart it to stand by again");
            }
        }
        eprintln!("lamina: stopping the control plane");
        running.stop().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}

/// What is wrong with a replica's etcd flags, if anything: none of the three TLS files without
/// `--danger-etcd-plaintext`, or only some of them. (clap refuses them without `--store`, and
/// the danger flag with any of them.)
#[cfg(feature = "control")]
fn etcd_usage_error(args: &ControlArgs) -> Option<String> {
    let files = [("--etcd-ca", &args.etcd_ca), ("--etcd-cert", &args.etcd_cert), ("--etcd-key", &args.etcd_key)];
    let missing: Vec<&str> = files.iter().filter(|(_, f)| f.is_none()).map(|(name, _)| *name).collect();
    match missing.len() {
        0 => None,
        _ if args.danger_etcd_plaintext => None,
        3 => Some(
            "a replicated control plane reaches etcd over TLS with a client certificate: give --etcd-ca FILE (the \
             CA of the etcd members' certificates), --etcd-cert FILE and --etcd-key FILE (this replica's client \
             certificate and key, signed by the CA etcd trusts); or, for development only, --danger-etcd-plaintext"
                .to_owned(),
        ),
        _ => Some(format!("--etcd-ca, --etcd-cert and --etcd-key go together: give {} too", missing.join(" and "))),
    }
}

/// How a replica reaches etcd: TLS with the three files, checked now, or plain HTTP when it
/// says `--danger-etcd-plaintext` (with a DANGER line); any other set of flags is an error
/// (which [`etcd_usage_error`] has reported first), never plain HTTP.
#[cfg(feature = "control")]
fn etcd_transport(args: &ControlArgs) -> anyhow::Result<lamina_control::etcd::EtcdTransport> {
    use lamina_control::etcd::{EtcdTls, EtcdTransport};
    match (&args.etcd_ca, &args.etcd_cert, &args.etcd_key, args.danger_etcd_plaintext) {
        (Some(ca), Some(cert), Some(key), false) => {
            Ok(EtcdTransport::Tls(EtcdTls::load(ca, cert, key).context("cannot use the etcd TLS files")?))
        }
        (None, None, None, true) => {
            eprintln!(
                "lamina: DANGER: --danger-etcd-plaintext: reaching etcd over plain HTTP with no credentials; \
                 whoever can reach etcd's client port reads and changes the control plane's state (nodes, tokens, \
                 modules, the shared keys under the cluster key). For development only."
            );
            Ok(EtcdTransport::DangerPlaintext)
        }
        // Anything else is refused, never taken for plain HTTP.
        _ => bail!("{}", etcd_usage_error(args).unwrap_or_else(|| "contradictory etcd flags".to_owned())),
    }
}

/// The replicas' cluster key: read from `path`, or made there (mode 0600).
#[cfg(feature = "control")]
fn cluster_key(path: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    if !path.exists() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot make the cluster key {}", path.display()))?;
        file.write_all(hex::encode(key).as_bytes())?;
        eprintln!("lamina: made the cluster key {}; give the other replicas the same file", path.display());
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read the cluster key {}", path.display()))?,
    );
    let bytes =
        zeroize::Zeroizing::new(hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?);
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes (64 hex digits)", path.display()))?;
    Ok(zeroize::Zeroizing::new(key))
}

/// A client of the control plane named by the arguments, or the local one.
fn client(args: &ControlClientArgs, admin: bool) -> anyhow::Result<ControlClient> {
    let state = default_state(&args.state)?;
    let url = match &args.url {
        Some(u) => u.clone(),
        None => std::fs::read_to_string(state.join("address")).map(|s| s.trim().to_owned()).with_context(|| {
            format!("no control plane given: pass --control URL (none runs with state in {})", state.display())
        })?,
    };
    let fingerprint: [u8; 32] = match &args.fingerprint {
        Some(hex_text) => {
            let bytes = hex::decode(hex_text.trim()).context("--fingerprint is not hex")?;
            bytes.try_into().map_err(|_| anyhow::anyhow!("--fingerprint must be 32 bytes (64 hex digits)"))?
        }
        None => {
            let text = std::fs::read_to_string(state.join("fingerprint")).with_context(|| {
                format!(
                    "no fingerprint: pass --fingerprint HEX (`lamina control` prints it), or run this where {} is",
                    state.display()
                )
            })?;
            let bytes = hex::decode(text.trim()).context("the fingerprint file is not hex")?;
            bytes.try_into().map_err(|_| anyhow::anyhow!("the fingerprint file must hold 32 bytes (64 hex digits)"))?
        }
    };
    let token = if admin {
        Some(match &args.admin_token {
            Some(t) => t.clone(),
            None => {
                std::fs::read_to_string(state.join("admin.token")).map(|t| t.trim().to_owned()).with_context(|| {
                    format!(
                        "no admin token: pass --admin-token (it is in the control plane's {}/admin.token)",
                        state.display()
                    )
                })?
            }
        })
    } else {
        None
    };
    Ok(ControlClient::new(&url, fingerprint, token)?)
}

pub(crate) fn token(command: TokenCommand) -> anyhow::Result<i32> {
    let TokenCommand::Create { ttl, control } = command;
    let issued = client(&control, true)?.create_token(&lamina_wire::TokenRequest { ttl_secs: Some(ttl.as_secs()) })?;
    println!("{}", issued.token);
    eprintln!(
        "lamina: valid for {}; on the new node: lamina node --join <token>",
        humantime::format_duration(Duration::from_secs(issued.expires_in_secs))
    );
    Ok(0)
}

pub(crate) fn deploy(args: DeployArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read the manifest {}", args.manifest.display()))?;
    // Checked here first, so that mistakes are reported with the file's name.
    let mut deployment = match Deployment::parse(&text) {
        Ok(d) => d,
        Err(e) => bail!("{}: {e}", args.manifest.display()),
    };
    let control = client(&args.control, true)?;
    // Modules given by path are uploaded; the control plane knows them by hash.
    for w in &mut deployment.workloads {
        if let lamina_types::ModuleRef::Path(path) = &w.module {
            let wasm = std::fs::read(path)
                .with_context(|| format!("workload \"{}\": cannot read the module {}", w.name, path.display()))?;
            let uploaded = control
                .upload_module(wasm)
                .with_context(|| format!("workload \"{}\": cannot upload {}", w.name, path.display()))?;
            w.module = lamina_types::ModuleRef::Hash(uploaded.module);
        }
    }
    let deployed = control.deploy(&deployment)?;
    println!("deployed {}", deployed.deployed.join(", "));
    for u in &deployed.unplaced {
        eprintln!("warning: {}: {} replica(s) not placed: {}", u.workload, u.missing, u.reason);
    }
    Ok(0)
}

pub(crate) fn undeploy(args: UndeployArgs) -> anyhow::Result<i32> {
    client(&args.control, true)?.undeploy(&args.name)?;
    println!("undeployed {}", args.name);
    Ok(0)
}

pub(crate) fn remove_node(args: RemoveNodeArgs) -> anyhow::Result<i32> {
    client(&args.control, true)?
        .remove_node(&args.name)
        .with_context(|| format!("cannot remove the node {}", args.name))?;
    println!("removed node {}: its credentials no longer work; its instances move to other nodes", args.name);
    Ok(0)
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let client = client(&args.control, true)?;
    let Some(every) = args.watch else {
        let status = client.status()?;
        if args.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print_status(&status);
        }
        return Ok(0);
    };
    // Until interrupted: redraw every period; while the control plane is out of reach, say so
    // and keep asking.
    loop {
        let fetched = client.status();
        print!("\x1b[2J\x1b[H");
        println!(
            "every {} · {} · Ctrl-C to stop\n",
            humantime::format_duration(every),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        match fetched {
            Ok(status) if args.format == Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
            Ok(status) => print_status(&status),
            Err(e) => println!("the control plane is out of reach: {e}; trying again"),
        }
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(every);
    }
}

/// The status as tables: nodes, then instances and what could not be placed.
fn print_status(status: &lamina_wire::Status) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!(
        "{:<16} {:<8} {:<10} {:<20} {:<12} {:<10} INSTANCES",
        "NODE", "STATE", "PLATFORM", "ATTESTED", "ARCH", "ZONE"
    );
    for n in &status.nodes {
        let attested = match n.attested_at {
            Some(at) => format!("ok, {}s ago", now.saturating_sub(at)),
            None => n.attestation_failure.as_ref().map_or("no".to_owned(), |r| format!("FAILED: {r}")),
        };
        let count = status.placements.iter().filter(|p| p.node == n.name).count();
        println!(
            "{:<16} {:<8} {:<10} {:<20} {:<12} {:<10} {}",
            n.name,
            n.state.name(),
            n.platform.to_string(),
            attested,
            n.target.arch(),
            n.zone,
            count
        );
    }
    println!();
    println!("{:<20} {:<8} {:<16} {:<10} RESTARTS", "WORKLOAD", "REPLICA", "NODE", "STATE");
    for p in &status.placements {
        let report = status.report(p);
        println!(
            "{:<20} {:<8} {:<16} {:<10} {}",
            p.workload,
            p.replica,
            p.node,
            report.map_or("pending", |r| r.state.name()),
            report.map_or(0, |r| r.restarts)
        );
    }
    for u in &status.unplaced {
        let missing = format!("{}x", u.missing);
        println!("{:<20} {missing:<8} {:<16} unplaced: {}", u.workload, "-", u.reason);
    }
}

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

pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<i32> {
    let control = client(&args.control, true)?;
    // How far each replica's output has been printed (bytes since the control plane started).
    let mut printed: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    loop {
        let answer = control.logs(&args.workload)?;
        for i in &answer.instances {
            let (replica, node, text, end) = (i.replica, &i.node, &i.text, i.end);
            let start = end.saturating_sub(text.len() as u64);
            let done = printed.entry(replica).or_insert(start);
            let mut from = usize::try_from(done.saturating_sub(start)).unwrap_or(usize::MAX).min(text.len());
            while !text.is_char_boundary(from) {
                from += 1;
            }
            for line in text[from..].lines() {
                println!("{}/{replica}@{node}: {line}", args.workload);
            }
            *done = end;
        }
        if !args.follow {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub(crate) fn secret(command: SecretCommand) -> anyhow::Result<i32> {
    match command {
        SecretCommand::Set { name, file, control } => {
            let value = if file.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("cannot read standard input")?;
                v
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let client = client(&control, true)?;
            client.set_secret(&name, value)?;
            println!("set {name}");
        }
        SecretCommand::List { control } => {
            for name in client(&control, true)?.secrets()?.secrets {
                println!("{name}");
            }
        }
        SecretCommand::Delete { name, control } => {
            client(&control, true)?.delete_secret(&name)?;
            println!("deleted {name}");
        }
    }
    Ok(0)
}
