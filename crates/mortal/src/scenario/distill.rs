//! Distillation scenarios (`[distill]`): `mortal run` trains the scenario's run as the
//! teacher into `<out>/teacher/` (reused when it exists with the same configuration),
//! then every student of the `[distill]` lists into `<out>/<student>/`, with the copy
//! and scratch baselines, `<out>/results.csv` (one row per student), `<out>/distill.json`
//! and the figures in `<out>/plots/` (see [`crate::train::distill_sweep`]).

use std::path::{Path, PathBuf};

use crate::error::ResultExt;

use super::resolve::rekey;
use super::runner::{Prepared, RunRequest, Summary};
use super::schema::DistillSection;
use super::smoke::{self, Smoke};
use super::store::DirLock;
use crate::error::{Error, Result};
use crate::fsutil::{create_dir, read_json};
use crate::learn::distill::{DistillConfig, DistillLoss};
use crate::progress::Reporter;
use crate::train::distill::{self as d, DistillSettings};
use crate::train::distill_sweep::{self as ds, Student, SweepInfo};
use crate::train::{self, ChipConfig, RunOptions, RunResults, TrainConfig};

/// Where the teacher is trained inside the output directory.
pub const TEACHER: &str = "teacher";

/// A distillation scenario, checked: the teacher's configuration and every student.
#[derive(Clone, Debug)]
pub struct DistillPlan {
    pub teacher: TrainConfig,
    pub students: Vec<Student>,
}

/// The directory name of a student.
fn student_name(chip: &str, variation: f64, transfer: usize, seed: u64) -> String {
    format!("{}-v{variation}-t{transfer}-s{seed}", ds::file_tag(chip))
}

/// Keeps the first and last of several values (smoke mode).
fn ends<T: Clone + PartialEq>(v: &[T]) -> Vec<T> {
    let mut out = v[..1].to_vec();
    if v.len() > 1 && v[v.len() - 1] != v[0] {
        out.push(v[v.len() - 1].clone());
    }
    out
}

fn no_duplicates<T: PartialEq + std::fmt::Display>(key: &str, v: &[T]) -> Result<()> {
    if v.is_empty() {
        return Err(Error::param(key, "[]", "must not be empty"));
    }
    for (i, x) in v.iter().enumerate() {
        if v[..i].contains(x) {
            return Err(Error::param(key, x, "appears twice"));
        }
    }
    Ok(())
}

