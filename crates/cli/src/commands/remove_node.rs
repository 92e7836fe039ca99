//! `lamina remove-node`: takes a node out of the continuum; its credentials stop working.

use anyhow::Context as _;

use super::control_client::client;
use crate::cli::RemoveNodeArgs;

pub(crate) fn remove_node(args: RemoveNodeArgs) -> anyhow::Result<i32> {
    client(&args.control, true)?
        .remove_node(&args.name)
        .with_context(|| format!("cannot remove the node {}", args.name))?;
    println!("removed node {}: its credentials no longer work; its instances move to other nodes", args.name);
    Ok(0)
}
