//! The machine-readable result of one benchmark.
//!
//! Every benchmark of the project (the criterion benches, the scale driver, the shell scripts
//! under `bench/`) prints its own human-readable report. When the evaluation harness runs it,
//! it also sets [`RECORDS_ENV`] to a directory, and the benchmark writes a [`Record`] there:
//! its suite name, the command that reproduces it, and its figures as [`Metric`]s with stable
//! identifiers that the harness's summary table refers to. [`QUICK_ENV`] asks for a brief run
//! (the harness's `--quick`, which CI uses so that the harness never rots).
//!
//! The shell scripts write the same JSON by hand; [`Record`] is its only definition.
//!
//! The criterion benches take their figures from criterion's own results: [`CriterionMedians`]
//! finds them where criterion 0.7 writes them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The directory a benchmark writes its [`Record`] into, when set.
pub const RECORDS_ENV: &str = "LAMINA_BENCH_RECORDS";

/// Set to `1` to ask a benchmark for a brief run whose figures are not meant to be read.
pub const QUICK_ENV: &str = "LAMINA_BENCH_QUICK";

/// Whether the harness asked for a brief run ([`QUICK_ENV`] is `1`).
pub fn quick() -> bool {
    std::env::var(QUICK_ENV).is_ok_and(|v| v == "1")
}

/// Criterion's warm-up in a brief run: the same for every criterion bench of the project.
pub const QUICK_WARM_UP: std::time::Duration = std::time::Duration::from_millis(100);

/// Criterion's measurement time in a brief run.
pub const QUICK_MEASUREMENT: std::time::Duration = std::time::Duration::from_millis(300);

/// Criterion's sample count in a brief run (its smallest).
pub const QUICK_SAMPLES: usize = 10;

/// Whether a bench binary runs as a benchmark (`cargo bench` passes `--bench`) rather than as
/// a test (`cargo test --benches`, which only checks that it runs): only then are its extra
/// measurements made and its record written.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A failure to write or read records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The file is not a record.
    #[error("{path} is not a benchmark record: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// A suite name that cannot be a file name.
    #[error("suite name `{0}` must be lowercase letters, digits and dashes")]
    SuiteName(String),
    /// The file is not criterion's `estimates.json`.
    #[error("{path} is not criterion's estimates: {source}")]
    Estimates {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// Criterion's estimates are older than this run: the benchmark did not run this time.
    #[error("{path} was written before this run (was the benchmark filtered out or skipped?)")]
    Stale {
        /// The file.
        path: PathBuf,
    },
}

/// One figure of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// A stable identifier within the suite (`sealed.256B.msgs_per_s`), what the summary refers to.
    pub id: String,
    /// What a reader sees (`sealed, 256 B`).
    pub label: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`ns`, `ms`, `s`, `msg/s`, `MiB/s`, `MiB`, `ratio`, `%`, `count`, `per s`).
    pub unit: String,
}

/// The result of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The suite's name (`sealed-messaging`): lowercase letters, digits and dashes; the file name.
    pub suite: String,
    /// A title for the report (`Sealed messaging across two nodes`).
    pub title: String,
    /// The command that reproduces it (`cargo bench -p lamina-messaging-nats --bench sealed`).
    pub command: String,
    /// Whether it was a brief run ([`quick`]).
    pub quick: bool,
    /// The figures, in the order a table shows them.
    pub metrics: Vec<Metric>,
    /// Remarks a reader needs (`rounds alternate sealed and plain`).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Record {
    /// Starts a record; `quick` is taken from the environment.
    pub fn new(suite: &str, title: &str, command: &str) -> Self {
        Self {
            suite: suite.to_owned(),
            title: title.to_owned(),
            command: command.to_owned(),
            quick: quick(),
            metrics: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn metric(&mut self, id: &str, label: &str, value: f64, unit: &str) -> &mut Self {
        self.metrics.push(Metric { id: id.to_owned(), label: label.to_owned(), value, unit: unit.to_owned() });
        self
    }

    /// Adds a remark.
    pub fn note(&mut self, note: &str) -> &mut Self {
        self.notes.push(note.to_owned());
        self
    }

    /// The figure with this identifier.
    pub fn get(&self, id: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.id == id)
    }

    /// Writes `<suite>.json` into `dir`, replacing an earlier one.
    ///
    /// # Errors
    /// [`Error::SuiteName`] for a suite name that is not a plain file name, [`Error::Io`] when
    /// the file cannot be written.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, Error> {
        if self.suite.is_empty()
            || !self.suite.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::SuiteName(self.suite.clone()));
        }
        let path = dir.join(format!("{}.json", self.suite));
        let io = |source| Error::Io { path: path.clone(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(io::Error::other(e)))?;
        fs::write(&path, json).map_err(io)?;
        Ok(path)
    }

    /// Writes the record into [`RECORDS_ENV`]'s directory when the harness set it.
    ///
    /// # Errors
    /// As [`Record::write_to`].
    pub fn write_if_requested(&self) -> Result<Option<PathBuf>, Error> {
        match std::env::var_os(RECORDS_ENV) {
            Some(dir) if !dir.is_empty() => self.write_to(Path::new(&dir)).map(Some),
            _ => Ok(None),
        }
    }

    /// Reads one record.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Format`].
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Format { path: path.to_owned(), source })
    }

    /// Reads every `*.json` record in a directory, sorted by suite.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Format`] for the first file that fails.
    pub fn read_dir(dir: &Path) -> Result<Vec<Self>, Error> {
        let io = |source| Error::Io { path: dir.to_owned(), source };
        let mut records = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                records.push(Self::read(&path)?);
            }
        }
        records.sort_by(|a, b| a.suite.cmp(&b.suite));
        Ok(records)
    }
}

