//! `lamina compile`: ahead-of-time artifacts for this or another architecture.

use std::time::Instant;

use anyhow::Context as _;
use lamina_runtime::{Engine, EngineOptions};
use lamina_types::{Profile, Target};

use crate::cli::CompileArgs;

pub(crate) fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let target =
        args.target.or_else(Target::host).context("this machine's architecture is not supported; pass --target")?;
    let profile = args.engine.profile.unwrap_or(Profile::Server);
    let engine = Engine::new(EngineOptions { profile, target: Some(target), fuel: args.fuel })
        .with_context(|| format!("cannot build a compiler for {target}"))?;
    let started = Instant::now();
    // A large module takes seconds to compile: show that something is happening (only on a
    // terminal; indicatif draws nothing otherwise).
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message(format!("compiling {} for {target}", args.file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let compiled = engine.compile(&bytes);
    spinner.finish_and_clear();
    let artifact = compiled.with_context(|| format!("cannot compile {}", args.file.display()))?;
    std::fs::write(&args.output, &artifact).with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "lamina: compiled {} for {target} ({profile} profile{}) into {} ({} bytes) in {:.2?}",
        args.file.display(),
        if args.fuel { ", fuel metering" } else { "" },
        args.output.display(),
        artifact.len(),
        started.elapsed()
    );
    Ok(())
}
