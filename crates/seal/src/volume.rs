//! A sealed volume: a directory tree whose every file is ciphertext on the host, with
//! authenticated metadata, rollback detection and crash safety.
//!
//! Host layout of a volume directory:
//! - `volume.lamina`: the header (volume id, what it is sealed to, platform, counter), in the
//!   clear and authenticated. It is also the lock held while the volume is open.
//! - `manifest.0`, `manifest.1`: the sealed manifest (every path, its size, time and chunk
//!   table), written alternately; the valid one with the higher version is current.
//! - `objects/<id>`: one host file per guest file, named by a random id. A file is a sequence
//!   of 4 KiB chunks; chunk `i` has two slots at `(2i + s) × 4124`, each `nonce | AES-256-GCM
//!   ciphertext | tag`, with the file id and chunk index in the associated data.
//!
//! Integrity: the manifest records, for every chunk, which slot is current and its tag; a read
//! checks both, so a flipped byte, a chunk moved within or between files, a file swapped for
//! another, a truncated file and an older version of a chunk are all detected.
//!
//! Crash safety: a write goes to the slot the last commit does not use, and a commit makes it
//! current by writing the other manifest copy; until then the committed data is untouched. A
//! kill at any point leaves the last commit readable. Commits happen when the guest syncs a file
//! (`fsync`, `fdatasync`) and when the volume is closed.
//!
//! Rollback: each commit carries a version; after it is durable, the platform's monotonic
//! counter is advanced to that version. A volume whose version is below the counter is an older
//! copy and is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use lamina_tee::{CounterId, MonotonicCounter, Platform, SealingRoot};
use ring::aead::{self, Aad, Nonce};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::error::SealError;
use crate::format::{self, ChunkRef, Entry, HOLE, Header, JournalEntry, Node};
use crate::keys::{SealTo, VolumeKeys};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 4096;
/// Bytes of a chunk slot on the host: nonce, ciphertext, tag.
const SLOT: usize = 12 + CHUNK + 16;
const _: () = assert!(SLOT == format::SLOT_BYTES, "the journal stores whole slots");
/// The largest file a volume holds: 2^32 chunks.
const MAX_FILE: u64 = (u32::MAX as u64) * CHUNK as u64;

const HEADER_FILE: &str = "volume.lamina";
const MANIFESTS: [&str; 2] = ["manifest.0", "manifest.1"];
const OBJECTS: &str = "objects";
/// Manifest files are padded to a multiple of this.
const MANIFEST_PAD: usize = 4096;

/// The longest path in a volume (the manifest stores lengths in 16 bits).
const MAX_PATH_BYTES: usize = 4096;

/// The most files and directories a volume holds.
const MAX_ENTRIES: usize = 1 << 20;

/// The most symbolic links one path's resolution follows, as Linux allows (`ELOOP` beyond).
const MAX_LINKS_FOLLOWED: u32 = 40;

/// The most names one path's resolution walks through, its links' targets included: a path
/// alone has at most 2,048; beyond this bound links make the walk long on purpose (`ELOOP`).
const MAX_COMPONENTS_WALKED: usize = 8192;

/// The longest name of one file, directory or link, as Linux file systems allow.
const NAME_MAX: usize = 255;

/// The most chunks a manifest's journal carries (64 KiB); a commit with more is a checkpoint.
const JOURNAL_MAX_CHUNKS: usize = 16;

/// A checkpoint (object files synced, journal emptied) at least this often.
const CHECKPOINT_EVERY: u32 = 32;

/// A file's identity within a volume.
pub type FileId = [u8; 16];

/// How to open a volume.
#[derive(Clone, Debug)]
pub struct VolumeOptions {
    /// What the volume is (or will be) sealed to.
    pub seal_to: SealTo,
    /// The most bytes of file content the volume may hold.
    pub quota: u64,
    /// Whether to protect against rollback with the platform's monotonic counter. Without it a
    /// volume is still confidential and tamper-evident, but an older copy is accepted.
    pub rollback_protection: bool,
}

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link: a path, relative to the directory holding the link, that resolution
    /// follows within the volume.
    Symlink,
}

/// What `stat` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// File, directory or symbolic link.
    pub kind: Kind,
    /// Content bytes (0 for directories; a link's is the length of its target).
    pub size: u64,
    /// Last modification, nanoseconds since the Unix epoch.
    pub mtime: i64,
    /// Last access as set through `set_times` (reads do not change it, as on a file system
    /// mounted `noatime`), nanoseconds since the Unix epoch.
    pub atime: i64,
    /// A stable number for the file (from its id), or for a directory or link (from its path).
    pub ino: u64,
    /// How many names the file has (hard links); 1 for a directory or a symbolic link.
    pub links: u64,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name within the directory.
    pub name: String,
    /// File, directory or symbolic link.
    pub kind: Kind,
    /// As [`Stat::ino`].
    pub ino: u64,
}

/// What an open found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A directory.
    Dir,
    /// A file, now open: close it with [`Volume::close`].
    File(FileId),
}

/// How to open a path.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    /// Create the file if missing.
    pub create: bool,
    /// Fail if it exists (with `create`).
    pub exclusive: bool,
    /// Truncate a file to zero bytes.
    pub truncate: bool,
    /// Require a directory.
    pub directory: bool,
}

/// A path a guest gave, resolved within a volume by [`Volume::resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The path within the volume (`""` is its root), free of `.`, `..` and links, except that
    /// its last component may be a link that was not followed.
    pub path: String,
    /// The path can name only a directory: it ended with `/`, `.` or `..` (`file/` names
    /// nothing; POSIX answers it with `ENOTDIR`).
    pub dir_only: bool,
}

/// A path's times, nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug)]
struct Times {
    mtime: i64,
    atime: i64,
}

impl Times {
    fn now() -> Self {
        let t = now();
        Self { mtime: t, atime: t }
    }

    fn set(&mut self, atime: Option<i64>, mtime: Option<i64>) {
        if let Some(t) = atime {
            self.atime = t;
        }
        if let Some(t) = mtime {
            self.mtime = t;
        }
    }
}

enum Item {
    Dir { times: Times },
    File { id: FileId },
    Symlink { target: String, times: Times },
}

/// The one decrypted chunk a file keeps, so small sequential reads and writes do not decrypt
/// and re-encrypt a chunk each time.
struct Cached {
    index: u64,
    data: Box<[u8; CHUNK]>,
    dirty: bool,
}

struct FileState {
    /// A guest path of the file, for messages (the last one, if unlinked).
    path: String,
    size: u64,
    times: Times,
    /// Current chunk table (may include chunks beyond `size` after a shrink, until the next
    /// commit, so that their committed slots are not overwritten).
    chunks: Vec<ChunkRef>,
    /// The slot of each chunk in the last commit ([`HOLE`] if none).
    committed: Vec<u8>,
    key: aead::LessSafeKey,
    host: Option<File>,
    cache: Option<Cached>,
    /// Written since the last commit.
    pending: bool,
    opens: u32,
    /// The names (hard links) the file has; it goes when the last is removed and the last
    /// handle closed.
    links: u32,
}

