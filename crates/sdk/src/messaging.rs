//! Topic-based publish/subscribe between instances.

use std::time::Duration;

use crate::bindings::lamina::messaging::{consumer, producer, types};

pub use types::Error;
pub use types::Message;

// The bindings give `Error` its `Display` and `std::error::Error`.

/// Publishes `data` on `topic` (dot-separated tokens).
///
/// # Errors
/// [`Error`] for a bad topic, a payload over 1 MiB, or no broker.
pub fn publish(topic: &str, data: &[u8]) -> Result<(), Error> {
    send(&Message { topic: topic.to_owned(), data: data.to_vec(), content_type: None, metadata: Vec::new() })
}

/// Publishes a message with a media type and headers.
///
/// # Errors
/// As [`publish`].
pub fn send(message: &Message) -> Result<(), Error> {
    producer::send(message)
}

/// A subscription; dropping it unsubscribes.
pub struct Subscription {
    inner: consumer::Subscription,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// Subscribes to a pattern: `*` matches one token, a final `>` one or more.
///
/// # Errors
/// [`Error::InvalidTopic`] for a malformed pattern; [`Error::Unavailable`] without a broker.
pub fn subscribe(pattern: &str) -> Result<Subscription, Error> {
    Ok(Subscription { inner: consumer::subscribe(pattern)? })
}

impl Subscription {
    /// The next message, waiting at most `timeout`; `None` when none came.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the broker failed.
    pub fn receive(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self.inner.receive(ms)
    }

    /// Messages dropped because this subscription fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}
