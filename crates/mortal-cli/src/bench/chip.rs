//! Chip rows of `mortal bench`: FF training on a chip against the digital step, and
//! the pulsed update against its memory-traffic floor.

use super::*;

/// FF training steps on a chip vs the digital substrate, timed alternately (digital,
/// chip, digital, …) so both see the same machine load; reports the chip's throughput and
/// its cost relative to digital.
#[allow(clippy::too_many_arguments)]
pub(super) fn ff_chip_training(
    spec: &HardwareSpec,
    name: &str,
    cfg: &FfConfig,
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
    reads: Precision,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let head_from = cfg.eval_from;
    // The reference: the digital network in f32, whatever the chip's reads.
    let mut net = DigitalNet::new(topo.clone(), 1);
    let mut chip = Chip::new(spec, topo.clone(), 1, 1)?;
    chip.set_precision(reads);
    let (mut td, mut tc) = (Vec::new(), Vec::new());
    let (mut pd, mut pc) = (Vec::new(), Vec::new());
    // The pulsed modes' update traffic without physics: one dense request per layer, as
    // an FF step makes.
    let floor = traffic_floor_requests(spec, topo.widths());
    let mut tf = Vec::new();
    for _ in 0..repeats.max(1) {
        let (t, p) = ff_steps_phased(&mut net, cfg, batch, batches)?;
        td.push(t);
        pd.push(p);
        let (t, p) = ff_steps_phased(&mut chip, cfg, batch, batches)?;
        tc.push(t);
        pc.push(p);
        if let Some(reqs) = &floor {
            tf.push(time_median(1, || traffic_floor(&mut chip, reqs)));
        }
    }
    let (td, tc) = (median(td), median(tc));
    let (pd, pc) = (Phases::median(&pd), Phases::median(&pc));
    let floor_ms = (!tf.is_empty()).then(|| 1e3 * median(tf));
    let widths = topo.widths();
    Ok(Measurement {
        cost_vs_digital: Some(tc / td),
        phases: Some(pc),
        digital_phases: Some(pd),
        cost_vs_digital_with_digital_update: Some(
            (pc.read_ms + pc.host_ms + pd.update_ms) / pd.total_ms(),
        ),
        update_traffic_floor_ms: floor_ms,
        cost_vs_digital_with_traffic_floor_update: floor_ms
            .map(|f| (pc.read_ms + pc.host_ms + f) / pd.total_ms()),
        ..training_rate(
            format!("ff-train {} b{batch} {name}", label(hidden)),
            batches * batch,
            tc,
            ff_flops_per_sample(widths, head_from),
            &ff_step_gemms(widths, batch, head_from),
            repeats,
        )
    })
}

/// Dense requests (ΔW, Δb) for every layer of `widths`, if `spec`'s update mode is one
/// whose kernel [`Chip::update_traffic_floor`] mirrors (pulsed, mixed precision,
/// reset-only); the values do not matter to the traffic.
pub(super) fn traffic_floor_requests(
    spec: &HardwareSpec,
    widths: &[usize],
) -> Option<Vec<(Mat, Vec<f32>)>> {
    let pulsed = matches!(
        spec.update.mode,
        UpdateMode::Pulsed | UpdateMode::MixedPrecision | UpdateMode::ResetOnly
    );
    pulsed.then(|| {
        widths
            .windows(2)
            .enumerate()
            .map(|(l, w)| (random(w[1], w[0], 21 + l as u64), vec![0.001; w[1]]))
            .collect()
    })
}

/// Moves every layer's update state as a pulsed update would, without its physics.
pub(super) fn traffic_floor(chip: &mut Chip, reqs: &[(Mat, Vec<f32>)]) {
    for (l, (dw, db)) in reqs.iter().enumerate() {
        chip.update_traffic_floor(l, dw.as_slice(), db);
    }
}

/// One `update` of every layer of an FF network on a chip (dense request, the FF
/// learner's form, large enough that nearly every pair receives a pulse at `reram`'s
/// step: the kernel's dense path, its worst case per pair), timed alternately with the
/// same update on the digital substrate.
pub(super) fn chip_update(
    spec: &HardwareSpec,
    hidden: &[usize],
    repeats: usize,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let widths = topo.widths().to_vec();
    let mut chip = Chip::new(spec, topo.clone(), 1, 1)?;
    let mut net = DigitalNet::new(topo, 1);
    let dws: Vec<Mat> = widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| random(w[1], w[0], 11 + l as u64).map(|v| 0.008 * v - 0.004))
        .collect();
    let db: Vec<f32> = vec![0.001; widths[1..].iter().copied().max().unwrap_or(0)];
    let mut noise = stream(1, "noise");
    let mut step = |sub: &mut dyn Substrate| {
        for (l, dw) in dws.iter().enumerate() {
            let db = &db[..dw.nrows()];
            let u = mortal::substrate::Update::Dense {
                dw: dw.as_slice(),
                db,
                scale: 1.0,
                decay: 0.0,
            };
            sub.update(l, u, &mut noise);
        }
    };
    let floor = traffic_floor_requests(spec, &widths);
    let (mut tc, mut td, mut tf) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        tc.push(time_median(1, || step(&mut chip)));
        td.push(time_median(1, || step(&mut net)));
        if let Some(reqs) = &floor {
            tf.push(time_median(1, || traffic_floor(&mut chip, reqs)));
        }
    }
    let (tc, td) = (median(tc), median(td));
    let pairs: usize = widths.windows(2).map(|w| (w[0] + 1) * w[1]).sum();
    Ok(Measurement {
        name: format!("chip-update {} {}", label(hidden), spec.name),
        cost_vs_digital: Some(tc / td),
        update_traffic_floor_ms: (!tf.is_empty()).then(|| 1e3 * median(tf)),
        seconds: tc,
        ns_per_pair: Some(tc * 1e9 / pairs as f64),
        ..Measurement::default()
    })
}
