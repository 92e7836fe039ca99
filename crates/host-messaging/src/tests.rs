use super::*;
use proptest::prelude::*;

fn ctx(bus: &LocalBus) -> MessagingCtx {
    MessagingCtx::new(Some(Arc::new(bus.clone())))
}

fn msg(topic: &str, data: &[u8]) -> Message {
    Message { topic: topic.into(), data: data.into(), ..Message::default() }
}

#[test]
fn subscribers_get_matching_messages_in_order() {
    let bus = LocalBus::new();
    let mut a = ctx(&bus);
    let b = ctx(&bus);
    let all = a.subscribe("sensors.>").expect("subscribes");
    let kitchen = a.subscribe("sensors.kitchen").expect("subscribes");
    for i in 0..3u8 {
        b.send(msg("sensors.kitchen", &[i])).expect("sends");
    }
    b.send(msg("sensors.hall", b"h")).expect("sends");
    b.send(msg("other", b"x")).expect("sends");
    let got: Vec<Vec<u8>> =
        std::iter::from_fn(|| a.receive(all, Duration::ZERO).and_then(|r| r.ok()).flatten().map(|m| m.data)).collect();
    assert_eq!(got, vec![vec![0], vec![1], vec![2], b"h".to_vec()]);
    let got: Vec<Vec<u8>> =
        std::iter::from_fn(|| a.receive(kitchen, Duration::ZERO).and_then(|r| r.ok()).flatten().map(|m| m.data))
            .collect();
    assert_eq!(got.len(), 3);
}

#[test]
fn receive_waits_for_a_message_from_another_thread() {
    let bus = LocalBus::new();
    let mut sub = ctx(&bus);
    let h = sub.subscribe("t").expect("subscribes");
    let publisher = ctx(&bus);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        publisher.send(msg("t", b"late")).expect("sends");
    });
    let got = sub.receive(h, Duration::from_secs(10)).expect("open").expect("no error");
    assert_eq!(got.map(|m| m.data), Some(b"late".to_vec()));
    t.join().expect("publisher");
    assert_eq!(sub.receive(h, Duration::from_millis(1)).expect("open"), Ok(None));
}

#[test]
fn a_full_queue_drops_and_counts() {
    let bus = LocalBus::new();
    let mut sub = ctx(&bus);
    let h = sub.subscribe("t").expect("subscribes");
    for _ in 0..QUEUE_DEPTH + 5 {
        sub.send(msg("t", b".")).expect("never blocks");
    }
    assert_eq!(sub.dropped(h), Some(5));
}

#[test]
fn headers_count_against_the_limits() {
    let bus = LocalBus::new();
    let mut sub = ctx(&bus);
    let h = sub.subscribe("t").expect("subscribes");
    let heavy = Message { metadata: vec![("k".into(), "v".repeat(MAX_PAYLOAD))], ..msg("t", b"") };
    assert!(matches!(sub.send(heavy), Err(MessagingError::PayloadTooLarge(_))));
    // A queue holds at most QUEUE_BYTES: 1 MiB messages beyond that are dropped and counted.
    let big = vec![0u8; MAX_PAYLOAD - 16];
    for _ in 0..6 {
        sub.send(msg("t", &big)).expect("never blocks");
    }
    assert_eq!(sub.dropped(h), Some(6 - (QUEUE_BYTES / MAX_PAYLOAD) as u64));
}

#[test]
fn bad_input_is_an_error() {
    let bus = LocalBus::new();
    let mut c = ctx(&bus);
    assert!(matches!(c.send(msg("a.*", b"")), Err(MessagingError::InvalidTopic(_))));
    assert!(matches!(c.subscribe("a..b"), Err(MessagingError::InvalidTopic(_))));
    let big = vec![0u8; MAX_PAYLOAD + 1];
    let too_big = msg("t", &big);
    assert_eq!(c.send(too_big.clone()), Err(MessagingError::PayloadTooLarge(too_big.size() as u64)));
    assert!(c.receive(99, Duration::ZERO).is_none());
    let mut none = MessagingCtx::default();
    assert!(matches!(none.subscribe("t"), Err(MessagingError::Unavailable(_))));
}

