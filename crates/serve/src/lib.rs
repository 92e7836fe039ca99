//! Lamina's HTTP front for wasi:http components (`lamina serve`): it listens, speaks HTTP/1.1
//! and HTTP/2 (cleartext by prior knowledge, or negotiated over TLS), bounds what a client may
//! send and hold, hands each request to an [`HttpHandler`], answers the guest's failures with a
//! 5xx, counts everything in Prometheus metrics, writes an access log, and on shutdown stops
//! accepting and lets the requests in flight finish.
//!
//! What a client controls is bounded: connections at once ([`Bounds::max_connections`]; more
//! wait in the kernel's backlog), time to send a request's headers and to finish a TLS
//! handshake ([`Bounds::header_timeout`]), header size ([`Bounds::max_header_bytes`]), body
//! size ([`Bounds::max_body_bytes`]: a declared length beyond it is refused with 413 before the
//! guest sees it, a streamed body is cut there), and requests in the guest at once
//! ([`Bounds::max_requests`]: beyond it, 503 at once with `retry-after`).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod access;
mod cert;
mod drain;
mod idle;
mod metrics;
mod router;
mod slots;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lamina_runtime::{HttpBody, HttpError, HttpHandler};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use access::AccessLog;
pub use cert::RenewableCert;
pub use metrics::Metrics;
pub use router::{Drained, RouteError, Router};

/// Where this crate's log lines go.
const LOG_TARGET: &str = "lamina::serve";

/// Bounds on what clients may send and hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Connections served at once.
    pub max_connections: usize,
    /// Requests in the guest at once, over all connections.
    pub max_requests: usize,
    /// Time for a client to send a request's headers (HTTP/1.1) or finish the TLS handshake,
    /// and how long a connection may stay idle between requests (HTTP/1.1 and HTTP/2).
    pub header_timeout: Duration,
    /// The largest header section accepted, in bytes.
    pub max_header_bytes: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// How long requests in flight may take to finish after shutdown is asked for.
    pub drain_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_requests: 256,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// A bound listener with everything a request needs.
///
/// Connections are served by a few threads (one per CPU by default), each with a runtime and
/// instances of the component of its own: a connection, its requests and the instances that
/// answer them stay on one thread, so handing a request to its instance and the answer back
/// wakes no other thread and frees no memory another thread allocated. A thread accepts
/// nothing itself; the listener hands each connection to the thread serving the fewest.
pub struct Server {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Shared,
    threads: usize,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Who answers a server's requests.
enum Dispatch {
    /// One component answers every request (`lamina serve`).
    One(HttpHandler),
    /// The entries of a live routing table (a node's ingress), through this thread's handlers.
    Routed {
        /// The table.
        router: Arc<Router>,
        /// This thread's index among the server's.
        lane: usize,
    },
}

/// What a request needs: the handler of its thread, and what every thread shares.
struct Shared {
    dispatch: Dispatch,
    bounds: Bounds,
    requests: Arc<slots::Slots>,
    metrics: Arc<Metrics>,
    access: Option<Arc<AccessLog>>,
    scheme: http::uri::Scheme,
}

impl Shared {
    /// The same, for serving thread `lane`: with a handler whose instances are its own.
    fn for_lane(&self, lane: usize) -> Self {
        Self {
            dispatch: match &self.dispatch {
                Dispatch::One(handler) => Dispatch::One(handler.fork()),
                Dispatch::Routed { router, .. } => Dispatch::Routed { router: Arc::clone(router), lane },
            },
            bounds: self.bounds,
            requests: Arc::clone(&self.requests),
            metrics: Arc::clone(&self.metrics),
            access: self.access.clone(),
            scheme: self.scheme.clone(),
        }
    }
}

/// What every connection of every thread shares.
struct Connections {
    builders: Builders,
    drain: drain::Drain,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// A server on a bound listener. With `tls`, connections are TLS (ALPN `h2` and
    /// `http/1.1` are offered when the configuration names none).
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: HttpHandler,
        bounds: Bounds,
        metrics: Arc<Metrics>,
        access: Option<AccessLog>,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::with_dispatch(listener, tls, Dispatch::One(handler), threads, bounds, metrics, access)
    }

    /// A server that answers each request with the entry of `router` it matches (404 when none
    /// does), on as many threads as the router was made for.
    pub fn routed(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        router: Arc<Router>,
        bounds: Bounds,
        metrics: Arc<Metrics>,
        access: Option<AccessLog>,
    ) -> Self {
        let threads = router.lanes();
        Self::with_dispatch(listener, tls, Dispatch::Routed { router, lane: 0 }, threads, bounds, metrics, access)
    }

