//! End-to-end encryption of messages: a [`Broker`] wrapper that encrypts each message under a key
//! of its topic, so that the broker (NATS, and anything on the network) carries ciphertext only.
//!
//! - **Per-topic keys.** The control plane derives one key per topic and releases it only to
//!   attested instances of workloads allowed on that topic ([`TopicKeys`] asks for it).
//! - **Per-publisher message keys.** Each publishing instance draws a random session; its
//!   AES-256-GCM key is HKDF-SHA256 of the topic key and the session, its nonces count 1, 2, 3…
//!   so no nonce repeats under a key.
//! - **Authenticated publishers.** The sender identity (`workload/replica@node`, set by the
//!   node's runtime, never by the guest) and the topic are bound into each message as associated
//!   data; subscribers see it as the `lamina-sender` header. Only runtimes holding the topic key
//!   can make a message that opens, so a message that opens was sent by an attested instance
//!   allowed on the topic, as the identity it names.
//! - **Replays.** Subscribers keep a 64-message window per session, like IPsec and DTLS: a
//!   message seen before, or older than the window, is dropped. Each message carries when it
//!   was sent; one more than [`MAX_AGE`] old (or ahead of the subscriber's clock by as much) is
//!   dropped too, so a recorded message cannot be replayed to a later subscription.
//!
//! Messages that do not open (unsealed, tampered, replayed, under a key this instance cannot
//! get) are dropped and counted in [`Stats::rejected`]; the guest never sees them.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod envelope;
mod replay;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lamina_host_messaging::{Broker, Inbox, MAX_PAYLOAD, Message, MessagingError, Pattern};
use rand_core::RngCore as _;
use ring::aead::{Aad, LessSafeKey, Nonce};
use zeroize::Zeroizing;

use envelope::SESSION;

/// The header under which subscribers see who sent a message.
pub const SENDER_HEADER: &str = "lamina-sender";
/// The label of the message-key derivation.
const INFO: &[u8] = b"lamina message v1";
/// How many publisher sessions a subscription remembers for replay detection.
const MAX_SESSIONS: usize = 4096;
/// The oldest message a subscriber accepts, and how far ahead of its clock one may be (NATS
/// delivers at once or not at all; this leaves room for clocks that disagree).
pub const MAX_AGE: Duration = Duration::from_secs(300);

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A topic's key, as the control plane releases it.
#[derive(Clone)]
pub struct TopicKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicKey").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl TopicKey {
    /// A key of `epoch`.
    pub fn new(epoch: u32, key: [u8; 32]) -> Self {
        TopicKey { epoch, key: Zeroizing::new(key) }
    }

    /// Its epoch: the control plane's key generation, carried in each envelope.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The AES-256-GCM key of one publisher session.
    fn message_key(&self, session: &[u8; SESSION]) -> Result<LessSafeKey, MessagingError> {
        lamina_keys::Prk::extract(session, self.key.as_ref())
            .expand_aead(&[INFO])
            .map_err(|e| MessagingError::Unavailable(e.to_string()))
    }
}

/// Where an instance's topic keys come from: on a node, the control plane (which releases a
/// key only to an attested instance allowed on the topic). Implementations cache.
pub trait TopicKeys: Send + Sync {
    /// The current key of `topic`.
    ///
    /// # Errors
    /// [`MessagingError::Denied`] when the key is refused; [`MessagingError::Unavailable`]
    /// when it cannot be had now.
    fn key(&self, topic: &str) -> Result<TopicKey, MessagingError>;
}

/// Counts of sealed messaging, shared by the brokers of a node.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages sealed and handed to the broker.
    pub sealed: AtomicU64,
    /// Messages received that opened and reached a subscriber.
    pub opened: AtomicU64,
    /// Messages received that were dropped: unsealed, tampered, replayed or without a key.
    pub rejected: AtomicU64,
}

