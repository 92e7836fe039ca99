//! A WASI 0.3 HTTP service (`wasi:http/service`), the routes the tests and benchmarks use:
//!
//! - `GET /` answers `hello from WASI 0.3`;
//! - `POST /echo` answers the request's body, with its content type;
//! - `GET /fetch?URL` makes an outgoing request to URL and answers its status, or the error
//!   code as a 502 (how a denied destination looks to a guest);
//! - `GET /trap` panics, `GET /spin` loops forever, `GET /hoard` grows memory until refused;
//! - `GET /sleep` answers after a second (for draining on shutdown);
//! - `GET /count` answers how many requests this instance has seen (instance reuse);
//! - anything else is a 404.

use std::sync::atomic::{AtomicU64, Ordering};

use lamina_test_components::respond;
use wasip3::http::types::{ErrorCode, Method, Request, Response};
use wasip3::wit_future;

wasip3::http::service::export!(Service);

struct Service;

static SEEN: AtomicU64 = AtomicU64::new(0);

async fn fetch(url: &str) -> Result<Response, ErrorCode> {
    let request = lamina_test_components::get_request(url)?;
    match wasip3::http::client::send(request).await {
        Ok(upstream) => respond(200, "text/plain", format!("upstream {}\n", upstream.get_status_code()).into_bytes()),
        Err(e) => respond(502, "text/plain", format!("{e:?}\n").into_bytes()),
    }
}

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
        let path = request.get_path_with_query().unwrap_or_default();
        let method = request.get_method();
        match (method, path.as_str()) {
            (Method::Get, "/") => respond(200, "text/plain", b"hello from WASI 0.3\n".to_vec()),
            (Method::Post, "/echo") => {
                let content_type = request.get_headers().get("content-type").into_iter().next().map_or_else(
                    || "application/octet-stream".to_owned(),
                    |v| String::from_utf8_lossy(&v).into_owned(),
                );
                let (_res_tx, res) = wit_future::new(|| Ok(()));
                let (body, _trailers) = Request::consume_body(request, res);
                let bytes = body.collect().await;
                respond(200, &content_type, bytes)
            }
            (Method::Get, "/sleep") => {
                wasip3::clocks::monotonic_clock::wait_for(1_000_000_000).await;
                respond(200, "text/plain", b"slept 1s\n".to_vec())
            }
            (Method::Get, "/count") => respond(200, "text/plain", format!("{seen}\n").into_bytes()),
            (Method::Get, "/trap") => panic!("the guest trapped on purpose"),
            (Method::Get, "/spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            (Method::Get, "/hoard") => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                loop {
                    kept.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&kept);
                }
            }
            (Method::Get, p) if p.starts_with("/fetch?") => fetch(&p["/fetch?".len()..]).await,
            _ => respond(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
