//! slaprobe: a synthetic end-to-end SLA prober for Apache Kafka.
//!
//! The module tree follows the data's way: `config` → `canary` (codec) →
//! `kafka` (client adapters) and `probe` (produce, consume, match) →
//! `tracker` (outcomes) → `metrics` and `latency` (windows) → `http`
//! (exposition). `app` wires them for `slaprobe run`, `demo` for
//! `slaprobe demo`; `main.rs` is a thin CLI over this.
#![forbid(unsafe_code)]

pub mod alertmanager;
pub mod app;
pub mod canary;
pub mod config;
pub mod demo;
pub mod evaluator;
pub mod exposition;
pub mod http;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod probe;
pub mod rules;
pub mod sim;
pub mod slo;
pub mod template;
pub mod tracker;
