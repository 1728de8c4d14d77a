//! Sweeps of distillation students (`mortal distill` with several transfer sizes or
//! student seeds, and distillation scenarios, `mortal run` with `[distill]`): one
//! directory per student (what a single `mortal distill` writes), `results.csv` with one
//! row per student, `distill.json` describing the sweep, and its figures, which
//! `mortal plot DIR` redraws from those files alone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::distill::{Baselines, DistillResults, DistillSettings, Teacher, TeacherCheckpoint, run};
use crate::data::Splits;
use crate::error::Result;
use crate::fsutil::{file_safe, read_csv, read_json, write_csv, write_json};
use crate::learn::distill::DistillLoss;
use crate::progress::Reporter;

/// The file that marks a directory as a distillation sweep.
pub const SWEEP_FILE: &str = "distill.json";
/// The sweep's table, one row per student.
pub const RESULTS: &str = "results.csv";
/// Directory of a sweep's figures.
pub const PLOTS: &str = "plots";

/// What `distill.json` records about a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepInfo {
    /// Title of the figures.
    pub title: String,
    /// The teacher's checkpoint directory.
    pub teacher: PathBuf,
    /// The teacher's training master seed.
    pub teacher_seed: u64,
    /// The teacher's chip instance (seed), if it is on a chip.
    pub teacher_chip_seed: Option<u64>,
    /// Names of the students (their directories), in order.
    pub students: Vec<String>,
}

/// One student of a sweep: its directory name and settings.
#[derive(Clone, Debug)]
pub struct Student {
    pub name: String,
    pub settings: DistillSettings,
}

/// One row of a sweep's `results.csv` (errors and agreements are fractions, KL in nats).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Student chip: preset name or spec file.
    pub student_chip: String,
    /// Variation multiplier of the student chip (dimensionless).
    pub variation: f64,
    /// Transfer-set size, images.
    pub transfer: usize,
    /// Student chip instance (seed).
    pub student_seed: u64,
    pub epochs: usize,
    /// Student training master seed.
    pub seed: u64,
    /// The student layers' loss (`contrastive` or `layer-kl`).
    #[serde(default = "contrastive")]
    pub loss: String,
    pub teacher_test_error: f64,
    pub test_error: f64,
    pub agreement: f64,
    pub kl: f64,
    pub copy_test_error: f64,
    pub copy_agreement: f64,
    pub copy_kl: f64,
    /// FF from scratch with labels (empty: the transfer images have none).
    pub scratch_test_error: Option<f64>,
    pub scratch_agreement: Option<f64>,
    pub scratch_kl: Option<f64>,
    /// Where the transfer images came from.
    #[serde(default)]
    pub transfer_source: String,
    /// The student's starting point (`copy` or `scratch`).
    #[serde(default)]
    pub init: String,
    /// Student minus teacher test error (fraction).
    #[serde(default)]
    pub gap: f64,
    /// Fraction of the scratch–teacher gap recovered (where scratch trails by > 1 point).
    #[serde(default)]
    pub recovered: Option<f64>,
    /// The copy fine-tuned with labels (full baselines).
    #[serde(default)]
    pub copy_labels_test_error: Option<f64>,
    #[serde(default)]
    pub copy_labels_agreement: Option<f64>,
    /// The distilled student from the other starting point (full baselines).
    #[serde(default)]
    pub other_init: String,
    #[serde(default)]
    pub other_init_test_error: Option<f64>,
    #[serde(default)]
    pub other_init_agreement: Option<f64>,
    /// The student's directory, relative to the sweep's.
    pub dir: String,
    /// Agreement with the teacher's function (its prediction averaged over reads).
    #[serde(default)]
    pub function_agreement: Option<f64>,
}

fn contrastive() -> String {
    DistillLoss::Contrastive.name().into()
}

impl SweepRow {
    /// The distilled student from `init` (`copy` or `scratch`): test error, agreement.
    pub fn distilled_from(&self, init: &str) -> Option<(f64, f64)> {
        if self.init == init || (self.init.is_empty() && init == "scratch") {
            Some((self.test_error, self.agreement))
        } else if self.other_init == init {
            Some((self.other_init_test_error?, self.other_init_agreement?))
        } else {
            None
        }
    }

    fn of(r: &DistillResults, dir: &str) -> Self {
        Self {
            student_chip: r.student_chip.clone(),
            variation: r.variation,
            transfer: r.transfer,
            student_seed: r.student_seed,
            epochs: r.epochs,
            seed: r.seed,
            loss: r.config.distill.loss.name().into(),
            teacher_test_error: r.teacher_test_error,
            test_error: r.test_error,
            agreement: r.agreement,
            function_agreement: r.function_agreement,
            kl: r.kl,
            copy_test_error: r.copy_test_error,
            copy_agreement: r.copy_agreement,
            copy_kl: r.copy_kl,
            scratch_test_error: r.scratch_test_error,
            scratch_agreement: r.scratch_agreement,
            scratch_kl: r.scratch_kl,
            transfer_source: r.transfer_source.clone(),
            init: r.init.name().into(),
            gap: r.gap,
            recovered: r.recovered,
            copy_labels_test_error: r.copy_labels_test_error,
            copy_labels_agreement: r.copy_labels_agreement,
            other_init: r.other_init.map_or(String::new(), |i| i.name().into()),
            other_init_test_error: r.other_init_test_error,
            other_init_agreement: r.other_init_agreement,
            dir: dir.into(),
        }
    }
}

