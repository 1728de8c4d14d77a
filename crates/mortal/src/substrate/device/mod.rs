//! The analog chip substrate: one physical instance of a simulated in-memory-computing
//! chip, sampled from a [`HardwareSpec`] and a seed.
//!
//! Per layer (inputs × batch in network units → activities):
//! 1. **DAC.** Each input column, with the bias line (value 1) appended, is scaled by
//!    α_j (abs-max: max(max_i |x_ij|, 1); fixed: the fixed range), clipped to ±1 and
//!    quantised. Layers ≥ 1 then pass the **black box** ([`blackbox`]). What the lines carry,
//!    times α_j, is `received`.
//! 2. **MVM.** `W_eff·received + b_eff·v_b` as one GEMM on the cached effective weights
//!    `w = gain·(G⁺ − G⁻)/(g_max − g_min)` ([`crossbar`]).
//! 3. **Read noise**, output-referred in normalised output units and multiplied back by
//!    gain·α_j: σ_out, σ_w·‖u‖ (and optionally σ_g·√(Σ ĝ u²)).
//! 4. **ADC**: clip at ±bound, quantise (normalised output units).
//! 5. **Neurons** (hidden ReLU / sigmoid layers): per-instance random curves
//!    ([`neuron`]) plus output noise. Linear layers stop at the ADC.
//!
//! Updates follow the device physics in [`update`]; `transpose_read` drives the columns
//! (DAC on the errors, the same read noise and ADC, no neuron, no bias, no black box).
//!
//! Everything fixed about the instance (device properties, stuck devices, neuron curves,
//! black box, initial programming noise) comes from `chip_seed`; everything per call from
//! the caller's `noise` stream: one u64 is drawn per call and every column (forward) or
//! fixed chunk of pairs (update) gets its own indexed stream, so results do not depend on
//! the number of threads.

mod apply;
mod blackbox;
mod compact;
mod converters;
mod crossbar;
mod fastmath;
mod native;
mod neuron;
mod normal;
mod outstage;
pub mod presets;
mod pulsed;
pub mod response;
pub mod spec;
mod state;
mod update;

#[cfg(test)]
mod tests;

use rand::RngExt;
use rayon::prelude::*;
use serde_json::json;

pub(crate) use crossbar::Physics;
pub use spec::{
    AdcSpec, Asymmetry, BlackBoxSpec, CrossbarSpec, DacSpec, DeviceSpec, DriftSpec, FaultSpec,
    HardwareSpec, InputScaling, NeuronSpec, PairMapping, PairScheme, ProgrammingNoise,
    ProgrammingSpec, ReadSpec, Response, UpdateMode, UpdateSpec,
};

use blackbox::BlackBox;
use converters::Quantizer;
use crossbar::Crossbar;
use neuron::Neurons;
use normal::Normals;
use outstage::OutStage;
use update::{IdealUpdate, PulseTrains, Request};

use super::ops::{F32, Ledger, Purpose};
use super::wiring::{gather_rows, scatter_add_rows, tile_index_tensors, tile_name};
use super::{Activation, Substrate, SubstrateState, Topology, Update, initial_parameters};
use crate::error::{Error, Result};
use crate::linalg::{Mat, Op, Precision, ensure_shape, gemm_in, row_sums};
use crate::rng::{Rng, derive, derive_index, indexed};
use crate::tensor::{self, Tensor};

/// Columns per parallel task in the elementwise passes (streams stay per column).
const COLS_PER_TASK: usize = 8;

/// One tile of a projection ([`super::wiring`]): its own crossbar array and the neurons
/// of its output units. A dense projection is one tile over every input and output.
#[derive(Clone, Debug)]
struct Tile {
    row0: usize,
    rows: usize,
    /// Input units this tile sees (`None`: all).
    cols: Option<Vec<usize>>,
    xb: Crossbar,
    neurons: Neurons,
    /// Seed label prefix of this tile's fixed properties (`layer{l}` or `layer{l}/tile{t}`).
    label: String,
    /// Per column: ‖u‖² of the tile's own input lines (tiled projections only).
    unorm2: Vec<f32>,
    /// Gathered received inputs (fan-in × batch) and their squared normalised values.
    gin: Mat,
    gu2: Mat,
    /// Conductance-weighted squared inputs (g-noise only).
    gx2: Mat,
    /// (G⁺ + G⁻)/range, cached for the conductance-dependent read noise.
    gsum: Mat,
    gsum_dirty: bool,
    /// Host-side ΔW of an outer-product request (rows × fan-in) and Δb.
    dw: Mat,
    db: Vec<f32>,
    /// A tile's slice of an outer-product request's errors (rows × batch).
    dg: Mat,
    /// A tiled transposed read's partial result (fan-in × batch).
    tout: Mat,
    trains: PulseTrains,
}

