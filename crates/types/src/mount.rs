//! Directory mounts as users write them: `HOST[::GUEST][:ro]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A host directory made visible to a guest (a WASI preopen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirMount {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the guest sees it at.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// A mount specification that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a directory mount: {reason} (write HOST, HOST::GUEST or HOST::GUEST:ro)")]
pub struct ParseMountError {
    input: String,
    reason: &'static str,
}

impl FromStr for DirMount {
    type Err = ParseMountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseMountError { input: s.chars().take(200).collect(), reason };
        let (spec, read_only) = match s.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (s.strip_suffix(":rw").unwrap_or(s), false),
        };
        let (host, guest) = match spec.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (spec, spec),
        };
        if host.is_empty() {
            return Err(err("the host path is empty"));
        }
        if guest.is_empty() {
            return Err(err("the guest path is empty"));
        }
        if guest.contains("::") {
            return Err(err("it has more than one `::`"));
        }
        Ok(DirMount { host: PathBuf::from(host), guest: guest.to_owned(), read_only })
    }
}

impl fmt::Display for DirMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.host.display(), self.guest)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        let m: DirMount = "/tmp/data".parse().expect("plain host path");
        assert_eq!((m.host.to_str(), m.guest.as_str(), m.read_only), (Some("/tmp/data"), "/tmp/data", false));
        let m: DirMount = "./data::/data:ro".parse().expect("host, guest, ro");
        assert_eq!((m.host.to_str(), m.guest.as_str(), m.read_only), (Some("./data"), "/data", true));
        let m: DirMount = "./data::/:rw".parse().expect("explicit rw");
        assert_eq!((m.guest.as_str(), m.read_only), ("/", false));
        let m: DirMount = ".".parse().expect("dot");
        assert_eq!(m.guest, ".");
    }

    #[test]
    fn rejects_empty_parts() {
        assert!("".parse::<DirMount>().is_err());
        assert!("::/data".parse::<DirMount>().is_err());
        assert!("/tmp::".parse::<DirMount>().is_err());
        assert!("/a::/b::/c".parse::<DirMount>().is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = s.parse::<DirMount>();
        }
    }
}