/// Runs every student into `out/<name>/` (a student whose `results.json` exists and
/// matches its settings is not re-run), writing `out/distill.json` first and
/// `out/results.csv` after each student.
pub fn sweep(
    students: &[Student],
    info: &SweepInfo,
    teacher: &TeacherCheckpoint,
    data: &Splits,
    out: &Path,
    rep: &Reporter,
) -> Result<Vec<SweepRow>> {
    crate::fsutil::check_out_not_inside(out, &info.teacher, "teacher", false)?;
    let _lock = crate::fsutil::OutputLock::take(out)?;
    write_json(&out.join(SWEEP_FILE), info)?;
    let mut rows = Vec::new();
    // Baselines of finished students by their key, for students that differ only in
    // objective.
    let mut measured: Vec<(DistillSettings, Baselines)> = Vec::new();
    // One teacher for every student: its measurements of shared views are made once.
    let shared_teacher = match students.first() {
        Some(st) => Some(Teacher::new(teacher, st.settings.distill.source)?),
        None => None,
    };
    for (k, st) in students.iter().enumerate() {
        let dir = out.join(&st.name);
        let done = dir.join("results.json");
        let previous: Option<DistillResults> = if done.exists() {
            read_json(&done).ok()
        } else {
            None
        };
        let r = match previous.filter(|r| r.config == st.settings) {
            Some(r) => {
                rep.line(&format!(
                    "[{}/{}] {}: already done, reusing {}",
                    k + 1,
                    students.len(),
                    st.name,
                    done.display()
                ));
                r
            }
            None => {
                rep.line(&format!(
                    "[{}/{}] {}: {} transfer images",
                    k + 1,
                    students.len(),
                    st.name,
                    st.settings.transfer
                ));
                let key = st.settings.baseline_key();
                let shared = measured.iter().find(|(m, _)| *m == key).map(|(_, b)| b);
                let t = shared_teacher.as_ref().expect("a student exists");
                run(&st.settings, teacher, t, data, &dir, rep, shared)?
            }
        };
        rows.push(SweepRow::of(&r, &st.name));
        measured.push((r.config.baseline_key(), r.baselines(&st.name)));
        write_csv(&out.join(RESULTS), &rows)?;
    }
    Ok(rows)
}

/// Whether `dir` holds a distillation sweep.
pub fn is_sweep(dir: &Path) -> bool {
    dir.join(SWEEP_FILE).is_file()
}

/// Reads a sweep's `results.csv`.
pub fn read_rows(path: &Path) -> Result<Vec<SweepRow>> {
    read_csv(path, "a distillation results.csv")
}

/// The sweep as a text table, one line per student (errors and agreements in %), and a
/// summary line per transfer size (mean, min, max over students).
pub fn table(rows: &[SweepRow]) -> String {
    let pct =
        |v: Option<f64>| v.map_or("     – ".to_string(), |v| format!("{:>6.2}%", 100.0 * v));
    let mut t = format!(
        "{:<30}  init     distil err/agree   copy err/agree    scratch err/agree  copy+labels  other init  recovered\n",
        "student"
    );
    for r in rows {
        t += &format!(
            "{:<30}  {:<7}  {:>6.2}% {:>6.2}%   {:>6.2}% {:>6.2}%   {} {}   {}     {}     {}\n",
            r.dir,
            r.init,
            100.0 * r.test_error,
            100.0 * r.agreement,
            100.0 * r.copy_test_error,
            100.0 * r.copy_agreement,
            pct(r.scratch_test_error),
            pct(r.scratch_agreement),
            pct(r.copy_labels_test_error),
            pct(r.other_init_test_error),
            r.recovered.map_or("–".into(), |v| format!("{v:.2}")),
        );
    }
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.transfer).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for n in sizes {
        let of: Vec<&SweepRow> = rows.iter().filter(|r| r.transfer == n).collect();
        if of.len() < 2 {
            continue;
        }
        let summary = |get: fn(&SweepRow) -> f64| {
            let v: Vec<f64> = of.iter().map(|r| 100.0 * get(r)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{mean:.2}% ({lo:.2}–{hi:.2})")
        };
        t += &format!(
            "summary, {n} transfer images, {} students: distil error {}, agreement {}, teacher {}\n",
            of.len(),
            summary(|r| r.test_error),
            summary(|r| r.agreement),
            summary(|r| r.teacher_test_error),
        );
    }
    t
}

/// A chip source as part of a file name (`specs/my chip.toml` → `my_chip`).
pub fn file_tag(source: &str) -> String {
    file_safe(
        &Path::new(source)
            .file_stem()
            .map_or_else(|| source.to_string(), |s| s.to_string_lossy().into_owned()),
    )
}
