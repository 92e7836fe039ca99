//! The TPM platform on a throwaway swtpm: keys, module PCR, quotes, sealing.
//! (Enrolment and verification, which need the verifier, are in `crates/attest/tests/tpm.rs`.)
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::os::unix::fs::PermissionsExt as _;

use lamina_tee::{Platform, TeeError};
use lamina_tee_tpm::swtpm::Swtpm;
use lamina_tee_tpm::{EkKind, MODULE_PCR, TpmError, TpmOptions, TpmPlatform};
use lamina_types::{ModuleHash, PlatformKind};
use sha2::{Digest as _, Sha256};

fn start() -> Option<(Swtpm, tempfile::TempDir)> {
    let tpm = Swtpm::start_unless_skipped().expect("swtpm starts")?;
    Some((tpm, tempfile::tempdir().expect("state dir")))
}

#[test]
fn the_platform_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TpmPlatform>();
}

#[test]
fn opens_with_the_certified_ek_and_an_attestation_key() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    // swtpm 0.7 certifies an ECC P-384 and an RSA 2048 EK; P-384 is preferred.
    assert_eq!(platform.ek_kind(), EkKind::EccP384);
    let cert = platform.ek_certificate().expect("an EK certificate");
    assert_eq!(cert.first(), Some(&0x30));
    assert_eq!(platform.endorsements(), vec![cert.to_vec()]);
    assert_eq!(platform.ak_name().len(), 34);
    assert_eq!(platform.ak_name()[..2], [0x00, 0x0b]);
    assert_eq!(platform.qualifying_data_len(), 64, "libtpms implements SHA-512");
    let info = platform.info();
    assert_eq!(info.kind, PlatformKind::Tpm);
    assert!(info.hardware_backed);

    // The AK is a primary key: the same after reopening.
    let name = platform.ak_name().to_vec();
    drop(platform);
    let again = TpmPlatform::open(tpm.tcti(), state.path()).expect("reopens");
    assert_eq!(again.ak_name(), name);
    // Dropping the first platform flushed its AK: only the new one is loaded.
    assert_eq!(again.loaded_handles().expect("lists").len(), 1);
}

#[test]
fn the_rsa_ek_can_be_chosen() {
    let Some((tpm, state)) = start() else { return };
    let options = TpmOptions { ek_kind: Some(EkKind::Rsa2048), ..TpmOptions::default() };
    let platform = TpmPlatform::open_with(tpm.tcti(), state.path(), options).expect("opens");
    assert_eq!(platform.ek_kind(), EkKind::Rsa2048);
    assert!(platform.ek_certificate().is_some());
}

#[test]
fn modules_extend_the_module_pcr_from_a_reset() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    platform.reset_module_pcr().expect("resets");
    let read = || platform.read_pcrs(&[MODULE_PCR]).expect("reads")[&MODULE_PCR].clone();
    assert_eq!(read(), vec![0u8; 32]);
    let module = ModuleHash::of(b"(module)");
    platform.extend_module(&module).expect("extends");
    let expected: [u8; 32] = Sha256::new().chain_update([0u8; 32]).chain_update(module.as_bytes()).finalize().into();
    assert_eq!(read(), expected);
    platform.reset_module_pcr().expect("resets");
    assert_eq!(read(), vec![0u8; 32]);
}

#[test]
fn evidence_carries_the_report_data_and_the_quoted_pcrs() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    let evidence = platform.evidence(&[0x5a; 64]).expect("quotes");
    let value: ciborium::Value = ciborium::from_reader(evidence.native.as_slice()).expect("CBOR");
    let items = value.into_array().expect("an array");
    assert_eq!(items.len(), 6);
    assert_eq!(items[0].as_text(), Some("lamina-tpm-evidence-v1"));
    assert_eq!(items[1].as_bytes().map(Vec::as_slice), Some(&[0x5a; 64][..]));
    let pcrs = items[4].as_map().expect("a map");
    let indices: Vec<i128> = pcrs.iter().map(|(k, _)| k.as_integer().expect("integer").into()).collect();
    assert_eq!(indices, vec![0, 1, 2, 3, 4, 5, 6, 7, 23]);
    // The qualifying data (64 bytes on swtpm) is inside the signed attestation.
    let attest = items[2].as_bytes().expect("bytes");
    assert!(attest.windows(64).any(|w| w == [0x5a; 64]));
    assert_eq!(evidence.endorsements.len(), 1);
}

#[test]
fn activation_refuses_garbage() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    assert!(platform.activate_credential(&[0, 2, 1, 2, 3, 4], &[0, 1, 9, 0, 1, 9]).is_err());
    // The platform still works afterwards, with nothing left loaded but the AK.
    for _ in 0..4 {
        platform.evidence(&[1; 64]).expect("quotes");
    }
    assert_eq!(platform.loaded_handles().expect("lists").len(), 1);
}

