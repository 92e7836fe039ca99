//! The on-disk formats of a sealed volume: the header (in the clear, authenticated) and the
//! manifest (encrypted and authenticated). Both decoders are bounded and never panic: the header
//! is read before anything authenticates it.
//!
//! Header `volume.lamina`: `"LMSV" | 1 | volume id (16) | seal kind (1) | identity (32) |
//! platform (len u8, bytes) | counter id (len u8, bytes) | HMAC-SHA256 (32)`.
//!
//! Manifest `manifest.0` / `manifest.1` (the older is overwritten at each commit, so a torn
//! write leaves the other intact): `nonce (12) | AES-256-GCM(plaintext) | tag (16)`, with the
//! volume id in the associated data; plaintext `"LMSM" | 1 | version u64 | entries u32 |
//! entry*`, an entry `path (len u16, UTF-8) | kind u8 | mtime i64 ns | atime i64 ns (format 3
//! on) | [file: id (16) | size u64 | chunks u32 | (slot u8, tag (16))*] | [symbolic link: target
//! (len u16, UTF-8)]`, kind 0 a directory, 1 a file, 2 a symbolic link (format 3 on). Integers
//! are little endian.

use ring::aead::{self, Aad, Nonce};
use ring::hmac;

/// The header's magic bytes.
const HEADER_MAGIC: &[u8; 4] = b"LMSV";
/// The manifest's magic bytes.
const MANIFEST_MAGIC: &[u8; 4] = b"LMSM";
const VERSION: u8 = 1;
/// Manifest format: 1 had no journal; 2 carries the chunks written since the last checkpoint;
/// 3 keeps access times and may hold symbolic links.
const MANIFEST_VERSION: u8 = 3;
/// The size of a stored chunk slot: nonce, ciphertext, tag.
pub(crate) const SLOT_BYTES: usize = 12 + 4096 + 16;
/// A slot number meaning "no data: reads as zeros".
pub(crate) const HOLE: u8 = 0xff;

/// The volume header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) volume_id: [u8; 16],
    pub(crate) seal_kind: u8,
    pub(crate) identity: [u8; 32],
    pub(crate) platform: String,
    pub(crate) counter: Option<Vec<u8>>,
}

impl Header {
    /// The header's bytes without the MAC.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(HEADER_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.volume_id);
        out.push(self.seal_kind);
        out.extend_from_slice(&self.identity);
        out.push(self.platform.len() as u8);
        out.extend_from_slice(self.platform.as_bytes());
        match &self.counter {
            Some(id) => {
                out.push(id.len() as u8);
                out.extend_from_slice(id);
            }
            None => out.push(0),
        }
        out
    }

    /// Encodes and authenticates.
    pub(crate) fn encode(&self, key: &hmac::Key) -> Vec<u8> {
        let mut out = self.body();
        let tag = hmac::sign(key, &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Decodes without authenticating; [`Header::verify`] checks the MAC once the keys are known.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, Vec<u8>), String> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != HEADER_MAGIC {
            return Err("not a Lamina sealed-volume header".into());
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!("format version {version}; this Lamina reads version {VERSION}"));
        }
        let volume_id = r.array()?;
        let seal_kind = r.u8()?;
        let identity = r.array()?;
        let len = r.u8()? as usize;
        let platform = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| "platform name is not UTF-8")?;
        let len = r.u8()? as usize;
        let counter = if len == 0 { None } else { Some(r.take(len)?.to_vec()) };
        let mac = r.take(32)?.to_vec();
        r.end()?;
        Ok((Self { volume_id, seal_kind, identity, platform, counter }, mac))
    }

    /// Checks the MAC.
    pub(crate) fn verify(&self, mac: &[u8], key: &hmac::Key) -> bool {
        hmac::verify(key, &self.body(), mac).is_ok()
    }
}

/// One chunk of a file as the manifest records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkRef {
    /// Which of the chunk's two slots holds the data, or [`HOLE`].
    pub(crate) slot: u8,
    /// The AES-GCM tag of the data in that slot.
    pub(crate) tag: [u8; 16],
}

impl ChunkRef {
    pub(crate) const HOLE: Self = Self { slot: HOLE, tag: [0; 16] };
}

/// A manifest entry's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File { id: [u8; 16], size: u64, chunks: Vec<ChunkRef> },
    Symlink { target: String },
}

/// A manifest entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) mtime: i64,
    /// The access time (format 3 on; the modification time in older formats).
    pub(crate) atime: i64,
    pub(crate) node: Node,
}

const MANIFEST_AAD: &[u8] = b"lamina-manifest-v1";

/// A chunk write the manifest carries because its object file may not be durable yet: recovery
/// writes it to its slot again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JournalEntry {
    pub(crate) id: [u8; 16],
    pub(crate) index: u64,
    pub(crate) slot: u8,
    /// The stored slot: nonce, ciphertext, tag.
    pub(crate) bytes: Box<[u8; SLOT_BYTES]>,
}

