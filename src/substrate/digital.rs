//! The ideal digital substrate: exact f32 weights and biases, nominal activations, no noise.

use serde_json::json;

use super::{Substrate, SubstrateState, Topology, Update, initial_parameters};
use crate::error::{Error, Result};
use crate::linalg::{Mat, Op, axpby, ensure_shape, for_each_column, gemm, row_sums};
use crate::rng::Rng;
use crate::tensor;

/// An exact digital network: `y = act(W·x + b)` per layer.
#[derive(Clone, Debug)]
pub struct DigitalNet {
    topology: Topology,
    params: Vec<(Mat, Vec<f32>)>,
}

impl DigitalNet {
    /// A network with the shared initial parameters drawn from `init_seed`.
    pub fn new(topology: Topology, init_seed: u64) -> Self {
        let params = initial_parameters(&topology, init_seed);
        Self { topology, params }
    }

    /// Weights (out × in) and biases of layer `l`. For digital models and tests: learners
    /// that drive a [`Substrate`] never call this.
    pub fn layer(&self, l: usize) -> (&Mat, &[f32]) {
        (&self.params[l].0, &self.params[l].1)
    }
}

/// Adds `b` to every column of `m` and applies `act` in place.
pub(crate) fn bias_activate(m: &mut Mat, b: &[f32], act: super::Activation) {
    for_each_column(m, |_, col| {
        for (v, bi) in col.iter_mut().zip(b) {
            *v = act.apply(*v + bi);
        }
    });
}

impl Substrate for DigitalNet {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn forward(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        _noise: &mut Rng,
    ) {
        let (w, b) = &self.params[layer];
        ensure_shape(received, x.nrows(), x.ncols());
        received.copy_from(x);
        ensure_shape(activity, w.nrows(), x.ncols());
        gemm(1.0, w, Op::N, x, Op::N, 0.0, activity);
        bias_activate(activity, b, self.topology.activation(layer));
    }

    fn transpose_read(&mut self, layer: usize, d: &Mat, out: &mut Mat, _noise: &mut Rng) {
        let w = &self.params[layer].0;
        ensure_shape(out, w.ncols(), d.ncols());
        gemm(1.0, w, Op::T, d, Op::N, 0.0, out);
    }

    fn update(&mut self, layer: usize, update: Update<'_>, _noise: &mut Rng) {
        let (w, b) = &mut self.params[layer];
        match update {
            Update::Dense {
                dw,
                db,
                scale,
                decay,
            } => {
                assert_eq!(dw.shape(), w.shape(), "update: dw shape");
                axpby(w.as_mut_slice(), 1.0 - decay, scale, dw.as_slice());
                for (bi, d) in b.iter_mut().zip(db) {
                    *bi += scale * d;
                }
            }
            Update::Outer { x, d, scale, decay } => {
                gemm(scale, d, Op::N, x, Op::T, 1.0 - decay, w);
                let mut db = vec![0.0; b.len()];
                row_sums(d, &mut db);
                for (bi, d) in b.iter_mut().zip(&db) {
                    *bi += scale * d;
                }
            }
        }
    }

    fn program(&mut self, layer: usize, w: &Mat, b: &[f32], _noise: &mut Rng) {
        let (pw, pb) = &mut self.params[layer];
        assert_eq!(pw.shape(), w.shape(), "program: weight shape");
        pw.copy_from(w);
        pb.copy_from_slice(b);
    }

    fn save_state(&self) -> SubstrateState {
        let mut tensors = Vec::new();
        for (l, (w, b)) in self.params.iter().enumerate() {
            tensors.push(tensor::from_mat(format!("layer{l}.weight"), w));
            tensors.push(tensor::from_vec(format!("layer{l}.bias"), b));
        }
        SubstrateState {
            kind: "digital".into(),
            identity: json!({ "topology": self.topology }),
            tensors,
        }
    }

    fn load_state(&mut self, state: &SubstrateState) -> Result<Option<String>> {
        if state.kind != "digital" {
            return Err(Error::param(
                "checkpoint",
                &state.kind,
                "this checkpoint holds a chip, not a digital network",
            ));
        }
        for (l, (w, b)) in self.params.iter_mut().enumerate() {
            let (r, c) = w.shape();
            *w = tensor::to_mat(&state.tensors, &format!("layer{l}.weight"), r, c)?;
            b.copy_from_slice(tensor::find(
                &state.tensors,
                &format!("layer{l}.bias"),
                &[r],
            )?);
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        "digital".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substrate::{Activation, conformance};

    #[test]
    fn digital_passes_conformance() {
        conformance::run_all(
            &|topo: &Topology, seed: u64| {
                Box::new(DigitalNet::new(topo.clone(), seed)) as Box<dyn Substrate>
            },
            conformance::Tolerance::EXACT,
        );
    }

    #[test]
    fn forward_is_relu_affine() {
        let topo = Topology::uniform(vec![3, 2], Activation::Relu).unwrap();
        let mut net = DigitalNet::new(topo, 0);
        let w = Mat::from_row_slice(2, 3, &[1.0, -1.0, 0.5, 0.0, 2.0, -1.0]);
        let mut rng = crate::rng::stream(0, "t");
        net.program(0, &w, &[0.1, -5.0], &mut rng);
        let x = Mat::from_column_slice(3, 1, &[1.0, 2.0, 4.0]);
        let (mut r, mut a) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
        net.forward(0, &x, &mut r, &mut a, &mut rng);
        assert_eq!(r, x);
        assert!((a[(0, 0)] - 1.1).abs() < 1e-6);
        assert_eq!(a[(1, 0)], 0.0);
    }
}
