//! Consuming and matching: where a probe finds its canaries again.
//!
//! Every output partition is read by explicit assignment through the
//! cluster's shared consumer ([`fetcher`]), which hands each record to the
//! outputs (routes) reading its partition; each [`route`] classifies it
//! with its output's matcher and hands the probe's own canaries to the
//! probe's accounting ([`crate::outcome`]). An [`Output`] follows its
//! topic's partitions and assigns new ones, resuming from saved offsets
//! after a restart.
//!
//! Files depend on each other in this order only: `route` → `fetcher` →
//! `output`.

pub(crate) mod fetcher;
mod output;
mod route;

pub(crate) use fetcher::Fetcher;
pub(crate) use output::Output;
