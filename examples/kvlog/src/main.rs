//! A log-structured key-value store (rusty-leveldb: LevelDB's write-ahead log, sorted tables and
//! levelled compaction) driven from the command line, for the sealed-directory tests. Keys are
//! `key-NNNNNNNN`, each value derived from its key's number, so a check needs nothing stored
//! beside the store.
//!
//! ```text
//! kvlog put DIR N [FIRST]    write keys FIRST.. (FIRST+N-1) (FIRST 1 by default), then flush
//! kvlog delete DIR EVERY     delete the keys whose number is a multiple of EVERY, then flush
//! kvlog compact DIR          compact every level
//! kvlog check DIR N [EVERY]  the store holds exactly keys 1..=N (less multiples of EVERY),
//!                            each with its value, found by a scan and by a lookup of each
//! kvlog recovered DIR        the store holds keys 1..=n for some n, each with its value: what a
//!                            writer killed mid-way leaves; prints n
//! kvlog files DIR            the store's file names, sorted
//! ```
//!
//! Lookups go through an iterator's seek rather than `DB::get`: rusty-leveldb 4.0.2's `get`
//! can miss a live key after deletes until the next compaction (its issue #58).

mod env;

use std::process::ExitCode;
use std::rc::Rc;

use rusty_leveldb::{DB, LdbIterator, Options};

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn number(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key).ok()?.strip_prefix("key-")?.parse().ok()
}

/// About 100 bytes from the key's number (a SplitMix64 stream).
fn value(i: u64) -> Vec<u8> {
    let mut out = format!("value-{i:08}-");
    let mut state = i;
    for _ in 0..5 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out.into_bytes()
}

fn open(dir: &str) -> Result<DB, String> {
    let options = Options {
        env: Rc::new(Box::new(env::StdFs::default())),
        create_if_missing: true,
        // Small, so that a few thousand keys make several tables and compactions.
        write_buffer_size: 128 * 1024,
        ..Options::default()
    };
    DB::open(dir, options).map_err(|e| format!("opening the store in {dir}: {e}"))
}

/// Every entry, in key order, each checked against its key's value.
fn scan(db: &mut DB) -> Result<Vec<u64>, String> {
    let mut it = db.new_iter().map_err(|e| format!("iterating: {e}"))?;
    let mut numbers = Vec::new();
    while let Some((k, v)) = it.next() {
        let i = number(&k).ok_or_else(|| format!("a stray key {:?}", String::from_utf8_lossy(&k)))?;
        if v != value(i) {
            return Err(format!("key {i} holds the wrong value"));
        }
        numbers.push(i);
    }
    Ok(numbers)
}

fn arg(args: &[String], n: usize) -> Result<u64, String> {
    let text = args.get(n).ok_or("a number is missing")?;
    text.parse().map_err(|_| format!("not a number: {text}"))
}

fn run(args: &[String]) -> Result<String, String> {
    let (Some(command), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: kvlog put|delete|compact|check|recovered|files DIR ...".into());
    };
    let mut db = open(dir)?;
    let said = match command.as_str() {
        "put" => {
            let n = arg(args, 3)?;
            let first = if args.len() > 4 { arg(args, 4)? } else { 1 };
            for i in first..first + n {
                db.put(&key(i), &value(i)).map_err(|e| format!("put {i}: {e}"))?;
            }
            db.flush().map_err(|e| format!("flush: {e}"))?;
            format!("put {n}")
        }
        "delete" => {
            let every = arg(args, 3)?.max(1);
            let doomed: Vec<u64> = scan(&mut db)?.into_iter().filter(|i| i.is_multiple_of(every)).collect();
            for i in &doomed {
                db.delete(&key(*i)).map_err(|e| format!("delete {i}: {e}"))?;
            }
            db.flush().map_err(|e| format!("flush: {e}"))?;
            format!("deleted {}", doomed.len())
        }
        "compact" => {
            db.compact_range(&key(0), &key(u64::MAX / 2)).map_err(|e| format!("compact: {e}"))?;
            "compacted".into()
        }
        "check" => {
            let n = arg(args, 3)?;
            let every = if args.len() > 4 { arg(args, 4)? } else { 0 };
            let live = |i: &u64| every == 0 || !i.is_multiple_of(every);
            let expected: Vec<u64> = (1..=n).filter(live).collect();
            let found = scan(&mut db)?;
            if found != expected {
                return Err(format!("the scan found {} keys where {} were expected", found.len(), expected.len()));
            }
            let mut it = db.new_iter().map_err(|e| format!("iterating: {e}"))?;
            for i in 1..=n {
                it.seek(&key(i));
                let hit = it.current().is_some_and(|(k, v)| k == key(i) && v == value(i));
                if hit != live(&i) {
                    return Err(format!("looking up key {i} found {}", if hit { "it" } else { "nothing" }));
                }
            }
            format!("ok: {} keys", expected.len())
        }
        "recovered" => {
            let found = scan(&mut db)?;
            if found.iter().enumerate().any(|(n, i)| *i != n as u64 + 1) {
                return Err("the keys are not 1..n: a write was lost out of order".into());
            }
            format!("recovered {}", found.len())
        }
        "files" => {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| format!("listing {dir}: {e}"))?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("listing {dir}: {e}"))?;
            names.sort();
            names.join(" ")
        }
        other => return Err(format!("unknown command {other}")),
    };
    db.close().map_err(|e| format!("close: {e}"))?;
    Ok(said)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvlog: {e}");
            ExitCode::FAILURE
        }
    }
}
