//! The messaging service's [`Broker`] backed by a NATS server, so that instances on different
//! nodes exchange messages: a guest's topic `a.b` is the NATS subject `<prefix>.a.b`, its
//! patterns (`*`, a final `>`) are NATS wildcards, its content type and metadata travel as NATS
//! headers.
//!
//! The client reconnects on its own. While the server is out of reach a publish is buffered by
//! the client (and lost if the buffer fills) and subscriptions resume when it is back: a node
//! cut off from the cloud keeps running its instances, which see no messages from elsewhere
//! until the link returns.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lamina_host_messaging::{Broker, Inbox, MAX_PAYLOAD, Message, MessagingError, Pattern, Queue};

/// The header that carries a message's content type.
const CONTENT_TYPE: &str = "Content-Type";

/// How long a publish or subscribe may wait for the client.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A broker on a NATS server.
pub struct NatsBroker {
    client: async_nats::Client,
    runtime: Arc<tokio::runtime::Runtime>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker").field("url", &self.url).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl NatsBroker {
    /// A broker on the NATS server at `url` (`nats://host:port`), with topics under `prefix`
    /// (dot-separated tokens, for instance `lamina`). It returns at once: when the server is
    /// out of reach the client keeps trying in the background.
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when the URL or prefix is malformed, or no runtime can
    /// be started.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, MessagingError> {
        Self::connect_with(url, prefix, None)
    }

    /// As [`NatsBroker::connect`], authenticated as the NATS user of the NKey `nkey_seed`
    /// (`SU…`) when one is given. What the server refuses (a key it does not know, a subject
    /// the user may not use) is logged as a warning; a refused connection keeps being tried,
    /// so a server that learns the key later admits it.
    ///
    /// # Errors
    /// As [`NatsBroker::connect`]; also when the seed is not an NKey user seed.
    pub fn connect_with(url: &str, prefix: &str, nkey_seed: Option<&str>) -> Result<Self, MessagingError> {
        lamina_host_messaging::check_topic(prefix).map_err(|e| MessagingError::Unavailable(format!("prefix: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lamina-nats")
            .enable_all()
            .build()
            .map_err(|e| MessagingError::Unavailable(format!("cannot start the NATS client's runtime: {e}")))?;
        let server = url.to_owned();
        let mut options = async_nats::ConnectOptions::new()
            .name("lamina")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(move |event| {
                let server = server.clone();
                async move {
                    match event {
                        async_nats::Event::ServerError(e) => tracing::warn!("NATS at {server} refused: {e}"),
                        async_nats::Event::ClientError(e) => tracing::warn!("NATS at {server}: {e}"),
                        other => tracing::debug!("NATS at {server}: {other}"),
                    }
                }
            });
        if let Some(seed) = nkey_seed {
            if !seed.starts_with("SU") {
                return Err(MessagingError::Unavailable("the NATS credentials are not an NKey user seed".into()));
            }
            options = options.nkey(seed.to_owned());
        }
        let client = runtime
            .block_on(options.connect(url))
            .map_err(|e| MessagingError::Unavailable(format!("NATS at {url}: {e}")))?;
        Ok(NatsBroker { client, runtime: Arc::new(runtime), prefix: prefix.to_owned(), url: url.to_owned() })
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.{topic}", self.prefix)
    }

    /// Waits until the client is connected to the server (or `timeout` passes).
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when it is not.
    pub fn wait_connected(&self, timeout: Duration) -> Result<(), MessagingError> {
        let deadline = std::time::Instant::now() + timeout;
        while self.client.connection_state() != async_nats::connection::State::Connected {
            if std::time::Instant::now() >= deadline {
                return Err(MessagingError::Unavailable(format!(
                    "NATS at {}: not connected after {timeout:?}",
                    self.url
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Waits until what was published has reached the server (or `timeout` passes).
    ///
    /// # Errors
    /// [`MessagingError::Unavailable`] when it did not.
    pub fn flush(&self, timeout: Duration) -> Result<(), MessagingError> {
        let client = self.client.clone();
        self.runtime
            .block_on(async move { tokio::time::timeout(timeout, client.flush()).await })
            .map_err(|_| MessagingError::Unavailable(format!("NATS at {}: flush timed out", self.url)))?
            .map_err(|e| MessagingError::Unavailable(format!("NATS at {}: {e}", self.url)))
    }
}

impl Broker for NatsBroker {
    fn publish(&self, message: Message) -> Result<(), MessagingError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(ct) = &message.content_type {
            headers.insert(CONTENT_TYPE, ct.as_str());
        }
        for (k, v) in &message.metadata {
            headers.append(k.as_str(), v.as_str());
        }
        let subject = self.subject(&message.topic);
        let client = self.client.clone();
        let payload = bytes::Bytes::from(message.data);
        self.runtime
            .block_on(async move {
                tokio::time::timeout(CALL_TIMEOUT, client.publish_with_headers(subject, headers, payload)).await
            })
            .map_err(|_| MessagingError::Unavailable(format!("NATS at {}: the client's buffer is full", self.url)))?
            .map_err(|e| MessagingError::Unavailable(format!("NATS at {}: {e}", self.url)))
    }

    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError> {
        let subject = self.subject(&pattern.subject());
        let client = self.client.clone();
        let mut subscriber = self
            .runtime
            .block_on(async move { tokio::time::timeout(CALL_TIMEOUT, client.subscribe(subject)).await })
            .map_err(|_| MessagingError::Unavailable(format!("NATS at {}: subscribing timed out", self.url)))?
            .map_err(|e| MessagingError::Unavailable(format!("NATS at {}: {e}", self.url)))?;
        let queue = Queue::new();
        let weak = Arc::downgrade(&queue);
        let skip = self.prefix.len() + 1;
        let task = self.runtime.spawn(async move {
            while let Some(m) = subscriber.next().await {
                let Some(queue) = weak.upgrade() else { break };
                if m.payload.len() > MAX_PAYLOAD {
                    continue;
                }
                let mut content_type = None;
                let mut metadata = Vec::new();
                for (name, values) in m.headers.iter().flat_map(|h| h.iter()) {
                    for value in values {
                        if AsRef::<str>::as_ref(name) == CONTENT_TYPE {
                            content_type = Some(value.as_str().to_owned());
                        } else {
                            metadata.push((name.to_string(), value.as_str().to_owned()));
                        }
                    }
                }
                let topic = m.subject.as_str().get(skip..).unwrap_or_default().to_owned();
                queue.push(Message { topic, data: m.payload.to_vec(), content_type, metadata });
            }
        });
        Ok(queue.inbox(Some(Box::new(Unsubscribe(task)))))
    }
}

/// Ends a subscription's task (and with it the NATS subscription) when its inbox is dropped.
struct Unsubscribe(tokio::task::JoinHandle<()>);

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.0.abort();
    }
}
