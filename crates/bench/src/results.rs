//! Everything one run measured: what `--out DIR/results.json` holds and the report is made from.

use std::path::Path;

use anyhow::Context as _;
use lamina_bench_record::Record;
use serde::{Deserialize, Serialize};

use crate::compute::Compute;
use crate::machine::Machine;
use crate::startup::Startup;
use crate::suites::Failure;

/// The format's version.
pub(crate) const SCHEMA: u32 = 1;

/// One run's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    pub(crate) schema: u32,
    /// A brief run (`--quick`): figures not meant to be read.
    pub(crate) quick: bool,
    /// When the run started (RFC 3339, UTC).
    pub(crate) started: String,
    /// How long it took, in minutes.
    pub(crate) minutes: f64,
    pub(crate) machine: Machine,
    pub(crate) compute: Option<Compute>,
    pub(crate) startup: Option<Startup>,
    /// The other benchmarks' records, by suite name.
    pub(crate) records: Vec<Record>,
    /// Benchmarks that did not produce a record.
    pub(crate) failures: Vec<Failure>,
}

impl Results {
    /// Reads results written by an earlier run.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let results: Self =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a results file", path.display()))?;
        anyhow::ensure!(
            results.schema == SCHEMA,
            "{} has results format {}, this harness reads {SCHEMA}: run bench/run.sh again",
            path.display(),
            results.schema
        );
        Ok(results)
    }

    /// Writes the results as pretty JSON.
    pub(crate) fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self).context("encoding results")?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The record of a suite.
    pub(crate) fn record(&self, suite: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.suite == suite)
    }

    /// A figure of a suite's record.
    pub(crate) fn metric(&self, suite: &str, id: &str) -> Option<f64> {
        self.record(suite)?.get(id).map(|m| m.value)
    }

    /// Takes from `earlier` what this run did not measure (a run with `--only`), so the report
    /// stays whole. Parts taken over keep their own figures; the machine is this run's.
    pub(crate) fn fill_from(&mut self, earlier: Results) {
        if self.compute.is_none() {
            self.compute = earlier.compute;
        }
        if self.startup.is_none() {
            self.startup = earlier.startup;
        }
        for record in earlier.records {
            let failed_now = self.failures.iter().any(|f| f.suite == record.suite);
            if self.record(&record.suite).is_none() && !failed_now {
                self.records.push(record);
            }
        }
        self.records.sort_by(|a, b| a.suite.cmp(&b.suite));
    }
}
