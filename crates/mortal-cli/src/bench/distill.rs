//! The cost of a distillation step: the teacher measured on the batch on its own chip
//! (one neutral-label pass and its head) plus the student's step on its chip, against a
//! plain FF step (true labels) on the same kind of chip, timed alternately. Two student
//! steps: the contrastive loss (FF's own step with teacher-drawn labels), and the default
//! recipe, the per-layer KL with hints (11 passes per image, plus the teacher's layer
//! activities read on the batch).

use super::{Measurement, alternately, ff_config, ff_topology, label, random, time_median};
use mortal::data::{CLASSES, PIXELS};
use mortal::error::Result;
use mortal::learn::distill::DEFAULT_HINT_WEIGHT;
use mortal::learn::distill::{sample_label, sample_wrong, softmax_t};
use mortal::learn::ff::{FfLearner, LayerKlSupervision, Scores, SoftSupervision};
use mortal::linalg::Mat;
use mortal::rng::stream;
use mortal::substrate::device::{Chip, HardwareSpec};

/// Distillation steps (teacher chip #1 → student chip #2) against FF steps on chip #2;
/// `hints`: the default recipe (per-layer KL with hints) instead of the contrastive step.
pub(super) fn distill_vs_ff(
    spec: &HardwareSpec,
    hidden: &[usize],
    batch: usize,
    batches: usize,
    repeats: usize,
    hints: bool,
) -> Result<Measurement> {
    let topo = ff_topology(hidden)?;
    let cfg = ff_config(hidden);
    let mut teacher = Chip::new(spec, topo.clone(), 1, 1)?;
    let mut t_learner = FfLearner::new(cfg.clone(), topo.clone())?;
    let mut student = Chip::new(spec, topo.clone(), 2, 2)?;
    let mut plain = student.clone();
    let mut s_learner = FfLearner::new(cfg.clone(), topo.clone())?;
    let mut p_learner = s_learner.clone();
    let images = random(PIXELS, batch, 7);
    let labels: Vec<usize> = (0..batch).map(|j| j % CLASSES).collect();
    let (mut tnoise, mut snoise, mut pnoise) = (
        stream(1, "teacher"),
        stream(2, "student"),
        stream(3, "plain"),
    );
    let (mut draws, mut negs) = (stream(4, "draws"), stream(5, "negatives"));
    let mut sc = Scores::default();
    let mut targets = Mat::zeros(CLASSES, batch);
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let mut failed = None;
    let mut distil = || {
        for _ in 0..batches {
            t_learner.scores(&mut teacher, &images, false, &mut tnoise, &mut sc);
            pos.clear();
            neg.clear();
            for j in 0..batch {
                let z = sc.logits.column(j);
                let p1 = softmax_t(z.as_slice(), 1.0);
                let pt = softmax_t(z.as_slice(), 2.0);
                let p = sample_label(&p1, &mut draws);
                pos.push(p);
                neg.push(sample_wrong(&pt, p, &mut draws));
                targets.column_mut(j).copy_from_slice(&pt);
            }
            let step = if hints {
                let acts =
                    t_learner.neutral_activities(&mut teacher, &images, &mut tnoise, &mut sc);
                let sup = LayerKlSupervision {
                    targets: &targets,
                    layer_temperature: 20.0,
                    head_temperature: 2.0,
                    hints: Some((&acts, DEFAULT_HINT_WEIGHT)),
                };
                s_learner.train_batch_layer_kl(&mut student, &images, &sup, 1.0, &mut snoise)
            } else {
                let sup = SoftSupervision {
                    positives: &pos,
                    negatives: &neg,
                    head_targets: &targets,
                    head_temperature: 2.0,
                };
                s_learner.train_batch_soft(
                    &mut student,
                    &images,
                    &sup,
                    1.0,
                    &mut draws,
                    &mut snoise,
                )
            };
            if let Err(e) = step {
                failed = Some(e);
            }
        }
    };
    let mut ff = || -> Result<()> {
        for _ in 0..batches {
            p_learner.train_batch(&mut plain, &images, &labels, 1.0, &mut negs, &mut pnoise)?;
        }
        Ok(())
    };
    // `alternately` runs its second side first on even rounds: the distillation here.
    let (tf, td) = alternately(
        repeats,
        || {
            let mut err = None;
            let t = time_median(1, || {
                if let Err(e) = ff() {
                    err = Some(e);
                }
            });
            err.map_or(Ok(t), Err)
        },
        || Ok(time_median(1, &mut distil)),
    )?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Measurement {
        name: format!(
            "distill-step{} {} b{batch} chip {} vs ff",
            if hints { " hints" } else { "" },
            label(hidden),
            spec.name
        ),
        samples_per_s: Some((batches * batch) as f64 / td),
        seconds: td,
        cost_vs_ff_step: Some(td / tf),
        ..Measurement::default()
    })
}