#[test]
fn the_deadline_bounds_a_wait() {
    let bus = LocalBus::new();
    let mut sub = ctx(&bus);
    let h = sub.subscribe("t").expect("subscribes");
    sub.set_deadline(Some(Instant::now()));
    let started = Instant::now();
    assert_eq!(sub.receive(h, Duration::from_secs(30)).expect("open"), Ok(None));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn dropping_a_subscription_unsubscribes() {
    let bus = LocalBus::new();
    let mut sub = ctx(&bus);
    let h = sub.subscribe("t").expect("subscribes");
    assert!(sub.unsubscribe(h));
    sub.send(msg("t", b"x")).expect("sends");
    assert_eq!(bus.subscriber_count(), 0);
}

struct Host {
    msg: MessagingCtx,
}

#[test]
fn core_abi_keeps_a_message_when_the_buffer_is_short() {
    let engine = wasmtime::Engine::default();
    let wat = r#"(module
        (import "lamina:messaging" "publish" (func $pub (param i32 i32 i32 i32) (result i32)))
        (import "lamina:messaging" "subscribe" (func $sub (param i32 i32 i32) (result i32)))
        (import "lamina:messaging" "receive" (func $recv (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "news.tophello world")
        (func (export "short") (result i32)
            (drop (call $sub (i32.const 0) (i32.const 8) (i32.const 100)))
            (drop (call $pub (i32.const 0) (i32.const 8) (i32.const 8) (i32.const 11)))
            (call $recv (i32.load (i32.const 100)) (i32.const 0) (i32.const 200) (i32.const 64) (i32.const 104)
                (i32.const 300) (i32.const 4) (i32.const 108)))
        (func (export "again") (result i32)
            (call $recv (i32.load (i32.const 100)) (i32.const 0) (i32.const 200) (i32.const 64) (i32.const 104)
                (i32.const 300) (i32.const 64) (i32.const 108)))
        (func (export "len") (result i32) (i32.load (i32.const 108))))"#;
    let module = wasmtime::Module::new(&engine, wat).expect("valid");
    let mut linker = wasmtime::Linker::<Host>::new(&engine);
    add_to_module_linker(&mut linker, |h| &mut h.msg).expect("links");
    let mut store = wasmtime::Store::new(&engine, Host { msg: ctx(&LocalBus::new()) });
    let instance = linker.instantiate(&mut store, &module).expect("instantiates");
    let mut f = |name: &str| {
        instance.get_typed_func::<(), i32>(&mut store, name).expect("export").call(&mut store, ()).expect("no trap")
    };
    assert_eq!(f("short"), Status::BufferTooSmall.code());
    assert_eq!(f("len"), 11);
    assert_eq!(f("again"), Status::Ok.code());
    assert_eq!(f("again"), Status::Timeout.code());
}

proptest! {
    #[test]
    fn parsing_arbitrary_patterns_never_panics(text in "\\PC{0,40}", topic in "[a-c.*>]{0,12}") {
        if let Ok(p) = Pattern::parse(&text) {
            let _ = p.matches(&topic);
        }
        let _ = check_topic(&text);
    }
}

/// A token of a small alphabet, so that generated patterns and topics often meet.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned())]
}

fn pattern_text() -> impl Strategy<Value = String> {
    (proptest::collection::vec(prop_oneof![3 => token(), 1 => Just("*".to_owned())], 0..4), any::<bool>())
        .prop_filter_map("a pattern has a token", |(mut tokens, tail)| {
            if tail {
                tokens.push(">".into());
            }
            (!tokens.is_empty()).then(|| tokens.join("."))
        })
}

proptest! {
    /// `covers` is what scoping relies on: a subscription a workload's pattern covers never
    /// receives a topic that pattern does not match.
    #[test]
    fn a_covered_pattern_matches_only_topics_the_covering_one_matches(
        outer in pattern_text(),
        inner in pattern_text(),
        topic in proptest::collection::vec(token(), 1..6),
    ) {
        let (outer, inner) = (Pattern::parse(&outer).expect("valid"), Pattern::parse(&inner).expect("valid"));
        let topic = topic.join(".");
        if outer.covers(&inner) && inner.matches(&topic) {
            prop_assert!(outer.matches(&topic), "{outer:?} covers {inner:?}, which matches {topic}");
        }
        prop_assert!(outer.covers(&outer));
        prop_assert_eq!(Pattern::parse(&outer.subject()).expect("round trip"), outer);
    }
}