/// Criterion 0.7's longest directory name for one part of a benchmark's id (`MAX_DIRECTORY_NAME_LEN`).
const CRITERION_NAME_MAX: usize = 64;

/// How much older than [`CriterionMedians::written_since`] a file may look: file systems stamp
/// files with a coarse clock (a few milliseconds on Linux, two seconds on FAT).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Criterion's output directory, chosen as criterion 0.7 chooses it (`default_output_directory`):
/// `CRITERION_HOME`; else `CARGO_TARGET_DIR/criterion`; else `criterion` in the target directory
/// that `$CARGO metadata` reports from the current directory (cargo sets `CARGO` for a bench);
/// else `target/criterion`. Like criterion, it is worked out once per process.
///
/// A bench that calls `Criterion::output_directory` writes elsewhere; use [`CriterionMedians::at`].
pub fn criterion_home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        if let Some(home) = std::env::var_os("CRITERION_HOME") {
            PathBuf::from(home)
        } else if let Some(target) = cargo_target_directory() {
            target.join("criterion")
        } else {
            PathBuf::from("target/criterion")
        }
    })
    .clone()
}

/// The cargo target directory, as criterion 0.7 finds it (`cargo_target_directory`).
fn cargo_target_directory() -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or_else(|| {
        let output = std::process::Command::new(std::env::var_os("CARGO")?)
            .args(["metadata", "--format-version", "1"])
            .output()
            .ok()?;
        serde_json::from_slice::<Metadata>(&output.stdout).ok().map(|m| m.target_directory)
    })
}

/// One part of a benchmark's id as criterion 0.7 names its directory (`make_filename_safe`):
/// `?"/\*<>:|^` become `_`, then the name is cut to 64 bytes on a character boundary (and on
/// Windows, trailing spaces are trimmed and letters lowercased).
fn criterion_safe_name(name: &str) -> String {
    let mut safe = name.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let mut end = safe.len().min(CRITERION_NAME_MAX);
    while !safe.is_char_boundary(end) {
        end -= 1;
    }
    safe.truncate(end);
    if cfg!(windows) { safe.trim_end().to_lowercase() } else { safe }
}

/// Criterion's median estimate, in nanoseconds, of one benchmark from criterion's latest run in
/// [`criterion_home`]; see [`CriterionMedians::median_ns`] for the arguments.
///
/// # Errors
/// As [`CriterionMedians::median_ns`].
pub fn criterion_median_ns(group: &str, function: Option<&str>, parameter: Option<&str>) -> Result<f64, Error> {
    CriterionMedians::new().median_ns(group, function, parameter)
}

/// Reads back the medians criterion wrote (`<home>/<group>/<function>/<parameter>/new/estimates.json`).
///
/// A bench makes one with [`CriterionMedians::new`] and [`CriterionMedians::written_since`]
/// before its first benchmark, so that a benchmark that did not run this time (filtered out on
/// the command line, or skipped) is an error rather than an old figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriterionMedians {
    home: PathBuf,
    since: Option<SystemTime>,
}

