//! The configfs-tsm and Gramine backends against fake trees serving real evidence.
//!
//! For configfs-tsm a `FakeKernel` does in a temporary directory what the kernel does in
//! `/sys/kernel/config/tsm/report`: it fills a new entry, answers a write to `inblob` with a
//! real report (TDX quote, SNP report, CCA token) carrying that report data, bumps
//! `generation`, and drops the files when the entry goes. Gramine's `/dev/attestation` is plain
//! files already.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lamina_tee::tsm::{self, KernelEvent, TsmPlatform};
use lamina_tee::{Platform as _, SgxPlatform, TeeError};
use lamina_types::PlatformKind;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|p| p.join("shared/testvectors"))
        .find(|p| p.is_dir())
        .expect("the shared test vectors are beside the repository")
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test vector {}: {e}", path.display()))
}

const REPORT_DATA: [u8; 64] = {
    let mut r = [0; 64];
    let mut i = 0;
    while i < 64 {
        r[i] = i as u8 ^ 0xa5;
        i += 1;
    }
    r
};

/// How the fake kernel misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Another writer writes each entry after us, this many times.
    Race(usize),
    /// The outblob keeps the template's report data.
    Stale,
    /// The outblob loses its last bytes.
    Truncated,
}

#[derive(Default)]
struct Log {
    inblobs: Vec<Vec<u8>>,
    created: usize,
    removed: usize,
}

struct FakeKernel {
    provider: &'static str,
    /// A real report, and where its report data sits.
    template: Vec<u8>,
    report_data_at: usize,
    auxblob: Vec<u8>,
    fault: Fault,
    log: Mutex<Log>,
}

impl FakeKernel {
    fn new(provider: &'static str, template: Vec<u8>, report_data_at: usize) -> Self {
        Self { provider, template, report_data_at, auxblob: Vec::new(), fault: Fault::None, log: Mutex::default() }
    }

    fn hook(self: &Arc<Self>) -> tsm::KernelHook {
        let kernel = Arc::clone(self);
        Arc::new(move |event| kernel.react(event))
    }

