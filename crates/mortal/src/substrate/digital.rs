//! The ideal digital substrate: exact f32 weights and biases, nominal activations, no noise.
//!
//! Each projection is stored as its tiles' dense blocks ([`super::wiring`]), so a sparse
//! projection costs what its existing weights cost; a dense projection is one block.

use serde_json::json;

use super::ops::{F32, Ledger, Purpose};
use super::wiring::{gather_rows, scatter_add_rows, tile_index_tensors, tile_name};
use super::{Activation, Substrate, SubstrateState, Topology, Update, initial_parameters};
use crate::error::{Error, Result};
use crate::linalg::{Mat, Op, Precision, axpby, ensure_shape, for_each_column, gemm_in, row_sums};
use crate::rng::Rng;
use crate::tensor;

/// One projection: a weight block per tile (rows × fan-in) and the layer's biases.
#[derive(Clone, Debug)]
struct Params {
    blocks: Vec<Mat>,
    bias: Vec<f32>,
}

/// An exact digital network: `y = act(W·x + b)` per layer.
#[derive(Clone, Debug)]
pub struct DigitalNet {
    topology: Topology,
    params: Vec<Params>,
    /// Gathered inputs of a tile (fan-in × batch) and a tile's transposed product.
    gather: Mat,
    tmp: Mat,
    ledger: Ledger,
    /// Arithmetic of every product ([`Substrate::set_precision`]).
    precision: Precision,
}

/// Splits a dense `out × in` matrix into the tile blocks of projection `l`.
fn blocks_of(topology: &Topology, l: usize, w: &Mat) -> Vec<Mat> {
    let wiring = topology.wiring(l);
    if wiring.is_dense() {
        return vec![w.clone()];
    }
    let packed = wiring.pack(w);
    wiring
        .tiles
        .iter()
        .enumerate()
        .map(|(t, tile)| {
            Mat::from_column_slice(tile.rows, tile.fan_in(wiring.inp), &packed[wiring.block(t)])
        })
        .collect()
}

impl DigitalNet {
    /// A network with the shared initial parameters drawn from `init_seed`.
    pub fn new(topology: Topology, init_seed: u64) -> Self {
        let params = initial_parameters(&topology, init_seed)
            .into_iter()
            .enumerate()
            .map(|(l, (w, b))| Params {
                blocks: blocks_of(&topology, l, &w),
                bias: b,
            })
            .collect();
        Self {
            params,
            gather: Mat::zeros(0, 0),
            tmp: Mat::zeros(0, 0),
            ledger: Ledger::new(topology.layers()),
            topology,
            precision: Precision::F32,
        }
    }

    /// Counts a pass of `cols` samples through layer `l` (forward, or transposed with
    /// `transposed`): 2 FLOPs per existing weight per sample, plus bias and activation
    /// forward; the weights read once per call and the signals in and out.
    fn count_pass(&mut self, l: usize, cols: usize, transposed: bool) {
        let (inp, out) = self.topology.dims(l);
        let w = self.topology.wiring(l).weight_count() as u64;
        let (b, inp, out) = (cols as u64, inp as u64, out as u64);
        let extra = if transposed {
            0
        } else {
            out * (1 + u64::from(self.topology.activation(l) != Activation::Linear))
        };
        let flops = (2 * w + extra) * b;
        let bytes = F32 * (w + out + (inp + out) * b);
        self.ledger.host(Purpose::Substrate, flops, bytes);
    }

    /// Counts an update of layer `l` (dense request, or outer product of `cols` samples).
    fn count_update(&mut self, l: usize, outer_cols: Option<usize>) {
        let (inp, out) = self.topology.dims(l);
        let p = (self.topology.wiring(l).weight_count() + out) as u64;
        // Read w and Δw, write w: 3 FLOPs (scale, decay, add) per parameter.
        let (mut flops, mut bytes) = (3 * p, 3 * F32 * p);
        if let Some(b) = outer_cols {
            let b = b as u64;
            flops += 2 * p * b;
            bytes += F32 * (inp + out) as u64 * b;
        }
        self.ledger.host(Purpose::Substrate, flops, bytes);
    }

    /// Weights (dense out × in, absent entries 0) and biases of layer `l`. For digital
    /// models and tests: learners that drive a [`Substrate`] never call this.
    pub fn layer(&self, l: usize) -> (Mat, &[f32]) {
        let p = &self.params[l];
        let wiring = self.topology.wiring(l);
        let w = if wiring.is_dense() {
            p.blocks[0].clone()
        } else {
            let packed: Vec<f32> = p.blocks.iter().flat_map(|b| b.iter().copied()).collect();
            wiring.unpack(&packed)
        };
        (w, &p.bias)
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
        let prec = self.precision;
        let p = &self.params[layer];
        let wiring = self.topology.wiring(layer);
        ensure_shape(received, x.nrows(), x.ncols());
        received.copy_from(x);
        ensure_shape(activity, wiring.out, x.ncols());
        if wiring.is_dense() {
            gemm_in(prec, 1.0, &p.blocks[0], Op::N, x, Op::N, 0.0, activity);
        } else {
            for (t, tile) in wiring.tiles.iter().enumerate() {
                let mut dst = activity.rows_mut(tile.row0, tile.rows);
                match &tile.cols {
                    None => gemm_in(prec, 1.0, &p.blocks[t], Op::N, x, Op::N, 0.0, &mut dst),
                    Some(cols) => {
                        gather_rows(x, cols, &mut self.gather);
                        gemm_in(
                            prec,
                            1.0,
                            &p.blocks[t],
                            Op::N,
                            &self.gather,
                            Op::N,
                            0.0,
                            &mut dst,
                        );
                    }
                }
            }
        }
        bias_activate(activity, &p.bias, self.topology.activation(layer));
        let b = x.ncols();
        self.count_pass(layer, b, false);
        self.ledger.count(layer, |c| c.forward_passes += b as u64);
    }

