//! slaprobe: a synthetic end-to-end SLA prober for Apache Kafka.
//!
//! The module tree follows the data's way; each module depends only on
//! modules above it in this list (ARCHITECTURE.md has the invariants):
//!
//! - [`util`]: formatting of numbers, durations, times and URLs; backoff.
//! - [`yaml`]: a YAML node tree with positions, and its serde deserializer.
//! - [`canary`]: the canary codec (id, headers, payloads), the matcher
//!   that finds an id in any record, payload templates.
//! - [`config`]: files in, a validated [`config::Config`] (or every error,
//!   each at file:line:column) out.
//! - [`kafka`]: thin rdkafka adapters: client settings, metadata, topic
//!   management, error classes.
//! - [`metrics`]: SLIs and latency: the metric families and per-probe
//!   handles, HDR latency windows, storage and text exposition.
//! - [`probe`]: produce, consume, match and track canaries into outcomes.
//! - [`slo`]: SLO windows and burn-rate tiers, the evaluator, the alert it
//!   raises, the Alertmanager pusher.
//! - [`state`]: restart-safe accounting: the locked `state_dir` and its
//!   atomically written state file.
//! - [`lag`]: consumer groups read without joining, judged by Burrow's
//!   rules; the evaluation is pure.
//! - [`serve`]: HTTP: `/metrics`, health, the status API and page.
//! - [`generate`]: what is generated from a config: the plan, Prometheus
//!   rules, the Alertmanager example, the Grafana dashboard.
//! - [`app`]: wires the above for `slaprobe run`.
//! - [`demo`]: `slaprobe demo`: the in-process cluster, the simulated
//!   pipeline, the fault script. Not used by production code.
//!
//! `main.rs` is a thin CLI over this.
// No unsafe code but one audited module (`kafka::groups`: a librdkafka call
// rdkafka does not wrap).
#![deny(unsafe_code)]

pub mod util;
pub mod yaml;

pub mod canary;
pub mod config;
pub mod kafka;
pub mod lag;
pub mod metrics;
pub mod probe;
pub mod slo;
pub mod state;

pub mod serve;

pub mod generate;

#[cfg(any(test, feature = "fuzzing"))]
pub mod props;

pub mod app;
pub mod demo;
