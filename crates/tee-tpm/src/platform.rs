//! [`TpmPlatform`]: the TPM as a Lamina platform.
//!
//! The TSS context is neither `Send` nor `Sync`, so one thread owns it (and the loaded
//! attestation key) for the platform's lifetime, and every call runs there in turn. The
//! platform itself is then `Send + Sync`, and each call costs one channel round trip besides
//! the TPM commands.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use lamina_tee::{CounterId, Evidence, MonotonicCounter, Platform, PlatformInfo, SealingRoot, TeeError};
use lamina_types::{ModuleHash, PlatformKind};
use zeroize::Zeroizing;

use crate::device::{COUNTER_INDEX_BASE, COUNTER_INDEX_SPAN, Device, Identity};
use crate::evidence::{SealedRoot, TpmEvidence};
use crate::{EkKind, MODULE_PCR, TpmError};

/// The PCRs the sealing root is sealed to by default: PCR 7, the Secure Boot policy (which
/// keys and databases the firmware trusts). It changes when Secure Boot is turned off or its
/// keys change, but not at every firmware, boot loader or kernel update, which PCRs 0-5 would
/// follow (and lose the root at each update).
pub const SEALING_PCRS: [u8; 1] = [7];

const SEALED_FILE: &str = "sealing-root.cbor";

/// How to open the TPM platform.
#[derive(Clone, Debug)]
pub struct TpmOptions {
    /// Certificates (DER) to send after the EK certificate: the manufacturer's intermediates.
    pub ek_chain: Vec<Vec<u8>>,
    /// Which EK to use; by default the first of [`EkKind::PREFERENCE`] that has a certificate.
    pub ek_kind: Option<EkKind>,
    /// The SHA-256 PCRs the sealing root is sealed to (a new root only: an existing one stays
    /// sealed to the PCRs it was sealed to).
    pub sealing_pcrs: Vec<u8>,
}

impl Default for TpmOptions {
    fn default() -> Self {
        Self { ek_chain: Vec::new(), ek_kind: None, sealing_pcrs: SEALING_PCRS.to_vec() }
    }
}

type Job = Box<dyn FnOnce(&mut Device) + Send>;

/// The thread that owns the TPM connection.
struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(tcti: String, ek_kind: Option<EkKind>) -> Result<(Self, Identity), TpmError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lamina-tpm".into())
            .spawn(move || {
                let mut device = match Device::open(&tcti, ek_kind) {
                    Ok((device, identity)) => {
                        let _ = opened.send(Ok(identity));
                        device
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in queue {
                    job(&mut device);
                }
            })
            .map_err(|source| TpmError::Io { action: "start a thread for", path: "the TPM".into(), source })?;
        let worker = Self { jobs: Some(jobs), thread: Some(thread) };
        // On failure, dropping the worker joins its (finished) thread.
        let identity = open_result.recv().map_err(|_| TpmError::WorkerGone)??;
        Ok((worker, identity))
    }

    fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Device) -> Result<R, TpmError> + Send + 'static,
    ) -> Result<R, TpmError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(TpmError::WorkerGone)?;
        jobs.send(Box::new(move |device| {
            let _ = reply.send(job(device));
        }))
        .map_err(|_| TpmError::WorkerGone)?;
        answer.recv().map_err(|_| TpmError::WorkerGone)?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which drops the device (flushing the AK).
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TPM 2.0 as a Lamina platform: evidence is a quote by an attestation key, the sealing root
/// is sealed to the TPM under a PCR policy.
///
/// Keys (all primary keys, so nothing but the sealed root is stored):
/// - the endorsement key (EK), from the TCG template whose certificate is in NV;
/// - the attestation key (AK), ECC P-256 restricted signing, a primary key of the endorsement
///   hierarchy: deterministic (the same after every restart, so its enrolment lasts), bound
///   to the same seed as the EK, and needing no owner authorisation or NV space, unlike a
///   persistent key; it stays loaded while the platform is open;
/// - the storage root key (SRK), the TCG ECC P-256 template, for sealing.
pub struct TpmPlatform {
    tcti: String,
    dir: PathBuf,
    options: TpmOptions,
    identity: Identity,
    worker: Arc<Worker>,
}

