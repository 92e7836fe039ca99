//! `lamina secret`: sets, lists and deletes the control plane's secrets.

use anyhow::Context as _;

use super::control_client::client;
use crate::cli::SecretCommand;

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
