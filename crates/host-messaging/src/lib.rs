//! Messaging for guests: topic-based publish/subscribe between instances.
//!
//! Guests see `lamina:messaging` (shaped after the `wasi:messaging` proposal) or, from a core
//! module, the `lamina:messaging` imports. Behind both is a [`Broker`]: [`LocalBus`] connects the
//! instances of one process; the continuum backs the same trait with NATS across nodes.
//!
//! Topics are dot-separated tokens; a subscription pattern may use `*` for one token and a final
//! `>` for one or more. Each subscription has a bounded queue: a subscriber that falls behind
//! loses the newest messages, counted by `dropped`, and the publisher never blocks.

#![deny(missing_docs)]

mod bus;

pub use bus::{Broker, Inbox, LocalBus, Queue, Scoped};
pub use lamina_types::topic::{MAX_TOPIC, Pattern, check_topic};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lamina_host_abi::{Status, call};
use wasmtime::Caller;
use wasmtime::component::Resource;

/// The largest message: payload, content type and headers together.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// How many messages a subscription holds before it drops new ones.
pub const QUEUE_DEPTH: usize = 4096;
/// How many bytes of messages a subscription holds before it drops new ones.
pub const QUEUE_BYTES: usize = 4 << 20;
/// The most subscriptions one instance may hold (so at most 256 MiB queued for it).
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// The payload.
    pub data: Vec<u8>,
    /// The payload's media type.
    pub content_type: Option<String>,
    /// Headers.
    pub metadata: Vec<(String, String)>,
}

impl Message {
    /// What the message weighs against [`MAX_PAYLOAD`] and [`QUEUE_BYTES`].
    pub fn size(&self) -> usize {
        self.data.len()
            + self.topic.len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// Why a messaging operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessagingError {
    /// A malformed topic or pattern.
    InvalidTopic(String),
    /// A payload over [`MAX_PAYLOAD`] (its size).
    PayloadTooLarge(u64),
    /// No broker, or it cannot be reached.
    Unavailable(String),
    /// The workload may not use this topic: the control plane releases its key only to
    /// attested instances of workloads allowed on it.
    Denied(String),
}

impl std::fmt::Display for MessagingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessagingError::InvalidTopic(why) => write!(f, "invalid topic: {why}"),
            MessagingError::PayloadTooLarge(n) => write!(f, "a {n}-byte payload is over the {MAX_PAYLOAD}-byte limit"),
            MessagingError::Unavailable(why) => write!(f, "messaging is unavailable: {why}"),
            MessagingError::Denied(why) => write!(f, "messaging is denied: {why}"),
        }
    }
}

impl std::error::Error for MessagingError {}

impl MessagingError {
    fn status(&self) -> Status {
        match self {
            MessagingError::InvalidTopic(_) => Status::InvalidArgument,
            MessagingError::PayloadTooLarge(_) => Status::TooLarge,
            MessagingError::Unavailable(_) => Status::Unavailable,
            MessagingError::Denied(_) => Status::Denied,
        }
    }
}

struct Sub {
    inbox: Box<dyn Inbox>,
    /// A message received but not yet handed over (a core-ABI buffer was too small).
    pending: Option<Message>,
}

/// One instance's messaging state: its broker and its subscriptions.
pub struct MessagingCtx {
    broker: Option<Arc<dyn Broker>>,
    subs: HashMap<u32, Sub>,
    next: u32,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for MessagingCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingCtx")
            .field("connected", &self.broker.is_some())
            .field("subscriptions", &self.subs.len())
            .finish()
    }
}

impl Default for MessagingCtx {
    fn default() -> Self {
        MessagingCtx::new(None)
    }
}

impl MessagingCtx {
    /// A context on this broker; without one, every call says messaging is unavailable.
    pub fn new(broker: Option<Arc<dyn Broker>>) -> Self {
        MessagingCtx { broker, subs: HashMap::new(), next: 1, deadline: None }
    }

