//! Lamina envelopes from the sim platform through the verifier: binding, nonce, freshness,
//! policy and EAR results, with a tampered twin for each check.
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_attest::{Expect, Policy, TrustAnchors, Verifier, issue_ear, results::read_ear};
use lamina_tee::Platform as _;
use lamina_tee::sim::SimPlatform;
use lamina_types::{Claims, Envelope, ModuleHash, PlatformKind};

const NOW: u64 = 1_790_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn claims(module: &[u8], nonce: &[u8]) -> Claims {
    Claims {
        platform: PlatformKind::Sim,
        runtime_measurement: vec![7; 32],
        module_hash: Some(ModuleHash::of(module)),
        config_digest: None,
        instance_key: Some(b"key".to_vec()),
        nonce: nonce.to_vec(),
        issued_at: NOW,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    sim: SimPlatform,
}

fn sim() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = SimPlatform::open(dir.path()).expect("sim opens");
    Fixture { _dir: dir, sim }
}

fn verifier(policy: &str) -> Verifier {
    let mut anchors = TrustAnchors::default();
    let policy = Policy::parse(policy, Path::new("."), &mut anchors).expect("policy parses");
    Verifier::new(Some(policy), anchors)
}

fn expect(nonce: &[u8]) -> Expect<'_> {
    Expect { nonce: Some(nonce), at: at(NOW + 10), ..Expect::now() }
}

fn allow(module: &[u8]) -> String {
    format!("allow_sim = true\nmodule_hashes = [\"{}\"]\n", ModuleHash::of(module))
}

#[test]
fn genuine_sim_envelope_is_accepted_when_the_policy_allows_sim() {
    let f = sim();
    let envelope = lamina_tee::attest(&f.sim, &claims(b"app", &[1; 16])).expect("attests");
    let a = verifier(&allow(b"app")).appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    assert!(a.verified(), "{:?}", a.reasons());
    for name in ["sim.signature", "sim.endorsement", "claims.binding", "claims.nonce", "policy.module_hash"] {
        assert!(a.checks.iter().any(|c| c.name == name && c.ok), "{name} passed");
    }
    assert_eq!(a.claims.expect("claims").module_hash, Some(ModuleHash::of(b"app")));
}

#[test]
fn without_allow_sim_the_same_envelope_is_rejected() {
    let f = sim();
    let envelope = lamina_tee::attest(&f.sim, &claims(b"app", &[1; 16])).expect("attests");
    let a = verifier("").appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    assert!(!a.verified());
    assert!(a.failed("policy.allow_sim"), "{:?}", a.reasons());
    // Without any policy, the evidence is genuine, but nothing is accepted unappraised: the one
    // failed check asks for a policy.
    let a = Verifier::default().appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    assert!(!a.verified(), "fails closed");
    assert_eq!(a.reasons().len(), 1, "{:?}", a.reasons());
    assert!(a.failed(lamina_attest::NO_POLICY), "{:?}", a.reasons());
}

#[test]
fn each_tampering_is_rejected_with_its_reason() {
    let f = sim();
    let good = lamina_tee::attest(&f.sim, &claims(b"app", &[1; 16])).expect("attests");
    let v = verifier(&allow(b"app"));
    let cases: Vec<(&str, Envelope, Expect<'_>)> = vec![
        ("claims.nonce", good.clone(), expect(&[2; 16])),
        (
            "claims.binding",
            Envelope { claims: claims(b"other", &[1; 16]).to_cbor().expect("claims"), ..good.clone() },
            expect(&[1; 16]),
        ),
        (
            "sim.signature",
            {
                let mut e = good.clone();
                let mut ev = lamina_types::sim_evidence::SimEvidence::from_cbor(&e.evidence).expect("decodes");
                ev.report_data[0] ^= 1;
                e.evidence = ev.to_cbor();
                e
            },
            expect(&[1; 16]),
        ),
        ("sim.evidence.parse", Envelope { evidence: vec![0xa0], ..good.clone() }, expect(&[1; 16])),
        ("policy.max_age", good.clone(), Expect { at: at(NOW + 3600), ..expect(&[1; 16]) }),
        ("claims.time", good.clone(), Expect { at: at(NOW - 3600), ..expect(&[1; 16]) }),
        ("claims.instance_key", good.clone(), Expect { instance_key: Some(b"another key"), ..expect(&[1; 16]) }),
        ("claims.platform", Envelope { platform: PlatformKind::Snp, ..good.clone() }, expect(&[1; 16])),
    ];
    for (reason, envelope, expect) in cases {
        let a = v.appraise_envelope(&envelope.to_cbor(), &expect);
        assert!(!a.verified(), "{reason}: accepted");
        assert!(a.failed(reason), "{reason}: {:?}", a.reasons());
    }
    let a = v.appraise_envelope(b"\x00garbage", &expect(&[1; 16]));
    assert!(a.failed("envelope.parse"));
}

