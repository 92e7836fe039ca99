use super::*;
use lamina_host_abi::Status;
use lamina_seal::{SealTo, VolumeOptions};
use lamina_tee::sim::SimPlatform;
use lamina_types::ModuleHash;
use proptest::prelude::*;

struct Fixture {
    _dir: tempfile::TempDir,
    state: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let data = dir.path().join("kv");
    Fixture { _dir: dir, state, data }
}

fn store_with_quota(f: &Fixture, quota: u64) -> KvStore {
    let sim = SimPlatform::open(&f.state).expect("sim");
    let options = VolumeOptions { seal_to: SealTo::Module(ModuleHash::of(b"app")), quota, rollback_protection: true };
    KvStore::new(Volume::open(&f.data, &sim, &options).expect("volume"))
}

fn store(f: &Fixture) -> KvStore {
    store_with_quota(f, 64 << 20)
}

#[test]
fn values_persist_across_opens_and_buckets_are_apart() {
    let f = fixture();
    {
        let s = store(&f);
        let a = s.open("").expect("default bucket");
        let b = s.open("other").expect("bucket");
        s.set(&a, "greeting", b"hello").expect("set");
        s.set(&b, "greeting", b"bonjour").expect("set");
        s.set(&a, "path/with/slashes and spaces", b"ok").expect("any string is a key");
    }
    let s = store(&f);
    let a = s.open("default").expect("default bucket");
    let b = s.open("other").expect("bucket");
    assert_eq!(s.get(&a, "greeting").expect("get").as_deref(), Some(&b"hello"[..]));
    assert_eq!(s.get(&b, "greeting").expect("get").as_deref(), Some(&b"bonjour"[..]));
    assert_eq!(s.get(&a, "path/with/slashes and spaces").expect("get").as_deref(), Some(&b"ok"[..]));
    assert_eq!(s.get(&a, "missing").expect("get"), None);
    s.delete(&a, "greeting").expect("delete");
    s.delete(&a, "greeting").expect("deleting a missing key is fine");
    assert!(!s.exists(&a, "greeting").expect("exists"));
}

#[test]
fn no_key_or_value_is_visible_on_the_host() {
    let f = fixture();
    let s = store(&f);
    let b = s.open("secrets").expect("bucket");
    s.set(&b, "customer-4711", b"plaintext-marker").expect("set");
    drop(s);
    let objects = std::fs::read_dir(f.data.join("objects")).expect("objects").map(|e| e.expect("entry").path());
    let top = std::fs::read_dir(&f.data).expect("dir").map(|e| e.expect("entry").path()).filter(|p| p.is_file());
    for path in objects.chain(top) {
        let bytes = std::fs::read(path).expect("read");
        for needle in [&b"plaintext-marker"[..], b"customer-4711", hex::encode("customer-4711").as_bytes(), b"secrets"]
        {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{needle:?} on the host");
        }
    }
}

