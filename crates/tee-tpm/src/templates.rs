//! The public templates of the keys Lamina creates in the TPM.
//!
//! Every key is a *primary* key: the TPM derives it from the hierarchy's seed and the
//! template alone, so the same template gives the same key after every restart without any
//! key blob or NV space to keep. Creating an ECC P-256 primary takes the TPM a few milliseconds.

use sha2::{Digest as _, Sha256};
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey, ek};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, KeyedHashScheme, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SymmetricDefinitionObject,
};

use crate::TpmError;

/// Which endorsement key: the TCG EK Credential Profile's templates, each with the NV index
/// of its certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EkKind {
    /// ECC NIST P-256, template L-2 (SHA-256, AES-128-CFB, policy A); certificate at 0x01c0000a.
    EccP256,
    /// ECC NIST P-384, template H-3 (SHA-384, AES-256-CFB, policy B); certificate at 0x01c00016.
    /// swtpm 0.7 provisions this one (besides RSA 2048), not P-256.
    EccP384,
    /// RSA 2048, template L-1 (SHA-256, AES-128-CFB, policy A); certificate at 0x01c00002.
    Rsa2048,
}

impl EkKind {
    /// The kinds in Lamina's order of preference.
    pub const PREFERENCE: [EkKind; 3] = [EkKind::EccP256, EkKind::EccP384, EkKind::Rsa2048];

    /// The NV index of the EK certificate (TCG EK Credential Profile 2.3, 2.2.1.4 and 2.2.1.5).
    pub const fn certificate_index(self) -> u32 {
        match self {
            EkKind::EccP256 => 0x01c0_000a,
            EkKind::EccP384 => 0x01c0_0016,
            EkKind::Rsa2048 => 0x01c0_0002,
        }
    }

    pub(crate) fn template(self) -> Result<Public, TpmError> {
        let alg = match self {
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        };
        ek::create_ek_public_from_default_template_2(alg, None::<DefaultKey>)
            .map_err(TpmError::command("build the EK template"))
    }
}

impl std::fmt::Display for EkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EkKind::EccP256 => "ECC P-256",
            EkKind::EccP384 => "ECC P-384",
            EkKind::Rsa2048 => "RSA 2048",
        })
    }
}

/// The attestation key: ECC P-256, ECDSA with SHA-256, restricted signing (it signs only
/// structures the TPM generates), fixed to this TPM, created in the endorsement hierarchy.
/// `unique` holds a Lamina label, so the key is Lamina's own, not another tool's default AK.
pub(crate) fn attestation_key() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(TpmError::command("build the AK attributes"))?;
    let params = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(true)
        .build()
        .map_err(TpmError::command("build the AK parameters"))?;
    let label: [u8; 32] = Sha256::digest(b"lamina attestation key v1").into();
    let unique = EccPoint::new(
        EccParameter::try_from(label.to_vec()).map_err(TpmError::command("build the AK template"))?,
        EccParameter::try_from(vec![0u8; 32]).map_err(TpmError::command("build the AK template"))?,
    );
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(unique)
        .build()
        .map_err(TpmError::command("build the AK template"))
}

/// The storage root key: the TCG Provisioning Guidance's ECC P-256 SRK template (restricted
/// decryption, AES-128-CFB), in the owner hierarchy.
pub(crate) fn storage_root_key() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(TpmError::command("build the SRK attributes"))?;
    let params = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
        .with_ecc_scheme(EccScheme::Null)
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(false)
        .with_is_decryption_key(true)
        .with_restricted(true)
        .build()
        .map_err(TpmError::command("build the SRK parameters"))?;
    let zero = || EccParameter::try_from(vec![0u8; 32]).map_err(TpmError::command("build the SRK template"));
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::new(zero()?, zero()?))
        .build()
        .map_err(TpmError::command("build the SRK template"))
}

/// A sealed data object released only under `policy` (a PCR policy): no auth value use, fixed
/// to this TPM and its parent.
pub(crate) fn sealed_object(policy: Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(false)
        .with_admin_with_policy(true)
        .build()
        .map_err(TpmError::command("build the sealed object's attributes"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(TpmError::command("build the sealed object's template"))
}
