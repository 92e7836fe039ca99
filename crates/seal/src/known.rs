//! The volumes a state directory has seen, so that a sealed directory that held a volume and
//! is now missing or empty is refused, not silently replaced by a fresh, empty volume (which
//! would reset a workload's state: a rollback to nothing), and a volume put in another's
//! place is refused too.
//!
//! Each volume opened through [`KnownVolumes::open`] leaves a record in the state directory
//! (`sealed-volumes/<SHA-256 of the directory's path>`): the directory and its volume's
//! identifier. What it defends against: a directory emptied, deleted or swapped by someone who
//! leaves the state directory alone. Someone who also deletes the record is not detected (the
//! platform's monotonic counters say how far a volume got, not that it exists).

use std::path::{Path, PathBuf};

use lamina_tee::Platform;

use crate::{SealError, Volume, VolumeOptions};

/// What to do when a known volume's directory is missing or holds another volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Absent {
    /// Refuse to open it ([`SealError::Missing`], [`SealError::Replaced`]).
    #[default]
    Refuse,
    /// Start over: accept a fresh, empty volume (or the other one) and record it. The data of
    /// the volume that was there is lost; an operator's explicit choice.
    StartOver,
}

/// The record of the volumes a state directory has seen.
#[derive(Clone, Debug)]
pub struct KnownVolumes {
    records: PathBuf,
}

impl KnownVolumes {
    /// The records kept in `state` (created at the first record).
    pub fn in_state_dir(state: &Path) -> Self {
        KnownVolumes { records: state.join("sealed-volumes") }
    }

    /// Opens the volume in `dir` as [`Volume::open`] does, creating it only where this state
    /// directory has never seen one, and records it.
    ///
    /// # Errors
    /// [`SealError::Missing`] when a volume recorded here is missing or its directory empty,
    /// [`SealError::Replaced`] when another volume is in its place (unless `absent` is
    /// [`Absent::StartOver`]); what [`Volume::open`] gives; [`SealError::Io`] when the record
    /// cannot be read or written.
    pub fn open(
        &self,
        dir: &Path,
        platform: &dyn Platform,
        options: &VolumeOptions,
        absent: Absent,
    ) -> Result<Volume, SealError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let dir = std::fs::canonicalize(dir).map_err(io("resolve", dir))?;
        let record = self.record_path(&dir);
        let known = read_record(&record)?;
        let present = Volume::exists_in(&dir);
        if let (Some(id), false, Absent::Refuse) = (&known, present, absent) {
            return Err(SealError::Missing { dir, volume: id.clone() });
        }
        let volume = Volume::open(&dir, platform, options)?;
        let id = hex::encode(volume.id());
        match known {
            Some(k) if k == id => {}
            Some(k) if present && absent == Absent::Refuse => {
                return Err(SealError::Replaced { dir, expected: k, found: id });
            }
            Some(k) => {
                tracing::warn!(dir = %dir.display(), "starting over: the volume {k} recorded here is gone; {id} replaces it");
                write_record(&self.records, &record, &dir, &id)?;
            }
            None => write_record(&self.records, &record, &dir, &id)?,
        }
        Ok(volume)
    }

    fn record_path(&self, dir: &Path) -> PathBuf {
        let digest = ring::digest::digest(&ring::digest::SHA256, dir.as_os_str().as_encoded_bytes());
        self.records.join(hex::encode(digest.as_ref()))
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SealError + 'a {
    move |source| SealError::Io { action, path: path.to_path_buf(), source }
}