impl Tile {
    fn fan_in(&self) -> usize {
        self.xb.inp
    }
}

/// One layer of the chip: the tiles of the projection into it, its black box, and the
/// reusable buffers of its shared input stage.
#[derive(Clone, Debug)]
struct Layer {
    tiles: Vec<Tile>,
    black_box: Option<BlackBox>,
    /// Per column: α, bias-line value (network units), ‖u‖² of the normalised input.
    alpha: Vec<f32>,
    vbias: Vec<f32>,
    unorm2: Vec<f32>,
    /// Normalised line voltages before the black box (inputs × batch).
    ubuf: Mat,
    /// Squared normalised inputs (g-noise only).
    u2: Mat,
    /// Quantised errors of a transposed read (out × batch).
    tin: Mat,
}

impl Layer {
    fn dense(&self) -> bool {
        self.tiles.len() == 1 && self.tiles[0].cols.is_none()
    }
}

/// The per-call seed of tile `t` (tile 0 keeps the layer's seed, so a dense layer draws
/// exactly what it always did).
fn tile_seed(seed: u64, t: usize) -> u64 {
    if t == 0 {
        seed
    } else {
        derive(seed, &format!("tile{t}"))
    }
}

/// One analog chip instance.
#[derive(Clone, Debug)]
pub struct Chip {
    spec: HardwareSpec,
    topology: Topology,
    chip_seed: u64,
    phys: Physics,
    dac: Quantizer,
    adc: Quantizer,
    layers: Vec<Layer>,
    /// Simulated time, s.
    clock: f64,
    /// Operation counters (from construction: the initial programming is counted).
    ledger: Ledger,
    /// Arithmetic of the simulated reads and the host's ΔW ([`Substrate::set_precision`]).
    precision: Precision,
}

impl Chip {
    /// Builds chip `chip_seed` of the family `spec` for `topology`: draws every
    /// device-to-device and neuron-to-neuron property from `chip_seed`, then programs the
    /// shared initial weights [`initial_parameters`]`(topology, init_seed)` by
    /// write-and-verify (programming noise from `chip_seed` too).
    pub fn new(
        spec: &HardwareSpec,
        topology: Topology,
        chip_seed: u64,
        init_seed: u64,
    ) -> Result<Chip> {
        spec.validate()?;
        let phys = Physics::new(spec);
        let layers = (0..topology.layers())
            .map(|l| {
                let wiring = topology.wiring(l);
                let inp = wiring.inp;
                let tiles = wiring
                    .tiles
                    .iter()
                    .enumerate()
                    .map(|(t, tile)| {
                        let label = if t == 0 {
                            format!("layer{l}")
                        } else {
                            format!("layer{l}/tile{t}")
                        };
                        let xb = Crossbar::new(
                            spec,
                            &phys,
                            tile.fan_in(inp),
                            tile.rows,
                            derive(chip_seed, &format!("{label}/devices")),
                        );
                        let neurons = Neurons::new(
                            &spec.neuron,
                            topology.activation(l),
                            tile.rows,
                            &mut crate::rng::stream(chip_seed, &format!("{label}/neurons")),
                        );
                        Tile {
                            row0: tile.row0,
                            rows: tile.rows,
                            cols: tile.cols.clone(),
                            xb,
                            neurons,
                            label,
                            unorm2: Vec::new(),
                            gin: Mat::zeros(0, 0),
                            gu2: Mat::zeros(0, 0),
                            gx2: Mat::zeros(0, 0),
                            gsum: Mat::zeros(0, 0),
                            gsum_dirty: true,
                            dw: Mat::zeros(0, 0),
                            db: Vec::new(),
                            dg: Mat::zeros(0, 0),
                            tout: Mat::zeros(0, 0),
                            trains: PulseTrains::default(),
                        }
                    })
                    .collect();
                let black_box = if l > 0 {
                    BlackBox::new(
                        &spec.black_box,
                        inp,
                        &mut crate::rng::stream(chip_seed, &format!("layer{l}/black-box")),
                    )
                } else {
                    None
                };
                Layer {
                    tiles,
                    black_box,
                    alpha: Vec::new(),
                    vbias: Vec::new(),
                    unorm2: Vec::new(),
                    ubuf: Mat::zeros(0, 0),
                    u2: Mat::zeros(0, 0),
                    tin: Mat::zeros(0, 0),
                }
            })
            .collect();
        let mut ledger = Ledger::new(topology.layers());
        ledger.dac_bits = spec.dac.bits;
        ledger.adc_bits = spec.adc.bits;
        let mut chip = Chip {
            ledger,
            precision: Precision::F32,
            spec: spec.clone(),
            phys,
            dac: Quantizer::dac(&spec.dac),
            adc: Quantizer::adc(&spec.adc),
            topology,
            chip_seed,
            layers,
            clock: 0.0,
        };
        for (l, (w, b)) in initial_parameters(&chip.topology, init_seed)
            .into_iter()
            .enumerate()
        {
            let clock = chip.clock;
            let wiring = chip.topology.wiring(l).clone();
            let mut writes = 0;
            for_each_tile_block(&wiring, &w, &b, &mut chip.layers[l].tiles, |tile, w, b| {
                let seed = derive(chip_seed, &format!("{}/initial-programming", tile.label));
                tile.xb.program(&chip.phys, w, b, clock, seed);
                writes += tile.xb.free_devices();
            });
            chip.ledger.count(l, |c| c.program_writes += writes);
        }
        Ok(chip)
    }

