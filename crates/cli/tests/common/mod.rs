//! Shared set-up for the end-to-end tests: building the guest programs and the other builds of
//! `lamina` (cross-compiled, runtime-only), and running the binary.
//!
//! Builds go to target directories of their own so that they never wait on the lock of the
//! `cargo test` that runs us; `scripts/test` runs the same commands first, so here they are
//! no-ops that only check freshness.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a different part of this shared module")]

pub mod etcd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

/// Which WASI flavour a guest is built as.
#[derive(Clone, Copy, Debug)]
pub enum Wasi {
    /// `wasm32-wasip1`: a core module.
    P1,
    /// `wasm32-wasip2`: a component.
    P2,
}

pub const BOTH: [Wasi; 2] = [Wasi::P1, Wasi::P2];

impl Wasi {
    pub fn triple(self) -> &'static str {
        match self {
            Wasi::P1 => "wasm32-wasip1",
            Wasi::P2 => "wasm32-wasip2",
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run_build(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot start cargo to build {what}: {e}"));
    assert!(out.status.success(), "building {what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The path of a guest program, built on first use.
pub fn guest(name: &str, wasi: Wasi) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = root();
    BUILT.get_or_init(|| {
        for w in BOTH {
            let mut cmd = cargo();
            cmd.args(["build", "--release", "--quiet", "--target", w.triple(), "--manifest-path"])
                .arg(root.join("tests/programs/Cargo.toml"));
            run_build(cmd, &format!("the guest programs for {}", w.triple()));
        }
    });
    let path = root.join("tests/programs/target").join(wasi.triple()).join("release").join(format!("{name}.wasm"));
    assert!(path.exists(), "guest {} is missing", path.display());
    path
}

/// The path of a test component (`tests/components`: `p3-command`, `p3-service`, `p3-lamina`,
/// `p2-proxy`),
/// built for wasm32-wasip2 on first use (as `scripts/lib.sh build_components` does).
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = root();
    BUILT.get_or_init(|| {
        let mut cmd = cargo();
        cmd.current_dir(root.join("tests/components"))
            .args(["build", "--release", "--quiet", "--examples", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(root.join("target/components"));
        run_build(cmd, "the test components");
    });
    // cargo names a library example's file with `_` (p3_command.wasm), a program's as the
    // example is named (p3-main-command.wasm).
    let dir = root.join("target/components/wasm32-wasip2/release/examples");
    [name.replace('-', "_"), name.to_owned()]
        .iter()
        .map(|n| dir.join(format!("{n}.wasm")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("component {name} is missing from {}", dir.display()))
}

/// The JavaScript HTTP component (`examples/http-js`, componentize-js from the npm registry),
/// built on first use (as `scripts/lib.sh build_examples` does).
pub fn js_example() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = root();
    let out = root.join("target/examples/js/http-js.wasm");
    BUILT.get_or_init(|| {
        let mut cmd = Command::new("sh");
        cmd.arg(root.join("examples/http-js/build.sh")).arg(&out);
        run_build(cmd, "the JavaScript example (examples/http-js)");
    });
    assert!(out.exists(), "{} is missing", out.display());
    out
}

/// The `lamina` binary under test (this build, with a compiler).
pub fn lamina() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lamina"));
    cmd.env_remove("LAMINA_CACHE_DIR").env_remove("LAMINA_LOG");
    cmd
}

/// Builds another configuration of `lamina` into `target/<dir>` and returns the binary.
fn build_lamina(what: &str, dir: &str, flags: &[&str], binary: &str) -> PathBuf {
    let root = root();
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .args(["build", "--quiet", "-p", "lamina-cli"])
        .args(flags)
        .arg("--target-dir")
        .arg(root.join("target").join(dir));
    run_build(cmd, what);
    root.join("target").join(dir).join(binary)
}

/// `lamina` cross-built for aarch64 as for an edge board (the runtime-only build: the node
/// agent and the runtime, no compiler), built on first use.
pub fn lamina_aarch64() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // As scripts/lib.sh builds it (build_cross): without libtss2 and OpenSSL (host-only
            // libraries) and without the compiler.
            let flags = ["--no-default-features", "--features", "node", "--target", "aarch64-unknown-linux-gnu"];
            build_lamina("lamina for aarch64", "cross", &flags, "aarch64-unknown-linux-gnu/debug/lamina")
        })
        .clone()
}

