//! The result every platform verifier produces, and the inputs it gets.

use std::collections::BTreeMap;
use std::time::SystemTime;

use lamina_types::{Claims, PlatformKind};
use serde::Serialize;

/// One named check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable dotted name, e.g. `snp.signature` or `policy.snp.measurement`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found: for a failure, what is wrong and, where it helps, what to do.
    pub detail: String,
}

/// What a verifier found in a piece of evidence.
///
/// Measurement names are fixed per platform so that policies can refer to them:
/// byte values are lowercase hex, numbers decimal, flags `true`/`false`.
/// - sgx: `mr_enclave`, `mr_signer`, `isv_prod_id`, `isv_svn`, `debug`
/// - tdx: `mr_td`, `rtmr0`..`rtmr3`, `mr_config_id`, `mr_owner`, `mr_seam`, `debug`
/// - snp: `measurement`, `host_data`, `policy`, `debug`, `vmpl`, `tcb_bootloader`, `tcb_tee`,
///   `tcb_snp`, `tcb_microcode` (the reported TCB)
/// - tpm: `pcr0`..`pcr23` (SHA-256 bank)
/// - cca: `realm_initial_measurement`, `rem0`..`rem3`, `realm_personalization_value`,
///   `platform_implementation_id`, `platform_lifecycle`
/// - sim: `device_key`
///
/// Verifiers may add more (SNP `guest_svn`, `family_id`…, CCA `platform_lifecycle_state`…):
/// [`crate::policy::measurement_names`] lists every name a policy may refer to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Appraisal {
    /// The platform the evidence comes from, once known.
    pub platform: Option<PlatformKind>,
    /// The platform's TCB status (DCAP: `UpToDate`, `OutOfDate`, ...; SNP: derived), if any.
    pub tcb_status: Option<String>,
    /// Security advisories that apply to the platform's TCB (DCAP: `INTEL-SA-...`).
    pub advisories: Vec<String>,
    /// Named measurements read from the evidence.
    pub measurements: BTreeMap<String, String>,
    /// The report data (or qualifying data, or challenge) the evidence binds.
    #[serde(with = "hex_bytes")]
    pub report_data: Vec<u8>,
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// The Lamina claims the evidence binds, when it came in an envelope.
    #[serde(skip)]
    pub claims: Option<Claims>,
}

impl Appraisal {
    /// An empty appraisal for a platform.
    pub fn new(platform: PlatformKind) -> Self {
        Self { platform: Some(platform), ..Self::default() }
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), ok: true, detail: detail.into() });
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), ok: false, detail: detail.into() });
    }

    /// Records a check from a result (`Ok(detail)` passes, `Err(detail)` fails); returns whether it passed.
    pub fn check(&mut self, name: impl Into<String>, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.checks.push(Check { name: name.into(), ok, detail });
        ok
    }

    /// Sets a measurement.
    pub fn measure(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.measurements.insert(name.into(), value.into());
    }

    /// Whether every check passed (and at least one was made).
    pub fn verified(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks as `name: detail` lines.
    pub fn reasons(&self) -> Vec<String> {
        self.checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect()
    }

    /// Whether a check of this name was made and failed.
    pub fn failed(&self, name: &str) -> bool {
        self.checks.iter().any(|c| !c.ok && c.name == name)
    }
}

/// The roots a verifier trusts, besides those built into it.
///
/// Certificates are DER. Nothing that arrives with the evidence is ever added here: evidence
/// endorsements only help build a chain to one of these.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    /// Intel SGX root CAs (the built-in Intel SGX Root CA is always trusted).
    pub intel_roots: Vec<Vec<u8>>,
    /// AMD ARK, ASK and ASVK certificates (the built-in Milan, Genoa and Turin chains are always trusted).
    pub amd_roots: Vec<Vec<u8>>,
    /// TPM manufacturer root and intermediate CAs for endorsement-key certificates.
    pub tpm_roots: Vec<Vec<u8>>,
    /// TPM attestation keys the operator trusts: enrolled by credential activation, or given
    /// directly. Each entry is a key's TPM name (nameAlg + digest of its public area).
    pub tpm_enrolled_aks: Vec<Vec<u8>>,
    /// CCA trust anchors: JSON files in Veraison's format (CPAK keys).
    pub cca_anchors: Vec<Vec<u8>>,
    /// CCA reference values: JSON files in Veraison's format.
    pub cca_reference_values: Vec<Vec<u8>>,
    /// Public keys (SEC1) of sim CAs whose evidence is accepted when the policy allows sim.
    pub sim_ca_keys: Vec<Vec<u8>>,
}

/// What a platform verifier is given.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The native evidence bytes (a quote, a report, a token).
    pub evidence: &'a [u8],
    /// Untrusted endorsements that came with the evidence (an envelope's), or that the user
    /// supplied with `--cert`: DER or PEM certificates, SNP certificate tables, keys.
    pub endorsements: &'a [Vec<u8>],
    /// DCAP collateral in the PCCS JSON format, for SGX and TDX.
    pub collateral: Option<&'a [u8]>,
    /// The trusted roots.
    pub anchors: &'a TrustAnchors,
    /// The time at which certificates, CRLs and collateral must be valid.
    pub at: SystemTime,
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_needs_checks_and_all_passing() {
        let mut a = Appraisal::new(PlatformKind::Sim);
        assert!(!a.verified());
        a.pass("x", "fine");
        assert!(a.verified());
        a.check("y", Err("broken".into()));
        assert!(!a.verified());
        assert!(a.failed("y"));
        assert_eq!(a.reasons(), vec!["y: broken".to_owned()]);
    }
}