    /// Waits in `receive` never run past this instant (the instance's own deadline), so a guest
    /// cannot outlive its timeout by blocking in the host.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn broker(&self) -> Result<&Arc<dyn Broker>, MessagingError> {
        self.broker.as_ref().ok_or_else(|| MessagingError::Unavailable("this instance has no message broker".into()))
    }

    /// Publishes a message.
    ///
    /// # Errors
    /// [`MessagingError`] for a bad topic, a payload too large, or no broker.
    pub fn send(&self, message: Message) -> Result<(), MessagingError> {
        check_topic(&message.topic).map_err(MessagingError::InvalidTopic)?;
        if message.size() > MAX_PAYLOAD {
            return Err(MessagingError::PayloadTooLarge(message.size() as u64));
        }
        self.broker()?.publish(message)
    }

    /// Subscribes; returns the handle.
    ///
    /// # Errors
    /// [`MessagingError`] for a bad pattern, too many subscriptions, or no broker.
    pub fn subscribe(&mut self, pattern: &str) -> Result<u32, MessagingError> {
        let pattern = Pattern::parse(pattern).map_err(MessagingError::InvalidTopic)?;
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(MessagingError::Unavailable(format!(
                "an instance may hold at most {MAX_SUBSCRIPTIONS} subscriptions"
            )));
        }
        let inbox = self.broker()?.subscribe(pattern)?;
        let id = self.next;
        self.next = self.next.wrapping_add(1).max(1);
        self.subs.insert(id, Sub { inbox, pending: None });
        Ok(id)
    }

    /// The next message of a subscription, waiting at most `timeout` (and never past the
    /// instance's deadline). `None` for a handle that is not open.
    pub fn receive(&mut self, handle: u32, timeout: Duration) -> Option<Result<Option<Message>, MessagingError>> {
        let deadline = self.deadline;
        let sub = self.subs.get_mut(&handle)?;
        if let Some(m) = sub.pending.take() {
            return Some(Ok(Some(m)));
        }
        let timeout = match deadline {
            Some(d) => timeout.min(d.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        Some(sub.inbox.receive(timeout))
    }

    /// Messages a subscription dropped.
    pub fn dropped(&self, handle: u32) -> Option<u64> {
        self.subs.get(&handle).map(|s| s.inbox.dropped())
    }

    /// Ends a subscription.
    pub fn unsubscribe(&mut self, handle: u32) -> bool {
        self.subs.remove(&handle).is_some()
    }
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "lamina:messaging/imports",
        imports: { default: trappable },
    });
}

use bindings::lamina::messaging::{consumer, producer, types};

impl From<MessagingError> for types::Error {
    fn from(e: MessagingError) -> Self {
        match e {
            MessagingError::InvalidTopic(why) => types::Error::InvalidTopic(why),
            MessagingError::PayloadTooLarge(n) => types::Error::PayloadTooLarge(n),
            MessagingError::Unavailable(why) => types::Error::Unavailable(why),
            // The interface has no variant of its own for this; like a topic outside the
            // workload's list, it is a topic this instance may not use.
            MessagingError::Denied(why) => types::Error::InvalidTopic(why),
        }
    }
}

impl From<types::Message> for Message {
    fn from(m: types::Message) -> Self {
        Message { topic: m.topic, data: m.data, content_type: m.content_type, metadata: m.metadata }
    }
}

impl From<Message> for types::Message {
    fn from(m: Message) -> Self {
        types::Message { topic: m.topic, data: m.data, content_type: m.content_type, metadata: m.metadata }
    }
}

impl types::Host for MessagingCtx {}

impl producer::Host for MessagingCtx {
    fn send(&mut self, message: types::Message) -> wasmtime::Result<Result<(), types::Error>> {
        Ok(MessagingCtx::send(self, message.into()).map_err(Into::into))
    }
}

impl consumer::Host for MessagingCtx {
    fn subscribe(
        &mut self,
        pattern: String,
    ) -> wasmtime::Result<Result<Resource<consumer::Subscription>, types::Error>> {
        Ok(MessagingCtx::subscribe(self, &pattern).map(Resource::new_own).map_err(Into::into))
    }
}