    fn transpose_read(&mut self, layer: usize, d: &Mat, out: &mut Mat, _noise: &mut Rng) {
        let prec = self.precision;
        let p = &self.params[layer];
        let wiring = self.topology.wiring(layer);
        ensure_shape(out, wiring.inp, d.ncols());
        self.ledger
            .count(layer, |c| c.transposed_reads += d.ncols() as u64);
        if wiring.is_dense() {
            gemm_in(prec, 1.0, &p.blocks[0], Op::T, d, Op::N, 0.0, out);
            self.count_pass(layer, d.ncols(), true);
            return;
        }
        out.fill(0.0);
        for (t, tile) in wiring.tiles.iter().enumerate() {
            let dr = d.rows(tile.row0, tile.rows);
            match &tile.cols {
                None => gemm_in(prec, 1.0, &p.blocks[t], Op::T, &dr, Op::N, 1.0, out),
                Some(cols) => {
                    ensure_shape(&mut self.tmp, cols.len(), d.ncols());
                    gemm_in(
                        prec,
                        1.0,
                        &p.blocks[t],
                        Op::T,
                        &dr,
                        Op::N,
                        0.0,
                        &mut self.tmp,
                    );
                    scatter_add_rows(&self.tmp, cols, out);
                }
            }
        }
        self.count_pass(layer, d.ncols(), true);
    }

    fn update(&mut self, layer: usize, update: Update<'_>, _noise: &mut Rng) {
        let prec = self.precision;
        let drives_bias = update.drives_bias();
        self.count_update(
            layer,
            match update {
                Update::Dense { .. } => None,
                Update::Outer { x, .. } | Update::Trains { x, .. } => Some(x.ncols()),
            },
        );
        let p = &mut self.params[layer];
        let wiring = self.topology.wiring(layer);
        match update {
            Update::Dense {
                dw,
                db,
                scale,
                decay,
            } => {
                assert_eq!(dw.len(), wiring.weight_count(), "update: dw length");
                for (t, w) in p.blocks.iter_mut().enumerate() {
                    axpby(w.as_mut_slice(), 1.0 - decay, scale, &dw[wiring.block(t)]);
                }
                for (bi, d) in p.bias.iter_mut().zip(db) {
                    *bi += scale * d;
                }
            }
            // No pulses: rank-1 trains are the outer product they stand for.
            Update::Outer { x, d, scale, decay }
            | Update::Trains {
                x, d, scale, decay, ..
            } => {
                for (w, tile) in p.blocks.iter_mut().zip(&wiring.tiles) {
                    let dr = d.rows(tile.row0, tile.rows);
                    match &tile.cols {
                        None if wiring.is_dense() => {
                            gemm_in(prec, scale, d, Op::N, x, Op::T, 1.0 - decay, w)
                        }
                        None => gemm_in(prec, scale, &dr, Op::N, x, Op::T, 1.0 - decay, w),
                        Some(cols) => {
                            gather_rows(x, cols, &mut self.gather);
                            gemm_in(prec, scale, &dr, Op::N, &self.gather, Op::T, 1.0 - decay, w);
                        }
                    }
                }
                if drives_bias {
                    let mut db = vec![0.0; p.bias.len()];
                    row_sums(d, &mut db);
                    for (bi, d) in p.bias.iter_mut().zip(&db) {
                        *bi += scale * d;
                    }
                }
            }
        }
    }

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn program(&mut self, layer: usize, w: &Mat, b: &[f32], _noise: &mut Rng) {
        let wiring = self.topology.wiring(layer);
        assert_eq!(w.shape(), (wiring.out, wiring.inp), "program: weight shape");
        self.params[layer].blocks = blocks_of(&self.topology, layer, w);
        self.params[layer].bias.copy_from_slice(b);
        let p = (wiring.weight_count() + wiring.out) as u64;
        self.ledger.host(Purpose::Substrate, 0, 2 * F32 * p);
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    fn save_state(&self) -> SubstrateState {
        let mut tensors = Vec::new();
        for (l, p) in self.params.iter().enumerate() {
            let wiring = self.topology.wiring(l);
            if wiring.is_dense() {
                tensors.push(tensor::from_mat(format!("layer{l}.weight"), &p.blocks[0]));
            } else {
                for (t, (blk, tile)) in p.blocks.iter().zip(&wiring.tiles).enumerate() {
                    tensors.push(tensor::from_mat(format!("{}.weight", tile_name(l, t)), blk));
                    tensors.extend(tile_index_tensors(l, t, tile));
                }
            }
            tensors.push(tensor::from_vec(format!("layer{l}.bias"), &p.bias));
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
        // Read everything first so a bad checkpoint leaves the network untouched.
        let mut loaded = Vec::with_capacity(self.params.len());
        for (l, p) in self.params.iter().enumerate() {
            let wiring = self.topology.wiring(l);
            let blocks = if wiring.is_dense() {
                let (r, c) = p.blocks[0].shape();
                vec![tensor::to_mat(
                    &state.tensors,
                    &format!("layer{l}.weight"),
                    r,
                    c,
                )?]
            } else {
                p.blocks
                    .iter()
                    .enumerate()
                    .map(|(t, b)| {
                        let (r, c) = b.shape();
                        let name = format!("{}.weight", tile_name(l, t));
                        tensor::to_mat(&state.tensors, &name, r, c)
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            let n = p.bias.len();
            let bias = tensor::find(&state.tensors, &format!("layer{l}.bias"), &[n])?.to_vec();
            loaded.push(Params { blocks, bias });
        }
        self.params = loaded;
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
