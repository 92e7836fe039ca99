//! The SEV-SNP certificate table: what the host attaches to an extended report.
//!
//! Linux returns it as configfs-tsm's `auxblob` and from `SNP_GET_EXT_REPORT`; the GHCB
//! specification defines it. It is an array of 24-byte entries (a GUID, then a little-endian
//! 32-bit offset and length, both relative to the start of the table), terminated by an
//! all-zero entry, followed by the certificates the entries point at. The host fills it, so it
//! is untrusted: every offset and length is checked, entries may not point into the entry array
//! or overlap one another, and the number of entries and the table size are bounded.

use super::SnpError;

/// Size of one table entry: a 16-byte GUID, a 32-bit offset and a 32-bit length.
pub const CERT_TABLE_ENTRY_LEN: usize = 24;
/// The largest table accepted, in bytes (real tables hold a few certificates, about 5 KiB).
pub const MAX_CERT_TABLE_LEN: usize = 1 << 20;
/// The most entries accepted, not counting the terminator.
pub const MAX_CERT_TABLE_ENTRIES: usize = 64;

/// GUID of the VCEK entry, 63da758d-e664-4564-adc5-f4b93be8accd, in RFC 4122 byte order.
const VCEK_GUID: [u8; 16] =
    [0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd];
/// GUID of the VLEK entry, a8074bc2-a25a-483e-aae6-39c045a0b8a1.
const VLEK_GUID: [u8; 16] =
    [0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1];
/// GUID of the ASK entry (the ASVK, for a VLEK), 4ab7b379-bbac-4fe4-a02f-05aef327c782.
const ASK_GUID: [u8; 16] =
    [0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82];
/// GUID of the ARK entry, c0b406a4-a803-4952-9743-3fb6014cd0ae.
const ARK_GUID: [u8; 16] =
    [0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae];

/// What a certificate-table entry holds, by its GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertKind {
    /// The AMD Root Key certificate.
    Ark,
    /// The AMD SEV Key certificate (or, in a VLEK table, the ASVK certificate).
    Ask,
    /// The chip's Versioned Chip Endorsement Key certificate.
    Vcek,
    /// A Versioned Loaded Endorsement Key certificate (cloud providers).
    Vlek,
    /// Any other GUID (for example a CRL), in the table's byte order.
    Other([u8; 16]),
}

impl CertKind {
    /// The kind named by a GUID as it appears in a table.
    ///
    /// The table carries GUIDs in RFC 4122 byte order (as AMD's tools and the `sev` crate write
    /// them). The four known GUIDs are also recognised in the mixed-endian (EFI) order some
    /// tools use; either way the kind is only a label: the verifier classifies a certificate by
    /// its contents, never by the GUID it came under.
    pub fn from_guid(guid: [u8; 16]) -> Self {
        for (kind, known) in
            [(Self::Vcek, VCEK_GUID), (Self::Vlek, VLEK_GUID), (Self::Ask, ASK_GUID), (Self::Ark, ARK_GUID)]
        {
            if guid == known || guid == mixed_endian(known) {
                return kind;
            }
        }
        Self::Other(guid)
    }

    /// The GUID of this kind, in RFC 4122 byte order.
    pub fn guid(self) -> [u8; 16] {
        match self {
            Self::Ark => ARK_GUID,
            Self::Ask => ASK_GUID,
            Self::Vcek => VCEK_GUID,
            Self::Vlek => VLEK_GUID,
            Self::Other(guid) => guid,
        }
    }

    /// A short name for messages: `ARK`, `ASK`, `VCEK`, `VLEK` or the GUID.
    pub fn name(self) -> String {
        match self {
            Self::Ark => "ARK".into(),
            Self::Ask => "ASK".into(),
            Self::Vcek => "VCEK".into(),
            Self::Vlek => "VLEK".into(),
            Self::Other(guid) => format_guid(guid),
        }
    }
}

/// The same GUID with its first three fields byte-swapped (RFC 4122 order <-> EFI order).
fn mixed_endian(g: [u8; 16]) -> [u8; 16] {
    let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = g;
    let mut out = [0u8; 16];
    for (o, v) in out.iter_mut().zip([a3, a2, a1, a0, b1, b0, c1, c0].into_iter().chain(rest)) {
        *o = v;
    }
    out
}

/// A GUID in its usual text form (from RFC 4122 byte order).
fn format_guid(g: [u8; 16]) -> String {
    let h = hex::encode(g);
    // Infallible: `h` is 32 ASCII hex digits.
    format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    )
}