/// The volume identifier a record holds (its first line), or `None` without a record.
fn read_record(path: &Path) -> Result<Option<String>, SealError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().next().map(str::to_owned).filter(|id| !id.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Writes a record durably: a temporary file, synced, renamed over the record, the directory
/// synced.
fn write_record(records: &Path, path: &Path, dir: &Path, id: &str) -> Result<(), SealError> {
    use std::io::Write as _;
    std::fs::create_dir_all(records).map_err(io("create", records))?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(format!("{id}\n{}\n", dir.display()).as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    std::fs::File::open(records).and_then(|d| d.sync_all()).map_err(io("sync", records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SealTo;
    use lamina_types::ModuleHash;

    struct Fixture {
        _tmp: tempfile::TempDir,
        state: PathBuf,
        dir: PathBuf,
        sim: lamina_tee::sim::SimPlatform,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let sim = lamina_tee::sim::SimPlatform::open(&state).expect("sim");
        Fixture { dir: tmp.path().join("vol"), state, sim, _tmp: tmp }
    }

    fn options() -> VolumeOptions {
        VolumeOptions { seal_to: SealTo::Module(ModuleHash::of(b"app")), quota: 1 << 20, rollback_protection: true }
    }

    fn open(f: &Fixture, dir: &Path, absent: Absent) -> Result<Volume, SealError> {
        KnownVolumes::in_state_dir(&f.state).open(dir, &f.sim, &options(), absent)
    }

    #[test]
    fn a_new_directory_gets_a_volume_and_the_same_one_opens_again() {
        let f = fixture();
        let first = open(&f, &f.dir, Absent::Refuse).expect("created").id();
        let again = open(&f, &f.dir, Absent::Refuse).expect("opens again").id();
        assert_eq!(first, again);
    }

    #[test]
    fn a_known_volume_deleted_by_the_host_is_refused_not_recreated_empty() {
        let f = fixture();
        drop(open(&f, &f.dir, Absent::Refuse).expect("created"));
        std::fs::remove_dir_all(&f.dir).expect("delete");
        let Err(e) = open(&f, &f.dir, Absent::Refuse) else { panic!("opened") };
        assert!(matches!(e, SealError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("--danger-sealed-start-over"), "{e}");
        assert!(!Volume::exists_in(&f.dir), "no fresh volume was made");

        // Emptied rather than deleted: the same.
        std::fs::create_dir_all(&f.dir).expect("mkdir");
        assert!(matches!(open(&f, &f.dir, Absent::Refuse), Err(SealError::Missing { .. })));

        let fresh = open(&f, &f.dir, Absent::StartOver).expect("the operator starts over");
        drop(fresh);
        open(&f, &f.dir, Absent::Refuse).expect("the new volume is the known one now");
    }

    #[test]
    fn a_volume_swapped_for_another_of_the_same_module_is_refused() {
        let f = fixture();
        let other = f.state.parent().expect("parent").join("other");
        drop(open(&f, &f.dir, Absent::Refuse).expect("created"));
        drop(open(&f, &other, Absent::Refuse).expect("another"));
        std::fs::remove_dir_all(&f.dir).expect("delete");
        std::fs::rename(&other, &f.dir).expect("swap");
        let Err(e) = open(&f, &f.dir, Absent::Refuse) else { panic!("opened") };
        assert!(matches!(e, SealError::Replaced { .. }), "{e}");
    }

    /// Failing I/O: the record cannot be written (here its directory is a file, as a full or
    /// read-only state directory would refuse it too). The open fails, naming the record's
    /// path, rather than running a volume nothing would miss; once the record can be written,
    /// the next open records the volume it made.
    #[test]
    fn a_record_that_cannot_be_written_fails_the_open_and_the_next_one_records_it() {
        let f = fixture();
        let records = f.state.join("sealed-volumes");
        std::fs::write(&records, b"not a directory").expect("a file in the way");
        let Err(e) = open(&f, &f.dir, Absent::Refuse) else { panic!("opened without a record") };
        assert!(matches!(e, SealError::Io { .. }) && e.to_string().contains("sealed-volumes"), "{e}");
        std::fs::remove_file(&records).expect("the way cleared");
        let id = open(&f, &f.dir, Absent::Refuse).expect("opens and records").id();
        std::fs::remove_dir_all(&f.dir).expect("delete");
        assert!(matches!(open(&f, &f.dir, Absent::Refuse), Err(SealError::Missing { .. })), "recorded: {id:?}");
    }
}