#[test]
fn every_operation_leaves_only_the_attestation_key_loaded() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    let only_ak = || {
        let loaded = platform.loaded_handles().expect("lists");
        assert_eq!(loaded.len(), 1, "{loaded:x?}");
        assert_eq!(loaded[0] >> 24, 0x80, "a transient object: {loaded:x?}");
    };
    only_ak();
    platform.reset_module_pcr().expect("resets");
    platform.extend_module(&ModuleHash::of(b"m")).expect("extends");
    only_ak();
    platform.evidence(&[2; 64]).expect("quotes");
    only_ak();
    platform.sealing_root().expect("creates a root");
    only_ak();
    platform.sealing_root().expect("unseals");
    only_ak();
    platform.danger_extend_pcr(7, [3; 32]).expect("extends PCR 7");
    platform.sealing_root().expect_err("sealed to the old PCR 7");
    only_ak();
}

#[test]
fn the_sealing_root_persists_and_is_bound_to_pcr_7() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    let root = platform.sealing_root().expect("creates a root");
    assert_eq!(*platform.sealing_root().expect("unseals").0, *root.0);
    let file = state.path().join("tpm").join("sealing-root.cbor");
    let mode = std::fs::metadata(&file).expect("sealed file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(state.path().join("tpm")).expect("dir").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    // The root is not stored in clear.
    let stored = std::fs::read(&file).expect("read");
    assert!(!stored.windows(32).any(|w| w == root.0.as_slice()));

    drop(platform);
    let reopened = TpmPlatform::open(tpm.tcti(), state.path()).expect("reopens");
    assert_eq!(*reopened.sealing_root().expect("unseals after reopening").0, *root.0);

    // Many unseals leave nothing loaded.
    for _ in 0..5 {
        reopened.sealing_root().expect("unseals");
    }

    // A changed boot state (PCR 7) keeps the root sealed.
    reopened.danger_extend_pcr(7, [1; 32]).expect("extends PCR 7");
    match reopened.unseal_root() {
        Err(TpmError::PolicyMismatch { pcrs, .. }) => assert_eq!(pcrs, vec![7]),
        other => panic!("expected a policy mismatch, got {other:?}"),
    }
    let e = reopened.sealing_root().expect_err("sealed to the old PCR 7");
    assert!(e.to_string().contains("sealed to other values of PCRs [7]"), "{e}");
}

#[test]
fn a_damaged_sealed_root_is_reported() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    platform.sealing_root().expect("creates a root");
    let file = state.path().join("tpm").join("sealing-root.cbor");
    std::fs::write(&file, b"not a sealed root").expect("damage");
    assert!(matches!(platform.sealing_root(), Err(TeeError::CorruptState { .. })));
}

#[test]
fn a_sealed_root_from_another_tpm_is_reported() {
    let Some((first, state)) = start() else { return };
    TpmPlatform::open(first.tcti(), state.path()).expect("opens").sealing_root().expect("creates a root");
    let Some((second, _)) = start() else { return };
    let other = TpmPlatform::open(second.tcti(), state.path()).expect("opens");
    let e = other.sealing_root().expect_err("another TPM's blob");
    assert!(e.to_string().contains("damaged"), "{e}");
}

#[test]
fn an_unreachable_tpm_is_an_error() {
    let state = tempfile::tempdir().expect("state dir");
    // Port 1 on loopback: nothing listens there.
    let e = TpmPlatform::open("swtpm:host=127.0.0.1,port=1", state.path()).expect_err("unreachable");
    assert!(e.to_string().contains("cannot reach the TPM"), "{e}");
    let e = TpmPlatform::open("nonsense-tcti:x", state.path()).expect_err("bad TCTI");
    assert!(matches!(e, TpmError::Connect { .. }), "{e}");
}

#[test]
fn nv_counters_only_go_up_and_survive_reopening() {
    let Some((tpm, state)) = start() else { return };
    let platform = TpmPlatform::open(tpm.tcti(), state.path()).expect("opens");
    let (id, mut counter) = platform.create_counter().expect("defines an NV counter");
    let (other_id, _) = platform.create_counter().expect("a second counter");
    assert_ne!(id, other_id, "each counter has its own index");
    let start = counter.read().expect("reads");
    assert_eq!(counter.advance_to(start + 2).expect("advances"), start + 2);
    assert_eq!(counter.advance_to(start).expect("never decreases"), start + 2);
    let far = counter.advance_to(start + 1000).expect_err("bounded steps");
    assert!(far.to_string().contains("steps at once"), "{far}");
    assert!(counter.describe().contains("TPM NV counter"));
    drop(counter);
    drop(platform);
    let again = TpmPlatform::open(tpm.tcti(), state.path()).expect("reopens");
    assert_eq!(again.open_counter(&id).expect("opens").read().expect("reads"), start + 2);
    let missing = again.open_counter(&lamina_tee::CounterId(vec![0x01, 0x5f, 0xff, 0xff])).err().expect("undefined");
    assert!(missing.to_string().contains("NV counter"), "{missing}");
}
