//! Where a training step's time goes: a substrate wrapper that times every call a learner
//! makes through the seam, so a chip step's cost over the digital one can be split into
//! its reads (forward and transpose reads, converters and noise included), its update,
//! and the learner's own host work between calls.

use std::time::Instant;

use serde::Serialize;

use mortal::error::Result;
use mortal::linalg::Mat;
use mortal::rng::Rng;
use mortal::substrate::ops::Ledger;
use mortal::substrate::{Substrate, SubstrateState, Topology, Update};

/// Milliseconds per training step spent in each kind of work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Reads: `forward` and `transpose_read` calls, ms per step.
    pub read_ms: f64,
    /// `update` calls, ms per step.
    pub update_ms: f64,
    /// Everything else: the learner's host work between calls, ms per step.
    pub host_ms: f64,
}

impl Phases {
    /// The whole step, ms.
    pub fn total_ms(&self) -> f64 {
        self.read_ms + self.update_ms + self.host_ms
    }

    /// The median of each phase separately over `v` (non-empty).
    pub fn median(v: &[Phases]) -> Phases {
        let med = |f: fn(&Phases) -> f64| super::median(v.iter().map(f).collect());
        Phases {
            read_ms: med(|p| p.read_ms),
            update_ms: med(|p| p.update_ms),
            host_ms: med(|p| p.host_ms),
        }
    }
}

/// A substrate that passes every call on to `inner` and adds up the seconds spent in
/// reads and updates. Timing changes no result: the calls and their order are the same.
pub struct Timed<'a> {
    inner: &'a mut dyn Substrate,
    /// Seconds in `forward` and `transpose_read`.
    pub read_s: f64,
    /// Seconds in `update`.
    pub update_s: f64,
}

impl<'a> Timed<'a> {
    pub fn new(inner: &'a mut dyn Substrate) -> Self {
        Timed {
            inner,
            read_s: 0.0,
            update_s: 0.0,
        }
    }

    /// The phases of `steps` steps that took `wall_s` seconds in all.
    pub fn phases(&self, wall_s: f64, steps: usize) -> Phases {
        let per = 1e3 / steps.max(1) as f64;
        Phases {
            read_ms: self.read_s * per,
            update_ms: self.update_s * per,
            host_ms: (wall_s - self.read_s - self.update_s).max(0.0) * per,
        }
    }
}

impl Substrate for Timed<'_> {
    fn topology(&self) -> &Topology {
        self.inner.topology()
    }

    fn set_precision(&mut self, precision: mortal::linalg::Precision) {
        self.inner.set_precision(precision);
    }

    fn precision(&self) -> mortal::linalg::Precision {
        self.inner.precision()
    }

    fn forward(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        noise: &mut Rng,
    ) {
        let t = Instant::now();
        self.inner.forward(layer, x, received, activity, noise);
        self.read_s += t.elapsed().as_secs_f64();
    }

    fn transpose_read(&mut self, layer: usize, d: &Mat, out: &mut Mat, noise: &mut Rng) {
        let t = Instant::now();
        self.inner.transpose_read(layer, d, out, noise);
        self.read_s += t.elapsed().as_secs_f64();
    }

    fn update(&mut self, layer: usize, update: Update<'_>, noise: &mut Rng) {
        let t = Instant::now();
        self.inner.update(layer, update, noise);
        self.update_s += t.elapsed().as_secs_f64();
    }

    fn program(&mut self, layer: usize, w: &Mat, b: &[f32], noise: &mut Rng) {
        self.inner.program(layer, w, b, noise);
    }

    fn advance_time(&mut self, seconds: f64) {
        self.inner.advance_time(seconds);
    }

    fn update_granularity(&self, layer: usize) -> Option<f32> {
        self.inner.update_granularity(layer)
    }

    fn save_state(&self) -> SubstrateState {
        self.inner.save_state()
    }

    fn load_state(&mut self, state: &SubstrateState) -> Result<Option<String>> {
        self.inner.load_state(state)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn ledger(&self) -> &Ledger {
        self.inner.ledger()
    }

    fn ledger_mut(&mut self) -> &mut Ledger {
        self.inner.ledger_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortal::rng::stream;
    use mortal::substrate::{Activation, DigitalNet};

    /// The wrapper changes nothing: the same calls give the same weights, and the phases
    /// add up to the wall time given.
    #[test]
    fn timing_changes_no_result_and_phases_add_up() {
        let topo = Topology::uniform(vec![6, 5, 4], Activation::Relu).unwrap();
        let (mut a, mut b) = (DigitalNet::new(topo.clone(), 3), DigitalNet::new(topo, 3));
        let x = Mat::from_fn(6, 2, |i, j| (i + 2 * j) as f32 * 0.1);
        let dw = vec![0.01f32; 5 * 6];
        let db = vec![0.02f32; 5];
        let run = |s: &mut dyn Substrate| {
            let (mut rec, mut act) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
            let mut noise = stream(1, "noise");
            s.forward(0, &x, &mut rec, &mut act, &mut noise);
            let u = Update::Dense {
                dw: &dw,
                db: &db,
                scale: -0.5,
                decay: 0.0,
            };
            s.update(0, u, &mut noise);
            s.forward(0, &x, &mut rec, &mut act, &mut noise);
            act
        };
        let plain = run(&mut a);
        let mut timed = Timed::new(&mut b);
        let t = Instant::now();
        let through = run(&mut timed);
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(plain, through);
        assert!(timed.read_s > 0.0 && timed.update_s > 0.0);
        let p = timed.phases(wall, 2);
        assert!((p.total_ms() - wall * 1e3 / 2.0).abs() < 1e-9);
        assert_eq!(a.save_state(), b.save_state());
    }
}
