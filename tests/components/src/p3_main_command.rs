//! A WASI 0.3 command built as a Rust program with a `main`, as the WASI test suite builds
//! its 0.3 tests: the component exports `wasi:cli/run@0.3` and, from the standard library,
//! `wasi:cli/run@0.2`, whose `main` is a stub. Its 0.3 entry point prints a line and exits
//! with the code its first argument names (`exit:N`).

use wasip3::cli::{environment, stdout};
use wasip3::wit_stream;

wasip3::cli::command::export!(Command);

struct Command;

impl wasip3::exports::cli::run::Guest for Command {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let (mut tx, rx) = wit_stream::new();
        futures::join!(async { stdout::write_via_stream(rx).await.expect("stdout") }, async {
            tx.write_all(format!("the WASI 0.3 entry point ran: {}\n", args.join(" ")).into_bytes()).await;
            drop(tx);
        });
        if let Some(code) = args.iter().find_map(|a| a.strip_prefix("exit:")) {
            wasip3::cli::exit::exit_with_code(code.parse().unwrap_or(1));
        }
        Ok(())
    }
}

fn main() {
    unreachable!("the WASI 0.2 entry point ran: a WASI 0.3 runtime calls wasi:cli/run@0.3")
}
