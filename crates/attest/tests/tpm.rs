//! TPM quote verification: the recorded swtpm vector and its negative twins, and the whole
//! Lamina flow on a live swtpm (credential activation, module PCR, quote, appraisal).
#![allow(clippy::expect_used, reason = "a test: a failed expectation is the failure, with its message")]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lamina_attest::tpm::{self, Parts};
use lamina_attest::{Appraisal, TrustAnchors};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/swtpm-local/");

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}{name}")).expect("test vector")
}

/// 2027-01-01: after the vector's certificates were issued (2026-11-24), before they expire (9999).
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_798_761_600)
}

/// The recorded quote, editable.
struct Vector {
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: Vec<u8>,
    ak: Vec<u8>,
    ek: Vec<u8>,
    anchors: TrustAnchors,
}

impl Vector {
    fn load() -> Self {
        let anchors = TrustAnchors {
            tpm_roots: vec![vector("swtpm-localca-rootca-cert.pem"), vector("swtpm-localca-issuercert.pem")],
            ..TrustAnchors::default()
        };
        Self {
            attest: vector("quote.msg"),
            signature: vector("quote.sig"),
            pcrs: vector("quote.pcrs"),
            ak: vector("ak.pem"),
            ek: vector("ekcert_ecc.der"),
            anchors,
        }
    }

    fn appraise(&self) -> Appraisal {
        tpm::verify_parts(&Parts {
            attest: &self.attest,
            signature: &self.signature,
            pcrs: &self.pcrs,
            ak_public_key: &self.ak,
            ek_certificate: Some(&self.ek),
            chain: &[],
            anchors: &self.anchors,
            at: vector_time(),
        })
    }
}

fn nonce() -> Vec<u8> {
    hex::decode(String::from_utf8(vector("nonce.hex")).expect("text").trim()).expect("hex nonce")
}

/// Asserts that exactly the named check failed.
fn only_failed(appraisal: &Appraisal, name: &str) {
    assert!(appraisal.failed(name), "{name} should fail: {:#?}", appraisal.checks);
    let failed: Vec<&str> = appraisal.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, vec![name], "{:#?}", appraisal.checks);
}

#[test]
fn recorded_swtpm_quote_verifies() {
    let appraisal = Vector::load().appraise();
    assert!(appraisal.verified(), "{:#?}", appraisal.reasons());
    assert_eq!(appraisal.report_data, nonce());
    for name in ["tpm.evidence.parse", "tpm.attest.magic", "tpm.ak.signature", "tpm.pcr_digest", "tpm.ek.chain"] {
        assert!(appraisal.checks.iter().any(|c| c.name == name && c.ok), "{name}");
    }
    assert_eq!(appraisal.measurements["pcr0"], "00".repeat(32));
    assert!(appraisal.measurements["pcr16"].starts_with("18d4c3f3"));
    assert_eq!(appraisal.measurements.len(), 6);
}

