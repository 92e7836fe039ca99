//! Command-line syntax: every subcommand and option, parsed raw by clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lamina_types::{ByteSize, DirMount, Profile, SecretName, Target};

/// Lamina: one WebAssembly runtime layer from cloud servers to edge boards.
#[derive(Debug, Parser)]
#[command(name = "lamina", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// More output on standard error: -v says what Lamina does (cache hits, resource use), -vv debugs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a WASI module (preview 1), component (preview 2) or artifact made by `lamina compile`.
    Run(Box<RunArgs>),
    /// Serve HTTP with a component of the wasi:http/proxy (0.2) or wasi:http/service (0.3)
    /// world: each request goes to a fresh (or reused) instance under per-request limits.
    Serve(Box<ServeArgs>),
    /// Compile a .wasm ahead of time into an artifact for a target.
    Compile(CompileArgs),
    /// Describe a .wasm or an artifact: kind, hash, imports and exports, or target and engine.
    Inspect(InspectArgs),
    /// Make a signing key for artifacts: KEY (P-256, PKCS#8 PEM, mode 0600) and KEY.pub.
    Keygen(KeygenArgs),
    /// Produce attestation evidence on this machine's TEE: an envelope binding the claims.
    Attest(AttestArgs),
    /// Appraise evidence (an envelope, a quote, a report, a token, an attested TLS certificate).
    /// Exit 0: genuine and accepted by the policy; 1: rejected; 2: usage error; 3: genuine but
    /// not accepted, for want of a policy.
    #[cfg(feature = "verify")]
    Verify(VerifyArgs),
    /// Run the control plane: the attested API nodes enrol with, the scheduler, the store.
    #[cfg(feature = "control")]
    Control(ControlArgs),
    /// Join tokens for new nodes.
    #[cfg(feature = "node")]
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Deploy (add or replace) the workloads of a manifest.
    #[cfg(feature = "node")]
    Deploy(DeployArgs),
    /// Remove a deployed workload and its instances.
    #[cfg(feature = "node")]
    Undeploy(UndeployArgs),
    #[cfg(feature = "node")]
    /// Remove an enrolled node: its credentials (control plane and NATS) stop working at once
    /// and its instances are placed elsewhere. To come back it enrols with a new join token.
    RemoveNode(RemoveNodeArgs),
    /// Show the nodes (platform, attestation, architecture, zone) and the instances.
    #[cfg(feature = "node")]
    Status(StatusArgs),
    /// Show what a workload's instances wrote (their standard output and error).
    #[cfg(feature = "node")]
    Logs(LogsArgs),
    /// The secrets the control plane releases to attested instances.
    #[cfg(feature = "node")]
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Run the node agent: enrol with a join token once, then run what the control plane assigns.
    #[cfg(feature = "node")]
    Node(Box<NodeArgs>),
}

/// `lamina logs`.
#[cfg(feature = "node")]
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The workload.
    pub(crate) workload: String,

    /// Keep printing new output until interrupted.
    #[arg(long, short)]
    pub(crate) follow: bool,

    #[command(flatten)]
    pub(crate) control: ControlClientArgs,
}

/// `lamina secret`.
#[cfg(feature = "node")]
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Set a secret from a file (`-` for standard input); it is encrypted at rest and released
    /// only to attested instances of workloads that name it.
    Set {
        /// Its name, as manifests' `secrets` name it (letters, digits, `_`, `-`, `.`; not
        /// starting with `.`).
        name: lamina_types::SecretName,
        /// The file holding its value.
        file: PathBuf,
        #[command(flatten)]
        control: ControlClientArgs,
    },
    /// List the secrets' names (never their values).
    List {
        #[command(flatten)]
        control: ControlClientArgs,
    },
    /// Delete a secret.
    Delete {
        /// Its name.
        name: lamina_types::SecretName,
        #[command(flatten)]
        control: ControlClientArgs,
    },
}

