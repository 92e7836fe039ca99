//! The `sim` platform: a software root of trust for development and CI.
//!
//! It gives **no hardware protection**: its keys are files in a state directory (mode 0600), so
//! anyone who can read them can forge its evidence. Its evidence says `sim`, and a verifier
//! rejects it unless the policy explicitly allows sim.
//!
//! State (`<dir>/sim/`): a CA key, a device key endorsed by the CA, and a sealing root. Evidence
//! is canonical CBOR `["lamina-sim-evidence-v1", report_data, device_key, endorsement,
//! signature]`: the CA's ECDSA P-256 signature over the device key, and the device key's
//! signature over the report data, each over a domain-separation tag and the data.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use lamina_types::PlatformKind;
use lamina_types::sim_evidence::{DEVICE_TAG, EVIDENCE_TAG, SimEvidence};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand_core::{OsRng, RngCore as _};
use zeroize::Zeroizing;

use crate::{CounterId, Evidence, MonotonicCounter, Platform, PlatformInfo, SealingRoot, TeeError};

const CA_KEY: &str = "ca.key.pem";
const DEVICE_KEY: &str = "device.key.pem";
const SEALING_KEY: &str = "sealing.key";
const COUNTERS: &str = "counters";

/// The sim platform, backed by a state directory.
pub struct SimPlatform {
    dir: PathBuf,
    ca: SigningKey,
    device: SigningKey,
    endorsement: DerSignature,
}

impl std::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPlatform").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl SimPlatform {
    /// Opens the sim platform in `state_dir`, creating its keys on first use.
    ///
    /// # Errors
    /// [`TeeError::Io`] when the directory cannot be written, [`TeeError::CorruptState`] when a
    /// key file is damaged.
    pub fn open(state_dir: &Path) -> Result<Self, TeeError> {
        let dir = state_dir.join("sim");
        create_private_dir(&dir)?;
        let ca = load_or_create_key(&dir.join(CA_KEY))?;
        let device = load_or_create_key(&dir.join(DEVICE_KEY))?;
        let device_public = device.verifying_key().to_encoded_point(false);
        let endorsement: DerSignature = ca.sign(&[DEVICE_TAG, device_public.as_bytes()].concat());
        Ok(Self { dir, ca, device, endorsement })
    }

    /// The CA public key (SEC1, uncompressed): the trust anchor a policy names to accept this
    /// sim platform's evidence.
    pub fn ca_public_key(&self) -> Vec<u8> {
        self.ca.verifying_key().to_encoded_point(false).as_bytes().to_vec()
    }
}

impl Platform for SimPlatform {
    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            kind: PlatformKind::Sim,
            description: format!(
                "sim: software keys in {}; NO hardware protection, for development only",
                self.dir.display()
            ),
            hardware_backed: false,
        }
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError> {
        let signature: DerSignature = self.device.sign(&[EVIDENCE_TAG, &report_data[..]].concat());
        let evidence = SimEvidence {
            report_data: *report_data,
            device_key: self.device.verifying_key().to_encoded_point(false).as_bytes().to_vec(),
            endorsement: self.endorsement.as_bytes().to_vec(),
            signature: signature.as_bytes().to_vec(),
        };
        Ok(Evidence { native: evidence.to_cbor(), endorsements: vec![self.ca_public_key()] })
    }

    fn sealing_root(&self) -> Result<SealingRoot, TeeError> {
        let path = self.dir.join(SEALING_KEY);
        let bytes = read_or_create(&path, || {
            let mut key = Zeroizing::new(vec![0u8; 32]);
            OsRng.fill_bytes(&mut key);
            key
        })?;
        let root: [u8; 32] = bytes.as_slice().try_into().map_err(|_| TeeError::CorruptState {
            path: path.clone(),
            reason: format!("the sealing key is {} bytes, not 32", bytes.len()),
        })?;
        Ok(SealingRoot(Zeroizing::new(root)))
    }

    fn create_counter(&self) -> Result<(CounterId, Box<dyn MonotonicCounter>), TeeError> {
        let dir = self.dir.join(COUNTERS);
        create_private_dir(&dir)?;
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let mut counter = SimCounter { path: dir.join(hex::encode(id)) };
        counter.store(0)?;
        Ok((CounterId(id.to_vec()), Box::new(counter)))
    }

    fn open_counter(&self, id: &CounterId) -> Result<Box<dyn MonotonicCounter>, TeeError> {
        if id.0.len() != 16 {
            return Err(TeeError::CorruptState {
                path: self.dir.join(COUNTERS),
                reason: format!("a sim counter id is 16 bytes, not {}", id.0.len()),
            });
        }
        let counter = SimCounter { path: self.dir.join(COUNTERS).join(hex::encode(&id.0)) };
        match std::fs::metadata(&counter.path) {
            Ok(_) => Ok(Box::new(counter)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TeeError::NotFound {
                platform: "sim counter",
                path: counter.path,
                hint: "the sealed state was made with another state directory (--state), or its counter was deleted",
            }),
            Err(source) => Err(TeeError::Io { action: "open", path: counter.path, source }),
        }
    }
}

