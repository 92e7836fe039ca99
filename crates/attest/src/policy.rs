//! The operator's policy: what evidence is trusted, as a TOML file.
//!
//! ```toml
//! allow_sim = false                       # sim evidence is rejected unless this is true
//! accepted_tcb_status = ["UpToDate"]      # the default
//! module_hashes = ["sha256:9f86d0..."]    # allowed workloads (empty: any)
//! max_age = "5m"                          # how old claims may be (default 5 minutes)
//! sim_ca_keys = ["04ab..."]               # sim CAs to accept (when allow_sim)
//!
//! [snp]                                   # reference values, one table per platform
//! measurement = ["5a1c..."]               # allowed values of a measurement
//! min_tcb_snp = 8                         # a minimum for a numeric measurement
//! allow_debug = false                     # the default: debug guests are rejected
//!
//! [anchors]                               # trust anchors, paths relative to this file
//! tpm_roots = ["ek-ca.pem"]
//! tpm_enrolled_aks = ["000b5f3c..."]
//! ```
//!
//! A platform table's keys are the measurement names of [`Appraisal`]: a list (or one string)
//! of allowed values, `min_<name>` for a numeric minimum, and `allow_debug`. Unknown names are
//! refused when the policy is loaded, so a typo never silently allows everything. Evidence from
//! a hardware platform is rejected when the policy has no reference values for it. Every
//! rejection is a failed check named `policy.<rule>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lamina_types::{ModuleHash, PlatformKind};
use serde::Deserialize;

use crate::{Appraisal, TrustAnchors};

/// The measurement names each platform's verifier reports (see [`Appraisal`]).
pub fn measurement_names(platform: PlatformKind) -> Vec<String> {
    let fixed: &[&str] = match platform {
        PlatformKind::Sgx => &["mr_enclave", "mr_signer", "isv_prod_id", "isv_svn", "debug"],
        PlatformKind::Tdx => {
            &["mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id", "mr_owner", "mr_seam", "debug"]
        }
        PlatformKind::Snp => &[
            "measurement",
            "host_data",
            "policy",
            "debug",
            "vmpl",
            "tcb_bootloader",
            "tcb_tee",
            "tcb_snp",
            "tcb_microcode",
            "tcb_fmc",
            "guest_svn",
            "family_id",
            "image_id",
            "id_key_digest",
            "author_key_digest",
            "report_version",
        ],
        PlatformKind::Cca => &[
            "realm_initial_measurement",
            "rem0",
            "rem1",
            "rem2",
            "rem3",
            "realm_personalization_value",
            "platform_implementation_id",
            "platform_lifecycle",
            "platform_lifecycle_state",
            "platform_instance_id",
            "platform_config",
            "platform_hash_algorithm",
            "platform_verification_service",
            "realm_hash_algorithm",
            "realm_public_key",
            "debug",
        ],
        PlatformKind::Sim => &["device_key"],
        PlatformKind::Tpm => &[],
        _ => &[],
    };
    let mut names: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    if platform == PlatformKind::Tpm {
        names.extend((0..24).map(|i| format!("pcr{i}")));
    }
    names
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read the policy {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or not the policy's shape.
    #[error("the policy is not valid: {0}")]
    Syntax(String),
    /// A rule that does not make sense.
    #[error("the policy's [{table}] table: {reason}")]
    Rule {
        /// The table.
        table: String,
        /// What is wrong, and what would be right.
        reason: String,
    },
    /// A trust anchor file could not be read or decoded.
    #[error("the policy's anchor {}: {reason}", path.display())]
    Anchor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One rule of a platform table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The measurement must be one of these values (lowercase).
    OneOf(Vec<String>),
    /// The measurement, a decimal number, must be at least this.
    AtLeast(u64),
}

/// Reference values for one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reference {
    /// Rules by measurement name.
    pub rules: BTreeMap<String, Rule>,
    /// Whether debug-mode evidence is accepted (default: no).
    pub allow_debug: bool,
}