/// `lamina node`.
#[cfg(feature = "node")]
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The join token from `lamina token create` (needed only the first time: the identity is
    /// kept in the state directory).
    #[arg(long, value_name = "TOKEN", env = "LAMINA_JOIN_TOKEN", hide_env_values = true)]
    pub(crate) join: Option<String>,

    /// The node's name [default: the host name].
    #[arg(long)]
    pub(crate) name: Option<String>,

    /// A label for placement constraints (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub(crate) labels: Vec<(String, String)>,

    /// The node's zone.
    #[arg(long, default_value = "default")]
    pub(crate) zone: String,

    /// Memory the node offers to workloads.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub(crate) memory: ByteSize,

    /// Time between heartbeats.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_timeout)]
    pub(crate) heartbeat: Duration,

    /// Time between attestations.
    #[arg(long, value_name = "DURATION", default_value = "4m", value_parser = parse_timeout)]
    pub(crate) reattest: Duration,

    /// The policy the control plane's evidence must pass (TOML, as `lamina verify --policy`);
    /// it is checked on every connection. Without one, only the control plane's key is
    /// checked (against the join token's pin).
    #[arg(long, value_name = "FILE")]
    pub(crate) control_policy: Option<PathBuf>,
    /// The NATS server this node's instances message through, in place of the one the control
    /// plane names: a leaf node beside an edge node, for instance (nats://HOST:PORT).
    /// Messaging stays off unless the control plane has it on (`lamina control --nats`).
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,

    /// Serve Prometheus metrics on this address (plain HTTP, `GET /metrics`).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,

    /// Serve the routes of the HTTP workloads placed on this node on this address, over TLS
    /// with a certificate the node's platform attests, which declares what each route runs
    /// (`lamina verify --url` checks it). Without it, HTTP workloads do not start here.
    #[arg(long, value_name = "ADDR")]
    pub(crate) ingress: Option<std::net::SocketAddr>,

    /// How clients reach the ingress (https://HOST:PORT), as the control plane's endpoints
    /// tell them; needed when --ingress listens on all addresses (0.0.0.0 or [::]).
    #[arg(long, value_name = "URL", requires = "ingress")]
    pub(crate) ingress_url: Option<String>,

    /// The device profile of the node's engine (server, edge, tiny; see `lamina run
    /// --profile`): the control plane compiles the node's artifacts for it. A board with a
    /// small address space needs edge or tiny.
    #[arg(long, value_name = "PROFILE", default_value = "server", value_parser = parse_profile)]
    pub(crate) profile: lamina_types::Profile,

    /// Where an instance's sealed directory or the node's own sealed state, seen before in
    /// this state directory, is missing, empty or holds another volume, start over with that
    /// instead of refusing (the instance, or the node, does not start). The data that was
    /// there is lost.
    #[arg(long)]
    pub(crate) danger_sealed_start_over: bool,

    /// The largest an instance's log file grows before it is rotated (one rotated copy is
    /// kept, so an instance takes at most twice this on disk).
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_size)]
    pub(crate) log_max_file: ByteSize,

    /// The output an instance may write each second on average; beyond it (and a burst of
    /// four seconds' worth) its output is dropped, said so in its log, and counted in
    /// `lamina_node_log_dropped_bytes_total`.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub(crate) log_rate: ByteSize,

    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
}