/// Runs a command to completion and returns its output.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Standard output and error as text.
pub fn texts(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts the exit code, showing both streams when it is wrong.
#[track_caller]
pub fn assert_code(out: &Output, code: i32) {
    let (stdout, stderr) = texts(out);
    assert_eq!(out.status.code(), Some(code), "unexpected exit status\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

/// An example guest from `examples/`, built for wasm32-wasip1 on first use (as
/// `scripts/lib.sh build_examples` does).
pub fn example(dir: &str, name: &str) -> PathBuf {
    example_for(dir, name, "wasm32-wasip1")
}

/// An example guest from `examples/DIR`, built for `target` on first use.
pub fn example_for(dir: &str, name: &str, target: &str) -> PathBuf {
    static BUILT: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let root = root();
    {
        let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if built.insert((dir.to_owned(), target.to_owned())) {
            let mut cmd = cargo();
            cmd.current_dir(root.join("examples").join(dir))
                .args(["build", "--release", "--quiet", "--target", target, "--target-dir"])
                .arg(root.join("target/examples"));
            run_build(cmd, &format!("the example {dir} for {target}"));
        }
    }
    let path = root.join("target/examples").join(target).join("release").join(format!("{name}.wasm"));
    assert!(path.exists(), "example {} is missing", path.display());
    path
}

/// The C example (`examples/c-services`), built with clang and wasi-libc on first use.
pub fn c_example() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = root();
            let out = root.join("target/examples/c/c-services.wasm");
            std::fs::create_dir_all(root.join("target/examples/c")).expect("create target/examples/c");
            let mut cmd = Command::new("clang");
            cmd.args(["--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(root.join("include"))
                .arg("-o")
                .arg(&out)
                .arg(root.join("examples/c-services/services.c"));
            run_build(cmd, "the C example");
            out
        })
        .clone()
}

/// Every file under a directory, recursively (what `strings` would be run on).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

/// An artifact signing key pair made by `lamina keygen`, and the commands that use it: artifacts
/// run only when a trusted key signed them.
pub struct Signer {
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The public key, for `--trust-signer`.
    pub public: PathBuf,
}

impl Signer {
    /// Makes a key pair in `dir`.
    pub fn new(dir: &Path) -> Self {
        let key = dir.join("signer.key");
        assert_code(&output(lamina().arg("keygen").arg(&key)), 0);
        Self { public: dir.join("signer.key.pub"), key }
    }

    /// `lamina compile --sign KEY`, to which the caller adds the rest.
    pub fn compile(&self) -> Command {
        let mut cmd = lamina();
        cmd.arg("compile").arg("--sign").arg(&self.key);
        cmd
    }

    /// `BINARY run --trust-signer PUB`, to which the caller adds the rest.
    pub fn run_with(&self, binary: Command) -> Command {
        let mut cmd = binary;
        cmd.arg("run").arg("--trust-signer").arg(&self.public);
        cmd
    }

    /// `lamina run --trust-signer PUB`.
    pub fn run(&self) -> Command {
        self.run_with(lamina())
    }
}

/// The path of one of `lamina-cli`'s own examples (`crates/cli/examples`, host programs),
/// built on first use beside this test binary.
pub fn host_example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = cargo();
        // `--workspace`, as `scripts/test.sh` builds every target: the same features, so there
        // this finds the example built already.
        cmd.current_dir(root()).args(["build", "--quiet", "--workspace", "--example", name]);
        run_build(cmd, "the examples");
    });
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    profile_dir.join("examples").join(name)
}
