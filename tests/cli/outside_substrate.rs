//! A substrate written outside the library (a wrapper that counts what it is asked to
//! do around the digital network) passes the library's conformance suite: the suite is
//! public (`mortal` feature `conformance`), so any new backend runs the same contract.

use std::sync::atomic::{AtomicUsize, Ordering};

use mortal::Result;
use mortal::linalg::{Mat, Precision};
use mortal::rng::Rng;
use mortal::substrate::conformance::{self, Tolerance};
use mortal::substrate::{DigitalNet, Ledger, Substrate, SubstrateState, Topology, Update};

static UPDATES: AtomicUsize = AtomicUsize::new(0);

/// The digital network behind a layer of bookkeeping, as another crate would write it.
struct Counted(DigitalNet);

impl Substrate for Counted {
    fn topology(&self) -> &Topology {
        self.0.topology()
    }

    fn forward(&mut self, l: usize, x: &Mat, r: &mut Mat, a: &mut Mat, n: &mut Rng) {
        self.0.forward(l, x, r, a, n);
    }

    fn transpose_read(&mut self, l: usize, d: &Mat, out: &mut Mat, n: &mut Rng) {
        self.0.transpose_read(l, d, out, n);
    }

    fn update(&mut self, l: usize, u: Update<'_>, n: &mut Rng) {
        UPDATES.fetch_add(1, Ordering::Relaxed);
        self.0.update(l, u, n);
    }

    fn program(&mut self, l: usize, w: &Mat, b: &[f32], n: &mut Rng) {
        self.0.program(l, w, b, n);
    }

    fn set_precision(&mut self, p: Precision) {
        self.0.set_precision(p);
    }

    fn precision(&self) -> Precision {
        self.0.precision()
    }

    fn save_state(&self) -> SubstrateState {
        self.0.save_state()
    }

    fn load_state(&mut self, s: &SubstrateState) -> Result<Option<String>> {
        self.0.load_state(s)
    }

    fn describe(&self) -> String {
        format!("counted {}", self.0.describe())
    }

    fn ledger(&self) -> &Ledger {
        self.0.ledger()
    }

    fn ledger_mut(&mut self) -> &mut Ledger {
        self.0.ledger_mut()
    }
}

#[test]
fn a_substrate_from_another_crate_passes_the_conformance_suite() {
    let make = |t: &Topology, seed: u64| -> Box<dyn Substrate> {
        Box::new(Counted(DigitalNet::new(t.clone(), seed)))
    };
    conformance::run_all(&make, Tolerance::EXACT);
    assert!(
        UPDATES.load(Ordering::Relaxed) > 0,
        "the suite drove the outside substrate's updates"
    );
}
