//! Self-attestation for guests: a workload asks the node's platform for evidence about itself,
//! over its own claims (runtime measurement, module hash, configuration digest) and up to 64
//! bytes of its own data, for its application protocols, as Twine and WaTZ offered.
//!
//! The user data becomes the claims' nonce (zero-padded to EAT's 8-byte minimum), so a relying
//! party checks it with `lamina verify --nonce`. When the node has a verifier configured (an
//! [`Appraiser`]), the guest also gets the signed attestation result. Components see
//! `lamina:attestation/attest`; core modules the `lamina:attestation` imports.

#![deny(missing_docs)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use lamina_host_abi::{Status, call};
use lamina_tee::Platform;
use lamina_types::{Claims, Envelope, ModuleHash};
use wasmtime::Caller;

/// The most user data a guest may bind.
pub const MAX_USER_DATA: usize = 64;
/// EAT's smallest nonce: shorter user data is zero-padded to this.
pub const MIN_NONCE: usize = 8;

/// Appraises a workload's evidence and signs the result: the verifier, when one is configured.
pub trait Appraiser: Send + Sync {
    /// Appraises the envelope, expecting this nonce, and returns the signed attestation result
    /// (an EAR as a JWT), whatever its verdict.
    ///
    /// # Errors
    /// Why no result could be signed.
    fn appraise(&self, envelope: &Envelope, nonce: &[u8]) -> Result<String, String>;
}

/// What is fixed for a workload's claims.
#[derive(Clone, Debug)]
pub struct Identity {
    /// SHA-256 of the runtime binary.
    pub runtime_measurement: Vec<u8>,
    /// The workload.
    pub module_hash: ModuleHash,
    /// SHA-256 of its configuration.
    pub config_digest: Option<[u8; 32]>,
}

/// Evidence a guest asked for.
#[derive(Clone, Debug)]
pub struct SelfEvidence {
    /// The envelope, CBOR.
    pub envelope: Vec<u8>,
    /// The platform kind.
    pub platform: String,
    /// Whether it is a hardware TEE.
    pub hardware_backed: bool,
    /// The signed attestation result, when a verifier is configured.
    pub result: Option<String>,
}

/// Why there is no evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestError {
    /// More than [`MAX_USER_DATA`] bytes.
    UserDataTooLong(usize),
    /// The platform could not attest (or no platform is configured).
    Unavailable(String),
}

impl std::fmt::Display for AttestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttestError::UserDataTooLong(n) => write!(f, "{n} bytes of user data; the most is {MAX_USER_DATA}"),
            AttestError::Unavailable(why) => write!(f, "attestation is unavailable: {why}"),
        }
    }
}

impl std::error::Error for AttestError {}

/// A node's attestation service for one workload.
pub struct Attester {
    platform: Mutex<Box<dyn Platform + Send>>,
    identity: Identity,
    appraiser: Option<Arc<dyn Appraiser>>,
}

impl std::fmt::Debug for Attester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attester")
            .field("identity", &self.identity)
            .field("appraiser", &self.appraiser.is_some())
            .finish_non_exhaustive()
    }
}

/// The claims' nonce for some user data.
pub fn nonce_for(user_data: &[u8]) -> Vec<u8> {
    let mut nonce = user_data.to_vec();
    if nonce.len() < MIN_NONCE {
        nonce.resize(MIN_NONCE, 0);
    }
    nonce
}

impl Attester {
    /// A service on this platform for this workload, with an optional verifier.
    pub fn new(platform: Box<dyn Platform + Send>, identity: Identity, appraiser: Option<Arc<dyn Appraiser>>) -> Self {
        Attester { platform: Mutex::new(platform), identity, appraiser }
    }

