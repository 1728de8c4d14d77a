//! Backprop rows of `mortal bench`: digital BP, bp-analog and the Tiki-Taka family.

use super::*;

/// The GEMMs of one backprop step (forward, weight gradient and, above the first layer,
/// input gradient) for a batch, and the FLOPs per sample they do.
pub(super) fn bp_step_gemms(
    widths: &[usize],
    batch: usize,
) -> (Vec<(usize, usize, usize, Op)>, f64) {
    let mut shapes = Vec::new();
    let mut flops_per_sample = 0.0;
    for (l, w) in widths.windows(2).enumerate() {
        let (i, o) = (w[0], w[1]);
        shapes.push((o, i, batch, Op::N));
        shapes.push((o, batch, i, Op::T));
        flops_per_sample += 4.0 * (i * o) as f64;
        if l > 0 {
            shapes.push((i, o, batch, Op::N));
            flops_per_sample += 2.0 * (i * o) as f64;
        }
    }
    (shapes, flops_per_sample)
}

pub(super) fn bp_training(
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    let mut learner = BpLearner::new(BpConfig::default(), hidden, 1)?;
    let images = random(PIXELS, batch, 9);
    let labels: Vec<usize> = (0..batch).map(|j| j % 10).collect();
    let mut failed = None;
    let t = time_median(repeats, || {
        for _ in 0..batches {
            if let Err(e) = learner.train_batch(&images, &labels, 1.0) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let widths = learner.mlp.topology().widths().to_vec();
    let (shapes, flops_per_sample) = bp_step_gemms(&widths, batch);
    Ok(training_rate(
        format!("bp-train {} b{batch}", label(hidden)),
        batches * batch,
        t,
        flops_per_sample,
        &shapes,
        repeats,
    ))
}

/// `bp-analog` (analog SGD: forward on the chip, backward by transposed reads, rank-1
/// pulsed updates) of a 784-`hidden`-10 sigmoid MLP on a ReRAM-like chip with
/// constant-step devices, on ONE core (a one-thread pool), as aihwkit's analog-SGD
/// benchmark is quoted per core. `seconds` is extrapolated to one epoch of 60,000
/// samples from `batches` timed steps.
pub(super) fn bp_analog_training(
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    let mut widths = vec![PIXELS];
    widths.extend_from_slice(hidden);
    widths.push(10);
    let topo = Topology::classifier(widths.clone(), Activation::Sigmoid)?;
    let mut spec = presets::reram();
    spec.device.response = mortal::substrate::device::spec::Response::ConstantStep;
    spec.update.mode = UpdateMode::Pulsed;
    let cfg = BpConfig {
        hidden: Activation::Sigmoid,
        ..mortal::train::TrainConfig::for_algo(mortal::train::Algo::BpAnalog).bp
    };
    let mut learner =
        mortal::learn::backprop::analog::AnalogLearner::new(cfg.clone(), topo.clone())?;
    // The same plain-SGD step in digital backprop, for the cost ratio.
    let mut digital = BpLearner::new(cfg, hidden, 1)?;
    let mut chip = Chip::new(&spec, topo, 1, 1)?;
    let images = random(PIXELS, batch, 9);
    let labels: Vec<usize> = (0..batch).map(|j| j % 10).collect();
    let mut noise = stream(1, "noise");
    let pool = one_thread_pool()?;
    // Alternate chip and digital so both see the same machine load.
    let (t, t_digital) = alternate_on(&pool, repeats, batches, |chip_side| {
        if chip_side {
            learner
                .train_batch(&mut chip, &images, &labels, 1.0, &mut noise)
                .map(drop)
        } else {
            digital.train_batch(&images, &labels, 1.0).map(drop)
        }
    })?;
    let (shapes, flops_per_sample) = bp_step_gemms(&widths, batch);
    let samples_per_s = (batches * batch) as f64 / t;
    let gflops = samples_per_s * flops_per_sample / 1e9;
    let gemm_gflops = pool.install(|| gemm_rate(&shapes, repeats));
    Ok(Measurement {
        cost_vs_digital: Some(t / t_digital),
        name: format!("bp-analog {} sigmoid b{batch} 1 core", label(hidden)),
        samples_per_s: Some(samples_per_s),
        gflops: Some(gflops),
        gemm_gflops: Some(gemm_gflops),
        fraction_of_gemm: Some(gflops / gemm_gflops),
        seconds: 60_000.0 / samples_per_s,
        ..Measurement::default()
    })
}

/// Median seconds of `batches` calls of `step(true)` and of `step(false)`, timed
/// alternately `repeats` times in `pool` (so both sides see the same machine load); the
/// last error, if any.
pub(super) fn alternate_on(
    pool: &rayon::ThreadPool,
    repeats: usize,
    batches: usize,
    mut step: impl FnMut(bool) -> Result<()> + Send,
) -> Result<(f64, f64)> {
    let mut failed = None;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    pool.install(|| {
        for _ in 0..repeats.max(1) {
            for side in [true, false] {
                let t = time_median(1, || {
                    for _ in 0..batches {
                        if let Err(e) = step(side) {
                            failed = Some(e);
                        }
                    }
                });
                if side { ta.push(t) } else { tb.push(t) }
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok((median(ta), median(tb))),
    }
}

/// A rayon pool of one thread (the per-core measurements).
pub(super) fn one_thread_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| mortal::error::Error::Io {
            context: "building a one-thread pool".into(),
            os: std::io::Error::other(e),
        })
}

/// A Tiki-Taka step (`variant`) against the bp-analog step on the same `reram` chip
/// (soft bounds, pulsed updates), 784-hidden-10 sigmoid, on ONE core, timed alternately;
/// `seconds` is the Tiki-Taka time per epoch of 60,000 samples.
pub(super) fn transfer_vs_analog(
    variant: mortal::learn::backprop::transfer::Variant,
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    use mortal::learn::backprop::{analog::AnalogLearner, transfer::TransferLearner};
    let topo = mortal::learn::backprop::classifier_topology(hidden, Activation::Sigmoid)?;
    let spec = presets::reram();
    let cfg = BpConfig {
        hidden: Activation::Sigmoid,
        ..mortal::train::TrainConfig::for_algo(mortal::train::Algo::BpTtv2).bp
    };
    let mut noise = stream(1, "noise");
    let fast = Box::new(Chip::new(&spec, topo.clone(), 2, 1)?);
    let mut tt = TransferLearner::new(cfg.clone(), variant, topo.clone(), fast, &mut noise)?;
    let mut an = AnalogLearner::new(cfg, topo.clone())?;
    let (mut c_tt, mut c_an) = (
        Chip::new(&spec, topo.clone(), 1, 1)?,
        Chip::new(&spec, topo, 1, 1)?,
    );
    let images = random(PIXELS, batch, 9);
    let labels: Vec<usize> = (0..batch).map(|j| j % 10).collect();
    let pool = one_thread_pool()?;
    let (t, t_an) = alternate_on(&pool, repeats, batches, |tt_side| {
        if tt_side {
            tt.train_batch(&mut c_tt, &images, &labels, 1.0, &mut noise)
                .map(drop)
        } else {
            an.train_batch(&mut c_an, &images, &labels, 1.0, &mut noise)
                .map(drop)
        }
    })?;
    let samples_per_s = (batches * batch) as f64 / t;
    Ok(Measurement {
        name: format!(
            "bp-{variant:?} {} sigmoid b{batch} 1 core vs bp-analog",
            label(hidden)
        )
        .to_lowercase(),
        samples_per_s: Some(samples_per_s),
        seconds: 60_000.0 / samples_per_s,
        cost_vs_bp_analog: Some(t / t_an),
        ..Measurement::default()
    })
}
