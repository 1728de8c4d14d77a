//! Sweeps of distillation students (`mortal distill` with several transfer sizes or
//! student seeds, and distillation scenarios, `mortal run` with `[distill]`): one
//! directory per student (what a single `mortal distill` writes), `results.csv` with one
//! row per student, `distill.json` describing the sweep, and its figures, which
//! `mortal plot DIR` redraws from those files alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::distill::{Baselines, DistillResults, DistillSettings, Teacher, TeacherCheckpoint, run};
use crate::data::Splits;
use crate::error::Result;
use crate::fsutil::{file_safe, read_csv, read_json, write_csv, write_json};
use crate::learn::distill::DistillLoss;
use crate::plot::{LineChart, Series, line_chart};
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
}

fn contrastive() -> String {
    DistillLoss::Contrastive.name().into()
}

impl SweepRow {
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

/// Redraws a sweep's figures from its files into `dir/plots/`.
pub fn draw(dir: &Path) -> Result<Vec<PathBuf>> {
    let info: SweepInfo = read_json(&dir.join(SWEEP_FILE))?;
    let path = dir.join(RESULTS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let rows = read_rows(&path)?;
    let mut files = figures(&rows, &info.title, &dir.join(PLOTS).join("distill"))?;
    files.extend(epochs_figures(dir, &rows, &info.title)?);
    Ok(files)
}

/// The training-curve figures of a sweep, one per transfer size
/// (`plots/distill-epochs-t<N>`), over every student of that size.
pub fn epochs_figures(dir: &Path, rows: &[SweepRow], title: &str) -> Result<Vec<PathBuf>> {
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.transfer).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut files = Vec::new();
    for n in sizes {
        let students: Vec<PathBuf> = rows
            .iter()
            .filter(|r| r.transfer == n)
            .map(|r| dir.join(&r.dir))
            .collect();
        let stem = dir.join(PLOTS).join(format!("distill-epochs-t{n}"));
        let what = format!("{title}, {n} transfer images");
        files.extend(super::distill_epochs::epochs_figure(
            &students, &what, &stem,
        )?);
    }
    Ok(files)
}

/// (x, mean, min, max) of `y` (in %) over the rows at each distinct `x` (rows where `y`
/// is `None` are left out).
fn stats(rows: &[&SweepRow], x: fn(&SweepRow) -> f64, y: Get) -> Series {
    let mut at: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for r in rows {
        let Some(yv) = y(r) else { continue };
        let xv = x(r);
        at.entry(xv.to_bits())
            .or_insert((xv, Vec::new()))
            .1
            .push(100.0 * yv);
    }
    let mut pts: Vec<(f64, Vec<f64>)> = at.into_values().collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut s = Series::default();
    for (xv, v) in pts {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        s.points.push((xv, mean));
        if v.len() > 1 {
            s.band.push((xv, lo, hi));
        }
    }
    s
}

type Get = fn(&SweepRow) -> Option<f64>;

impl SweepRow {
    /// The distilled student from `init` (`copy` or `scratch`): test error, agreement.
    fn distilled_from(&self, init: &str) -> Option<(f64, f64)> {
        if self.init == init || (self.init.is_empty() && init == "scratch") {
            Some((self.test_error, self.agreement))
        } else if self.other_init == init {
            Some((self.other_init_test_error?, self.other_init_agreement?))
        } else {
            None
        }
    }
}

/// The students' series (copy, scratch, copy + labels, one distilled line per student
/// loss and starting point; and the teacher's, for errors) of one figure.
fn lines(rows: &[&SweepRow], x: fn(&SweepRow) -> f64, error: bool) -> Vec<Series> {
    let series = |label: String, get: Get, rows: &[&SweepRow], dashed: bool| Series {
        label,
        dashed,
        ..stats(rows, x, get)
    };
    let pick = |a: Get, b: Get| if error { a } else { b };
    let mut out = vec![
        series(
            "copy conductances".into(),
            pick(|r| Some(r.copy_test_error), |r| Some(r.copy_agreement)),
            rows,
            false,
        ),
        series(
            "FF from scratch (labels)".into(),
            pick(|r| r.scratch_test_error, |r| r.scratch_agreement),
            rows,
            false,
        ),
        series(
            "copy + FF fine-tuning (labels)".into(),
            pick(|r| r.copy_labels_test_error, |r| r.copy_labels_agreement),
            rows,
            false,
        ),
    ];
    let losses: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.loss.as_str()).collect();
    for loss in losses {
        let of: Vec<&SweepRow> = rows.iter().copied().filter(|r| r.loss == loss).collect();
        out.push(series(
            format!("distilled ({loss}), from scratch"),
            pick(
                |r| r.distilled_from("scratch").map(|v| v.0),
                |r| r.distilled_from("scratch").map(|v| v.1),
            ),
            &of,
            false,
        ));
        out.push(series(
            format!("copy + distilled ({loss})"),
            pick(
                |r| r.distilled_from("copy").map(|v| v.0),
                |r| r.distilled_from("copy").map(|v| v.1),
            ),
            &of,
            false,
        ));
    }
    if error {
        out.push(series(
            "teacher (its own chip)".into(),
            |r| Some(r.teacher_test_error),
            rows,
            true,
        ));
    }
    out.retain(|s| !s.points.is_empty());
    out
}

