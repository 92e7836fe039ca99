//! Lamina's own exit codes. A guest's exit code passes through unchanged; these are used when
//! the guest did not exit by itself.

/// The guest was killed by `--timeout` or `--fuel` (as `timeout(1)` does).
pub(crate) const KILLED: i32 = 124;
/// Lamina could not load or start the guest (bad file, bad option, missing directory…).
pub(crate) const FAILURE: i32 = 125;
/// The guest trapped: unreachable, out of bounds, out of memory, stack overflow.
pub(crate) const TRAPPED: i32 = 134;
/// The command line is malformed or lacks what the command needs (as clap exits).
#[cfg(feature = "control")]
pub(crate) const USAGE: i32 = 2;
/// A long-running command (`lamina node`) did not finish stopping within its bound after
/// SIGTERM or Ctrl-C and exited anyway (128 + SIGTERM, as a shell reports it).
#[cfg(feature = "node")]
pub(crate) const SIGNALLED: i32 = 143;
