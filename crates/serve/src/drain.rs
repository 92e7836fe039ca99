//! Graceful shutdown: on [`Drain::shutdown`] every connection being served is told to finish
//! the requests it has and take no more, and the call returns when the last has ended.
//!
//! What a connection pays while serving is one atomic load and one waker registration of its
//! own per poll. A shared channel (a watch receiver per connection, as hyper-util's graceful
//! shutdown uses) takes one lock shared by every connection on every poll of every connection;
//! under many connections that lock is contended between the runtime's workers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;

/// The connections being served, and whether they are being asked to stop.
#[derive(Default)]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next: AtomicU64,
    /// Each connection's waker, by id; a connection leaves when its future ends or is dropped.
    connections: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    /// Told when the last connection leaves after shutdown was asked for.
    ended: tokio::sync::Notify,
}

impl Drain {
    /// Serves `conn` until it ends; once shutdown is asked for, it is told to shut down
    /// gracefully (finish its requests, accept no more).
    pub(crate) fn watch<C: GracefulConnection>(&self, conn: C) -> Watched<C> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.shared.connections.lock().unwrap_or_else(PoisonError::into_inner).insert(id, Arc::clone(&waker));
        Watched { conn: Box::pin(conn), member: Member { shared: Arc::clone(&self.shared), id }, waker, told: false }
    }

    /// Asks every connection to finish and waits until all have ended (connections that start
    /// after this call are told at once).
    pub(crate) async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let empty = {
            let connections = self.shared.connections.lock().unwrap_or_else(PoisonError::into_inner);
            for waker in connections.values() {
                waker.wake();
            }
            connections.is_empty()
        };
        if !empty {
            self.shared.ended.notified().await;
        }
    }
}

/// A connection's place among those served; it leaves when dropped.
struct Member {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut connections = self.shared.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.remove(&self.id);
        // Under the lock: a shutdown that has set `stopping` either sees this one gone or is
        // told here. `notify_one` keeps the notice for a shutdown that has not waited yet.
        if connections.is_empty() && self.shared.stopping.load(Ordering::SeqCst) {
            self.shared.ended.notify_one();
        }
    }
}

/// A connection served under a [`Drain`].
pub(crate) struct Watched<C> {
    conn: Pin<Box<C>>,
    member: Member,
    waker: Arc<AtomicWaker>,
    told: bool,
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.told {
            // The waker first, then the flag: a shutdown that sets the flag after this load
            // wakes the waker registered before it.
            self.waker.register(cx.waker());
            if self.member.shared.stopping.load(Ordering::SeqCst) {
                self.told = true;
                self.conn.as_mut().graceful_shutdown();
            }
        }
        self.conn.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty, Full};
    use hyper_util::rt::TokioIo;

    use super::*;

    #[tokio::test]
    async fn shutdown_without_connections_returns_at_once() {
        let drain = Drain::default();
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown()).await.expect("returns");
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish_then_the_connection_ends() {
        let drain = Arc::new(Drain::default());
        let (client, server) = tokio::io::duplex(64 * 1024);
        // The service says when the request has arrived and answers when released.
        let (arrived_tx, arrived) = tokio::sync::oneshot::channel::<()>();
        let (release, release_rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = Arc::new(Mutex::new(Some((arrived_tx, release_rx))));
        let service = hyper::service::service_fn(move |_request| {
            let waiting = waiting.lock().expect("lock").take();
            async move {
                if let Some((arrived, release)) = waiting {
                    let _ = arrived.send(());
                    let _ = release.await;
                }
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"done"))))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service);
        let served = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.watch(conn).await }
        });
        let (mut sender, client_conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(client)).await.expect("client");
        let client_done = tokio::spawn(client_conn);
        let request = http::Request::get("/").header("host", "test").body(Empty::<Bytes>::new()).expect("request");
        let response = tokio::spawn(sender.send_request(request));
        arrived.await.expect("the request reached the service");

        let shutdown = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.shutdown().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!shutdown.is_finished(), "shutdown waits for the request in flight");

        release.send(()).expect("release");
        let response = response.await.expect("task").expect("answered");
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().collect().await.expect("body").to_bytes(), "done");
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("shutdown returns").expect("task");
        // Told to shut down, the server closed the keep-alive connection after the response.
        served.await.expect("task").expect("the connection ended cleanly");
        tokio::time::timeout(Duration::from_secs(5), client_done).await.expect("closed").expect("task").expect("clean");
    }

    #[tokio::test]
    async fn a_connection_that_starts_after_shutdown_is_told_at_once() {
        let drain = Drain::default();
        drain.shutdown().await;
        let (client, server) = tokio::io::duplex(1024);
        let service = hyper::service::service_fn(|_request| async {
            Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service);
        // Nothing was sent: a connection told to shut down before a request ends at once.
        let ended = tokio::time::timeout(Duration::from_secs(5), drain.watch(conn)).await;
        assert!(ended.is_ok(), "the connection ended without waiting for a request");
        drop(client);
    }
}