impl DistillPlan {
    /// Checks `[distill]` against the teacher run of `p` and lists the students, whose
    /// teacher is `<out>/teacher`. Errors name the scenario key.
    pub fn new(
        p: &Prepared,
        sec: &DistillSection,
        out: &Path,
        smoke: Option<&Smoke>,
    ) -> Result<Self> {
        if p.scenario.file.sweep.is_some() {
            return Err(Error::param(
                "sweep",
                "",
                "a distillation scenario trains one teacher: sweep its students with the \
                 [distill] lists (student_chips, variations, transfer, student_seeds)",
            ));
        }
        let teacher = p.runs[0].config.clone();
        d::check_source(teacher.algo, sec.source)
            .map_err(|e| rekey(e, |_| "distill.source".into()))?;
        no_duplicates("distill.student_seeds", &sec.student_seeds)?;
        no_duplicates("distill.transfer", &sec.transfer)?;
        let losses: Vec<&str> = sec.losses.iter().map(|l| l.name()).collect();
        no_duplicates("distill.losses", &losses)?;
        let vars: Vec<String> = sec.variations.iter().map(|v| v.to_string()).collect();
        no_duplicates("distill.variations", &vars)?;
        for v in &sec.variations {
            if !(v.is_finite() && *v >= 0.0) {
                return Err(Error::param("distill.variations", v, "must be ≥ 0"));
            }
        }
        if let Some(n) = sec.transfer.iter().find(|n| **n == 0) {
            return Err(Error::param(
                "distill.transfer",
                n,
                "must be at least 1 image",
            ));
        }
        if sec.epochs == 0 {
            return Err(Error::param("distill.epochs", 0, "must be at least 1"));
        }
        let cfg = DistillConfig {
            temperature: sec.temperature,
            source: sec.source,
            hard_weight: sec.hard_weight,
            unlabelled: sec.unlabelled,
            positive_temperature: sec.positive_temperature,
            // Each student's loss is set below; hints belong to its layer-kl students.
            loss: if sec.hint_weight.is_some_and(|b| b > 0.0) {
                DistillLoss::LayerKl
            } else {
                DistillLoss::Contrastive
            },
            layer_temperature: sec.layer_temperature,
            init: sec.init,
            augment: crate::learn::distill::Augment {
                jitter: sec.jitter,
                mixup: sec.mixup,
            },
            teacher_reads: sec.teacher_reads,
            head_epochs: sec.head_epochs,
            copy_layer_lr: sec.copy_layer_lr,
            negatives: sec.negatives,
            hint_weight: sec.hint_weight,
        };
        cfg.validate()
            .map_err(|e| rekey(e, |k| format!("distill.{}", k.replace('-', "_"))))?;
        if let Some(beta) = sec
            .hint_weight
            .filter(|b| *b > 0.0 && !sec.losses.contains(&DistillLoss::LayerKl))
        {
            return Err(Error::param(
                "distill.hint_weight",
                beta,
                "hints are part of the per-layer loss: add \"layer-kl\" to distill.losses",
            ));
        }
        let dir = match p.scenario.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let chips: Vec<ChipConfig> = match &sec.student_chips {
            None => vec![teacher.chip.clone().ok_or_else(|| {
                Error::param(
                    "distill.student_chips",
                    "",
                    "the teacher has no [hardware]: name the students' chips (presets or spec files)",
                )
            })?],
            Some(list) => {
                no_duplicates("distill.student_chips", list)?;
                list.iter()
                    .map(|c| {
                        let path = dir.join(c);
                        let source = if c.ends_with(".toml") {
                            path.to_string_lossy().into_owned()
                        } else {
                            c.clone()
                        };
                        ChipConfig::from_source(&source, 0, 1.0)
                            .map(|mut chip| {
                                chip.source = c.clone();
                                chip
                            })
                            .map_err(|e| rekey(e, |_| "distill.student_chips".into()))
                    })
                    .collect::<Result<_>>()?
            }
        };
        let (mut seeds, mut vars, mut sizes) = (
            sec.student_seeds.clone(),
            sec.variations.clone(),
            sec.transfer.clone(),
        );
        let (mut epochs, mut min_samples) = (sec.epochs, sec.min_samples);
        if smoke.is_some() {
            seeds.truncate(1);
            vars = ends(&vars);
            let mut small: Vec<usize> = sizes
                .iter()
                .map(|n| (*n).min(smoke::TRAIN_IMAGES))
                .collect();
            small.dedup();
            sizes = ends(&small);
            epochs = 1;
            min_samples = 0;
        }
        let teacher_dir = out.join(TEACHER);
        let mut students = Vec::new();
        for base in &chips {
            for &variation in &vars {
                for &n in &sizes {
                    for &seed in &seeds {
                        let chip = ChipConfig {
                            chip_seed: seed,
                            variation,
                            ..base.clone()
                        };
                        chip.validate()
                            .map_err(|e| rekey(e, |k| format!("distill.{k}")))?;
                        let student_epochs = d::student_epochs(epochs, min_samples, n);
                        if student_epochs > d::MAX_STUDENT_EPOCHS {
                            return Err(Error::param(
                                "distill.min_samples",
                                min_samples,
                                format!(
                                    "with {n} transfer images a student would train \
                                     {student_epochs} epochs (at most {} are allowed)",
                                    d::MAX_STUDENT_EPOCHS
                                ),
                            ));
                        }
                        let mut student =
                            d::student_config(&teacher, chip, student_epochs, sec.seed, n);
                        student.eval_every = 0;
                        for &loss in &sec.losses {
                            let mut name = student_name(&base.source, variation, n, seed);
                            if loss != DistillLoss::Contrastive {
                                name = format!("{name}-{}", loss.name());
                            }
                            students.push(Student {
                                name,
                                settings: DistillSettings {
                                    teacher: teacher_dir.clone(),
                                    transfer: n,
                                    source_images: Default::default(),
                                    baselines: sec.baselines,
                                    distill: DistillConfig {
                                        loss,
                                        hint_weight: if loss == DistillLoss::LayerKl {
                                            cfg.hint_weight
                                        } else {
                                            None
                                        },
                                        ..cfg.clone()
                                    },
                                    goodness: sec.goodness,
                                    min_samples,
                                    student: student.clone(),
                                },
                            });
                        }
                    }
                }
            }
        }
        Ok(Self { teacher, students })
    }

    /// The largest transfer set, images.
    fn max_transfer(&self) -> usize {
        self.students
            .iter()
            .map(|s| s.settings.transfer)
            .max()
            .unwrap_or(0)
    }
}

