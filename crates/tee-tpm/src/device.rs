//! One connection to a TPM and the TPM commands Lamina needs.
//!
//! The device keeps exactly one transient object loaded between calls, the attestation key,
//! and flushes every other object and session it creates before returning (there may be no
//! resource manager between Lamina and the TPM: swtpm over TCP has none, and a TPM holds only
//! three transient objects). Dropping the device flushes the attestation key.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use sha2::{Digest as _, Sha256};
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ek as tss_ek};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::{AlgorithmIdentifier, CapabilityType, SessionType, Tss2ResponseCodeKind};
use tss_esapi::handles::AuthHandle;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PcrHandle, PersistentTpmHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    AttestInfo, CapabilityData, Data, Digest, DigestList, DigestValues, EncryptedSecret, IdObject, Nonce,
    PcrSelectionList, PcrSlot, Private, Public, SensitiveData, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::traits::{Marshall as _, UnMarshall as _};
use tss_esapi::{Context, TctiNameConf};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use zeroize::Zeroizing;

use crate::templates::{self, EkKind};
use crate::{MODULE_PCR, TpmError};

/// The PCRs Lamina quotes (SHA-256 bank): the firmware and boot chain (0-7) and the module PCR.
pub const QUOTED_PCRS: [u8; 9] = [0, 1, 2, 3, 4, 5, 6, 7, MODULE_PCR];

/// TCG EK Credential Profile 2.x, policy C for SHA-384 (PolicyAuthorizeNV on the EK policy
/// index); the high-range EK templates' policy B is PolicyOR(policy A, policy C).
const POLICY_C_SHA384: [u8; 48] = [
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef, 0x2b, 0x6a, 0x16,
    0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5, 0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6,
    0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
];

/// What the device found when it opened.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) ek_kind: EkKind,
    pub(crate) ek_public: Vec<u8>,
    pub(crate) ek_certificate: Option<Vec<u8>>,
    pub(crate) ak_public: Vec<u8>,
    pub(crate) ak_name: Vec<u8>,
    pub(crate) qualifying_len: usize,
}

/// Where the EK comes from when it is needed again.
#[derive(Clone, Copy, Debug)]
enum EkSource {
    /// A primary key created from the TCG template.
    Template(EkKind),
    /// A persistent key (when the manufacturer's EK is not the template's).
    Persistent(u32),
}

/// A quote and the PCR values it covers.
pub(crate) struct Quoted {
    pub(crate) attest: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) pcrs: BTreeMap<u8, Vec<u8>>,
}

/// A TPM connection with the attestation key loaded.
pub(crate) struct Device {
    ctx: Context,
    ak: KeyHandle,
    ek: EkSource,
    qualifying_len: usize,
}

impl Drop for Device {
    fn drop(&mut self) {
        // Nothing to report to at drop; the context's own drop would retry.
        let _ = self.ctx.flush_context(self.ak.into());
    }
}

fn password<T>(ctx: &mut Context, f: impl FnOnce(&mut Context) -> T) -> T {
    ctx.execute_with_session(Some(AuthSession::Password), f)
}

impl Device {
    /// Connects, finds the EK and its certificate, and creates the attestation key.
    pub(crate) fn open(tcti: &str, ek_kind: Option<EkKind>) -> Result<(Self, Identity), TpmError> {
        let connect = |source| TpmError::Connect { tcti: tcti.to_owned(), source };
        let conf = TctiNameConf::from_str(tcti).map_err(connect)?;
        let mut ctx = Context::new(conf).map_err(connect)?;
        let qualifying_len = qualifying_capacity(&mut ctx)?;
        let (kind, certificate) = find_ek_certificate(&mut ctx, ek_kind)?;
        let (ek, ek_public) = find_ek(&mut ctx, kind, certificate.as_deref())?;

        let template = templates::attestation_key()?;
        let ak = password(&mut ctx, |c| c.create_primary(Hierarchy::Endorsement, template, None, None, None, None))
            .map_err(TpmError::command("create the attestation key"))?
            .key_handle;
        let mut device = Self { ctx, ak, ek, qualifying_len };
        let (public, name, _) = device.ctx.read_public(ak).map_err(TpmError::command("read the attestation key"))?;
        let ak_public = public.marshall().map_err(TpmError::command("encode the attestation key"))?;
        let computed = [&[0x00, 0x0b][..], &Sha256::digest(&ak_public)].concat();
        if computed != name.value() {
            return Err(TpmError::Unexpected("the attestation key's name is not SHA-256 of its public area".into()));
        }
        let identity = Identity {
            ek_kind: kind,
            ek_public,
            ek_certificate: certificate,
            ak_public,
            ak_name: computed,
            qualifying_len,
        };
        Ok((device, identity))
    }