impl Default for CriterionMedians {
    fn default() -> Self {
        Self::new()
    }
}

impl CriterionMedians {
    /// Reads from [`criterion_home`], results of any age.
    pub fn new() -> Self {
        Self::at(criterion_home())
    }

    /// Reads from this criterion output directory, results of any age.
    pub fn at(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into(), since: None }
    }

    /// Accepts only results written at or after `since` (give it the time the run started).
    pub fn written_since(self, since: SystemTime) -> Self {
        Self { since: Some(since), ..self }
    }

    /// Where criterion 0.7 writes the latest estimates of a benchmark.
    ///
    /// `group` is the group's name (`Criterion::benchmark_group`), or the benchmark's name for
    /// `Criterion::bench_function`, which has neither `function` nor `parameter`. In a group,
    /// `bench_function("name", ..)` has the `function` `name`; `BenchmarkId::new(f, p)` has
    /// `function` `f` and `parameter` `p` (as `p` displays); `BenchmarkId::from_parameter(p)`
    /// has only the `parameter`. Names are given as in the bench; this makes them file names as
    /// criterion does. (Criterion adds `_2`, `_3` to a name that is used twice in one run; such
    /// benchmarks cannot be told apart here.)
    pub fn path(&self, group: &str, function: Option<&str>, parameter: Option<&str>) -> PathBuf {
        let mut path = self.home.join(criterion_safe_name(group));
        for part in [function, parameter].into_iter().flatten() {
            path.push(criterion_safe_name(part));
        }
        path.join("new").join("estimates.json")
    }

    /// Criterion's median estimate of a benchmark, in nanoseconds per iteration (its
    /// `median.point_estimate`); the arguments are those of [`CriterionMedians::path`].
    ///
    /// # Errors
    /// [`Error::Io`] when there are no estimates (the benchmark never ran here),
    /// [`Error::Stale`] when they were written before [`CriterionMedians::written_since`],
    /// [`Error::Estimates`] when the file is not criterion's.
    pub fn median_ns(&self, group: &str, function: Option<&str>, parameter: Option<&str>) -> Result<f64, Error> {
        #[derive(Deserialize)]
        struct Estimates {
            median: Estimate,
        }
        #[derive(Deserialize)]
        struct Estimate {
            point_estimate: f64,
        }
        let path = self.path(group, function, parameter);
        let io = |source| Error::Io { path: path.clone(), source };
        if let Some(since) = self.since {
            let written = fs::metadata(&path).and_then(|m| m.modified()).map_err(io)?;
            if written + CLOCK_SLACK < since {
                return Err(Error::Stale { path });
            }
        }
        let bytes = fs::read(&path).map_err(io)?;
        match serde_json::from_slice::<Estimates>(&bytes) {
            Ok(e) => Ok(e.median.point_estimate),
            Err(source) => Err(Error::Estimates { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Record::new("sealed-messaging", "Sealed messaging", "cargo bench");
        r.metric("sealed.256B", "sealed, 256 B", 327_000.0, "msg/s").note("side by side");
        let path = r.write_to(dir.path()).expect("write");
        assert_eq!(path, dir.path().join("sealed-messaging.json"));
        let back = Record::read_dir(dir.path()).expect("read");
        assert_eq!(back, vec![r.clone()]);
        assert_eq!(back[0].get("sealed.256B").map(|m| m.value), Some(327_000.0));
    }

    #[test]
    fn suite_names_that_are_not_plain_file_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "../x", "Upper", "a/b", "a.json"] {
            let r = Record::new(bad, "t", "c");
            assert!(matches!(r.write_to(dir.path()), Err(Error::SuiteName(_))), "{bad}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_record_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("x.json"), b"{\"suite\": 3}").expect("write");
        let err = Record::read_dir(dir.path()).expect_err("not a record");
        assert!(err.to_string().contains("is not a benchmark record"), "{err}");
    }

    /// The shape of criterion 0.7's `estimates.json`.
    fn estimates(median_ns: f64) -> String {
        let e = |v: f64| {
            format!(
                r#"{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{},"upper_bound":{}}},"point_estimate":{v},"standard_error":1.5}}"#,
                v * 0.9,
                v * 1.1
            )
        };
        format!(
            r#"{{"mean":{},"median":{},"median_abs_dev":{},"slope":null,"std_dev":{}}}"#,
            e(median_ns * 1.02),
            e(median_ns),
            e(3.0),
            e(7.0)
        )
    }

    fn fake(path: &Path, median_ns: f64) {
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, estimates(median_ns)).expect("write");
    }

    #[test]
    fn criterion_medians_are_read_where_criterion_writes_them() {
        let home = tempfile::tempdir().expect("tempdir");
        let medians = CriterionMedians::at(home.path());
        let grouped = home.path().join("instantiate_and_call/lamina_server_pooling/new/estimates.json");
        fake(&grouped, 5_431.25);
        assert_eq!(
            medians.median_ns("instantiate_and_call", Some("lamina_server_pooling"), None).expect("read"),
            5_431.25
        );
        // `Criterion::bench_function` is a group of its own; `BenchmarkId::new` adds a parameter.
        fake(&home.path().join("sim attest+verify/new/estimates.json"), 1e6);
        assert_eq!(medians.median_ns("sim attest+verify", None, None).expect("read"), 1e6);
        fake(&home.path().join("burst of 500/sealed/256 B/new/estimates.json"), 2.5e6);
        assert_eq!(medians.median_ns("burst of 500", Some("sealed"), Some("256 B")).expect("read"), 2.5e6);
    }

    #[test]
    fn names_become_file_names_as_criterion_makes_them() {
        let medians = CriterionMedians::at("/c");
        // Every character criterion replaces (report.rs, `make_filename_safe`); spaces stay.
        assert_eq!(criterion_safe_name("hello /world?*<>\"|:^\\"), "hello _world_________");
        let long = "a".repeat(70);
        let path = medians.path("g: a/b", Some(&long), Some("x^y"));
        assert_eq!(path, Path::new("/c/g_ a_b").join("a".repeat(64)).join("x_y/new/estimates.json"));
        // The cut falls on a character boundary: 63 bytes of `a`, then a two-byte `é` that would end at 65.
        assert_eq!(criterion_safe_name(&format!("{}é", "a".repeat(63))), "a".repeat(63));
    }

    #[test]
    fn missing_stale_and_foreign_estimates_are_errors() {
        let home = tempfile::tempdir().expect("tempdir");
        let medians = CriterionMedians::at(home.path());
        assert!(matches!(medians.median_ns("g", Some("absent"), None), Err(Error::Io { .. })));

        let path = medians.path("g", Some("f"), None);
        fake(&path, 10.0);
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(&path).expect("open").set_modified(hour_ago).expect("mtime");
        let this_run = medians.clone().written_since(SystemTime::now());
        assert!(matches!(this_run.median_ns("g", Some("f"), None), Err(Error::Stale { .. })));
        assert_eq!(medians.clone().written_since(hour_ago).median_ns("g", Some("f"), None).expect("fresh"), 10.0);

        fs::write(&path, b"{\"mean\": {}}").expect("write");
        let err = medians.median_ns("g", Some("f"), None).expect_err("not criterion's");
        assert!(err.to_string().contains("is not criterion's estimates"), "{err}");
    }

    /// bench/record.sh writes the JSON of the shell benchmarks by hand: it must read as a [`Record`].
    #[test]
    fn the_shell_scripts_records_read_as_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/record.sh");
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -euo pipefail
                source "$1"
                record_metric sealed.ms 'sealed, "total" \ µs' 114.25 ms
                record_metric ratio ratio 0 ratio
                record_metric missing 'no figure' nan ms
                record_note "tab	and
newline"
                write_record sealed-sqlite "SQLite on sealed storage" "ROUNDS=1 bench/sealed-sqlite.sh""#,
            )
            .arg("bash")
            .arg(&script)
            .env(RECORDS_ENV, dir.path())
            .env(QUICK_ENV, "1")
            .status()
            .expect("bash runs");
        assert!(status.success(), "{status}");
        let record = Record::read(&dir.path().join("sealed-sqlite.json")).expect("a record");
        let mut expected = Record::new("sealed-sqlite", "SQLite on sealed storage", "ROUNDS=1 bench/sealed-sqlite.sh");
        expected.quick = true;
        expected.metric("sealed.ms", "sealed, \"total\" \\ µs", 114.25, "ms").metric("ratio", "ratio", 0.0, "ratio");
        expected.note("missing: no figure (`nan`)").note("tab\tand\nnewline");
        assert_eq!(record, expected);
    }
}