fn count<T: Ord>(v: impl Iterator<Item = T>) -> usize {
    v.collect::<std::collections::BTreeSet<T>>().len()
}

/// Draws the figures of a sweep (PNG + SVG), `<stem>-error` and `<stem>-agreement` vs
/// transfer-set size for each (student chip, variation) group (suffixed `_<chip>_v<var>`
/// when there are several groups), and `<stem>-variation-error` / `-agreement` vs the
/// student chips' variation at the largest transfer size when variation was swept. Lines
/// are means over student chips, bands their min–max.
pub fn figures(rows: &[SweepRow], title: &str, stem: &Path) -> Result<Vec<PathBuf>> {
    let name = stem
        .file_name()
        .map_or("distill".into(), |s| s.to_string_lossy().into_owned());
    let file = |suffix: &str| stem.with_file_name(format!("{name}{suffix}"));
    let mut groups: BTreeMap<(String, u64), Vec<&SweepRow>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.student_chip.clone(), r.variation.to_bits()))
            .or_default()
            .push(r);
    }
    let chips = count(rows.iter().map(|r| r.student_chip.clone()));
    let mut files = Vec::new();
    for ((chip, var), g) in &groups {
        let var = f64::from_bits(*var);
        let (suffix, what) = if groups.len() == 1 {
            (String::new(), String::new())
        } else {
            (
                format!("_{}_v{var}", file_tag(chip)),
                format!(" ({chip}, variation {var})"),
            )
        };
        let pair = Pair {
            rows: g,
            x: |r| r.transfer as f64,
            x_label: "transfer-set size (images)".into(),
            log_x: true,
            head: format!("{title}{what}"),
            tail: String::new(),
        };
        files.extend(pair.draw(
            &file(&format!("-error{suffix}")),
            &file(&format!("-agreement{suffix}")),
        )?);
    }
    let mut by_chip: BTreeMap<&str, Vec<&SweepRow>> = BTreeMap::new();
    for r in rows {
        by_chip.entry(&r.student_chip).or_default().push(r);
    }
    for (chip, g) in by_chip {
        if count(g.iter().map(|r| r.variation.to_bits())) < 2 {
            continue;
        }
        let largest = g.iter().map(|r| r.transfer).max().expect("non-empty");
        let at: Vec<&SweepRow> = g.into_iter().filter(|r| r.transfer == largest).collect();
        let suffix = if chips == 1 {
            String::new()
        } else {
            format!("_{}", file_tag(chip))
        };
        let pair = Pair {
            rows: &at,
            x: |r| r.variation,
            x_label: format!("student chip variation (× the {chip} spreads and noises)"),
            log_x: false,
            head: title.to_string(),
            tail: format!(", {largest} transfer images"),
        };
        files.extend(pair.draw(
            &file(&format!("-variation-error{suffix}")),
            &file(&format!("-variation-agreement{suffix}")),
        )?);
    }
    Ok(files)
}

/// The error and agreement figures of one set of students against `x`.
struct Pair<'a> {
    rows: &'a [&'a SweepRow],
    x: fn(&SweepRow) -> f64,
    /// X axis label, with unit.
    x_label: String,
    log_x: bool,
    /// Title before the measure's name, and after it.
    head: String,
    tail: String,
}