#[test]
fn a_module_outside_the_policy_is_rejected() {
    let f = sim();
    let envelope = lamina_tee::attest(&f.sim, &claims(b"intruder", &[1; 16])).expect("attests");
    let a = verifier(&allow(b"app")).appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    assert!(a.failed("policy.module_hash"), "{:?}", a.reasons());
}

#[test]
fn pinned_sim_ca_rejects_another_machine() {
    let f = sim();
    let other = sim();
    let envelope = lamina_tee::attest(&other.sim, &claims(b"app", &[1; 16])).expect("attests");
    let policy = format!("{}sim_ca_keys = [\"{}\"]\n", allow(b"app"), hex::encode(f.sim.ca_public_key()));
    let a = verifier(&policy).appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    assert!(a.failed("sim.endorsement"), "{:?}", a.reasons());
    let mine = lamina_tee::attest(&f.sim, &claims(b"app", &[1; 16])).expect("attests");
    assert!(verifier(&policy).appraise_envelope(&mine.to_cbor(), &expect(&[1; 16])).verified());
}

#[test]
fn ear_results_are_signed_and_expire() {
    let f = sim();
    let envelope = lamina_tee::attest(&f.sim, &claims(b"app", &[1; 16])).expect("attests");
    let a = verifier(&allow(b"app")).appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    let key = p256::SecretKey::random(&mut rand_core::OsRng);
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let public = key.public_key().to_public_key_pem(LineEnding::LF).expect("pem");
    let now = SystemTime::now();
    let token = issue_ear(&a, pem.as_bytes(), Duration::from_secs(600), now).expect("signs");
    let ear = read_ear(&token, &public, now).expect("reads");
    let sub = &ear.submods["lamina"];
    assert_eq!(sub.status, ear::TrustTier::Warning, "sim hardware is unsafe, so the tier is at best warning");
    assert!(read_ear(&token, &public, now + Duration::from_secs(601)).is_err(), "expired");
    let other = p256::SecretKey::random(&mut rand_core::OsRng).public_key().to_public_key_pem(LineEnding::LF);
    assert!(read_ear(&token, &other.expect("pem"), now).is_err(), "wrong key");
    // A rejected appraisal yields a contraindicated result.
    let bad = verifier("").appraise_envelope(&envelope.to_cbor(), &expect(&[1; 16]));
    let token = issue_ear(&bad, pem.as_bytes(), Duration::from_secs(600), now).expect("signs");
    let ear = read_ear(&token, &public, now).expect("reads");
    assert_eq!(ear.submods["lamina"].status, ear::TrustTier::Contraindicated);
}

#[test]
fn sim_evidence_for_raw_report_data_round_trips() {
    let f = sim();
    let evidence = f.sim.evidence(&[9; 64]).expect("evidence");
    let inputs = lamina_attest::Inputs {
        evidence: &evidence.native,
        endorsements: &evidence.endorsements,
        collateral: None,
        anchors: &TrustAnchors::default(),
        at: SystemTime::now(),
    };
    let a = lamina_attest::sim::verify(&inputs);
    assert!(a.verified(), "{:?}", a.reasons());
    assert_eq!(a.report_data, vec![9; 64]);
}