/// A broker whose messages are sealed end to end.
pub struct EncryptedBroker {
    inner: Arc<dyn Broker>,
    keys: Arc<dyn TopicKeys>,
    sender: String,
    session: [u8; SESSION],
    sequence: AtomicU64,
    /// Per topic: the message key of this session, under the epoch it was made with.
    message_keys: Mutex<HashMap<String, (u32, Arc<LessSafeKey>)>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for EncryptedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedBroker").field("sender", &self.sender).finish_non_exhaustive()
    }
}

impl EncryptedBroker {
    /// `inner` with each message sealed under `keys`, sent as `sender` (1 to 255 bytes, for
    /// instance `workload/replica@node`), counted in `stats`.
    ///
    /// # Errors
    /// [`MessagingError::InvalidTopic`] when the sender identity is empty or too long.
    pub fn new(
        inner: Arc<dyn Broker>,
        keys: Arc<dyn TopicKeys>,
        sender: &str,
        stats: Arc<Stats>,
    ) -> Result<Self, MessagingError> {
        if sender.is_empty() || sender.len() > envelope::MAX_SENDER {
            return Err(MessagingError::InvalidTopic(format!(
                "the sender identity `{sender}` must be 1 to {} bytes",
                envelope::MAX_SENDER
            )));
        }
        let mut session = [0; SESSION];
        rand_core::OsRng.fill_bytes(&mut session);
        Ok(EncryptedBroker {
            inner,
            keys,
            sender: sender.to_owned(),
            session,
            sequence: AtomicU64::new(0),
            message_keys: Mutex::new(HashMap::new()),
            stats,
        })
    }

    fn message_key(&self, topic: &str) -> Result<(u32, Arc<LessSafeKey>), MessagingError> {
        let key = self.keys.key(topic)?;
        let mut keys = self.message_keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((epoch, k)) = keys.get(topic)
            && *epoch == key.epoch
        {
            return Ok((*epoch, k.clone()));
        }
        let k = Arc::new(key.message_key(&self.session)?);
        keys.insert(topic.to_owned(), (key.epoch, k.clone()));
        Ok((key.epoch, k))
    }
}

impl Broker for EncryptedBroker {
    fn publish(&self, message: Message) -> Result<(), MessagingError> {
        let (epoch, key) = self.message_key(&message.topic)?;
        // The sender is the runtime's to say: a guest's own `lamina-sender` header is dropped.
        let metadata: Vec<(String, String)> =
            message.metadata.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case(SENDER_HEADER)).collect();
        let mut body = envelope::encode_body(message.content_type.as_deref(), &metadata, &message.data)
            .ok_or(MessagingError::PayloadTooLarge(message.data.len() as u64))?;
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let mut data = envelope::header(epoch, &self.sender, &self.session, sequence, now_ms());
        let aad = [data.as_slice(), message.topic.as_bytes()].concat();
        key.seal_in_place_append_tag(nonce(sequence), Aad::from(&aad), &mut body)
            .map_err(|_| MessagingError::Unavailable("sealing a message failed".into()))?;
        data.extend_from_slice(&body);
        if data.len() + message.topic.len() > MAX_PAYLOAD {
            return Err(MessagingError::PayloadTooLarge(data.len() as u64));
        }
        self.inner.publish(Message { topic: message.topic, data, content_type: None, metadata: Vec::new() })?;
        self.stats.sealed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn subscribe(&self, pattern: Pattern) -> Result<Box<dyn Inbox>, MessagingError> {
        // A pattern without wildcards is one topic: its key is asked for now, so that a
        // refusal is the subscriber's error rather than silence.
        let topic = pattern.subject();
        if lamina_host_messaging::check_topic(&topic).is_ok() {
            self.keys.key(&topic)?;
        }
        let inner = self.inner.subscribe(pattern)?;
        Ok(Box::new(SealedInbox {
            inner,
            keys: self.keys.clone(),
            message_keys: HashMap::new(),
            cached: 0,
            windows: replay::Windows::new(MAX_SESSIONS),
            stats: self.stats.clone(),
            warned: false,
        }))
    }
}