impl std::fmt::Debug for TpmPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmPlatform")
            .field("tcti", &self.tcti)
            .field("dir", &self.dir)
            .field("ek", &self.identity.ek_kind)
            .finish_non_exhaustive()
    }
}

impl TpmPlatform {
    /// Opens the TPM through a TCTI (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`,
    /// `mssim:...`), keeping state in `state_dir/tpm/`.
    ///
    /// # Errors
    /// [`TpmError`] when the TPM cannot be reached, has no usable EK, or refuses to create
    /// the attestation key; when the state directory cannot be created.
    pub fn open(tcti: &str, state_dir: &Path) -> Result<Self, TpmError> {
        Self::open_with(tcti, state_dir, TpmOptions::default())
    }

    /// [`open`](Self::open) with options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(tcti: &str, state_dir: &Path, options: TpmOptions) -> Result<Self, TpmError> {
        let dir = state_dir.join("tpm");
        create_private_dir(&dir)?;
        let (worker, identity) = Worker::start(tcti.to_owned(), options.ek_kind)?;
        if identity.qualifying_len < 32 {
            return Err(TpmError::QualifyingDataTooSmall { capacity: identity.qualifying_len });
        }
        Ok(Self { tcti: tcti.to_owned(), dir, options, identity, worker: Arc::new(worker) })
    }

    /// Which EK is in use.
    pub fn ek_kind(&self) -> EkKind {
        self.identity.ek_kind
    }

    /// The EK's public area (TPMT_PUBLIC), for enrolment.
    pub fn ek_public(&self) -> &[u8] {
        &self.identity.ek_public
    }

    /// The EK certificate (DER) read from NV, if the TPM has one.
    pub fn ek_certificate(&self) -> Option<&[u8]> {
        self.identity.ek_certificate.as_deref()
    }

    /// The AK's public area (TPMT_PUBLIC), for enrolment.
    pub fn ak_public(&self) -> &[u8] {
        &self.identity.ak_public
    }

    /// The AK's name (SHA-256 name algorithm ‖ SHA-256 of its public area).
    pub fn ak_name(&self) -> &[u8] {
        &self.identity.ak_name
    }

    /// How many bytes of the report data the quote's qualifying data holds (64 when the TPM
    /// implements SHA-512, else 48 or 32).
    pub fn qualifying_data_len(&self) -> usize {
        self.identity.qualifying_len
    }

    /// The endorsements evidence carries: the EK certificate, then the configured chain.
    pub fn endorsements(&self) -> Vec<Vec<u8>> {
        self.identity.ek_certificate.iter().cloned().chain(self.options.ek_chain.iter().cloned()).collect()
    }

    /// Recovers a credential's secret (TPM2_ActivateCredential): the TPM succeeds only if the
    /// credential was made for its EK and for the name of its AK. `id_object` and
    /// `encrypted_secret` are the contents of the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
    ///
    /// # Errors
    /// [`TpmError::Command`] when the TPM refuses (the credential is not for this TPM and AK,
    /// or was tampered with).
    pub fn activate_credential(&self, id_object: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        let (id, secret) = (id_object.to_vec(), encrypted_secret.to_vec());
        self.worker.run(move |d| d.activate(&id, &secret).map(|s| s.to_vec()))
    }

    /// Extends a module's hash into the module PCR ([`MODULE_PCR`]).
    ///
    /// # Errors
    /// When the TPM refuses.
    pub fn extend_module(&self, module: &ModuleHash) -> Result<(), TpmError> {
        let digest = *module.as_bytes();
        self.worker.run(move |d| d.extend(MODULE_PCR, &digest))
    }

    /// Resets the module PCR to zeros (at start, before extending the modules to run).
    ///
    /// # Errors
    /// When the TPM refuses.
    pub fn reset_module_pcr(&self) -> Result<(), TpmError> {
        self.worker.run(|d| d.reset(MODULE_PCR))
    }

    /// Reads SHA-256 PCR values.
    ///
    /// # Errors
    /// When the TPM refuses.
    pub fn read_pcrs(&self, indices: &[u8]) -> Result<std::collections::BTreeMap<u8, Vec<u8>>, TpmError> {
        let indices = indices.to_vec();
        self.worker.run(move |d| d.read_pcrs(&indices))
    }

    /// The handles of the transient objects and sessions loaded in the TPM (a diagnostic: with
    /// no resource manager, Lamina leaves exactly one, its attestation key).
    ///
    /// # Errors
    /// When the TPM refuses.
    pub fn loaded_handles(&self) -> Result<Vec<u32>, TpmError> {
        self.worker.run(Device::loaded)
    }

    /// Extends a SHA-256 digest into PCR 7 or 16 (the module PCR has [`extend_module`](Self::extend_module)).
    /// For tests of sealing on emulators: on real hardware this invalidates the boot state.
    ///
    /// # Errors
    /// When the TPM refuses.
    pub fn danger_extend_pcr(&self, pcr: u8, digest: [u8; 32]) -> Result<(), TpmError> {
        self.worker.run(move |d| d.extend(pcr, &digest))
    }

    /// A quote binding the report data, as Lamina evidence (see [`crate::evidence`]).
    ///
    /// # Errors
    /// When the TPM refuses, or the PCRs keep changing.
    pub fn quote(&self, report_data: &[u8; 64]) -> Result<Evidence, TpmError> {
        let data = *report_data;
        let quoted = self.worker.run(move |d| d.quote(&data))?;
        let native = TpmEvidence {
            report_data: *report_data,
            attest: quoted.attest,
            signature: quoted.signature,
            pcrs: quoted.pcrs,
            ak_public: self.identity.ak_public.clone(),
        }
        .to_cbor();
        Ok(Evidence { native, endorsements: self.endorsements() })
    }

    /// The sealing root: unsealed from the state directory, or created, sealed and stored.
    ///
    /// # Errors
    /// [`TpmError::PolicyMismatch`] when the PCRs changed since sealing;
    /// [`TpmError::CorruptState`] when the stored blob is damaged.
    pub fn unseal_root(&self) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        let path = self.dir.join(SEALED_FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(TpmError::Io { action: "read", path, source }),
        };
        let bytes = match stored {
            Some(bytes) => bytes,
            None => {
                let pcrs = self.options.sealing_pcrs.clone();
                let blob = self.worker.run(move |d| {
                    let root = d.random(32)?;
                    let (public, private) = d.seal(&root, &pcrs)?;
                    Ok(SealedRoot { pcrs, public, private }.to_cbor())
                })?;
                store_new(&path, &blob)?
            }
        };
        let sealed =
            SealedRoot::from_cbor(&bytes).map_err(|reason| TpmError::CorruptState { path: path.clone(), reason })?;
        let pcrs = sealed.pcrs.clone();
        let root = self
            .worker
            .run(move |d| d.unseal(&sealed.public, &sealed.private, &sealed.pcrs))
            .map_err(|e| match e {
                TpmError::Command { action: "load the sealed object", source } => TpmError::CorruptState {
                    path: path.clone(),
                    reason: format!(
                        "the TPM does not load the sealed object ({source}); was it sealed by another TPM?"
                    ),
                },
                other => other,
            })?
            .ok_or_else(|| TpmError::PolicyMismatch { path: path.clone(), pcrs })?;
        let root: [u8; 32] = root.as_slice().try_into().map_err(|_| TpmError::CorruptState {
            path: path.clone(),
            reason: format!("the sealed root is {} bytes, not 32", root.len()),
        })?;
        Ok(Zeroizing::new(root))
    }
}

