//! One module per subcommand.

mod compile;
mod inspect;
mod run;

use crate::cli::{Cli, Command};

/// Runs a parsed command line; returns the process exit code.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.verbose),
        Command::Compile(args) => compile::compile(args).map(|()| 0),
        Command::Inspect(args) => inspect::inspect(args).map(|()| 0),
    }
}
