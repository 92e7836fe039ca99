//! How the continuum's commands find the control plane: `--control`, `--fingerprint` and
//! `--admin-token`, or the files a local `lamina control` keeps in its state directory.

use std::path::PathBuf;

use anyhow::Context as _;
use lamina_wire::ControlClient;

use crate::cli::ControlClientArgs;

pub(super) fn default_state(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d.clone()),
        None => dirs::state_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/state")))
            .map(|d| d.join("lamina/control"))
            .context("no state directory: pass --state DIR"),
    }
}

/// A client of the control plane named by the arguments, or the local one.
pub(super) fn client(args: &ControlClientArgs, admin: bool) -> anyhow::Result<ControlClient> {
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
