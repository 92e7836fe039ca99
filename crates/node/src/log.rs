//! An instance's output log, bounded: at most [`LogLimits::max_file`] bytes in
//! `<state>/logs/<workload>-<replica>.log`, rotated once to `….log.1` when full (so at most
//! twice that on disk per instance), and at most [`LogLimits::rate`] bytes a second on average
//! (with a burst of [`LogLimits::burst`]). What a guest writes beyond its rate is dropped, with
//! a line in the log that says how much, and counted in the node's metrics; a write the disk
//! refuses (full, or the file gone) is dropped and counted the same way. The guest never waits
//! on its log and never fails because of it, and other instances' logs are not touched.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use lamina_metrics::prometheus_client::metrics::counter::Counter;

/// The bounds of an instance's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// The largest a log file grows before it is rotated, in bytes.
    pub max_file: u64,
    /// The bytes a second an instance may write on average.
    pub rate: u64,
    /// The bytes an instance may write at once above its rate.
    pub burst: u64,
}

impl Default for LogLimits {
    /// 8 MiB a file (16 MiB on disk with the rotated one), 1 MiB/s, bursts of 4 MiB.
    fn default() -> Self {
        LogLimits { max_file: 8 << 20, rate: 1 << 20, burst: 4 << 20 }
    }
}

/// What a node counts of its instances' logs.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogCounters {
    /// Bytes written to logs.
    pub(crate) written: Counter,
    /// Bytes dropped: over an instance's rate, or refused by the disk.
    pub(crate) dropped: Counter,
    /// Log files rotated.
    pub(crate) rotations: Counter,
}

struct State {
    file: Option<std::fs::File>,
    len: u64,
    tokens: f64,
    at: Instant,
    /// Bytes dropped since the last line that said so.
    dropped: u64,
    /// After a write the disk refused: until when writes are dropped without trying the disk
    /// again (a broken log costs no system call per guest write).
    broken_until: Option<Instant>,
}

/// How long a log that the disk refused is left alone before it is tried again.
const RETRY_BROKEN: std::time::Duration = std::time::Duration::from_secs(1);

/// One instance's log (see the module's documentation).
pub(crate) struct InstanceLog {
    path: PathBuf,
    limits: LogLimits,
    counters: LogCounters,
    state: Mutex<State>,
}