/// A counter in a file of the sim state directory: 8 bytes, little endian, replaced atomically.
/// It protects against a sealed directory being swapped for an older copy, not against whoever
/// can also rewind the state directory itself.
struct SimCounter {
    path: PathBuf,
}

impl SimCounter {
    fn store(&mut self, value: u64) -> Result<(), TeeError> {
        use std::os::unix::fs::FileExt as _;
        let io = |action, source| TeeError::Io { action, path: self.path.clone(), source };
        // Written in place: one aligned 8-byte write never tears. (Replacing the file by a
        // rename made ext4 write the new file out at every commit.)
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io("open", e))?;
        // Not synced: a sim counter guards against a swapped directory, not against power loss
        // (after which it may lag the sealed state, which is accepted as newer, never older).
        file.write_all_at(&value.to_le_bytes(), 0).map_err(|e| io("write", e))
    }
}

impl MonotonicCounter for SimCounter {
    fn read(&mut self) -> Result<u64, TeeError> {
        let bytes = std::fs::read(&self.path).map_err(|source| TeeError::Io {
            action: "read",
            path: self.path.clone(),
            source,
        })?;
        let value: [u8; 8] = bytes.as_slice().try_into().map_err(|_| TeeError::CorruptState {
            path: self.path.clone(),
            reason: format!("a counter is 8 bytes, not {}", bytes.len()),
        })?;
        Ok(u64::from_le_bytes(value))
    }

    fn advance_to(&mut self, value: u64) -> Result<u64, TeeError> {
        let current = self.read()?;
        if value > current {
            self.store(value)?;
        }
        Ok(current.max(value))
    }

