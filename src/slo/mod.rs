//! SLOs: the window arithmetic and burn-rate tiers ([`windows`], pure, time
//! passed in), the burn-rate alert every path raises ([`alert`]), the
//! in-process [`evaluator`] that feeds both from the SLI counters, and the
//! [`alertmanager`] pusher that delivers its alerts; which broker a
//! heartbeat's burn comes from ([`attribution`]).

pub mod alert;
pub mod alertmanager;
pub mod attribution;
pub mod evaluator;
pub mod windows;

pub use windows::*;
