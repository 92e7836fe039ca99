//! PCR values as tpm2-tools writes them (`tpm2_quote -o`, `tpm2_pcrread -o`, default format).
//!
//! The file is a memory image of C structures in the writing machine's byte order (little
//! endian on x86-64 and AArch64, the only order read here): a `TPML_PCR_SELECTION` (4-byte
//! count, then 16 entries of 8 bytes: hash, sizeofSelect, 4 select bytes, 1 padding byte), a
//! 4-byte count of `TPML_DIGEST` structures, then each (4-byte count, then 8 entries of
//! 66 bytes: a 2-byte size and a 64-byte buffer). Values follow the selection's order, eight
//! per `TPML_DIGEST`.

use super::wire::{PcrSelection, WireError, digest_size, indices_of};

const SELECTION_ENTRIES: usize = 16;
const SELECTION_ENTRY_LEN: usize = 8;
const DIGESTS_PER_LIST: usize = 8;
const DIGEST_ENTRY_LEN: usize = 66;
/// The most `TPML_DIGEST` structures read (enough for every PCR of every bank).
const MAX_LISTS: u32 = 64;

/// PCR values read from a tpm2-tools file: `(bank, PCR index, value)` in selection order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrValues {
    /// The selection the file records.
    pub selection: PcrSelection,
    /// Each selected PCR's value.
    pub values: Vec<(u16, u8, Vec<u8>)>,
}

struct Le<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let bytes = rest.get(..n).ok_or_else(|| WireError::Truncated {
            what,
            at: self.pos,
            need: n.saturating_sub(rest.len()),
        })?;
        self.pos += n;
        Ok(bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes(bytes.try_into().map_err(|_| WireError::Truncated { what, at: self.pos, need: 4 })?))
    }
}

/// Parses a tpm2-tools PCR file.
///
/// # Errors
/// [`WireError`] when it is truncated, has trailing bytes, or its values do not match its
/// selection (count or digest sizes).
pub fn parse(bytes: &[u8]) -> Result<PcrValues, WireError> {
    let invalid = |what, reason: String| WireError::Invalid { what, reason };
    let mut r = Le { buf: bytes, pos: 0 };
    let count = usize::try_from(r.u32("selection count")?).unwrap_or(usize::MAX);
    if count > SELECTION_ENTRIES {
        return Err(invalid("selection count", format!("{count} banks is more than {SELECTION_ENTRIES}")));
    }
    let mut banks = Vec::new();
    for index in 0..SELECTION_ENTRIES {
        let entry = r.take(SELECTION_ENTRY_LEN, "selection entry")?;
        if index >= count {
            continue;
        }
        let (hash, size, select) = match entry {
            [h0, h1, size, select @ ..] => (u16::from_le_bytes([*h0, *h1]), usize::from(*size), select),
            _ => return Err(invalid("selection entry", "too short".into())),
        };
        let bits = select.get(..size.min(4)).ok_or_else(|| invalid("sizeofSelect", format!("{size} is too large")))?;
        if size > 4 {
            return Err(invalid("sizeofSelect", format!("{size} is more than 4")));
        }
        banks.push((hash, indices_of(bits)));
    }
    let selection = PcrSelection { banks };
    let lists = r.u32("digest list count")?;
    if lists > MAX_LISTS {
        return Err(invalid("digest list count", format!("{lists} is more than {MAX_LISTS}")));
    }
    let mut digests = Vec::new();
    for _ in 0..lists {
        let n = usize::try_from(r.u32("digest count")?).unwrap_or(usize::MAX);
        if n > DIGESTS_PER_LIST {
            return Err(invalid("digest count", format!("{n} is more than {DIGESTS_PER_LIST}")));
        }
        for index in 0..DIGESTS_PER_LIST {
            let entry = r.take(DIGEST_ENTRY_LEN, "digest entry")?;
            if index >= n {
                continue;
            }
            let (size, buffer) = match entry {
                [s0, s1, buffer @ ..] => (usize::from(u16::from_le_bytes([*s0, *s1])), buffer),
                _ => return Err(invalid("digest entry", "too short".into())),
            };
            let value = buffer.get(..size).ok_or_else(|| invalid("digest size", format!("{size} is more than 64")))?;
            digests.push(value.to_vec());
        }
    }
    if r.pos != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - r.pos));
    }
    let pairs: Vec<(u16, u8)> = selection.pairs().collect();
    if pairs.len() != digests.len() {
        return Err(invalid("PCR values", format!("{} values for {} selected PCRs", digests.len(), pairs.len())));
    }
    let mut values = Vec::new();
    for ((bank, pcr), value) in pairs.into_iter().zip(digests) {
        if digest_size(bank) != Some(value.len()) {
            return Err(invalid(
                "PCR values",
                format!("PCR {pcr} has a {}-byte value in bank 0x{bank:04x}", value.len()),
            ));
        }
        values.push((bank, pcr, value));
    }
    Ok(PcrValues { selection, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::wire::alg;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testvectors/swtpm-local/");

    #[test]
    fn reads_the_swtpm_vector() {
        let bytes = std::fs::read(format!("{VECTORS}quote.pcrs")).expect("vector");
        let pcrs = parse(&bytes).expect("parses");
        assert_eq!(pcrs.selection.banks, vec![(alg::SHA256, vec![0, 1, 2, 3, 7, 16])]);
        assert_eq!(pcrs.values.len(), 6);
        assert!(pcrs.values.iter().take(5).all(|(_, _, v)| v == &vec![0u8; 32]));
        let (bank, pcr, value) = pcrs.values.last().expect("PCR 16");
        assert_eq!((*bank, *pcr), (alg::SHA256, 16));
        assert_eq!(hex::encode(&value[..4]), "18d4c3f3");
        for len in 0..bytes.len() {
            assert!(parse(&bytes[..len]).is_err());
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1000)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_vectors_never_panic(flips in proptest::collection::vec((0usize..668, proptest::prelude::any::<u8>()), 1..6)) {
            let mut bytes = std::fs::read(format!("{VECTORS}quote.pcrs")).expect("vector");
            for (at, value) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            let _ = parse(&bytes);
        }
    }
}