impl Platform for TpmPlatform {
    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            kind: PlatformKind::Tpm,
            description: format!(
                "TPM 2.0 at {}: measured boot (PCRs 0-7) and modules (PCR {MODULE_PCR}) quoted by an attestation key; {} EK{}",
                self.tcti,
                self.identity.ek_kind,
                if self.identity.ek_certificate.is_some() { " with a certificate" } else { " without a certificate" }
            ),
            hardware_backed: true,
        }
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError> {
        self.quote(report_data).map_err(|e| e.into_tee(&self.tcti))
    }

    fn sealing_root(&self) -> Result<SealingRoot, TeeError> {
        self.unseal_root().map(SealingRoot).map_err(|e| e.into_tee(&self.tcti))
    }

    fn create_counter(&self) -> Result<(CounterId, Box<dyn MonotonicCounter>), TeeError> {
        let index = self.create_nv_counter().map_err(|e| e.into_tee(&self.tcti))?;
        Ok((CounterId(index.to_be_bytes().to_vec()), Box::new(self.nv_counter(index))))
    }

    fn open_counter(&self, id: &CounterId) -> Result<Box<dyn MonotonicCounter>, TeeError> {
        let index =
            <[u8; 4]>::try_from(id.0.as_slice()).map(u32::from_be_bytes).map_err(|_| TeeError::CorruptState {
                path: self.dir.clone(),
                reason: format!("a TPM counter id is a 4-byte NV index, not {} bytes", id.0.len()),
            })?;
        let mut counter = self.nv_counter(index);
        counter.read()?;
        Ok(Box::new(counter))
    }
}

