//! Runs a fixed sequence of file operations in a directory and prints what it saw, so a test can
//! check that a sealed directory behaves like a plain one: create, append, seek and overwrite,
//! truncate, rename (files and directories), list, stat, remove, symbolic links, and the errors
//! of each.
//! Usage: fsops DIR.
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

fn show<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) {
    match r {
        Ok(v) => println!("{what}: ok {v:?}"),
        Err(e) => println!("{what}: error {:?}", e.kind()),
    }
}

fn list(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|r| r.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A directory's entries with what each is (`/` a directory, `@` a symbolic link), sorted.
fn list_kinds(dir: &str) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let mark = if kind.is_dir() {
            "/"
        } else if kind.is_symlink() {
            "@"
        } else {
            ""
        };
        names.push(format!("{}{mark}", entry.file_name().to_string_lossy()));
    }
    names.sort();
    Ok(names)
}

/// Symbolic links: made, read, followed within the directory (on the way and at the end),
/// renamed and removed themselves, never leading out of the directory; loops end.
#[allow(deprecated, reason = "`soft_link` is the one standard way to make a link on WASI")]
fn links(p: &dyn Fn(&str) -> String) {
    use fs::soft_link;
    show("mkdir l", fs::create_dir(p("l")));
    show("write l/t", fs::write(p("l/t.txt"), b"target"));
    show("link to a file", soft_link("t.txt", p("l/to-file")));
    show("link to a directory", soft_link("l", p("to-dir")));
    show("dangling link", soft_link("nowhere", p("l/dangling")));
    show("link to an absolute path", soft_link("/etc/passwd", p("abs")));
    show("link above the directory", soft_link("../..", p("l/up")));
    show("link over a file", soft_link("t.txt", p("l/t.txt")));
    show("link over a link", soft_link("t.txt", p("l/to-file")));
    show("link at name/", soft_link("t.txt", p("l/new/")));
    show("read_link", fs::read_link(p("l/to-file")));
    show("read_link of a file", fs::read_link(p("l/t.txt")));
    show("read_link missing", fs::read_link(p("l/missing")));
    show("read through a link", fs::read_to_string(p("l/to-file")));
    show("read through a directory link", fs::read_to_string(p("to-dir/t.txt")));
    show("dotdot after a directory link", fs::read_to_string(p("to-dir/../l/t.txt")));
    show("list through a directory link", list_kinds(&p("to-dir")));
    show("write through a link", fs::write(p("l/to-file"), b"changed"));
    show("read the target", fs::read_to_string(p("l/t.txt")));
    show("open a dangling link", fs::read(p("l/dangling")).map(|b| b.len()));
    show("create through a dangling link", fs::write(p("l/dangling"), b"made"));
    show("what it made", fs::read_to_string(p("l/nowhere")));
    show(
        "create exclusive at a link",
        OpenOptions::new().write(true).create_new(true).open(p("l/dangling")).map(|_| ()),
    );
    show("link metadata", fs::symlink_metadata(p("l/to-file")).map(|m| (m.file_type().is_symlink(), m.len())));
    show("followed metadata", fs::metadata(p("l/to-file")).map(|m| (m.is_file(), m.len())));
    show("directory link metadata", fs::metadata(p("to-dir")).map(|m| m.is_dir()));
    show("through a link above", fs::read(p("l/up/etc/passwd")).map(|b| b.len()));
    show("metadata of a link above", fs::metadata(p("l/up")).map(|m| m.is_dir()));
    show("self loop", soft_link("self", p("self")).and_then(|()| fs::read(p("self")).map(|b| b.len())));
    show("two-link loop", soft_link("b-loop", p("a-loop")).and_then(|()| soft_link("a-loop", p("b-loop"))));
    show("open a loop", fs::read(p("a-loop/x")).map(|b| b.len()));
    show("list l", list_kinds(&p("l")));
    show("rename a link", fs::rename(p("l/to-file"), p("l/renamed")));
    show("read renamed", fs::read_to_string(p("l/renamed")));
    show(
        "rename a file over a link",
        fs::write(p("l/f2"), b"two").and_then(|()| fs::rename(p("l/f2"), p("l/renamed"))),
    );
    show("renamed is a file", fs::symlink_metadata(p("l/renamed")).map(|m| m.is_file()));
    show("mkdir over a link", fs::create_dir(p("to-dir")));
    show("remove_dir of a link", fs::remove_dir(p("to-dir")));
    show("remove_file of a directory link", fs::remove_file(p("to-dir")));
    show("directory kept", fs::metadata(p("l")).map(|m| m.is_dir()));
    for name in ["l/t.txt", "l/renamed", "l/dangling", "l/nowhere", "l/up", "self", "a-loop", "b-loop"] {
        show(&format!("remove {name}"), fs::remove_file(p(name)));
    }
    show("remove l", fs::remove_dir(p("l")));
    hard_links(p);
}

