//! Small helpers every layer shares and that know nothing of Kafka or
//! SLOs: how numbers, durations, times and URLs are shown to people
//! ([`format`]), and retry pacing ([`backoff`]). One concept, one place: the
//! plan, the status API, the generated rules and the Alertmanager pusher
//! all print through these.

pub mod backoff;
pub mod format;

pub use backoff::Backoff;