/// `lamina control`.
#[cfg(feature = "control")]
#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7443")]
    pub(crate) listen: std::net::SocketAddr,

    /// The control plane's state: registry, tokens, certificate, admin token
    /// [default: $XDG_STATE_HOME/lamina/control].
    #[arg(long = "state", value_name = "DIR", env = "LAMINA_CONTROL_STATE")]
    pub(crate) state: Option<PathBuf>,

    /// The policy nodes' evidence must pass (TOML; see `lamina verify --policy`). Required,
    /// unless --danger-dev-allow-any-sim-node.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// DANGER, development only: run without a policy and admit any node on the sim platform,
    /// which has no hardware protection (any module, any measurement).
    #[arg(long, conflicts_with = "policy")]
    pub(crate) danger_dev_allow_any_sim_node: bool,

    /// Where the state is kept: in the state directory (the default), or, for a replicated
    /// control plane, in an etcd cluster (`etcd://HOST:PORT[,HOST:PORT...]`). Replicas on the
    /// same etcd elect one leader that serves; the others stand by and take over when it dies.
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,

    /// With --store etcd://...: the CA certificate (PEM) that signed the etcd members'
    /// certificates. The replica reaches etcd over TLS, checks each member's certificate
    /// against it, and presents --etcd-cert; the three go together, and are required unless
    /// --danger-etcd-plaintext.
    #[arg(long, value_name = "FILE", requires = "store")]
    pub(crate) etcd_ca: Option<PathBuf>,

    /// With --store etcd://...: this replica's client certificate (PEM, with its chain if any),
    /// signed by the CA that etcd trusts (etcd's --trusted-ca-file, with --client-cert-auth).
    #[arg(long, value_name = "FILE", requires = "store")]
    pub(crate) etcd_cert: Option<PathBuf>,

    /// With --store etcd://...: the private key (PEM) of --etcd-cert.
    #[arg(long, value_name = "FILE", requires = "store")]
    pub(crate) etcd_key: Option<PathBuf>,

    /// DANGER, development only: reach etcd over plain HTTP with no credentials; whoever can
    /// reach etcd's client port reads and changes the control plane's state.
    #[arg(long, requires = "store", conflicts_with_all = ["etcd_ca", "etcd_cert", "etcd_key"])]
    pub(crate) danger_etcd_plaintext: bool,

    /// With --store etcd://...: the policy the other replicas' evidence must pass (TOML, as
    /// --policy). Replicas give each other the cluster key (which opens the keys they share in
    /// etcd) over mutually attested TLS, each checking the other against this policy; each keeps
    /// it sealed to its platform.
    #[arg(long, value_name = "FILE")]
    pub(crate) replica_policy: Option<PathBuf>,

    /// With --store etcd://..., the fallback where the platform cannot seal: the file of the
    /// 32-byte cluster key (64 hex digits); give every replica the same file. Made (mode 0600)
    /// if it does not exist.
    #[arg(long, value_name = "FILE")]
    pub(crate) cluster_key: Option<PathBuf>,

    /// The address nodes reach this control plane at, written into join tokens
    /// [default: https://<listen>].
    #[arg(long, value_name = "URL")]
    pub(crate) public_address: Option<String>,

    /// Another name or address for the control plane's certificate (repeatable).
    #[arg(long = "name", value_name = "HOST")]
    pub(crate) names: Vec<String>,

    /// The platform that attests the control plane to its nodes (its TLS certificate carries
    /// the evidence); sim state is kept in the state directory.
    #[arg(long, value_enum, default_value_t = PlatformChoice::Auto)]
    pub(crate) platform: PlatformChoice,

    /// The TPM's TCTI when --platform is tpm.
    #[arg(long, value_name = "TCTI", env = "TCTI")]
    pub(crate) tcti: Option<String>,

    /// The NATS server (`nats://host:port`, as nodes reach it) that instances on different
    /// nodes exchange messages through; without one, only instances on the same node do.
    #[arg(long, value_name = "URL")]
    pub(crate) nats: Option<String>,

    /// With --nats: the file nats-server's configuration includes (`include "FILE"`), where
    /// the control plane keeps the server's users: one NKey per enrolled node, allowed only
    /// the subjects of the instances placed on it. Rewritten whenever they change.
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub(crate) nats_users: Option<PathBuf>,

    /// With --nats-users: nats-server's PID file (its `pid_file`); the server is sent SIGHUP
    /// to reload the users whenever they change.
    #[arg(long, value_name = "FILE", requires = "nats_users")]
    pub(crate) nats_pid_file: Option<PathBuf>,

    /// DANGER: with --nats, let nodes connect to the NATS server without credentials: anyone
    /// who reaches it can subscribe to every subject and publish on any (messages stay
    /// sealed, but can be dropped, replayed to others and counted).
    #[arg(long, requires = "nats", conflicts_with = "nats_users")]
    pub(crate) danger_nats_unauthenticated: bool,

    /// Serve Prometheus metrics on this address (plain HTTP, `GET /metrics`; bind it to
    /// loopback or a monitoring network).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,

    /// A node not heard from for this long is lost and its instances move.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub(crate) lost_after: Duration,
}

/// How a command reaches the control plane.
#[derive(Debug, Args)]
pub(crate) struct ControlClientArgs {
    /// The control plane [default: the address in the local control plane's state directory].
    #[arg(long = "control", value_name = "URL", env = "LAMINA_CONTROL")]
    pub(crate) url: Option<String>,

    /// The control plane's fingerprint: SHA-256 (hex) of its TLS key [default: read from the
    /// local control plane's state directory].
    #[arg(long, value_name = "HEX", env = "LAMINA_CONTROL_FINGERPRINT")]
    pub(crate) fingerprint: Option<String>,

    /// The admin token [default: read from the local control plane's state directory].
    #[arg(long, value_name = "TOKEN", env = "LAMINA_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,

    /// The local control plane's state directory, where the defaults above are read
    /// [default: $XDG_STATE_HOME/lamina/control].
    #[arg(long = "control-state", value_name = "DIR", env = "LAMINA_CONTROL_STATE")]
    pub(crate) state: Option<PathBuf>,
}

/// `lamina token`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a join token and print it on one line: `lamina node --join TOKEN` needs nothing else.
    Create {
        /// How long the token admits a node.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_timeout)]
        ttl: Duration,

        #[command(flatten)]
        control: ControlClientArgs,
    },
}

