//! The behavioural contract every [`Substrate`] must meet, as one suite that each
//! implementation's tests run (like a backend conformance suite). Noisy substrates pass
//! it with a looser [`Tolerance`]; the ideal ones with [`Tolerance::EXACT`].
//!
//! Every check runs for each [`WiringKind`] kind: dense, local receptive fields, an
//! explicit mask, and layers fed by several stacked projections (bottom-up, a second
//! input port, top-down) (weights the connectivity leaves out are zero in the nominal maths).

use super::{
    Activation, Connectivity, Geometry, Local, Precision, Projection, Source, Substrate, Topology,
    Update,
};
use crate::linalg::{Mat, Op, gemm};
use crate::rng::{Rng, stream};

/// A factory: (topology, construction seed) → a fresh substrate.
pub type Factory<'a> = &'a dyn Fn(&Topology, u64) -> Box<dyn Substrate>;

/// How far a substrate may stray from the nominal maths.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Max |measured − nominal| of a programmed linear layer, relative to the RMS of the
    /// nominal output.
    pub relative: f32,
}

impl Tolerance {
    /// Float round-off only.
    pub const EXACT: Tolerance = Tolerance { relative: 1e-5 };
}

/// The connectivities every check runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WiringKind {
    /// Every output sees every input.
    Dense,
    /// Local windows on the input seen as a 1 × n map (truncated at the edges).
    Local,
    /// An irregular mask whose units come in pairs with the same inputs.
    Mask,
    /// Several projections into each layer: local windows on the layer below, a dense
    /// one from a second input port (3 units), and a dense top-down one from the layer
    /// above (all but the last layer).
    Stacked,
}

/// Every kind.
pub const WIRINGS: [WiringKind; 4] = [
    WiringKind::Dense,
    WiringKind::Local,
    WiringKind::Mask,
    WiringKind::Stacked,
];

/// Width of the second input port of [`WiringKind::Stacked`] topologies.
const PORT1: usize = 3;

fn connectivity(kind: WiringKind, inp: usize, out: usize) -> Connectivity {
    match kind {
        WiringKind::Dense => Connectivity::Dense,
        WiringKind::Local => {
            let g = [4, 3, 2, 1]
                .into_iter()
                .find(|g| out.is_multiple_of(*g))
                .unwrap();
            Connectivity::Local(Local {
                input: Geometry { h: 1, w: inp, c: 1 },
                grid: [1, g],
                channels: out / g,
                // Windows of about 3/4 of the input (fan-ins like a real layer's, so a
                // chip's per-tile gain and faults weigh as they do in dense layers).
                field: (inp * 3 / 4).max(3),
                stride: (inp / g).max(1),
                pad: (inp / 8).max(1),
            })
        }
        WiringKind::Stacked => connectivity(WiringKind::Local, inp, out),
        WiringKind::Mask => Connectivity::Mask {
            inputs: (0..out)
                .map(|o| {
                    (0..inp as u32)
                        .filter(|i| !(i * 7 + (o as u32 / 2) * 3).is_multiple_of(3) || *i == 0)
                        .collect()
                })
                .collect(),
        },
    }
}

/// A topology of `widths` with every projection wired as `kind`.
pub fn topology(widths: Vec<usize>, act: Activation, kind: WiringKind) -> Topology {
    let conn: Vec<Connectivity> = widths
        .windows(2)
        .map(|w| connectivity(kind, w[0], w[1]))
        .collect();
    let chain = Topology::uniform(widths, act).unwrap();
    if kind != WiringKind::Stacked {
        return chain.with_connectivity(conn).unwrap();
    }
    let layers = chain.layers();
    let projections = conn
        .into_iter()
        .enumerate()
        .map(|(l, c)| {
            let mut ps = vec![
                Projection {
                    from: Topology::below(l),
                    connectivity: c,
                },
                Projection {
                    from: Source::Input(1),
                    connectivity: Connectivity::Dense,
                },
            ];
            if l + 1 < layers {
                ps.push(Projection {
                    from: Source::Layer(l + 1),
                    connectivity: Connectivity::Dense,
                });
            }
            ps
        })
        .collect();
    chain.with_projections(vec![PORT1], projections).unwrap()
}