/// An open sealed volume.
pub struct Volume {
    dir: PathBuf,
    header: Header,
    keys: VolumeKeys,
    /// Held open with an exclusive lock while the volume is open.
    _lock: File,
    items: BTreeMap<String, Item>,
    files: HashMap<FileId, FileState>,
    counter: Option<Box<dyn MonotonicCounter>>,
    counter_name: String,
    version: u64,
    /// Which manifest copy holds `version`.
    current_manifest: usize,
    quota: u64,
    used: u64,
    /// Namespace or content changed since the last commit.
    changed: bool,
    /// Object files to delete after the next commit.
    garbage: Vec<FileId>,
    /// The latest write of each chunk since the last checkpoint. Their object files are not
    /// synced: the next manifest carries them, so that one sync (the manifest's) makes a commit
    /// durable, and recovery writes them to their slots again.
    journal: BTreeMap<(FileId, u64), JournalEntry>,
    /// Object files written since the last checkpoint.
    unsynced: BTreeSet<FileId>,
    /// Files created since the last checkpoint.
    created: BTreeSet<FileId>,
    /// The journal outgrew [`JOURNAL_MAX_CHUNKS`]: the next commit is a checkpoint.
    journal_overflow: bool,
    /// Commits since the last checkpoint.
    since_checkpoint: u32,
    /// Closed by [`Volume::abandon`]: no last commit.
    abandoned: bool,
    /// A sync failed: no more writes or commits.
    poisoned: bool,
    rng: SystemRandom,
    scratch: Box<[u8; SLOT]>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume").field("dir", &self.dir).field("version", &self.version).finish_non_exhaustive()
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SealError + 'a {
    move |source| SealError::Io { action, path: path.to_path_buf(), source }
}