    fn with_dispatch(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        dispatch: Dispatch,
        threads: usize,
        bounds: Bounds,
        metrics: Arc<Metrics>,
        access: Option<AccessLog>,
    ) -> Self {
        let tls = tls.map(|config| {
            let mut config = Arc::unwrap_or_clone(config);
            if config.alpn_protocols.is_empty() {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            }
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let scheme = if tls.is_some() { http::uri::Scheme::HTTPS } else { http::uri::Scheme::HTTP };
        let shared = Shared {
            dispatch,
            requests: slots::Slots::new(bounds.max_requests),
            bounds,
            metrics,
            access: access.map(Arc::new),
            scheme,
        };
        Self { listener, tls, shared, threads }
    }

    /// Serves connections on `threads` threads (at least one) instead of one per CPU. A
    /// [routed](Server::routed) server keeps the count its router was made for.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        if let Dispatch::One(_) = self.shared.dispatch {
            self.threads = threads.max(1);
        }
        self
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// (up to the drain timeout) and returns once the serving threads have ended.
    ///
    /// # Errors
    /// Never for a client's misbehaviour; only when the serving threads cannot be started.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server { listener, tls, shared, threads } = self;
        let bounds = shared.bounds;
        let access = shared.access.clone();
        let connections = Arc::new(Semaphore::new(bounds.max_connections));
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // The header-read bound is the connection's idle bound (`idle::IdleIo`): a request
        // starts once its headers are read, so a client sending them slowly is idle all along.
        http1.header_read_timeout(None).max_buf_size(bounds.max_header_bytes.max(8192)).keep_alive(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(bounds.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(u32::try_from(bounds.max_requests).unwrap_or(u32::MAX).max(1))
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(20));
        let common = Arc::new(Connections { builders: (http1, http2), drain: drain::Drain::default(), tls });
        let mut lanes = Vec::with_capacity(threads);
        for index in 0..threads {
            let lane = Lane::start(index, shared.for_lane(index), Arc::clone(&common)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start serving thread {} of {threads} ({e}); serve with fewer threads", index + 1),
                )
            })?;
            lanes.push(lane);
        }
        drop(shared);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: say so, wait a little, go on.
                        tracing::warn!(target: LOG_TARGET, "cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            // Out of this thread's event loop, into the serving thread's.
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, "cannot hand over the connection from {peer}: {e}");
                    continue;
                }
            };
            least_busy(&lanes).hand(stream, peer, permit);
        }
        drop(listener);
        tracing::info!(target: LOG_TARGET, "shutting down: finishing the requests in flight");
        if tokio::time::timeout(bounds.drain_timeout, common.drain.shutdown()).await.is_err() {
            tracing::warn!(
                target: LOG_TARGET,
                "requests were still in flight after {}; stopping anyway",
                humantime::format_duration(bounds.drain_timeout)
            );
        }
        // The threads end with their channels; what their instances still commit to sealed
        // directories is waited for as they end.
        let ended = tokio::task::spawn_blocking(move || lanes.into_iter().for_each(Lane::stop)).await;
        if ended.is_err() {
            tracing::warn!(target: LOG_TARGET, "a serving thread could not be waited for");
        }
        if let Some(log) = &access {
            log.flush();
        }
        Ok(())
    }
}

/// An accepted connection on its way to a serving thread, holding its connection slot.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// Counts it in its lane's load from the moment it is handed over.
    open: Open,
}

