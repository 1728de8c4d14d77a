//! `mortal bench`: this machine's GEMM rate for the shapes the models use, and training /
//! evaluation throughput, measured in one run (medians of repeats) so ratios between them
//! are meaningful.
//!
//! FLOP accounting (a multiply-add counts 2): one Forward-Forward training sample is one
//! positive, one neutral and one negative image forward through every layer plus the
//! weight-gradient GEMM over the positive and negative images (`2·(in·out)` each), plus the
//! softmax head's forward and gradient; i.e. `10·Σ in·out + 4·10·Σ_head widths`.

mod bp;
mod chip;
use bp::{bp_analog_training, bp_training, one_thread_pool, transfer_vs_analog};
use chip::{chip_update, ff_chip_training};
mod distill;
mod isa;
mod learners;
use learners::{ff_local_vs_dense, recurrent_vs_feedforward};
mod load;
mod phases;
mod pytorch;

pub use phases::Phases;
use phases::Timed;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use mortal::data::PIXELS;
use mortal::error::Result;
use mortal::learn::ff::FfLearner;
use mortal::learn::ff::NegativeLabels;
use mortal::learn::{BpConfig, BpLearner, FfConfig};
use mortal::linalg::{Mat, Op, gemm, gemm_flops};
use mortal::rng::stream;
use mortal::substrate::device::spec::UpdateMode;
use mortal::substrate::device::{Chip, HardwareSpec, presets};
use mortal::substrate::{Activation, DigitalNet, Precision, Substrate, Topology};

/// Options of the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Repeats per measurement; the median is reported.
    pub repeats: usize,
    /// Small shapes only (a smoke test of the benchmark).
    pub quick: bool,
    /// Write the measurements as JSON here.
    pub json: Option<PathBuf>,
    /// Only the measurement with exactly this name, or else those whose name contains it.
    pub only: Option<String>,
    /// A Python interpreter with torch: time the same FF step in PyTorch between
    /// mortal's repeats of the `ff-train` rows of the large net.
    pub pytorch: Option<PathBuf>,
}

/// One measured configuration.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurement {
    /// Cost relative to the ideal digital substrate for the same shapes (chip measurements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_digital: Option<f64>,
    /// What was measured.
    pub name: String,
    /// Training throughput (samples per second), if a training measurement.
    pub samples_per_s: Option<f64>,
    /// Evaluation throughput (images per second), if an evaluation measurement.
    pub images_per_s: Option<f64>,
    /// Achieved GFLOP/s counting every pass's GEMM FLOPs (not for update measurements,
    /// which do no GEMM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// GEMM rate of the same shapes measured in this run, GFLOP/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gemm_gflops: Option<f64>,
    /// gflops / gemm_gflops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_gemm: Option<f64>,
    /// Median wall time per repeat, seconds.
    pub seconds: f64,
    /// Update measurements: wall time per device pair, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_per_pair: Option<f64>,
    /// Sparse nets: step time over what the dense reference's step time predicts for
    /// this net's number of existing weights (timed alternately in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_weights: Option<f64>,
    /// Sparse nets: step time over the step time of dense layers of the same widths (a
    /// masked dense product costs at least that).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_dense_same_widths: Option<f64>,
    /// Recurrent FF: step time over the feed-forward FF step of the same hidden layers on
    /// the same kind of substrate (timed alternately in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_feedforward: Option<f64>,
    /// Operation counters: step time with counting on over the same steps with it off
    /// (timed alternately in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_of_counting: Option<f64>,
    /// Distillation: a step (the teacher's read of the batch on its chip + the student's
    /// soft FF step) over a plain FF step on the same kind of chip (timed alternately).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_ff_step: Option<f64>,
    /// Tiki-Taka: step time over bp-analog's step on the same chip and batch (timed
    /// alternately in the same run, one core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_bp_analog: Option<f64>,
    /// Chip training rows: where the chip's step time went, ms per step (medians).
    pub phases: Option<Phases>,
    /// Chip training rows: the same for the digital substrate, timed alternately.
    pub digital_phases: Option<Phases>,
    /// Chip training rows: the chip step's cost over the digital step if its update took
    /// only as long as the digital update: `(chip read + chip host + digital update) /
    /// digital step`. A floor that no faster update kernel can go below.
    pub cost_vs_digital_with_digital_update: Option<f64>,
    /// Pulsed chip rows: ms per step (training rows) or per update of every layer
    /// (`chip-update` rows) that the update's memory traffic alone takes: the same chunks
    /// read and write every pair's state as the update does, with none of its physics
    /// (timed alternately with the measurement). No kernel over this state layout is
    /// faster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_traffic_floor_ms: Option<f64>,
    /// Pulsed chip training rows: the chip step's cost over the digital step if its update
    /// took only its memory traffic: `(chip read + chip host + traffic floor) / digital
    /// step`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_vs_digital_with_traffic_floor_update: Option<f64>,
    /// Average number of cores that other processes kept busy during this measurement
    /// (from `/proc`; the build machines are shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_load_cores: Option<f64>,
    /// `--pytorch`: the same FF step's throughput in PyTorch (samples/s, median of runs
    /// interleaved with mortal's repeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pytorch_samples_per_s: Option<f64>,
    /// samples_per_s / pytorch_samples_per_s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_pytorch: Option<f64>,
    /// Shared-machine row: throughput with one core kept busy by other work over the
    /// quiet throughput (timed alternately in the same run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_of_quiet: Option<f64>,
    /// ISA row: one core's f32 FMA rate, GFLOP/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fma_f32_gflops_per_core: Option<f64>,
    /// ISA row: one core's AVX512-BF16 dot-product rate (bf16 in, f32 accumulate),
    /// GFLOP/s; absent where the CPU has no AVX512-BF16.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dot_bf16_gflops_per_core: Option<f64>,
    /// ISA row: whether AMX-BF16 tiles are usable here (CPU and OS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amx_usable: Option<bool>,
}

