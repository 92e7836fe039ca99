//! The benchmarks of the other parts of Lamina, each run as its own command; each writes a
//! [`Record`] into the directory the harness names (see `lamina-bench-record`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use lamina_bench_record::{QUICK_ENV, RECORDS_ENV, Record};
use serde::{Deserialize, Serialize};

use crate::process::{Argv, run_logged};

/// One benchmark of another part.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Suite {
    /// The record's suite name.
    pub(crate) name: &'static str,
    /// What it measures, for `--help` and the progress line.
    pub(crate) what: &'static str,
    /// How it runs: `cargo bench` of a package's bench target, or a script under `bench/`.
    pub(crate) how: How,
    /// Environment for a full run (a quick run leaves these out and sets the quick flag).
    pub(crate) full_env: &'static [(&'static str, &'static str)],
}

/// How a suite runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum How {
    /// `cargo bench --workspace --bench BENCH`: the bench target of that name in whichever
    /// crate has it. The whole workspace is selected so that the dependencies are built with
    /// the features the test suite's build unified (`-p CRATE` alone resolves them anew, and a
    /// quick run on the test suite's build would compile much of it again).
    Cargo { bench: &'static str },
    /// `bash bench/SCRIPT`.
    Script(&'static str),
}

/// Every suite, in the order they run.
pub(crate) const SUITES: [Suite; 10] = [
    Suite {
        name: "instantiate",
        what: "instantiate-and-call of a precompiled module",
        how: How::Cargo { bench: "instantiate" },
        full_env: &[],
    },
    Suite {
        name: "attestation",
        what: "attestation and attested TLS",
        how: How::Cargo { bench: "verify" },
        full_env: &[],
    },
    Suite {
        name: "sealed-volume",
        what: "sealed storage throughput",
        how: How::Cargo { bench: "volume" },
        full_env: &[],
    },
    Suite {
        name: "sealed-sqlite",
        what: "SQLite on sealed storage",
        how: How::Script("sealed-sqlite.sh"),
        full_env: &[("ROUNDS", "15")],
    },
    Suite {
        name: "sealed-messaging",
        what: "sealed messaging across two nodes",
        how: How::Cargo { bench: "sealed" },
        full_env: &[],
    },
    Suite {
        name: "deploy-latency",
        what: "deploy over a shaped edge link",
        how: How::Script("deploy-latency.sh"),
        full_env: &[("ROUNDS", "12")],
    },
    Suite {
        name: "node-footprint",
        what: "node agent footprint",
        how: How::Script("node-footprint.sh"),
        full_env: &[],
    },
    Suite {
        name: "control-scale",
        what: "one control plane at scale",
        how: How::Cargo { bench: "scale" },
        full_env: &[("NODES", "100 300 1000"), ("STEADY", "20")],
    },
    Suite {
        name: "http-serve",
        what: "lamina serve against wasmtime serve, attested HTTPS, memory in flight",
        how: How::Cargo { bench: "serve" },
        full_env: &[],
    },
    Suite {
        name: "etcd-auth",
        what: "etcd saves over TLS with client certificates against plain HTTP",
        how: How::Cargo { bench: "etcd_auth" },
        full_env: &[],
    },
];

/// A suite that did not produce its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub(crate) suite: String,
    pub(crate) command: String,
    pub(crate) error: String,
    /// Its output.
    pub(crate) log: String,
}

/// A suite may run at most this long.
const LIMIT: Duration = Duration::from_secs(3600);

/// Runs one suite; its record lands in `records`, its output in `logs/<name>.log`.
///
/// `cargo_profile` is the profile `cargo bench` builds with (`bench`, or `dev` to share the
/// test suite's build in a quick run); scripts get it as `LAMINA_BENCH_CARGO_PROFILE`.
pub(crate) fn run(
    suite: &Suite,
    quick: bool,
    cargo_profile: &str,
    records: &Path,
    logs: &Path,
    criterion: &Path,
) -> anyhow::Result<Result<Record, Failure>> {
    let argv = match suite.how {
        How::Cargo { bench } => {
            Argv::new("cargo", &["bench", "--profile", cargo_profile, "--workspace", "--bench", bench])
        }
        How::Script(script) => Argv::new("bash", &[&format!("bench/{script}")]),
    };
    std::fs::create_dir_all(logs).context("log directory")?;
    std::fs::create_dir_all(records).context("records directory")?;
    // Cargo runs a bench in its package's directory: the benchmark gets absolute paths.
    let records = &std::path::absolute(records).context("records directory")?;
    let criterion = &std::path::absolute(criterion).context("criterion directory")?;
    let mut env: Vec<(String, String)> = vec![
        (RECORDS_ENV.to_owned(), records.display().to_string()),
        ("CRITERION_HOME".to_owned(), criterion.display().to_string()),
        ("LAMINA_BENCH_CARGO_PROFILE".to_owned(), cargo_profile.to_owned()),
    ];
    if quick {
        env.push((QUICK_ENV.to_owned(), "1".to_owned()));
    } else {
        env.extend(
            suite
                .full_env
                .iter()
                .filter(|(k, _)| std::env::var_os(k).is_none())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }
    let log = logs.join(format!("{}.log", suite.name));
    let record_path = records.join(format!("{}.json", suite.name));
    let _ = std::fs::remove_file(&record_path);
    let shown_env: String = env
        .iter()
        .filter(|(k, _)| suite.full_env.iter().any(|(f, _)| f == k) || k == QUICK_ENV)
        .map(|(k, v)| format!("{k}={} ", if v.contains(' ') { format!("\"{v}\"") } else { v.clone() }))
        .collect();
    let command = format!("{shown_env}{}", argv.shown());
    let failure = |error: String| Failure {
        suite: suite.name.to_owned(),
        command: command.clone(),
        error,
        log: log.display().to_string(),
    };
    let status = run_logged(&argv, &env, &log, LIMIT)?;
    match status {
        None => return Ok(Err(failure(format!("did not finish within {}", humantime::format_duration(LIMIT))))),
        Some(s) if !s.success() => return Ok(Err(failure(format!("exited with {s}; see its log")))),
        Some(_) => {}
    }
    match Record::read(&record_path) {
        Ok(record) => Ok(Ok(record)),
        Err(e) => Ok(Err(failure(format!("finished without a record: {e}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo bench --workspace --bench NAME` must find one bench target, not several.
    #[test]
    fn cargo_bench_names_are_unique_in_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for suite in &SUITES {
            let How::Cargo { bench } = suite.how else { continue };
            let found: Vec<_> = std::fs::read_dir(root.join("crates"))
                .expect("crates/")
                .flatten()
                .filter(|c| c.path().join("benches").join(format!("{bench}.rs")).is_file())
                .map(|c| c.file_name())
                .collect();
            assert_eq!(found.len(), 1, "bench `{bench}` is in {found:?}");
        }
    }
}
