//! rusty-leveldb's `Env` (its file layer) from plain `std::fs` calls, so that the store runs
//! on WASI preview 1 and 0.2: random reads are a seek and a read (the guest is single-threaded,
//! so nothing races the cursor); a written file's `flush` drains its buffer and syncs the file
//! (the store flushes at the points it needs durable: the log on `DB::flush`, each finished
//! table, the manifest, `CURRENT`); a lock is held in-process where the platform has no file
//! locks (WASI), so one directory must be used by one instance at a time (the host's job: a
//! sealed volume is opened by one process at a time).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusty_leveldb::env::{Env, FileLock, Logger, RandomAccess};
use rusty_leveldb::{Result, Status, StatusCode};

const BUFFER: usize = 64 * 1024;

fn failed(what: &str, path: &Path, e: io::Error) -> Status {
    Status::from(e).annotate(format!("{what} {}", path.display()))
}

/// Reads until `buf` is full or the file ends. rusty-leveldb's log reader takes a short read
/// for a torn record and stops recovery there, so a reader must never return one early.
fn read_full(mut source: impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match source.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A sequential reader whose reads are full (see [`read_full`]).
struct FullReads(BufReader<File>);

impl Read for FullReads {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_full(&mut self.0, buf)
    }
}

/// Random access as a seek and a full read.
struct SeekReads(File);

impl RandomAccess for SeekReads {
    fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<usize> {
        let mut file = &self.0;
        file.seek(SeekFrom::Start(offset as u64))?;
        Ok(read_full(file, dst)?)
    }
}

/// A buffered writer whose `flush` is durable: the buffer is written, then the file synced.
struct DurableWriter(BufWriter<File>);

impl Write for DurableWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.0.get_ref().sync_data()
    }
}

impl Drop for DurableWriter {
    fn drop(&mut self) {
        // A file closed is a file the store is done with: make it durable as it goes.
        let _ = self.flush();
    }
}

/// The file layer.
#[derive(Default)]
pub struct StdFs {
    /// Lock files held: by this process only, where the platform has no file locks.
    locks: RefCell<HashSet<String>>,
    /// Lock files held with an operating-system lock, kept open to keep it.
    os_locks: RefCell<Vec<(String, File)>>,
}

impl StdFs {
    fn writer(&self, path: &Path, append: bool) -> Result<Box<dyn Write>> {
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let file = options.open(path).map_err(|e| failed("open for writing", path, e))?;
        Ok(Box::new(DurableWriter(BufWriter::with_capacity(BUFFER, file))))
    }
}

impl Env for StdFs {
    fn open_sequential_file(&self, path: &Path) -> Result<Box<dyn Read>> {
        let file = File::open(path).map_err(|e| failed("open", path, e))?;
        Ok(Box::new(FullReads(BufReader::with_capacity(BUFFER, file))))
    }

    fn open_random_access_file(&self, path: &Path) -> Result<Box<dyn RandomAccess>> {
        let file = File::open(path).map_err(|e| failed("open", path, e))?;
        Ok(Box::new(SeekReads(file)))
    }

    fn open_writable_file(&self, path: &Path) -> Result<Box<dyn Write>> {
        self.writer(path, false)
    }

    fn open_appendable_file(&self, path: &Path) -> Result<Box<dyn Write>> {
        self.writer(path, true)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        Ok(path.exists())
    }

    fn children(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| failed("list", path, e))? {
            names.push(PathBuf::from(entry.map_err(|e| failed("list", path, e))?.file_name()));
        }
        Ok(names)
    }

    fn size_of(&self, path: &Path) -> Result<usize> {
        Ok(fs::metadata(path).map_err(|e| failed("stat", path, e))?.len() as usize)
    }

    fn delete(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|e| failed("remove", path, e))
    }

    fn mkdir(&self, path: &Path) -> Result<()> {
        fs::create_dir_all(path).map_err(|e| failed("create", path, e))
    }

    fn rmdir(&self, path: &Path) -> Result<()> {
        fs::remove_dir_all(path).map_err(|e| failed("remove", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        fs::rename(from, to).map_err(|e| failed("rename", from, e))
    }

    fn lock(&self, path: &Path) -> Result<FileLock> {
        let id = path.to_string_lossy().into_owned();
        if self.locks.borrow().contains(&id) || self.os_locks.borrow().iter().any(|(held, _)| *held == id) {
            return Err(Status::new(StatusCode::LockError, "the store is already open in this process"));
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| failed("open", path, e))?;
        match file.try_lock() {
            Ok(()) => self.os_locks.borrow_mut().push((id.clone(), file)),
            Err(TryLockError::WouldBlock) => {
                return Err(Status::new(StatusCode::LockError, "the store is open in another process"));
            }
            Err(TryLockError::Error(e)) if e.kind() == ErrorKind::Unsupported => {
                self.locks.borrow_mut().insert(id.clone());
            }
            Err(TryLockError::Error(e)) => return Err(failed("lock", path, e)),
        }
        Ok(FileLock { id })
    }

    fn unlock(&self, lock: FileLock) -> Result<()> {
        let in_process = self.locks.borrow_mut().remove(&lock.id);
        let mut os = self.os_locks.borrow_mut();
        let before = os.len();
        os.retain(|(held, _)| *held != lock.id);
        if in_process || os.len() < before {
            Ok(())
        } else {
            Err(Status::new(StatusCode::LockError, "unlocking a lock that is not held"))
        }
    }

    fn new_logger(&self, path: &Path) -> Result<Logger> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| failed("open", path, e))?;
        Ok(Logger::new(Box::new(file)))
    }

    fn micros(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
    }

    fn sleep_for(&self, micros: u32) {
        std::thread::sleep(Duration::from_micros(micros.into()));
    }
}