/// A serving thread: its runtime runs the connections handed to it and the instances of its
/// own handler.
struct Lane {
    index: usize,
    to: tokio::sync::mpsc::UnboundedSender<Accepted>,
    /// Connections it serves now.
    open: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl Lane {
    fn start(index: usize, shared: Shared, common: Arc<Connections>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (to, mut from) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let open = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(shared);
        let thread = std::thread::Builder::new().name(format!("lamina-serve-{index}")).spawn(move || {
            runtime.block_on(async move {
                while let Some(accepted) = from.recv().await {
                    tokio::spawn(connection(accepted, Arc::clone(&shared), Arc::clone(&common)));
                }
            });
        })?;
        Ok(Self { index, to, open, thread })
    }

    /// Gives the thread a connection to serve.
    fn hand(&self, stream: std::net::TcpStream, peer: SocketAddr, permit: tokio::sync::OwnedSemaphorePermit) {
        let accepted = Accepted { stream, peer, permit, open: Open::new(&self.open) };
        if self.to.send(accepted).is_err() {
            tracing::error!(target: LOG_TARGET, "serving thread {} has ended; a connection was dropped", self.index);
        }
    }

    /// Closes its channel and waits for the thread to end (its connections are cut, its
    /// instances dropped).
    fn stop(self) {
        drop(self.to);
        if self.thread.join().is_err() {
            tracing::error!(target: LOG_TARGET, "serving thread {} panicked", self.index);
        }
    }
}

/// The lane serving the fewest connections (a lane whose thread has ended is passed over).
fn least_busy(lanes: &[Lane]) -> &Lane {
    let loads = lanes.iter().map(|l| (!l.to.is_closed()).then(|| l.open.load(Ordering::Relaxed)));
    &lanes[least_loaded(loads)]
}

/// The index of the smallest load (`None`: not a choice), the first among equals: connections
/// one after another go to the first thread (its instances stay warm, the others idle), and
/// connections open at once are spread, since a connection counts from the moment it is
/// handed over. 0 when none is a choice (the caller then finds that lane closed).
fn least_loaded(loads: impl Iterator<Item = Option<usize>>) -> usize {
    loads.enumerate().filter_map(|(i, load)| load.map(|load| (load, i))).min().map_or(0, |(_, i)| i)
}

/// Counts a connection in its lane while it is served.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection on its thread: TLS or the HTTP/2 preface, then HTTP.
async fn connection(accepted: Accepted, shared: Arc<Shared>, common: Arc<Connections>) {
    let Accepted { stream, peer, permit, open } = accepted;
    let _held = (permit, open);
    shared.metrics.connection_opened();
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, "cannot serve the connection from {peer}: {e}");
            shared.metrics.connection_closed();
            return;
        }
    };
    let activity = idle::Activity::new();
    let service = {
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req| respond(Arc::clone(&shared), peer, req, idle::Activity::start(&activity)))
    };
    let header_timeout = shared.bounds.header_timeout;
    let served = match &common.tls {
        None => {
            // A client that connects and says nothing is dropped at the header timeout;
            // HTTP/2 by prior knowledge starts with its preface (`PRI`).
            match tokio::time::timeout(header_timeout, sniff_h2(&stream)).await {
                Ok(Ok(Some(h2))) => {
                    let io = idle::IdleIo::new(TokioIo::new(stream), activity, header_timeout);
                    serve_io(io, h2, &common.builders, service, &common.drain).await
                }
                _ => Ok(()),
            }
        }
        Some(acceptor) => {
            let handshake = Box::pin(acceptor.accept(stream));
            match tokio::time::timeout(header_timeout, handshake).await {
                Ok(Ok(stream)) => {
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = idle::IdleIo::new(TokioIo::new(stream), activity, header_timeout);
                    // Boxed: a TLS connection's state stays out of every plain one's.
                    Box::pin(serve_io(io, h2, &common.builders, service, &common.drain)).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(target: LOG_TARGET, "TLS handshake with {peer} failed: {e}");
                    Ok(())
                }
                Err(_) => {
                    tracing::debug!(target: LOG_TARGET, "TLS handshake with {peer} timed out");
                    Ok(())
                }
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(target: LOG_TARGET, "connection from {peer} ended: {e}");
    }
    shared.metrics.connection_closed();
}

type Builders = (hyper::server::conn::http1::Builder, hyper::server::conn::http2::Builder<TokioExecutor>);

/// Serves one connection with HTTP/1.1 or HTTP/2, watched for graceful shutdown.
async fn serve_io<I, S>(
    io: I,
    h2: bool,
    builders: &Builders,
    service: S,
    drain: &drain::Drain,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = HttpBody> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The connection is boxed by the drain: its state is as large as its own protocol needs,
    // not as the larger of HTTP/1's and HTTP/2's (kilobytes per connection).
    if h2 {
        drain.watch(builders.1.serve_connection(io, service)).await
    } else {
        drain.watch(builders.0.serve_connection(io, service)).await
    }
}

/// Whether a clear-text connection starts with HTTP/2's preface (`PRI * HTTP/2.0`); `None` when
/// the client closes before saying anything.
async fn sniff_h2(stream: &tokio::net::TcpStream) -> std::io::Result<Option<bool>> {
    let mut first = [0u8; 3];
    let mut wait = Duration::from_millis(1);
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        if n >= 3 || !b"PRI".starts_with(&first[..n]) {
            return Ok(Some(first[..n] == *b"PRI"));
        }
        // `P` or `PR` so far: `POST`, `PUT` and `PATCH` start so too; wait for more, less and
        // less often (a client that stops there costs a few wake-ups a second).
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
}

/// A response with a short plain-text body (Lamina's own answers: 413, 503, the guest's
/// failures).
fn plain(status: u16, text: &str) -> http::Response<HttpBody> {
    let body = Full::new(Bytes::from(format!("{text}\n"))).map_err(|never: Infallible| match never {}).boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

async fn respond(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: http::Request<Incoming>,
    busy: idle::Busy,
) -> Result<http::Response<HttpBody>, Infallible> {
    let started = Instant::now();
    let in_flight = shared.metrics.request_started();
    let line = shared.access.as_ref().map(|_| access::RequestLine::of(&request));
    let response = answer(&shared, request, (in_flight, busy)).await;
    let status = response.status().as_u16();
    let took = started.elapsed();
    shared.metrics.request_finished(status, took);
    if let (Some(log), Some(line)) = (&shared.access, &line) {
        log.write(peer, line, status, took);
    }
    Ok(response)
}

async fn answer(
    shared: &Shared,
    request: http::Request<Incoming>,
    in_flight: (metrics::InFlight, idle::Busy),
) -> http::Response<HttpBody> {
    let max_body = shared.bounds.max_body_bytes;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body) {
        shared.metrics.refused("body_too_large");
        return plain(413, &format!("the request body is larger than this server takes ({max_body} bytes)"));
    }
    let Some(permit) = slots::Slots::try_take(&shared.requests) else {
        shared.metrics.refused("overloaded");
        let mut response = plain(503, "too many requests in flight; try again shortly");
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return response;
    };
    let (mut parts, body) = request.into_parts();
    // The guest sees an absolute URI: the scheme of this listener, the authority the client
    // named (Host, or the HTTP/2 :authority).
    if parts.uri.authority().is_none()
        && let Some(authority) =
            parts.headers.get(http::header::HOST).and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
    {
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(shared.scheme.clone());
        uri.authority = Some(authority);
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
    }
    if parts.uri.authority().is_none() {
        shared.metrics.refused("no_host");
        return plain(400, "the request names no host (send a Host header)");
    }
    let (handler, route) = match &shared.dispatch {
        Dispatch::One(handler) => (std::borrow::Cow::Borrowed(handler), None),
        Dispatch::Routed { router, lane } => {
            let host = parts.uri.authority().map(http::uri::Authority::host);
            let Some(route) = router.route(host, parts.uri.path()) else {
                shared.metrics.refused("no_route");
                return plain(404, "no workload on this server answers this host and path");
            };
            (std::borrow::Cow::Owned(route.entry().handler(*lane).clone()), Some(route))
        }
    };
    let body = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX)).map_err(body_error).boxed_unsync();
    match handler.handle(http::Request::from_parts(parts, body)).await {
        // The guest may still be writing the body: the request holds its place among those in
        // the guest, and counts as in flight (in its route too), until the body ends or the
        // client goes.
        Ok(response) => response.map(|body| Held { body, _held: (permit, in_flight, route) }.boxed_unsync()),
        Err(e) => {
            shared.metrics.guest_failed(&e);
            match &e {
                lamina_runtime::HandleError::Unavailable(_) => tracing::warn!(target: LOG_TARGET, "{e}"),
                _ => tracing::debug!(target: LOG_TARGET, "{e}"),
            }
            // The detail (backtraces, host paths) stays in the log; the client gets the kind.
            let text = match e.status() {
                504 => "the component did not answer in time",
                503 => "no instance of the component could be started; try again shortly",
                _ => "the component failed to answer this request",
            };
            plain(e.status(), text)
        }
    }
}

