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
    let engine =
        Engine::new(EngineOptions { target: Some(target), fuel: args.fuel, ..EngineOptions::for_profile(profile) })
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
    if let Some(key_file) = &args.sign {
        use p256::pkcs8::DecodePrivateKey as _;
        let pem = std::fs::read_to_string(key_file)
            .with_context(|| format!("cannot read the signing key {}", key_file.display()))?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).with_context(|| {
            format!(
                "{} is not a P-256 private key in PKCS#8 PEM (make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)",
                key_file.display()
            )
        })?;
        let signature = lamina_runtime::signing::sign(&artifact, &key).context("cannot sign the artifact")?;
        let sig_path = signature_path(&args.output);
        std::fs::write(&sig_path, signature).with_context(|| format!("cannot write {}", sig_path.display()))?;
        eprintln!(
            "lamina: signed it with key {} into {}",
            lamina_runtime::signing::key_id(key.verifying_key()),
            sig_path.display()
        );
    }
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

/// Where an artifact's detached signature lives: beside it, with `.sig` appended.
pub(crate) fn signature_path(artifact: &std::path::Path) -> std::path::PathBuf {
    with_suffix(artifact, ".sig")
}

/// A path with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Reads a trusted signer's public key (P-256, PEM).
pub(crate) fn read_public_key(path: &std::path::Path) -> anyhow::Result<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey as _;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the trusted signer key {}", path.display()))?;
    p256::ecdsa::VerifyingKey::from_public_key_pem(&pem)
        .with_context(|| format!("{} is not a P-256 public key in PEM", path.display()))
}