    /// Quotes the [`QUOTED_PCRS`] with the first bytes of the report data the TPM holds, and
    /// reads their values; retries if they change in between.
    pub(crate) fn quote(&mut self, report_data: &[u8; 64]) -> Result<Quoted, TpmError> {
        let qualifying = report_data.get(..self.qualifying_len).unwrap_or(report_data.as_slice());
        let data = Data::try_from(qualifying.to_vec()).map_err(TpmError::command("prepare the qualifying data"))?;
        let selection = selection(&QUOTED_PCRS)?;
        for _ in 0..3 {
            let ak = self.ak;
            let (attest, signature) =
                password(&mut self.ctx, |c| c.quote(ak, data.clone(), SignatureScheme::Null, selection.clone()))
                    .map_err(TpmError::command("quote"))?;
            let pcrs = self.read_pcrs(&QUOTED_PCRS)?;
            let AttestInfo::Quote { info } = attest.attested() else {
                return Err(TpmError::Unexpected("the quote is not a quote".into()));
            };
            let mut digest = Sha256::new();
            for value in pcrs.values() {
                digest.update(value);
            }
            if digest.finalize().as_slice() == info.pcr_digest().value() {
                return Ok(Quoted {
                    attest: attest.marshall().map_err(TpmError::command("encode the quote"))?,
                    signature: signature.marshall().map_err(TpmError::command("encode the signature"))?,
                    pcrs,
                });
            }
        }
        Err(TpmError::PcrsChanging)
    }

    /// Reads SHA-256 PCR values (at most eight per TPM2_PCR_Read).
    pub(crate) fn read_pcrs(&mut self, indices: &[u8]) -> Result<BTreeMap<u8, Vec<u8>>, TpmError> {
        let mut out = BTreeMap::new();
        for chunk in indices.chunks(8) {
            let (_, _, digests) = self.ctx.execute_without_session(|c| {
                c.pcr_read(selection(chunk)?.clone()).map_err(TpmError::command("read PCRs"))
            })?;
            let mut sorted = chunk.to_vec();
            sorted.sort_unstable();
            if digests.len() != sorted.len() {
                return Err(TpmError::Unexpected(format!("{} PCR values for {} PCRs", digests.len(), sorted.len())));
            }
            for (index, digest) in sorted.into_iter().zip(digests.value()) {
                out.insert(index, digest.value().to_vec());
            }
        }
        Ok(out)
    }