impl Volume {
    /// Whether `dir` holds a volume (its header), as opposed to nothing, an empty directory or
    /// an unfinished creation.
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(HEADER_FILE).exists()
    }

    /// The volume's random identifier, fixed at creation.
    pub fn id(&self) -> [u8; 16] {
        self.header.volume_id
    }

    /// Opens the sealed volume in `dir`, creating it if the directory is missing or empty.
    ///
    /// # Errors
    /// [`SealError::WrongIdentity`] when it is sealed to another module or signer,
    /// [`SealError::WrongPlatform`] when it was sealed on another platform or root,
    /// [`SealError::Rollback`] when it is older than its counter, [`SealError::Integrity`] when
    /// its metadata was tampered with, [`SealError::NotSealed`] for a non-empty ordinary
    /// directory, [`SealError::InUse`] when another process has it open.
    pub fn open(dir: &Path, platform: &dyn Platform, options: &VolumeOptions) -> Result<Self, SealError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let header_path = dir.join(HEADER_FILE);
        let exists = header_path.exists();
        if !exists {
            clear_unfinished_creation(dir)?;
        }
        let root = platform.sealing_root()?;
        let platform_name = platform.info().kind.name();
        if exists {
            Self::open_existing(dir, &root, platform, platform_name, options)
        } else {
            Self::create(dir, &root, platform, platform_name, options)
        }
    }

    fn create(
        dir: &Path,
        root: &SealingRoot,
        platform: &dyn Platform,
        platform_name: &str,
        options: &VolumeOptions,
    ) -> Result<Self, SealError> {
        let rng = SystemRandom::new();
        let mut volume_id = [0u8; 16];
        fill(&rng, &mut volume_id);
        let (counter_id, counter) = if options.rollback_protection {
            let (id, counter) = platform.create_counter()?;
            (Some(id.0), Some(counter))
        } else {
            (None, None)
        };
        let header = Header {
            volume_id,
            seal_kind: options.seal_to.kind(),
            identity: options.seal_to.identity(),
            platform: platform_name.to_owned(),
            counter: counter_id,
        };
        let keys = VolumeKeys::derive(root, &options.seal_to, &volume_id)?;
        let objects = dir.join(OBJECTS);
        std::fs::create_dir_all(&objects).map_err(io("create", &objects))?;
        // The header is written last, via a temporary name: a crash before leaves an
        // uninitialised directory that the next open recreates.
        let mut volume = Self::assemble(dir, header, keys, counter, options, rng)?;
        volume.changed = true;
        volume.commit()?;
        let tmp = dir.join("volume.lamina.tmp");
        std::fs::write(&tmp, volume.header.encode(&volume.keys.header)).map_err(io("write", &tmp))?;
        let header_path = dir.join(HEADER_FILE);
        std::fs::rename(&tmp, &header_path).map_err(io("create", &header_path))?;
        sync_dir(dir)?;
        volume._lock = lock(dir, &header_path)?;
        tracing::info!(dir = %dir.display(), "created a sealed volume sealed to {}", options.seal_to);
        Ok(volume)
    }

    fn assemble(
        dir: &Path,
        header: Header,
        keys: VolumeKeys,
        counter: Option<Box<dyn MonotonicCounter>>,
        options: &VolumeOptions,
        rng: SystemRandom,
    ) -> Result<Self, SealError> {
        // Until the header exists, the lock is on the directory itself.
        let lock_file = lock(dir, dir)?;
        let counter_name = counter.as_ref().map_or_else(|| "no counter".to_owned(), |c| c.describe());
        Ok(Self {
            dir: dir.into(),
            header,
            keys,
            _lock: lock_file,
            items: BTreeMap::new(),
            files: HashMap::new(),
            counter,
            counter_name,
            version: 0,
            current_manifest: 1,
            quota: options.quota,
            used: 0,
            changed: false,
            garbage: Vec::new(),
            journal: BTreeMap::new(),
            unsynced: BTreeSet::new(),
            created: BTreeSet::new(),
            journal_overflow: false,
            since_checkpoint: 0,
            abandoned: false,
            poisoned: false,
            rng,
            scratch: Box::new([0; SLOT]),
        })
    }

    fn open_existing(
        dir: &Path,
        root: &SealingRoot,
        platform: &dyn Platform,
        platform_name: &str,
        options: &VolumeOptions,
    ) -> Result<Self, SealError> {
        let header_path = dir.join(HEADER_FILE);
        let lock_file = lock(dir, &header_path)?;
        let bytes = std::fs::read(&header_path).map_err(io("read", &header_path))?;
        let integrity = |reason: String| SealError::Integrity { dir: dir.into(), file: HEADER_FILE.into(), reason };
        let (header, mac) = Header::decode(&bytes).map_err(integrity)?;
        let sealed_to = SealTo::from_parts(header.seal_kind, header.identity)
            .ok_or_else(|| integrity(format!("unknown sealing policy {}", header.seal_kind)))?;
        if sealed_to != options.seal_to {
            return Err(SealError::WrongIdentity {
                dir: dir.into(),
                sealed_to: sealed_to.to_string(),
                this: options.seal_to.to_string(),
            });
        }
        if header.platform != platform_name {
            return Err(SealError::WrongPlatform {
                dir: dir.into(),
                what: format!("on the {} platform, and this run uses {platform_name}", header.platform),
            });
        }
        let keys = VolumeKeys::derive(root, &sealed_to, &header.volume_id)?;
        if !header.verify(&mac, &keys.header) {
            return Err(SealError::WrongPlatform {
                dir: dir.into(),
                what: format!(
                    "with another {platform_name} sealing key (another machine, TPM or --state directory), or its header was modified"
                ),
            });
        }
        let counter = match &header.counter {
            Some(id) => Some(platform.open_counter(&CounterId(id.clone()))?),
            None if options.rollback_protection => {
                tracing::warn!(dir = %dir.display(), "this sealed volume was created without rollback protection");
                None
            }
            None => None,
        };
        let mut volume = Self::assemble(dir, header, keys, counter, options, SystemRandom::new())?;
        volume._lock = lock_file;
        volume.load_manifest()?;
        Ok(volume)
    }

    /// Reads both manifest copies and keeps the newest authentic one, checked against the
    /// counter.
    fn load_manifest(&mut self) -> Result<(), SealError> {
        let mut best: Option<(u64, usize, format::Manifest)> = None;
        let mut problems = Vec::new();
        for (n, name) in MANIFESTS.iter().enumerate() {
            let path = self.dir.join(name);
            let stored = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("read", &path)(e)),
            };
            let sealed = stored
                .get(..4)
                .and_then(|len| stored.get(4..4 + u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize))
                .unwrap_or_default();
            let Some(plain) = format::open_manifest(&self.keys.manifest, &self.header.volume_id, sealed) else {
                problems.push(format!("{name} fails authentication"));
                continue;
            };
            match format::decode_manifest(&plain) {
                Ok(manifest) if best.as_ref().is_none_or(|b| manifest.version > b.0) => {
                    best = Some((manifest.version, n, manifest));
                }
                Ok(_) => {}
                Err(reason) => problems.push(format!("{name}: {reason}")),
            }
        }
        let Some((version, n, manifest)) = best else {
            let reason = if problems.is_empty() { "no manifest".to_owned() } else { problems.join("; ") };
            tracing::error!(dir = %self.dir.display(), "sealed volume metadata: {reason}");
            return Err(SealError::Integrity { dir: self.dir.clone(), file: "manifest".into(), reason });
        };
        for problem in &problems {
            // A torn write of the newer copy leaves the older one: the last commit survives.
            tracing::warn!(dir = %self.dir.display(), "{problem}; using the other copy (version {version})");
        }
        if let Some(counter) = self.counter.as_mut() {
            let expected = counter.read()?;
            if version < expected {
                return Err(SealError::Rollback {
                    dir: self.dir.clone(),
                    found: version,
                    expected,
                    counter: self.counter_name.clone(),
                });
            }
            // At most one commit ahead after a crash between the manifest and the counter.
            counter.advance_to(version)?;
        }
        if !manifest.journal.is_empty() {
            self.replay(&manifest.journal)?;
            tracing::warn!(
                dir = %self.dir.display(),
                "the sealed volume was not closed cleanly; restored {} chunks of its last commit",
                manifest.journal.len()
            );
            // The next commit is a checkpoint, so that the manifest stops carrying them.
            self.journal_overflow = true;
            self.changed = true;
        }
        self.version = version;
        self.current_manifest = n;
        for entry in manifest.entries {
            let item = match entry.node {
                Node::Dir => Item::Dir { times: Times { mtime: entry.mtime, atime: entry.atime } },
                Node::Symlink { target } => {
                    self.used += target.len() as u64;
                    Item::Symlink { target, times: Times { mtime: entry.mtime, atime: entry.atime } }
                }
                Node::File { id, size, chunks } => {
                    if let Some(file) = self.files.get_mut(&id) {
                        // Another name of a file already loaded: both entries must agree.
                        if file.size != size || file.chunks != chunks {
                            return Err(SealError::Integrity {
                                dir: self.dir.clone(),
                                file: "manifest".into(),
                                reason: format!("two names of one file disagree: {} and {}", file.path, entry.path),
                            });
                        }
                        file.links += 1;
                        self.items.insert(entry.path, Item::File { id });
                        continue;
                    }
                    let committed = chunks.iter().map(|c| c.slot).collect();
                    self.used += size;
                    self.files.insert(
                        id,
                        FileState {
                            path: entry.path.clone(),
                            size,
                            times: Times { mtime: entry.mtime, atime: entry.atime },
                            chunks,
                            committed,
                            key: self.keys.file(&id)?,
                            host: None,
                            cache: None,
                            pending: false,
                            opens: 0,
                            links: 1,
                        },
                    );
                    Item::File { id }
                }
            };
            self.items.insert(entry.path, item);
        }
        Ok(())
    }

    /// Writes the chunks a manifest's journal carries to their slots again and syncs them: the
    /// commit that wrote them synced only the manifest, and a crash may have lost the object
    /// writes.
    fn replay(&self, journal: &[JournalEntry]) -> Result<(), SealError> {
        if journal.is_empty() {
            return Ok(());
        }
        let objects = self.dir.join(OBJECTS);
        let mut files: HashMap<FileId, File> = HashMap::new();
        for e in journal {
            let path = objects.join(hex::encode(e.id));
            let file = match files.entry(e.id) {
                std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&path)
                        .map_err(io("open", &path))?,
                ),
            };
            file.write_all_at(&e.bytes[..], slot_offset(e.index, e.slot)).map_err(io("write", &path))?;
        }
        for (id, file) in &files {
            file.sync_data().map_err(io("sync", &objects.join(hex::encode(id))))?;
        }
        sync_dir(&objects)?;
        tracing::debug!(dir = %self.dir.display(), "replayed {} journaled chunks", journal.len());
        Ok(())
    }

    /// Closes the volume without committing what was written since the last commit, as a
    /// crash would: the last commit stays the current state.
    pub fn abandon(mut self) {
        self.abandoned = true;
    }

    /// The host directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version of the last commit.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Bytes of file content the volume holds.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// What a path is.
    ///
    /// # Errors
    /// [`SealError::NotFound`].
    pub fn stat(&self, path: &str) -> Result<Stat, SealError> {
        if path.is_empty() {
            return Ok(Stat { kind: Kind::Dir, size: 0, mtime: 0, atime: 0, ino: dir_ino(""), links: 1 });
        }
        match self.items.get(path) {
            None => Err(SealError::NotFound(path.into())),
            Some(Item::Dir { times }) => Ok(Stat {
                kind: Kind::Dir,
                size: 0,
                mtime: times.mtime,
                atime: times.atime,
                ino: dir_ino(path),
                links: 1,
            }),
            Some(Item::File { id }) => Ok(self.file_stat(id)),
            Some(Item::Symlink { target, times }) => Ok(Stat {
                kind: Kind::Symlink,
                size: target.len() as u64,
                mtime: times.mtime,
                atime: times.atime,
                ino: dir_ino(path),
                links: 1,
            }),
        }
    }

    /// Resolves a guest path relative to a directory of the volume, as a directory descriptor
    /// allows it through wasmtime-wasi: component by component, following symbolic links
    /// (every one on the way; the last one too when `follow`, or when the path ends with `/`),
    /// with `..` going to the parent of where resolution is, never above `base`. An absolute
    /// path or link target, or `..` above `base`, [`SealError::Escapes`]: a descriptor is a
    /// capability for what is under it, and a link cannot widen it.
    ///
    /// # Errors
    /// [`SealError::Escapes`], [`SealError::NameTooLong`], [`SealError::TooManyLinks`] (more than
    /// 40 links followed), [`SealError::NotFound`] and [`SealError::NotADirectory`] for a
    /// component on the way that is missing or not a directory.
    pub fn resolve(&self, base: &str, relative: &str, follow: bool) -> Result<Resolved, SealError> {
        if relative.starts_with('/') {
            return Err(SealError::Escapes(relative.into()));
        }
        // The path resolved so far, and where each of its components starts (to go up a level).
        let mut path = String::with_capacity(base.len() + relative.len() + 1);
        let mut starts: Vec<usize> = Vec::new();
        let push = |path: &mut String, starts: &mut Vec<usize>, name: &str| {
            starts.push(path.len());
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(name);
        };
        for name in base.split('/').filter(|p| !p.is_empty()) {
            push(&mut path, &mut starts, name);
        }
        let floor = starts.len();
        // Components still to resolve, in reverse order, so that a link's target is pushed in
        // front of what follows it. They borrow the relative path or the targets of links in
        // the volume, which resolution does not change. `names` counts the non-empty ones, so
        // that whether a component is the last costs nothing.
        let mut queue: Vec<&str> = relative.split('/').rev().collect();
        let mut names = queue.iter().filter(|c| !c.is_empty()).count();
        let mut walked = 0usize;
        let mut followed = 0;
        let mut dir_only = false;
        while let Some(component) = queue.pop() {
            if component.is_empty() {
                continue;
            }
            names -= 1;
            walked += 1;
            if walked > MAX_COMPONENTS_WALKED {
                // Links whose targets are long walks, one after another: a guest's host call
                // must not take unbounded time.
                return Err(SealError::TooManyLinks(relative.into()));
            }
            // The last component; `trailing` when `/` follows it.
            let last = names == 0;
            let trailing = last && !queue.is_empty();
            match component {
                "." => dir_only |= last,
                ".." => {
                    let Some(start) = starts.pop().filter(|_| starts.len() >= floor) else {
                        return Err(SealError::Escapes(relative.into()));
                    };
                    path.truncate(start);
                    dir_only |= last;
                }
                name if name.len() > NAME_MAX => return Err(SealError::NameTooLong(relative.into())),
                name => {
                    push(&mut path, &mut starts, name);
                    match self.items.get(&path) {
                        Some(Item::Symlink { target, .. }) if !last || follow || trailing => {
                            followed += 1;
                            if followed > MAX_LINKS_FOLLOWED {
                                return Err(SealError::TooManyLinks(relative.into()));
                            }
                            if target.starts_with('/') {
                                return Err(SealError::Escapes(relative.into()));
                            }
                            if let Some(start) = starts.pop() {
                                path.truncate(start);
                            }
                            let before = queue.len();
                            queue.extend(target.split('/').rev());
                            names += queue[before..].iter().filter(|c| !c.is_empty()).count();
                        }
                        Some(Item::File { .. }) if !last => return Err(SealError::NotADirectory(path)),
                        None if !last => return Err(SealError::NotFound(path)),
                        _ => dir_only |= trailing,
                    }
                }
            }
        }
        Ok(Resolved { path, dir_only })
    }

    /// Creates a symbolic link at `path` holding `target`, a path relative to the link's
    /// directory (it need not exist). An absolute target is refused: it could name nothing
    /// inside the volume.
    ///
    /// # Errors
    /// [`SealError::Exists`], [`SealError::NotFound`] (no parent), [`SealError::Escapes`] (an
    /// absolute target), [`SealError::InvalidPath`] (an empty or over-long target).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), SealError> {
        if path.is_empty() || self.items.contains_key(path) {
            return Err(SealError::Exists(path.into()));
        }
        if target.starts_with('/') {
            return Err(SealError::Escapes(target.into()));
        }
        if target.is_empty() {
            return Err(SealError::NotFound(target.into()));
        }
        if target.len() > MAX_PATH_BYTES {
            return Err(SealError::InvalidPath {
                path: path.into(),
                reason: "the link's target is longer than 4096 bytes",
            });
        }
        self.check_new(path)?;
        self.charge_link(path, target)?;
        self.items.insert(path.into(), Item::Symlink { target: target.into(), times: Times::now() });
        self.changed = true;
        Ok(())
    }

    /// Gives the file at `existing` another name, `new` (a hard link): both name the same data
    /// from then on, and it goes when both are removed. A symbolic link at `existing` is copied
    /// (the link, not what it points to).
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::Exists`], [`SealError::IsADirectory`] (a directory
    /// is never linked), [`SealError::NotADirectory`] and [`SealError::NotFound`] for `new`'s
    /// parent.
    pub fn link(&mut self, existing: &str, new: &str) -> Result<(), SealError> {
        let item = match self.items.get(existing) {
            None if existing.is_empty() => return Err(SealError::IsADirectory(existing.into())),
            None => return Err(SealError::NotFound(existing.into())),
            Some(Item::Dir { .. }) => return Err(SealError::IsADirectory(existing.into())),
            Some(Item::File { id }) => Item::File { id: *id },
            Some(Item::Symlink { target, times }) => Item::Symlink { target: target.clone(), times: *times },
        };
        if new.is_empty() || self.items.contains_key(new) {
            return Err(SealError::Exists(new.into()));
        }
        self.check_new(new)?;
        if let Item::Symlink { target, .. } = &item {
            self.charge_link(new, target)?;
        }
        if let Item::File { id } = &item {
            let file = self.file_mut(id)?;
            file.links = file.links.checked_add(1).ok_or_else(|| SealError::InvalidPath {
                path: new.into(),
                reason: "the file has as many names as it may",
            })?;
        }
        self.items.insert(new.into(), item);
        self.changed = true;
        Ok(())
    }

    /// Counts a link's target against the quota, as file content is: links must not be a way to
    /// store more than the quota allows (in the manifest, rewritten at every commit).
    fn charge_link(&mut self, path: &str, target: &str) -> Result<(), SealError> {
        let len = target.len() as u64;
        if self.used + len > self.quota {
            tracing::warn!(volume = %self.dir.display(), link = %path, "link refused: quota of {} bytes", self.quota);
            return Err(SealError::QuotaExceeded { path: path.into(), quota: self.quota, used: self.used });
        }
        self.used += len;
        Ok(())
    }

    /// The target of the symbolic link at `path`.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::NotASymlink`].
    pub fn readlink(&self, path: &str) -> Result<&str, SealError> {
        match self.items.get(path) {
            Some(Item::Symlink { target, .. }) => Ok(target),
            Some(_) => Err(SealError::NotASymlink(path.into())),
            None if path.is_empty() => Err(SealError::NotASymlink(path.into())),
            None => Err(SealError::NotFound(path.into())),
        }
    }

    /// What an open file is.
    pub fn file_stat(&self, id: &FileId) -> Stat {
        let (size, times, links) =
            self.files.get(id).map_or((0, Times { mtime: 0, atime: 0 }, 0), |f| (f.size, f.times, f.links));
        Stat { kind: Kind::File, size, mtime: times.mtime, atime: times.atime, ino: file_ino(id), links: links.into() }
    }

    /// Checks a path about to be created: bounded in length and in number (the manifest holds
    /// every path), and its parent a directory.
    fn check_new(&self, path: &str) -> Result<(), SealError> {
        if path.len() > MAX_PATH_BYTES {
            return Err(SealError::InvalidPath { path: path.into(), reason: "the path is longer than 4096 bytes" });
        }
        if self.items.len() >= MAX_ENTRIES {
            return Err(SealError::InvalidPath {
                path: path.into(),
                reason: "the volume already holds its limit of 1,048,576 files and directories",
            });
        }
        self.check_parent(path)
    }

    fn check_parent(&self, path: &str) -> Result<(), SealError> {
        match path.rsplit_once('/') {
            None => Ok(()),
            Some((parent, _)) => match self.items.get(parent) {
                Some(Item::Dir { .. }) => Ok(()),
                Some(Item::File { .. } | Item::Symlink { .. }) => Err(SealError::NotADirectory(parent.into())),
                None => Err(SealError::NotFound(parent.into())),
            },
        }
    }

    /// Opens (or creates) a path, resolved by [`Volume::resolve`]: a symbolic link there is not
    /// followed.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::Exists`], [`SealError::IsADirectory`],
    /// [`SealError::NotADirectory`], [`SealError::IsASymlink`].
    pub fn open_path(&mut self, path: &str, flags: OpenFlags) -> Result<Opened, SealError> {
        if path.is_empty() {
            return if flags.create && flags.exclusive {
                Err(SealError::Exists(String::new()))
            } else {
                Ok(Opened::Dir)
            };
        }
        match self.items.get(path) {
            Some(Item::Dir { .. }) => {
                if flags.create && flags.exclusive {
                    Err(SealError::Exists(path.into()))
                } else if flags.truncate {
                    Err(SealError::IsADirectory(path.into()))
                } else {
                    Ok(Opened::Dir)
                }
            }
            Some(Item::File { id }) => {
                let id = *id;
                if flags.create && flags.exclusive {
                    return Err(SealError::Exists(path.into()));
                }
                if flags.directory {
                    return Err(SealError::NotADirectory(path.into()));
                }
                if flags.truncate {
                    self.set_len(&id, 0)?;
                }
                if let Some(file) = self.files.get_mut(&id) {
                    file.opens += 1;
                }
                Ok(Opened::File(id))
            }
            Some(Item::Symlink { .. }) if flags.create && flags.exclusive => Err(SealError::Exists(path.into())),
            Some(Item::Symlink { .. }) => Err(SealError::IsASymlink(path.into())),
            None if flags.create && !flags.directory => {
                self.check_new(path)?;
                let mut id = [0u8; 16];
                fill(&self.rng, &mut id);
                let file = FileState {
                    path: path.into(),
                    size: 0,
                    times: Times::now(),
                    chunks: Vec::new(),
                    committed: Vec::new(),
                    key: self.keys.file(&id)?,
                    host: None,
                    cache: None,
                    pending: false,
                    opens: 1,
                    links: 1,
                };
                self.files.insert(id, file);
                self.created.insert(id);
                self.items.insert(path.into(), Item::File { id });
                self.changed = true;
                Ok(Opened::File(id))
            }
            None => Err(SealError::NotFound(path.into())),
        }
    }

    /// Closes a file opened by [`Volume::open_path`].
    ///
    /// # Errors
    /// When writing its cached chunk fails.
    pub fn close(&mut self, id: &FileId) -> Result<(), SealError> {
        let Some(file) = self.files.get_mut(id) else { return Ok(()) };
        file.opens = file.opens.saturating_sub(1);
        let flushed = self.flush_cache(id);
        let Some(file) = self.files.get_mut(id) else { return flushed };
        if file.opens == 0 {
            file.host = None;
            if file.links == 0 {
                let size = file.size;
                self.files.remove(id);
                self.garbage.push(*id);
                self.used = self.used.saturating_sub(size);
            }
        }
        flushed
    }

    /// Reads from a file at an offset; fewer bytes at the end of the file.
    ///
    /// # Errors
    /// [`SealError::Integrity`] when the data fails its check (also logged, naming the file).
    pub fn read_at(&mut self, id: &FileId, offset: u64, buf: &mut [u8]) -> Result<usize, SealError> {
        let size = self.files.get(id).map_or(0, |f| f.size);
        if offset >= size {
            return Ok(0);
        }
        let end = size.min(offset.saturating_add(buf.len() as u64));
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let n = (CHUNK - within).min((end - pos) as usize);
            let out = &mut buf[(pos - offset) as usize..][..n];
            self.with_chunk(id, index, |data| out.copy_from_slice(&data[within..within + n]))?;
            pos += n as u64;
        }
        Ok((end - offset) as usize)
    }

    /// Runs `f` on a chunk's plaintext: from the cache, or decrypted (and cached unless the
    /// cache holds a dirty chunk).
    fn with_chunk(&mut self, id: &FileId, index: u64, f: impl FnOnce(&[u8; CHUNK])) -> Result<(), SealError> {
        let file = self.file_mut(id)?;
        if let Some(cached) = &file.cache
            && cached.index == index
        {
            f(&cached.data);
            return Ok(());
        }
        let mut data = Box::new([0u8; CHUNK]);
        self.load_chunk(id, index, &mut data)?;
        f(&data);
        let file = self.file_mut(id)?;
        if file.cache.as_ref().is_none_or(|c| !c.dirty) {
            file.cache = Some(Cached { index, data, dirty: false });
        }
        Ok(())
    }

    fn file_mut(&mut self, id: &FileId) -> Result<&mut FileState, SealError> {
        self.files.get_mut(id).ok_or_else(|| SealError::NotFound("(closed file)".into()))
    }

    /// Decrypts chunk `index` of a file into `out` (zeros for a hole).
    fn load_chunk(&mut self, id: &FileId, index: u64, out: &mut [u8; CHUNK]) -> Result<(), SealError> {
        let dir = self.dir.clone();
        let scratch = &mut self.scratch;
        let file = self.files.get_mut(id).ok_or_else(|| SealError::NotFound("(closed file)".into()))?;
        let Some(chunk) = file.chunks.get(index as usize).copied().filter(|c| c.slot != HOLE) else {
            out.fill(0);
            return Ok(());
        };
        let fail = |reason: String| {
            tracing::error!(volume = %dir.display(), file = %file.path, "integrity error: {reason}");
            SealError::Integrity { dir: dir.clone(), file: file.path.clone(), reason }
        };
        let host = host_file(&dir, id, &mut file.host, false)?;
        let offset = slot_offset(index, chunk.slot);
        if let Err(e) = host.read_exact_at(&mut scratch[..], offset) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                fail(format!("chunk {index} is missing: the host file was truncated"))
            } else {
                io("read", &dir.join(OBJECTS).join(hex::encode(id)))(e)
            });
        }
        if scratch[12 + CHUNK..] != chunk.tag {
            return Err(fail(format!(
                "chunk {index} is not the version the manifest records (replaced, swapped or rolled back)"
            )));
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&scratch[..12]);
        let aad = chunk_aad(id, index);
        let (body, _) = scratch.split_at_mut(12 + CHUNK + 16);
        if file.key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&aad), &mut body[12..]).is_err() {
            return Err(fail(format!("chunk {index} fails authentication: its bytes were modified")));
        }
        out.copy_from_slice(&scratch[12..12 + CHUNK]);
        Ok(())
    }

    /// Encrypts `data` as chunk `index` into the slot the last commit does not use.
    fn store_chunk(&mut self, id: &FileId, index: u64, data: &[u8; CHUNK]) -> Result<(), SealError> {
        self.check_usable()?;
        let dir = self.dir.clone();
        let mut nonce = [0u8; 12];
        fill(&self.rng, &mut nonce);
        let scratch = &mut self.scratch;
        let file = self.files.get_mut(id).ok_or_else(|| SealError::NotFound("(closed file)".into()))?;
        let i = index as usize;
        if file.chunks.len() <= i {
            file.chunks.resize(i + 1, ChunkRef::HOLE);
        }
        let committed = file.committed.get(i).copied().unwrap_or(HOLE);
        let current = file.chunks[i].slot;
        let slot = if current != HOLE && current != committed {
            current
        } else if committed == 0 {
            1
        } else {
            0
        };
        scratch[..12].copy_from_slice(&nonce);
        scratch[12..12 + CHUNK].copy_from_slice(data);
        let aad = chunk_aad(id, index);
        let tag = file
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut scratch[12..12 + CHUNK],
            )
            .map_err(|_| SealError::Integrity {
                dir: dir.clone(),
                file: file.path.clone(),
                reason: "encryption failed".into(),
            })?;
        scratch[12 + CHUNK..].copy_from_slice(tag.as_ref());
        let host = host_file(&dir, id, &mut file.host, true)?;
        host.write_all_at(&scratch[..], slot_offset(index, slot))
            .map_err(io("write", &dir.join(OBJECTS).join(hex::encode(id))))?;
        let mut tag_bytes = [0u8; 16];
        tag_bytes.copy_from_slice(tag.as_ref());
        file.chunks[i] = ChunkRef { slot, tag: tag_bytes };
        file.pending = true;
        self.unsynced.insert(*id);
        if !self.journal_overflow {
            if self.journal.len() >= JOURNAL_MAX_CHUNKS && !self.journal.contains_key(&(*id, index)) {
                self.journal_overflow = true;
                self.journal.clear();
            } else {
                let bytes = Box::new(**scratch);
                self.journal.insert((*id, index), JournalEntry { id: *id, index, slot, bytes });
            }
        }
        Ok(())
    }

    fn flush_cache(&mut self, id: &FileId) -> Result<(), SealError> {
        let Some(file) = self.files.get_mut(id) else { return Ok(()) };
        let Some(cached) = file.cache.as_ref().filter(|c| c.dirty) else { return Ok(()) };
        let (index, data) = (cached.index, cached.data.clone());
        // Clean only once stored: a store the host refuses (a full disk, no file descriptors
        // left) leaves the chunk dirty, for the next flush to store, never lost.
        self.store_chunk(id, index, &data)?;
        if let Some(cached) = self.files.get_mut(id).and_then(|f| f.cache.as_mut()).filter(|c| c.index == index) {
            cached.dirty = false;
        }
        Ok(())
    }

    /// Writes at an offset, extending the file (with zeros in any gap).
    ///
    /// # Errors
    /// [`SealError::QuotaExceeded`], [`SealError::TooLarge`], and as [`Volume::read_at`] for a
    /// partly written chunk.
    pub fn write_at(&mut self, id: &FileId, offset: u64, data: &[u8]) -> Result<usize, SealError> {
        let (size, path) = {
            let file = self.file_mut(id)?;
            (file.size, file.path.clone())
        };
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE)
            .ok_or(SealError::TooLarge(path.clone()))?;
        let grow = end.saturating_sub(size);
        if self.used + grow > self.quota {
            tracing::warn!(volume = %self.dir.display(), file = %path, "write refused: quota of {} bytes", self.quota);
            return Err(SealError::QuotaExceeded { path, quota: self.quota, used: self.used });
        }
        let mut pos = offset;
        while pos < end {
            let index = pos / CHUNK as u64;
            let within = (pos % CHUNK as u64) as usize;
            let n = (CHUNK - within).min((end - pos) as usize);
            let src = &data[(pos - offset) as usize..][..n];
            if n == CHUNK {
                let file = self.file_mut(id)?;
                if file.cache.as_ref().is_some_and(|c| c.index == index) {
                    file.cache = None;
                }
                let mut block = [0u8; CHUNK];
                block.copy_from_slice(src);
                self.store_chunk(id, index, &block)?;
            } else {
                self.ensure_cached(id, index, size)?;
                let file = self.file_mut(id)?;
                if let Some(cached) = file.cache.as_mut() {
                    cached.data[within..within + n].copy_from_slice(src);
                    cached.dirty = true;
                }
                file.pending = true;
            }
            pos += n as u64;
        }
        let file = self.file_mut(id)?;
        file.size = file.size.max(end);
        file.times.mtime = now();
        self.used += grow;
        self.changed = true;
        Ok(data.len())
    }

    /// Makes chunk `index` the cached one, writing back a dirty chunk it replaces.
    fn ensure_cached(&mut self, id: &FileId, index: u64, size: u64) -> Result<(), SealError> {
        let file = self.file_mut(id)?;
        if file.cache.as_ref().is_some_and(|c| c.index == index) {
            return Ok(());
        }
        self.flush_cache(id)?;
        let mut data = Box::new([0u8; CHUNK]);
        if index * (CHUNK as u64) < size {
            self.load_chunk(id, index, &mut data)?;
        }
        self.file_mut(id)?.cache = Some(Cached { index, data, dirty: false });
        Ok(())
    }

    /// Sets a file's length: truncates, or extends with zeros.
    ///
    /// # Errors
    /// As [`Volume::write_at`].
    pub fn set_len(&mut self, id: &FileId, len: u64) -> Result<(), SealError> {
        let (size, path) = {
            let file = self.file_mut(id)?;
            (file.size, file.path.clone())
        };
        if len > MAX_FILE {
            return Err(SealError::TooLarge(path));
        }
        if len > size {
            if self.used + (len - size) > self.quota {
                return Err(SealError::QuotaExceeded { path, quota: self.quota, used: self.used });
            }
            self.used += len - size;
        } else {
            self.used = self.used.saturating_sub(size - len);
            let within = (len % CHUNK as u64) as usize;
            let last = len / CHUNK as u64;
            if within != 0 && len < size {
                // Zero the tail of the last chunk, so that growing again reads zeros.
                self.ensure_cached(id, last, size)?;
                let file = self.file_mut(id)?;
                if let Some(cached) = file.cache.as_mut() {
                    cached.data[within..].fill(0);
                    cached.dirty = true;
                }
            }
            let file = self.file_mut(id)?;
            let keep = len.div_ceil(CHUNK as u64) as usize;
            // Chunks beyond the end become holes but stay in the table until the next commit,
            // which still knows their committed slots.
            for chunk in file.chunks.iter_mut().skip(keep) {
                *chunk = ChunkRef::HOLE;
            }
            if file.cache.as_ref().is_some_and(|c| c.index as usize >= keep) {
                file.cache = None;
            }
        }
        let file = self.file_mut(id)?;
        file.size = len;
        file.times.mtime = now();
        file.pending = true;
        self.changed = true;
        Ok(())
    }

    /// Sets an open file's access and modification times (nanoseconds since the Unix epoch);
    /// `None` leaves one as it is.
    ///
    /// # Errors
    /// [`SealError::NotFound`] for a file that is not open.
    pub fn set_file_times(&mut self, id: &FileId, atime: Option<i64>, mtime: Option<i64>) -> Result<(), SealError> {
        self.file_mut(id)?.times.set(atime, mtime);
        self.changed = true;
        Ok(())
    }

    /// Sets a path's access and modification times (a symbolic link's own); `None` leaves one
    /// as it is.
    ///
    /// # Errors
    /// [`SealError::NotFound`].
    pub fn set_times(&mut self, path: &str, atime: Option<i64>, mtime: Option<i64>) -> Result<(), SealError> {
        match self.items.get_mut(path) {
            Some(Item::Dir { times } | Item::Symlink { times, .. }) => times.set(atime, mtime),
            Some(Item::File { id }) => {
                let id = *id;
                self.file_mut(&id)?.times.set(atime, mtime);
            }
            None if path.is_empty() => {}
            None => return Err(SealError::NotFound(path.into())),
        }
        self.changed = true;
        Ok(())
    }

    /// Creates a directory.
    ///
    /// # Errors
    /// [`SealError::Exists`], [`SealError::NotFound`] (no parent).
    pub fn mkdir(&mut self, path: &str) -> Result<(), SealError> {
        if path.is_empty() || self.items.contains_key(path) {
            return Err(SealError::Exists(path.into()));
        }
        self.check_new(path)?;
        self.items.insert(path.into(), Item::Dir { times: Times::now() });
        self.changed = true;
        Ok(())
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::NotADirectory`], [`SealError::NotEmpty`].
    pub fn rmdir(&mut self, path: &str) -> Result<(), SealError> {
        match self.items.get(path) {
            None => return Err(SealError::NotFound(path.into())),
            Some(Item::File { .. } | Item::Symlink { .. }) => return Err(SealError::NotADirectory(path.into())),
            Some(Item::Dir { .. }) => {}
        }
        if self.children(path).next().is_some() {
            return Err(SealError::NotEmpty(path.into()));
        }
        self.items.remove(path);
        self.changed = true;
        Ok(())
    }

    /// Removes a file (its data goes once the last open handle closes) or a symbolic link.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::IsADirectory`].
    pub fn unlink(&mut self, path: &str) -> Result<(), SealError> {
        match self.items.get(path) {
            None if path.is_empty() => Err(SealError::IsADirectory(path.into())),
            None => Err(SealError::NotFound(path.into())),
            Some(Item::Dir { .. }) => Err(SealError::IsADirectory(path.into())),
            Some(Item::File { id }) => {
                let id = *id;
                self.items.remove(path);
                self.drop_file(&id);
                self.changed = true;
                Ok(())
            }
            Some(Item::Symlink { target, .. }) => {
                self.used = self.used.saturating_sub(target.len() as u64);
                self.items.remove(path);
                self.changed = true;
                Ok(())
            }
        }
    }

    /// Removes one name of a file. Its content counts against the quota until it is gone: when
    /// its last name goes, now, or when the last open handle closes.
    fn drop_file(&mut self, id: &FileId) {
        if let Some(file) = self.files.get_mut(id) {
            file.links = file.links.saturating_sub(1);
            if file.links == 0 && file.opens == 0 {
                let size = file.size;
                self.files.remove(id);
                self.garbage.push(*id);
                self.used = self.used.saturating_sub(size);
            }
        }
    }

    /// Renames a file, directory or symbolic link (the link itself), replacing a file or link (or
    /// an empty directory) at the target.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::IsADirectory`], [`SealError::NotADirectory`],
    /// [`SealError::NotEmpty`], [`SealError::InvalidPath`] (a directory into itself).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), SealError> {
        if from == to {
            return self.stat(from).map(|_| ());
        }
        let source_is_dir = match self.items.get(from) {
            None => return Err(SealError::NotFound(from.into())),
            Some(Item::Dir { .. }) => true,
            Some(Item::File { .. } | Item::Symlink { .. }) => false,
        };
        if from.is_empty() || to.is_empty() || to.starts_with(&format!("{from}/")) {
            return Err(SealError::InvalidPath { path: to.into(), reason: "cannot move a directory into itself" });
        }
        self.check_parent(to)?;
        let longest_suffix = if source_is_dir {
            let prefix = format!("{from}/");
            self.items
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.len() - from.len())
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        if to.len() + longest_suffix > MAX_PATH_BYTES {
            return Err(SealError::InvalidPath { path: to.into(), reason: "a path would be longer than 4096 bytes" });
        }
        match self.items.get(to) {
            Some(Item::Dir { .. }) if !source_is_dir => return Err(SealError::IsADirectory(to.into())),
            Some(Item::File { .. } | Item::Symlink { .. }) if source_is_dir => {
                return Err(SealError::NotADirectory(to.into()));
            }
            Some(Item::Dir { .. }) if self.children(to).next().is_some() => {
                return Err(SealError::NotEmpty(to.into()));
            }
            Some(Item::File { id }) => {
                let id = *id;
                if matches!(self.items.get(from), Some(Item::File { id: source }) if *source == id) {
                    // Two names of one file: POSIX leaves both.
                    return Ok(());
                }
                self.drop_file(&id);
            }
            Some(Item::Symlink { target, .. }) => {
                // The link replaced goes, and its target's bytes with it.
                self.used = self.used.saturating_sub(target.len() as u64);
            }
            _ => {}
        }
        let moved: Vec<String> = if source_is_dir {
            let prefix = format!("{from}/");
            self.items
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            Vec::new()
        };
        for path in std::iter::once(from.to_owned()).chain(moved) {
            let Some(item) = self.items.remove(&path) else { continue };
            let new_path = format!("{to}{}", &path[from.len()..]);
            if let Item::File { id } = &item
                && let Some(file) = self.files.get_mut(id)
            {
                file.path = new_path.clone();
            }
            self.items.insert(new_path, item);
        }
        self.changed = true;
        Ok(())
    }

    fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Item)> + 'a {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let start = prefix.clone();
        let skip = prefix.len();
        self.items
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| !k[skip..].contains('/'))
    }

    /// Lists a directory, sorted by name.
    ///
    /// # Errors
    /// [`SealError::NotFound`], [`SealError::NotADirectory`].
    pub fn readdir(&self, path: &str) -> Result<Vec<DirEntry>, SealError> {
        if self.stat(path)?.kind != Kind::Dir {
            return Err(SealError::NotADirectory(path.into()));
        }
        let skip = path.len() + usize::from(!path.is_empty());
        Ok(self
            .children(path)
            .map(|(k, item)| match item {
                Item::Dir { .. } => DirEntry { name: k[skip..].to_owned(), kind: Kind::Dir, ino: dir_ino(k) },
                Item::File { id } => DirEntry { name: k[skip..].to_owned(), kind: Kind::File, ino: file_ino(id) },
                Item::Symlink { .. } => DirEntry { name: k[skip..].to_owned(), kind: Kind::Symlink, ino: dir_ino(k) },
            })
            .collect())
    }

    /// Makes everything written so far durable and current: writes back cached chunks, syncs
    /// the object files, writes the next manifest copy, syncs it, then advances the counter.
    /// A no-op when nothing changed.
    ///
    /// # Errors
    /// When the host or the counter fails; the previous commit stays current.
    pub fn commit(&mut self) -> Result<(), SealError> {
        self.check_usable()?;
        let result = self.commit_inner();
        if let Err(SealError::Io { action: "sync", .. }) = &result {
            // After a failed fsync the kernel may have dropped the dirty pages; a later sync
            // could succeed without the data. Stop here; a reopen starts from the last commit.
            self.poisoned = true;
        }
        result
    }

    fn check_usable(&self) -> Result<(), SealError> {
        if self.poisoned {
            return Err(SealError::Io {
                action: "use",
                path: self.dir.clone(),
                source: std::io::Error::other(
                    "an earlier sync of this volume failed; reopen it to continue from the last commit",
                ),
            });
        }
        Ok(())
    }

    fn commit_inner(&mut self) -> Result<(), SealError> {
        let dirty: Vec<FileId> = self.files.iter().filter(|(_, f)| f.pending).map(|(id, _)| *id).collect();
        if dirty.is_empty() && !self.changed {
            return Ok(());
        }
        for id in &dirty {
            self.flush_cache(id)?;
        }
        // A checkpoint syncs the object files written since the last one, and the manifest
        // needs no journal; otherwise the manifest carries those writes and only it is synced.
        let checkpoint = self.journal_overflow || self.since_checkpoint >= CHECKPOINT_EVERY;
        if checkpoint {
            let dir = self.dir.clone();
            for id in &self.unsynced {
                if let Some(file) = self.files.get_mut(id)
                    && file.chunks.iter().any(|c| c.slot != HOLE)
                {
                    let host = host_file(&dir, id, &mut file.host, true)?;
                    host.sync_data().map_err(io("sync", &dir.join(OBJECTS).join(hex::encode(id))))?;
                }
            }
            if self.created.iter().any(|id| self.files.get(id).is_some_and(|f| f.links > 0)) {
                // Files created since the last checkpoint that still exist: their object files'
                // names must be durable too. (A journal file created and removed between two
                // checkpoints needs nothing.)
                sync_dir(&dir.join(OBJECTS))?;
            }
        }
        let version = self.version + 1;
        let entries = self.entries();
        let journal: Vec<&JournalEntry> =
            if checkpoint { Vec::new() } else { self.journal.values().filter(|e| self.references(e)).collect() };
        let journaled: BTreeSet<(FileId, u64)> = journal.iter().map(|e| (e.id, e.index)).collect();
        let plain = format::encode_manifest(version, entries.into_iter(), &journal);
        let mut nonce = [0u8; 12];
        fill(&self.rng, &mut nonce);
        let sealed = format::seal_manifest(&self.keys.manifest, &self.header.volume_id, nonce, plain);
        let target = 1 - self.current_manifest;
        let path = self.dir.join(MANIFESTS[target]);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        // Stored as `length u32 | sealed manifest`, in a file that only grows, by powers of two
        // from 4 KiB: the file's size (metadata the sync would also have to write) rarely
        // changes, and what follows the manifest is ignored.
        let mut stored = Vec::with_capacity(sealed.len() + 4);
        stored.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        stored.extend_from_slice(&sealed);
        file.write_all_at(&stored, 0).map_err(io("write", &path))?;
        let want = (stored.len().div_ceil(MANIFEST_PAD) * MANIFEST_PAD).next_power_of_two() as u64;
        if file.metadata().map_err(io("stat", &path))?.len() < want {
            file.set_len(want).map_err(io("write", &path))?;
        }
        file.sync_data().map_err(io("sync", &path))?;
        if self.version == 0 {
            sync_dir(&self.dir)?;
        }
        // The manifest is durable: from here on it is the current state, in memory too, before
        // anything else can fail.
        self.version = version;
        self.current_manifest = target;
        for file in self.files.values_mut() {
            if file.pending {
                let keep = file.size.div_ceil(CHUNK as u64) as usize;
                file.chunks.truncate(keep);
                file.committed = file.chunks.iter().map(|c| c.slot).collect();
                file.pending = false;
            }
        }
        if checkpoint {
            self.journal.clear();
            self.unsynced.clear();
            self.created.clear();
            self.journal_overflow = false;
            self.since_checkpoint = 0;
        } else {
            // What the manifest did not carry is no longer referenced (a removed file, a
            // truncated chunk).
            self.journal.retain(|key, _| journaled.contains(key));
            self.since_checkpoint += 1;
        }
        for id in std::mem::take(&mut self.garbage) {
            self.unsynced.remove(&id);
            let path = self.dir.join(OBJECTS).join(hex::encode(id));
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
        self.changed = false;
        // A failure here is a crash between the manifest and the counter: the next open
        // advances the counter.
        if let Some(counter) = self.counter.as_mut() {
            counter.advance_to(version)?;
        }
        Ok(())
    }

    /// Whether the state being committed refers to this journal entry's slot.
    fn references(&self, e: &JournalEntry) -> bool {
        self.files.get(&e.id).is_some_and(|f| {
            f.links > 0
                && e.index < f.size.div_ceil(CHUNK as u64)
                && f.chunks.get(e.index as usize).is_some_and(|c| c.slot == e.slot)
        })
    }

    fn entries(&self) -> Vec<Entry> {
        self.items
            .iter()
            .map(|(path, item)| match item {
                Item::Dir { times } => {
                    Entry { path: path.clone(), mtime: times.mtime, atime: times.atime, node: Node::Dir }
                }
                Item::File { id } => {
                    let (size, times, chunks) =
                        self.files.get(id).map_or((0, Times { mtime: 0, atime: 0 }, Vec::new()), |f| {
                            let keep = f.size.div_ceil(CHUNK as u64) as usize;
                            (f.size, f.times, f.chunks.iter().take(keep).copied().collect())
                        });
                    let node = Node::File { id: *id, size, chunks };
                    Entry { path: path.clone(), mtime: times.mtime, atime: times.atime, node }
                }
                Item::Symlink { target, times } => Entry {
                    path: path.clone(),
                    mtime: times.mtime,
                    atime: times.atime,
                    node: Node::Symlink { target: target.clone() },
                },
            })
            .collect()
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if self.abandoned {
            return;
        }
        // Closing is a checkpoint: the object files are synced and the last manifest carries no
        // journal, so that any later change to the host files is an integrity error.
        if !self.journal.is_empty() || !self.unsynced.is_empty() {
            self.journal_overflow = true;
            self.changed = true;
        }
        if let Err(e) = self.commit() {
            tracing::error!(volume = %self.dir.display(), "the last writes could not be committed: {e}");
        }
    }
}

