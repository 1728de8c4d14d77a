//! One student's training: every epoch a fresh view of each transfer image, supervised
//! by the teacher's measurement of that view (or by the true labels, for the labelled
//! baselines); see [`super::distill`].

use std::path::Path;
use std::time::Instant;

use super::config::TrainConfig;
pub use super::distill_teacher::{Teacher, ViewKey};
use super::trainers::FfTrainer;
use super::{batches, epoch_order};
use crate::data::{CLASSES, Dataset};
use crate::error::{Error, Result};
use crate::fsutil::write_csv;
use crate::learn::distill::{
    self, Augment, DistillConfig, DistillLoss, NegativeSource, ScoreSource, epoch_views, fidelity,
    mix_hard, sample_label, sample_wrong, softmax_t,
};
use crate::learn::ff::{LayerKlSupervision, SoftSupervision};
use crate::linalg::Mat;
use crate::progress::Reporter;
use crate::rng::{derive, derive_index, indexed, stream};

use super::distill::*;

/// Who supervises a training run of [`Lesson::train`].
#[derive(Clone, Copy)]
pub(super) enum Teaching<'a> {
    /// The teacher, on the views of the distillation's augmentation.
    Teacher(&'a DistillConfig),
    /// The images' true labels, on views of this augmentation (the labelled baselines).
    Labels(Augment),
}

/// What every student of a run learns from.
#[derive(Clone)]
pub(super) struct Lesson<'a> {
    /// The images views are made of.
    pub(super) images: &'a Dataset,
    /// Their name (the transfer source), part of the views' identity.
    pub(super) transfer_name: String,
    pub(super) teacher: &'a Teacher,
    pub(super) t_valid: &'a Mat,
    pub(super) valid: &'a Dataset,
    pub(super) eval_seed: u64,
}

