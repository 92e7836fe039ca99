//! Moves descriptors between standard I/O and files with `fd_renumber`, as a program redirecting
//! its output does, and prints what each step gave on standard error: a test runs it in a plain
//! and in a sealed directory and compares. Preview 1 only (a component has no `fd_renumber`).
//! Usage: renumber DIR.

#[cfg(target_env = "p1")]
mod p1 {
    use std::io::Write as _;
    use std::os::fd::IntoRawFd as _;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn fd_renumber(from: u32, to: u32) -> u16;
        fn fd_close(fd: u32) -> u16;
        fn fd_fdstat_get(fd: u32, out: *mut u8) -> u16;
    }

    fn renumber(from: u32, to: u32) -> u16 {
        // SAFETY: a WASI call on plain integers.
        unsafe { fd_renumber(from, to) }
    }

    fn close(fd: u32) -> u16 {
        // SAFETY: a WASI call on a plain integer; the descriptor is not used through std after.
        unsafe { fd_close(fd) }
    }

    /// The descriptor's file type, or the error number.
    fn filetype(fd: u32) -> Result<u8, u16> {
        let mut stat = [0u8; 24];
        // SAFETY: `stat` is the 24 bytes an `fdstat` takes.
        match unsafe { fd_fdstat_get(fd, stat.as_mut_ptr()) } {
            0 => Ok(stat[0]),
            e => Err(e),
        }
    }

    fn open(path: &str) -> u32 {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open")
            .into_raw_fd() as u32
    }

    pub fn main(dir: &str) {
        let p = |name: &str| format!("{dir}/{name}");
        // Standard input onto a file's number: the number is standard input, 0 is closed.
        let a = open(&p("a.txt"));
        eprintln!("stdin onto a file: {}", renumber(0, a));
        eprintln!("the file's number is stdin: {:?}", filetype(a));
        eprintln!("0 is closed: {:?}", filetype(0));
        eprintln!("0 again: {}", renumber(0, a));
        // A file onto another file's number, and back over the moved stdin.
        let b = open(&p("b.txt"));
        eprintln!("a file onto a file: {}", renumber(b, a));
        eprintln!("what it is now: {:?}", filetype(a));
        eprintln!("the old number: {:?}", filetype(b));
        eprintln!("close it: {} then {:?}", close(a), filetype(a));
        // Onto a number nothing has.
        let c = open(&p("c.txt"));
        eprintln!("onto nothing: {}", renumber(c, 4000));
        eprintln!("from nothing: {}", renumber(4000, c));
        eprintln!("onto itself: {}", renumber(c, c));
        // A file onto standard output: what the program prints goes into the file.
        eprintln!("a file onto stdout: {}", renumber(c, 1));
        eprintln!("stdout is a file: {:?}", filetype(1));
        eprintln!("the file's old number: {:?}", filetype(c));
        let mut out = std::io::stdout();
        let _ = writeln!(out, "printed into c.txt");
        let _ = out.flush();
        eprintln!("close stdout: {} then {:?}", close(1), filetype(1));
        eprintln!("c.txt holds: {:?}", std::fs::read_to_string(p("c.txt")));
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/data".into());
    #[cfg(target_env = "p1")]
    p1::main(&dir);
    #[cfg(not(target_env = "p1"))]
    eprintln!("{dir}: fd_renumber is preview 1's");
}