    /// The family this chip was drawn from.
    pub fn spec(&self) -> &HardwareSpec {
        &self.spec
    }

    /// The instance seed.
    pub fn chip_seed(&self) -> u64 {
        self.chip_seed
    }

    /// Simulated time since construction, s.
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// The effective weights (dense out × in; absent entries 0) and biases of layer `l`
    /// as the conductances stand now, in network units (what an ideal read-out would
    /// report). For diagnostics and tests: learners that drive a [`Substrate`] never call
    /// this.
    pub fn effective_layer(&self, l: usize) -> (Mat, Vec<f32>) {
        let ly = &self.layers[l];
        let wiring = self.topology.wiring(l);
        let mut packed = Vec::with_capacity(wiring.weight_count());
        let mut b = vec![0.0; wiring.out];
        for t in &ly.tiles {
            let k = t.fan_in();
            packed.extend_from_slice(&t.xb.w.as_slice()[..t.rows * k]);
            b[t.row0..t.row0 + t.rows].copy_from_slice(&t.xb.w.as_slice()[t.rows * k..]);
        }
        (wiring.unpack(&packed), b)
    }

    /// The conductances (G⁺, G⁻), µS, of every existing pair of layer `l`: per tile,
    /// column-major `rows × (fan-in + 1)` with the bias pairs in the last column, tiles
    /// one after another. For diagnostics.
    pub fn conductances(&self, l: usize) -> (Vec<f32>, Vec<f32>) {
        let tiles = &self.layers[l].tiles;
        (
            tiles.iter().flat_map(|t| t.xb.gp.iter().copied()).collect(),
            tiles.iter().flat_map(|t| t.xb.gm.iter().copied()).collect(),
        )
    }

    /// Layer `l`'s digital gain (weight units per normalised weight) of its first tile
    /// (every tile of a sparse projection has its own, set by its fan-in).
    pub fn gain(&self, l: usize) -> f32 {
        self.layers[l].tiles[0].xb.gain
    }

