//! Device profiles: how much address space and how many pooled slots an engine may take.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of device a node is, which decides how the engine reserves memory.
///
/// Fast Wasm sandboxes reserve large virtual regions per linear memory (4 GiB plus guards) so
/// that bounds checks vanish; that is right for a server and impossible on a small board with a
/// 39-bit address space and 512 MB of RAM. The profile picks the trade-off.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A 64-bit server: pooled instances, 4 GiB reservations with 2 GiB guards, no bounds checks.
    #[default]
    Server,
    /// An edge gateway: a smaller pool and reservations; bounds checks above 1 GiB.
    Edge,
    /// A small board (512 MB RAM, 39-bit address space): no pool, no large reservations.
    Tiny,
}

impl Profile {
    /// Every profile, largest first.
    pub const ALL: [Profile; 3] = [Profile::Server, Profile::Edge, Profile::Tiny];

    /// The profile's name as the CLI spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::Server => "server",
            Profile::Edge => "edge",
            Profile::Tiny => "tiny",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not `server`, `edge` or `tiny`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile `{input}`: use server, edge or tiny")]
pub struct ParseProfileError {
    input: String,
}

impl FromStr for Profile {
    type Err = ParseProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| ParseProfileError { input: s.chars().take(80).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        assert!("huge".parse::<Profile>().is_err());
    }
}
