//! `lamina token create`: a join token for a new node.

use std::time::Duration;

use super::control_client::client;
use crate::cli::TokenCommand;

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