    /// A measurement aid (`mortal bench` uses it): the memory traffic of a pulsed update of layer `layer` with the
    /// dense request (`dw` in the wiring's order, `db`) but none of its physics
    /// ([`pulsed::traffic_floor`]): every tile reads and writes its state as the update
    /// would, and keeps its values.
    pub fn update_traffic_floor(&mut self, layer: usize, dw: &[f32], db: &[f32]) {
        let wiring = self.topology.wiring(layer);
        assert_eq!(dw.len(), wiring.weight_count(), "traffic floor: dw length");
        for (t, tile) in self.layers[layer].tiles.iter_mut().enumerate() {
            let (r0, rows) = (tile.row0, tile.rows);
            let req = update::Request {
                dw: &dw[wiring.block(t)],
                db: &db[r0..r0 + rows],
                scale: 1.0,
                decay: 0.0,
            };
            pulsed::traffic_floor(&mut tile.xb, &req);
        }
    }

    fn identity(&self) -> serde_json::Value {
        json!({
            "spec": self.spec,
            "chip_seed": self.chip_seed,
            "topology": self.topology,
        })
    }

    /// The forward read of [`Substrate::forward`], uncounted (the analog-native read
    /// shares it with other converters, see `native`).
    fn read_forward(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        noise: &mut Rng,
    ) {
        let prec = self.precision;
        let seed: u64 = noise.random();
        let (seed_in, seed_out) = (derive(seed, "input"), derive(seed, "output"));
        let seed_read = derive(seed, "read");
        let (inp, out) = self.topology.dims(layer);
        let ly = &mut self.layers[layer];
        let dense = ly.dense();
        assert_eq!(x.nrows(), inp, "forward: input rows");
        let b = x.ncols();
        ensure_shape(received, inp, b);
        ensure_shape(activity, out, b);
        ly.alpha.resize(b, 0.0);
        ly.vbias.resize(b, 0.0);
        ly.unorm2.resize(b, 0.0);
        let g_noise = self.spec.read.g_noise as f32;
        let bb = ly.black_box.as_ref();
        let ub = column_slices(&mut ly.ubuf, inp, b, bb.is_some());
        let u2 = column_slices(&mut ly.u2, inp, b, g_noise > 0.0);
        let (dac, dspec) = (&self.dac, &self.spec.dac);
        // 1. DAC and black box, per column, shared by every tile.
        received
            .as_mut_slice()
            .par_chunks_mut(inp.max(1))
            .zip(x.as_slice().par_chunks(inp.max(1)))
            .zip(ly.alpha.par_iter_mut().zip(ly.vbias.par_iter_mut()))
            .zip(ly.unorm2.par_iter_mut().zip(ub.into_par_iter().zip(u2)))
            .enumerate()
            .with_min_len(COLS_PER_TASK)
            .for_each(|(j, (((r, xc), (a, vb)), (n2, (ubc, u2c))))| {
                let mut rng = bb.map(|_| Normals::new(indexed(seed_in, j as u64)));
                let (al, v, n) = input_column(xc, r, ubc, u2c, dac, dspec, bb, rng.as_mut());
                *a = al;
                *vb = v;
                *n2 = n;
            });
        let (alpha, vbias) = (&ly.alpha, &ly.vbias);
        let dac_ref = &self.dac;
        for (t, tile) in ly.tiles.iter_mut().enumerate() {
            let (r0, rows, k) = (tile.row0, tile.rows, tile.fan_in());
            // The tile's input lines: all of them, or its window gathered.
            if let Some(cols) = &tile.cols {
                gather_rows(received, cols, &mut tile.gin);
                tile.unorm2.resize(b, 0.0);
                for (j, (n2, col)) in tile
                    .unorm2
                    .iter_mut()
                    .zip(tile.gin.as_slice().chunks(k.max(1)))
                    .enumerate()
                {
                    let ubias = dac_ref.apply((1.0 / alpha[j]).min(1.0));
                    *n2 = ubias * ubias + scaled_sum_sq(col, 1.0 / alpha[j]);
                }
                if g_noise > 0.0 {
                    gather_rows(&ly.u2, cols, &mut tile.gu2);
                }
            }
            if g_noise > 0.0 {
                Chip::refresh_gsum(tile, &self.phys);
            }
            let (xin, u2in, unorm2) = match tile.cols {
                None => (&*received, &ly.u2, &ly.unorm2),
                Some(_) => (&tile.gin, &tile.gu2, &tile.unorm2),
            };
            // 2. The MVM.
            if dense {
                gemm_in(
                    prec,
                    1.0,
                    &tile.xb.w.columns(0, k),
                    Op::N,
                    xin,
                    Op::N,
                    0.0,
                    activity,
                );
            } else {
                let mut dst = activity.rows_mut(r0, rows);
                gemm_in(
                    prec,
                    1.0,
                    &tile.xb.w.columns(0, k),
                    Op::N,
                    xin,
                    Op::N,
                    0.0,
                    &mut dst,
                );
            }
            if g_noise > 0.0 {
                ensure_shape(&mut tile.gx2, rows, b);
                gemm_in(
                    prec,
                    1.0,
                    &tile.gsum.columns(0, k),
                    Op::N,
                    u2in,
                    Op::N,
                    0.0,
                    &mut tile.gx2,
                );
            }
            // 3–5. Read noise, ADC, neurons.
            let nw = rows * k;
            let stage = OutStage {
                gain: tile.xb.gain,
                out_noise: self.spec.read.out_noise as f32,
                w_noise: self.spec.read.w_noise as f32,
                g_noise,
                adc: &self.adc,
                bias: &tile.xb.w.as_slice()[nw..],
                gsum_bias: if g_noise > 0.0 {
                    &tile.gsum.as_slice()[nw..]
                } else {
                    &[]
                },
                neurons: Some(&tile.neurons),
            };
            let stream = stage.needs_stream();
            let gx2: &[f32] = if g_noise > 0.0 {
                tile.gx2.as_slice()
            } else {
                &[]
            };
            let (t_out, t_read) = (tile_seed(seed_out, t), tile_seed(seed_read, t));
            activity
                .as_mut_slice()
                .par_chunks_mut(out.max(1))
                .enumerate()
                .with_min_len(COLS_PER_TASK)
                .for_each(|(j, y)| {
                    let mut rng = stream.then(|| Normals::new(indexed(t_out, j as u64)));
                    let g = if gx2.is_empty() {
                        &[][..]
                    } else {
                        &gx2[j * rows..(j + 1) * rows]
                    };
                    let ubias = dac_ref.apply((1.0 / alpha[j]).min(1.0));
                    let seed_j = derive_index(t_read, j as u64);
                    stage.column(
                        &mut y[r0..r0 + rows],
                        g,
                        alpha[j],
                        vbias[j],
                        unorm2[j],
                        ubias,
                        seed_j,
                        rng.as_mut(),
                    );
                });
        }
    }