/// `w` with the weights projection `l` leaves out set to zero.
fn masked(topo: &Topology, l: usize, w: Mat) -> Mat {
    let wiring = topo.wiring(l);
    wiring.unpack(&wiring.pack(&w))
}

/// A dense change in the packed layout of projection `l`.
fn packed(topo: &Topology, l: usize, dw: &Mat) -> Vec<f32> {
    topo.wiring(l).pack(dw)
}

fn signals(rows: usize, cols: usize, seed: u64) -> Mat {
    use rand::RngExt;
    let mut r = stream(seed, "conformance-signals");
    Mat::from_fn(rows, cols, |_, _| r.random_range(-1.0f32..1.0))
}

fn rms(m: &Mat) -> f32 {
    (m.iter().map(|v| v * v).sum::<f32>() / m.len().max(1) as f32).sqrt()
}

fn max_abs_diff(a: &Mat, b: &Mat) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn run(s: &mut dyn Substrate, l: usize, x: &Mat, noise: &mut Rng) -> (Mat, Mat) {
    let (mut r, mut a) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
    s.forward(l, x, &mut r, &mut a, noise);
    (r, a)
}

/// Runs the whole contract, for every connectivity. Substrates held to
/// [`Tolerance::EXACT`] (digital, zero-noise chips) meet every numeric check for every
/// connectivity. Noisy ones meet the numeric checks for dense and masked projections; for
/// the small local (and stacked local + dense) tiles of these test shapes (fan-in 6 to 18, 3 to 5 rows) a tile's own
/// gain, faults and per-tile read noise dominate a relative-error bound calibrated on
/// dense layers, so local and stacked projections are held to the behavioural checks only (shapes,
/// reproducibility, updates move the function, state round trips).
pub fn run_all(make: Factory<'_>, tol: Tolerance) {
    for k in WIRINGS {
        shapes(make, k);
        reproducible(make, k);
        update_moves_the_function_as_asked(make, k);
        state_round_trips(make, k);
        if matches!(k, WiringKind::Local | WiringKind::Stacked)
            && tol.relative > Tolerance::EXACT.relative
        {
            continue;
        }
        programmed_linear_layer_computes_wx_plus_b(make, tol, k);
        bf16_products_stay_within_their_rounding(make, tol, k);
        transpose_read_is_the_adjoint(make, tol, k);
        decay_shrinks_weights(make, tol, k);
        outer_update_equals_dense(make, tol, k);
    }
}

/// Outputs have the documented shapes, and buffers of the wrong size are resized.
pub fn shapes(make: Factory<'_>, kind: WiringKind) {
    let topo = topology(vec![7, 5, 3], Activation::Relu, kind);
    let mut s = make(&topo, 1);
    assert_eq!(s.topology(), &topo);
    // An update granularity, when there is one, is a positive weight change.
    for l in 0..topo.layers() {
        if let Some(g) = s.update_granularity(l) {
            assert!(g.is_finite() && g > 0.0, "{kind:?}: granularity {g}");
        }
    }
    let mut noise = stream(1, "noise");
    let (in0, in1) = (topo.dims(0).0, topo.dims(1).0);
    let x = signals(in0, 4, 1);
    let (r, a) = run(s.as_mut(), 0, &x, &mut noise);
    assert_eq!(r.shape(), (in0, 4));
    assert_eq!(a.shape(), (5, 4));
    assert!(a.iter().all(|v| v.is_finite()));
    // The next layer's lines: this layer's activities, then any other sources.
    let mut x1 = signals(in1, 4, 2);
    x1.rows_mut(0, 5).copy_from(&a);
    let (_, a2) = run(s.as_mut(), 1, &x1, &mut noise);
    assert_eq!(a2.shape(), (3, 4));
    let mut back = Mat::zeros(1, 1);
    s.transpose_read(1, &a2, &mut back, &mut noise);
    assert_eq!(back.shape(), (in1, 4));
}

