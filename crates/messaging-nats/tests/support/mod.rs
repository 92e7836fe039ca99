//! nats-server processes for the tests and the benchmark (Debian's `nats-server`, installed by
//! scripts/setup.sh), on loopback, stopped when dropped.
#![allow(dead_code, reason = "each test file and the benchmark use a part of it")]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

fn spawn(cmd: &mut Command, port: u16) -> Server {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server runs (scripts/setup.sh installs Debian's nats-server)");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// A server on `port`.
pub(crate) fn start_on(port: u16) -> Server {
    spawn(Command::new("nats-server").args(["-a", "127.0.0.1", "-p", &port.to_string()]), port)
}

/// A server on a free port, and its URL.
pub(crate) fn start() -> (Server, String) {
    let port = free_port();
    (start_on(port), format!("nats://127.0.0.1:{port}"))
}

/// A server named `name` on `port` with more configuration (leaf nodes, say), its file in `dir`.
pub(crate) fn with_config(dir: &Path, name: &str, port: u16, config: &str) -> Server {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, format!("listen: 127.0.0.1:{port}\nserver_name: {name}\n{config}")).expect("config");
    spawn(Command::new("nats-server").arg("-c").arg(&path), port)
}