    /// Counts a read of `b` samples through layer `l`: forward (DAC on every input line,
    /// black box, a MAC per existing pair incl. biases, ADC and neuron per output) or
    /// transposed (DAC per output line, a MAC per existing weight, ADC per input line).
    /// The periphery's digital work: the DAC range (abs-max) and scaling of each input,
    /// and the rescaling of each output by gain·α.
    fn count_read(&mut self, l: usize, b: usize, transposed: bool) {
        let (inp, out) = self.topology.dims(l);
        let w = self.topology.wiring(l).weight_count() as u64;
        let (b, inp, out) = (b as u64, inp as u64, out as u64);
        let neurons = self.topology.activation(l) != Activation::Linear;
        let bb = self.layers[l].black_box.is_some();
        let (lines_in, lines_out) = if transposed { (out, inp) } else { (inp, out) };
        self.ledger.count(l, |c| {
            c.dac += lines_in * b;
            c.adc += lines_out * b;
            c.read_cycles += b;
            if transposed {
                c.transposed_reads += b;
                c.analog_macs += w * b;
            } else {
                c.analog_macs += (w + out) * b;
                c.forward_passes += b;
                c.forward_dac += inp * b;
                c.forward_adc += out * b;
                if neurons {
                    c.neuron_evals += out * b;
                }
                if bb {
                    c.black_box_passes += b;
                }
            }
        });
        self.ledger.host(
            Purpose::Substrate,
            (2 * lines_in + 2 * lines_out) * b,
            F32 * (lines_in + lines_out) * b,
        );
    }

    fn refresh_gsum(tile: &mut Tile, phys: &Physics) {
        if !tile.gsum_dirty {
            return;
        }
        let xb = &tile.xb;
        ensure_shape(&mut tile.gsum, xb.out, xb.inp + 1);
        let inv = 1.0 / phys.range;
        for ((s, p), m) in tile.gsum.as_mut_slice().iter_mut().zip(&xb.gp).zip(&xb.gm) {
            *s = (p + m) * inv;
        }
        tile.gsum_dirty = false;
    }
}