/// Same construction seed and same noise stream ⇒ bit-identical behaviour.
pub fn reproducible(make: Factory<'_>, kind: WiringKind) {
    let topo = topology(vec![9, 6], Activation::Relu, kind);
    let inp = topo.dims(0).0;
    let x = signals(inp, 5, 2);
    let dw = packed(&topo, 0, &signals(6, inp, 3));
    let outcome = || {
        let mut s = make(&topo, 11);
        let mut noise = stream(5, "noise");
        let (_, a) = run(s.as_mut(), 0, &x, &mut noise);
        s.update(
            0,
            Update::Dense {
                dw: &dw,
                db: &[0.1; 6],
                scale: 0.05,
                decay: 0.0,
            },
            &mut noise,
        );
        let (_, b) = run(s.as_mut(), 0, &x, &mut noise);
        (a, b)
    };
    assert_eq!(outcome(), outcome());
}

/// Programming a linear layer with W, b makes it compute W·received + b.
pub fn programmed_linear_layer_computes_wx_plus_b(
    make: Factory<'_>,
    tol: Tolerance,
    kind: WiringKind,
) {
    let topo = topology(vec![40, 20], Activation::Linear, kind);
    let mut s = make(&topo, 3);
    let mut noise = stream(3, "noise");
    let inp = topo.dims(0).0;
    let w = masked(&topo, 0, signals(20, inp, 4) * 0.3);
    let b: Vec<f32> = (0..20).map(|i| (i as f32 - 10.0) * 0.02).collect();
    s.program(0, &w, &b, &mut noise);
    let x = signals(inp, 16, 5);
    let (r, a) = run(s.as_mut(), 0, &x, &mut noise);
    let mut want = Mat::zeros(20, 16);
    gemm(1.0, &w, Op::N, &r, Op::N, 0.0, &mut want);
    for mut col in want.column_iter_mut() {
        for (v, bi) in col.iter_mut().zip(&b) {
            *v += bi;
        }
    }
    let err = max_abs_diff(&a, &want) / rms(&want);
    assert!(
        err <= tol.relative,
        "{kind:?}: programmed layer: relative error {err} > {}",
        tol.relative
    );
}

/// With [`Precision::Bf16`] a programmed linear layer still computes W·received + b, to
/// within the tolerance plus bf16's operand rounding (2⁻⁷·Σ|w·x| per output); setting
/// f32 again gives the f32 results bit for bit.
pub fn bf16_products_stay_within_their_rounding(
    make: Factory<'_>,
    tol: Tolerance,
    kind: WiringKind,
) {
    let topo = topology(vec![40, 20], Activation::Linear, kind);
    let inp = topo.dims(0).0;
    let w = masked(&topo, 0, signals(20, inp, 4) * 0.3);
    let b: Vec<f32> = (0..20).map(|i| (i as f32 - 10.0) * 0.02).collect();
    let x = signals(inp, 16, 5);
    let outputs = |precisions: &[Precision]| {
        let mut s = make(&topo, 3);
        let mut noise = stream(3, "noise");
        s.program(0, &w, &b, &mut noise);
        let mut out = Vec::new();
        for p in precisions {
            s.set_precision(*p);
            let mut n = noise.clone();
            out.push(run(s.as_mut(), 0, &x, &mut n));
        }
        out
    };
    let f32_only = outputs(&[Precision::F32]);
    let both = outputs(&[Precision::Bf16, Precision::F32]);
    assert_eq!(both[1], f32_only[0], "{kind:?}: f32 after bf16 is not f32");
    assert_ne!(both[0].1, f32_only[0].1, "{kind:?}: bf16 changed nothing");
    let (r, a) = &both[0];
    let mut want = Mat::zeros(20, 16);
    gemm(1.0, &w, Op::N, r, Op::N, 0.0, &mut want);
    let mut mag = Mat::zeros(20, 16);
    gemm(1.0, &w.abs(), Op::N, &r.abs(), Op::N, 0.0, &mut mag);
    for mut col in want.column_iter_mut() {
        for (v, bi) in col.iter_mut().zip(&b) {
            *v += bi;
        }
    }
    let scale = rms(&want);
    for ((got, want), mag) in a.iter().zip(want.iter()).zip(mag.iter()) {
        let bound = tol.relative * scale + 2f32.powi(-7) * mag;
        assert!(
            (got - want).abs() <= bound,
            "{kind:?}: bf16 product {got} vs {want}, bound {bound}"
        );
    }
}