#[test]
fn prefix_listing_pages_in_byte_order() {
    let f = fixture();
    let s = store(&f);
    let b = s.open("b").expect("bucket");
    let pairs: Vec<(String, Vec<u8>)> = (0..25).map(|i| (format!("user:{i:02}"), vec![i])).collect();
    let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    s.set_many(&b, &refs).expect("set many");
    s.set(&b, "order:1", b"x").expect("set");
    let first = s.list_prefix(&b, "user:", None, 10).expect("page");
    assert_eq!(first.keys.first().map(String::as_str), Some("user:00"));
    assert_eq!(first.keys.len(), 10);
    let mut all = first.keys.clone();
    let mut next = first.next;
    while let Some(after) = next {
        let page = s.list_prefix(&b, "user:", Some(&after), 10).expect("page");
        all.extend(page.keys);
        next = page.next;
    }
    assert_eq!(all, pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    assert_eq!(s.list_prefix(&b, "order:", None, 0).expect("page").keys, vec!["order:1"]);
}

#[test]
fn compare_and_swap_and_increment_are_atomic_between_threads() {
    let f = fixture();
    let s = Arc::new(store(&f));
    let b = s.open("c").expect("bucket");
    assert!(s.compare_and_swap(&b, "lock", None, b"a").expect("cas"));
    assert!(!s.compare_and_swap(&b, "lock", None, b"b").expect("cas"), "only if missing");
    assert!(!s.compare_and_swap(&b, "lock", Some(b"x"), b"b").expect("cas"), "wrong expectation");
    assert!(s.compare_and_swap(&b, "lock", Some(b"a"), b"b").expect("cas"));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (s, b) = (s.clone(), b.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    s.increment(&b, "hits", 1).expect("increment");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(s.get(&b, "hits").expect("get").as_deref(), Some(&b"100"[..]));
    s.set(&b, "text", b"abc").expect("set");
    assert!(matches!(s.increment(&b, "text", 1), Err(KvError::NotANumber(_))));
    s.set(&b, "max", u64::MAX.to_string().as_bytes()).expect("set");
    assert!(matches!(s.increment(&b, "max", 1), Err(KvError::NotANumber(_))));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let f = fixture();
    let s = store_with_quota(&f, 64 << 10);
    assert!(matches!(s.open("../up"), Err(KvError::BadBucket(_))));
    assert!(matches!(s.open(&"x".repeat(65)), Err(KvError::BadBucket(_))));
    let b = s.open("q").expect("bucket");
    assert!(matches!(s.set(&b, "", b"v"), Err(KvError::BadKey(0))));
    assert!(matches!(s.get(&b, &"k".repeat(MAX_KEY + 1)), Err(KvError::BadKey(_))));
    let e = s.set(&b, "big", &vec![7u8; 100 << 10]).expect_err("over the quota");
    assert!(e.to_string().contains("quota"), "{e}");
    s.set(&b, "small", b"still works").expect("the store is usable after a refused write");
    assert_eq!(s.get(&b, "big").expect("get"), None, "a refused write leaves nothing");
    assert!(matches!(KvCtx::default().open("x"), Err(KvError::NoStore)));
}

#[test]
fn a_flipped_byte_is_an_integrity_error() {
    let f = fixture();
    {
        let s = store(&f);
        let b = s.open("t").expect("bucket");
        s.set(&b, "k", &[1u8; 3000]).expect("set");
    }
    let object = std::fs::read_dir(f.data.join("objects"))
        .expect("objects")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("a data object");
    let mut bytes = std::fs::read(&object).expect("read");
    bytes[40] ^= 1;
    std::fs::write(&object, bytes).expect("write");
    let s = store(&f);
    let b = s.open("t").expect("bucket");
    let e = s.get(&b, "k").expect_err("tampered");
    assert!(e.to_string().contains("integrity"), "{e}");
}

struct Host {
    kv: KvCtx,
}

#[test]
fn core_abi_round_trip() {
    let f = fixture();
    let engine = wasmtime::Engine::default();
    let wat = r#"(module
        (import "lamina:keyvalue" "open" (func $open (param i32 i32 i32) (result i32)))
        (import "lamina:keyvalue" "set" (func $set (param i32 i32 i32 i32 i32) (result i32)))
        (import "lamina:keyvalue" "get" (func $get (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "lamina:keyvalue" "compare_and_swap"
            (func $cas (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "bktkeyvalnew")
        (func (export "run") (result i32)
            (local $s i32)
            (local.set $s (call $open (i32.const 0) (i32.const 3) (i32.const 100)))
            (if (local.get $s) (then (return (local.get $s))))
            (local.set $s (call $set (i32.load (i32.const 100)) (i32.const 3) (i32.const 3) (i32.const 6) (i32.const 3)))
            (if (local.get $s) (then (return (local.get $s))))
            ;; expected "val": swaps to "new"
            (local.set $s (call $cas (i32.load (i32.const 100)) (i32.const 3) (i32.const 3) (i32.const 6) (i32.const 3)
                (i32.const 1) (i32.const 9) (i32.const 3) (i32.const 104)))
            (if (local.get $s) (then (return (local.get $s))))
            (if (i32.ne (i32.load (i32.const 104)) (i32.const 1)) (then (return (i32.const -2))))
            (call $get (i32.load (i32.const 100)) (i32.const 3) (i32.const 3) (i32.const 200) (i32.const 2) (i32.const 108)))
        (func (export "missing") (result i32)
            (call $get (i32.load (i32.const 100)) (i32.const 9) (i32.const 3) (i32.const 200) (i32.const 8) (i32.const 108)))
        (func (export "bad_handle") (result i32)
            (call $get (i32.const 77) (i32.const 3) (i32.const 3) (i32.const 200) (i32.const 8) (i32.const 108))))"#;
    let module = wasmtime::Module::new(&engine, wat).expect("valid");
    let mut linker = wasmtime::Linker::<Host>::new(&engine);
    add_to_module_linker(&mut linker, |h| &mut h.kv).expect("links");
    let mut store = wasmtime::Store::new(&engine, Host { kv: KvCtx::new(Some(Arc::new(self::store(&f)))) });
    let instance = linker.instantiate(&mut store, &module).expect("instantiates");
    let mut call = |name: &str| {
        instance.get_typed_func::<(), i32>(&mut store, name).expect("export").call(&mut store, ()).expect("no trap")
    };
    assert_eq!(call("run"), Status::BufferTooSmall.code(), "a 2-byte buffer for a 3-byte value");
    assert_eq!(call("missing"), Status::NotFound.code());
    assert_eq!(call("bad_handle"), Status::BadHandle.code());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec((0u8..4, "[a-c]{1,3}", proptest::collection::vec(any::<u8>(), 0..64)), 1..40)) {
        let f = fixture();
        let s = store(&f);
        let b = s.open("m").expect("bucket");
        let mut model = std::collections::BTreeMap::new();
        for (op, key, value) in ops {
            match op {
                0 => { s.set(&b, &key, &value).expect("set"); model.insert(key, value); }
                1 => { s.delete(&b, &key).expect("delete"); model.remove(&key); }
                2 => {
                    let expected = model.get(&key).cloned();
                    prop_assert!(s.compare_and_swap(&b, &key, expected.as_deref(), &value).expect("cas"));
                    model.insert(key, value);
                }
                _ => prop_assert_eq!(s.get(&b, &key).expect("get"), model.get(&key).cloned()),
            }
        }
        drop(s);
        let s = store(&f);
        let b = s.open("m").expect("bucket");
        let listed = s.list_prefix(&b, "", None, 0).expect("list").keys;
        prop_assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
    }
}
