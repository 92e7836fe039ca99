//! Monotonic counters: what lets sealed state detect a rollback to an older copy.
//!
//! Encryption proves a sealed file was written by the right workload, not that it is the latest
//! one. A counter that only goes up, kept where the host cannot rewind it, closes that gap: the
//! sealed state records the counter value of its last commit, and an older copy carries an
//! older value. How strong the guarantee is depends on who keeps the counter: a TPM NV counter
//! survives anything short of the TPM's owner clearing it; the `sim` counter is a file in the
//! state directory, so whoever can replace that directory can rewind it.

use crate::TeeError;

/// Names one counter of a platform, as recorded in sealed state: opaque bytes the platform
/// gave out when the counter was created (a TPM NV index, a file name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterId(pub Vec<u8>);

/// A counter that can be read and incremented, never decreased.
pub trait MonotonicCounter: Send {
    /// The current value.
    ///
    /// # Errors
    /// When the counter cannot be reached.
    fn read(&mut self) -> Result<u64, TeeError>;

    /// Advances the counter to at least `value` (one step at a time where the platform only
    /// increments) and returns the new value. Never lowers it.
    ///
    /// # Errors
    /// When the counter cannot be reached or written.
    fn advance_to(&mut self, value: u64) -> Result<u64, TeeError>;

    /// One line for people: where the counter lives and how strong it is.
    fn describe(&self) -> String;
}
