//! Files of the node's state directory, written so that a crash never leaves half a file: a
//! temporary file beside the target, synced, renamed over it, and the directory synced.

use std::io::Write as _;
use std::path::Path;

/// Writes `data` to `path` atomically: a reader (or the node after a crash) sees the old
/// contents or the new ones, never a mixture or a truncated file.
///
/// # Errors
/// Any I/O error; the temporary file is removed and `path` is left as it was.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("desired.json");
        write_atomically(&path, b"first").expect("writes");
        write_atomically(&path, b"second, longer").expect("replaces");
        assert_eq!(std::fs::read(&path).expect("reads"), b"second, longer");
        assert_eq!(std::fs::read_dir(dir.path()).expect("lists").count(), 1, "no temporary file is left");
    }

    #[test]
    fn a_failed_write_leaves_the_old_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing-dir").join("x");
        assert!(write_atomically(&path, b"data").is_err());
        assert!(!path.exists());
    }
}