impl consumer::HostSubscription for MessagingCtx {
    fn receive(
        &mut self,
        sub: Resource<consumer::Subscription>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Option<types::Message>, types::Error>> {
        match MessagingCtx::receive(self, sub.rep(), Duration::from_millis(timeout_ms.into())) {
            Some(r) => Ok(r.map(|m| m.map(Into::into)).map_err(Into::into)),
            None => Err(wasmtime::Error::msg("a subscription that is not open")),
        }
    }

    fn dropped(&mut self, sub: Resource<consumer::Subscription>) -> wasmtime::Result<u64> {
        MessagingCtx::dropped(self, sub.rep()).ok_or_else(|| wasmtime::Error::msg("a subscription that is not open"))
    }

    fn drop(&mut self, sub: Resource<consumer::Subscription>) -> wasmtime::Result<()> {
        self.unsubscribe(sub.rep());
        Ok(())
    }
}

/// Adds `lamina:messaging` to a component linker; `get` finds each instance's context.
///
/// # Errors
/// When the linker already defines it.
pub fn add_to_component_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut MessagingCtx,
) -> wasmtime::Result<()> {
    type D = wasmtime::component::HasSelf<MessagingCtx>;
    types::add_to_linker::<T, D>(linker, get)?;
    producer::add_to_linker::<T, D>(linker, get)?;
    consumer::add_to_linker::<T, D>(linker, get)
}

/// The core-ABI module name.
pub const CORE_MODULE: &str = "lamina:messaging";

/// Adds the core-ABI functions to a module linker:
///
/// - `publish(topic, topic_len, data, data_len) -> status`
/// - `subscribe(pattern, pattern_len, handle_out) -> status`
/// - `receive(handle, timeout_ms, topic_buf, topic_cap, topic_len_out, buf, cap, len_out) -> status`:
///   `TIMEOUT` when nothing came; `BUFFER_TOO_SMALL` (lengths written) keeps the message for
///   the next call
/// - `unsubscribe(handle) -> status`
///
/// # Errors
/// When the linker already defines them.
pub fn add_to_module_linker<T: 'static>(
    linker: &mut wasmtime::Linker<T>,
    get: fn(&mut T) -> &mut MessagingCtx,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        CORE_MODULE,
        "publish",
        move |mut caller: Caller<'_, T>, topic: u32, topic_len: u32, data: u32, data_len: u32| -> i32 {
            call(&mut caller, get, |mem, ctx| {
                if data_len as usize > MAX_PAYLOAD {
                    return Err(Status::TooLarge);
                }
                let message = Message {
                    topic: mem.str(topic, topic_len)?.to_owned(),
                    data: mem.bytes(data, data_len)?.to_vec(),
                    ..Message::default()
                };
                ctx.send(message).map_err(|e| e.status())
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "subscribe",
        move |mut caller: Caller<'_, T>, pattern: u32, pattern_len: u32, handle_out: u32| -> i32 {
            call(&mut caller, get, |mem, ctx| {
                let pattern = mem.str(pattern, pattern_len)?.to_owned();
                let handle = ctx.subscribe(&pattern).map_err(|e| e.status())?;
                mem.write_u32(handle_out, handle)
            })
        },
    )?;
    linker.func_wrap(
        CORE_MODULE,
        "receive",
        move |mut caller: Caller<'_, T>,
              handle: u32,
              timeout_ms: u32,
              topic_buf: u32,
              topic_cap: u32,
              topic_len_out: u32,
              buf: u32,
              cap: u32,
              len_out: u32|
              -> i32 {
            call(&mut caller, get, |mem, ctx| {
                let message = match ctx.receive(handle, Duration::from_millis(timeout_ms.into())) {
                    None => return Err(Status::BadHandle),
                    Some(Err(e)) => return Err(e.status()),
                    Some(Ok(None)) => return Err(Status::Timeout),
                    Some(Ok(Some(m))) => m,
                };
                let topic_len = message.topic.len() as u32;
                let data_len = u32::try_from(message.data.len()).unwrap_or(u32::MAX);
                let fits = topic_len <= topic_cap && data_len <= cap;
                let written = mem.write_u32(topic_len_out, topic_len).and_then(|()| mem.write_u32(len_out, data_len));
                if !fits || written.is_err() {
                    if let Some(sub) = ctx.subs.get_mut(&handle) {
                        sub.pending = Some(message);
                    }
                    return Err(written.err().unwrap_or(Status::BufferTooSmall));
                }
                let result =
                    mem.write(topic_buf, message.topic.as_bytes()).and_then(|()| mem.write(buf, &message.data));
                if result.is_err()
                    && let Some(sub) = ctx.subs.get_mut(&handle)
                {
                    sub.pending = Some(message);
                }
                result
            })
        },
    )?;
    linker.func_wrap(CORE_MODULE, "unsubscribe", move |mut caller: Caller<'_, T>, handle: u32| -> i32 {
        call(&mut caller, get, |_, ctx| if ctx.unsubscribe(handle) { Ok(()) } else { Err(Status::BadHandle) })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
