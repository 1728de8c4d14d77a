//! Analog-native FF's momentum in the arrays ([`super::AnalogMomentum`]): the fast arrays
//! A, their per-batch rank-1 updates, and the row transfers into the weights C.

use std::sync::{Arc, Mutex, MutexGuard};

use super::AnalogMomentum;
use crate::error::Result;
use crate::linalg::{Mat, ensure_shape};
use crate::rng::Rng;
use crate::substrate::{Substrate, SubstrateState, Update};
use crate::tensor::{Tensor, from_vec};

/// The fast arrays of every layer (one substrate of the weights' family), and the next
/// row each layer transfers.
#[derive(Clone)]
pub(crate) struct FastArrays {
    /// Shared only so that a learner stays `Clone`; one learner drives it.
    sub: Arc<Mutex<Box<dyn Substrate>>>,
    next_row: Vec<usize>,
    /// One-hot d-columns of a transfer (out × k), its read rows (in × k), and the silent
    /// x-lines of a bias-only update (in × n).
    onehot: Mat,
    rows: Mat,
    silent: Mat,
}

impl std::fmt::Debug for FastArrays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastArrays")
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

impl FastArrays {
    /// Takes `a` (same topology as the weights) and programs every layer to zero.
    pub fn new(mut a: Box<dyn Substrate>, noise: &mut Rng) -> Self {
        let layers = a.topology().layers();
        for l in 0..layers {
            let (inp, out) = a.topology().dims(l);
            a.program(l, &Mat::zeros(out, inp), &vec![0.0; out], noise);
        }
        a.ledger_mut().reset();
        Self {
            sub: Arc::new(Mutex::new(a)),
            next_row: vec![0; layers],
            onehot: Mat::zeros(0, 0),
            rows: Mat::zeros(0, 0),
            silent: Mat::zeros(0, 0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn Substrate>> {
        self.sub.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One batch of layer `l`: A ← μ·A + ρ·scale·d·rᵀ, C's biases by plain SGD (with the
    /// weight decay of C), then the next rows of A into C's weights. `scale` is the SGD
    /// step's multiplier per sample (negative: −lr·gain/B).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        c: &mut dyn Substrate,
        l: usize,
        d: &Mat,
        r: &Mat,
        scale: f32,
        decay: f32,
        cfg: &AnalogMomentum,
        noise: &mut Rng,
    ) {
        let rho = cfg.fast_gain;
        let sub = Arc::clone(&self.sub);
        let mut a = sub.lock().unwrap_or_else(|e| e.into_inner());
        a.ledger_mut().set_enabled(c.ledger().enabled());
        a.update(
            l,
            Update::Trains {
                x: r,
                d,
                scale: rho * scale,
                decay: 1.0 - cfg.momentum,
                bias: false,
            },
            noise,
        );
        ensure_shape(&mut self.silent, r.nrows(), r.ncols());
        c.update(
            l,
            Update::Trains {
                x: &self.silent,
                d,
                scale,
                decay,
                bias: true,
            },
            noise,
        );
        let (inp, out) = c.topology().dims(l);
        let k = match cfg.rows_per_transfer {
            0 => out,
            n => n.min(out),
        };
        if self.onehot.shape() != (out, k) {
            self.onehot = Mat::zeros(out, k);
        } else {
            self.onehot.fill(0.0);
        }
        let j0 = self.next_row[l];
        for col in 0..k {
            self.onehot[((j0 + col) % out, col)] = 1.0;
        }
        self.next_row[l] = (j0 + k) % out;
        ensure_shape(&mut self.rows, inp, k);
        a.transpose_read(l, &self.onehot, &mut self.rows, noise);
        c.update(
            l,
            Update::Trains {
                x: &self.rows,
                d: &self.onehot,
                scale: out as f32 / (k as f32 * rho),
                decay: 0.0,
                bias: false,
            },
            noise,
        );
    }

    /// Moves the fast arrays' counters into `c`'s (the run's cost counts both arrays).
    pub fn flush_ledger(&self, c: &mut dyn Substrate) {
        let mut a = self.lock();
        c.ledger_mut().absorb(a.ledger());
        a.ledger_mut().reset();
    }

    /// The fast arrays' state for a resumable checkpoint (`fast/…`) and the next rows.
    pub fn resume_tensors(&self) -> Vec<Tensor> {
        let st = self.lock().save_state();
        let mut out = crate::tensor::prefixed(st.tensors, "fast/");
        let rows: Vec<f32> = self.next_row.iter().map(|r| *r as f32).collect();
        out.push(from_vec("fast.next_row", &rows));
        out
    }

    /// Restores what [`FastArrays::resume_tensors`] saved.
    pub fn restore_resume(&mut self, tensors: &[Tensor]) -> Result<()> {
        let mut a = self.lock();
        let current = a.save_state();
        a.load_state(&SubstrateState {
            kind: current.kind,
            identity: current.identity,
            tensors: crate::tensor::with_prefix(tensors, "fast/"),
        })?;
        let n = self.next_row.len();
        let rows = crate::tensor::find(tensors, "fast.next_row", &[n])?;
        drop(a);
        self.next_row = rows.iter().map(|r| *r as usize).collect();
        Ok(())
    }
}
