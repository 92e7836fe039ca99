//! The machine targets Lamina compiles ahead of time for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A native target an artifact can be compiled for.
///
/// These are the architectures of the continuum that Lamina supports: cloud servers (x86_64),
/// ARM boards and servers (aarch64) and RISC-V boards (riscv64gc), all on Linux.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Target {
    /// `x86_64-unknown-linux-gnu`
    #[serde(rename = "x86_64-unknown-linux-gnu")]
    X86_64Linux,
    /// `aarch64-unknown-linux-gnu`
    #[serde(rename = "aarch64-unknown-linux-gnu")]
    Aarch64Linux,
    /// `riscv64gc-unknown-linux-gnu`
    #[serde(rename = "riscv64gc-unknown-linux-gnu")]
    Riscv64Linux,
    /// `pulley64`: the portable bytecode of wasmtime's interpreter, Pulley, for devices without a
    /// compiler backend. Any Lamina build runs it, on any machine, at interpreter speed.
    #[serde(rename = "pulley64")]
    Pulley64,
}

impl Target {
    /// Every supported target.
    pub const ALL: [Target; 4] = [Target::X86_64Linux, Target::Aarch64Linux, Target::Riscv64Linux, Target::Pulley64];

    /// The target triple, as `rustc` and Cranelift spell it.
    pub const fn triple(self) -> &'static str {
        match self {
            Target::X86_64Linux => "x86_64-unknown-linux-gnu",
            Target::Aarch64Linux => "aarch64-unknown-linux-gnu",
            Target::Riscv64Linux => "riscv64gc-unknown-linux-gnu",
            Target::Pulley64 => "pulley64",
        }
    }

    /// The architecture part of the triple (`x86_64`, `aarch64`, `riscv64`).
    pub const fn arch(self) -> &'static str {
        match self {
            Target::X86_64Linux => "x86_64",
            Target::Aarch64Linux => "aarch64",
            Target::Riscv64Linux => "riscv64",
            Target::Pulley64 => "pulley64",
        }
    }

    /// Whether code for this target runs in wasmtime's interpreter (Pulley) rather than on a CPU.
    pub const fn is_interpreted(self) -> bool {
        matches!(self, Target::Pulley64)
    }

    /// Whether code for this target runs on this machine: the host's own target, or the
    /// interpreter's, which runs everywhere.
    pub fn runs_here(self) -> bool {
        self.is_interpreted() || Some(self) == Target::host()
    }

    /// The target this process runs on, if Lamina supports it.
    pub fn host() -> Option<Target> {
        match (std::env::consts::ARCH, std::env::consts::OS) {
            ("x86_64", "linux") => Some(Target::X86_64Linux),
            ("aarch64", "linux") => Some(Target::Aarch64Linux),
            ("riscv64", "linux") => Some(Target::Riscv64Linux),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.triple())
    }
}

/// A target triple Lamina does not compile for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported target `{input}`: use x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu or pulley64 (the interpreter)"
)]
pub struct ParseTargetError {
    input: String,
}

impl FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Target::ALL
            .into_iter()
            .find(|target| target.triple() == t || target.arch() == t)
            .or(match t {
                "riscv64-unknown-linux-gnu" => Some(Target::Riscv64Linux),
                _ => None,
            })
            .ok_or_else(|| ParseTargetError { input: s.chars().take(80).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_round_trip() {
        for t in Target::ALL {
            assert_eq!(t.triple().parse::<Target>(), Ok(t));
            assert_eq!(t.arch().parse::<Target>(), Ok(t));
        }
    }

    #[test]
    fn rejects_unknown_targets() {
        let e = "mips-unknown-linux-gnu".parse::<Target>().expect_err("mips is unsupported");
        assert!(e.to_string().contains("aarch64-unknown-linux-gnu"));
    }

    #[test]
    fn host_is_supported_here() {
        assert!(Target::host().is_some(), "tests run on a supported Linux host");
    }

    #[test]
    fn the_interpreter_runs_everywhere_and_other_machines_code_does_not() {
        assert!(Target::Pulley64.runs_here() && Target::Pulley64.is_interpreted());
        for t in Target::ALL {
            assert_eq!(t.runs_here(), t.is_interpreted() || Some(t) == Target::host(), "{t}");
        }
        assert_eq!(Target::ALL.iter().filter(|t| t.runs_here()).count(), 2);
    }
}
