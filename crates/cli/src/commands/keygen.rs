//! `lamina keygen`: a P-256 key pair for signing artifacts (`lamina compile --sign KEY`) and
//! trusting them (`lamina run --trust-signer KEY.pub`).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

use crate::cli::KeygenArgs;

pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let public = crate::commands::compile::with_suffix(&args.key, ".pub");
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).context("cannot encode the private key")?;
    let public_pem = key.public_key().to_public_key_pem(LineEnding::LF).context("cannot encode the public key")?;
    write_new(&public, public_pem.as_bytes(), 0o644)?;
    write_new(&args.key, private_pem.as_bytes(), 0o600)?;
    let verifying = p256::ecdsa::VerifyingKey::from(key.public_key());
    eprintln!(
        "lamina: key {} into {} (private, keep it secret) and {} (public, for --trust-signer)",
        lamina_runtime::signing::key_id(&verifying),
        args.key.display(),
        public.display()
    );
    Ok(())
}

/// Writes a file that must not exist yet (a key is never overwritten).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {} (an existing key is never overwritten)", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}
