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
}

impl Target {
    /// Every supported target.
    pub const ALL: [Target; 3] = [Target::X86_64Linux, Target::Aarch64Linux, Target::Riscv64Linux];

    /// The target triple, as `rustc` and Cranelift spell it.
    pub const fn triple(self) -> &'static str {
        match self {
            Target::X86_64Linux => "x86_64-unknown-linux-gnu",
            Target::Aarch64Linux => "aarch64-unknown-linux-gnu",
            Target::Riscv64Linux => "riscv64gc-unknown-linux-gnu",
        }
    }

    /// The architecture part of the triple (`x86_64`, `aarch64`, `riscv64`).
    pub const fn arch(self) -> &'static str {
        match self {
            Target::X86_64Linux => "x86_64",
            Target::Aarch64Linux => "aarch64",
            Target::Riscv64Linux => "riscv64",
        }
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
    "unsupported target `{input}`: use x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu or riscv64gc-unknown-linux-gnu"
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
}