    /// The workload's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The platform's evidence over the workload's claims binding a key (`instance_key`: its
    /// SubjectPublicKeyInfo, DER) under a nonce: what an attested TLS certificate of the
    /// workload carries (`lamina serve --attested-tls`). Not for guests: they bind data through
    /// [`Attester::attest`].
    ///
    /// # Errors
    /// [`AttestError::Unavailable`] when the platform cannot attest.
    pub fn attest_key(&self, spki: &[u8], nonce: &[u8]) -> Result<lamina_types::Envelope, AttestError> {
        let platform = self.platform.lock().unwrap_or_else(PoisonError::into_inner);
        let claims = Claims {
            platform: platform.info().kind,
            runtime_measurement: self.identity.runtime_measurement.clone(),
            module_hash: Some(self.identity.module_hash),
            config_digest: self.identity.config_digest,
            instance_key: Some(spki.to_vec()),
            nonce: nonce.to_vec(),
            issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        lamina_tee::attest(platform.as_ref(), &claims).map_err(|e| AttestError::Unavailable(e.to_string()))
    }

    /// Evidence over the workload's claims and `user_data`.
    ///
    /// # Errors
    /// [`AttestError`] for too much user data or a platform failure.
    pub fn attest(&self, user_data: &[u8]) -> Result<SelfEvidence, AttestError> {
        if user_data.len() > MAX_USER_DATA {
            return Err(AttestError::UserDataTooLong(user_data.len()));
        }
        let nonce = nonce_for(user_data);
        let platform = self.platform.lock().unwrap_or_else(PoisonError::into_inner);
        let info = platform.info();
        let claims = Claims {
            platform: info.kind,
            runtime_measurement: self.identity.runtime_measurement.clone(),
            module_hash: Some(self.identity.module_hash),
            config_digest: self.identity.config_digest,
            instance_key: None,
            nonce: nonce.clone(),
            issued_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        let envelope = lamina_tee::attest(platform.as_ref(), &claims).map_err(|e| {
            tracing::warn!("a guest's attestation failed: {e}");
            AttestError::Unavailable(e.to_string())
        })?;
        drop(platform);
        let result = match &self.appraiser {
            None => None,
            Some(a) => match a.appraise(&envelope, &nonce) {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::warn!("the verifier could not appraise a guest's evidence: {e}");
                    return Err(AttestError::Unavailable(format!("the verifier failed: {e}")));
                }
            },
        };
        Ok(SelfEvidence {
            envelope: envelope.to_cbor(),
            platform: info.kind.to_string(),
            hardware_backed: info.hardware_backed,
            result,
        })
    }
}

/// One instance's attestation state.
#[derive(Debug, Default)]
pub struct AttestCtx {
    attester: Option<Arc<Attester>>,
    last: Option<SelfEvidence>,
}

impl AttestCtx {
    /// An instance's view of this service (none: attestation is unavailable).
    pub fn new(attester: Option<Arc<Attester>>) -> Self {
        AttestCtx { attester, last: None }
    }

    fn attest(&self, user_data: &[u8]) -> Result<SelfEvidence, AttestError> {
        match &self.attester {
            Some(a) => a.attest(user_data),
            None => Err(AttestError::Unavailable("this instance was started without a platform to attest".into())),
        }
    }
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "lamina:attestation/imports",
        imports: { default: trappable },
    });
}

use bindings::lamina::attestation::attest as wit;

impl wit::Host for AttestCtx {
    fn attest(&mut self, user_data: Vec<u8>) -> wasmtime::Result<Result<wit::Evidence, wit::Error>> {
        Ok(match AttestCtx::attest(self, &user_data) {
            Ok(e) => Ok(wit::Evidence {
                envelope: e.envelope,
                platform: e.platform,
                hardware_backed: e.hardware_backed,
                attestation_result: e.result,
            }),
            Err(AttestError::UserDataTooLong(n)) => Err(wit::Error::UserDataTooLong(n as u32)),
            Err(AttestError::Unavailable(why)) => Err(wit::Error::Unavailable(why)),
        })
    }

    fn module_hash(&mut self) -> wasmtime::Result<Vec<u8>> {
        Ok(self.attester.as_ref().map(|a| a.identity.module_hash.as_bytes().to_vec()).unwrap_or_default())
    }
}

/// Adds `lamina:attestation/attest` to a component linker; `get` finds each instance's context.
///
/// # Errors
/// When the linker already defines it.
pub fn add_to_component_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut AttestCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, wasmtime::component::HasSelf<AttestCtx>>(linker, get)
}

/// The core-ABI module name.
pub const CORE_MODULE: &str = "lamina:attestation";

