//! One module per subcommand.

mod appraiser;
mod attest;
mod compile;
#[cfg(feature = "node")]
mod continuum;
mod inspect;
mod keygen;
mod platform;
mod run;
mod serve;
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
        Command::Control(args) => continuum::control(args),
        #[cfg(feature = "node")]
        Command::Token { command } => continuum::token(command),
        #[cfg(feature = "node")]
        Command::Deploy(args) => continuum::deploy(args),
        #[cfg(feature = "node")]
        Command::Undeploy(args) => continuum::undeploy(args),
        #[cfg(feature = "node")]
        Command::RemoveNode(args) => continuum::remove_node(args),
        #[cfg(feature = "node")]
        Command::Status(args) => continuum::status(args),
        #[cfg(feature = "node")]
        Command::Logs(args) => continuum::logs(args),
        #[cfg(feature = "node")]
        Command::Secret { command } => continuum::secret(command),
        #[cfg(feature = "node")]
        Command::Node(args) => continuum::node(args),
    }
}
