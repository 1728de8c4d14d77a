//! The figure of a distillation's training curves: validation error against student epoch
//! for the student and each baseline that trained (scratch with labels, copy + labels,
//! the distilled student from the other start), averaged over the student directories
//! given (band: min–max), drawn from their `epochs.csv` and `results.json` files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plot::{LineChart, Series, line_chart};
use mortal::error::Result;
use mortal::fsutil::{read_csv, read_json};
use mortal::train::distill::{DistillEpoch, DistillResults};

/// The training runs inside a student directory: (legend label, sub-directory).
fn runs(dir: &Path) -> Vec<(String, PathBuf)> {
    let r: Option<DistillResults> = read_json(&dir.join("results.json")).ok();
    let init = r
        .as_ref()
        .map_or("?".to_string(), |r| r.init.name().to_string());
    let other = r
        .as_ref()
        .and_then(|r| r.other_init)
        .map_or("?".to_string(), |i| i.name().to_string());
    vec![
        (format!("distilled, from {init}"), dir.to_path_buf()),
        (format!("distilled, from {other}"), dir.join("other-init")),
        ("FF from scratch (labels)".into(), dir.join("scratch")),
        (
            "copy + FF fine-tuning (labels)".into(),
            dir.join("copy-labels"),
        ),
    ]
}

/// Draws `<stem>.png` (and `.svg`): validation error (%) against epoch for every kind of
/// run found in the `students` directories, mean over them with a min–max band. Returns
/// `None` when no `epochs.csv` was found.
pub fn epochs_figure(students: &[PathBuf], title: &str, stem: &Path) -> Result<Option<PathBuf>> {
    // label → epoch → values (%)
    let mut curves: BTreeMap<(usize, String), BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for dir in students {
        for (k, (label, run)) in runs(dir).into_iter().enumerate() {
            let csv = run.join("epochs.csv");
            if !csv.is_file() {
                continue;
            }
            let rows: Vec<DistillEpoch> = read_csv(&csv, "a distillation epochs.csv")?;
            let curve = curves.entry((k, label)).or_default();
            for r in rows {
                curve
                    .entry(r.epoch)
                    .or_default()
                    .push(100.0 * r.valid_error);
            }
        }
    }
    if curves.is_empty() {
        return Ok(None);
    }
    let series = curves
        .into_iter()
        .map(|((_, label), at)| {
            let mut s = Series {
                label,
                ..Series::default()
            };
            for (epoch, v) in at {
                let x = epoch as f64;
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                s.points.push((x, mean));
                if v.len() > 1 {
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    s.band.push((x, lo, hi));
                }
            }
            s
        })
        .collect();
    let chart = LineChart {
        title: format!("{title}: validation error by student epoch"),
        x_label: "student epoch".into(),
        y_label: format!(
            "validation error (%, log scale), mean of {} student chip(s)",
            students.len()
        ),
        series,
        log_y: true,
        ..Default::default()
    };
    Ok(Some(line_chart(&chart, stem)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mortal::fsutil::write_csv;

    fn rows(errors: &[f64]) -> Vec<DistillEpoch> {
        errors
            .iter()
            .enumerate()
            .map(|(i, e)| DistillEpoch {
                epoch: i + 1,
                lr_gain: 1.0,
                train_kl: 0.1,
                train_ff_loss: 1.0,
                train_disagreement: 0.1,
                valid_error: *e,
                valid_agreement: 1.0 - e,
                valid_kl: 0.1,
                train_seconds: 1.0,
                eval_seconds: 0.1,
                elapsed_seconds: 1.0,
            })
            .collect()
    }

    #[test]
    fn curves_of_every_run_found_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("scratch")).unwrap();
            write_csv(&d.join("epochs.csv"), &rows(&[0.3, 0.2, 0.1])).unwrap();
            write_csv(&d.join("scratch/epochs.csv"), &rows(&[0.4, 0.3, 0.2])).unwrap();
        }
        let stem = dir.path().join("plots/epochs");
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        let png = epochs_figure(&[a, b], "t", &stem).unwrap().unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        assert!(
            epochs_figure(&[dir.path().join("none")], "t", &stem)
                .unwrap()
                .is_none()
        );
    }
}
