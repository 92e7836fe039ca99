//! The newest desired-state generation this node has seen, kept where the host cannot roll it
//! back unnoticed: in a sealed volume of the node's own (`<state>/node-state/`), which its
//! platform's monotonic counter protects against rollback (a TPM NV counter; on sim, a counter
//! file, which protects nothing against a host that copies the whole state directory back).
//!
//! The agent refuses a desired state older than this floor, whether it is the signed copy on
//! disk at start (an older `desired.json` put back while the control plane is out of reach) or
//! an answer from the control plane.

use lamina_seal::{Absent, KnownVolumes, OpenFlags, Opened, SealTo, Volume, VolumeOptions};
use lamina_tee::Platform;
use lamina_types::ModuleHash;

/// The file in the volume that holds the generation, as decimal text.
const FILE: &str = "generation";

/// The newest generation seen, persisted sealed.
pub(crate) struct GenerationFloor {
    volume: Volume,
    floor: u64,
}

impl std::fmt::Debug for GenerationFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationFloor").field("floor", &self.floor).finish_non_exhaustive()
    }
}

impl GenerationFloor {
    /// Opens (or makes) the node's sealed state and reads the floor.
    pub(crate) fn open(state: &std::path::Path, platform: &dyn Platform, absent: Absent) -> Result<Self, String> {
        let options = VolumeOptions {
            // The node's own data: sealed to a fixed identity of the agent, not to a module.
            seal_to: SealTo::Module(ModuleHash::of(b"lamina node state v1")),
            quota: 1 << 16,
            rollback_protection: true,
        };
        let dir = state.join("node-state");
        let mut volume =
            KnownVolumes::in_state_dir(state).open(&dir, platform, &options, absent).map_err(|e| e.to_string())?;
        let floor = match volume.open_path(FILE, OpenFlags::default()) {
            Ok(Opened::File(id)) => {
                let mut buf = [0u8; 32];
                let n = volume.read_at(&id, 0, &mut buf).map_err(|e| e.to_string())?;
                let _ = volume.close(&id);
                std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| format!("{} holds no generation", dir.display()))?
            }
            Ok(Opened::Dir) => return Err(format!("{FILE} in {} is a directory", dir.display())),
            Err(lamina_seal::SealError::NotFound(_)) => 0,
            Err(e) => return Err(e.to_string()),
        };
        Ok(Self { volume, floor })
    }

    /// The newest generation seen.
    pub(crate) fn get(&self) -> u64 {
        self.floor
    }

    /// Raises the floor to `generation` (never lowers it), durably.
    pub(crate) fn raise(&mut self, generation: u64) -> Result<(), String> {
        if generation <= self.floor {
            return Ok(());
        }
        let flags = OpenFlags { create: true, truncate: true, ..OpenFlags::default() };
        let Opened::File(id) = self.volume.open_path(FILE, flags).map_err(|e| e.to_string())? else {
            return Err(format!("{FILE} is a directory"));
        };
        let text = generation.to_string();
        let written = self.volume.write_at(&id, 0, text.as_bytes()).map_err(|e| e.to_string());
        let _ = self.volume.close(&id);
        written?;
        self.volume.commit().map_err(|e| e.to_string())?;
        self.floor = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's state directory and its sim platform, with the floor raised to `generation`.
    fn raised_to(generation: u64) -> (tempfile::TempDir, lamina_tee::sim::SimPlatform) {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = lamina_tee::sim::SimPlatform::open(&dir.path().join("sim")).expect("sim");
        let mut floor = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect("opens");
        floor.raise(generation).expect("raises");
        (dir, sim)
    }

    #[test]
    fn the_floor_only_rises_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = lamina_tee::sim::SimPlatform::open(&dir.path().join("sim")).expect("sim");
        let mut floor = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect("opens");
        assert_eq!(floor.get(), 0);
        floor.raise(7).expect("raises");
        floor.raise(3).expect("a lower one is ignored");
        assert_eq!(floor.get(), 7);
        drop(floor);
        let floor = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect("opens again");
        assert_eq!(floor.get(), 7, "kept across restarts");
    }

    #[test]
    fn an_older_copy_of_the_sealed_floor_is_refused() {
        // The attack: keep a copy of the node's sealed state at generation 1, let it reach 2,
        // then put the copy back.
        let (dir, sim) = raised_to(1);
        let copy = dir.path().join("copy");
        copy_dir(&dir.path().join("node-state"), &copy);
        let mut floor = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect("opens");
        floor.raise(2).expect("raises");
        drop(floor);
        std::fs::remove_dir_all(dir.path().join("node-state")).expect("remove");
        copy_dir(&copy, &dir.path().join("node-state"));
        let e = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect_err("rolled back");
        assert!(e.to_lowercase().contains("roll"), "{e}");
    }

    #[test]
    fn a_deleted_sealed_floor_is_refused_not_reset_to_zero() {
        // The attack: delete the node's sealed state so that the floor starts again at 0 and
        // an older desired state would be accepted.
        let (dir, sim) = raised_to(5);
        std::fs::remove_dir_all(dir.path().join("node-state")).expect("remove");
        let e = GenerationFloor::open(dir.path(), &sim, Absent::Refuse).expect_err("deleted");
        assert!(e.contains("missing or empty"), "{e}");
        let floor = GenerationFloor::open(dir.path(), &sim, Absent::StartOver).expect("the operator starts over");
        assert_eq!(floor.get(), 0);
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }
}