    fn describe(&self) -> String {
        format!("sim counter {} (a file: weaker than a hardware counter)", self.path.display())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TeeError> {
    std::fs::create_dir_all(dir).map_err(|source| TeeError::Io { action: "create", path: dir.into(), source })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| TeeError::Io {
        action: "restrict permissions of",
        path: dir.into(),
        source,
    })
}

fn load_or_create_key(path: &Path) -> Result<SigningKey, TeeError> {
    let pem = read_or_create(path, || {
        let key = SigningKey::random(&mut OsRng);
        // Encoding a freshly generated key cannot fail; an empty file would be reported as
        // corrupt on the next read rather than silently accepted.
        let pem = key.to_pkcs8_pem(LineEnding::LF).map(|p| p.as_bytes().to_vec()).unwrap_or_default();
        Zeroizing::new(pem)
    })?;
    let text = std::str::from_utf8(&pem)
        .map_err(|_| TeeError::CorruptState { path: path.into(), reason: "the key file is not PEM text".into() })?;
    SigningKey::from_pkcs8_pem(text)
        .map_err(|e| TeeError::CorruptState { path: path.into(), reason: format!("the key does not parse: {e}") })
}

/// Reads a secret file, or creates it (mode 0600, exclusively, so concurrent first starts agree
/// on one key) with the bytes `make` returns.
fn read_or_create(path: &Path, make: impl FnOnce() -> Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, TeeError> {
    match std::fs::read(path) {
        Ok(bytes) => return Ok(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(TeeError::Io { action: "read", path: path.into(), source }),
    }
    let bytes = make();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let io = |action, source| TeeError::Io { action, path: path.into(), source };
    // A temporary file left by a crashed process whose PID we now have would block create_new.
    let _ = std::fs::remove_file(&tmp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io("create", e))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| io("write", e))?;
    drop(file);
    // hard_link fails if another process created the key first: then use theirs.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map(Zeroizing::new).map_err(|e| io("read", e))
        }
        Err(e) => Err(io("store", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest;
    use lamina_types::{Claims, ModuleHash};

    fn claims() -> Claims {
        Claims {
            platform: PlatformKind::Sim,
            runtime_measurement: vec![1; 32],
            module_hash: Some(ModuleHash::of(b"app")),
            config_digest: None,
            instance_key: None,
            nonce: vec![5; 32],
            issued_at: 1_790_000_000,
        }
    }

    #[test]
    fn evidence_binds_the_claims_and_verifies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = SimPlatform::open(dir.path()).expect("sim opens");
        let envelope = attest(&sim, &claims()).expect("attests");
        assert_eq!(envelope.platform, PlatformKind::Sim);
        assert_eq!(envelope.decode_claims().expect("claims decode"), claims());
        let evidence = SimEvidence::from_cbor(&envelope.evidence).expect("sim evidence decodes");
        assert_eq!(evidence.report_data, lamina_types::report_data_of(&envelope.claims));
        assert_eq!(envelope.endorsements, vec![sim.ca_public_key()]);
    }

    #[test]
    fn keys_persist_with_private_modes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = SimPlatform::open(dir.path()).expect("sim opens");
        let root1 = first.sealing_root().expect("sealing root");
        let second = SimPlatform::open(dir.path()).expect("sim reopens");
        assert_eq!(first.ca_public_key(), second.ca_public_key());
        assert_eq!(*root1.0, *second.sealing_root().expect("sealing root").0);
        for name in [CA_KEY, DEVICE_KEY, SEALING_KEY] {
            let mode = std::fs::metadata(dir.path().join("sim").join(name)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = std::fs::metadata(dir.path().join("sim")).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn damaged_key_file_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        SimPlatform::open(dir.path()).expect("sim opens");
        std::fs::write(dir.path().join("sim").join(CA_KEY), "not a key").expect("damage");
        let e = SimPlatform::open(dir.path()).expect_err("damaged key");
        assert!(e.to_string().contains("remove it to start afresh"), "{e}");
    }

    #[test]
    fn claims_for_another_platform_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = SimPlatform::open(dir.path()).expect("sim opens");
        let wrong = Claims { platform: PlatformKind::Tdx, ..claims() };
        assert!(attest(&sim, &wrong).is_err());
    }

    #[test]
    fn counters_only_go_up_and_persist() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = SimPlatform::open(dir.path()).expect("sim opens");
        let (id, mut counter) = sim.create_counter().expect("counter");
        assert_eq!(counter.read().expect("read"), 0);
        assert_eq!(counter.advance_to(3).expect("advance"), 3);
        assert_eq!(counter.advance_to(1).expect("no decrease"), 3);
        let mut again = SimPlatform::open(dir.path()).expect("reopen").open_counter(&id).expect("opens");
        assert_eq!(again.read().expect("read"), 3);
        let missing = sim.open_counter(&CounterId(vec![9; 16])).err().expect("unknown counter");
        assert!(missing.to_string().contains("another state directory"), "{missing}");
    }

    #[test]
    fn says_it_is_not_hardware() {
        let dir = tempfile::tempdir().expect("temp dir");
        let info = SimPlatform::open(dir.path()).expect("sim opens").info();
        assert!(!info.hardware_backed);
        assert!(info.description.contains("NO hardware protection"));
    }
}