/// The operator's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Whether `sim` evidence may be accepted.
    pub allow_sim: bool,
    /// TCB statuses accepted (compared case-sensitively with the verifier's status).
    pub accepted_tcb_status: Vec<String>,
    /// Allowed workloads; empty means any module.
    pub module_hashes: Vec<ModuleHash>,
    /// How old the claims may be.
    pub max_age: Duration,
    /// Reference values per platform.
    pub reference: BTreeMap<PlatformKind, Reference>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_sim: false,
            accepted_tcb_status: vec!["UpToDate".into()],
            module_hashes: Vec::new(),
            max_age: Duration::from_secs(300),
            reference: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// DANGER: a policy that accepts genuine evidence of any hardware platform whatever it
    /// measures: an empty reference table for each (so no measurement is checked, though
    /// debug-mode TEEs are still refused), any module, every TCB status but `Revoked`, and sim
    /// still refused. For looking at evidence (`lamina verify --danger-accept-any-measurement`),
    /// never for deciding whom to trust.
    pub fn danger_any_measurement() -> Self {
        let hardware = [PlatformKind::Tpm, PlatformKind::Sgx, PlatformKind::Tdx, PlatformKind::Snp, PlatformKind::Cca];
        Self {
            allow_sim: false,
            accepted_tcb_status: [
                "UpToDate",
                "SWHardeningNeeded",
                "ConfigurationNeeded",
                "ConfigurationAndSWHardeningNeeded",
                "OutOfDate",
                "OutOfDateConfigurationNeeded",
                "Uncommitted",
            ]
            .map(str::to_owned)
            .to_vec(),
            reference: hardware.into_iter().map(|p| (p, Reference::default())).collect(),
            ..Self::default()
        }
    }
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    allow_sim: bool,
    accepted_tcb_status: Option<Vec<String>>,
    #[serde(default)]
    module_hashes: Vec<String>,
    max_age: Option<String>,
    #[serde(default)]
    sim_ca_keys: Vec<String>,
    #[serde(default)]
    anchors: Anchors,
    #[serde(flatten)]
    platforms: BTreeMap<String, toml::Value>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Anchors {
    #[serde(default)]
    intel_roots: Vec<PathBuf>,
    #[serde(default)]
    amd_roots: Vec<PathBuf>,
    #[serde(default)]
    tpm_roots: Vec<PathBuf>,
    #[serde(default)]
    tpm_enrolled_aks: Vec<String>,
    #[serde(default)]
    cca_anchors: Vec<PathBuf>,
    #[serde(default)]
    cca_reference_values: Vec<PathBuf>,
}