/// `lamina deploy`.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// The deployment manifest (TOML; see examples/continuum/app.toml).
    pub(crate) manifest: PathBuf,

    #[command(flatten)]
    pub(crate) control: ControlClientArgs,
}

/// `lamina remove-node`.
#[derive(Debug, Args)]
pub(crate) struct RemoveNodeArgs {
    /// The node's name.
    pub(crate) name: String,

    #[command(flatten)]
    pub(crate) control: ControlClientArgs,
}

/// `lamina undeploy`.
#[derive(Debug, Args)]
pub(crate) struct UndeployArgs {
    /// The workload's name.
    pub(crate) name: String,

    #[command(flatten)]
    pub(crate) control: ControlClientArgs,
}

/// `lamina status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// Redraw every period (`--watch`, every 2s; or `--watch 10s`) until interrupted.
    #[arg(long, value_name = "PERIOD", num_args = 0..=1, default_missing_value = "2s", value_parser = parse_period)]
    pub(crate) watch: Option<Duration>,

    #[command(flatten)]
    pub(crate) control: ControlClientArgs,
}

/// Which platform `lamina attest` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlatformChoice {
    /// The first hardware platform found (configfs-tsm, SGX, TPM); sim, with a warning, if none.
    Auto,
    /// Lamina's software platform: NO hardware protection, for development.
    Sim,
    /// TPM 2.0 (TCTI from --tcti or $TCTI).
    Tpm,
    /// Linux configfs-tsm: TDX, SEV-SNP and CCA guests.
    Tsm,
    /// SGX under Gramine (/dev/attestation).
    Sgx,
}

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// Say which platforms this machine offers, and why the others are unavailable; then exit.
    #[arg(long, conflicts_with_all = ["output", "module", "nonce"])]
    pub(crate) detect: bool,

    /// The module the evidence speaks for: its hash goes into the claims (and, on a TPM, into
    /// the application PCR).
    #[arg(long, value_name = "FILE")]
    pub(crate) module: Option<PathBuf>,

    /// The relying party's nonce, 8 to 64 bytes in hex [default: 32 random bytes].
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub(crate) nonce: Option<HexBytes>,

    /// Where to write the envelope (CBOR).
    #[arg(short, long, value_name = "FILE", required_unless_present = "detect")]
    pub(crate) output: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
}

/// Which platform to use and where its state and interfaces are.
#[derive(Debug, Args)]
pub(crate) struct PlatformArgs {
    /// The platform: evidence and sealing keys come from it.
    #[arg(long, value_enum, default_value_t = PlatformChoice::Auto)]
    pub(crate) platform: PlatformChoice,

    /// Lamina's state directory (sim keys and counters, TPM sealed blobs) [default: $XDG_STATE_HOME/lamina or ~/.local/state/lamina].
    #[arg(long, alias = "state", value_name = "DIR", env = "LAMINA_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// The TPM's TCTI, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    #[arg(long, value_name = "TCTI", env = "TCTI")]
    pub(crate) tcti: Option<String>,

    /// The configfs-tsm report directory.
    #[arg(long, value_name = "DIR", default_value = "/sys/kernel/config/tsm/report")]
    pub(crate) tsm_root: PathBuf,

    /// Gramine's attestation directory.
    #[arg(long, value_name = "DIR", default_value = "/dev/attestation")]
    pub(crate) sgx_root: PathBuf,
}

/// What kind of evidence `lamina verify` reads.
#[cfg(feature = "verify")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EvidenceKind {
    /// Tell from the bytes.
    Auto,
    /// A Lamina envelope (from `lamina attest`).
    Envelope,
    /// An Intel SGX DCAP quote.
    Sgx,
    /// An Intel TDX quote.
    Tdx,
    /// An AMD SEV-SNP attestation report (binary or hex text).
    Snp,
    /// TPM 2.0 evidence.
    Tpm,
    /// An Arm CCA attestation token.
    Cca,
    /// An attested TLS certificate (PEM or DER).
    Ratls,
}

