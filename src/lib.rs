//! slaprobe: a synthetic end-to-end SLA prober for Apache Kafka.
//!
//! The module tree follows the data's way; each module depends only on
//! modules above it in this list (ARCHITECTURE.md has the invariants):
//!
//! - [`util`]: formatting of numbers, durations, times and URLs; backoff.
//! - [`canary`]: the canary codec (id, headers, payloads), the matcher
//!   that finds an id in any record, payload templates.
//! - [`config`]: files in, a validated [`config::Config`] (or every error,
//!   each at file:line:column) out.
//! - [`kafka`]: thin rdkafka adapters: the one place clients are made,
//!   metadata, topic management, error classes, consumer groups.
//! - [`metrics`]: SLIs and latency: the metric families and per-probe
//!   handles, HDR latency windows, storage and text exposition, request
//!   counts.
//! - [`outcome`]: what became of each canary (the tracker, pure) and what
//!   that does to the metrics; a probe's accounting, the journal,
//!   readiness.
//! - [`status`]: the typed read-models of the status API and page.
//! - [`produce`]: the input topic, the ticker, payloads, delivery reports.
//! - [`consume`]: the shared consumer, routes that match records, outputs
//!   that follow their partitions.
//! - [`probe`]: a configured probe built from the stages above and run;
//!   the clients its cluster's probes share.
//! - [`slo`]: SLO windows and burn-rate tiers, the evaluator, the alert it
//!   raises, the Alertmanager pusher.
//! - [`lag`]: consumer groups read without joining, judged by Burrow's
//!   rules; the evaluation is pure.
//! - [`state`]: restart-safe accounting: the versioned file format and a
//!   pure restore, the locked `state_dir` and the saver.
//! - [`brokers`]: connection checks of every broker on every listener
//!   (TCP, TLS, ApiVersions, SASL), certificates' expiry; the brokers
//!   known kept in `state_dir`.
//! - [`actions`]: remediation: commands and webhooks run on incidents of
//!   the watched consumer groups (the rules are pure), escalation.
//! - [`serve`]: HTTP: `/metrics`, health, the status API and page.
//! - [`generate`]: what is generated from a config: the plan, Prometheus
//!   rules, the Alertmanager example, the Grafana dashboard.
//! - [`report`]: the SLA report, from Prometheus' history or slaprobe's
//!   own SLO windows; HTML and Markdown.
//! - [`app`]: wires the above for `slaprobe run`.
//! - [`demo`]: `slaprobe demo`: the in-process cluster, the simulated
//!   pipeline, the fault script. Not used by production code.
//!
//! `main.rs` is a thin CLI over this.
// The librdkafka calls rdkafka does not wrap live in the `rdkafka-admin-ext`
// crate, behind a safe API.
#![forbid(unsafe_code)]

pub mod util;

pub mod canary;
pub mod config;
pub mod kafka;
pub mod metrics;

pub mod outcome;
pub mod status;

pub mod consume;
pub mod produce;

pub mod probe;

pub mod lag;
pub mod slo;
pub mod state;

pub mod brokers;

pub mod actions;

pub mod serve;

pub mod generate;

pub mod report;

#[cfg(any(test, feature = "fuzzing"))]
pub mod props;

pub mod app;
pub mod demo;
