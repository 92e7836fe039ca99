//! A WASI 0.3 HTTP service built as a Rust program with a `main`, as the WASI test suite
//! builds its service tests: it exports `wasi:http/handler@0.3` and, from the standard library,
//! `wasi:cli/run@0.2`, whose `main` is a stub. Every request is answered `served by the 0.3
//! handler`.

use lamina_test_components::respond;
use wasip3::http::types::{ErrorCode, Request, Response};

wasip3::http::service::export!(Service);

struct Service;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        respond(200, "text/plain", b"served by the 0.3 handler\n".to_vec())
    }
}

fn main() {
    unreachable!("the WASI 0.2 entry point ran: an HTTP service is served, not run")
}
