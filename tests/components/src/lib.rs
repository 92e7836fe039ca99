//! What the test components share; the components themselves are the examples
//! (`src/p3_command.rs`, `src/p3_fsops.rs`, `src/p3_service.rs`, `src/p3_lamina.rs`,
//! `src/p2_proxy.rs`).

use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_bindgen, wit_future, wit_stream};

/// A WASI 0.3 response with a status, a content type and a body written by a task of its own.
///
/// # Errors
/// An internal error code when the headers or the status cannot be set.
pub fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
        .map_err(|_| ErrorCode::InternalError(Some("headers".into())))?;
    let (mut tx, rx) = wit_stream::new();
    let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(rx), trailers);
    drop(trailers_tx);
    response.set_status_code(status).map_err(|()| ErrorCode::InternalError(Some("status".into())))?;
    wit_bindgen::spawn_local(async move {
        tx.write_all(body).await;
    });
    Ok(response)
}

/// An outgoing GET request for `SCHEME://AUTHORITY/PATH` (`http` when no scheme is given).
///
/// # Errors
/// `HTTP-request-URI-invalid` when the parts cannot be set.
pub fn get_request(url: &str) -> Result<Request, ErrorCode> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (_tx, trailers) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    let bad = |()| ErrorCode::HttpRequestUriInvalid;
    request.set_scheme(Some(&scheme)).map_err(bad)?;
    request.set_authority(Some(authority)).map_err(bad)?;
    request.set_path_with_query(Some(path)).map_err(bad)?;
    Ok(request)
}

/// The WASI 0.3 preopened directory a guest path is under, and the rest of the path (`.` for
/// the directory itself).
pub fn preopen(path: &str) -> Option<(wasip3::filesystem::types::Descriptor, String)> {
    wasip3::filesystem::preopens::get_directories().into_iter().find_map(|(dir, at)| {
        let rest = path.strip_prefix(at.trim_end_matches('/'))?;
        let rest = rest.trim_start_matches('/');
        Some((dir, if rest.is_empty() { ".".to_owned() } else { rest.to_owned() }))
    })
}