/// Trains the teacher into `dir`, or reuses a finished teacher with the same
/// configuration there; a teacher with another configuration is an error (its students
/// would silently mix two teachers).
fn teacher(cfg: &TrainConfig, dir: &Path, data_dir: Option<&Path>, rep: &Reporter) -> Result<()> {
    let done = dir.join("results.json");
    if done.exists() && dir.join("checkpoint.json").exists() {
        let r: RunResults = read_json(&done)?;
        if &r.config == cfg {
            rep.line(&format!(
                "teacher: already trained, reusing {}",
                dir.display()
            ));
            return Ok(());
        }
        return Err(Error::artifact(
            dir,
            "holds a teacher trained with other settings than this scenario's; use another \
             --out or remove that directory (its students were distilled from it)",
        ));
    }
    let data = cfg.load_data(data_dir)?;
    rep.line(&format!(
        "teacher: {} {} on {}, {} epochs",
        cfg.algo,
        crate::train::layers::display(&cfg.layers),
        cfg.chip
            .as_ref()
            .map_or("the digital substrate".to_string(), |c| format!(
                "{} #{}",
                c.source, c.chip_seed
            )),
        cfg.epochs
    ));
    let mut trainer = train::trainers::build(cfg)?;
    let opts = RunOptions {
        out: Some(dir.to_path_buf()),
        reporter: rep.clone(),
        checkpoint: true,
        count: true,
    };
    let r = train::run_with(cfg, trainer.as_mut(), &data, &opts)?;
    rep.line(&format!(
        "teacher: test error {:.2}% [{}]",
        100.0 * r.test_error,
        r.eval_method
    ));
    Ok(())
}

/// `mortal run` of a distillation scenario.
pub fn run(
    req: &RunRequest,
    p: &Prepared,
    sec: &DistillSection,
    smoke: Option<&Smoke>,
    reporter: &Reporter,
) -> crate::error::Result<Summary> {
    let ctx = || req.file.display().to_string();
    let out = req.out.clone().unwrap_or_else(|| p.default_dir());
    let plan = DistillPlan::new(p, sec, &out, smoke).with_context(ctx)?;
    let name = &p.scenario.file.name;
    let total = plan.students.len() + 1;
    if req.dry_run {
        say!(
            "{name}: 1 teacher run + {} student runs (would write {})",
            total - 1,
            out.display()
        );
        say!("{:>5}  {TEACHER}", 0);
        for (k, s) in plan.students.iter().enumerate() {
            say!("{:>5}  {}", k + 1, s.name);
        }
        return Ok(Summary {
            dir: out,
            total,
            ..Summary::default()
        });
    }
    if req.shard.is_some_and(|s| s.count > 1) {
        return Err(Error::param(
            "shard",
            req.shard.expect("checked").to_string(),
            "a distillation scenario runs as one job (its students need the teacher)",
        ))
        .with_context(ctx);
    }
    create_dir(&out)?;
    let _lock = DirLock::take(&out)?;
    say!(
        "{name}: 1 teacher + {} students → {}",
        total - 1,
        out.display()
    );
    let teacher_dir = out.join(TEACHER);
    teacher(
        &plan.teacher,
        &teacher_dir,
        req.data_dir.as_deref(),
        reporter,
    )?;
    let checkpoint = d::load_teacher(&teacher_dir)?;
    let transfer_data = TrainConfig {
        train_limit: Some(plan.max_transfer()),
        ..plan.teacher.clone()
    };
    let data = transfer_data.load_data(req.data_dir.as_deref())?;
    if plan.max_transfer() > data.train.len() {
        return Err(Error::param(
            "distill.transfer",
            plan.max_transfer(),
            format!("there are only {} training images", data.train.len()),
        ))
        .with_context(ctx);
    }
    let info = SweepInfo {
        title: p
            .scenario
            .file
            .output
            .title
            .clone()
            .unwrap_or_else(|| name.clone()),
        teacher: teacher_dir.clone(),
        teacher_seed: plan.teacher.seed,
        teacher_chip_seed: plan.teacher.chip.as_ref().map(|c| c.chip_seed),
        students: plan.students.iter().map(|s| s.name.clone()).collect(),
    };
    let rows = ds::sweep(&plan.students, &info, &checkpoint, &data, &out, reporter)?;
    say!("{}", ds::table(&rows).trim_end());
    if let Some(figures) = &req.figures {
        figures.draw(&out);
    }
    say!("{name}: results in {}", out.join(ds::RESULTS).display());
    Ok(Summary {
        dir: out,
        total,
        ran: total,
        ..Summary::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_names_are_file_safe_and_distinct() {
        assert_eq!(student_name("harsh", 1.0, 1000, 2), "harsh-v1-t1000-s2");
        assert_eq!(
            student_name("specs/my chip.toml", 0.5, 50, 3),
            "my_chip-v0.5-t50-s3"
        );
    }

    #[test]
    fn smoke_keeps_the_ends_of_a_list() {
        assert_eq!(ends(&[1, 2, 3]), vec![1, 3]);
        assert_eq!(ends(&[4]), vec![4]);
        assert_eq!(ends(&[300, 300]), vec![300]);
    }
}