impl Pair<'_> {
    /// Draws both (PNG + SVG at each stem); returns the PNGs.
    fn draw(&self, error_stem: &Path, agreement_stem: &Path) -> Result<[PathBuf; 2]> {
        let seeds = count(self.rows.iter().map(|r| r.student_seed));
        let (head, tail) = (&self.head, &self.tail);
        let error = LineChart {
            title: format!("{head}: student test error{tail}"),
            x_label: self.x_label.clone(),
            y_label: format!("test error (%), mean of {seeds} student chips, band min–max"),
            series: lines(self.rows, self.x, true),
            log_x: self.log_x,
            log_y: true,
            ..Default::default()
        };
        let agreement = LineChart {
            title: format!("{head}: agreement with the teacher's top-1{tail}"),
            x_label: self.x_label.clone(),
            y_label: format!("test agreement (%), mean of {seeds} student chips"),
            series: lines(self.rows, self.x, false),
            log_x: self.log_x,
            ..Default::default()
        };
        Ok([
            line_chart(&error, error_stem)?,
            line_chart(&agreement, agreement_stem)?,
        ])
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(chip: &str, variation: f64, transfer: usize, seed: u64, err: f64) -> SweepRow {
        SweepRow {
            student_chip: chip.into(),
            variation,
            transfer,
            student_seed: seed,
            epochs: 1,
            seed: 1,
            loss: contrastive(),
            teacher_test_error: 0.05,
            test_error: err,
            agreement: 1.0 - err,
            kl: 0.1,
            copy_test_error: 0.5,
            copy_agreement: 0.5,
            copy_kl: 1.0,
            scratch_test_error: Some(0.2),
            scratch_agreement: Some(0.8),
            scratch_kl: Some(0.5),
            transfer_source: "train".into(),
            init: "scratch".into(),
            gap: err - 0.05,
            recovered: None,
            copy_labels_test_error: None,
            copy_labels_agreement: None,
            other_init: "copy".into(),
            other_init_test_error: Some(err / 2.0),
            other_init_agreement: Some(1.0 - err / 2.0),
            dir: format!("{chip}-v{variation}-t{transfer}-s{seed}"),
        }
    }

    #[test]
    fn stats_average_over_seeds_at_each_x_in_order() {
        let rows = [
            row("harsh", 1.0, 5000, 2, 0.10),
            row("harsh", 1.0, 1000, 2, 0.30),
            row("harsh", 1.0, 1000, 3, 0.20),
        ];
        let refs: Vec<&SweepRow> = rows.iter().collect();
        let s = stats(&refs, |r| r.transfer as f64, |r| Some(r.test_error));
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[0].0, 1000.0);
        approx::assert_relative_eq!(s.points[0].1, 25.0, epsilon = 1e-9);
        approx::assert_relative_eq!(s.points[1].1, 10.0, epsilon = 1e-9);
        assert_eq!(s.band.len(), 1, "a band only where there are several seeds");
        approx::assert_relative_eq!(s.band[0].1, 20.0, epsilon = 1e-9);
        approx::assert_relative_eq!(s.band[0].2, 30.0, epsilon = 1e-9);
    }

    #[test]
    fn each_student_loss_gets_its_own_distilled_line() {
        let mut rows = vec![
            row("harsh", 1.0, 100, 2, 0.3),
            row("harsh", 1.0, 100, 3, 0.2),
        ];
        let mut kl = row("harsh", 1.0, 100, 2, 0.1);
        kl.loss = "layer-kl".into();
        rows.push(kl);
        let refs: Vec<&SweepRow> = rows.iter().collect();
        let s = lines(&refs, |r| r.transfer as f64, true);
        let labels: Vec<&str> = s.iter().map(|x| x.label.as_str()).collect();
        // copy, scratch, (contrastive: from scratch, copy + distil), (layer-kl: the same),
        // teacher; no copy + labels line without its values.
        assert_eq!(s.len(), 7, "{labels:?}");
        assert!(labels[2].contains("contrastive") && labels[4].contains("layer-kl"));
        assert!(labels[3].starts_with("copy + distilled"));
        approx::assert_relative_eq!(s[2].points[0].1, 25.0, epsilon = 1e-9);
        approx::assert_relative_eq!(s[4].points[0].1, 10.0, epsilon = 1e-9);
        approx::assert_relative_eq!(s[3].points[0].1, 12.5, epsilon = 1e-9);
        assert!(s[6].dashed, "the teacher is the dashed reference");
    }

    #[test]
    fn figures_per_group_and_vs_variation_round_trip_through_the_csv() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = Vec::new();
        for v in [0.5, 1.0, 2.0] {
            for t in [100, 1000] {
                for s in [2, 3] {
                    rows.push(row("harsh", v, t, s, 0.1 * v / t as f64 * 100.0));
                }
            }
        }
        write_csv(&dir.path().join(RESULTS), &rows).unwrap();
        assert_eq!(read_rows(&dir.path().join(RESULTS)).unwrap(), rows);
        let info = SweepInfo {
            title: "t".into(),
            teacher: "teacher".into(),
            teacher_seed: 1,
            teacher_chip_seed: Some(1),
            students: rows.iter().map(|r| r.dir.clone()).collect(),
        };
        write_json(&dir.path().join(SWEEP_FILE), &info).unwrap();
        assert!(is_sweep(dir.path()));
        let files = draw(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3 * 2 + 2, "{names:?}");
        assert!(names.contains(&"distill-error_harsh_v0.5.png".to_string()));
        assert!(names.contains(&"distill-variation-agreement.png".to_string()));
        for f in files {
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
}
