//! The description of the machine and the software a run measured, written with its results.

use std::process::Command;

use serde::{Deserialize, Serialize};

/// What a reader needs to compare a run with theirs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub(crate) cpu: String,
    /// Cores this process may use.
    pub(crate) cores: usize,
    /// Total memory in MiB.
    pub(crate) memory_mib: u64,
    /// The operating system (`PRETTY_NAME` of /etc/os-release).
    pub(crate) os: String,
    /// The kernel release.
    pub(crate) kernel: String,
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// The first line of `clang --version` (the compiler of the compute suite, both sides).
    pub(crate) clang: String,
    /// `lamina --version` of the measured build.
    pub(crate) lamina: String,
    /// `wasmtime --version` of the command-line tool compared with, when installed.
    pub(crate) wasmtime_cli: Option<String>,
    /// The commit measured, with `-dirty` when the tree had changes.
    pub(crate) commit: String,
}

impl Machine {
    /// Reads the description; a part that cannot be read is `unknown`, never an error.
    pub(crate) fn describe(lamina: &str, wasmtime: Option<&str>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let dirty = output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        Self {
            cpu: field(&cpuinfo, "model name", ':').unwrap_or_else(unknown),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_mib: field(&meminfo, "MemTotal", ':')
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            os: field(&os_release, "PRETTY_NAME", '=').map_or_else(unknown, |v| v.trim_matches('"').to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| unknown(), |s| s.trim().to_owned()),
            rustc: output("rustc", &["--version"]).unwrap_or_else(unknown),
            clang: output("clang", &["--version"])
                .and_then(|s| s.lines().next().map(str::to_owned))
                .unwrap_or_else(unknown),
            lamina: output(lamina, &["--version"]).unwrap_or_else(unknown),
            wasmtime_cli: wasmtime.and_then(|w| output(w, &["--version"])),
            commit: output("git", &["rev-parse", "--short=12", "HEAD"])
                .map_or_else(unknown, |c| if dirty { format!("{c}-dirty") } else { c }),
        }
    }

    /// One line for the report.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} ({} cores available), {:.0} GiB, {}, Linux {}; {}; {}; {}",
            self.cpu,
            self.cores,
            self.memory_mib as f64 / 1024.0,
            self.os,
            self.kernel,
            self.rustc,
            self.clang,
            self.lamina
        )
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// The value of the first `key<sep>value` line.
fn field(text: &str, key: &str, sep: char) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(sep)?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The trimmed standard output of a command that succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_proc_style_text() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: fpu\n";
        assert_eq!(field(text, "model name", ':').as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(field("PRETTY_NAME=\"Debian 13\"\n", "PRETTY_NAME", '=').as_deref(), Some("\"Debian 13\""));
        assert_eq!(field(text, "missing", ':'), None);
    }

    #[test]
    fn this_machine_is_described_without_failing() {
        let m = Machine::describe("/nonexistent/lamina", None);
        assert!(m.cores >= 1);
        assert_eq!(m.lamina, "unknown");
        assert!(m.summary().contains("cores"));
    }
}
