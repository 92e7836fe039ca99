//! A device posting readings to a workload on a node's ingress, as a data owner's code should:
//! it appraises the node's attested certificate against its policy in the TLS handshake, finds
//! in the certificate the module that serves the route it is about to call, checks that module
//! against the policy, and only then sends the reading.
//!
//! ```text
//! cargo run -p lamina-cli --example device -- \
//!     --policy device-policy.toml https://10.0.0.2:8443/readings '{"sensor":"s1","celsius":21.5}'
//! ```
//!
//! The URL is an endpoint the control plane lists (`lamina status`, `GET /v1/endpoints`): the
//! node's ingress and one of the workload's routes. The policy is `lamina verify --policy`'s;
//! its `module_hashes` name the modules this device trusts with its data. Exit status 0 when the
//! reading was taken (2xx), 1 when the server answered otherwise, 2 when the endpoint was
//! refused before anything was sent, 3 for a usage error.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example's output is what it prints")]

use std::io::{Read as _, Write as _};
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lamina_attest::ratls::{AttestedServerVerifier, Destination, relying_party_config};
use lamina_attest::{Policy, TrustAnchors, Verifier};

/// How long connecting, the handshake and the answer may take.
const TIMEOUT: Duration = Duration::from_secs(15);

fn main() {
    std::process::exit(match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("device: {e}");
            3
        }
    });
}

fn run() -> Result<i32, String> {
    let mut args = std::env::args().skip(1);
    let (mut policy, mut positional) = (None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--policy" => policy = Some(PathBuf::from(args.next().ok_or("--policy needs a file")?)),
            _ => positional.push(arg),
        }
    }
    let [url, reading]: [String; 2] =
        positional.try_into().map_err(|_| "usage: device --policy FILE https://HOST:PORT/PATH READING")?;
    let policy = policy.ok_or("give the policy the endpoint must pass: --policy FILE")?;

    // Where the reading goes decides what is checked: the route's module, from the certificate.
    let destination = Destination::of_url(&url)?;
    let host = destination.host.clone().ok_or("the URL names no host")?;
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let port = authority.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).unwrap_or(443);
    let mut anchors = TrustAnchors::default();
    let policy = Policy::load(&policy, &mut anchors).map_err(|e| format!("the policy: {e}"))?;
    let verifier = AttestedServerVerifier::new(Verifier::new(Some(policy), anchors))
        .with_cache_ttl(Duration::ZERO)
        .for_destination(destination.clone());
    let mut config = relying_party_config(verifier.clone()).map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let socket = std::net::TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    socket.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    socket.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, socket);
    // The handshake first, alone: nothing of the reading leaves before the endpoint passed.
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            eprintln!("device: refused {url} before sending anything: {e}");
            if let Some(appraisal) = verifier.last_appraisal() {
                for check in appraisal.checks.iter().filter(|c| !c.ok) {
                    eprintln!("  {}: {}", check.name, check.detail);
                }
            }
            return Ok(2);
        }
    }
    if let Some(route) = verifier.last_appraisal().and_then(|a| a.checks.into_iter().find(|c| c.name == "ratls.route"))
    {
        println!("verified: {}", route.detail);
    }
    let path = &destination.path;
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reading}",
        reading.len()
    );
    tls.write_all(request.as_bytes()).map_err(|e| format!("sending the reading: {e}"))?;
    let mut answer = Vec::new();
    // HTTP/1.0: the answer ends when the server closes.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    println!("{status} {}", body.trim_end());
    Ok(if (200..300).contains(&status) { 0 } else { 1 })
}