#[cfg(feature = "verify")]
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The evidence file.
    #[arg(required_unless_present = "url", conflicts_with = "url")]
    pub(crate) file: Option<PathBuf>,

    /// Connect to an attested HTTPS server (`lamina serve --attested-tls`, or any server with
    /// an attested certificate) and appraise its certificate before sending anything:
    /// `https://HOST:PORT`. The handshake fails unless the policy accepts the server.
    #[arg(long, value_name = "https://HOST:PORT")]
    pub(crate) url: Option<String>,

    /// What the file is.
    #[arg(long, value_enum, default_value_t = EvidenceKind::Auto)]
    pub(crate) kind: EvidenceKind,

    /// DCAP collateral (PCCS JSON) for SGX and TDX quotes; verification never goes online.
    #[arg(long, value_name = "FILE")]
    pub(crate) collateral: Option<PathBuf>,

    /// A certificate, key or trust-anchor file (repeatable): self-signed certificates become
    /// trusted roots for the evidence's kind, others help build the chain (e.g. a VCEK); CCA
    /// trust anchors and reference values are Veraison JSON files.
    #[arg(long = "cert", value_name = "FILE")]
    pub(crate) certs: Vec<PathBuf>,

    /// Appraise as of this time (RFC 3339, e.g. 2025-06-25T00:00:00Z) [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub(crate) at: Option<std::time::SystemTime>,

    /// The nonce the evidence must carry (hex).
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub(crate) nonce: Option<HexBytes>,

    /// The policy (TOML): reference values, allowed modules, accepted TCB statuses, allow_sim.
    /// Without one nothing is accepted: genuine evidence exits 3 (not appraised).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// DANGER: accept any genuine hardware evidence whatever it measures (no reference values,
    /// any module, any TCB status but Revoked; sim and debug TEEs still rejected). For looking
    /// at evidence, not for trusting it.
    #[arg(long, conflicts_with = "policy")]
    pub(crate) danger_accept_any_measurement: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// Sign an attestation result (EAR, JWT ES256) with this P-256 key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE", requires = "ear_out")]
    pub(crate) ear_key: Option<PathBuf>,

    /// Where to write the signed EAR.
    #[arg(long, value_name = "FILE", requires = "ear_key")]
    pub(crate) ear_out: Option<PathBuf>,

    /// How long the EAR is valid.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_timeout)]
    pub(crate) ear_validity: Duration,
}

/// Options shared by commands that build an engine.
#[derive(Debug, Args)]
pub(crate) struct EngineArgs {
    /// Device profile: memory reservations, guards and instance pool sizes.
    /// `tiny` starts on a 512 MB board with a 39-bit address space.
    #[arg(long, value_parser = parse_profile)]
    pub(crate) profile: Option<Profile>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The .wasm or artifact to run.
    pub(crate) file: PathBuf,

    /// Run a .wasm in wasmtime's interpreter (`pulley64`) instead of compiling it to machine
    /// code: what devices without a compiler backend do. An artifact made with
    /// `lamina compile --target pulley64` runs in the interpreter without this flag.
    #[arg(long, value_parser = parse_target, value_name = "pulley64")]
    pub(crate) target: Option<Target>,

    /// Arguments for the guest: everything after FILE (or after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,

    /// Give the guest a host directory: HOST, HOST::GUEST, or HOST::GUEST:ro for read-only.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]", value_parser = parse_mount)]
    pub(crate) dirs: Vec<DirMount>,

    /// Set an environment variable for the guest (nothing of Lamina's own is inherited).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,

    /// Limit the guest's total linear memory, e.g. `64MiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_memory: Option<ByteSize>,

    /// Kill the guest after this long, e.g. `2s` or `500ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,

    /// Kill the guest after this much fuel (roughly, Wasm instructions).
    #[arg(long, value_name = "N")]
    pub(crate) fuel: Option<u64>,

    /// Give the guest a sealed directory: it sees an ordinary directory at GUEST, the host
    /// sees only ciphertext in HOST (created if missing).
    #[arg(long = "sealed-dir", value_name = "HOST::GUEST", value_parser = parse_sealed_mount)]
    pub(crate) sealed_dirs: Vec<SealedDirArg>,

    /// What sealed directories are bound to: `module` (this exact module) or `signer:KEYFILE`
    /// (any module whose detached signature, FILE.sig beside the module, verifies with the
    /// P-256 public key in KEYFILE).
    #[arg(long, value_name = "module|signer:KEYFILE", default_value = "module", value_parser = parse_seal_to)]
    pub(crate) seal_to: SealToArg,

    /// The most file content each sealed directory (and the `--kv` store) may hold.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub(crate) sealed_quota: ByteSize,

    /// Where a sealed directory or `--kv` store that this state directory has seen is missing,
    /// empty or holds another volume, start over with that (a fresh, empty volume) instead of
    /// refusing to run. The data that was there is lost.
    #[arg(long)]
    pub(crate) danger_sealed_start_over: bool,

