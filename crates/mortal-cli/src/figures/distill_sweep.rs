//! The figures of a distillation sweep (`mortal distill` with several students, `mortal
//! run` of a `[distill]` scenario): error and agreement against transfer-set size or
//! variation, and the training curves, drawn from the sweep's files alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mortal::Result;
use mortal::fsutil::read_json;
use mortal::train::distill_sweep::{
    PLOTS, RESULTS, SWEEP_FILE, SweepInfo, SweepRow, file_tag, read_rows,
};

use crate::plot::{LineChart, Series, line_chart};

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

#[cfg(test)]
mod tests {
    use super::*;
    use mortal::fsutil::{write_csv, write_json};
    use mortal::train::distill_sweep::is_sweep;

    fn row(chip: &str, variation: f64, transfer: usize, seed: u64, err: f64) -> SweepRow {
        SweepRow {
            student_chip: chip.into(),
            variation,
            transfer,
            student_seed: seed,
            epochs: 1,
            seed: 1,
            loss: mortal::learn::distill::DistillLoss::Contrastive
                .name()
                .into(),
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
            function_agreement: None,
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