/// Hard links: two names of one file, each removable alone; never to a directory.
#[allow(deprecated, reason = "`soft_link` is the one standard way to make a link on WASI")]
fn hard_links(p: &dyn Fn(&str) -> String) {
    show("write h", fs::write(p("h.txt"), b"shared"));
    show("mkdir hd", fs::create_dir(p("hd")));
    show("hard link", fs::hard_link(p("h.txt"), p("hd/h2.txt")));
    show("size after linking", fs::metadata(p("h.txt")).map(|m| m.len()));
    show("write through one name", fs::write(p("hd/h2.txt"), b"changed via h2"));
    show("read the other", fs::read_to_string(p("h.txt")));
    show("hard link over a file", fs::hard_link(p("h.txt"), p("hd/h2.txt")));
    show("hard link to itself", fs::hard_link(p("h.txt"), p("h.txt")));
    show("hard link to a directory", fs::hard_link(p("hd"), p("hd-link")));
    show("hard link at name/", fs::hard_link(p("h.txt"), p("new/")));
    show("hard link at file/", fs::hard_link(p("h.txt"), p("hd/h2.txt/")));
    show("hard link at dir/", fs::hard_link(p("h.txt"), p("hd/")));
    show("link at file/", fs::soft_link("h.txt", p("hd/h2.txt/")));
    show("hard link of a missing file", fs::hard_link(p("missing"), p("m2")));
    show("hard link outside", fs::hard_link(p("h.txt"), p("../h3")));
    show("rename one name over the other", fs::rename(p("h.txt"), p("hd/h2.txt")));
    show(
        "both still there",
        Ok::<_, std::io::Error>((fs::metadata(p("h.txt")).is_ok(), fs::metadata(p("hd/h2.txt")).is_ok())),
    );
    show("remove one name", fs::remove_file(p("h.txt")));
    show("the other keeps the data", fs::read_to_string(p("hd/h2.txt")));
    show("remove the other", fs::remove_file(p("hd/h2.txt")));
    show("remove hd", fs::remove_dir(p("hd")));
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/data".into());
    let p = |name: &str| format!("{dir}/{name}");
    show("mkdir sub", fs::create_dir(p("sub")));
    show("mkdir sub again", fs::create_dir(p("sub")));
    show("write a", fs::write(p("sub/a.txt"), b"hello world"));
    let mut f = OpenOptions::new().append(true).open(p("sub/a.txt")).expect("open for append");
    show("append", f.write_all(b", appended"));
    drop(f);
    show("read a", fs::read_to_string(p("sub/a.txt")));
    let mut f = OpenOptions::new().read(true).write(true).open(p("sub/a.txt")).expect("open rw");
    show("seek", f.seek(SeekFrom::Start(6)));
    show("overwrite", f.write_all(b"WORLD"));
    show("seek end", f.seek(SeekFrom::End(-8)));
    let mut tail = String::new();
    show("read tail", f.read_to_string(&mut tail).map(|_| tail.clone()));
    show("truncate", f.set_len(5));
    show("sync", f.sync_all());
    drop(f);
    show("read truncated", fs::read_to_string(p("sub/a.txt")));
    show("size", fs::metadata(p("sub/a.txt")).map(|m| (m.len(), m.is_file())));
    show("big", fs::write(p("big.bin"), vec![7u8; 100_000]));
    show("read big", fs::read(p("big.bin")).map(|b| (b.len(), b.iter().all(|x| *x == 7))));
    show("rename file", fs::rename(p("sub/a.txt"), p("b.txt")));
    show("read old name", fs::read(p("sub/a.txt")).map(|b| b.len()));
    show("rename dir", fs::rename(p("sub"), p("moved")));
    show("list root", Ok::<_, std::io::Error>(list(&dir)));
    show("remove non-empty", fs::create_dir(p("moved/x")).and_then(|()| fs::remove_dir(p("moved"))));
    show("remove x", fs::remove_dir(p("moved/x")));
    show("remove moved", fs::remove_dir(p("moved")));
    // Trailing slashes name directories: on a file they are errors, and change nothing.
    show("open file/", fs::read(p("b.txt/")).map(|b| b.len()));
    show("create file/", fs::write(p("c.txt/"), b"x"));
    show("remove file/", fs::remove_file(p("b.txt/")));
    show("read after remove file/", fs::read(p("b.txt")).map(|b| b.len()));
    show("metadata file/", fs::metadata(p("b.txt/")).map(|m| m.is_file()));
    show("mkdir trailing/", fs::create_dir(p("t/")));
    show("metadata dir/", fs::metadata(p("t/")).map(|m| m.is_dir()));
    show("remove dir/", fs::remove_dir(p("t/")));
    // A file where a directory is meant, a directory where a file is.
    show("remove_dir file", fs::remove_dir(p("b.txt")));
    show("remove_file dir", fs::create_dir(p("d")).and_then(|()| fs::remove_file(p("d"))));
    show("read dir", fs::read(p("d")).map(|b| b.len()));
    show("file as dir", fs::write(p("b.txt/inner"), b"x"));
    show("open dir for writing", OpenOptions::new().write(true).open(p("d")).map(|_| ()));
    show("open . for writing", OpenOptions::new().write(true).open(p(".")).map(|_| ()));
    // Timestamps set through a descriptor are kept.
    let stamp = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let f = OpenOptions::new().write(true).open(p("b.txt")).expect("open b");
    show("set mtime", f.set_modified(stamp));
    drop(f);
    show(
        "mtime kept",
        fs::metadata(p("b.txt"))
            .and_then(|m| m.modified())
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).ok()),
    );
    // An access time set alone leaves the modification time; neither is changed by a stat.
    let f = OpenOptions::new().write(true).open(p("b.txt")).expect("open b");
    let accessed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(900_000_000);
    show("set atime only", f.set_times(fs::FileTimes::new().set_accessed(accessed)));
    drop(f);
    let secs = |t: std::io::Result<std::time::SystemTime>| {
        t.ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs())
    };
    show("times kept", fs::metadata(p("b.txt")).map(|m| (secs(m.accessed()), secs(m.modified()))));
    show("remove d", fs::remove_dir(p("d")));
    show("remove b", fs::remove_file(p("b.txt")));
    show("remove missing", fs::remove_file(p("b.txt")));
    show("escape", fs::read(format!("{dir}/../etc/passwd")).map(|b| b.len()));
    show("up and back", fs::create_dir(p("u")).and_then(|()| fs::write(p("u/../up.txt"), b"x")));
    show("read up and back", fs::read(p("up.txt")).map(|b| b.len()));
    show("remove up", fs::remove_file(p("up.txt")).and_then(|()| fs::remove_dir(p("u"))));
    // `.` and `..` name the directory a path is in: not a file to remove, not a name to rename.
    show("remove_file .", fs::remove_file(p(".")));
    show("rename . away", fs::rename(p("."), p("dot")));
    show("rename onto .", fs::write(p("r.txt"), b"r").and_then(|()| fs::rename(p("r.txt"), p("."))));
    show("rename onto sub/..", fs::create_dir(p("sub2")).and_then(|()| fs::rename(p("r.txt"), p("sub2/.."))));
    show("clean up", fs::remove_file(p("r.txt")).and_then(|()| fs::remove_dir(p("sub2"))));
    // Names longer than a Linux file system allows (255 bytes) are refused.
    show("long name", fs::write(p(&"n".repeat(300)), b"x"));
    show("longest name", fs::write(p(&"n".repeat(255)), b"x").and_then(|()| fs::remove_file(p(&"n".repeat(255)))));
    links(&p);
    show("list end", Ok::<_, std::io::Error>(list(&dir)));
}
