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

struct Queue {
    /// The messages, and their total size.
    messages: Mutex<(VecDeque<Message>, usize)>,
    ready: Condvar,
    dropped: AtomicU64,
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
            let mut guard = queue.messages.lock().unwrap_or_else(PoisonError::into_inner);
            let (messages, bytes) = &mut *guard;
            if messages.len() >= QUEUE_DEPTH || *bytes + message.size() > QUEUE_BYTES {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("a subscriber of `{}` is full; a message was dropped", message.topic);
                continue;
            }
            *bytes += message.size();
            messages.push_back(message.clone());
            queue.ready.notify_one();
        }
        Ok(())
    }

    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError> {
        let queue = Arc::new(Queue {
            messages: Mutex::new((VecDeque::new(), 0)),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let mut subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        // Subscriptions that were dropped go now, so subscribing in a loop does not grow the list.
        subscribers.retain(|s| s.queue.strong_count() > 0);
        subscribers.push(Subscriber { pattern, queue: Arc::downgrade(&queue) });
        Ok(Box::new(LocalInbox { queue }))
    }
}

struct LocalInbox {
    queue: Arc<Queue>,
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
