//! Learning algorithms. Every learner drives a [`crate::substrate::Substrate`] and never
//! looks inside it.

pub mod backprop;
pub mod distill;
pub mod ff;
pub mod host;
pub mod optim;

pub use backprop::{BpConfig, BpLearner};
pub use ff::{FfConfig, FfLearner};
pub use optim::{OptimizerConfig, Schedule};