impl TpmPlatform {
    /// Defines a fresh NV counter at a free index of Lamina's block and returns its index.
    ///
    /// # Errors
    /// When the TPM refuses (no NV space left, or owner authorisation is not empty).
    pub fn create_nv_counter(&self) -> Result<u32, TpmError> {
        use rand_core::RngCore as _;
        // A random start spreads volumes over the block; taken indices are skipped.
        let start = rand_core::OsRng.next_u32() % COUNTER_INDEX_SPAN;
        for step in 0..64 {
            let index = COUNTER_INDEX_BASE + (start + step) % COUNTER_INDEX_SPAN;
            if self.worker.run(move |d| d.define_counter(index))? {
                return Ok(index);
            }
        }
        Err(TpmError::Unexpected("64 NV indices in a row are taken; remove unused Lamina counters".into()))
    }

    fn nv_counter(&self, index: u32) -> NvCounter {
        NvCounter { worker: Arc::clone(&self.worker), tcti: self.tcti.clone(), index }
    }
}

/// A TPM NV counter (TPM_NT_COUNTER): the TPM only ever increments it, and a counter defined
/// anew starts at the highest value any counter of this TPM has had, so even deleting and
/// re-creating it cannot rewind it.
struct NvCounter {
    worker: Arc<Worker>,
    tcti: String,
    index: u32,
}

/// Never increments more than this many steps at once: sealed state is at most one commit ahead.
const MAX_COUNTER_STEPS: u64 = 16;

impl MonotonicCounter for NvCounter {
    fn read(&mut self) -> Result<u64, TeeError> {
        let index = self.index;
        self.worker.run(move |d| d.counter(index, 0)).map_err(|e| e.into_tee(&self.tcti))
    }

    fn advance_to(&mut self, value: u64) -> Result<u64, TeeError> {
        let current = self.read()?;
        if value <= current {
            return Ok(current);
        }
        let steps = value - current;
        if steps > MAX_COUNTER_STEPS {
            return Err(TeeError::Device {
                platform: "TPM NV counter",
                path: format!("{:#010x}", self.index).into(),
                reason: format!("asked to advance {steps} steps at once (from {current} to {value})"),
            });
        }
        let index = self.index;
        self.worker.run(move |d| d.counter(index, steps as u32)).map_err(|e| e.into_tee(&self.tcti))
    }

    fn describe(&self) -> String {
        format!("TPM NV counter {:#010x} at {}", self.index, self.tcti)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TpmError> {
    std::fs::create_dir_all(dir).map_err(|source| TpmError::Io { action: "create", path: dir.into(), source })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| TpmError::Io {
        action: "restrict permissions of",
        path: dir.into(),
        source,
    })
}

/// Stores a new file (mode 0600) unless another process stored one first; returns the bytes
/// that are now stored.
fn store_new(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, TpmError> {
    let io = |action, source| TpmError::Io { action, path: path.into(), source };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    // A temporary file left by a crashed process with our PID would block create_new.
    let _ = std::fs::remove_file(&tmp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io("create", e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io("write", e))?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(bytes.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path).map_err(|e| io("read", e)),
        Err(e) => Err(io("store", e)),
    }
}
