//! A WASI 0.3 HTTP service that uses Lamina's services (so it runs on Lamina only):
//! `GET /secret?NAME` answers the secret's bytes (`lamina:secrets`), `GET /module-hash` the
//! module hash the host attests (`lamina:attestation`), `GET /visits` counts visits in the sealed
//! key-value store (`wasi:keyvalue`); each says so (404, 503) when its service is not given.
//! `POST /notes` appends the body as a line to `/data/notes.txt` (Rust's standard library, so
//! WASI 0.2's filesystem: a sealed directory when one is mounted at `/data`) and syncs it before
//! answering; `GET /notes` answers the file.

use lamina_test_components::respond;
use wasip3::http::types::{ErrorCode, Method, Request, Response};

wasip3::http::service::export!(Service);

struct Service;

/// Lamina's services, bound from the repository's WIT.
#[allow(missing_docs, clippy::all, reason = "wit-bindgen's generated bindings")]
mod lamina {
    wit_bindgen::generate!({ path: "../../wit", world: "lamina:sdk/guest", generate_all });
}

fn secret(name: &str) -> Result<Response, ErrorCode> {
    match lamina::lamina::secrets::store::get(name) {
        Ok(bytes) => respond(200, "application/octet-stream", bytes),
        Err(e) => respond(404, "text/plain", format!("{e:?}\n").into_bytes()),
    }
}

fn module_hash() -> Result<Response, ErrorCode> {
    let hash = lamina::lamina::attestation::attest::module_hash();
    if hash.is_empty() {
        return respond(503, "text/plain", b"no attestation\n".to_vec());
    }
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    respond(200, "text/plain", format!("{hex}\n").into_bytes())
}

fn visits() -> Result<Response, ErrorCode> {
    use lamina::wasi::keyvalue::store;
    let bucket = match store::open("") {
        Ok(b) => b,
        Err(e) => return respond(503, "text/plain", format!("{e:?}\n").into_bytes()),
    };
    let seen = match bucket.get("visits") {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).parse::<u64>().unwrap_or(0),
        Ok(None) => 0,
        Err(e) => return respond(503, "text/plain", format!("{e:?}\n").into_bytes()),
    };
    if let Err(e) = bucket.set("visits", (seen + 1).to_string().as_bytes()) {
        return respond(503, "text/plain", format!("{e:?}\n").into_bytes());
    }
    respond(200, "text/plain", format!("{}\n", seen + 1).into_bytes())
}

const NOTES: &str = "/data/notes.txt";

async fn add_note(request: Request) -> Result<Response, ErrorCode> {
    use std::io::Write as _;
    let (_res_tx, res) = wasip3::wit_future::new(|| Ok(()));
    let (body, _trailers) = Request::consume_body(request, res);
    let mut line = body.collect().await;
    line.push(b'\n');
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(NOTES)
        .and_then(|mut f| f.write_all(&line).and_then(|()| f.sync_all()));
    match written {
        Ok(()) => respond(201, "text/plain", b"noted\n".to_vec()),
        Err(e) => respond(500, "text/plain", format!("{e}\n").into_bytes()),
    }
}

fn notes() -> Result<Response, ErrorCode> {
    match std::fs::read(NOTES) {
        Ok(bytes) => respond(200, "text/plain", bytes),
        Err(e) => respond(404, "text/plain", format!("{e}\n").into_bytes()),
    }
}

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        match (request.get_method(), path.as_str()) {
            (Method::Get, p) if p.starts_with("/secret?") => secret(&p["/secret?".len()..]),
            (Method::Get, "/module-hash") => module_hash(),
            (Method::Get, "/visits") => visits(),
            (Method::Post, "/notes") => add_note(request).await,
            (Method::Get, "/notes") => notes(),
            _ => respond(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