/// Parses an SEV-SNP certificate table into its entries, in table order.
///
/// Rejects (never panics on) a table larger than [`MAX_CERT_TABLE_LEN`], one with more than
/// [`MAX_CERT_TABLE_ENTRIES`] entries or no terminator, a terminator whose offset or length is
/// not zero, an empty entry, an entry that points into the entry array or past the end, two
/// entries whose data overlap, and a GUID that appears twice. Bytes after the last certificate
/// (the kernel pads the blob) are ignored.
pub fn parse_cert_table(bytes: &[u8]) -> Result<Vec<(CertKind, Vec<u8>)>, SnpError> {
    if bytes.len() > MAX_CERT_TABLE_LEN {
        return Err(SnpError::TableTooLarge { len: bytes.len(), max: MAX_CERT_TABLE_LEN });
    }
    let mut entries: Vec<([u8; 16], usize, usize)> = Vec::new();
    let mut pos = 0usize;
    loop {
        let entry: &[u8; CERT_TABLE_ENTRY_LEN] = bytes
            .get(pos..pos + CERT_TABLE_ENTRY_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(SnpError::TableUnterminated { entries: entries.len() })?;
        let (guid, offset, len) = split_entry(entry);
        if guid == [0u8; 16] {
            if offset != 0 || len != 0 {
                return Err(SnpError::TableBadTerminator { index: entries.len() });
            }
            break;
        }
        if entries.len() == MAX_CERT_TABLE_ENTRIES {
            return Err(SnpError::TableTooManyEntries { max: MAX_CERT_TABLE_ENTRIES });
        }
        entries.push((guid, offset, len));
        pos += CERT_TABLE_ENTRY_LEN;
    }
    let header_end = pos + CERT_TABLE_ENTRY_LEN;

    let mut ranges: Vec<(usize, usize, usize)> = Vec::with_capacity(entries.len());
    for (index, &(guid, offset, len)) in entries.iter().enumerate() {
        if entries.iter().take(index).any(|(g, _, _)| *g == guid) {
            return Err(SnpError::TableDuplicate { index, guid: CertKind::from_guid(guid).name() });
        }
        if len == 0 {
            return Err(SnpError::TableEmptyEntry { index });
        }
        if offset < header_end {
            return Err(SnpError::TableEntryInHeader { index, offset, header_end });
        }
        let end = offset.checked_add(len).filter(|&end| end <= bytes.len()).ok_or(SnpError::TableOutOfBounds {
            index,
            offset,
            len,
            table_len: bytes.len(),
        })?;
        ranges.push((offset, end, index));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if let [(_, prev_end, a), (start, _, b)] = pair
            && start < prev_end
        {
            return Err(SnpError::TableOverlap { first: *a.min(b), second: *a.max(b) });
        }
    }

    entries
        .iter()
        .enumerate()
        .map(|(index, &(guid, offset, len))| {
            let data = bytes.get(offset..offset + len).ok_or(SnpError::TableOutOfBounds {
                index,
                offset,
                len,
                table_len: bytes.len(),
            })?;
            Ok((CertKind::from_guid(guid), data.to_vec()))
        })
        .collect()
}

/// Splits an entry into its GUID, offset and length.
fn split_entry(entry: &[u8; CERT_TABLE_ENTRY_LEN]) -> ([u8; 16], usize, usize) {
    let mut guid = [0u8; 16];
    let mut offset = [0u8; 4];
    let mut len = [0u8; 4];
    let (g, rest) = entry.split_at(16);
    let (o, l) = rest.split_at(4);
    guid.copy_from_slice(g);
    offset.copy_from_slice(o);
    len.copy_from_slice(l);
    (guid, u32::from_le_bytes(offset) as usize, u32::from_le_bytes(len) as usize)
}

/// Builds a certificate table from entries, as a host would (certificates follow the entries
/// and the terminator, in order). The inverse of [`parse_cert_table`], for tests and tools.
pub fn build_cert_table(entries: &[(CertKind, &[u8])]) -> Vec<u8> {
    let header = CERT_TABLE_ENTRY_LEN * (entries.len() + 1);
    let mut table = Vec::with_capacity(header + entries.iter().map(|(_, d)| d.len()).sum::<usize>());
    let mut offset = header;
    for (kind, data) in entries {
        table.extend_from_slice(&kind.guid());
        table.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
        table.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        offset += data.len();
    }
    table.extend_from_slice(&[0u8; CERT_TABLE_ENTRY_LEN]);
    for (_, data) in entries {
        table.extend_from_slice(data);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(guid: [u8; 16], offset: u32, len: u32) -> Vec<u8> {
        let mut e = guid.to_vec();
        e.extend_from_slice(&offset.to_le_bytes());
        e.extend_from_slice(&len.to_le_bytes());
        e
    }

    #[test]
    fn guids_match_their_text_form() {
        assert_eq!(format_guid(VCEK_GUID), "63da758d-e664-4564-adc5-f4b93be8accd");
        assert_eq!(format_guid(VLEK_GUID), "a8074bc2-a25a-483e-aae6-39c045a0b8a1");
        assert_eq!(format_guid(ASK_GUID), "4ab7b379-bbac-4fe4-a02f-05aef327c782");
        assert_eq!(format_guid(ARK_GUID), "c0b406a4-a803-4952-9743-3fb6014cd0ae");
    }

    #[test]
    fn mixed_endian_guids_are_recognised() {
        let efi = mixed_endian(VCEK_GUID);
        assert_eq!(&efi[..4], &[0x8d, 0x75, 0xda, 0x63]);
        assert_eq!(CertKind::from_guid(efi), CertKind::Vcek);
        assert_eq!(mixed_endian(efi), VCEK_GUID);
        assert_eq!(CertKind::from_guid([1; 16]), CertKind::Other([1; 16]));
    }

    #[test]
    fn round_trip() {
        let table = build_cert_table(&[(CertKind::Vcek, b"vcek"), (CertKind::Ask, b"ask!"), (CertKind::Ark, b"a")]);
        let parsed = parse_cert_table(&table).expect("valid table");
        assert_eq!(
            parsed,
            vec![(CertKind::Vcek, b"vcek".to_vec()), (CertKind::Ask, b"ask!".to_vec()), (CertKind::Ark, b"a".to_vec())]
        );
        // Kernel padding after the certificates is ignored.
        let mut padded = table.clone();
        padded.resize(4096, 0);
        assert_eq!(parse_cert_table(&padded).expect("padded table"), parsed);
    }

    #[test]
    fn empty_table_is_only_a_terminator() {
        assert_eq!(parse_cert_table(&[0u8; 24]).expect("empty"), vec![]);
        assert!(matches!(parse_cert_table(&[]), Err(SnpError::TableUnterminated { entries: 0 })));
        assert!(matches!(parse_cert_table(&[0u8; 23]), Err(SnpError::TableUnterminated { .. })));
    }

    #[test]
    fn malformed_tables_are_rejected_with_their_reason() {
        // No terminator after one entry.
        let t = entry(VCEK_GUID, 24, 1);
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableUnterminated { entries: 1 })));
        // A terminator with a length.
        let t = entry([0; 16], 0, 5);
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableBadTerminator { index: 0 })));
        // Pointing into the entry array.
        let mut t = entry(VCEK_GUID, 8, 4);
        t.extend(entry([0; 16], 0, 0));
        t.extend([0u8; 8]);
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableEntryInHeader { index: 0, .. })));
        // Past the end, including an offset + length that overflows 32 bits.
        for (offset, len) in [(48, 100), (48, u32::MAX), (u32::MAX, u32::MAX)] {
            let mut t = entry(VCEK_GUID, offset, len);
            t.extend(entry([0; 16], 0, 0));
            t.extend([0u8; 8]);
            assert!(matches!(parse_cert_table(&t), Err(SnpError::TableOutOfBounds { index: 0, .. })), "{offset} {len}");
        }
        // Empty entry.
        let mut t = entry(VCEK_GUID, 48, 0);
        t.extend(entry([0; 16], 0, 0));
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableEmptyEntry { index: 0 })));
        // Overlapping entries.
        let mut t = entry(VCEK_GUID, 72, 10);
        t.extend(entry(ASK_GUID, 80, 10));
        t.extend(entry([0; 16], 0, 0));
        t.extend([0u8; 20]);
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableOverlap { first: 0, second: 1 })));
        // The same certificate twice.
        let mut t = entry(VCEK_GUID, 72, 10);
        t.extend(entry(VCEK_GUID, 82, 10));
        t.extend(entry([0; 16], 0, 0));
        t.extend([0u8; 20]);
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableDuplicate { index: 1, .. })));
    }

    #[test]
    fn limits_are_enforced() {
        let mut t = Vec::new();
        for i in 0..=MAX_CERT_TABLE_ENTRIES {
            let mut guid = [0xee; 16];
            guid[0] = i as u8;
            t.extend(entry(guid, 0x10000, 1));
        }
        t.extend(entry([0; 16], 0, 0));
        assert!(matches!(parse_cert_table(&t), Err(SnpError::TableTooManyEntries { .. })));
        let big = vec![0u8; MAX_CERT_TABLE_LEN + 1];
        assert!(matches!(parse_cert_table(&big), Err(SnpError::TableTooLarge { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_cert_table(&bytes);
        }

        #[test]
        fn tables_with_arbitrary_entries_never_panic(
            raw in proptest::collection::vec((0u8..4, any::<u32>(), any::<u32>()), 0..6),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let guids = [VCEK_GUID, ASK_GUID, ARK_GUID, [0u8; 16]];
            let mut t = Vec::new();
            for (g, offset, len) in &raw {
                t.extend(entry(guids[*g as usize], offset % 512, len % 512));
            }
            t.extend(tail);
            if let Ok(parsed) = parse_cert_table(&t) {
                let total: usize = parsed.iter().map(|(_, d)| d.len()).sum();
                prop_assert!(total <= t.len());
            }
        }

        #[test]
        fn built_tables_parse_back(datas in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..4)) {
            let kinds = [CertKind::Vcek, CertKind::Ask, CertKind::Ark, CertKind::Vlek];
            let entries: Vec<(CertKind, &[u8])> = datas.iter().zip(kinds).map(|(d, k)| (k, d.as_slice())).collect();
            let parsed = parse_cert_table(&build_cert_table(&entries)).expect("built table parses");
            prop_assert_eq!(parsed.len(), entries.len());
            for ((k, d), (pk, pd)) in entries.iter().zip(&parsed) {
                prop_assert_eq!(k, pk);
                prop_assert_eq!(*d, pd.as_slice());
            }
        }
    }
}
