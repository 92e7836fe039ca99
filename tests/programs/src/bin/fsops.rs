//! Runs a fixed sequence of file operations in a directory and prints what it saw, so a test can
//! check that a sealed directory behaves like a plain one: create, append, seek and overwrite,
//! truncate, rename (files and directories), list, stat, remove, and the errors of each.
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
    show("remove d", fs::remove_dir(p("d")));
    show("remove b", fs::remove_file(p("b.txt")));
    show("remove missing", fs::remove_file(p("b.txt")));
    show("escape", fs::read(format!("{dir}/../etc/passwd")).map(|b| b.len()));
    show("up and back", fs::create_dir(p("u")).and_then(|()| fs::write(p("u/../up.txt"), b"x")));
    show("read up and back", fs::read(p("up.txt")).map(|b| b.len()));
    show("remove up", fs::remove_file(p("up.txt")).and_then(|()| fs::remove_dir(p("u"))));
    // Names longer than a Linux file system allows (255 bytes) are refused.
    show("long name", fs::write(p(&"n".repeat(300)), b"x"));
    show("longest name", fs::write(p(&"n".repeat(255)), b"x").and_then(|()| fs::remove_file(p(&"n".repeat(255)))));
    show("list end", Ok::<_, std::io::Error>(list(&dir)));
}