/// A directory without a header is new, or a creation that crashed before writing its header
/// (which is written last): then it holds only an empty `objects/`, manifest copies and the
/// temporary header, and is cleared to start again. Anything else is someone's data.
fn clear_unfinished_creation(dir: &Path) -> Result<(), SealError> {
    let leftovers = ["objects", MANIFESTS[0], MANIFESTS[1], "volume.lamina.tmp"];
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let is_leftover = leftovers.iter().any(|l| name == *l);
        let empty_objects =
            name == "objects" && std::fs::read_dir(entry.path()).map_err(io("list", &entry.path()))?.next().is_none();
        if !is_leftover || (name == "objects" && !empty_objects) {
            return Err(SealError::NotSealed { dir: dir.into() });
        }
        found.push(entry.path());
    }
    for path in found {
        let removed = if path.is_dir() { std::fs::remove_dir(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(io("remove", &path))?;
    }
    Ok(())
}

fn fill(rng: &SystemRandom, out: &mut [u8]) {
    // Invariant: the OS random source does not fail on Linux once the process runs; if it
    // ever did, continuing with predictable ids or nonces would be worse than stopping.
    #[allow(clippy::expect_used, reason = "no safe way to continue without randomness")]
    rng.fill(out).expect("the operating system's random source");
}

fn slot_offset(index: u64, slot: u8) -> u64 {
    (2 * index + u64::from(slot)) * SLOT as u64
}

fn chunk_aad(id: &FileId, index: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(id);
    aad[16..].copy_from_slice(&index.to_le_bytes());
    aad
}

fn file_ino(id: &FileId) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id[..8]);
    u64::from_le_bytes(bytes) | 1 << 63
}