/// A decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) version: u64,
    pub(crate) entries: Vec<Entry>,
    pub(crate) journal: Vec<JournalEntry>,
}

/// Encodes a manifest's plaintext.
pub(crate) fn encode_manifest<'a>(
    version: u64,
    entries: impl ExactSizeIterator<Item = Entry> + 'a,
    journal: &[&JournalEntry],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 64 + journal.len() * (SLOT_BYTES + 25));
    out.extend_from_slice(MANIFEST_MAGIC);
    out.push(MANIFEST_VERSION);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&(entry.path.len() as u16).to_le_bytes());
        out.extend_from_slice(entry.path.as_bytes());
        out.push(match &entry.node {
            Node::Dir => 0,
            Node::File { .. } => 1,
            Node::Symlink { .. } => 2,
        });
        out.extend_from_slice(&entry.mtime.to_le_bytes());
        out.extend_from_slice(&entry.atime.to_le_bytes());
        match &entry.node {
            Node::Dir => {}
            Node::File { id, size, chunks } => {
                out.extend_from_slice(id);
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
                for chunk in chunks {
                    out.push(chunk.slot);
                    out.extend_from_slice(&chunk.tag);
                }
            }
            Node::Symlink { target } => {
                out.extend_from_slice(&(target.len() as u16).to_le_bytes());
                out.extend_from_slice(target.as_bytes());
            }
        }
    }
    out.extend_from_slice(&(journal.len() as u32).to_le_bytes());
    for entry in journal {
        out.extend_from_slice(&entry.id);
        out.extend_from_slice(&entry.index.to_le_bytes());
        out.push(entry.slot);
        out.extend_from_slice(&entry.bytes[..]);
    }
    out
}

/// Decodes a manifest's plaintext.
pub(crate) fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let mut r = Reader::new(bytes);
    if r.take(4)? != MANIFEST_MAGIC {
        return Err("not a Lamina manifest".into());
    }
    let format = r.u8()?;
    if !(1..=MANIFEST_VERSION).contains(&format) {
        return Err(format!("manifest format version {format}; this Lamina reads versions 1 to {MANIFEST_VERSION}"));
    }
    let counter = r.u64()?;
    let count = r.u32()? as usize;
    // Each entry takes at least 11 bytes: a count beyond that is a lie, not an allocation.
    let mut entries = Vec::with_capacity(count.min(r.remaining() / 11));
    for _ in 0..count {
        let len = r.u16()? as usize;
        let path = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| "a path is not UTF-8")?;
        let kind = r.u8()?;
        let mtime = r.u64()? as i64;
        let atime = if format >= 3 { r.u64()? as i64 } else { mtime };
        let node = match kind {
            0 => Node::Dir,
            1 => {
                let id = r.array()?;
                let size = r.u64()?;
                let n = r.u32()? as usize;
                if n > r.remaining() / 17 {
                    return Err("a chunk table is longer than the manifest".into());
                }
                let mut chunks = Vec::with_capacity(n);
                for _ in 0..n {
                    let slot = r.u8()?;
                    if slot > 1 && slot != HOLE {
                        return Err(format!("chunk slot {slot}"));
                    }
                    chunks.push(ChunkRef { slot, tag: r.array()? });
                }
                Node::File { id, size, chunks }
            }
            2 if format >= 3 => {
                let len = r.u16()? as usize;
                let target = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| "a link target is not UTF-8")?;
                Node::Symlink { target }
            }
            other => return Err(format!("entry kind {other}")),
        };
        entries.push(Entry { path, mtime, atime, node });
    }
    let mut journal = Vec::new();
    if format >= 2 {
        let n = r.u32()? as usize;
        if n > r.remaining() / (SLOT_BYTES + 25) {
            return Err("a journal is longer than the manifest".into());
        }
        for _ in 0..n {
            let id = r.array()?;
            let index = r.u64()?;
            let slot = r.u8()?;
            if slot > 1 {
                return Err(format!("journal slot {slot}"));
            }
            let mut bytes = Box::new([0u8; SLOT_BYTES]);
            bytes.copy_from_slice(r.take(SLOT_BYTES)?);
            journal.push(JournalEntry { id, index, slot, bytes });
        }
    }
    r.end()?;
    Ok(Manifest { version: counter, entries, journal })
}

/// Encrypts a manifest for storage.
pub(crate) fn seal_manifest(key: &aead::LessSafeKey, volume_id: &[u8; 16], nonce: [u8; 12], plain: Vec<u8>) -> Vec<u8> {
    let mut data = plain;
    let aad = [MANIFEST_AAD, volume_id].concat();
    // Invariant: ring refuses only inputs longer than AES-GCM's 64 GiB limit; a manifest is
    // bounded far below that by the number of files and chunks a volume can hold.
    #[allow(clippy::expect_used, reason = "manifests are far below AES-GCM's input limit")]
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut data)
        .expect("manifest within AES-GCM limits");
    let mut out = Vec::with_capacity(12 + data.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&data);
    out
}

