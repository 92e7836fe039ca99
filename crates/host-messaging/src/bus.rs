//! The broker seam and the in-process broker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::{Message, MessagingError, Pattern, QUEUE_BYTES, QUEUE_DEPTH};

/// A message broker: what the messaging service needs of a transport.
pub trait Broker: Send + Sync {
    /// Delivers a message to every current subscriber whose pattern matches its topic.
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when the transport cannot take it.
    fn publish(&self, message: Message) -> Result<(), MessagingError>;

    /// Starts a subscription.
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when the transport cannot subscribe.
    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError>;
}

/// The receiving end of one subscription; dropping it unsubscribes.
pub trait Inbox: Send {
    /// The next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when the transport failed.
    fn receive(&mut self, timeout: Duration) -> Result<Option<Message>, MessagingError>;

    /// Messages dropped because the queue was full.
    fn dropped(&self) -> u64;
}

/// A subscriber's bounded queue ([`QUEUE_DEPTH`] messages, [`QUEUE_BYTES`] bytes; what does not
/// fit is dropped and counted), shared by the brokers: a transport pushes, the inbox from
/// [`Queue::inbox`] receives.
pub struct Queue {
    /// The messages, and their total size.
    messages: Mutex<(VecDeque<Message>, usize)>,
    ready: Condvar,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("dropped", &self.dropped.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Queue {
            messages: Mutex::new((VecDeque::new(), 0)),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Adds a message, or drops it (and counts it) when the queue is full; says which.
    pub fn push(&self, message: Message) -> bool {
        let mut guard = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let (messages, bytes) = &mut *guard;
        if messages.len() >= QUEUE_DEPTH || *bytes + message.size() > QUEUE_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("a subscriber of `{}` is full; a message was dropped", message.topic);
            return false;
        }
        *bytes += message.size();
        messages.push_back(message);
        self.ready.notify_one();
        true
    }

    /// The receiving end; `guard` is dropped with it (a transport's subscription, say).
    pub fn inbox(self: &Arc<Self>, guard: Option<Box<dyn Send>>) -> Box<dyn Inbox> {
        Box::new(LocalInbox { queue: self.clone(), _guard: guard })
    }
}

struct Subscriber {
    pattern: Pattern,
    queue: Weak<Queue>,
}

/// The in-process broker: connects the instances of one process.
#[derive(Clone, Default)]
pub struct LocalBus {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.subscribers.lock().map_or(0, |s| s.len());
        f.debug_struct("LocalBus").field("subscribers", &n).finish()
    }
}

impl LocalBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        LocalBus::default()
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|s| s.queue.strong_count() > 0);
        subscribers.len()
    }
}

impl Broker for LocalBus {
    fn publish(&self, message: Message) -> Result<(), MessagingError> {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        // Subscriptions that were dropped go now.
        subscribers.retain(|s| s.queue.strong_count() > 0);
        for sub in subscribers.iter() {
            if !sub.pattern.matches(&message.topic) {
                continue;
            }
            let Some(queue) = sub.queue.upgrade() else { continue };
            queue.push(message.clone());
        }
        Ok(())
    }

    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError> {
        let queue = Queue::new();
        let mut subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        // Subscriptions that were dropped go now, so subscribing in a loop does not grow the list.
        subscribers.retain(|s| s.queue.strong_count() > 0);
        subscribers.push(Subscriber { pattern, queue: Arc::downgrade(&queue) });
        Ok(queue.inbox(None))
    }
}

struct LocalInbox {
    queue: Arc<Queue>,
    _guard: Option<Box<dyn Send>>,
}

impl Inbox for LocalInbox {
    fn receive(&mut self, timeout: Duration) -> Result<Option<Message>, MessagingError> {
        let until = Instant::now().checked_add(timeout);
        let mut messages = self.queue.messages.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(m) = messages.0.pop_front() {
                messages.1 = messages.1.saturating_sub(m.size());
                return Ok(Some(m));
            }
            let left = match until {
                Some(u) => u.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(None);
            }
            messages = self.queue.ready.wait_timeout(messages, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

/// A broker limited to a workload's topic patterns: it may publish on a topic one of them
/// matches, and subscribe to a pattern one of them covers.
pub struct Scoped {
    inner: Arc<dyn Broker>,
    allowed: Vec<Pattern>,
}

impl std::fmt::Debug for Scoped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl Scoped {
    /// `inner`, limited to `allowed`.
    pub fn new(inner: Arc<dyn Broker>, allowed: Vec<Pattern>) -> Self {
        Scoped { inner, allowed }
    }

    fn refuse(&self, what: &str) -> MessagingError {
        let allowed: Vec<String> = self.allowed.iter().map(Pattern::subject).collect();
        MessagingError::InvalidTopic(format!(
            "`{what}` is not among this workload's topics ({}); add it to `topics` in the deployment manifest",
            allowed.join(", ")
        ))
    }
}

impl Broker for Scoped {
    fn publish(&self, message: Message) -> Result<(), MessagingError> {
        if !self.allowed.iter().any(|p| p.matches(&message.topic)) {
            return Err(self.refuse(&message.topic));
        }
        self.inner.publish(message)
    }

    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError> {
        if !self.allowed.iter().any(|p| p.covers(&pattern)) {
            return Err(self.refuse(&pattern.subject()));
        }
        self.inner.subscribe(pattern)
    }
}
