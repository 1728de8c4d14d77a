//! Rows of `mortal bench` that compare FF learners: local receptive fields against
//! dense layers, recurrent FF against feed-forward FF.

use super::*;

/// The paper's local receptive-field net (`paper-local`) vs the dense `reference` net,
/// FF training steps timed alternately on the same kind of substrate (digital, or a chip
/// of `spec`): the local step's time over the dense step's time scaled by the ratio of
/// existing weights.
pub(super) fn ff_local_vs_dense(
    spec: Option<&HardwareSpec>,
    reference: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    let geom = mortal::data::DatasetKind::Mnist.geometry();
    let local = mortal::train::layers::topology(
        &mortal::train::layers::named("paper-local")?,
        geom,
        Activation::Relu,
    )?;
    let dense = ff_topology(reference)?;
    let build = |t: &Topology| substrate(spec, t);
    // The same widths fully connected: what a masked dense product would cost at least.
    let same = ff_topology(&local.widths()[1..])?;
    let (mut sl, mut sd, mut ss) = (build(&local)?, build(&dense)?, build(&same)?);
    let cfg = ff_config(&[0, 0, 0]);
    let (mut tl, mut td, mut ts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats.max(1) {
        td.push(ff_steps(sd.as_mut(), &cfg, batch, batches, 1)?);
        tl.push(ff_steps(sl.as_mut(), &cfg, batch, batches, 1)?);
        ts.push(ff_steps(ss.as_mut(), &cfg, batch, batches, 1)?);
    }
    let (tl, td, ts) = (median(tl), median(td), median(ts));
    let predicted = td * local.weight_count() as f64 / dense.weight_count() as f64;
    let on = spec.map_or(String::new(), |s| format!(" chip {}", s.name));
    Ok(Measurement {
        name: format!("ff-train paper-local b{batch}{on} vs {}", label(reference)),
        samples_per_s: Some((batches * batch) as f64 / tl),
        seconds: tl,
        cost_vs_weights: Some(tl / predicted),
        cost_vs_dense_same_widths: Some(tl / ts),
        ..Measurement::default()
    })
}

/// Recurrent FF training steps (8 iterations, synchronous) vs feed-forward FF steps of
/// the same hidden layers, alternately on the same kind of substrate.
pub(super) fn recurrent_vs_feedforward(
    spec: Option<&HardwareSpec>,
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
) -> Result<Measurement> {
    use mortal::learn::ff::recurrent::{RecurrentConfig, RecurrentFf, recurrent_topology};
    let n = hidden.len();
    let dense = vec![mortal::substrate::Connectivity::Dense; n];
    let rt = recurrent_topology(PIXELS, hidden, 10, dense.clone(), dense)?;
    let ft = ff_topology(hidden)?;
    let build = |t: &Topology| substrate(spec, t);
    let (mut sr, mut sf) = (build(&rt)?, build(&ft)?);
    let cfg = ff_config(hidden);
    let rc = RecurrentConfig::default();
    let geom = mortal::data::DatasetKind::Mnist.geometry();
    let mut learner = RecurrentFf::new(cfg.clone(), rc.clone(), rt.clone(), geom)?;
    let images = random(PIXELS, batch, 7);
    let labels: Vec<usize> = (0..batch).map(|j| j % 10).collect();
    let (mut neg, mut noise) = (stream(1, "neg"), stream(1, "noise"));
    let (mut tr, mut tf) = (Vec::new(), Vec::new());
    let mut failed = None;
    for _ in 0..repeats.max(1) {
        tf.push(ff_steps(sf.as_mut(), &cfg, batch, batches, 1)?);
        tr.push(time_median(1, || {
            for _ in 0..batches {
                if let Err(e) =
                    learner.train_batch(sr.as_mut(), &images, &labels, 1.0, &mut neg, &mut noise)
                {
                    failed = Some(e);
                }
            }
        }));
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let (tr, tf) = (median(tr), median(tf));
    let on = spec.map_or(String::new(), |s| format!(" chip {}", s.name));
    Ok(Measurement {
        name: format!("ff-recurrent-train {} b{batch}{on} vs ff", label(hidden)),
        samples_per_s: Some((batches * batch) as f64 / tr),
        seconds: tr,
        cost_vs_feedforward: Some(tr / tf),
        ..Measurement::default()
    })
}
