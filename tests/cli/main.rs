//! End-to-end tests of the `mortal` binary: the one integration-test binary, one module
//! per area.

mod bp_chip;
mod common;
mod cost;
mod device;
mod distill;
mod learners;
mod limits;
mod outside_substrate;
mod readme;
mod recurrent;
mod scenario;
mod train;
mod writers;
