//! The `lamina` command: parses arguments, calls the libraries, prints, and exits with a code
//! that scripts can rely on (see `docs/cli.md`).

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod exit;

use clap::Parser as _;

fn main() {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lamina: error: {e:#}");
            exit::FAILURE
        }
    };
    std::process::exit(code);
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAMINA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "lamina={default},lamina_runtime={default},lamina_seal={default},lamina_host_fs={default}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
