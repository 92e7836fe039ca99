//! `sqlite-notes`: an example guest that keeps notes in a SQLite database and benchmarks SQLite's
//! file I/O. It uses only plain WASI files (no Lamina host APIs), so the same database works in a
//! `--dir` mapping and, encrypted on the host, in a `--sealed-dir` one.
//!
//! ```text
//! sqlite-notes [--wal] add <DB> <TEXT>...
//! sqlite-notes [--wal] list <DB>
//! sqlite-notes [--wal] bench <DB> [--rows 10000] [--batch 100] [--reads 10000] [--seed 1]
//! ```
//!
//! `--wal` keeps the database in write-ahead-log mode (`<DB>-wal` beside it) instead of the
//! rollback journal.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OpenFlags, params};

const USAGE: &str = "usage:
  sqlite-notes [--wal] add <DB> <TEXT>...
  sqlite-notes [--wal] list <DB>
  sqlite-notes [--wal] bench <DB> [--rows 10000] [--batch 100] [--reads 10000] [--seed 1]";

/// SQLite's VFS without file locking. wasi-libc has no `fcntl` locks, and SQLite's WASI default
/// (`unix-dotfile`) leaves a stale `<DB>.lock` directory behind whenever the guest is killed
/// (timeout, fuel, trap), after which every open fails with "database is locked". One guest owns
/// its database, so no locking is needed.
const VFS: &str = "unix-none";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How the database keeps its transactions durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// A rollback journal (`<DB>-journal`), deleted at each commit.
    Rollback,
    /// A write-ahead log (`<DB>-wal`), checkpointed into the database.
    Wal,
}

fn run(args: &[String]) -> Result<()> {
    let (journal, args) = match args {
        [flag, rest @ ..] if flag == "--wal" => (Journal::Wal, rest),
        _ => (Journal::Rollback, args),
    };
    let (cmd, db, rest) = match args {
        [cmd, db, rest @ ..] => (cmd.as_str(), db.as_str(), rest),
        [cmd] if cmd == "-h" || cmd == "--help" => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => bail!("missing arguments\n{USAGE}"),
    };
    let result = match cmd {
        "add" => add(db, journal, rest),
        "list" if rest.is_empty() => list(db, journal),
        "list" => bail!("list takes no arguments after <DB>\n{USAGE}"),
        "bench" => bench(db, journal, &BenchOptions::parse(rest)?),
        _ => bail!("unknown command {cmd:?}\n{USAGE}"),
    };
    result.with_context(|| format!("{cmd} {db}"))
}

/// Turns a SQLite error into one that says what was being done, with SQLite's own text
/// ("disk I/O error", "database is locked"…) and its extended result code.
fn sql<T>(result: rusqlite::Result<T>, doing: &str) -> Result<T> {
    result.map_err(|e| match e {
        rusqlite::Error::SqliteFailure(code, Some(msg)) => {
            anyhow!("{doing}: {msg} (SQLite code {})", code.extended_code)
        }
        rusqlite::Error::SqliteFailure(code, None) => {
            anyhow!("{doing}: {code} (SQLite code {})", code.extended_code)
        }
        other => anyhow!("{doing}: {other}"),
    })
}

/// Opens (creating if missing) the database at `path`, in the journal mode asked for. WAL needs
/// shared memory for its index, which WASI does not have; in exclusive locking mode, set
/// before the first access, SQLite keeps that index in the heap instead.
fn open(path: &str, journal: Journal) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = sql(Connection::open_with_flags_and_vfs(path, flags, VFS), "opening the database")?;
    // Exclusive: also keeps the page cache across transactions instead of re-reading the
    // header before each one.
    sql(conn.pragma_update(None, "locking_mode", "EXCLUSIVE"), "setting locking_mode")?;
    let want = match journal {
        Journal::Rollback => "delete",
        Journal::Wal => "wal",
    };
    let mode: String =
        sql(conn.pragma_update_and_check(None, "journal_mode", want, |r| r.get(0)), "setting journal_mode")?;
    if !mode.eq_ignore_ascii_case(want) {
        bail!("setting journal_mode to {want}: SQLite kept {mode:?}");
    }
    // Sorts and statement journals in memory: a guest usually has no writable temporary directory.
    sql(conn.pragma_update(None, "temp_store", "MEMORY"), "setting temp_store")?;
    Ok(conn)
}