fn nonce(sequence: u64) -> Nonce {
    let mut n = [0; 12];
    n[4..].copy_from_slice(&sequence.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// A subscription whose messages are opened as they are received.
struct SealedInbox {
    inner: Box<dyn Inbox>,
    keys: Arc<dyn TopicKeys>,
    /// Per topic and session: the message key, under its epoch.
    message_keys: HashMap<String, HashMap<[u8; SESSION], (u32, LessSafeKey)>>,
    /// How many message keys `message_keys` holds.
    cached: usize,
    windows: replay::Windows,
    stats: Arc<Stats>,
    warned: bool,
}

impl SealedInbox {
    fn open(&mut self, message: Message) -> Result<Message, String> {
        let Message { topic, mut data, .. } = message;
        let header = envelope::parse(&data).map_err(|e| e.to_string())?;
        let (epoch, sender, session, sequence, clear_len) =
            (header.epoch, header.sender.to_owned(), header.session, header.sequence, header.clear_len);
        let age = now_ms().abs_diff(header.sent_at);
        if age > MAX_AGE.as_millis() as u64 {
            return Err(format!(
                "message {sequence} of {sender} was sent {:.0} s from now; older or newer than {} s is refused (a replay, or \
                 clocks that disagree)",
                age as f64 / 1000.0,
                MAX_AGE.as_secs()
            ));
        }
        if !self.windows.fresh(&session, sequence) {
            return Err(format!("message {sequence} of {sender} was seen before (a replay)"));
        }
        let cached =
            self.message_keys.get(topic.as_str()).and_then(|k| k.get(&session)).is_some_and(|(e, _)| *e == epoch);
        if !cached {
            let key = self.keys.key(&topic).map_err(|e| e.to_string())?;
            if key.epoch != epoch {
                return Err(format!("it is sealed under key epoch {epoch}; this instance holds epoch {}", key.epoch));
            }
            if self.cached >= MAX_SESSIONS {
                self.message_keys.clear();
                self.cached = 0;
            }
            let message_key = key.message_key(&session).map_err(|e| e.to_string())?;
            let previous = self.message_keys.entry(topic.clone()).or_default().insert(session, (epoch, message_key));
            if previous.is_none() {
                self.cached += 1;
            }
        }
        let (_, key) = self.message_keys.get(topic.as_str()).and_then(|k| k.get(&session)).ok_or("no message key")?;
        let (clear, sealed) = data.split_at_mut(clear_len);
        let aad = [&*clear, topic.as_bytes()].concat();
        let body = key
            .open_in_place(nonce(sequence), Aad::from(&aad), sealed)
            .map_err(|_| format!("it does not open under the topic key (tampered, or not from {sender})"))?;
        let body = envelope::parse_body(body).map_err(|e| e.to_string())?;
        self.windows.accept(session, sequence);
        let mut metadata: Vec<(String, String)> =
            body.metadata.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case(SENDER_HEADER)).collect();
        metadata.push((SENDER_HEADER.to_owned(), sender));
        Ok(Message { topic, data: body.data, content_type: body.content_type, metadata })
    }
}

impl Inbox for SealedInbox {
    fn receive(&mut self, timeout: Duration) -> Result<Option<Message>, MessagingError> {
        let until = Instant::now().checked_add(timeout);
        loop {
            let left = until.map_or(timeout, |u| u.saturating_duration_since(Instant::now()));
            let Some(message) = self.inner.receive(left)? else { return Ok(None) };
            let topic = message.topic.clone();
            match self.open(message) {
                Ok(m) => {
                    self.stats.opened.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(m));
                }
                Err(why) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    if self.warned {
                        tracing::debug!("dropped a message on {topic}: {why}");
                    } else {
                        self.warned = true;
                        tracing::warn!("dropped a message on {topic}: {why} (further drops are logged at debug)");
                    }
                }
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

#[cfg(test)]
mod tests;