    /// Give the guest a sealed key-value store (`wasi:keyvalue`, or the `lamina:keyvalue`
    /// imports), kept in DIR and sealed like `--sealed-dir`.
    #[arg(long, value_name = "DIR")]
    pub(crate) kv: Option<PathBuf>,

    /// Give the guest a secret, read from FILE now; the guest reads it by NAME through
    /// `lamina:secrets`. Values are never written to disk or logged.
    #[arg(long = "secret", value_name = "NAME=FILE", value_parser = parse_secret)]
    pub(crate) secrets: Vec<(SecretName, PathBuf)>,

    /// Let the guest attest itself (`lamina:attestation`) on the platform (`--platform`).
    #[arg(long)]
    pub(crate) attestation: bool,

    /// Appraise the guest's self-attestation against this policy and give it the signed result
    /// (implies `--attestation`; needs `--verifier-key`).
    #[arg(long, value_name = "POLICY", requires = "verifier_key")]
    pub(crate) verifier_policy: Option<PathBuf>,

    /// The PEM private key (P-256) that signs the attestation results given to the guest.
    #[arg(long, value_name = "KEY", requires = "verifier_policy")]
    pub(crate) verifier_key: Option<PathBuf>,

    /// Also run MODULE in this process, on the same message bus (repeatable). It gets no
    /// arguments, the same limits and secrets, and no sealed storage; the exit code is the
    /// first guest's, or else the first failing one's.
    #[arg(long = "with", value_name = "MODULE")]
    pub(crate) peers: Vec<PathBuf>,

    /// Run an artifact signed by this key (P-256 public key, PEM; repeatable): FILE.sig must
    /// hold a signature by one of them, made with `lamina compile --sign`. An artifact is native
    /// code, so it runs only with a trusted signer (or the option below).
    #[arg(long = "trust-signer", value_name = "PUBKEY")]
    pub(crate) trust_signers: Vec<PathBuf>,

    /// DANGER: run an artifact that no trusted key signed. Its compiled code runs as native
    /// code outside the Wasm sandbox, with this process's rights, and nothing checks where it
    /// came from; the run gets no module identity (no sealed directories, key-value store,
    /// attestation or secrets).
    #[arg(long = "danger-run-unverified-native-code", conflicts_with = "trust_signers")]
    pub(crate) danger_run_unverified_native_code: bool,

    #[command(flatten)]
    pub(crate) network: NetworkArgs,

    #[command(flatten)]
    pub(crate) platform: PlatformArgs,

    #[command(flatten)]
    pub(crate) engine: EngineArgs,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// `lamina serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The HTTP component (.wasm) to serve.
    pub(crate) file: PathBuf,

    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub(crate) addr: std::net::SocketAddr,

    /// Set an environment variable for every instance.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub(crate) env: Vec<(String, String)>,

    /// Give every instance a host directory: HOST, HOST::GUEST, or HOST::GUEST:ro.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]", value_parser = parse_mount)]
    pub(crate) dirs: Vec<DirMount>,

    /// Each request's time in the guest; past it the request is answered 504 (and a guest
    /// spinning on the CPU loses its instance).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,

    /// Each instance's total linear memory, e.g. `64MiB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_memory: Option<ByteSize>,

    /// Each request's fuel (roughly, Wasm instructions).
    #[arg(long, value_name = "N")]
    pub(crate) fuel: Option<u64>,

    /// Requests one instance handles before a fresh one is made. 1 (the default) gives every
    /// request a fresh instance, so nothing one request leaves in memory reaches another;
    /// more is faster for components that allow it.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) instance_reuse: u64,

    /// Requests one instance of a WASI 0.3 service handles at once (0.2 handlers take one).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) instance_concurrency: u64,

    /// How long an idle instance is kept for reuse.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    pub(crate) idle_instance_timeout: Duration,

    /// Connections served at once (more wait in the listen backlog).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(crate) max_connections: usize,

    /// Threads serving connections (default: one per CPU). Each keeps instances of its own
    /// and serves its connections from start to end.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) threads: Option<u64>,

    /// Requests in the guest at once; beyond it, 503 with retry-after.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) max_concurrent_requests: usize,

    /// Time a client has to send a request's headers (and to finish a TLS handshake).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub(crate) header_timeout: Duration,

    /// The largest header section taken.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub(crate) max_header_size: ByteSize,

    /// The largest request body taken (413 beyond it).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub(crate) max_body_size: ByteSize,

    /// How long requests in flight may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub(crate) drain_timeout: Duration,

