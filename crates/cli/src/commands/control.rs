//! `lamina control`: runs the control plane (embedded store, or etcd for replicas).

use std::time::Duration;

use anyhow::{Context as _, bail};
use lamina_control::{ServeOptions, Settings, Store};

use super::control_client::default_state;
use crate::cli::ControlArgs;

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