/// A response body that keeps what its request holds (its place among the requests in the
/// guest, its in-flight count) until the body ends or is dropped.
struct Held<B> {
    body: B,
    _held: (slots::Slot, (metrics::InFlight, idle::Busy), Option<router::RouteGuard>),
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// What the guest sees when the request body fails: too large, or the client went away.
fn body_error(e: Box<dyn std::error::Error + Send + Sync>) -> HttpError {
    if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
        return HttpError::HttpRequestBodySize(None);
    }
    match e.downcast::<hyper::Error>() {
        Ok(e) => HttpError::Hyper(*e),
        Err(e) => HttpError::InternalError(Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::least_loaded;

    #[test]
    fn a_connection_goes_to_the_thread_serving_fewest_and_the_first_among_equals() {
        assert_eq!(least_loaded([Some(3), Some(1), Some(2)].into_iter()), 1);
        assert_eq!(least_loaded([Some(1), Some(0), Some(0)].into_iter()), 1);
        assert_eq!(least_loaded([Some(0), Some(0)].into_iter()), 0);
        // A thread that has ended is passed over, however idle.
        assert_eq!(least_loaded([None, Some(7)].into_iter()), 1);
        assert_eq!(least_loaded([None::<usize>, None].into_iter()), 0);
        assert_eq!(least_loaded(std::iter::empty()), 0);
    }

    proptest! {
        #[test]
        fn the_pick_is_in_range_and_as_idle_as_any_open_lane(
            loads in proptest::collection::vec(proptest::option::of(0usize..8), 1..6),
        ) {
            let pick = least_loaded(loads.iter().copied());
            prop_assert!(pick < loads.len());
            if let Some(least) = loads.iter().flatten().min() {
                prop_assert_eq!(loads[pick], Some(*least));
            }
        }
    }
}
