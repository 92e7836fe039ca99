//! A throwaway software TPM for tests: [`Swtpm`].
//!
//! `Swtpm::start` makes a temporary directory, manufactures a TPM 2.0 in it with
//! `swtpm_setup` (an RSA 2048 and an ECC P-384 endorsement key, each with a certificate in NV
//! signed by a local CA that `swtpm_localca` creates in the same directory), and runs
//! `swtpm socket --tpm2` on loopback TCP ports. Nothing is written outside the directory: the
//! configuration files point into it, and the tools run with `HOME`, `XDG_CONFIG_HOME` and
//! `TMPDIR` inside it. Dropping the value kills swtpm and removes the directory.
//!
//! ```no_run
//! # fn main() -> Result<(), lamina_tee_tpm::swtpm::SwtpmError> {
//! use lamina_tee_tpm::swtpm::Swtpm;
//! let Some(tpm) = Swtpm::start_unless_skipped()? else {
//!     return Ok(()); // LAMINA_SKIP_SWTPM=1: skip
//! };
//! let tcti = tpm.tcti(); // "swtpm:host=127.0.0.1,port=..."
//! let roots = tpm.ca_certificates(); // DER: the local root CA and its issuing CA
//! # Ok(()) }
//! ```

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the software TPM could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// A program is not installed.
    #[error("{0} is not installed (Debian: apt-get install swtpm swtpm-tools)")]
    NotInstalled(&'static str),
    /// A file or process operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `swtpm_setup` failed.
    #[error("swtpm_setup failed ({status}): {log}")]
    Setup {
        /// Its exit status.
        status: String,
        /// Its log.
        log: String,
    },
    /// swtpm did not start listening.
    #[error("swtpm did not start: {0}")]
    Start(String),
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SwtpmError {
    let action = action.into();
    move |source| SwtpmError::Io { action, source }
}

/// A running software TPM, manufactured with EK certificates; killed on drop.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    tcti: String,
    ca_certificates: Vec<Vec<u8>>,
    // Last, so that swtpm is killed before its directory goes.
    dir: tempfile::TempDir,
}

/// The programs the harness runs.
const PROGRAMS: [&str; 3] = ["swtpm", "swtpm_setup", "swtpm_localca"];

impl Swtpm {
    /// Whether swtpm and its tools are installed (on `PATH`).
    pub fn installed() -> bool {
        PROGRAMS.iter().all(|p| find_program(p).is_some())
    }

    /// Starts a software TPM for a test, or `Ok(None)` (after saying so on stderr, for test
    /// logs) when the environment says `LAMINA_SKIP_SWTPM=1`.
    ///
    /// A missing swtpm is an error, not a skip: `scripts/setup.sh` installs it, and a test that
    /// passed by skipping would hide a machine that cannot run it.
    ///
    /// # Errors
    /// When swtpm is not installed, or does not start.
    pub fn start_unless_skipped() -> Result<Option<Self>, SwtpmError> {
        if std::env::var_os("LAMINA_SKIP_SWTPM").is_some_and(|v| v == "1") {
            eprintln!("skipping: LAMINA_SKIP_SWTPM=1 is set");
            return Ok(None);
        }
        Self::start().map(Some)
    }

    /// Manufactures and starts a software TPM.
    ///
    /// # Errors
    /// [`SwtpmError`] when a program is missing or fails.
    pub fn start() -> Result<Self, SwtpmError> {
        for program in PROGRAMS {
            find_program(program).ok_or(SwtpmError::NotInstalled(program))?;
        }
        let dir =
            tempfile::Builder::new().prefix("lamina-swtpm-").tempdir().map_err(io("create a temporary directory"))?;
        let root = dir.path();
        for sub in ["state", "ca", "tmp", "config"] {
            std::fs::create_dir(root.join(sub)).map_err(io(format!("create {sub}")))?;
        }
        let ca = root.join("ca");
        let write =
            |name: &str, text: String| std::fs::write(root.join(name), text).map_err(io(format!("write {name}")));
        write(
            "swtpm-localca.conf",
            format!(
                "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
                ca = ca.display()
            ),
        )?;
        write(
            "swtpm-localca.options",
            "--platform-manufacturer Lamina\n--platform-version 2.1\n--platform-model swtpm\n".into(),
        )?;
        write(
            "swtpm_setup.conf",
            format!(
                "create_certs_tool = {tool}\ncreate_certs_tool_config = {dir}/swtpm-localca.conf\ncreate_certs_tool_options = {dir}/swtpm-localca.options\nactive_pcr_banks = sha256\n",
                tool = find_program("swtpm_localca").unwrap_or_else(|| PathBuf::from("swtpm_localca")).display(),
                dir = root.display()
            ),
        )?;
        let setup = command("swtpm_setup", root)
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(root.join("state"))
            .arg("--create-ek-cert")
            .arg("--config")
            .arg(root.join("swtpm_setup.conf"))
            .arg("--logfile")
            .arg(root.join("setup.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io("run swtpm_setup"))?;
        if !setup.success() {
            let log = std::fs::read_to_string(root.join("setup.log")).unwrap_or_default();
            return Err(SwtpmError::Setup { status: setup.to_string(), log });
        }
        let ca_certificates =
            vec![pem_to_der(&ca.join("swtpm-localca-rootca-cert.pem"))?, pem_to_der(&ca.join("issuercert.pem"))?];

        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port_pair().map_err(io("find free ports"))?;
            let mut child = command("swtpm", root)
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", root.join("state").display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "not-need-init,startup-clear", "--log"])
                .arg(format!("file={}", root.join("swtpm.log").display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io("run swtpm"))?;
            match wait_listening(&mut child, port) {
                Ok(()) => {
                    return Ok(Self { child, tcti: format!("swtpm:host=127.0.0.1,port={port}"), ca_certificates, dir });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        let log = std::fs::read_to_string(root.join("swtpm.log")).unwrap_or_default();
        Err(SwtpmError::Start(format!("{last_error}; log: {log}")))
    }

    /// The TCTI string to reach this TPM (`swtpm:host=127.0.0.1,port=N`; the control port is N+1).
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// The local CA's certificates (DER): its root, then the issuing CA that signed the EK
    /// certificates. Trust either as a TPM root.
    pub fn ca_certificates(&self) -> &[Vec<u8>] {
        &self.ca_certificates
    }

    /// The temporary directory (TPM state, CA, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // The process may have exited already; either way it must be reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(program: &str, root: &Path) -> Command {
    let mut c = Command::new(find_program(program).unwrap_or_else(|| PathBuf::from(program)));
    c.env("HOME", root).env("XDG_CONFIG_HOME", root.join("config")).env("TMPDIR", root.join("tmp"));
    c
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

fn pem_to_der(path: &Path) -> Result<Vec<u8>, SwtpmError> {
    let text = std::fs::read(path).map_err(io(format!("read {}", path.display())))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|e| SwtpmError::Start(format!("{} is not PEM: {e}", path.display())))?;
    Ok(pem.contents)
}

/// A port N such that N and N+1 are free on loopback now.
fn free_port_pair() -> std::io::Result<u16> {
    for _ in 0..50 {
        let first = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        let port = first.local_addr()?.port();
        let Some(next) = port.checked_add(1) else { continue };
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, next)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no two consecutive free ports"))
}

fn wait_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let ctrl = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port + 1);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("swtpm exited ({status})"));
        }
        if TcpStream::connect(ctrl).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("swtpm did not listen on port {} within 10 s", port + 1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