/// Decrypts a stored manifest: `None` when it fails authentication.
pub(crate) fn open_manifest(key: &aead::LessSafeKey, volume_id: &[u8; 16], stored: &[u8]) -> Option<Vec<u8>> {
    if stored.len() < 12 + 16 {
        return None;
    }
    let (nonce, sealed) = stored.split_at(12);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let aad = [MANIFEST_AAD, volume_id].concat();
    let mut data = sealed.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(&aad), &mut data).ok()?;
    let len = plain.len();
    data.truncate(len);
    Some(data)
}

/// A bounded reader of untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err("truncated".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_le_bytes)
    }

    fn end(&self) -> Result<(), String> {
        if self.bytes.is_empty() { Ok(()) } else { Err(format!("{} bytes of trailing data", self.bytes.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            volume_id: [7; 16],
            seal_kind: 1,
            identity: [9; 32],
            platform: "sim".into(),
            counter: Some(vec![1, 2]),
        }
    }

    #[test]
    fn header_round_trips_and_is_authenticated() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        let bytes = header().encode(&key);
        let (decoded, mac) = Header::decode(&bytes).expect("decodes");
        assert_eq!(decoded, header());
        assert!(decoded.verify(&mac, &key));
        assert!(!decoded.verify(&mac, &hmac::Key::new(hmac::HMAC_SHA256, &[2; 32])));
        let mut changed = decoded.clone();
        changed.identity[0] ^= 1;
        assert!(!changed.verify(&mac, &key));
    }

    #[test]
    fn manifest_round_trips() {
        let entries = vec![
            Entry { path: "d".into(), mtime: 5, atime: 6, node: Node::Dir },
            Entry {
                path: "d/f".into(),
                mtime: -1,
                atime: 3,
                node: Node::File {
                    id: [3; 16],
                    size: 5000,
                    chunks: vec![ChunkRef { slot: 1, tag: [4; 16] }, ChunkRef::HOLE],
                },
            },
            Entry { path: "d/l".into(), mtime: 7, atime: 8, node: Node::Symlink { target: "../d/f".into() } },
        ];
        let journal = JournalEntry { id: [3; 16], index: 0, slot: 1, bytes: Box::new([9; SLOT_BYTES]) };
        let plain = encode_manifest(42, entries.clone().into_iter(), &[&journal]);
        assert_eq!(
            decode_manifest(&plain).expect("decodes"),
            Manifest { version: 42, entries, journal: vec![journal] }
        );
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &[5; 32]).expect("key"));
        let stored = seal_manifest(&key, &[1; 16], [0; 12], plain.clone());
        assert_eq!(open_manifest(&key, &[1; 16], &stored), Some(plain));
        assert_eq!(open_manifest(&key, &[2; 16], &stored), None, "bound to the volume");
    }

    #[test]
    fn a_format_2_entry_has_its_modification_time_as_its_access_time() {
        let entries = vec![Entry { path: "d".into(), mtime: 9, atime: 4, node: Node::Dir }];
        let mut plain = encode_manifest(1, entries.into_iter(), &[]);
        plain[4] = 2;
        plain.drain(4 + 1 + 8 + 4 + 2 + 1 + 1 + 8..4 + 1 + 8 + 4 + 2 + 1 + 1 + 16);
        let decoded = decode_manifest(&plain).expect("decodes");
        assert_eq!(decoded.entries, [Entry { path: "d".into(), mtime: 9, atime: 9, node: Node::Dir }]);
    }

    #[test]
    fn a_symbolic_link_in_a_format_2_manifest_is_refused() {
        let entries = vec![Entry { path: "l".into(), mtime: 1, atime: 1, node: Node::Symlink { target: "t".into() } }];
        let mut plain = encode_manifest(1, entries.into_iter(), &[]);
        plain[4] = 2;
        // Format 2 has no access time: drop it, so that only the kind is wrong.
        plain.drain(4 + 1 + 8 + 4 + 2 + 1 + 1 + 8..4 + 1 + 8 + 4 + 2 + 1 + 1 + 16);
        assert_eq!(decode_manifest(&plain).err().as_deref(), Some("entry kind 2"));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Header::decode(&bytes);
            let _ = decode_manifest(&bytes);
            let mut prefixed = MANIFEST_MAGIC.to_vec();
            prefixed.push(MANIFEST_VERSION);
            prefixed.extend_from_slice(&bytes);
            let _ = decode_manifest(&prefixed);
        }
    }
}