/// `transpose_read` computes Wᵀ·d for the same W that `forward` uses.
pub fn transpose_read_is_the_adjoint(make: Factory<'_>, tol: Tolerance, kind: WiringKind) {
    let topo = topology(vec![30, 12], Activation::Linear, kind);
    let mut s = make(&topo, 4);
    let mut noise = stream(4, "noise");
    let inp = topo.dims(0).0;
    let w = masked(&topo, 0, signals(12, inp, 6) * 0.3);
    s.program(0, &w, &[0.0; 12], &mut noise);
    let d = signals(12, 8, 7);
    let mut back = Mat::zeros(0, 0);
    s.transpose_read(0, &d, &mut back, &mut noise);
    let mut want = Mat::zeros(inp, 8);
    gemm(1.0, &w, Op::T, &d, Op::N, 0.0, &mut want);
    let err = max_abs_diff(&back, &want) / rms(&want);
    assert!(
        err <= tol.relative,
        "{kind:?}: transpose read: relative error {err} > {}",
        tol.relative
    );
}

/// An update that raises unit 0's response to a fixed input raises it (on average).
pub fn update_moves_the_function_as_asked(make: Factory<'_>, kind: WiringKind) {
    let topo = topology(vec![16, 4], Activation::Linear, kind);
    let mut s = make(&topo, 5);
    let mut noise = stream(6, "noise");
    let inp = topo.dims(0).0;
    let x = signals(inp, 32, 8);
    let mean_unit0 = |s: &mut dyn Substrate, noise: &mut Rng| {
        let (_, a) = run(s, 0, &x, noise);
        a.row(0).iter().sum::<f32>() / 32.0
    };
    let before = mean_unit0(s.as_mut(), &mut noise);
    // dw = e0 · mean(x)ᵀ raises unit 0's mean output by ‖mean(x)‖²·scale.
    let mean_x: Vec<f32> = (0..inp)
        .map(|i| x.row(i).iter().sum::<f32>() / 32.0)
        .collect();
    let wiring = topo.wiring(0);
    let norm2: f32 = (0..inp)
        .filter(|c| wiring.connects(0, *c))
        .map(|c| mean_x[c] * mean_x[c])
        .sum();
    let dw = Mat::from_fn(4, inp, |r, c| if r == 0 { mean_x[c] / norm2 } else { 0.0 });
    let dw = packed(&topo, 0, &dw);
    s.update(
        0,
        Update::Dense {
            dw: &dw,
            db: &[0.0; 4],
            scale: 0.5,
            decay: 0.0,
        },
        &mut noise,
    );
    let after = mean_unit0(s.as_mut(), &mut noise);
    let gain = after - before;
    assert!(
        gain > 0.25 && gain < 0.75,
        "{kind:?}: asked for +0.5, got {gain:+}"
    );
}

