//! Command-line syntax: every subcommand and option, parsed raw by clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lamina_types::{ByteSize, DirMount, Profile, Target};

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
    Run(RunArgs),
    /// Compile a .wasm ahead of time into an artifact for a target.
    Compile(CompileArgs),
    /// Describe a .wasm or an artifact: kind, hash, imports and exports, or target and engine.
    Inspect(InspectArgs),
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

    /// Arguments for the guest (after `--`).
    #[arg(last = true)]
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

    #[command(flatten)]
    pub(crate) engine: EngineArgs,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
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

#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    /// The .wasm (module or component) to compile.
    pub(crate) file: PathBuf,

    /// Target triple: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu or riscv64gc-unknown-linux-gnu
    /// [default: this machine].
    #[arg(long, value_parser = parse_target)]
    pub(crate) target: Option<Target>,

    /// Compile fuel metering in, so the artifact can run with `--fuel`.
    #[arg(long)]
    pub(crate) fuel: bool,

    /// Where to write the artifact.
    #[arg(short, long, value_name = "OUT")]
    pub(crate) output: PathBuf,

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

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse().map_err(|e| format!("{e}"))
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

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("A="), Ok(("A".into(), String::new())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }
}
