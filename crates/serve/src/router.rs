//! A live routing table for a server that answers for several components (a node's ingress):
//! each entry is a component's handler under the routes and host of its workload
//! ([`HttpService`]). Entries come and go while the server runs; an entry taken out gets no
//! new requests and reports when those it had have finished ([`Drained`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use lamina_runtime::HttpHandler;
use lamina_types::ingress::{HttpService, MatchRank};

/// The routes a server answers for, shared by its serving threads.
pub struct Router {
    lanes: usize,
    table: RwLock<Arc<Vec<Arc<Entry>>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.snapshot().iter().map(|e| e.key.clone()).collect();
        f.debug_struct("Router").field("lanes", &self.lanes).field("entries", &keys).finish()
    }
}

/// One component under its routes.
pub(crate) struct Entry {
    /// The embedder's name for it (a node's `workload/replica`), unique in the table.
    key: String,
    /// Which workload it is an instance of: entries of one workload share its routes.
    workload: String,
    service: HttpService,
    /// A handler per serving thread, each with instances of its own.
    handlers: Vec<HttpHandler>,
    /// Requests it is answering (their bodies included).
    in_flight: AtomicUsize,
    /// Signalled when `in_flight` falls to zero.
    idle: (Mutex<()>, Condvar),
}

impl Entry {
    /// The handler of serving thread `lane`.
    pub(crate) fn handler(&self, lane: usize) -> &HttpHandler {
        &self.handlers[lane % self.handlers.len()]
    }
}

/// Counts a request in its entry until dropped (the response body ended or was abandoned).
pub(crate) struct RouteGuard(Arc<Entry>);

impl RouteGuard {
    pub(crate) fn entry(&self) -> &Entry {
        &self.0
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _lock = self.0.idle.0.lock().unwrap_or_else(PoisonError::into_inner);
            self.0.idle.1.notify_all();
        }
    }
}

/// Why an entry was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The key is in the table already.
    #[error("`{0}` is served already")]
    Taken(String),
    /// Another workload serves one of its routes for the same host.
    #[error("route `{route}` is served by workload `{other}` already")]
    Clash {
        /// The route.
        route: String,
        /// The workload that has it.
        other: String,
    },
}

/// An entry taken out of the table: its requests in flight, until they finish.
#[must_use = "a removed route's requests may still be in flight: wait for them"]
pub struct Drained(Arc<Entry>);

impl std::fmt::Debug for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drained").field("key", &self.0.key).field("in_flight", &self.in_flight()).finish()
    }
}

impl Drained {
    /// Requests still in flight.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// Waits, blocking the thread, until its requests have finished or `timeout` passes; says
    /// whether they finished.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lock = self.0.idle.0.lock().unwrap_or_else(PoisonError::into_inner);
        while self.in_flight() > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            lock = self.0.idle.1.wait_timeout(lock, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

impl Router {
    /// An empty table for a server with `lanes` serving threads (at least one).
    pub fn new(lanes: usize) -> Arc<Self> {
        Arc::new(Self { lanes: lanes.max(1), table: RwLock::new(Arc::new(Vec::new())) })
    }

    /// How many serving threads it is for.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Entry>>> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves `service`'s routes with `handler` (forked once per serving thread) under `key`,
    /// an instance of `workload`. Instances of one workload share its routes; another
    /// workload's routes may not meet them.
    ///
    /// # Errors
    /// [`RouteError`] when the key is taken or a route is another workload's.
    pub fn insert(
        &self,
        key: &str,
        workload: &str,
        service: HttpService,
        handler: &HttpHandler,
    ) -> Result<(), RouteError> {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if table.iter().any(|e| e.key == key) {
            return Err(RouteError::Taken(key.to_owned()));
        }
        for e in table.iter().filter(|e| e.workload != workload) {
            if let Some(route) = service.clash(&e.service) {
                return Err(RouteError::Clash { route: route.to_string(), other: e.workload.clone() });
            }
        }
        let handlers = (0..self.lanes).map(|_| handler.fork()).collect();
        let entry = Arc::new(Entry {
            key: key.to_owned(),
            workload: workload.to_owned(),
            service,
            handlers,
            in_flight: AtomicUsize::new(0),
            idle: (Mutex::new(()), Condvar::new()),
        });
        let mut next = Vec::clone(table.as_ref());
        next.push(entry);
        *table = Arc::new(next);
        Ok(())
    }

    /// Takes `key` out: new requests no longer reach it; the requests it has go on.
    pub fn remove(&self, key: &str) -> Option<Drained> {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let at = table.iter().position(|e| e.key == key)?;
        let mut next = Vec::clone(table.as_ref());
        let entry = next.remove(at);
        *table = Arc::new(next);
        Some(Drained(entry))
    }

    /// The keys served now.
    pub fn keys(&self) -> Vec<String> {
        self.snapshot().iter().map(|e| e.key.clone()).collect()
    }

    /// The entry a request with this host (`Host`, or the URI's authority) and path goes to,
    /// counted in flight: the best match ([`HttpService::rank`]), and among instances of that
    /// workload the one answering fewest.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<RouteGuard> {
        let table = self.snapshot();
        let ranks = table.iter().map(|e| e.service.rank(host, path));
        let best = pick(ranks, |i| table[i].in_flight.load(Ordering::Relaxed))?;
        let entry = Arc::clone(&table[best]);
        entry.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(RouteGuard(entry))
    }
}

/// The index of the best rank (`None`: no match), the least loaded among equals.
fn pick(ranks: impl Iterator<Item = Option<MatchRank>>, load: impl Fn(usize) -> usize) -> Option<usize> {
    ranks
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (r, i)))
        .max_by(|(ra, ia), (rb, ib)| ra.cmp(rb).then_with(|| load(*ib).cmp(&load(*ia))).then_with(|| ib.cmp(ia)))
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(by_host: bool, route_len: usize) -> Option<MatchRank> {
        Some(MatchRank { by_host, route_len })
    }

    #[test]
    fn the_best_match_wins_then_the_least_loaded_then_the_first() {
        let loads = [5, 0, 3, 0];
        let load = |i: usize| loads[i];
        assert_eq!(pick([None, rank(false, 1), None].into_iter(), load), Some(1));
        assert_eq!(pick([rank(false, 9), rank(true, 1)].into_iter(), load), Some(1), "a named host first");
        assert_eq!(pick([rank(false, 1), rank(false, 9)].into_iter(), load), Some(1), "then the longest route");
        assert_eq!(
            pick([rank(false, 4), rank(false, 4), rank(false, 4)].into_iter(), load),
            Some(1),
            "then the idlest"
        );
        assert_eq!(pick([None, rank(false, 4), None, rank(false, 4)].into_iter(), load), Some(1), "then the first");
        assert_eq!(pick([None, None].into_iter(), load), None);
    }
}
