//! (in progress: this platform's verifier is being written)

use lamina_types::PlatformKind;

use crate::{Appraisal, Inputs};

/// Records that this build cannot verify this platform's evidence yet.
pub fn verify(_inputs: &Inputs<'_>) -> Appraisal {
    let mut a = Appraisal::new(PlatformKind::Snp);
    a.fail("snp.unavailable", "this build has no snp verifier yet");
    a
}
