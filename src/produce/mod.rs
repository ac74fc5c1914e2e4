//! Producing canaries: the first stage of a canary's way.
//!
//! A probe's [`Input`] waits for its input topic (creating it with
//! `topic_management.create`), follows its partitions and leaders, and
//! runs the [`ticker`] that sends one canary per partition per interval,
//! round-robin. Each canary is registered with the probe's accounting
//! ([`crate::outcome`]) before it is produced, rendered from its
//! [`payload`] and handed to the cluster's producer, whose delivery
//! reports go back to the probe that sent it ([`delivery`]).
//!
//! Files depend on each other in this order only: `payload`, `delivery`
//! → `ticker` → `input`.

pub(crate) mod delivery;
mod input;
pub(crate) mod payload;
mod ticker;

pub(crate) use delivery::ProducerSlot;
pub(crate) use input::Input;
pub(crate) use payload::Payload;