    fn react(&self, event: KernelEvent<'_>) -> std::io::Result<()> {
        let mut log = self.log.lock().expect("log");
        match event {
            KernelEvent::Created(entry) => {
                log.created += 1;
                std::fs::write(entry.join("provider"), format!("{}\n", self.provider))?;
                std::fs::write(entry.join("generation"), "0\n")?;
                std::fs::write(entry.join("inblob"), b"")
            }
            KernelEvent::InblobWritten(entry) => {
                let inblob = std::fs::read(entry.join("inblob"))?;
                let mut generation = 1;
                if let Fault::Race(times) = self.fault
                    && log.inblobs.len() < times
                {
                    generation += 1;
                }
                let mut outblob = self.template.clone();
                if self.fault != Fault::Stale {
                    outblob[self.report_data_at..self.report_data_at + 64].copy_from_slice(&inblob);
                }
                if self.fault == Fault::Truncated {
                    outblob.truncate(outblob.len() / 2);
                }
                log.inblobs.push(inblob);
                std::fs::write(entry.join("generation"), format!("{generation}\n"))?;
                std::fs::write(entry.join("outblob"), outblob)?;
                std::fs::write(entry.join("auxblob"), &self.auxblob)
            }
            KernelEvent::Removing(entry) => {
                log.removed += 1;
                for file in std::fs::read_dir(entry)? {
                    std::fs::remove_file(file?.path())?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn tdx_kernel() -> FakeKernel {
    FakeKernel::new("tdx_guest", read("dcap-qvl/tdx_quote"), 48 + 520)
}

/// Opens the backend on a fresh fake tree.
fn open(kernel: &Arc<FakeKernel>) -> (tempfile::TempDir, TsmPlatform) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tsm = TsmPlatform::open_with_kernel(dir.path(), kernel.hook()).expect("configfs-tsm opens");
    (dir, tsm)
}

fn entries_left(dir: &Path) -> usize {
    std::fs::read_dir(dir).expect("root").count()
}

#[test]
fn a_tdx_quote_comes_back_binding_exactly_the_callers_report_data() {
    let kernel = Arc::new(tdx_kernel());
    let (dir, tsm) = open(&kernel);
    assert_eq!(tsm.provider(), "tdx_guest");
    let info = tsm.info();
    assert_eq!(info.kind, PlatformKind::Tdx);
    assert!(info.hardware_backed);
    let evidence = tsm.evidence(&REPORT_DATA).expect("evidence");
    assert_eq!(kernel.log.lock().expect("log").inblobs, vec![REPORT_DATA.to_vec()]);
    let mut expected = read("dcap-qvl/tdx_quote");
    expected[568..632].copy_from_slice(&REPORT_DATA);
    assert_eq!(evidence.native, expected);
    assert!(evidence.endorsements.is_empty(), "no auxblob, no endorsement");
    assert_eq!(entries_left(dir.path()), 0, "every entry, the probe's too, is removed");
    let log = kernel.log.lock().expect("log");
    assert_eq!((log.created, log.removed), (2, 2));
}

#[test]
fn attest_binds_claims_through_configfs_tsm() {
    let kernel = Arc::new(tdx_kernel());
    let (_dir, tsm) = open(&kernel);
    let claims = lamina_types::Claims {
        platform: PlatformKind::Tdx,
        runtime_measurement: vec![1; 32],
        module_hash: None,
        config_digest: None,
        instance_key: None,
        nonce: vec![2; 16],
        issued_at: 1_790_000_000,
    };
    let envelope = lamina_tee::attest(&tsm, &claims).expect("envelope");
    assert_eq!(envelope.platform, PlatformKind::Tdx);
    assert_eq!(envelope.evidence[568..632], lamina_types::report_data_of(&envelope.claims));
}

#[test]
fn an_snp_report_comes_back_with_its_certificate_table() {
    let mut kernel = FakeKernel::new("sev_guest", read("trustee/test_data_snp_test-report.bin"), 0x50);
    kernel.auxblob = read("trustee/test_data_snp_test-vcek.der");
    let kernel = Arc::new(kernel);
    let (_dir, tsm) = open(&kernel);
    assert_eq!(tsm.info().kind, PlatformKind::Snp);
    let evidence = tsm.evidence(&REPORT_DATA).expect("evidence");
    assert_eq!(evidence.native[0x50..0x90], REPORT_DATA);
    assert_eq!(evidence.native.len(), 1184);
    assert_eq!(evidence.endorsements, vec![read("trustee/test_data_snp_test-vcek.der")]);
}

#[test]
fn a_cca_token_comes_back_with_the_report_data_as_realm_challenge() {
    let token = read("veraison-ccatoken/cca-token-02.cbor");
    // Token 02's realm challenge is "AB" repeated.
    let at = token.windows(64).position(|w| w == b"AB".repeat(32)).expect("the realm challenge");
    let kernel = Arc::new(FakeKernel::new("arm_cca_guest", token, at));
    let (_dir, tsm) = open(&kernel);
    assert_eq!(tsm.info().kind, PlatformKind::Cca);
    let evidence = tsm.evidence(&REPORT_DATA).expect("evidence");
    assert_eq!(evidence.native[at..at + 64], REPORT_DATA);
}

#[test]
fn a_missing_root_says_what_it_means() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("report");
    let e = TsmPlatform::open(&root).expect_err("no configfs-tsm");
    assert!(matches!(e, TeeError::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        format!("configfs-tsm not found at {}; is this a confidential VM with a kernel ≥ 6.7?", root.display())
    );
}

#[test]
fn an_unknown_provider_is_refused_by_name() {
    let kernel = Arc::new(FakeKernel::new("foo_guest", vec![0; 8], 0));
    let dir = tempfile::tempdir().expect("temp dir");
    let e = TsmPlatform::open_with_kernel(dir.path(), kernel.hook()).expect_err("unknown provider");
    assert!(e.to_string().contains("unknown provider `foo_guest`"), "{e}");
    assert_eq!(entries_left(dir.path()), 0);
}

#[test]
fn a_plain_directory_without_a_kernel_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = TsmPlatform::open(dir.path()).expect_err("no provider file");
    assert!(matches!(e, TeeError::Io { .. }), "{e}");
    assert!(e.to_string().contains("provider"), "{e}");
}

#[test]
fn a_race_is_retried_then_reported() {
    let mut kernel = tdx_kernel();
    kernel.fault = Fault::Race(1);
    let kernel = Arc::new(kernel);
    let (dir, tsm) = open(&kernel);
    tsm.evidence(&REPORT_DATA).expect("the second attempt wins");
    assert_eq!(kernel.log.lock().expect("log").inblobs.len(), 2);

    let mut kernel = tdx_kernel();
    kernel.fault = Fault::Race(usize::MAX);
    let kernel = Arc::new(kernel);
    let (dir2, tsm) = open(&kernel);
    let e = tsm.evidence(&REPORT_DATA).expect_err("always raced");
    assert!(
        e.to_string().contains(&format!(
            "another writer changed the report entry during each of {} attempts (generation went from 0 to 2, expected 1)",
            tsm::MAX_ATTEMPTS
        )),
        "{e}"
    );
    assert_eq!(kernel.log.lock().expect("log").inblobs.len(), tsm::MAX_ATTEMPTS as usize);
    assert_eq!(entries_left(dir.path()) + entries_left(dir2.path()), 0);
}

#[test]
fn a_truncated_outblob_is_refused() {
    let mut kernel = tdx_kernel();
    kernel.fault = Fault::Truncated;
    let kernel = Arc::new(kernel);
    let (_dir, tsm) = open(&kernel);
    let e = tsm.evidence(&REPORT_DATA).expect_err("truncated");
    assert!(matches!(e, TeeError::Device { .. }));
    assert!(e.to_string().contains("the TDX quote is truncated: 2503 bytes"), "{e}");
}

#[test]
fn a_stale_outblob_is_refused() {
    let mut kernel = tdx_kernel();
    kernel.fault = Fault::Stale;
    let kernel = Arc::new(kernel);
    let (_dir, tsm) = open(&kernel);
    let e = tsm.evidence(&REPORT_DATA).expect_err("stale");
    assert!(e.to_string().contains("binds other report data than was written to inblob"), "{e}");
}

#[test]
fn confidential_vms_have_no_hardware_sealing_key_here() {
    let kernel = Arc::new(tdx_kernel());
    let (_dir, tsm) = open(&kernel);
    let e = tsm.sealing_root().expect_err("no sealing key");
    assert!(matches!(e, TeeError::Unsupported { platform: "tdx", .. }));
    assert!(e.to_string().starts_with("tdx has no hardware sealing key: "), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Gramine.

/// A fake `/dev/attestation` serving the real SGX quote.
fn gramine(attestation_type: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("attestation_type"), attestation_type).expect("type");
    std::fs::write(dir.path().join("user_report_data"), b"").expect("report data");
    std::fs::write(dir.path().join("quote"), read("dcap-qvl/sgx_quote")).expect("quote");
    dir
}

fn quote_report_data() -> [u8; 64] {
    read("dcap-qvl/sgx_quote")[368..432].try_into().expect("64 bytes")
}

#[test]
fn gramine_quote_comes_back_after_the_report_data_is_written() {
    let dir = gramine("dcap\n");
    let sgx = SgxPlatform::open(dir.path()).expect("Gramine");
    assert_eq!(sgx.info().kind, PlatformKind::Sgx);
    // The fake's quote is fixed, so ask for the report data it binds.
    let report_data = quote_report_data();
    let evidence = sgx.evidence(&report_data).expect("quote");
    assert_eq!(std::fs::read(dir.path().join("user_report_data")).expect("written"), report_data);
    assert_eq!(evidence.native, read("dcap-qvl/sgx_quote"));
    assert!(evidence.endorsements.is_empty());
}

#[test]
fn gramine_quote_for_other_report_data_is_refused() {
    let dir = gramine("dcap");
    let sgx = SgxPlatform::open(dir.path()).expect("Gramine");
    let e = sgx.evidence(&REPORT_DATA).expect_err("stale quote");
    assert!(e.to_string().contains("binds other report data than was written to user_report_data"), "{e}");
    std::fs::write(dir.path().join("quote"), &read("dcap-qvl/sgx_quote")[..1000]).expect("truncate");
    let e = sgx.evidence(&quote_report_data()).expect_err("truncated");
    assert!(e.to_string().contains("the quote is truncated: 1000 bytes"), "{e}");
}

#[test]
fn gramine_without_dcap_or_at_all_is_named() {
    let e = SgxPlatform::open(gramine("epid").path()).expect_err("epid");
    assert!(e.to_string().contains("the enclave's attestation type is `epid`, not `dcap`"), "{e}");
    let dir = tempfile::tempdir().expect("temp dir");
    let e = SgxPlatform::open(&dir.path().join("attestation")).expect_err("absent");
    assert!(matches!(e, TeeError::NotFound { .. }));
    assert!(e.to_string().contains("is this process running inside a Gramine SGX enclave"), "{e}");
}

#[test]
fn gramine_sealing_root_derives_from_the_mrenclave_key() {
    let dir = gramine("dcap");
    let sgx = SgxPlatform::open(dir.path()).expect("Gramine");
    let e = sgx.sealing_root().expect_err("no keys directory");
    assert!(matches!(e, TeeError::NotFound { .. }), "{e}");
    std::fs::create_dir(dir.path().join("keys")).expect("keys");
    let key_file = dir.path().join(lamina_tee::sgx::SEALING_KEY);
    std::fs::write(&key_file, [3; 16]).expect("key");
    let root = sgx.sealing_root().expect("root");
    assert_eq!(*root.0, *sgx.sealing_root().expect("again").0, "deterministic");
    assert_ne!(root.0[..16], [3; 16], "not the raw key");
    std::fs::write(&key_file, [4; 16]).expect("other key");
    assert_ne!(*root.0, *sgx.sealing_root().expect("other").0);
    std::fs::write(&key_file, [4; 15]).expect("short key");
    assert!(sgx.sealing_root().expect_err("short").to_string().contains("15 bytes, not 16"));
}
