//! The `sgx` platform: an Intel SGX enclave under Gramine, through its `/dev/attestation` files.
//!
//! Gramine exposes attestation as pseudo-files: `attestation_type` says which kind of quote the
//! enclave can make (Lamina needs `dcap`), writing 64 bytes to `user_report_data` and reading
//! `quote` yields a DCAP quote binding them, and `keys/_sgx_mrenclave` holds the enclave's
//! sealing key (bound to this exact enclave measurement).
//!
//! The quote is checked before it leaves: whole (its signature data is all there) and binding
//! exactly the caller's report data. The sealing root is derived from the MRENCLAVE sealing key
//! with a domain-separated hash, so Lamina's keys never equal Gramine's own.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use lamina_types::PlatformKind;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{Evidence, Platform, PlatformInfo, SealingRoot, TeeError};

/// Where Gramine exposes attestation.
pub const DEFAULT_ROOT: &str = "/dev/attestation";

/// The sealing key file under the root (MRENCLAVE policy).
pub const SEALING_KEY: &str = "keys/_sgx_mrenclave";

/// The domain-separation tag of the sealing root derivation.
const SEALING_TAG: &[u8] = b"lamina-sgx-sealing-root-v1\0";

/// The largest quote read.
const MAX_QUOTE_LEN: u64 = 1 << 20;

const NAME: &str = "Gramine's /dev/attestation";

/// An SGX enclave under Gramine.
#[derive(Debug)]
pub struct SgxPlatform {
    root: PathBuf,
}

impl SgxPlatform {
    /// Opens Gramine's attestation files at `root` (normally [`DEFAULT_ROOT`]).
    ///
    /// # Errors
    /// [`TeeError::NotFound`] when `root` does not exist (not running under Gramine),
    /// [`TeeError::Device`] when the enclave is not set up for DCAP quotes.
    pub fn open(root: &Path) -> Result<Self, TeeError> {
        crate::platform::require_dir(
            NAME,
            root,
            "is this process running inside a Gramine SGX enclave (gramine-sgx)?",
        )?;
        let path = root.join("attestation_type");
        let kind = read_bounded(&path, 64)?;
        let kind = String::from_utf8_lossy(&kind).trim().to_owned();
        if kind != "dcap" {
            return Err(device(
                &path,
                format!(
                    "the enclave's attestation type is `{kind}`, not `dcap`; set \
                     sgx.remote_attestation = \"dcap\" in the Gramine manifest"
                ),
            ));
        }
        Ok(Self { root: root.into() })
    }

    /// Where Gramine's attestation files are.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Platform for SgxPlatform {
    fn info(&self) -> PlatformInfo {
        PlatformInfo {
            kind: PlatformKind::Sgx,
            description: format!("Intel SGX enclave under Gramine ({}), DCAP quotes", self.root.display()),
            hardware_backed: true,
        }
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, TeeError> {
        let path = self.root.join("user_report_data");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(report_data))
            .map_err(|source| TeeError::Io { action: "write", path, source })?;
        let path = self.root.join("quote");
        let quote = read_bounded(&path, MAX_QUOTE_LEN)?;
        check_quote(&quote, report_data).map_err(|reason| device(&path, reason))?;
        Ok(Evidence { native: quote, endorsements: Vec::new() })
    }

    fn sealing_root(&self) -> Result<SealingRoot, TeeError> {
        let path = self.root.join(SEALING_KEY);
        let key = match read_bounded(&path, 64) {
            Ok(key) => Zeroizing::new(key),
            Err(TeeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(TeeError::NotFound {
                    platform: "Gramine's sealing key",
                    path,
                    hint: "this Gramine does not expose its sealing keys under /dev/attestation/keys",
                });
            }
            Err(e) => return Err(e),
        };
        if key.len() != 16 {
            return Err(device(&path, format!("the sealing key is {} bytes, not 16", key.len())));
        }
        let mut hash = Sha256::new();
        hash.update(SEALING_TAG);
        hash.update(&key[..]);
        Ok(SealingRoot(Zeroizing::new(hash.finalize().into())))
    }
}

fn device(path: &Path, reason: String) -> TeeError {
    TeeError::Device { platform: NAME, path: path.into(), reason }
}

/// Reads at most `max` bytes of a file; more is an error.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, TeeError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(max + 1).read_to_end(&mut bytes)).map_err(|source| TeeError::Io {
        action: "read",
        path: path.into(),
        source,
    })?;
    if bytes.len() as u64 > max {
        return Err(device(path, format!("it holds more than {max} bytes")));
    }
    Ok(bytes)
}

/// Checks that a quote is a whole SGX quote binding exactly `report_data`.
fn check_quote(quote: &[u8], report_data: &[u8; 64]) -> Result<(), String> {
    // Header (48 bytes) and report body (384 bytes, report data at 320), then the signature
    // data's length and the signature data.
    const REPORT_DATA: usize = 48 + 320;
    const SIGNATURE_LEN: usize = 48 + 384;
    let field = |at: usize, len: usize| quote.get(at..at + len);
    let (Some(version), Some(tee_type)) = (field(0, 2), field(4, 4)) else {
        return Err(format!("the quote is truncated: {} bytes", quote.len()));
    };
    let version = u16::from_le_bytes([version[0], version[1]]);
    if !matches!(version, 3 | 4) || tee_type != [0; 4] {
        return Err(format!("not an SGX quote (version {version}, TEE type {tee_type:02x?})"));
    }
    let Some(signature_len) = field(SIGNATURE_LEN, 4) else {
        return Err(format!("the quote is truncated: {} bytes, its body needs {}", quote.len(), SIGNATURE_LEN + 4));
    };
    let need = SIGNATURE_LEN
        + 4
        + u32::from_le_bytes([signature_len[0], signature_len[1], signature_len[2], signature_len[3]]) as usize;
    if quote.len() < need {
        return Err(format!("the quote is truncated: {} bytes, its signature data needs {need}", quote.len()));
    }
    if field(REPORT_DATA, 64) != Some(&report_data[..]) {
        return Err("the quote binds other report data than was written to user_report_data (a stale quote?)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_checks_name_what_is_wrong() {
        let mut quote = vec![0; 48 + 384 + 4 + 8];
        quote[0] = 3;
        quote[368..432].copy_from_slice(&[5; 64]);
        quote[432] = 8;
        assert_eq!(check_quote(&quote, &[5; 64]), Ok(()));
        assert!(check_quote(&quote, &[6; 64]).expect_err("other").contains("other report data"));
        assert!(check_quote(&quote[..439], &[5; 64]).expect_err("short").contains("needs 444"));
        assert!(check_quote(&quote[..400], &[5; 64]).expect_err("short").contains("its body needs"));
        quote[4] = 0x81;
        assert!(check_quote(&quote, &[5; 64]).expect_err("tdx").contains("not an SGX quote"));
    }

    proptest::proptest! {
        #[test]
        fn quote_checks_never_panic(quote in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = check_quote(&quote, &[0; 64]);
        }
    }
}