/// Calls `f` with each tile of `wiring` and its block of the dense weights `w` (out × in)
/// and biases `b` (the dense matrix itself for a dense projection).
fn for_each_tile_block(
    wiring: &super::Wiring,
    w: &Mat,
    b: &[f32],
    tiles: &mut [Tile],
    mut f: impl FnMut(&mut Tile, &Mat, &[f32]),
) {
    assert_eq!(w.shape(), (wiring.out, wiring.inp), "program: weight shape");
    if wiring.is_dense() {
        f(&mut tiles[0], w, b);
        return;
    }
    let packed = wiring.pack(w);
    for (t, tile) in tiles.iter_mut().enumerate() {
        let blk = Mat::from_column_slice(tile.rows, tile.fan_in(), &packed[wiring.block(t)]);
        let (r0, n) = (tile.row0, tile.rows);
        f(tile, &blk, &b[r0..r0 + n]);
    }
}

/// The input stage of one column: DAC (and black box) from `x` to `r`, returning
/// (α, bias-line value in network units, ‖u‖²). `ub`/`u2` are optional scratch columns.
#[allow(clippy::too_many_arguments)]
fn input_column(
    x: &[f32],
    r: &mut [f32],
    ub: &mut [f32],
    u2: &mut [f32],
    dac: &Quantizer,
    spec: &DacSpec,
    bb: Option<&BlackBox>,
    rng: Option<&mut Normals>,
) -> (f32, f32, f32) {
    let alpha = match spec.scaling {
        InputScaling::AbsMax => abs_max(x).max(1.0),
        InputScaling::Fixed => spec.fixed_range as f32,
    };
    let inv = 1.0 / alpha;
    let passthrough = dac.step == 0.0 && spec.scaling == InputScaling::AbsMax && bb.is_none();
    let ubias = dac.apply(inv.min(1.0));
    let mut norm2 = ubias * ubias;
    if passthrough {
        r.copy_from_slice(x);
        norm2 += scaled_sum_sq(x, inv);
        if !u2.is_empty() {
            for (o, v) in u2.iter_mut().zip(x) {
                *o = (v * inv) * (v * inv);
            }
        }
        return (alpha, 1.0, norm2);
    }
    match bb {
        None => {
            dac_column(x, r, *dac, inv);
            norm2 += scaled_sum_sq(r, 1.0);
            for o in r.iter_mut() {
                *o *= alpha;
            }
            if !u2.is_empty() {
                for (o, v) in u2.iter_mut().zip(r.iter()) {
                    *o = (v * inv) * (v * inv);
                }
            }
        }
        Some(bb) => {
            for (o, v) in ub.iter_mut().zip(x) {
                *o = dac.apply(v * inv);
            }
            let rng = rng.expect("black box needs a stream");
            bb.apply(ub, r, rng);
            for (i, o) in r.iter_mut().enumerate() {
                let z = *o;
                norm2 += z * z;
                if !u2.is_empty() {
                    u2[i] = z * z;
                }
                *o = z * alpha;
            }
        }
    }
    (alpha, ubias * alpha, norm2)
}

/// `r = DAC(x·inv)` (normalised units), elementwise.
#[multiversion::multiversion(targets = "simd")]
fn dac_column(x: &[f32], r: &mut [f32], dac: Quantizer, inv: f32) {
    for (o, v) in r.iter_mut().zip(x) {
        *o = dac.apply(v * inv);
    }
}

/// max |v| (0 for an empty slice; exact in any order).
#[multiversion::multiversion(targets = "simd")]
fn abs_max(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            acc[k] = acc[k].max(c[k].abs());
        }
    }
    let m = acc.iter().fold(0.0f32, |m, a| m.max(*a));
    chunks.remainder().iter().fold(m, |m, x| m.max(x.abs()))
}

/// Σ (v·s)² in a fixed order (eight interleaved partial sums, then added in order), so the
/// result does not depend on the instruction set.
#[multiversion::multiversion(targets = "simd")]
fn scaled_sum_sq(v: &[f32], s: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            let u = c[k] * s;
            acc[k] += u * u;
        }
    }
    let mut total = 0.0;
    for a in acc {
        total += a;
    }
    for x in chunks.remainder() {
        let u = x * s;
        total += u * u;
    }
    total
}