/// `decay` shrinks every weight toward zero by that fraction.
pub fn decay_shrinks_weights(make: Factory<'_>, tol: Tolerance, kind: WiringKind) {
    let topo = topology(vec![24, 10], Activation::Linear, kind);
    let mut s = make(&topo, 6);
    let mut noise = stream(7, "noise");
    let w = masked(&topo, 0, signals(10, topo.dims(0).0, 9) * 0.4);
    s.program(0, &w, &[0.0; 10], &mut noise);
    let zero = vec![0.0; topo.wiring(0).weight_count()];
    s.update(
        0,
        Update::Dense {
            dw: &zero,
            db: &[0.0; 10],
            scale: 1.0,
            decay: 0.5,
        },
        &mut noise,
    );
    let eye = Mat::identity(10, 10);
    let mut wt = Mat::zeros(0, 0);
    s.transpose_read(0, &eye, &mut wt, &mut noise);
    let want = w.transpose() * 0.5;
    let err = max_abs_diff(&wt, &want) / rms(&want);
    assert!(
        err <= tol.relative.max(0.05),
        "{kind:?}: decay: relative error {err}"
    );
}

/// The outer-product form asks for the same change as the dense one.
pub fn outer_update_equals_dense(make: Factory<'_>, tol: Tolerance, kind: WiringKind) {
    let topo = topology(vec![12, 6], Activation::Linear, kind);
    let inp = topo.dims(0).0;
    let x = signals(inp, 5, 10);
    let d = signals(6, 5, 11);
    let mut dw = Mat::zeros(6, inp);
    gemm(1.0, &d, Op::N, &x, Op::T, 0.0, &mut dw);
    let dw = packed(&topo, 0, &dw);
    let db: Vec<f32> = (0..6).map(|i| d.row(i).iter().sum()).collect();
    let read = |outer: bool| {
        let mut s = make(&topo, 7);
        let mut noise = stream(8, "noise");
        let w = masked(&topo, 0, signals(6, inp, 12) * 0.3);
        s.program(0, &w, &[0.0; 6], &mut noise);
        let u = if outer {
            Update::Outer {
                x: &x,
                d: &d,
                scale: 0.02,
                decay: 0.1,
            }
        } else {
            Update::Dense {
                dw: &dw,
                db: &db,
                scale: 0.02,
                decay: 0.1,
            }
        };
        s.update(0, u, &mut noise);
        let probe = signals(inp, 9, 13);
        run(s.as_mut(), 0, &probe, &mut noise).1
    };
    let (a, b) = (read(true), read(false));
    let err = max_abs_diff(&a, &b) / rms(&b);
    assert!(
        err <= tol.relative.max(1e-5) * 4.0,
        "{kind:?}: outer vs dense: relative error {err}"
    );
}

/// Saving and loading the state into a fresh instance of the same identity restores the
/// function exactly (same noise stream ⇒ same outputs).
pub fn state_round_trips(make: Factory<'_>, kind: WiringKind) {
    let topo = topology(vec![10, 8, 4], Activation::Relu, kind);
    let mut s = make(&topo, 8);
    let mut noise = stream(9, "noise");
    let inp = topo.dims(0).0;
    let dw = packed(&topo, 0, &signals(8, inp, 14));
    s.update(
        0,
        Update::Dense {
            dw: &dw,
            db: &[0.2; 8],
            scale: 0.1,
            decay: 0.0,
        },
        &mut noise,
    );
    let state = s.save_state();
    let mut fresh = make(&topo, 8);
    let note = fresh.load_state(&state).expect("load_state");
    assert!(
        note.is_none(),
        "same identity must not be reported as another instance: {note:?}"
    );
    let x = signals(inp, 6, 15);
    let (_, a) = run(s.as_mut(), 0, &x, &mut stream(10, "noise"));
    let (_, b) = run(fresh.as_mut(), 0, &x, &mut stream(10, "noise"));
    assert_eq!(a, b);
    assert_eq!(fresh.save_state(), state);
}