impl Policy {
    /// Reads a policy file and the trust anchors it names (added to `anchors`).
    ///
    /// # Errors
    /// A [`PolicyError`] naming the file, table or rule that is wrong.
    pub fn load(path: &Path, anchors: &mut TrustAnchors) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.into(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, anchors)
    }

    /// Parses a policy; relative anchor paths are resolved against `base`.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the table or rule that is wrong.
    pub fn parse(text: &str, base: &Path, anchors: &mut TrustAnchors) -> Result<Self, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        let mut policy = Policy { allow_sim: file.allow_sim, ..Policy::default() };
        if let Some(statuses) = file.accepted_tcb_status {
            policy.accepted_tcb_status = statuses;
        }
        for hash in &file.module_hashes {
            let parsed = hash
                .parse()
                .map_err(|e| PolicyError::Rule { table: "module_hashes".into(), reason: format!("`{hash}`: {e}") })?;
            policy.module_hashes.push(parsed);
        }
        if let Some(age) = &file.max_age {
            policy.max_age = lamina_types::parse_duration(age)
                .map_err(|e| PolicyError::Rule { table: "max_age".into(), reason: e.to_string() })?;
        }
        for key in &file.sim_ca_keys {
            anchors.sim_ca_keys.push(hex_value("sim_ca_keys", key)?);
        }
        for (name, table) in &file.platforms {
            let platform = PlatformKind::ALL.into_iter().find(|k| k.name() == name);
            let (Some(platform), Some(table)) = (platform, table.as_table()) else {
                return Err(PolicyError::Syntax(format!(
                    "unknown key `{name}` (expected allow_sim, accepted_tcb_status, module_hashes, max_age, \
                     sim_ca_keys, anchors, or a platform table: sim, tpm, sgx, tdx, snp, cca)"
                )));
            };
            policy.reference.insert(platform, reference(platform, table)?);
        }
        load_anchors(&file.anchors, base, anchors)?;
        Ok(policy)
    }

    /// Applies the policy to an appraisal whose evidence checks are done, adding `policy.*` checks.
    pub fn apply(&self, a: &mut Appraisal) {
        let Some(platform) = a.platform else {
            a.fail("policy.platform", "the evidence's platform is unknown");
            return;
        };
        if platform == PlatformKind::Sim {
            if self.allow_sim {
                a.pass("policy.allow_sim", "the policy allows sim evidence (no hardware protection)");
            } else {
                a.fail(
                    "policy.allow_sim",
                    "sim evidence has no hardware protection and the policy does not allow it (allow_sim = true)",
                );
            }
        }
        if let Some(status) = a.tcb_status.clone() {
            if self.accepted_tcb_status.contains(&status) {
                a.pass("policy.tcb_status", format!("{status} is accepted"));
            } else {
                a.fail(
                    "policy.tcb_status",
                    format!("TCB status {status} is not among the accepted {:?}", self.accepted_tcb_status),
                );
            }
        }
        match self.reference.get(&platform) {
            Some(reference) => self.apply_reference(platform, reference, a),
            None if platform == PlatformKind::Sim => {}
            None => a.fail(
                format!("policy.{platform}"),
                format!("the policy has no reference values for {platform}; add a [{platform}] table"),
            ),
        }
        if let Some(claims) = a.claims.clone() {
            match (&claims.module_hash, self.module_hashes.is_empty()) {
                (_, true) => a.pass("policy.module_hash", "the policy allows any module"),
                (Some(hash), false) => {
                    a.check("policy.module_hash", self.allows_module(hash));
                }
                (None, false) => a.fail("policy.module_hash", "the claims name no module, and the policy lists some"),
            }
        }
    }

    /// Whether the policy allows `module` to run what the relying party talks to, and why.
    ///
    /// # Errors
    /// What says it is not among the policy's `module_hashes`.
    pub fn allows_module(&self, module: &ModuleHash) -> Result<String, String> {
        if self.module_hashes.is_empty() {
            Ok("the policy allows any module".into())
        } else if self.module_hashes.contains(module) {
            Ok(format!("{module} is allowed"))
        } else {
            Err(format!("{module} is not in module_hashes"))
        }
    }

    fn apply_reference(&self, platform: PlatformKind, reference: &Reference, a: &mut Appraisal) {
        for (name, rule) in &reference.rules {
            let check = format!("policy.{platform}.{name}");
            let Some(value) = a.measurements.get(name).cloned() else {
                a.fail(check, format!("the evidence carries no {name}"));
                continue;
            };
            match rule {
                Rule::OneOf(allowed) if allowed.contains(&value.to_ascii_lowercase()) => {
                    a.pass(check, format!("{name} {value} is a reference value"))
                }
                Rule::OneOf(allowed) => a.fail(
                    check,
                    format!("{name} {value} is not among the policy's {} reference value(s)", allowed.len()),
                ),
                Rule::AtLeast(min) => match value.parse::<u64>() {
                    Ok(v) if v >= *min => a.pass(check, format!("{name} {v} ≥ {min}")),
                    Ok(v) => a.fail(check, format!("{name} {v} is below the minimum {min}")),
                    Err(_) => a.fail(check, format!("{name} `{value}` is not a number")),
                },
            }
        }
        if a.measurements.get("debug").is_some_and(|d| d == "true") && !reference.allow_debug {
            a.fail(
                format!("policy.{platform}.debug"),
                "the evidence comes from a debug-mode TEE, whose memory the host can read; the policy does not allow \
                 debug (allow_debug = true)",
            );
        }
    }
}

fn reference(platform: PlatformKind, table: &toml::Table) -> Result<Reference, PolicyError> {
    let known = measurement_names(platform);
    let err = |reason: String| PolicyError::Rule { table: platform.name().into(), reason };
    let mut reference = Reference::default();
    for (key, value) in table {
        if key == "allow_debug" {
            reference.allow_debug = value.as_bool().ok_or_else(|| err("allow_debug must be true or false".into()))?;
            continue;
        }
        let (name, minimum) = match key.strip_prefix("min_") {
            Some(rest) => (rest, true),
            None => (key.as_str(), false),
        };
        if !known.iter().any(|k| k == name) {
            return Err(err(format!("unknown measurement `{name}`; {platform} reports: {}", known.join(", "))));
        }
        let rule = if minimum {
            let n = value
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| err(format!("{key} must be a non-negative integer")))?;
            Rule::AtLeast(n)
        } else {
            let values = match value {
                toml::Value::String(s) => vec![s.clone()],
                toml::Value::Integer(n) => vec![n.to_string()],
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s.clone()),
                        toml::Value::Integer(n) => Ok(n.to_string()),
                        _ => Err(err(format!("{key}: every value must be a string or an integer"))),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(err(format!("{key} must be a list of allowed values"))),
            };
            if values.is_empty() {
                return Err(err(format!("{key} lists no values, so nothing could match; remove it or add values")));
            }
            Rule::OneOf(values.into_iter().map(|v| v.trim().to_ascii_lowercase()).collect())
        };
        reference.rules.insert(name.to_owned(), rule);
    }
    if reference.rules.is_empty() && platform != PlatformKind::Sim {
        return Err(err("lists no reference values; a hardware platform needs at least one measurement".into()));
    }
    Ok(reference)
}