impl Lesson<'_> {
    /// Trains `t` for `cfg.epochs` on fresh views of the images each epoch: from the
    /// teacher measured on each view, or from the true labels (the labelled baselines,
    /// the ordinary FF step). Writes `dir/epochs.csv.partial` after every epoch.
    pub(super) fn train(
        &self,
        t: &mut FfTrainer,
        cfg: &TrainConfig,
        teaching: Teaching<'_>,
        (head_only, layer_gain): (usize, f32),
        dir: &Path,
        rep: &Reporter,
    ) -> Result<Vec<DistillEpoch>> {
        let seeds = cfg.seeds();
        let (what, augment) = match teaching {
            Teaching::Teacher(d) => ("distil", d.augment),
            Teaching::Labels(a) => ("labels", a),
        };
        let schedule = t.learner.config().schedule;
        let mut noise = stream(seeds.noise, "train");
        let mut negatives = stream(seeds.negatives, "negatives");
        let mut labels_rng = stream(seeds.negatives, "distill-labels");
        let view_seed = derive(cfg.seed, "views");
        let hint_seed = derive(cfg.seed, "hints");
        let mut rows: Vec<DistillEpoch> = Vec::new();
        let mut images = Mat::zeros(0, 0);
        let mut targets = Mat::zeros(0, 0);
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let t_start = Instant::now();
        let n = self.images.len();
        let positions: Vec<usize> = (0..n).collect();
        for epoch in 1..=cfg.epochs {
            let gain = schedule.gain(epoch, cfg.epochs);
            t.learner
                .set_layer_gain(if epoch <= head_only { 0.0 } else { layer_gain });
            let t0 = Instant::now();
            let order = epoch_order(n, seeds.order, epoch);
            let views = epoch_views(self.images, &order, &augment, view_seed, epoch);
            let teacher = match teaching {
                Teaching::Teacher(d) => Some(self.teacher.on_views(
                    &ViewKey {
                        transfer: self.transfer_name.clone(),
                        count: n,
                        jitter: augment.jitter,
                        mixup: augment.mixup.to_bits(),
                        view_seed,
                        order_seed: seeds.order,
                        epoch,
                        reads: d.teacher_reads,
                    },
                    &views,
                )?),
                Teaching::Labels(_) => None,
            };
            let bs = batches(&positions, cfg.batch);
            let bar = rep.bar(
                bs.len() as u64,
                &format!("{what} epoch {epoch}/{}", cfg.epochs),
            );
            let (mut kl_sum, mut ff_sum, mut dis, mut samples) = (0.0f64, 0.0f64, 0usize, 0usize);
            for (bi, idx) in (0u64..).zip(bs) {
                let b = idx.len();
                if images.ncols() != b {
                    images = Mat::zeros(views.pixels(), b);
                    targets = Mat::zeros(CLASSES, b);
                }
                views.gather(idx, &mut images);
                let st = match (teaching, &teacher) {
                    (Teaching::Teacher(d), Some(tv)) if d.loss == DistillLoss::LayerKl => {
                        draw(
                            tv,
                            &views,
                            idx,
                            d,
                            &mut labels_rng,
                            &mut pos,
                            &mut neg,
                            &mut targets,
                        );
                        let beta = d.hint_weight.unwrap_or(0.0);
                        let hints = if beta > 0.0 {
                            let seed = derive_index(derive_index(hint_seed, epoch as u64), bi);
                            self.teacher.hints(&images, seed)
                        } else {
                            None
                        };
                        let sup = LayerKlSupervision {
                            targets: &targets,
                            layer_temperature: d.layer_temperature,
                            head_temperature: d.temperature,
                            hints: hints.as_deref().map(|h| (h, beta)),
                        };
                        t.learner.train_batch_layer_kl(
                            t.substrate.as_mut(),
                            &images,
                            &sup,
                            gain,
                            &mut noise,
                        )
                    }
                    (Teaching::Teacher(d), Some(tv)) => {
                        draw(
                            tv,
                            &views,
                            idx,
                            d,
                            &mut labels_rng,
                            &mut pos,
                            &mut neg,
                            &mut targets,
                        );
                        if d.negatives == NegativeSource::Student {
                            neg.clear();
                        }
                        let sup = SoftSupervision {
                            positives: &pos,
                            negatives: &neg,
                            head_targets: &targets,
                            head_temperature: d.temperature,
                        };
                        t.learner.train_batch_soft(
                            t.substrate.as_mut(),
                            &images,
                            &sup,
                            gain,
                            &mut negatives,
                            &mut noise,
                        )
                    }
                    _ => {
                        let labels = views.gather_labels(idx);
                        t.learner.train_batch(
                            t.substrate.as_mut(),
                            &images,
                            &labels,
                            gain,
                            &mut negatives,
                            &mut noise,
                        )
                    }
                }
                .map_err(|e| match e {
                    Error::Diverged(m) => Error::Diverged(format!("{what} epoch {epoch}: {m}")),
                    o => o,
                })?;
                kl_sum += st.head.loss_sum;
                ff_sum += st.mean_layer_loss() * st.samples as f64;
                dis += st.head.errors;
                samples += st.samples;
                bar.inc(1);
            }
            bar.finish_and_clear();
            let t_train = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let (vl, _) = distill::scores_of(
                &mut t.learner,
                t.substrate.as_mut(),
                self.valid,
                ScoreSource::Softmax,
                &mut indexed(self.eval_seed, 100 + epoch as u64),
            )?;
            let vf = fidelity(&vl, None, self.t_valid, self.valid.labels());
            let m = samples.max(1) as f64;
            let row = DistillEpoch {
                epoch,
                lr_gain: gain,
                train_kl: kl_sum / m,
                train_ff_loss: ff_sum / m,
                train_disagreement: dis as f64 / m,
                valid_error: vf.error,
                valid_agreement: vf.agreement,
                valid_kl: vf.kl,
                train_seconds: t_train,
                eval_seconds: t1.elapsed().as_secs_f64(),
                elapsed_seconds: t_start.elapsed().as_secs_f64(),
            };
            if !(row.train_kl.is_finite() && row.train_ff_loss.is_finite()) {
                return Err(Error::Diverged(format!(
                    "{what} epoch {epoch}: training loss is not finite"
                )));
            }
            rep.line(&format!(
                "{what} epoch {epoch:>3}/{}: head loss {:.4}  FF loss {:.4}  valid err {:.2}%  agreement {:.2}%  ({t_train:.1}s)",
                cfg.epochs,
                row.train_kl,
                row.train_ff_loss,
                100.0 * row.valid_error,
                100.0 * row.valid_agreement
            ));
            rows.push(row);
            write_csv(&dir.join(PARTIAL), &rows)?;
        }
        t.learner.set_layer_gain(1.0);
        Ok(rows)
    }
}

/// Draws the positives, negatives and head targets of the views `idx` from the teacher's
/// scores on them (`teacher`, 10 × views; labels of `views` mixed in with `hard_weight`).
#[allow(clippy::too_many_arguments)]
fn draw(
    teacher: &Mat,
    views: &Dataset,
    idx: &[usize],
    d: &DistillConfig,
    rng: &mut crate::rng::Rng,
    pos: &mut Vec<usize>,
    neg: &mut Vec<usize>,
    targets: &mut Mat,
) {
    pos.clear();
    neg.clear();
    for (j, &i) in idx.iter().enumerate() {
        let z = teacher.column(i);
        let p1 = if d.positive_temperature > 0.0 {
            softmax_t(z.as_slice(), d.positive_temperature)
        } else {
            let mut top = [0.0f32; CLASSES];
            top[distill::argmax(z.as_slice())] = 1.0;
            top
        };
        let mut pt = softmax_t(z.as_slice(), d.temperature);
        let positive = if !d.unlabelled && d.hard_weight > 0.0 {
            let truth = views.label(i);
            pt = mix_hard(&pt, truth, d.hard_weight);
            sample_label(&mix_hard(&p1, truth, d.hard_weight), rng)
        } else {
            sample_label(&p1, rng)
        };
        pos.push(positive);
        neg.push(sample_wrong(&pt, positive, rng));
        targets.column_mut(j).copy_from_slice(&pt);
    }
}
