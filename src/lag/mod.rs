//! Consumer-group lag of the pipelines' stages, judged the way Burrow does:
//! why a pipeline is late or losing canaries.
//!
//! - [`eval`]: Burrow's rules over a partition's window of reads (pure);
//! - [`timelag`]: lag in seconds from the watermarks read (pure);
//! - [`watch`]: one watch's groups, partitions, series cap and views (pure);
//! - [`run`]: the reader clients and the tasks that read every interval.

pub mod eval;
pub mod run;
pub mod timelag;
pub mod watch;

pub use eval::{group_status, Observation, PartitionWindow, Status};
pub use run::{Lag, LagError};
