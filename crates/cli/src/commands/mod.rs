//! One module per subcommand.

mod appraiser;
mod attest;
mod compile;
#[cfg(feature = "control")]
mod control;
#[cfg(feature = "node")]
mod control_client;
#[cfg(feature = "node")]
mod deploy;
mod inspect;
mod keygen;
#[cfg(feature = "node")]
mod logs;
#[cfg(feature = "node")]
mod node;
mod platform;
#[cfg(feature = "node")]
mod remove_node;
mod run;
#[cfg(feature = "node")]
mod secret;
mod serve;
#[cfg(feature = "node")]
mod status;
#[cfg(feature = "node")]
mod token;
#[cfg(feature = "node")]
mod undeploy;
#[cfg(feature = "verify")]
mod verify;

use crate::cli::{Cli, Command};

/// Runs a parsed command line; returns the process exit code.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(*args, cli.verbose),
        Command::Serve(args) => serve::serve(*args),
        Command::Compile(args) => compile::compile(args).map(|()| 0),
        Command::Inspect(args) => inspect::inspect(args).map(|()| 0),
        Command::Keygen(args) => keygen::keygen(&args).map(|()| 0),
        Command::Attest(args) => attest::attest(args),
        #[cfg(feature = "verify")]
        Command::Verify(args) => Ok(verify::verify(args)),
        #[cfg(feature = "control")]
        Command::Control(args) => control::control(args),
        #[cfg(feature = "node")]
        Command::Token { command } => token::token(command),
        #[cfg(feature = "node")]
        Command::Deploy(args) => deploy::deploy(args),
        #[cfg(feature = "node")]
        Command::Undeploy(args) => undeploy::undeploy(args),
        #[cfg(feature = "node")]
        Command::RemoveNode(args) => remove_node::remove_node(args),
        #[cfg(feature = "node")]
        Command::Status(args) => status::status(args),
        #[cfg(feature = "node")]
        Command::Logs(args) => logs::logs(args),
        #[cfg(feature = "node")]
        Command::Secret { command } => secret::secret(command),
        #[cfg(feature = "node")]
        Command::Node(args) => node::node(*args),
    }
}