/// Everything `mortal bench` reports.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub mortal_version: String,
    pub threads: usize,
    pub repeats: usize,
    pub measurements: Vec<Measurement>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median seconds of `repeats` runs of `f` after one warm-up run.
pub fn time_median(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn random(rows: usize, cols: usize, seed: u64) -> Mat {
    use rand::RngExt;
    let mut r = stream(seed, "bench");
    Mat::from_fn(rows, cols, |_, _| r.random_range(0.0f32..1.0))
}

/// The GEMMs of one FF training step (batch `b`) for layer widths `widths`, as
/// (m, k, n, op_b) of `C(m×n) = A·op(B)`.
fn ff_step_gemms(widths: &[usize], b: usize, head_from: usize) -> Vec<(usize, usize, usize, Op)> {
    let mut v = Vec::new();
    for w in widths.windows(2) {
        let (i, o) = (w[0], w[1]);
        v.push((o, i, 2 * b, Op::N)); // positive + neutral forward
        v.push((o, i, b, Op::N)); // negative forward
        v.push((o, 2 * b, i, Op::T)); // weight gradient d·rᵀ over 2B samples
    }
    for w in &widths[head_from..] {
        v.push((10, *w, b, Op::N)); // head logits
        v.push((10, b, *w, Op::T)); // head gradient
    }
    v
}

/// GFLOP/s of running exactly this list of GEMMs (their total FLOPs over total time).
fn gemm_rate(shapes: &[(usize, usize, usize, Op)], repeats: usize) -> f64 {
    let mats: Vec<(Mat, Mat, Mat)> = shapes
        .iter()
        .enumerate()
        .map(|(s, &(m, k, n, op))| {
            let b = match op {
                Op::N => random(k, n, s as u64),
                Op::T => random(n, k, s as u64),
            };
            (random(m, k, 100 + s as u64), b, Mat::zeros(m, n))
        })
        .collect();
    let flops: f64 = shapes.iter().map(|&(m, k, n, _)| gemm_flops(m, n, k)).sum();
    let mut mats = mats;
    let reps = 5;
    let t = time_median(repeats, || {
        for _ in 0..reps {
            for ((a, b, c), &(_, _, _, op)) in mats.iter_mut().zip(shapes) {
                gemm(1.0, a, Op::N, b, op, 0.0, c);
            }
        }
    });
    flops * reps as f64 / t / 1e9
}

/// FLOPs of one FF training sample.
pub fn ff_flops_per_sample(widths: &[usize], head_from: usize) -> f64 {
    let sum: f64 = widths.windows(2).map(|w| (w[0] * w[1]) as f64).sum();
    let head: f64 = widths[head_from..].iter().map(|w| (10 * w) as f64).sum();
    10.0 * sum + 4.0 * head
}

/// FF training steps on fixed random images: a learner and its inputs and streams.
struct FfRun {
    learner: FfLearner,
    images: Mat,
    labels: Vec<usize>,
    neg: mortal::rng::Rng,
    noise: mortal::rng::Rng,
}

impl FfRun {
    fn new(cfg: &FfConfig, topology: &Topology, batch: usize) -> Result<Self> {
        Ok(FfRun {
            learner: FfLearner::new(cfg.clone(), topology.clone())?,
            images: random(PIXELS, batch, 7),
            labels: (0..batch).map(|j| j % 10).collect(),
            neg: stream(1, "neg"),
            noise: stream(1, "noise"),
        })
    }

    /// `batches` training steps on `sub`.
    fn steps(&mut self, sub: &mut dyn Substrate, batches: usize) -> Result<()> {
        for _ in 0..batches {
            let (x, y) = (&self.images, &self.labels);
            self.learner
                .train_batch(sub, x, y, 1.0, &mut self.neg, &mut self.noise)?;
        }
        Ok(())
    }
}

/// Median seconds of `batches` FF training steps on `sub`.
fn ff_steps(
    sub: &mut dyn Substrate,
    cfg: &FfConfig,
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<f64> {
    let mut run = FfRun::new(cfg, sub.topology(), batch)?;
    let mut failed = None;
    let t = time_median(repeats, || {
        if let Err(e) = run.steps(sub, batches) {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// Seconds of `batches` FF training steps on `sub` after a warm-up run of as many, and
/// where they went ([`phases`]).
fn ff_steps_phased(
    sub: &mut dyn Substrate,
    cfg: &FfConfig,
    batch: usize,
    batches: usize,
) -> Result<(f64, Phases)> {
    let mut run = FfRun::new(cfg, sub.topology(), batch)?;
    run.steps(sub, batches)?;
    let mut timed = Timed::new(sub);
    let t = Instant::now();
    run.steps(&mut timed, batches)?;
    let wall = t.elapsed().as_secs_f64();
    Ok((wall, timed.phases(wall, batches)))
}

/// What a row's name adds for its precision (nothing for f32).
fn precision_suffix(p: Precision) -> String {
    if p.is_f32() {
        String::new()
    } else {
        format!(" {}", p.name())
    }
}

/// The reference FF recipe for a network with these hidden layers.
fn ff_config(hidden: &[usize]) -> FfConfig {
    FfConfig {
        eval_from: 2.min(hidden.len()),
        ..FfConfig::default()
    }
}

fn ff_topology(hidden: &[usize]) -> Result<Topology> {
    let mut widths = vec![PIXELS];
    widths.extend_from_slice(hidden);
    Topology::uniform(widths, Activation::Relu)
}

/// FF training steps on a chip with the operation counters on vs off, timed alternately:
/// what counting costs.
fn ff_counting_overhead(
    spec: &HardwareSpec,
    cfg: &FfConfig,
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let mut on = Chip::new(spec, topo.clone(), 1, 1)?;
    let mut off = on.clone();
    off.ledger_mut().set_enabled(false);
    let (t_on, t_off) = alternately(
        repeats,
        || ff_steps(&mut on, cfg, batch, batches, 1),
        || ff_steps(&mut off, cfg, batch, batches, 1),
    )?;
    Ok(Measurement {
        name: format!(
            "ff-train {} b{batch} chip {} counters",
            label(hidden),
            spec.name
        ),
        samples_per_s: Some((batches * batch) as f64 / t_on),
        seconds: t_on,
        cost_of_counting: Some(t_on / t_off),
        ..Measurement::default()
    })
}

/// Times `a` and `b` `repeats` times each, alternately, `b` first on even rounds and `a`
/// first on odd ones (so neither side always runs on a warmer machine); their medians.
fn alternately(
    repeats: usize,
    mut a: impl FnMut() -> Result<f64>,
    mut b: impl FnMut() -> Result<f64>,
) -> Result<(f64, f64)> {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for k in 0..repeats.max(1) {
        if k % 2 == 0 {
            tb.push(b()?);
            ta.push(a()?);
        } else {
            ta.push(a()?);
            tb.push(b()?);
        }
    }
    Ok((median(ta), median(tb)))
}

/// A training-throughput measurement: `samples` in `seconds`, `flops_per_sample` of GEMM
/// work each, against this run's rate for the step's GEMM `shapes`.
fn training_rate(
    name: String,
    samples: usize,
    seconds: f64,
    flops_per_sample: f64,
    shapes: &[(usize, usize, usize, Op)],
    repeats: usize,
) -> Measurement {
    let samples_per_s = samples as f64 / seconds;
    let gflops = samples_per_s * flops_per_sample / 1e9;
    let gemm_gflops = gemm_rate(shapes, repeats);
    Measurement {
        name,
        samples_per_s: Some(samples_per_s),
        gflops: Some(gflops),
        gemm_gflops: Some(gemm_gflops),
        fraction_of_gemm: Some(gflops / gemm_gflops),
        seconds,
        ..Measurement::default()
    }
}

/// A digital network (`spec` None) or a chip of `spec` (chip and device seed 1) of
/// topology `t`.
fn substrate(spec: Option<&HardwareSpec>, t: &Topology) -> Result<Box<dyn Substrate>> {
    Ok(match spec {
        None => Box::new(DigitalNet::new(t.clone(), 1)),
        Some(s) => Box::new(Chip::new(s, t.clone(), 1, 1)?),
    })
}

/// The digital FF training row: `hidden` layers, these negatives; with `torch`, the
/// same step in PyTorch timed between mortal's repeats.
fn ff_training(
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
    negatives: NegativeLabels,
    torch: Option<&pytorch::TorchBench>,
    precision: Precision,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let widths = topo.widths().to_vec();
    let cfg = FfConfig {
        negatives,
        ..ff_config(hidden)
    };
    let head_from = cfg.eval_from;
    let mut net = DigitalNet::new(topo, 1);
    net.set_precision(precision);
    let (t, torch_rate) = match torch {
        None => (ff_steps(&mut net, &cfg, batch, batches, repeats)?, None),
        Some(tb) => {
            let kind = match negatives {
                NegativeLabels::Random => "random",
                _ => "hard",
            };
            let threads = rayon::current_num_threads();
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..repeats.max(1) {
                ours.push(ff_steps(&mut net, &cfg, batch, batches, 1)?);
                theirs.push(tb.ff_samples_per_s(hidden, batch, batches, kind, threads)?);
            }
            (median(ours), Some(median(theirs)))
        }
    };
    let neg = match negatives {
        NegativeLabels::Random => " random negatives",
        _ => "",
    };
    let neg = format!("{neg}{}", precision_suffix(precision));
    let samples_per_s = (batches * batch) as f64 / t;
    Ok(Measurement {
        pytorch_samples_per_s: torch_rate,
        vs_pytorch: torch_rate.map(|r| samples_per_s / r),
        ..training_rate(
            format!("ff-train {} b{batch}{neg}", label(hidden)),
            batches * batch,
            t,
            ff_flops_per_sample(&widths, head_from),
            &ff_step_gemms(&widths, batch, head_from),
            repeats,
        )
    })
}

/// The shared-machine row: digital FF steps timed alternately on a quiet machine and with
/// one core kept busy by another process ([`load::BusyCore`]).
fn ff_training_one_core_busy(
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let cfg = ff_config(hidden);
    let mut net = DigitalNet::new(topo, 1);
    let (mut quiet, mut busy) = (Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        quiet.push(ff_steps(&mut net, &cfg, batch, batches, 1)?);
        let hog = load::BusyCore::start();
        busy.push(ff_steps(&mut net, &cfg, batch, batches, 1)?);
        drop(hog);
    }
    let (tq, tb) = (median(quiet), median(busy));
    Ok(Measurement {
        name: format!("ff-train {} b{batch} one core busy", label(hidden)),
        samples_per_s: Some((batches * batch) as f64 / tb),
        seconds: tb,
        share_of_quiet: Some(tq / tb),
        ..Measurement::default()
    })
}

fn ff_evaluation(hidden: &[usize], images_n: usize, repeats: usize) -> Result<Measurement> {
    let mut widths = vec![PIXELS];
    widths.extend_from_slice(hidden);
    let topo = Topology::uniform(widths.clone(), Activation::Relu)?;
    let cfg = FfConfig {
        eval_from: 2.min(hidden.len()),
        ..FfConfig::default()
    };
    let head_from = cfg.eval_from;
    let mut learner = FfLearner::new(cfg, topo.clone())?;
    let mut net = DigitalNet::new(topo, 1);
    let batch = mortal::learn::ff::eval::EVAL_BATCH;
    let images = random(PIXELS, batch, 8);
    let mut noise = stream(2, "noise");
    let mut scores = Default::default();
    let rounds = images_n.div_ceil(batch);
    let t = time_median(repeats, || {
        for _ in 0..rounds {
            learner.scores(&mut net, &images, true, &mut noise, &mut scores);
        }
    });
    let images_per_s = (rounds * batch) as f64 / t;
    let sum: f64 = widths.windows(2).map(|w| (w[0] * w[1]) as f64).sum();
    let head: f64 = widths[head_from..].iter().map(|w| (10 * w) as f64).sum();
    let flops_per_image = 11.0 * 2.0 * sum + 2.0 * head;
    let shapes: Vec<_> = widths
        .windows(2)
        .map(|w| (w[1], w[0], 11 * batch, Op::N))
        .collect();
    let gemm_gflops = gemm_rate(&shapes, repeats);
    let gflops = images_per_s * flops_per_image / 1e9;
    Ok(Measurement {
        name: format!("ff-eval-goodness {}", label(hidden)),
        images_per_s: Some(images_per_s),
        gflops: Some(gflops),
        gemm_gflops: Some(gemm_gflops),
        fraction_of_gemm: Some(gflops / gemm_gflops),
        seconds: t,
        ..Measurement::default()
    })
}

fn label(hidden: &[usize]) -> String {
    let same = hidden.iter().all(|w| *w == hidden[0]);
    if same {
        format!("{}x{}", hidden.len(), hidden[0])
    } else {
        hidden
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// Runs the benchmark, prints a table and optionally writes JSON.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    use NegativeLabels::{Hard, Random};
    use Precision::{Bf16, F32};
    let r = opts.repeats;
    let (small, big, batches) = if opts.quick {
        (vec![100, 100], vec![200, 200, 200], 2)
    } else {
        (vec![1000, 1000, 1000], vec![2000, 2000, 2000, 2000], 10)
    };
    let (reram, harsh) = (presets::reram(), presets::harsh());
    let mut stochastic = reram.clone();
    stochastic.update.mode = UpdateMode::StochasticPulse;
    let ff = ff_config(&small);
    // Rank-1 pulse trains need the outer-product form of the update, i.e. plain SGD
    // (momentum 0); both sides of the ratio use it.
    let sgd = FfConfig {
        optimizer: mortal::learn::OptimizerConfig::Sgd {
            lr: 1e-2,
            momentum: 0.0,
            weight_decay: 1e-3,
        },
        ..ff.clone()
    };
    // Analog-native FF (goodness read in the periphery, rank-1 pulse trains; plain SGD,
    // without the analog momentum's fast arrays) on the same stochastic-pulse chip: its
    // cost beside the as-simulated `stochastic-pulse sgd` row.
    let native = FfConfig {
        mode: mortal::learn::ff::FfMode::AnalogNative,
        negatives: mortal::data::negatives::NegativeLabels::Random,
        peer_norm: 0.0,
        ..sgd.clone()
    };
    let few = (batches / 4).max(1);
    let torch = opts
        .pytorch
        .as_deref()
        .map(pytorch::TorchBench::new)
        .transpose()?;
    let (eval_small, eval_big) = (if opts.quick { 200 } else { 1000 }, 500);
    let analog_batches = if opts.quick { 5 } else { 100 };
    type Case<'a> = (String, Box<dyn Fn() -> Result<Measurement> + 'a>);
    let mut cases: Vec<Case<'_>> = vec![
        (
            format!("ff-train {} b100", label(&small)),
            Box::new(|| ff_training(&small, 100, batches * 2, r, Hard, None, F32)),
        ),
        (
            format!("ff-train {} b100 bf16", label(&small)),
            Box::new(|| ff_training(&small, 100, batches * 2, r, Hard, None, Bf16)),
        ),
        (
            format!("ff-train {} b100", label(&big)),
            Box::new(|| ff_training(&big, 100, batches, r, Hard, torch.as_ref(), F32)),
        ),
        (
            format!("ff-train {} b100 random negatives", label(&big)),
            Box::new(|| ff_training(&big, 100, batches, r, Random, torch.as_ref(), F32)),
        ),
        (
            format!("ff-train {} b100 bf16", label(&big)),
            Box::new(|| ff_training(&big, 100, batches, r, Hard, torch.as_ref(), Bf16)),
        ),
        (
            format!("ff-train {} b100 random negatives bf16", label(&big)),
            Box::new(|| ff_training(&big, 100, batches, r, Random, torch.as_ref(), Bf16)),
        ),
        (
            format!("ff-train {} b100 one core busy", label(&small)),
            Box::new(|| ff_training_one_core_busy(&small, 100, batches * 2, r)),
        ),
        (
            format!("ff-eval-goodness {}", label(&small)),
            Box::new(|| ff_evaluation(&small, eval_small, r)),
        ),
        (
            format!("bp-train {} b100", label(&big)),
            Box::new(|| bp_training(&big, 100, batches, r)),
        ),
    ];
    if !opts.quick {
        cases.push((
            format!("ff-eval-goodness {}", label(&big)),
            Box::new(|| ff_evaluation(&big, eval_big, r)),
        ));
    }
    let chip_cases: [(&str, &HardwareSpec, &FfConfig, usize, Precision); 6] = [
        ("chip reram", &reram, &ff, batches, F32),
        ("chip harsh", &harsh, &ff, batches, F32),
        ("chip reram bf16 reads", &reram, &ff, batches, Bf16),
        ("chip harsh bf16 reads", &harsh, &ff, batches, Bf16),
        (
            "chip reram stochastic-pulse sgd",
            &stochastic,
            &sgd,
            few,
            F32,
        ),
        (
            "chip reram stochastic-pulse analog-native",
            &stochastic,
            &native,
            few,
            F32,
        ),
    ];
    for (name, spec, cfg, n, reads) in chip_cases {
        let small = &small;
        cases.push((
            format!("ff-train {} b100 {name}", label(small)),
            Box::new(move || ff_chip_training(spec, name, cfg, small, 100, n, r, reads)),
        ));
    }
    {
        let (small, ff, spec) = (&small, &ff, &reram);
        cases.push((
            format!("ff-train {} b100 chip reram counters", label(small)),
            Box::new(move || ff_counting_overhead(spec, ff, small, 100, batches, r)),
        ));
    }
    for spec in [&reram, &harsh] {
        let small = &small;
        cases.push((
            format!("chip-update {} {}", label(small), spec.name),
            Box::new(move || chip_update(spec, small, r)),
        ));
    }
    // The same kernel on a net whose chip state (≈ 4 MB: 88 k pairs) fits the two cores'
    // L2 caches: a cost per pair no lower than the 3×1000 one (123 MB) says the kernel is
    // bound by its arithmetic, not by memory.
    {
        let (spec, cached) = (&reram, [100usize, 100]);
        cases.push((
            format!("chip-update {} {}", label(&cached), spec.name),
            Box::new(move || chip_update(spec, &cached, r)),
        ));
    }
    for spec in [&reram, &harsh] {
        for hints in [false, true] {
            let small = &small;
            cases.push((
                format!(
                    "distill-step{} {} b100 chip {} vs ff",
                    if hints { " hints" } else { "" },
                    label(small),
                    spec.name
                ),
                Box::new(move || distill::distill_vs_ff(spec, small, 100, batches, r, hints)),
            ));
        }
    }
    for spec in [None, Some(&reram)] {
        let small = &small;
        let on = spec.map_or(String::new(), |s| format!(" chip {}", s.name));
        cases.push((
            format!("ff-train paper-local b100{on} vs {}", label(small)),
            Box::new(move || ff_local_vs_dense(spec, small, 100, (batches / 2).max(1), r)),
        ));
    }
    for spec in [None, Some(&reram)] {
        let small = &small;
        let on = spec.map_or(String::new(), |s| format!(" chip {}", s.name));
        cases.push((
            format!("ff-recurrent-train {} b100{on} vs ff", label(small)),
            Box::new(move || recurrent_vs_feedforward(spec, small, 100, (batches / 4).max(1), r)),
        ));
    }
    cases.push((
        "isa-peak 1 core".into(),
        Box::new(|| {
            let p = one_thread_pool()?.install(isa::measure);
            Ok(Measurement {
                name: "isa-peak 1 core".into(),
                fma_f32_gflops_per_core: Some(p.fma_f32),
                dot_bf16_gflops_per_core: p.dot_bf16,
                amx_usable: Some(p.amx_usable),
                ..Measurement::default()
            })
        }),
    ));
    cases.push((
        "bp-analog 256-128 sigmoid b64 1 core".into(),
        Box::new(|| bp_analog_training(&[256, 128], 64, analog_batches, r)),
    ));
    {
        use mortal::learn::backprop::transfer::Variant;
        for v in [Variant::Ttv2, Variant::Cttv2, Variant::Agad] {
            cases.push((
                format!("bp-{v:?} 256-128 sigmoid b64 1 core vs bp-analog").to_lowercase(),
                Box::new(move || transfer_vs_analog(v, &[256, 128], 64, analog_batches, r)),
            ));
        }
    }
    // An exact name selects that measurement alone; otherwise every name containing it.
    let exact = |o: &String| cases.iter().any(|(n, _)| n == o);
    let wanted = |name: &str| {
        opts.only.as_ref().is_none_or(|o| {
            if exact(o) {
                name == o
            } else {
                name.contains(o.as_str())
            }
        })
    };
    let mut ms = Vec::new();
    for (name, case) in &cases {
        if wanted(name) {
            let probe = load::LoadProbe::start();
            let mut m = case()?;
            m.foreign_load_cores = probe.finish();
            ms.push(m);
        }
    }
    if ms.is_empty() {
        let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
        return Err(mortal::error::Error::param(
            "--only",
            opts.only.as_deref().unwrap_or(""),
            format!("matches no measurement; they are: {}", names.join("; ")),
        ));
    }
    let report = BenchReport {
        mortal_version: env!("CARGO_PKG_VERSION").to_string(),
        threads: rayon::current_num_threads(),
        repeats: r,
        measurements: ms,
    };
    println!(
        "{:<52} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "measurement", "samples/s", "images/s", "GFLOP/s", "GEMM", "fraction", "vs digital", "load"
    );
    for m in &report.measurements {
        let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.0}"));
        let g = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.1}"));
        println!(
            "{:<52} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8}",
            m.name,
            f(m.samples_per_s),
            f(m.images_per_s),
            g(m.gflops),
            g(m.gemm_gflops),
            m.fraction_of_gemm
                .map_or("-".into(), |x| format!("{:.0}%", 100.0 * x)),
            m.cost_vs_digital.map_or("-".into(), |c| format!("{c:.2}x")),
            m.foreign_load_cores
                .map_or("-".into(), |c| format!("{c:.2}"))
        );
    }
    println!("(load: cores other processes kept busy during the measurement)");
    for m in &report.measurements {
        if let (Some(t), Some(v)) = (m.pytorch_samples_per_s, m.vs_pytorch) {
            println!(
                "{}: PyTorch {t:.0} samples/s on the same step, mortal {v:.2}x",
                m.name
            );
        }
        if let Some(f) = m.fma_f32_gflops_per_core {
            let dot = m
                .dot_bf16_gflops_per_core
                .map_or("no AVX512-BF16".into(), |d| {
                    format!("bf16 dot product (vdpbf16ps) {d:.0} GFLOP/s, {:.2}x", d / f)
                });
            println!(
                "{}: f32 FMA {f:.0} GFLOP/s; {dot}; AMX tiles {}",
                m.name,
                if m.amx_usable == Some(true) {
                    "usable"
                } else {
                    "not usable"
                }
            );
        }
        if let Some(sh) = m.share_of_quiet {
            println!(
                "{}: {:.0} % of the quiet throughput with one core kept busy by other work",
                m.name,
                100.0 * sh
            );
        }
    }
    for m in &report.measurements {
        if let Some(c) = m.cost_vs_weights {
            println!(
                "{}: {c:.2}x the time its number of existing weights predicts, {:.2}x the \
                 time of dense layers of the same widths",
                m.name,
                m.cost_vs_dense_same_widths.unwrap_or(f64::NAN)
            );
        }
    }
    for m in &report.measurements {
        if let Some(c) = m.cost_vs_feedforward {
            println!(
                "{}: {c:.2}x the feed-forward FF step of the same layers (8 iterations, each \
                 layer fed from below and above)",
                m.name
            );
        }
    }
    for m in &report.measurements {
        if let (Some(c), Some(d), Some(f)) = (
            m.phases,
            m.digital_phases,
            m.cost_vs_digital_with_digital_update,
        ) {
            println!(
                "{}: ms per step read / update / host: chip {:.2} / {:.2} / {:.2}, digital \
                 {:.2} / {:.2} / {:.2}; with an update as fast as digital's the chip step \
                 would still cost {f:.2}x digital{}",
                m.name,
                c.read_ms,
                c.update_ms,
                c.host_ms,
                d.read_ms,
                d.update_ms,
                d.host_ms,
                match (
                    m.update_traffic_floor_ms,
                    m.cost_vs_digital_with_traffic_floor_update
                ) {
                    (Some(t), Some(r)) => format!(
                        "; the update's memory traffic alone takes {t:.2} ms, so no faster \
                         kernel over this state gets the step below {r:.2}x digital"
                    ),
                    _ => String::new(),
                }
            );
        }
    }
    for m in &report.measurements {
        if let Some(ns) = m.ns_per_pair {
            println!(
                "{}: {:.2} ms per update of every layer, {ns:.2} ns per device pair{}",
                m.name,
                1e3 * m.seconds,
                m.update_traffic_floor_ms.map_or(String::new(), |f| format!(
                    "; its memory traffic alone (no physics) {f:.2} ms, {:.0} % of it",
                    100.0 * f / (1e3 * m.seconds)
                ))
            );
        }
    }
    for m in report
        .measurements
        .iter()
        .filter(|m| m.name.starts_with("bp-analog"))
    {
        println!(
            "{}: {:.2} s per epoch of 60,000 samples (constant-step pulsed updates)",
            m.name, m.seconds
        );
    }
    for m in &report.measurements {
        if let Some(c) = m.cost_vs_bp_analog {
            println!(
                "{}: {:.2} s per epoch of 60,000 samples, {c:.2}× the bp-analog step",
                m.name, m.seconds
            );
        }
    }
    for m in &report.measurements {
        if let Some(c) = m.cost_vs_ff_step {
            println!(
                "{}: a distillation step (teacher read + student step) costs {c:.2}× a plain FF step",
                m.name
            );
        }
    }
    if let Some(path) = &opts.json {
        mortal::fsutil::write_json(path, &report)?;
        println!("written to {}", path.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_of_ff_sample() {
        // 784→10→10: Σ in·out = 7940, head over the second layer: 10·10.
        let f = ff_flops_per_sample(&[784, 10, 10], 2);
        assert_eq!(f, 10.0 * 7940.0 + 4.0 * 100.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
