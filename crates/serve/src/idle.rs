//! Closing idle connections: a connection whose requests have all ended (their bodies too) and
//! that has started none for the idle time reads as closed by the client, so the protocol ends
//! it. Pings and other frames do not count as activity; requests do. For HTTP/1.1 this is also
//! the bound on the time to send a request's headers (a request starts once its headers are
//! read, so a client sending them one byte at a time is idle all along); for HTTP/2, whose
//! server has no idle timeout of its own, it ends connections that hold a slot and ask nothing.
//!
//! The cost per request is two atomic operations and a clock read: the connection's one timer
//! is moved only when it fires early (at most once per idle time), never per request, where a
//! timer per request head (hyper's header timeout) is a registration in the runtime's timer
//! wheel for every request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor, Write};

/// A connection's requests in progress and when the last one ended.
#[derive(Debug)]
pub(crate) struct Activity {
    open: AtomicUsize,
    /// When the connection was accepted.
    born: Instant,
    /// When the last request ended, in nanoseconds after `born`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self { open: AtomicUsize::new(0), born: Instant::now(), last: AtomicU64::new(0) })
    }

    /// Counts a request as in progress until the returned guard is dropped.
    pub(crate) fn start(this: &Arc<Self>) -> Busy {
        this.open.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(this))
    }

    /// When the connection became idle, or `None` while a request is in progress.
    fn idle_since(&self) -> Option<Instant> {
        // `open` first, with Acquire: a request that ended before it dropped to zero has
        // already moved `last` (its Release below).
        if self.open.load(Ordering::Acquire) != 0 {
            return None;
        }
        Some(self.born + Duration::from_nanos(self.last.load(Ordering::Relaxed)))
    }
}

/// A request in progress on its connection.
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        // Over 584 years the count saturates; the connection then never reads as idle early.
        let since = u64::try_from(self.0.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.last.fetch_max(since, Ordering::Relaxed);
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}

/// A connection's I/O that reports end of stream once the connection has been idle for `idle`.
pub(crate) struct IdleIo<I> {
    io: I,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<I> IdleIo<I> {
    pub(crate) fn new(io: I, activity: Arc<Activity>, idle: Duration) -> Self {
        Self { io, activity, idle, timer: Box::pin(tokio::time::sleep(idle)) }
    }
}

impl<I: Read + Unpin> Read for IdleIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        if let Poll::Ready(read) = Pin::new(&mut self.io).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        // Nothing from the client now: end the connection if it is idle, else be woken to look
        // again when it could be.
        loop {
            let now = Instant::now();
            let deadline = match self.activity.idle_since() {
                Some(since) if now.duration_since(since) >= self.idle => return Poll::Ready(Ok(())),
                Some(since) => since + self.idle,
                None => now + self.idle,
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            // A timer due before the deadline is left as it is: when it fires, this looks
            // again and moves it once. Moving it only when the deadline comes sooner (or the
            // timer has fired) keeps the timer wheel out of every request.
            if deadline < self.timer.deadline() || self.timer.is_elapsed() {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<I: Write + Unpin> Write for IdleIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A request on a kept-alive connection moves its idle deadline: the connection ends the
    /// idle time after its last request, not after the first timer it armed.
    #[tokio::test]
    async fn a_request_moves_the_idle_deadline_and_the_connection_ends_an_idle_time_after_it() {
        let idle = Duration::from_millis(400);
        let (client, served_task) = served(idle);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client)).await.expect("client");
        let closed = tokio::spawn(conn);
        let started = Instant::now();
        // A request just before the first deadline keeps the connection open past it.
        tokio::time::sleep(idle * 3 / 4).await;
        let request = http::Request::get("/").header("host", "test").body(Empty::<Bytes>::new()).expect("request");
        let answered_at = {
            let response = sender.send_request(request).await.expect("answered");
            assert_eq!(response.status(), 200);
            Instant::now()
        };
        tokio::time::timeout(Duration::from_secs(5), closed).await.expect("closed").expect("task").expect("clean");
        let closed_at = Instant::now();
        assert!(
            closed_at >= answered_at + idle * 9 / 10,
            "closed {:?} after the last answer, before the idle time",
            closed_at - answered_at
        );
        assert!(closed_at - started < idle * 4, "closed too late: {:?}", closed_at - started);
        served_task.await.expect("task").expect("served");
    }

    /// Serves HTTP/1.1 behind an [`IdleIo`] over an in-memory pipe; the client end is returned.
    fn served(idle: Duration) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let activity = Activity::new();
        let service = {
            let activity = Arc::clone(&activity);
            hyper::service::service_fn(move |_request| {
                let busy = Activity::start(&activity);
                async move {
                    drop(busy);
                    Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
                }
            })
        };
        let io = IdleIo::new(TokioIo::new(server), activity, idle);
        (client, tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service)))
    }

    /// Sends `head` a byte every 100 ms and says how long until the server ended the
    /// connection (or `None` if the whole head went through).
    async fn trickle(client: &mut tokio::io::DuplexStream, head: &[u8]) -> Option<Duration> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let started = Instant::now();
        for byte in head {
            if client.write_all(&[*byte]).await.is_err() {
                return Some(started.elapsed());
            }
            let mut seen = [0u8; 256];
            // End of stream (or a broken pipe) is the cut; a timeout is the server still waiting.
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), client.read(&mut seen)).await {
                return Some(started.elapsed());
            }
        }
        None
    }

    /// The slowloris attack: request headers a byte at a time are cut at the idle time,
    /// on a new connection and on a kept-alive one after a request was answered.
    #[tokio::test]
    async fn headers_sent_a_byte_at_a_time_are_cut_at_the_idle_time() {
        let idle = Duration::from_millis(500);
        let head = b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

        let (mut client, served_task) = served(idle);
        let cut = trickle(&mut client, head).await.expect("the slow client was cut");
        assert!(cut >= idle * 9 / 10 && cut < idle * 4, "cut after {cut:?}");
        drop(client);
        let _ = served_task.await.expect("task");

        let (mut client, served_task) = served(idle);
        {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("writes");
            let mut answer = [0u8; 256];
            let n = client.read(&mut answer).await.expect("answered");
            assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
        }
        let cut = trickle(&mut client, head).await.expect("the slow second request was cut");
        assert!(cut < idle * 4, "cut after {cut:?}");
        drop(client);
        let _ = served_task.await.expect("task");
    }

    #[tokio::test]
    async fn a_connection_with_a_request_in_progress_is_not_idle() {
        let activity = Activity::new();
        let busy = Activity::start(&activity);
        assert_eq!(activity.idle_since(), None);
        drop(busy);
        assert!(activity.idle_since().is_some());
    }
}
