//! Figures drawn from result files only: a scenario's (`mortal run`, `mortal plot`), a
//! distillation sweep's and a distillation's training curves.

pub mod distill_epochs;
pub mod distill_sweep;
pub mod scenario;

pub use scenario::draw;