    /// Serve Prometheus metrics on `GET /metrics` at this address.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,

    /// Append one line per request to FILE (`-` for standard error).
    #[arg(long, value_name = "FILE")]
    pub(crate) access_log: Option<PathBuf>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key", conflicts_with = "attested_tls")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key (PEM, PKCS#8 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,

    /// Serve HTTPS with an attested certificate: it carries the platform's evidence (`--platform`)
    /// over the served module's hash, this configuration's digest and the certificate's key, so
    /// that a client (`lamina verify --url`) appraises what serves it before sending anything.
    #[arg(long)]
    pub(crate) attested_tls: bool,

    /// How often the attested certificate is reissued (its claims carry their issue time, and
    /// relying parties' policies bound their age).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_timeout, requires = "attested_tls")]
    pub(crate) attested_tls_renew: Duration,

    /// Give every instance a sealed directory: each sees an ordinary directory at GUEST (through
    /// WASI 0.2's and 0.3's filesystems), the host sees only ciphertext in HOST, sealed to this module on
    /// `--platform`. Instances share it as processes share a directory; what an instance writes
    /// is committed when it syncs and when it ends.
    #[arg(long = "sealed-dir", value_name = "HOST::GUEST", value_parser = parse_sealed_mount)]
    pub(crate) sealed_dirs: Vec<SealedDirArg>,

    /// The most file content each sealed directory may hold.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub(crate) sealed_quota: ByteSize,

    /// Give every instance the sealed key-value store in DIR (`wasi:keyvalue`, `lamina:keyvalue`),
    /// sealed to this module on `--platform` as `lamina run --kv` does; instances share it.
    #[arg(long, value_name = "DIR")]
    pub(crate) kv: Option<PathBuf>,

    /// The most the `--kv` store may hold.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub(crate) kv_quota: ByteSize,

    /// Where a sealed directory or `--kv` store that this state directory has seen is missing,
    /// empty or holds another volume, start over with that (a fresh, empty volume) instead of
    /// refusing to run. The data that was there is lost.
    #[arg(long)]
    pub(crate) danger_sealed_start_over: bool,

    /// Let instances attest themselves (`lamina:attestation`) on `--platform`.
    #[arg(long)]
    pub(crate) attestation: bool,

    /// Give every instance a secret, read from FILE now (as `lamina run --secret`).
    #[arg(long = "secret", value_name = "NAME=FILE", value_parser = parse_secret)]
    pub(crate) secrets: Vec<(SecretName, PathBuf)>,

    #[command(flatten)]
    pub(crate) network: NetworkArgs,

    #[command(flatten)]
    pub(crate) engine: EngineArgs,

    #[command(flatten)]
    pub(crate) platform: PlatformArgs,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// What a guest may reach over the network; nothing unless allowed here.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct NetworkArgs {
    /// Let the guest make outgoing HTTP requests (wasi:http) to SCHEME://HOST[:PORT]
    /// (repeatable): `https://api.example.com`, `https://*.example.com`, `http://127.0.0.1:8080`,
    /// `*://*.internal:*`. Without a port, the scheme's (80, 443). Everything else is refused.
    #[arg(long = "allow-http", value_name = "RULE")]
    pub(crate) http: Vec<String>,

    /// Let the guest use sockets (wasi:sockets) to reach or listen on an address
    /// (repeatable): `tcp://127.0.0.1:5432`, `udp://10.0.0.0/8:53`, `tcp://localhost:8000-8099`,
    /// `tcp://*:3000`. Addresses only: sockets are checked by IP.
    #[arg(long = "allow-socket", value_name = "RULE")]
    pub(crate) sockets: Vec<String>,

    /// Let the guest resolve names (wasi:sockets/ip-name-lookup). A lookup reaches the
    /// resolver whatever the rules say, and a looked-up name can carry data out.
    #[arg(long)]
    pub(crate) allow_name_lookup: bool,