fn dir_ino(path: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, path.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_le_bytes(bytes) & !(1 << 63)
}

fn host_file<'a>(dir: &Path, id: &FileId, slot: &'a mut Option<File>, create: bool) -> Result<&'a File, SealError> {
    if slot.is_none() {
        let path = dir.join(OBJECTS).join(hex::encode(id));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).open(&path).map_err(
                |e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        SealError::Integrity {
                            dir: dir.into(),
                            file: format!("objects/{}", hex::encode(id)),
                            reason: "the host file of a sealed file is missing".into(),
                        }
                    } else {
                        io("open", &path)(e)
                    }
                },
            )?;
        *slot = Some(file);
    }
    // Invariant: set just above when it was empty.
    #[allow(clippy::expect_used, reason = "the option was filled above")]
    Ok(slot.as_ref().expect("host file opened"))
}

fn lock(dir: &Path, path: &Path) -> Result<File, SealError> {
    let file = File::open(path).map_err(io("open", path))?;
    // A lock held for a moment is not "in use": a process forking a child (which holds a copy
    // of every descriptor until it execs) keeps a just-released lock for a few milliseconds.
    for _ in 0..50 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", path)(e)),
        }
    }
    Err(SealError::InUse { dir: dir.into() })
}

fn sync_dir(dir: &Path) -> Result<(), SealError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync", dir))
}
