//! Closing idle connections: a connection whose requests have all ended (their bodies too) and
//! that has started none for the idle time reads as closed by the client, so the protocol
//! (HTTP/2 in particular, whose server has no idle timeout of its own) ends it. Pings and other
//! frames do not count as activity; requests do.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// Whether an [`IdleIo`] reads it; requests are not counted otherwise (HTTP/1.1, whose
    /// header timeout ends idle connections).
    watched: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            born: Instant::now(),
            last: AtomicU64::new(0),
            watched: AtomicBool::new(false),
        })
    }

    /// Counts a request as in progress until the returned guard is dropped, on a connection an
    /// [`IdleIo`] watches (`None` on others: nothing reads the count).
    pub(crate) fn start(this: &Arc<Self>) -> Option<Busy> {
        if !this.watched.load(Ordering::Relaxed) {
            return None;
        }
        this.open.fetch_add(1, Ordering::Relaxed);
        Some(Busy(Arc::clone(this)))
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
        // Before the connection is served: every request on it is counted.
        activity.watched.store(true, Ordering::Relaxed);
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
            if self.timer.deadline() != deadline {
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