fn add(path: &str, journal: Journal, texts: &[String]) -> Result<()> {
    if texts.is_empty() {
        bail!("nothing to add\n{USAGE}");
    }
    let mut conn = open(path, journal)?;
    let tx = sql(conn.transaction(), "beginning a transaction")?;
    sql(
        tx.execute("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)", []),
        "creating table notes",
    )?;
    {
        let mut insert = sql(tx.prepare("INSERT INTO notes(body) VALUES (?1)"), "preparing the insert")?;
        for text in texts {
            sql(insert.execute(params![text]), "inserting a note")?;
        }
    }
    sql(tx.commit(), "committing")?;
    sql(conn.close().map_err(|(_, e)| e), "closing the database")?;
    println!("added {} notes", texts.len());
    Ok(())
}

fn list(path: &str, journal: Journal) -> Result<()> {
    let conn = open(path, journal)?;
    sql(
        conn.execute("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)", []),
        "creating table notes",
    )?;
    let mut count = 0u64;
    {
        let mut query = sql(conn.prepare("SELECT id, body FROM notes ORDER BY id"), "preparing the query")?;
        let rows = sql(query.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))), "reading notes")?;
        for row in rows {
            let (id, body) = sql(row, "reading a note")?;
            println!("{id}: {body}");
            count += 1;
        }
    }
    sql(conn.close().map_err(|(_, e)| e), "closing the database")?;
    println!("{count} notes");
    Ok(())
}

struct BenchOptions {
    rows: u64,
    batch: u64,
    reads: u64,
    seed: u64,
}

impl BenchOptions {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = BenchOptions { rows: 10_000, batch: 100, reads: 10_000, seed: 1 };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let slot = match flag.as_str() {
                "--rows" => &mut o.rows,
                "--batch" => &mut o.batch,
                "--reads" => &mut o.reads,
                "--seed" => &mut o.seed,
                _ => bail!("unknown bench option {flag:?}\n{USAGE}"),
            };
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            *slot = value.parse().with_context(|| format!("{flag} {value:?}: not a non-negative integer"))?;
        }
        if o.rows == 0 || o.batch == 0 {
            bail!("--rows and --batch must be at least 1");
        }
        if o.rows > i64::MAX as u64 {
            bail!("--rows is too large");
        }
        Ok(o)
    }
}

/// SplitMix64: a tiny deterministic generator, so every run reads the same keys.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The value stored under key `k`: the marker `lamina-secret-row-<k>`, padded to 100 bytes with
/// letters that depend only on `k` (so a plaintext database on the host is easy to recognise).
fn value_for(k: u64) -> String {
    let mut v = format!("lamina-secret-row-{k}:");
    let mut g = SplitMix64(k);
    while v.len() < 100 {
        v.push(char::from(b'a' + (g.next() % 26) as u8));
    }
    v
}

fn bench(path: &str, journal: Journal, o: &BenchOptions) -> Result<()> {
    let mut conn = open(path, journal)?;
    sql(
        conn.execute_batch("DROP TABLE IF EXISTS kv; CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)"),
        "creating table kv",
    )?;

    let start = Instant::now();
    let mut k = 1u64;
    while k <= o.rows {
        let tx = sql(conn.transaction(), "beginning a transaction")?;
        {
            let mut insert = sql(tx.prepare_cached("INSERT INTO kv(k, v) VALUES (?1, ?2)"), "preparing the insert")?;
            let end = o.rows.min(k.saturating_add(o.batch - 1));
            for key in k..=end {
                sql(insert.execute(params![key as i64, value_for(key)]), "inserting a row")?;
            }
            k = end + 1;
        }
        sql(tx.commit(), "committing a batch")?;
    }
    let insert_ms = start.elapsed().as_secs_f64() * 1e3;

    let mut rng = SplitMix64(o.seed);
    let start = Instant::now();
    {
        let mut select = sql(conn.prepare("SELECT v FROM kv WHERE k = ?1"), "preparing the read")?;
        for _ in 0..o.reads {
            let key = 1 + rng.next() % o.rows;
            let v: String = sql(select.query_row(params![key as i64], |r| r.get(0)), "reading a row")?;
            if v != value_for(key) {
                bail!("row {key} holds {v:?}, not what was written");
            }
        }
    }
    let read_ms = start.elapsed().as_secs_f64() * 1e3;
    sql(conn.close().map_err(|(_, e)| e), "closing the database")?;

    println!("{{\"rows\":{},\"reads\":{},\"insert_ms\":{insert_ms:.3},\"read_ms\":{read_ms:.3}}}", o.rows, o.reads);
    Ok(())
}