fn hex_value(table: &str, text: &str) -> Result<Vec<u8>, PolicyError> {
    hex::decode(text.trim())
        .map_err(|e| PolicyError::Rule { table: table.into(), reason: format!("`{text}` is not hex: {e}") })
}

fn load_anchors(files: &Anchors, base: &Path, anchors: &mut TrustAnchors) -> Result<(), PolicyError> {
    let read = |p: &PathBuf| {
        let path = base.join(p);
        std::fs::read(&path).map_err(|e| PolicyError::Anchor { path, reason: e.to_string() })
    };
    let certs = |list: &[PathBuf], into: &mut Vec<Vec<u8>>| -> Result<(), PolicyError> {
        for p in list {
            let bytes = read(p)?;
            let ders = crate::certs::der_certificates(&bytes)
                .map_err(|reason| PolicyError::Anchor { path: base.join(p), reason })?;
            into.extend(ders);
        }
        Ok(())
    };
    certs(&files.intel_roots, &mut anchors.intel_roots)?;
    certs(&files.amd_roots, &mut anchors.amd_roots)?;
    certs(&files.tpm_roots, &mut anchors.tpm_roots)?;
    for p in &files.cca_anchors {
        anchors.cca_anchors.push(read(p)?);
    }
    for p in &files.cca_reference_values {
        anchors.cca_reference_values.push(read(p)?);
    }
    for name in &files.tpm_enrolled_aks {
        anchors.tpm_enrolled_aks.push(hex_value("anchors.tpm_enrolled_aks", name)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("."), &mut TrustAnchors::default())
    }

    fn snp(measurement: &str, debug: bool) -> Appraisal {
        let mut a = Appraisal::new(PlatformKind::Snp);
        a.pass("snp.signature", "ok");
        a.measure("measurement", measurement);
        a.measure("debug", debug.to_string());
        a.measure("tcb_snp", "8");
        a
    }

    #[test]
    fn reference_values_accept_and_reject_by_name() {
        let p = parse("[snp]\nmeasurement = [\"AA\", \"bb\"]\nmin_tcb_snp = 8\n").expect("parses");
        let mut good = snp("aa", false);
        p.apply(&mut good);
        assert!(good.verified(), "{:?}", good.reasons());
        let mut wrong = snp("cc", false);
        p.apply(&mut wrong);
        assert!(wrong.failed("policy.snp.measurement"));
        let mut debug = snp("aa", true);
        p.apply(&mut debug);
        assert!(debug.failed("policy.snp.debug"));
        let strict = parse("[snp]\nmin_tcb_snp = 9\n").expect("parses");
        let mut old = snp("aa", false);
        strict.apply(&mut old);
        assert!(old.failed("policy.snp.tcb_snp"));
    }

    #[test]
    fn missing_reference_values_and_sim_are_rejected() {
        let p = parse("").expect("empty policy");
        let mut a = snp("aa", false);
        p.apply(&mut a);
        assert!(a.failed("policy.snp"));
        let mut s = Appraisal::new(PlatformKind::Sim);
        s.pass("sim.signature", "ok");
        p.apply(&mut s);
        assert!(s.failed("policy.allow_sim"));
        let mut s2 = Appraisal::new(PlatformKind::Sim);
        s2.pass("sim.signature", "ok");
        parse("allow_sim = true").expect("parses").apply(&mut s2);
        assert!(s2.verified());
    }

    #[test]
    fn tcb_status_must_be_accepted() {
        let p = parse("accepted_tcb_status = [\"UpToDate\"]\n[sgx]\nmr_enclave = \"aa\"").expect("parses");
        let mut a = Appraisal::new(PlatformKind::Sgx);
        a.measure("mr_enclave", "aa");
        a.tcb_status = Some("OutOfDate".into());
        p.apply(&mut a);
        assert!(a.failed("policy.tcb_status"));
        assert!(!a.failed("policy.sgx.mr_enclave"));
    }

    #[test]
    fn typos_and_bad_values_are_refused_at_load() {
        for (text, needle) in [
            ("[snp]\nmesurement = [\"aa\"]", "unknown measurement `mesurement`"),
            ("[snpp]\nmeasurement = [\"aa\"]", "unknown key `snpp`"),
            ("[snp]\nmeasurement = []", "lists no values"),
            ("[snp]\nmin_tcb_snp = \"x\"", "non-negative integer"),
            ("[tpm]\n", "at least one measurement"),
            ("alow_sim = true", "unknown key"),
            ("module_hashes = [\"md5:00\"]", "module_hashes"),
            ("max_age = \"soon\"", "max_age"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