/// Adds the core-ABI functions to a module linker:
///
/// - `attest(user_data, len) -> status`: produces evidence and keeps it for the two calls below
/// - `envelope(buf, cap, len_out) -> status`: the last evidence's envelope
/// - `result(buf, cap, len_out) -> status`: its signed attestation result; `NOT_FOUND` without a
///   verifier
/// - `module_hash(buf32) -> status`: the 32-byte module hash
///
/// # Errors
/// When the linker already defines them.
pub fn add_to_module_linker<T: 'static>(
    linker: &mut wasmtime::Linker<T>,
    get: fn(&mut T) -> &mut AttestCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap(CORE_MODULE, "attest", move |mut c: Caller<'_, T>, data: u32, len: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            if len as usize > MAX_USER_DATA {
                return Err(Status::InvalidArgument);
            }
            let evidence = ctx.attest(mem.bytes(data, len)?).map_err(|e| match e {
                AttestError::UserDataTooLong(_) => Status::InvalidArgument,
                AttestError::Unavailable(_) => Status::Unavailable,
            })?;
            ctx.last = Some(evidence);
            Ok(())
        })
    })?;
    linker.func_wrap(
        CORE_MODULE,
        "envelope",
        move |mut c: Caller<'_, T>, buf: u32, cap: u32, len_out: u32| -> i32 {
            call(&mut c, get, |mem, ctx| {
                let last = ctx.last.as_ref().ok_or(Status::NotFound)?;
                mem.output(buf, cap, len_out, &last.envelope)
            })
        },
    )?;
    linker.func_wrap(CORE_MODULE, "result", move |mut c: Caller<'_, T>, buf: u32, cap: u32, len_out: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            let token = ctx.last.as_ref().and_then(|l| l.result.as_ref()).ok_or(Status::NotFound)?;
            mem.output(buf, cap, len_out, token.as_bytes())
        })
    })?;
    linker.func_wrap(CORE_MODULE, "module_hash", move |mut c: Caller<'_, T>, buf: u32| -> i32 {
        call(&mut c, get, |mem, ctx| {
            let attester = ctx.attester.as_ref().ok_or(Status::Unavailable)?;
            mem.write(buf, attester.identity.module_hash.as_bytes())
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_tee::sim::SimPlatform;

    fn attester(dir: &std::path::Path) -> Attester {
        let sim = SimPlatform::open(dir).expect("sim");
        let identity =
            Identity { runtime_measurement: vec![1; 32], module_hash: ModuleHash::of(b"guest"), config_digest: None };
        Attester::new(Box::new(sim), identity, None)
    }

    #[test]
    fn evidence_binds_the_user_data_and_the_module() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = attester(dir.path());
        let e = a.attest(b"0123456789abcdef").expect("attests");
        let envelope = Envelope::from_cbor(&e.envelope).expect("an envelope");
        let claims = envelope.decode_claims().expect("claims");
        assert_eq!(claims.nonce, b"0123456789abcdef");
        assert_eq!(claims.module_hash, Some(ModuleHash::of(b"guest")));
        assert_eq!(e.platform, "sim");
        assert!(!e.hardware_backed);
        let short = a.attest(b"hi").expect("attests");
        let claims = Envelope::from_cbor(&short.envelope).expect("envelope").decode_claims().expect("claims");
        assert_eq!(claims.nonce, b"hi\0\0\0\0\0\0");
        assert!(a.attest(&[0; 64]).is_ok());
        assert_eq!(a.attest(&[0; 65]).map(|_| ()), Err(AttestError::UserDataTooLong(65)));
    }

    struct Host {
        attest: AttestCtx,
    }

    #[test]
    fn core_abi_status_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = wasmtime::Engine::default();
        let wat = r#"(module
            (import "lamina:attestation" "attest" (func $attest (param i32 i32) (result i32)))
            (import "lamina:attestation" "envelope" (func $env (param i32 i32 i32) (result i32)))
            (import "lamina:attestation" "result" (func $res (param i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "too_long") (result i32) (call $attest (i32.const 0) (i32.const 65)))
            (func (export "before") (result i32) (call $env (i32.const 1000) (i32.const 60000) (i32.const 0)))
            (func (export "ok") (result i32) (call $attest (i32.const 0) (i32.const 16)))
            (func (export "envelope") (result i32) (call $env (i32.const 1000) (i32.const 60000) (i32.const 0)))
            (func (export "result") (result i32) (call $res (i32.const 1000) (i32.const 60000) (i32.const 0))))"#;
        let module = wasmtime::Module::new(&engine, wat).expect("valid");
        let mut linker = wasmtime::Linker::<Host>::new(&engine);
        add_to_module_linker(&mut linker, |h| &mut h.attest).expect("links");
        let host = Host { attest: AttestCtx::new(Some(Arc::new(attester(dir.path())))) };
        let mut store = wasmtime::Store::new(&engine, host);
        let instance = linker.instantiate(&mut store, &module).expect("instantiates");
        let mut f = |name: &str| {
            instance.get_typed_func::<(), i32>(&mut store, name).expect("export").call(&mut store, ()).expect("no trap")
        };
        assert_eq!(f("too_long"), Status::InvalidArgument.code());
        assert_eq!(f("before"), Status::NotFound.code());
        assert_eq!(f("ok"), Status::Ok.code());
        assert_eq!(f("envelope"), Status::Ok.code());
        assert_eq!(f("result"), Status::NotFound.code(), "no verifier configured");
    }
}