    /// DANGER: let the guest reach any host over HTTP and sockets and resolve any name, as
    /// if every rule above were `*`.
    #[arg(long, conflicts_with_all = ["http", "sockets", "allow_name_lookup"])]
    pub(crate) danger_allow_all_network: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CacheArgs {
    /// Where compiled code is cached [default: $XDG_CACHE_HOME/lamina or ~/.cache/lamina].
    #[arg(long, value_name = "DIR", env = "LAMINA_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Compile every time; neither read nor write the cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

/// `lamina keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key; the public key goes to KEY.pub. Neither is overwritten.
    #[arg(value_name = "KEY")]
    pub(crate) key: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    /// The .wasm (module or component) to compile.
    pub(crate) file: PathBuf,

    /// Target: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu, or
    /// pulley64 (bytecode for the interpreter, which any Lamina build runs) [default: this machine].
    #[arg(long, value_parser = parse_target)]
    pub(crate) target: Option<Target>,

    /// Compile fuel metering in, so the artifact can run with `--fuel`.
    #[arg(long)]
    pub(crate) fuel: bool,

    /// Where to write the artifact.
    #[arg(short, long, value_name = "OUT")]
    pub(crate) output: PathBuf,

    /// Sign the artifact with this P-256 private key (PKCS#8 PEM); the signature goes to
    /// OUT.sig, and `lamina run --trust-signer` checks it.
    #[arg(long, value_name = "KEY")]
    pub(crate) sign: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The .wasm or artifact to describe.
    pub(crate) file: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_mount(s: &str) -> Result<DirMount, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_size(s: &str) -> Result<ByteSize, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    lamina_types::parse_duration(s).map_err(|e| e.to_string())
}

/// A redraw period: at least 100 ms.
fn parse_period(s: &str) -> Result<Duration, String> {
    let period = parse_timeout(s)?;
    if period < Duration::from_millis(100) {
        return Err(format!("`{s}` is too short; give at least 100ms"));
    }
    Ok(period)
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Bytes given in hex on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HexBytes(pub(crate) Vec<u8>);

fn parse_hex(s: &str) -> Result<HexBytes, String> {
    hex::decode(s.trim()).map(HexBytes).map_err(|e| format!("`{s}` is not hex: {e}"))
}

#[cfg(feature = "verify")]
fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time (e.g. 2025-06-25T00:00:00Z): {e}"))
}

fn parse_secret(s: &str) -> Result<(SecretName, PathBuf), String> {
    match s.split_once('=') {
        Some((name, file)) if !file.is_empty() => {
            let name = name.parse::<SecretName>().map_err(|e| format!("`{name}` is not a secret name: {e}"))?;
            Ok((name, file.into()))
        }
        _ => Err(format!("`{s}` is not NAME=FILE")),
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A secret's name is checked when the command line is read, before any file is opened.
    #[test]
    fn a_secret_whose_name_guests_could_not_ask_for_is_refused_on_the_command_line() {
        for bad in ["../db=/tmp/x", "=/tmp/x", "db key=/tmp/x", ".hidden=/tmp/x"] {
            let parsed = Cli::try_parse_from(["lamina", "run", "--secret", bad, "app.wasm"]);
            let Err(e) = parsed else { panic!("`{bad}` was taken") };
            assert!(e.to_string().contains("is not a secret name"), "{bad}: {e}");
        }
        for missing in ["db", "db="] {
            let Err(e) = Cli::try_parse_from(["lamina", "run", "--secret", missing, "app.wasm"]) else {
                panic!("`{missing}` was taken")
            };
            assert!(e.to_string().contains("is not NAME=FILE"), "{missing}: {e}");
        }
        assert!(Cli::try_parse_from(["lamina", "run", "--secret", "db.key-1=/tmp/x", "app.wasm"]).is_ok());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("A="), Ok(("A".into(), String::new())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }
}

/// A `--sealed-dir` argument.
#[derive(Debug, Clone)]
pub(crate) struct SealedDirArg {
    /// The host directory holding the ciphertext.
    pub(crate) host: PathBuf,
    /// Where the guest sees it.
    pub(crate) guest: String,
}

fn parse_sealed_mount(s: &str) -> Result<SealedDirArg, String> {
    let (host, guest) = s.split_once("::").ok_or("expected HOST::GUEST, e.g. ./state::/data")?;
    if host.is_empty() || guest.is_empty() {
        return Err("expected HOST::GUEST, e.g. ./state::/data".into());
    }
    Ok(SealedDirArg { host: host.into(), guest: guest.into() })
}

/// A `--seal-to` argument.
#[derive(Debug, Clone)]
pub(crate) enum SealToArg {
    /// The module's hash.
    Module,
    /// A signer's public key file.
    Signer(PathBuf),
}

fn parse_seal_to(s: &str) -> Result<SealToArg, String> {
    match s {
        "module" => Ok(SealToArg::Module),
        _ => match s.strip_prefix("signer:") {
            Some(path) if !path.is_empty() => Ok(SealToArg::Signer(path.into())),
            _ => Err("expected `module` or `signer:KEYFILE`".into()),
        },
    }
}