#[test]
fn a_flipped_byte_in_the_quote_breaks_the_signature() {
    let mut v = Vector::load();
    // In the firmware version: still a well-formed quote, no longer the signed one.
    v.attest[0x60] ^= 1;
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn a_flipped_byte_in_the_magic_is_named() {
    let mut v = Vector::load();
    v.attest[0] ^= 0x80;
    let appraisal = v.appraise();
    assert!(appraisal.failed("tpm.attest.magic"));
    assert!(appraisal.failed("tpm.ak.signature"));
}

#[test]
fn a_flipped_byte_in_the_signature_is_rejected() {
    let mut v = Vector::load();
    let last = v.signature.len() - 1;
    v.signature[last] ^= 1;
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn a_flipped_byte_in_the_ek_certificate_is_rejected() {
    let mut v = Vector::load();
    // In the certificate's signature value (the last bytes).
    let last = v.ek.len() - 1;
    v.ek[last] ^= 1;
    only_failed(&v.appraise(), "tpm.ek.chain");
}

#[test]
fn an_ek_certificate_from_an_untrusted_ca_is_rejected() {
    let mut v = Vector::load();
    v.anchors.tpm_roots.clear();
    only_failed(&v.appraise(), "tpm.ek.chain");
}

#[test]
fn a_wrong_nonce_is_visible_in_the_report_data() {
    // The verifier reports the qualifying data; comparing it with the expected nonce is the
    // caller's job. A quote made for another nonce reports that other nonce.
    let appraisal = Vector::load().appraise();
    let mut other = nonce();
    other[0] ^= 1;
    assert_ne!(appraisal.report_data, other);
    // And changing the nonce inside the quote breaks its signature.
    let mut v = Vector::load();
    let at = v.attest.windows(32).position(|w| w == nonce().as_slice()).expect("nonce in quote");
    v.attest[at] ^= 1;
    let tampered = v.appraise();
    only_failed(&tampered, "tpm.ak.signature");
    assert_ne!(tampered.report_data, nonce());
}

#[test]
fn a_changed_pcr_value_breaks_the_digest() {
    let mut v = Vector::load();
    // The first byte of PCR 16's value (the sixth digest entry).
    let at = 132 + 4 + 4 + 5 * 66 + 2;
    v.pcrs[at] ^= 1;
    only_failed(&v.appraise(), "tpm.pcr_digest");
}

#[test]
fn a_wrong_ak_is_rejected() {
    let mut v = Vector::load();
    let other = p256::SecretKey::random(&mut rand_core::OsRng);
    use p256::pkcs8::EncodePublicKey as _;
    v.ak = other.public_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("pem").into_bytes();
    only_failed(&v.appraise(), "tpm.ak.signature");
}

#[test]
fn no_ek_certificate_is_named() {
    let v = Vector::load();
    let appraisal = tpm::verify_parts(&Parts {
        attest: &v.attest,
        signature: &v.signature,
        pcrs: &v.pcrs,
        ak_public_key: &v.ak,
        ek_certificate: None,
        chain: &[],
        anchors: &v.anchors,
        at: vector_time(),
    });
    only_failed(&appraisal, "tpm.ek.chain");
}

/// The whole flow on a live swtpm: enrolment by credential activation, module PCR, quote,
/// appraisal. Each test fails when swtpm is missing, and skips (saying so) only under LAMINA_SKIP_SWTPM=1.
mod live {
    use std::time::SystemTime;

    use lamina_attest::tpm::credential::{self, EnrolmentError, EnrolmentRequest, PendingEnrolment};
    use lamina_attest::tpm::evidence::TpmEvidence;
    use lamina_attest::tpm::{self, MODULE_PCR};
    use lamina_attest::{Appraisal, Inputs, TrustAnchors};
    use lamina_tee::Envelope;
    use lamina_tee_tpm::swtpm::Swtpm;
    use lamina_tee_tpm::{EkKind, TpmOptions, TpmPlatform};
    use lamina_types::{Claims, ModuleHash, PlatformKind, report_data_of};
    use rand_core::OsRng;

    use super::only_failed;

    struct Node {
        platform: TpmPlatform,
        anchors: TrustAnchors,
        // Dropped last: swtpm outlives the platform's connection.
        _state: tempfile::TempDir,
        _tpm: Swtpm,
    }

    fn node_with(options: TpmOptions) -> Option<Node> {
        let tpm = Swtpm::start_unless_skipped().expect("swtpm starts")?;
        let state = tempfile::tempdir().expect("state dir");
        let platform = TpmPlatform::open_with(tpm.tcti(), state.path(), options).expect("the TPM platform opens");
        let anchors = TrustAnchors { tpm_roots: tpm.ca_certificates().to_vec(), ..TrustAnchors::default() };
        Some(Node { platform, anchors, _state: state, _tpm: tpm })
    }

    fn node() -> Option<Node> {
        node_with(TpmOptions::default())
    }

    impl Node {
        fn request(&self) -> EnrolmentRequest<'_> {
            EnrolmentRequest {
                ek_public: self.platform.ek_public(),
                ek_certificate: self.platform.ek_certificate().expect("swtpm has an EK certificate"),
                chain: &[],
                ak_public: self.platform.ak_public(),
            }
        }

        /// Enrols the AK by credential activation and trusts it.
        fn enrol(&mut self) {
            let (pending, credential) =
                PendingEnrolment::start(&self.request(), &self.anchors, SystemTime::now(), &mut OsRng)
                    .expect("enrolment starts");
            let secret = self
                .platform
                .activate_credential(&credential.id_object, &credential.encrypted_secret)
                .expect("the TPM activates");
            let name = pending.finish(&secret).expect("the secret matches");
            assert_eq!(name, self.platform.ak_name());
            // The EK and the policy session are gone again: only the AK stays loaded.
            assert_eq!(self.platform.loaded_handles().expect("lists handles").len(), 1);
            self.anchors.tpm_enrolled_aks.push(name);
        }

        fn appraise(&self, evidence: &[u8], endorsements: &[Vec<u8>]) -> Appraisal {
            tpm::verify(&Inputs {
                evidence,
                endorsements,
                collateral: None,
                anchors: &self.anchors,
                at: SystemTime::now(),
            })
        }
    }

    fn claims(module: ModuleHash, nonce: u8) -> Claims {
        Claims {
            platform: PlatformKind::Tpm,
            runtime_measurement: vec![7; 32],
            module_hash: Some(module),
            config_digest: None,
            instance_key: None,
            nonce: vec![nonce; 32],
            issued_at: 1_790_000_000,
        }
    }

    fn attest(node: &Node, claims: &Claims) -> Envelope {
        lamina_tee::attest(&node.platform, claims).expect("the TPM attests")
    }

    #[test]
    fn enrolled_quote_of_a_module_verifies_and_binds_the_claims() {
        let Some(mut node) = node() else { return };
        node.enrol();
        let module = ModuleHash::of(b"(module $app)");
        node.platform.reset_module_pcr().expect("resets the module PCR");
        node.platform.extend_module(&module).expect("extends the module PCR");

        let first = claims(module, 1);
        let envelope = attest(&node, &first);
        let appraisal = node.appraise(&envelope.evidence, &envelope.endorsements);
        assert!(appraisal.verified(), "{:#?}", appraisal.reasons());
        for name in [
            "tpm.evidence.parse",
            "tpm.attest.magic",
            "tpm.ak.attributes",
            "tpm.ak.signature",
            "tpm.ak.enrolled",
            "tpm.qualifying_data",
            "tpm.pcr_digest",
            "tpm.ek.chain",
        ] {
            assert!(appraisal.checks.iter().any(|c| c.name == name && c.ok), "{name}: {:#?}", appraisal.checks);
        }
        assert_eq!(appraisal.platform, Some(PlatformKind::Tpm));
        assert_eq!(appraisal.report_data, report_data_of(&envelope.claims));
        assert_eq!(envelope.decode_claims().expect("claims decode"), first);
        assert_eq!(appraisal.measurements[&format!("pcr{MODULE_PCR}")], hex::encode(tpm::module_pcr_value(&[module])));
        assert_eq!(appraisal.measurements["pcr0"], "00".repeat(32));
        assert_eq!(appraisal.measurements.len(), 9);

        // A replayed quote: the old evidence is still genuine, but it binds the old claims,
        // so comparing its report data with the new challenge's claims exposes it.
        let second = claims(module, 2);
        let fresh = attest(&node, &second);
        let replayed = node.appraise(&envelope.evidence, &envelope.endorsements);
        assert!(replayed.verified());
        assert_ne!(replayed.report_data, report_data_of(&fresh.claims));
        assert_eq!(replayed.report_data, report_data_of(&envelope.claims));
        assert_eq!(node.appraise(&fresh.evidence, &fresh.endorsements).report_data, report_data_of(&fresh.claims));

        // Another module changes the module PCR the quote reports.
        node.platform.extend_module(&ModuleHash::of(b"other")).expect("extends");
        let later = node.appraise(&attest(&node, &second).evidence, &fresh.endorsements);
        assert!(later.verified());
        assert_ne!(later.measurements["pcr23"], appraisal.measurements["pcr23"]);
    }

    #[test]
    fn a_quote_by_an_unenrolled_ak_is_rejected() {
        let Some(node) = node() else { return };
        let envelope = attest(&node, &claims(ModuleHash::of(b"m"), 3));
        let appraisal = node.appraise(&envelope.evidence, &envelope.endorsements);
        only_failed(&appraisal, "tpm.ak.enrolled");
        // The quote itself is genuine: the report data is still reported.
        assert_eq!(appraisal.report_data, report_data_of(&envelope.claims));
    }

    #[test]
    fn tampered_live_evidence_is_rejected_by_name() {
        let Some(mut node) = node() else { return };
        node.enrol();
        let envelope = attest(&node, &claims(ModuleHash::of(b"m"), 4));
        let evidence = TpmEvidence::from_cbor(&envelope.evidence).expect("decodes");

        let mut pcr = evidence.clone();
        pcr.pcrs.insert(0, vec![1; 32]);
        only_failed(&node.appraise(&pcr.to_cbor(), &envelope.endorsements), "tpm.pcr_digest");

        let mut missing = evidence.clone();
        missing.pcrs.remove(&MODULE_PCR);
        only_failed(&node.appraise(&missing.to_cbor(), &envelope.endorsements), "tpm.pcr_digest");

        let mut report = evidence.clone();
        report.report_data[63] ^= 1;
        only_failed(&node.appraise(&report.to_cbor(), &envelope.endorsements), "tpm.qualifying_data");

        // The clock's low byte, right after the qualifying data: still a well-formed quote.
        let mut attest = evidence.clone();
        let at = attest.attest.windows(64).position(|w| w == evidence.report_data).expect("qualifying data") + 64 + 7;
        attest.attest[at] ^= 1;
        only_failed(&node.appraise(&attest.to_cbor(), &envelope.endorsements), "tpm.ak.signature");

        only_failed(&node.appraise(&envelope.evidence, &[]), "tpm.ek.chain");
        let mut bad_cert = envelope.endorsements.clone();
        let end = bad_cert[0].len() - 1;
        bad_cert[0][end] ^= 1;
        only_failed(&node.appraise(&envelope.evidence, &bad_cert), "tpm.ek.chain");
    }

    #[test]
    fn enrolment_fails_for_a_wrong_secret() {
        let Some(node) = node() else { return };
        let (pending, credential) =
            PendingEnrolment::start(&node.request(), &node.anchors, SystemTime::now(), &mut OsRng).expect("starts");
        let mut secret =
            node.platform.activate_credential(&credential.id_object, &credential.encrypted_secret).expect("activates");
        secret[0] ^= 1;
        assert!(matches!(pending.finish(&secret), Err(EnrolmentError::WrongSecret)));
    }

    #[test]
    fn enrolment_fails_for_an_ak_the_tpm_does_not_hold() {
        let Some(node) = node() else { return };
        // Another restricted signing key's public area (a different point): its name is not
        // the name of the AK the TPM holds, so the TPM refuses to release the secret.
        let mut other_ak = node.platform.ak_public().to_vec();
        let last = other_ak.len() - 1;
        other_ak[last] ^= 1;
        let request = EnrolmentRequest { ak_public: &other_ak, ..node.request() };
        let (_pending, credential) =
            PendingEnrolment::start(&request, &node.anchors, SystemTime::now(), &mut OsRng).expect("starts");
        let refused = node.platform.activate_credential(&credential.id_object, &credential.encrypted_secret);
        assert!(refused.is_err(), "the TPM must not activate a credential for another name");

        // Likewise a credential naming the AK but tampered with.
        let mut tampered =
            credential::make_credential(node.platform.ek_public(), node.platform.ak_name(), &[9; 32], &mut OsRng)
                .expect("makes");
        tampered.id_object[5] ^= 1;
        assert!(node.platform.activate_credential(&tampered.id_object, &tampered.encrypted_secret).is_err());
    }

    #[test]
    fn a_credential_for_another_tpm_does_not_activate() {
        let Some(first) = node() else { return };
        let Some(second) = node() else { return };
        let credential =
            credential::make_credential(first.platform.ek_public(), second.platform.ak_name(), &[3; 32], &mut OsRng)
                .expect("makes");
        assert!(second.platform.activate_credential(&credential.id_object, &credential.encrypted_secret).is_err());
    }

    #[test]
    fn enrolment_checks_the_ek_and_the_ak() {
        let Some(node) = node() else { return };
        let untrusted = TrustAnchors::default();
        let e =
            PendingEnrolment::start(&node.request(), &untrusted, SystemTime::now(), &mut OsRng).expect_err("no roots");
        assert!(matches!(e, EnrolmentError::EkChain(_)), "{e}");

        // The EK public area must hold the certified key.
        let mut other_ek = node.platform.ek_public().to_vec();
        let last = other_ek.len() - 1;
        other_ek[last] ^= 1;
        let request = EnrolmentRequest { ek_public: &other_ek, ..node.request() };
        let e = PendingEnrolment::start(&request, &node.anchors, SystemTime::now(), &mut OsRng).expect_err("other EK");
        assert!(matches!(e, EnrolmentError::Ek(_)), "{e}");

        // The EK itself is no attestation key (it decrypts, it does not sign).
        let request = EnrolmentRequest { ak_public: node.platform.ek_public(), ..node.request() };
        let e = PendingEnrolment::start(&request, &node.anchors, SystemTime::now(), &mut OsRng).expect_err("EK as AK");
        assert!(matches!(e, EnrolmentError::Ak(_)), "{e}");
    }

    #[test]
    fn the_rsa_ek_enrols_too() {
        let Some(mut node) = node_with(TpmOptions { ek_kind: Some(EkKind::Rsa2048), ..TpmOptions::default() }) else {
            return;
        };
        node.enrol();
        let envelope = attest(&node, &claims(ModuleHash::of(b"m"), 5));
        let appraisal = node.appraise(&envelope.evidence, &envelope.endorsements);
        assert!(appraisal.verified(), "{:#?}", appraisal.reasons());
    }
}