impl InstanceLog {
    /// The log at `path`, appended to.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub(crate) fn open(path: &Path, limits: LogLimits, counters: LogCounters) -> std::io::Result<Arc<Self>> {
        let file = append(path)?;
        let len = file.metadata()?.len();
        Ok(Arc::new(InstanceLog {
            path: path.to_owned(),
            limits,
            counters,
            state: Mutex::new(State {
                file: Some(file),
                len,
                tokens: limits.burst as f64,
                at: Instant::now(),
                dropped: 0,
                broken_until: None,
            }),
        }))
    }

    /// The rotated copy of `path`.
    pub(crate) fn rotated(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// Writes `bytes`, rotating first if they would take the file over its size.
    fn put(&self, s: &mut State, bytes: &[u8]) -> std::io::Result<()> {
        if s.len > 0 && s.len + bytes.len() as u64 > self.limits.max_file {
            s.file = None;
            std::fs::rename(&self.path, Self::rotated(&self.path))?;
            s.len = 0;
            self.counters.rotations.inc();
            s.file = Some(append(&self.path)?);
        }
        let file = match &mut s.file {
            Some(f) => f,
            None => s.file.insert(append(&self.path)?),
        };
        file.write_all(bytes)?;
        s.len += bytes.len() as u64;
        self.counters.written.inc_by(bytes.len() as u64);
        Ok(())
    }

    fn drop_bytes(&self, s: &mut State, n: u64) {
        s.dropped += n;
        self.counters.dropped.inc_by(n);
    }
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

impl lamina_runtime::GuestOutput for InstanceLog {
    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if s.broken_until.is_some_and(|until| now < until) {
            self.drop_bytes(&mut s, bytes.len() as u64);
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.limits.rate as f64).min(self.limits.burst as f64);
        s.at = now;
        // A write larger than the whole burst could never pass: it is cut to the burst.
        let n = bytes.len().min(usize::try_from(self.limits.burst).unwrap_or(usize::MAX));
        if (n as f64) > s.tokens {
            self.drop_bytes(&mut s, bytes.len() as u64);
            return Ok(());
        }
        s.tokens -= n as f64;
        // After a drop, the note and the output that follows it go in one write, so that a
        // rotation never puts them in different files (the note would be in the old one).
        let noted;
        let out = if s.dropped > 0 {
            let mut both = format!(
                "[lamina: {} bytes of this instance's output were dropped (over {} bytes/s, or the disk refused them)]\n",
                s.dropped, self.limits.rate
            )
            .into_bytes();
            both.extend_from_slice(&bytes[..n]);
            noted = both;
            &noted[..]
        } else {
            &bytes[..n]
        };
        match self.put(&mut s, out) {
            Ok(()) => {
                s.dropped = 0;
                s.broken_until = None;
            }
            Err(e) => {
                tracing::debug!("{}: output dropped: {e}", self.path.display());
                self.drop_bytes(&mut s, n as u64);
                s.broken_until = Some(now + RETRY_BROKEN);
            }
        }
        let cut = (bytes.len() - n) as u64;
        if cut > 0 {
            self.drop_bytes(&mut s, cut);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use lamina_runtime::GuestOutput as _;

    use super::*;

    fn log(dir: &Path, limits: LogLimits) -> (Arc<InstanceLog>, LogCounters, PathBuf) {
        let path = dir.join("w-0.log");
        let counters = LogCounters::default();
        (InstanceLog::open(&path, limits, counters.clone()).expect("opens"), counters, path)
    }

    #[test]
    fn a_flooding_guest_is_held_to_its_rate_and_its_files_to_their_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = LogLimits { max_file: 64 << 10, rate: 1 << 10, burst: 256 << 10 };
        let (log, counters, path) = log(dir.path(), limits);
        let line = vec![b'x'; 4096];
        // 64 MiB offered at once: the burst passes, the rest is dropped and counted.
        for _ in 0..(16 << 10) {
            log.write(&line).expect("never fails the guest");
        }
        let on_disk = std::fs::metadata(&path).map_or(0, |m| m.len())
            + std::fs::metadata(InstanceLog::rotated(&path)).map_or(0, |m| m.len());
        assert!(on_disk <= 2 * limits.max_file, "{on_disk} bytes on disk");
        assert!(counters.written.get() <= limits.burst + 4096, "{}", counters.written.get());
        assert_eq!(counters.written.get() + counters.dropped.get(), 64 << 20);
        assert!(counters.rotations.get() >= 2);
    }

    #[test]
    fn dropped_output_is_announced_in_the_log_once_it_flows_again() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = LogLimits { max_file: 1 << 20, rate: 10_000, burst: 100 };
        let (log, counters, path) = log(dir.path(), limits);
        log.write(&[b'a'; 100]).expect("writes");
        log.write(&[b'b'; 50]).expect("dropped, not failed");
        assert_eq!(counters.dropped.get(), 50);
        std::thread::sleep(std::time::Duration::from_millis(20));
        log.write(b"back\n").expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(text.contains("[lamina: 50 bytes of this instance's output were dropped"), "{text}");
        assert!(text.ends_with("back\n"), "{text}");
    }

    /// The note of a drop and the output after it go in one write: when that write rotates
    /// the file, the new file starts with the note (a reader of the current file always learns
    /// of the drop before what followed it).
    #[test]
    fn a_drop_note_is_never_left_behind_in_the_rotated_file() {
        let dir = tempfile::tempdir().expect("dir");
        // The note (about 100 bytes) would fit after the first write; the note and the output
        // after it do not, so they rotate the file together.
        let limits = LogLimits { max_file: 200, rate: 10_000, burst: 60 };
        let (log, counters, path) = log(dir.path(), limits);
        log.write(&[b'a'; 50]).expect("writes");
        log.write(&[b'b'; 50]).expect("dropped, not failed");
        std::thread::sleep(std::time::Duration::from_millis(20));
        log.write(&[b'c'; 60]).expect("writes");
        assert_eq!(counters.rotations.get(), 1);
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(text.starts_with("[lamina: 50 bytes of this instance's output were dropped"), "{text}");
        assert!(text.ends_with(&"c".repeat(60)), "{text}");
        let rotated = std::fs::read_to_string(InstanceLog::rotated(&path)).expect("reads");
        assert_eq!(rotated, "a".repeat(50));
    }

    #[test]
    fn a_log_whose_directory_is_gone_drops_and_counts_without_failing_the_guest() {
        let dir = tempfile::tempdir().expect("dir");
        let limits = LogLimits { max_file: 16, rate: 1 << 30, burst: 1 << 30 };
        let (log, counters, _) = log(dir.path(), limits);
        log.write(b"0123456789").expect("writes");
        drop(dir);
        // The rotation cannot rename: the bytes are dropped, the guest goes on.
        log.write(b"0123456789").expect("does not fail the guest");
        assert_eq!(counters.dropped.get(), 10);
        // For a while, later writes are dropped without trying the disk, and counted.
        log.write(b"01234").expect("does not fail the guest");
        assert_eq!(counters.dropped.get(), 15);
        assert!(log.state.lock().expect("lock").broken_until.is_some());
    }
}