    /// Extends a SHA-256 digest into a PCR.
    pub(crate) fn extend(&mut self, pcr: u8, digest: &[u8; 32]) -> Result<(), TpmError> {
        let handle = pcr_handle(pcr)?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(TpmError::command("prepare the PCR extension"))?,
        );
        password(&mut self.ctx, |c| c.pcr_extend(handle, values)).map_err(TpmError::command("extend the PCR"))
    }

    /// Resets a resettable PCR.
    pub(crate) fn reset(&mut self, pcr: u8) -> Result<(), TpmError> {
        let handle = pcr_handle(pcr)?;
        password(&mut self.ctx, |c| c.pcr_reset(handle)).map_err(TpmError::command("reset the PCR"))
    }

    /// TPM2_ActivateCredential with the attestation key and the EK: the credential's secret.
    pub(crate) fn activate(
        &mut self,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let id = IdObject::try_from(id_object.to_vec()).map_err(TpmError::command("read the credential"))?;
        let secret =
            EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(TpmError::command("read the credential"))?;
        let (ek, transient) = self.load_ek()?;
        let result = self.activate_with(ek, id, secret);
        self.release(ek, transient);
        result
    }

    fn activate_with(
        &mut self,
        ek: KeyHandle,
        id: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let (ek_public, _, _) = self.ctx.read_public(ek).map_err(TpmError::command("read the EK"))?;
        let hash = ek_public.name_hashing_algorithm();
        let session = self
            .ctx
            .start_auth_session(None, None, None, SessionType::Policy, SymmetricDefinition::Null, hash)
            .map_err(TpmError::command("start a policy session for the EK"))?
            .ok_or_else(|| TpmError::Unexpected("no policy session".into()))?;
        let result = (|| {
            let satisfied = self.satisfy_ek_policy(session, hash, ek_public.auth_policy())?;
            // Templates whose policy Lamina cannot satisfy may still allow the (empty) auth value.
            let ek_session = if satisfied || !ek_public.object_attributes().user_with_auth() {
                session
            } else {
                AuthSession::Password
            };
            let ak = self.ak;
            let digest = self
                .ctx
                .execute_with_sessions((Some(AuthSession::Password), Some(ek_session), None), |c| {
                    c.activate_credential(ak, ek, id, secret)
                })
                .map_err(TpmError::command("activate the credential"))?;
            Ok(Zeroizing::new(digest.value().to_vec()))
        })();
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        result
    }

    /// Runs the EK Credential Profile's policy (PolicySecret on the endorsement hierarchy, and
    /// for SHA-384 templates its OR with policy C); says whether it reached the EK's policy.
    fn satisfy_ek_policy(
        &mut self,
        session: AuthSession,
        hash: HashingAlgorithm,
        target: &Digest,
    ) -> Result<bool, TpmError> {
        let policy = PolicySession::try_from(session).map_err(TpmError::command("use the policy session"))?;
        password(&mut self.ctx, |c| {
            c.policy_secret(
                policy,
                AuthHandle::Endorsement,
                Nonce::default(),
                Digest::default(),
                Nonce::default(),
                None,
            )
        })
        .map_err(TpmError::command("authorise the EK by the endorsement hierarchy"))?;
        let mut digest = self.ctx.policy_get_digest(policy).map_err(TpmError::command("read the policy digest"))?;
        if digest != *target && hash == HashingAlgorithm::Sha384 {
            let mut branches = DigestList::new();
            let c = Digest::try_from(POLICY_C_SHA384.to_vec()).map_err(TpmError::command("prepare policy C"))?;
            branches.add(digest).and_then(|()| branches.add(c)).map_err(TpmError::command("prepare the policy OR"))?;
            self.ctx.policy_or(policy, branches).map_err(TpmError::command("run the EK's policy OR"))?;
            digest = self.ctx.policy_get_digest(policy).map_err(TpmError::command("read the policy digest"))?;
        }
        Ok(digest == *target)
    }

    fn load_ek(&mut self) -> Result<(KeyHandle, bool), TpmError> {
        match self.ek {
            EkSource::Template(kind) => {
                let template = kind.template()?;
                let handle = password(&mut self.ctx, |c| {
                    c.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
                })
                .map_err(TpmError::command("create the EK"))?
                .key_handle;
                Ok((handle, true))
            }
            EkSource::Persistent(raw) => {
                let tpm_handle = PersistentTpmHandle::new(raw).map_err(TpmError::command("name the persistent EK"))?;
                let handle = self
                    .ctx
                    .execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
                    .map_err(TpmError::command("open the persistent EK"))?;
                Ok((handle.into(), false))
            }
        }
    }

    /// Flushes a transient object, or forgets the ESYS handle of a persistent one.
    fn release(&mut self, handle: KeyHandle, transient: bool) {
        // Cleanup after the result is known: a failure here cannot change it.
        if transient {
            let _ = self.ctx.flush_context(handle.into());
        } else {
            let mut object: ObjectHandle = handle.into();
            let _ = self.ctx.tr_close(&mut object);
        }
    }

    /// The transient objects and sessions loaded in the TPM now.
    pub(crate) fn loaded(&mut self) -> Result<Vec<u32>, TpmError> {
        let mut out = handles(&mut self.ctx, 0x8000_0000)?;
        out.extend(handles(&mut self.ctx, 0x0200_0000)?);
        out.extend(handles(&mut self.ctx, 0x0300_0000)?);
        Ok(out)
    }

    /// Random bytes from the TPM.
    pub(crate) fn random(&mut self, len: usize) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        while out.len() < len {
            let chunk = self.ctx.get_random(len - out.len()).map_err(TpmError::command("get random bytes"))?;
            if chunk.value().is_empty() {
                return Err(TpmError::Unexpected("the TPM returned no random bytes".into()));
            }
            out.extend_from_slice(chunk.value());
        }
        out.truncate(len);
        Ok(out)
    }

    /// Seals `data` under the SRK to the current values of `pcrs`: the sealed object's
    /// TPMT_PUBLIC and TPM2B_PRIVATE contents.
    pub(crate) fn seal(&mut self, data: &[u8], pcrs: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let policy = self.pcr_policy_digest(pcrs)?;
        let template = templates::sealed_object(policy)?;
        let sensitive =
            SensitiveData::try_from(data.to_vec()).map_err(TpmError::command("prepare the data to seal"))?;
        let srk = self.create_srk()?;
        let created = password(&mut self.ctx, |c| c.create(srk, template, None, Some(sensitive), None, None))
            .map_err(TpmError::command("seal the data"));
        let _ = self.ctx.flush_context(srk.into());
        let created = created?;
        let public = created.out_public.marshall().map_err(TpmError::command("encode the sealed object"))?;
        Ok((public, created.out_private.value().to_vec()))
    }

    /// Unseals a sealed object under the current values of `pcrs`, over a session salted with
    /// the SRK that encrypts the response (the secret never crosses the bus in clear).
    /// `Ok(None)` when the PCRs no longer have the sealed values.
    pub(crate) fn unseal(
        &mut self,
        public: &[u8],
        private: &[u8],
        pcrs: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, TpmError> {
        let public = Public::unmarshall(public).map_err(TpmError::command("decode the sealed object"))?;
        let private = Private::try_from(private.to_vec()).map_err(TpmError::command("decode the sealed object"))?;
        let srk = self.create_srk()?;
        let result = (|| {
            let object = password(&mut self.ctx, |c| c.load(srk, private, public))
                .map_err(TpmError::command("load the sealed object"))?;
            let result = self.unseal_loaded(srk, object.into(), pcrs);
            let _ = self.ctx.flush_context(object.into());
            result
        })();
        let _ = self.ctx.flush_context(srk.into());
        result
    }

    fn unseal_loaded(
        &mut self,
        srk: KeyHandle,
        object: ObjectHandle,
        pcrs: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, TpmError> {
        let session = self
            .ctx
            .start_auth_session(
                Some(srk),
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(TpmError::command("start the unseal session"))?
            .ok_or_else(|| TpmError::Unexpected("no policy session".into()))?;
        let result = (|| {
            let (attributes, mask) = SessionAttributesBuilder::new().with_encrypt(true).build();
            self.ctx
                .tr_sess_set_attributes(session, attributes, mask)
                .map_err(TpmError::command("set the session's attributes"))?;
            let policy = PolicySession::try_from(session).map_err(TpmError::command("use the policy session"))?;
            self.ctx
                .policy_pcr(policy, Digest::default(), selection(pcrs)?)
                .map_err(TpmError::command("bind the session to the PCRs"))?;
            match self
                .ctx
                .execute_with_session(Some(session), |c| c.unseal(object))
                .map_err(TpmError::command("unseal"))
            {
                Ok(data) => Ok(Some(Zeroizing::new(data.value().to_vec()))),
                Err(e) if e.response_kind() == Some(Tss2ResponseCodeKind::PolicyFail) => Ok(None),
                Err(e) => Err(e),
            }
        })();
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        result
    }

    fn create_srk(&mut self) -> Result<KeyHandle, TpmError> {
        let template = templates::storage_root_key()?;
        Ok(password(&mut self.ctx, |c| c.create_primary(Hierarchy::Owner, template, None, None, None, None))
            .map_err(TpmError::command("create the storage root key"))?
            .key_handle)
    }

    /// The policy digest of PolicyPCR over the current values of `pcrs`, from a trial session.
    fn pcr_policy_digest(&mut self, pcrs: &[u8]) -> Result<Digest, TpmError> {
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Trial,
                SymmetricDefinition::Null,
                HashingAlgorithm::Sha256,
            )
            .map_err(TpmError::command("start a trial session"))?
            .ok_or_else(|| TpmError::Unexpected("no trial session".into()))?;
        let result = (|| {
            let policy = PolicySession::try_from(session).map_err(TpmError::command("use the trial session"))?;
            self.ctx
                .policy_pcr(policy, Digest::default(), selection(pcrs)?)
                .map_err(TpmError::command("compute the PCR policy"))?;
            self.ctx.policy_get_digest(policy).map_err(TpmError::command("read the PCR policy"))
        })();
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        result
    }
}

/// A SHA-256 PCR selection.
fn selection(indices: &[u8]) -> Result<PcrSelectionList, TpmError> {
    let slots = indices
        .iter()
        .map(|i| {
            1u32.checked_shl(u32::from(*i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or_else(|| TpmError::Unexpected(format!("PCR {i} does not exist")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionList::builder()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(TpmError::command("build a PCR selection"))
}

fn pcr_handle(pcr: u8) -> Result<PcrHandle, TpmError> {
    match pcr {
        16 => Ok(PcrHandle::Pcr16),
        23 => Ok(PcrHandle::Pcr23),
        7 => Ok(PcrHandle::Pcr7),
        other => Err(TpmError::Unexpected(format!("Lamina does not extend or reset PCR {other}"))),
    }
}

/// How many bytes of the report data the quote carries: `TPM2B_DATA` holds a `TPMT_HA` (the
/// largest digest the TPM implements, and its 2-byte algorithm), so a whole digest of that size.
fn qualifying_capacity(ctx: &mut Context) -> Result<usize, TpmError> {
    let (data, _) = ctx
        .execute_without_session(|c| c.get_capability(CapabilityType::Algorithms, 0, 256))
        .map_err(TpmError::command("list its algorithms"))?;
    let CapabilityData::Algorithms(algorithms) = data else {
        return Err(TpmError::Unexpected("the algorithm list is not a list of algorithms".into()));
    };
    let capacity = if algorithms.find(AlgorithmIdentifier::Sha512).is_some() {
        64
    } else if algorithms.find(AlgorithmIdentifier::Sha384).is_some() {
        48
    } else {
        32
    };
    Ok(capacity)
}

/// The handles of a range (`first` gives the handle type).
fn handles(ctx: &mut Context, first: u32) -> Result<Vec<u32>, TpmError> {
    let mut out = Vec::new();
    let mut next = first;
    loop {
        let (data, more) = ctx
            .execute_without_session(|c| c.get_capability(CapabilityType::Handles, next, 64))
            .map_err(TpmError::command("list handles"))?;
        let CapabilityData::Handles(list) = data else {
            return Err(TpmError::Unexpected("the handle list is not a list of handles".into()));
        };
        let page: Vec<u32> = list.into_inner().into_iter().map(u32::from).filter(|h| h >> 24 == first >> 24).collect();
        let Some(last) = page.last().copied() else { break };
        out.extend(page);
        if !more {
            break;
        }
        next = last.saturating_add(1);
    }
    Ok(out)
}

/// The preferred EK with a certificate in NV (or `wanted`), and that certificate (DER, trimmed
/// of any padding after it). With no certificate at all: the P-256 EK, uncertified.
fn find_ek_certificate(ctx: &mut Context, wanted: Option<EkKind>) -> Result<(EkKind, Option<Vec<u8>>), TpmError> {
    let defined = handles(ctx, 0x0100_0000)?;
    let candidates: Vec<EkKind> = match wanted {
        Some(kind) => vec![kind],
        None => EkKind::PREFERENCE.to_vec(),
    };
    for kind in candidates.iter().copied() {
        if !defined.contains(&kind.certificate_index()) {
            continue;
        }
        let selection = match kind {
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        };
        let raw = tss_ek::retrieve_ek_pubcert(ctx, selection).map_err(TpmError::command("read the EK certificate"))?;
        let der = match X509Certificate::from_der(&raw) {
            Ok((rest, _)) => raw.get(..raw.len() - rest.len()).unwrap_or_default().to_vec(),
            Err(e) => {
                return Err(TpmError::Ek(format!(
                    "the certificate at NV index 0x{:08x} does not parse: {e}",
                    kind.certificate_index()
                )));
            }
        };
        return Ok((kind, Some(der)));
    }
    Ok((candidates.first().copied().unwrap_or(EkKind::EccP256), None))
}

/// The EK: the TCG template's primary key if it holds the certified key (or there is no
/// certificate), else a persistent key that does. Returns where it is and its TPMT_PUBLIC.
fn find_ek(ctx: &mut Context, kind: EkKind, certificate: Option<&[u8]>) -> Result<(EkSource, Vec<u8>), TpmError> {
    let template = kind.template()?;
    let created = password(ctx, |c| c.create_primary(Hierarchy::Endorsement, template, None, None, None, None))
        .map_err(TpmError::command("create the EK"))?;
    let _ = ctx.flush_context(created.key_handle.into());
    let Some(certificate) = certificate else {
        return Ok((
            EkSource::Template(kind),
            created.out_public.marshall().map_err(TpmError::command("encode the EK"))?,
        ));
    };
    let certified = certified_key(certificate)?;
    if holds(&created.out_public, &certified) {
        return Ok((
            EkSource::Template(kind),
            created.out_public.marshall().map_err(TpmError::command("encode the EK"))?,
        ));
    }
    for raw in handles(ctx, 0x8100_0000)? {
        let Ok(tpm_handle) = PersistentTpmHandle::new(raw) else { continue };
        let Ok(handle) = ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
        else {
            continue;
        };
        let public = ctx.read_public(handle.into()).map(|(p, _, _)| p);
        let mut close = handle;
        let _ = ctx.tr_close(&mut close);
        if let Ok(public) = public
            && holds(&public, &certified)
        {
            return Ok((EkSource::Persistent(raw), public.marshall().map_err(TpmError::command("encode the EK"))?));
        }
    }
    Err(TpmError::Ek(format!(
        "neither the {kind} EK template nor any persistent key holds the key certified at NV index 0x{:08x}",
        kind.certificate_index()
    )))
}

/// The certified key's bytes: the SEC1 point, or the RSA modulus.
fn certified_key(der: &[u8]) -> Result<Vec<u8>, TpmError> {
    use x509_parser::public_key::PublicKey as Spki;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| TpmError::Ek(format!("the EK certificate does not parse: {e}")))?;
    match cert.public_key().parsed() {
        Ok(Spki::EC(point)) => Ok(point.data().to_vec()),
        Ok(Spki::RSA(key)) => Ok(key.modulus.iter().skip_while(|b| **b == 0).copied().collect()),
        _ => Err(TpmError::Ek("the EK certificate holds neither an EC nor an RSA key".into())),
    }
}

/// Whether a TPM public key is the certified key (in [`certified_key`]'s form).
fn holds(public: &Public, certified: &[u8]) -> bool {
    match public {
        Public::Ecc { unique, .. } => {
            // Coordinates may come without their leading zero bytes.
            let size = certified.len().saturating_sub(1) / 2;
            let pad = |v: &[u8]| {
                let v: Vec<u8> = v.iter().skip_while(|b| **b == 0).copied().collect();
                (v.len() <= size).then(|| [vec![0u8; size - v.len()], v].concat())
            };
            match (pad(unique.x().value()), pad(unique.y().value())) {
                (Some(x), Some(y)) => [&[4u8][..], &x, &y].concat() == certified,
                _ => false,
            }
        }
        Public::Rsa { unique, .. } => {
            unique.value().iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>() == certified
        }
        _ => false,
    }
}

/// The NV indices Lamina uses for counters: a block of the owner range (TCG reserves
/// 0x01C0_0000 and above for the platform's own indices).
pub(crate) const COUNTER_INDEX_BASE: u32 = 0x0150_0000;

/// How many indices the block holds.
pub(crate) const COUNTER_INDEX_SPAN: u32 = 0x0001_0000;

impl Device {
    /// Defines an NV counter at `index` (owner-authorised, readable and writable by the owner,
    /// exempt from dictionary-attack lockout) and increments it once so that it holds a value.
    /// `Ok(false)` when the index is already taken.
    pub(crate) fn define_counter(&mut self, index: u32) -> Result<bool, TpmError> {
        use tss_esapi::attributes::NvIndexAttributesBuilder;
        use tss_esapi::constants::NvIndexType;
        use tss_esapi::handles::NvIndexTpmHandle;
        use tss_esapi::interface_types::resource_handles::{NvAuth, Provision};
        use tss_esapi::structures::NvPublicBuilder;

        let tpm_index = NvIndexTpmHandle::new(index).map_err(TpmError::command("name the NV counter"))?;
        let attributes = NvIndexAttributesBuilder::new()
            .with_nv_index_type(NvIndexType::Counter)
            .with_owner_write(true)
            .with_owner_read(true)
            .with_no_da(true)
            .build()
            .map_err(TpmError::command("describe the NV counter"))?;
        let public = NvPublicBuilder::new()
            .with_nv_index(tpm_index)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(8)
            .build()
            .map_err(TpmError::command("describe the NV counter"))?;
        let handle = match password(&mut self.ctx, |c| c.nv_define_space(Provision::Owner, None, public))
            .map_err(TpmError::command("define the NV counter"))
        {
            Ok(handle) => handle,
            Err(e) if e.response_kind() == Some(Tss2ResponseCodeKind::NvDefined) => return Ok(false),
            Err(e) => return Err(e),
        };
        let result = password(&mut self.ctx, |c| c.nv_increment(NvAuth::Owner, handle))
            .map_err(TpmError::command("initialise the NV counter"));
        let mut object: ObjectHandle = handle.into();
        let _ = self.ctx.tr_close(&mut object);
        result.map(|()| true)
    }

    /// Reads the counter at `index`, after incrementing it `increments` times.
    pub(crate) fn counter(&mut self, index: u32, increments: u32) -> Result<u64, TpmError> {
        use tss_esapi::handles::{NvIndexHandle, NvIndexTpmHandle};
        use tss_esapi::interface_types::resource_handles::NvAuth;

        let tpm_index = NvIndexTpmHandle::new(index).map_err(TpmError::command("name the NV counter"))?;
        let mut object = self
            .ctx
            .tr_from_tpm_public(TpmHandle::NvIndex(tpm_index))
            .map_err(TpmError::command("find the NV counter"))?;
        let handle = NvIndexHandle::from(object);
        let result = (|| {
            for _ in 0..increments {
                password(&mut self.ctx, |c| c.nv_increment(NvAuth::Owner, handle))
                    .map_err(TpmError::command("increment the NV counter"))?;
            }
            let data = password(&mut self.ctx, |c| c.nv_read(NvAuth::Owner, handle, 8, 0))
                .map_err(TpmError::command("read the NV counter"))?;
            let bytes: [u8; 8] = data
                .as_slice()
                .try_into()
                .map_err(|_| TpmError::Unexpected(format!("the NV counter holds {} bytes, not 8", data.len())))?;
            Ok(u64::from_be_bytes(bytes))
        })();
        let _ = self.ctx.tr_close(&mut object);
        result
    }
}
