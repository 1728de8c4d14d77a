//! # mortal
//!
//! A simulator of *mortal computation*: Forward-Forward learning (Hinton 2022) in situ on
//! simulated analog chips whose exact behaviour is unknown and different for every
//! instance, compared with backprop, with distillation between chips.
//!
//! The learners ([`learn`]) drive a [`substrate::Substrate`] the way they would drive a
//! physical array: apply inputs, measure activities, request updates.

pub mod data;
pub mod error;
pub mod linalg;
pub mod rng;

pub use data::{Dataset, DatasetKind, Splits};
pub use error::{Error, Result};
pub use linalg::Mat;
pub mod substrate;
pub use substrate::{Substrate, Topology};
pub mod cost;
pub mod fsutil;
pub mod learn;
pub mod progress;
pub mod resources;
pub mod scenario;
pub mod tensor;
pub mod train;
