//! A WASI 0.2 HTTP component (`wasi:http/proxy`), with the routes of `src/p3_service.rs`:
//! `GET /`, `POST /echo`, `GET /fetch?URL`, `GET /sleep`, `GET /trap`, `GET /spin`, `GET /count`.

use std::sync::atomic::{AtomicU64, Ordering};

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Proxy);

struct Proxy;

static SEEN: AtomicU64 = AtomicU64::new(0);

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers =
        Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())]).expect("valid headers");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("body");
    let stream = body.stream().expect("stream");
    let mut bytes = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

fn fetch(url: &str) -> (u16, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).expect("scheme");
    request.set_authority(Some(authority)).expect("authority");
    request.set_path_with_query(Some(path)).expect("path");
    let pending = match wasip2::http::outgoing_handler::handle(request, None) {
        Ok(p) => p,
        Err(e) => return (502, format!("{e:?}\n")),
    };
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => (200, format!("upstream {}\n", response.status())),
        Some(Ok(Err(e))) => (502, format!("{e:?}\n")),
        _ => (502, "no response\n".to_owned()),
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
        let path = request.path_with_query().unwrap_or_default();
        match (request.method(), path.as_str()) {
            (Method::Get, "/") => respond(out, 200, "text/plain", b"hello from WASI 0.2\n"),
            (Method::Post, "/echo") => {
                let content_type = request.headers().get("content-type").into_iter().next().map_or_else(
                    || "application/octet-stream".to_owned(),
                    |v| String::from_utf8_lossy(&v).into_owned(),
                );
                let body = read_body(request);
                respond(out, 200, &content_type, &body);
            }
            (Method::Get, "/sleep") => {
                wasip2::clocks::monotonic_clock::subscribe_duration(1_000_000_000).block();
                respond(out, 200, "text/plain", b"slept 1s\n");
            }
            (Method::Get, "/count") => respond(out, 200, "text/plain", format!("{seen}\n").as_bytes()),
            (Method::Get, "/trap") => panic!("the guest trapped on purpose"),
            (Method::Get, "/spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            (Method::Get, p) if p.starts_with("/fetch?") => {
                let (status, text) = fetch(&p["/fetch?".len()..]);
                respond(out, status, "text/plain", text.as_bytes());
            }
            _ => respond(out, 404, "text/plain", b"not found\n"),
        }
    }
}
