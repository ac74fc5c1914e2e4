//! Consumer-group lag of the pipelines' stages, judged the way Burrow does
//! ([`eval`]): why a pipeline is late or losing canaries.

pub mod eval;

pub use eval::{group_status, Observation, PartitionWindow, Status};