/// Splits an optional scratch matrix into per-column slices (empty slices if unused).
fn column_slices(m: &mut Mat, rows: usize, cols: usize, used: bool) -> Vec<&mut [f32]> {
    if used {
        ensure_shape(m, rows, cols);
        m.as_mut_slice().chunks_mut(rows.max(1)).collect()
    } else {
        (0..cols).map(|_| <&mut [f32]>::default()).collect()
    }
}

impl Substrate for Chip {
    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn forward(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        noise: &mut Rng,
    ) {
        self.read_forward(layer, x, received, activity, noise);
        self.count_read(layer, x.ncols(), false);
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_native(
        &mut self,
        layer: usize,
        x: &Mat,
        received: &mut Mat,
        activity: &mut Mat,
        next: &mut Mat,
        goodness: &mut [f32],
        noise: &mut Rng,
    ) {
        native::forward(self, layer, x, received, activity, next, goodness, noise);
    }

    fn transpose_read(&mut self, layer: usize, d: &Mat, out_m: &mut Mat, noise: &mut Rng) {
        let prec = self.precision;
        let seed: u64 = noise.random();
        let (seed_out, seed_read) = (derive(seed, "output"), derive(seed, "read"));
        let (inp, out) = self.topology.dims(layer);
        let ly = &mut self.layers[layer];
        let dense = ly.dense();
        assert_eq!(d.nrows(), out, "transpose_read: error rows");
        let b = d.ncols();
        ensure_shape(out_m, inp, b);
        ensure_shape(&mut ly.tin, out, b);
        ly.alpha.resize(b, 0.0);
        ly.unorm2.resize(b, 0.0);
        let g_noise = self.spec.read.g_noise as f32;
        let u2 = column_slices(&mut ly.u2, out, b, g_noise > 0.0);
        let (dac, dspec) = (&self.dac, &self.spec.dac);
        let ideal_dac = dac.step == 0.0 && dspec.scaling == InputScaling::AbsMax;
        // DAC on the errors, per column (no bias line, no black box).
        ly.tin
            .as_mut_slice()
            .par_chunks_mut(out.max(1))
            .zip(d.as_slice().par_chunks(out.max(1)))
            .zip(ly.alpha.par_iter_mut().zip(ly.unorm2.par_iter_mut()))
            .zip(u2)
            .with_min_len(COLS_PER_TASK)
            .for_each(|(((t, dc), (a, n2)), u2c)| {
                let alpha = match dspec.scaling {
                    InputScaling::AbsMax => {
                        let m = abs_max(dc);
                        if m > 0.0 { m } else { 1.0 }
                    }
                    InputScaling::Fixed => dspec.fixed_range as f32,
                };
                let inv = 1.0 / alpha;
                // t holds the DAC's normalised output first, then network units.
                if ideal_dac {
                    for (o, v) in t.iter_mut().zip(dc) {
                        *o = v * inv;
                    }
                } else {
                    dac_column(dc, t, *dac, inv);
                }
                *n2 = scaled_sum_sq(t, 1.0);
                if !u2c.is_empty() {
                    for (o, u) in u2c.iter_mut().zip(t.iter()) {
                        *o = u * u;
                    }
                }
                if ideal_dac {
                    t.copy_from_slice(dc);
                } else {
                    for o in t.iter_mut() {
                        *o *= alpha;
                    }
                }
                *a = alpha;
            });
        if !dense {
            out_m.fill(0.0);
        }
        let alpha = &ly.alpha;
        for (t, tile) in ly.tiles.iter_mut().enumerate() {
            let (r0, rows, k) = (tile.row0, tile.rows, tile.fan_in());
            let tin = ly.tin.rows(r0, rows);
            if !dense {
                // The tile's share of ‖u‖²: its own rows of the errors.
                tile.unorm2.resize(b, 0.0);
                for (j, n2) in tile.unorm2.iter_mut().enumerate() {
                    let col = &ly.tin.as_slice()[j * out + r0..j * out + r0 + rows];
                    *n2 = scaled_sum_sq(col, 1.0 / alpha[j]);
                }
            }
            let dst: &mut Mat = if dense { &mut *out_m } else { &mut tile.tout };
            ensure_shape(dst, k, b);
            gemm_in(
                prec,
                1.0,
                &tile.xb.w.columns(0, k),
                Op::T,
                &tin,
                Op::N,
                0.0,
                dst,
            );
            if g_noise > 0.0 {
                Chip::refresh_gsum(tile, &self.phys);
                ensure_shape(&mut tile.gx2, k, b);
                gemm_in(
                    prec,
                    1.0,
                    &tile.gsum.columns(0, k),
                    Op::T,
                    &ly.u2.rows(r0, rows),
                    Op::N,
                    0.0,
                    &mut tile.gx2,
                );
            }
            let stage = OutStage {
                gain: tile.xb.gain,
                out_noise: self.spec.read.out_noise as f32,
                w_noise: self.spec.read.w_noise as f32,
                g_noise,
                adc: &self.adc,
                bias: &[],
                gsum_bias: &[],
                neurons: None,
            };
            let stream = stage.needs_stream();
            let gx2: &[f32] = if g_noise > 0.0 {
                tile.gx2.as_slice()
            } else {
                &[]
            };
            let unorm2: &[f32] = if dense { &ly.unorm2 } else { &tile.unorm2 };
            let (t_out, t_read) = (tile_seed(seed_out, t), tile_seed(seed_read, t));
            let dst: &mut Mat = if dense { &mut *out_m } else { &mut tile.tout };
            dst.as_mut_slice()
                .par_chunks_mut(k.max(1))
                .enumerate()
                .with_min_len(COLS_PER_TASK)
                .for_each(|(j, y)| {
                    let mut rng = stream.then(|| Normals::new(indexed(t_out, j as u64)));
                    let g = if gx2.is_empty() {
                        &[][..]
                    } else {
                        &gx2[j * k..(j + 1) * k]
                    };
                    let seed_j = derive_index(t_read, j as u64);
                    stage.column(y, g, alpha[j], 0.0, unorm2[j], 0.0, seed_j, rng.as_mut());
                });
            if !dense {
                match &tile.cols {
                    Some(cols) => scatter_add_rows(&tile.tout, cols, out_m),
                    None => *out_m += &tile.tout,
                }
            }
        }
        self.count_read(layer, b, true);
    }

    fn update(&mut self, layer: usize, update: Update<'_>, noise: &mut Rng) {
        self.apply_update(layer, update, noise);
    }

    fn program(&mut self, layer: usize, w: &Mat, b: &[f32], noise: &mut Rng) {
        let seed: u64 = noise.random();
        let wiring = self.topology.wiring(layer);
        let (phys, clock) = (&self.phys, self.clock);
        let mut t = 0;
        let mut writes = 0;
        for_each_tile_block(wiring, w, b, &mut self.layers[layer].tiles, |tile, w, b| {
            tile.xb.program(phys, w, b, clock, tile_seed(seed, t));
            tile.gsum_dirty = true;
            writes += tile.xb.free_devices();
            t += 1;
        });
        self.ledger.count(layer, |c| c.program_writes += writes);
    }

    fn update_granularity(&self, layer: usize) -> Option<f32> {
        if self.phys.mode == UpdateMode::Ideal {
            return None;
        }
        let gain = self.layers.get(layer)?.tiles.first()?.xb.gain;
        Some(self.spec.pair_step() as f32 * gain)
    }

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn advance_time(&mut self, seconds: f64) {
        if seconds.is_nan() || seconds <= 0.0 {
            return;
        }
        let new = self.clock + seconds;
        for tile in self.layers.iter_mut().flat_map(|ly| &mut ly.tiles) {
            tile.xb.drift(&self.phys, self.clock, new);
            tile.gsum_dirty = true;
        }
        self.clock = new;
    }

    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    fn save_state(&self) -> SubstrateState {
        self.state()
    }

    fn load_state(&mut self, state: &SubstrateState) -> Result<Option<String>> {
        self.restore_state(state)
    }

    fn describe(&self) -> String {
        let v = self.spec.variation;
        let v = if v.fract() == 0.0 {
            format!("{v:.1}")
        } else {
            format!("{v}")
        };
        format!(
            "chip {} #{} (variation {v})",
            self.spec.name, self.chip_seed
        )
    }
}
