//! Running the measured programs: a bounded wait, and their output kept for the error message.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A command line: the program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Argv(pub(crate) Vec<String>);

impl Argv {
    /// A command line of a program and arguments.
    pub(crate) fn new(program: impl AsRef<Path>, args: &[&str]) -> Self {
        let mut v = vec![program.as_ref().display().to_string()];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        Self(v)
    }

    /// Adds a path argument.
    pub(crate) fn path(mut self, p: &Path) -> Self {
        self.0.push(p.display().to_string());
        self
    }

    /// Adds arguments.
    pub(crate) fn args(mut self, args: &[&str]) -> Self {
        self.0.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// The command as a reader would type it.
    pub(crate) fn shown(&self) -> String {
        self.0.join(" ")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.0[0]);
        c.args(&self.0[1..]);
        c
    }
}

/// The artifact signing key pair the harness makes in its scratch space (`lamina keygen`):
/// `lamina run` runs an artifact only when a trusted key signed it, as a node does.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    key: PathBuf,
    public: PathBuf,
}

impl Signer {
    /// The key pair in `dir`, made by `lamina` if it is not there yet.
    pub(crate) fn in_dir(lamina: &Path, dir: &Path) -> anyhow::Result<Self> {
        let key = dir.join("artifact-signer.key");
        let public = dir.join("artifact-signer.key.pub");
        if !(key.is_file() && public.is_file()) {
            let _ = std::fs::remove_file(&key);
            let _ = std::fs::remove_file(&public);
            run_bounded(&Argv::new(lamina, &["keygen"]).path(&key), Duration::from_secs(10))?;
        }
        Ok(Self { key, public })
    }

    /// `lamina compile --sign KEY`.
    pub(crate) fn compile(&self, lamina: &Path) -> Argv {
        Argv::new(lamina, &["compile", "--sign"]).path(&self.key)
    }

    /// `BINARY run --trust-signer PUB` (the full or the runtime-only build).
    pub(crate) fn run(&self, binary: &Path) -> Argv {
        Argv::new(binary, &["run", "--trust-signer"]).path(&self.public)
    }
}

/// Runs a command to completion within `limit`, returning its standard output; a failure or a
/// timeout is an error that quotes its standard error.
pub(crate) fn run_bounded(argv: &Argv, limit: Duration) -> anyhow::Result<String> {
    let mut child = argv
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", argv.shown()))?;
    // Read both pipes on threads so a chatty program cannot block on a full pipe.
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_until(&mut child, Instant::now() + limit)?;
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        None => bail!("`{}` did not finish within {}", argv.shown(), humantime::format_duration(limit)),
        Some(s) if !s.success() => bail!("`{}` failed ({s}): {}", argv.shown(), tail(&stderr)),
        Some(_) => Ok(stdout),
    }
}

/// The wall time from spawning a command to its exit, output discarded. It must exit 0.
pub(crate) fn time_to_exit(argv: &Argv) -> anyhow::Result<Duration> {
    let mut command = argv.command();
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let status = command.status().with_context(|| format!("cannot start `{}`", argv.shown()))?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("`{}` failed ({status}); run it by hand to see why", argv.shown());
    }
    Ok(elapsed)
}

/// Runs a command with its output going to a log file, extra environment variables, within
/// `limit`. Returns the exit status, or `None` when it was stopped at the limit.
pub(crate) fn run_logged(
    argv: &Argv,
    env: &[(String, String)],
    log: &Path,
    limit: Duration,
) -> anyhow::Result<Option<ExitStatus>> {
    let file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = file.try_clone().context("log file")?;
    let mut command = argv.command();
    command.stdin(Stdio::null()).stdout(file).stderr(err);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().with_context(|| format!("cannot start `{}`", argv.shown()))?;
    wait_until(&mut child, Instant::now() + limit)
}

fn wait_until(child: &mut std::process::Child, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last lines of a program's error output, for a one-line message.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let t = lines[start..].join(" / ");
    if t.is_empty() { "no error output".to_owned() } else { t }
}

/// An existing executable file, or an error that says what builds it.
pub(crate) fn existing(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        bail!("{what} is missing at {} (bench/run.sh builds it)", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_failures_and_timeouts() {
        let ok = run_bounded(&Argv::new("sh", &["-c", "echo hi; echo warn >&2"]), Duration::from_secs(10));
        assert_eq!(ok.expect("runs").trim(), "hi");
        let failed = run_bounded(&Argv::new("sh", &["-c", "echo boom >&2; exit 3"]), Duration::from_secs(10))
            .expect_err("exit 3");
        assert!(failed.to_string().contains("boom"), "{failed}");
        let slow = run_bounded(&Argv::new("sleep", &["5"]), Duration::from_millis(100)).expect_err("too slow");
        assert!(slow.to_string().contains("did not finish"), "{slow}");
        assert!(time_to_exit(&Argv::new("true", &[])).is_ok());
        assert!(time_to_exit(&Argv::new("false", &[])).is_err());
    }
}
