//! `mortal plot DIR`: a scenario's figures, drawn from its result files only
//! (`scenario.json`, `results.csv`, each run's `epochs.csv` and checkpoints), into
//! `DIR/plots/`:
//!
//! * `error_vs_<axis>.{png,svg}`: test error vs the swept axis, one line per algorithm
//!   (and value of the other axes), mean ± one standard deviation over seeds and chip
//!   instances; runs that do not depend on the axis (digital backprop on a hardware axis)
//!   are dashed reference lines;
//! * `curves_<algo>.{png,svg}`: validation error vs epoch, one line per sweep point, mean
//!   ± std over seeds;
//! * `fields/<run>.png`: first-layer receptive fields of the first replicate of each
//!   point (weights of the first units as 28×28 images);
//! * `conductance/<run>.{png,svg}`: histogram of a chip's conductances before and after
//!   training (first replicate of each chip run).
//!
//! A distillation sweep (`mortal distill` with several students, or a `[distill]`
//! scenario) is drawn by [`mortal::train::distill_sweep::draw`] instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::plot::{self, LineChart, Series};
use mortal::error::{Error, Result};
use mortal::fsutil::file_safe;
use mortal::scenario::paths;
use mortal::scenario::schema::{Figure, known_label};
use mortal::scenario::store::{RESULTS, RUNS, RunEntry, ScenarioManifest, read_rows};
use mortal::scenario::sweep::short_path;
use mortal::tensor::Tensor;
use mortal::train::checkpoint;

/// Directory of the figures inside an output directory.
pub const PLOTS: &str = "plots";

/// A finished run as the figures see it.
struct Row<'a> {
    entry: &'a RunEntry,
    test_error: f64,
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// A value as a figure label (`true` → `on`, `[256,256]` → `256×256`).
fn label_of(v: &Value) -> String {
    match v {
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        Value::Array(a) => a.iter().map(paths::display).collect::<Vec<_>>().join("×"),
        other => paths::display(other),
    }
}

/// Per column of `results.csv`'s axis values: (its axis, whether it is the axis's first
/// path). The other paths of a zipped axis move with the first and are not labelled.
fn column_axes(m: &ScenarioManifest) -> Vec<(usize, bool)> {
    m.axes
        .iter()
        .enumerate()
        .flat_map(|(a, axis)| (0..axis.paths.len()).map(move |k| (a, k == 0)))
        .collect()
}

/// Draws every figure the scenario asks for; returns the files written.
/// A distillation sweep's directory (`distill.json`) gets its own figures.
pub fn draw(dir: &Path) -> Result<Vec<PathBuf>> {
    if mortal::train::distill_sweep::is_sweep(dir) {
        return super::distill_sweep::draw(dir);
    }
    if dir.join("results.json").is_file() && dir.join("epochs.csv").is_file() {
        return draw_run(dir);
    }
    let m = ScenarioManifest::read(dir)?;
    let header = m.header();
    let (rows, _) = read_rows(&dir.join(RESULTS), &header)?;
    let col = |name: &str| header.iter().position(|h| h == name).expect("known column");
    let (c_id, c_status, c_err) = (col("run_id"), col("status"), col("test_error"));
    let entries: HashMap<&str, &RunEntry> = m.runs.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut done: Vec<Row<'_>> = rows
        .iter()
        .filter(|r| r[c_status] == "ok")
        .filter_map(|r| {
            Some(Row {
                entry: entries.get(r[c_id].as_str())?,
                test_error: r[c_err].parse().ok()?,
            })
        })
        .collect();
    done.sort_by_key(|r| r.entry.index);
    // Figures are drawn only from whole runs: a run listed as done whose directory does
    // not verify against its manifest is refused, named.
    for r in &done {
        let run = dir.join(mortal::scenario::store::RUNS).join(&r.entry.id);
        mortal::train::manifest::verify(&run).map_err(|e| {
            mortal::error::Error::artifact(&run, format!("run {} cannot be drawn: {e}", r.entry.id))
        })?;
    }
    let out = dir.join(PLOTS);
    let mut files = Vec::new();
    let title = m.output.title.clone().unwrap_or_else(|| m.name.clone());
    for fig in &m.output.plots {
        match fig {
            Figure::Error if !m.axes.is_empty() && !done.is_empty() => {
                files.push(error_figure(&m, &done, &title, &out)?);
            }
            Figure::Curves => files.extend(curves(&m, dir, &done, &title, &out)?),
            Figure::Fields => files.extend(fields(&m, dir, &done, &out)?),
            Figure::Conductance => files.extend(conductance(dir, &done, &out)?),
            Figure::Energy => files.extend(energy_figure(&header, &rows, &title, &out)?),
            Figure::Error => {}
        }
    }
    Ok(files)
}

/// Test error (%) vs training energy per sample (J, log x): one point per finished run
/// with a cost, a line per algorithm (FF also analog-native), points by energy.
fn energy_figure(
    header: &[String],
    rows: &[Vec<String>],
    title: &str,
    out: &Path,
) -> Result<Option<PathBuf>> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(c_algo), Some(c_status), Some(c_err), Some(c_e), Some(c_n)) = (
        col("algo"),
        col("status"),
        col("test_error"),
        col("train_energy_j_per_sample"),
        col("train_energy_j_per_sample_native"),
    ) else {
        return Ok(None);
    };
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut add = |label: String, x: f64, y: f64| match lines.iter_mut().find(|l| l.0 == label) {
        Some(l) => l.1.push((x, y)),
        None => lines.push((label, vec![(x, y)])),
    };
    for r in rows
        .iter()
        .filter(|r| r.get(c_status).is_some_and(|s| s == "ok"))
    {
        let Some(err) = r.get(c_err).and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let algo = &r[c_algo];
        if let Some(e) = r.get(c_e).and_then(|v| v.parse::<f64>().ok()) {
            add(format!("{algo} (as simulated)"), e, 100.0 * err);
        }
        if let Some(e) = r.get(c_n).and_then(|v| v.parse::<f64>().ok()) {
            add(format!("{algo} (analog-native)"), e, 100.0 * err);
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let series = lines
        .into_iter()
        .map(|(label, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label,
                points,
                ..Series::default()
            }
        })
        .collect();
    let chart = LineChart {
        title: title.to_string(),
        x_label: "training energy per sample (J)".into(),
        y_label: "test error (%)".into(),
        series,
        log_x: true,
        ..LineChart::default()
    };
    Ok(Some(plot::line_chart(
        &chart,
        &out.join("error_vs_energy"),
    )?))
}

/// The x axis of the error figure: (column index, path, label).
fn x_axis(m: &ScenarioManifest) -> Result<(usize, String, String)> {
    let columns = m.columns();
    let path = m.output.x.clone().unwrap_or_else(|| columns[0].clone());
    let j = columns.iter().position(|c| *c == path).ok_or_else(|| {
        Error::param(
            "output.x",
            &path,
            format!("not a swept path; choose one of: {}", columns.join(", ")),
        )
    })?;
    let axis_label = m
        .axes
        .iter()
        .find(|a| a.paths[0] == path)
        .and_then(|a| a.label.clone());
    let label = m
        .output
        .x_label
        .clone()
        .or(axis_label)
        .or_else(|| known_label(&path).map(String::from))
        .unwrap_or_else(|| path.clone());
    Ok((j, path, label))
}

/// Test error vs the x axis.
fn error_figure(
    m: &ScenarioManifest,
    rows: &[Row<'_>],
    title: &str,
    out: &Path,
) -> Result<PathBuf> {
    let (j, path, x_label) = x_axis(m)?;
    let values: Vec<Value> = m
        .axes
        .iter()
        .flat_map(|a| {
            a.paths
                .iter()
                .position(|p| *p == path)
                .map(|k| a.values.iter().map(|v| v[k].clone()).collect::<Vec<_>>())
        })
        .next()
        .unwrap_or_default();
    let numeric = values.iter().all(Value::is_number);
    let x_of = |v: &Value| -> f64 {
        if numeric {
            v.as_f64().unwrap_or(f64::NAN)
        } else {
            values
                .iter()
                .position(|u| u == v)
                .map_or(f64::NAN, |i| i as f64)
        }
    };
    let columns = m.columns();
    let col_axes = column_axes(m);
    let x_axis_index = col_axes[j].0;
    // Series key: algorithm + the other axes' values; None x = a reference run.
    let mut order: Vec<String> = Vec::new();
    // (is a reference, (x or None, error %) per run)
    type Group = (bool, Vec<(Option<f64>, f64)>);
    let mut groups: HashMap<String, Group> = HashMap::new();
    for r in rows {
        let others: Vec<String> = columns
            .iter()
            .zip(&r.entry.cells)
            .enumerate()
            .filter(|(k, _)| col_axes[*k].0 != x_axis_index && col_axes[*k].1)
            .filter_map(|(_, (c, v))| {
                v.as_ref()
                    .map(|v| format!("{}={}", short_path(c), label_of(v)))
            })
            .collect();
        let x = r.entry.cells[j].as_ref().map(x_of);
        let reference = x.is_none();
        let mut key = r.entry.algo.clone();
        if reference {
            key.push_str(if r.entry.chip_seed.is_none() {
                " (digital)"
            } else {
                " (reference)"
            });
        }
        if !others.is_empty() {
            key.push_str(&format!(", {}", others.join(", ")));
        }
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups
            .entry(key)
            .or_insert((reference, Vec::new()))
            .1
            .push((x, 100.0 * r.test_error));
    }
    let xs: Vec<f64> = values.iter().map(x_of).filter(|x| x.is_finite()).collect();
    let (xmin, xmax) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let mut series = Vec::new();
    for key in order {
        let (reference, pts) = &groups[&key];
        if *reference {
            let all: Vec<f64> = pts.iter().map(|p| p.1).collect();
            let (mu, sd) = mean_std(&all);
            let (a, b) = if m.output.log_x {
                let pos: Vec<f64> = xs.iter().copied().filter(|x| *x > 0.0).collect();
                (pos.iter().copied().fold(f64::INFINITY, f64::min), xmax)
            } else {
                (xmin, xmax)
            };
            series.push(Series {
                label: key,
                points: vec![(a, mu), (b, mu)],
                band: if all.len() > 1 {
                    vec![(a, mu - sd, mu + sd), (b, mu - sd, mu + sd)]
                } else {
                    Vec::new()
                },
                dashed: true,
                plain: true,
            });
            continue;
        }
        let mut by_x: Vec<(f64, Vec<f64>)> = Vec::new();
        for (x, e) in pts {
            let x = x.expect("not a reference");
            match by_x.iter_mut().find(|(u, _)| *u == x) {
                Some((_, v)) => v.push(*e),
                None => by_x.push((x, vec![*e])),
            }
        }
        by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
        let stats: Vec<(f64, f64, f64, usize)> = by_x
            .iter()
            .map(|(x, v)| {
                let (mu, sd) = mean_std(v);
                (*x, mu, sd, v.len())
            })
            .collect();
        series.push(Series {
            label: key,
            points: stats.iter().map(|s| (s.0, s.1)).collect(),
            band: if stats.iter().any(|s| s.3 > 1) {
                stats.iter().map(|s| (s.0, s.1 - s.2, s.1 + s.2)).collect()
            } else {
                Vec::new()
            },
            ..Series::default()
        });
    }
    let distinct = |f: &dyn Fn(&RunEntry) -> Option<u64>| {
        let mut v: Vec<u64> = rows.iter().filter_map(|r| f(r.entry)).collect();
        v.sort();
        v.dedup();
        v.len() > 1
    };
    let over = match (
        distinct(&|e: &RunEntry| e.chip_seed),
        distinct(&|e: &RunEntry| Some(e.seed)),
    ) {
        (true, true) => "chip instances and seeds",
        (true, false) => "chip instances",
        (false, true) => "seeds",
        (false, false) => "",
    };
    let chart = LineChart {
        title: format!("{title}: test error vs {}", short_path(&path)),
        x_label,
        y_label: if over.is_empty() {
            "test error (%)".into()
        } else {
            format!("test error (%), mean ± std over {over}")
        },
        series,
        log_x: m.output.log_x,
        log_y: m.output.log_y,
        x_ticks: if numeric {
            Vec::new()
        } else {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, label_of(v)))
                .collect()
        },
    };
    plot::line_chart(
        &chart,
        &out.join(format!("error_vs_{}", file_safe(short_path(&path)))),
    )
}

/// Validation error vs epoch per algorithm, one line per sweep point.
fn curves(
    m: &ScenarioManifest,
    dir: &Path,
    rows: &[Row<'_>],
    title: &str,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let columns = m.columns();
    let col_axes = column_axes(m);
    let mut algos: Vec<&str> = Vec::new();
    for r in rows {
        if !algos.contains(&r.entry.algo.as_str()) {
            algos.push(&r.entry.algo);
        }
    }
    let mut files = Vec::new();
    for algo in algos {
        let mut order: Vec<String> = Vec::new();
        let mut points: HashMap<String, Vec<Vec<(usize, f64)>>> = HashMap::new();
        for r in rows.iter().filter(|r| r.entry.algo == algo) {
            let path = dir.join(RUNS).join(&r.entry.id).join("epochs.csv");
            let Ok(epochs) = plot::read_epochs(&path) else {
                continue;
            };
            let parts: Vec<String> = columns
                .iter()
                .zip(&r.entry.cells)
                .zip(&col_axes)
                .filter(|(_, (_, first))| *first)
                .filter_map(|((c, v), _)| {
                    v.as_ref()
                        .map(|v| format!("{}={}", short_path(c), label_of(v)))
                })
                .collect();
            let key = if parts.is_empty() {
                if r.entry.chip_seed.is_none() && !columns.is_empty() {
                    "digital".to_string()
                } else {
                    algo.to_string()
                }
            } else {
                parts.join(", ")
            };
            if !points.contains_key(&key) {
                order.push(key.clone());
            }
            points.entry(key).or_default().push(
                epochs
                    .iter()
                    .map(|e| (e.epoch, 100.0 * e.valid_error))
                    .collect(),
            );
        }
        if order.is_empty() {
            continue;
        }
        let series = order
            .iter()
            .map(|key| {
                let runs = &points[key];
                let n = runs.iter().map(Vec::len).min().unwrap_or(0);
                let stats: Vec<(f64, f64, f64)> = (0..n)
                    .map(|e| {
                        let v: Vec<f64> = runs.iter().map(|r| r[e].1).collect();
                        let (mu, sd) = mean_std(&v);
                        (runs[0][e].0 as f64, mu, sd)
                    })
                    .collect();
                Series {
                    label: key.clone(),
                    points: stats.iter().map(|s| (s.0, s.1)).collect(),
                    band: if runs.len() > 1 {
                        stats.iter().map(|s| (s.0, s.1 - s.2, s.1 + s.2)).collect()
                    } else {
                        Vec::new()
                    },
                    ..Series::default()
                }
            })
            .collect();
        let chart = LineChart {
            title: format!("{title}: {algo}, validation error per epoch"),
            x_label: "epoch".into(),
            y_label: "validation error (%)".into(),
            series,
            log_y: true,
            ..LineChart::default()
        };
        files.push(plot::line_chart(
            &chart,
            &out.join(format!("curves_{}", file_safe(algo))),
        )?);
    }
    Ok(files)
}

/// The tensors of a checkpoint directory, or None if it has none.
fn load_tensors(dir: &Path) -> Option<(serde_json::Value, Vec<Tensor>)> {
    if !dir.join(checkpoint::TENSOR_FILE).is_file() {
        return None;
    }
    let (meta, tensors) = checkpoint::load(dir).ok()?;
    Some((serde_json::to_value(meta).ok()?, tensors))
}

fn find<'a>(tensors: &'a [Tensor], suffix: &str) -> Option<&'a Tensor> {
    tensors.iter().find(|t| t.0.ends_with(suffix))
}

/// First-layer weights (units × 784, row-major) of a checkpoint: from a chip's
/// conductances, w = gain·(G⁺ − G⁻)/(g_max − g_min), or a digital weight matrix.
pub fn first_layer_weights(meta: &Value, tensors: &[Tensor]) -> Option<(usize, usize, Vec<f32>)> {
    if let (Some(gp), Some(gm), Some(gain)) = (
        find(tensors, "layer0.g_plus"),
        find(tensors, "layer0.g_minus"),
        find(tensors, "layer0.gain"),
    ) {
        let xb = &meta["config"]["chip"]["spec"]["crossbar"];
        let range = xb["g_max"].as_f64()? - xb["g_min"].as_f64()?;
        if gp.1.len() != 2 || gp.1 != gm.1 || range <= 0.0 {
            return None;
        }
        let g = f64::from(*gain.2.first()?);
        let w =
            gp.2.iter()
                .zip(&gm.2)
                .map(|(p, q)| (g * f64::from(p - q) / range) as f32)
                .collect();
        return Some((gp.1[0], gp.1[1], w));
    }
    if let Some(w) = tensors
        .iter()
        .find(|t| t.0.ends_with("layer0.weight") && t.1.len() == 2)
    {
        return Some((w.1[0], w.1[1], w.2.clone()));
    }
    tiled_first_layer(tensors)
}

/// First-layer weights (units × inputs, row-major, absent weights 0) of a checkpoint whose
/// first projection is tiled (local or masked): every `layer0.tile{t}.weight` block
/// placed at its `.rows` and `.inputs` (the layout the README documents).
fn tiled_first_layer(tensors: &[Tensor]) -> Option<(usize, usize, Vec<f32>)> {
    let mut blocks = Vec::new();
    for t in 0.. {
        let name = format!("layer0.tile{t}");
        let Some(w) = find(tensors, &format!("{name}.weight")) else {
            break;
        };
        let rows = find(tensors, &format!("{name}.rows"))?;
        let inputs = find(tensors, &format!("{name}.inputs"))?;
        blocks.push((w, rows.2[0] as usize, inputs));
    }
    let units = blocks.iter().map(|(w, r0, _)| r0 + w.1[0]).max()?;
    // The first layer's input is the 28 × 28 image.
    let side = mortal::data::SIDE;
    let inputs = side * side;
    let mut out = vec![0.0f32; units * inputs];
    for (w, r0, idx) in blocks {
        let (rows, cols) = (w.1[0], w.1[1]);
        for r in 0..rows {
            for (k, i) in idx.2.iter().enumerate().take(cols) {
                let i = *i as usize;
                if i < inputs {
                    out[(r0 + r) * inputs + i] = w.2[r * cols + k];
                }
            }
        }
    }
    Some((units, inputs, out))
}

/// The receptive fields to draw of a first layer (`units × inputs` weights `w`): `n` units,
/// spread over the locations when the layer is tiled; returns (tiles, images).
fn field_images(
    tensors: &[Tensor],
    units: usize,
    inputs: usize,
    w: &[f32],
    n: usize,
) -> (usize, Vec<Vec<f32>>) {
    let tiles = tensors
        .iter()
        .filter(|t| t.0.ends_with(".weight") && t.0.contains("layer0.tile"))
        .count();
    let images = units_to_show(units, tiles, n)
        .iter()
        .map(|u| w[u * inputs..(u + 1) * inputs].to_vec())
        .collect();
    (tiles, images)
}

/// Which `n` units of a first layer of `units` to show: the first `n`, or for a layer of
/// `tiles` equal tiles (a local layer) units spread over every location.
pub fn units_to_show(units: usize, tiles: usize, n: usize) -> Vec<usize> {
    let n = n.clamp(1, units);
    if tiles <= 1 || !units.is_multiple_of(tiles) {
        return (0..n).collect();
    }
    let per = units / tiles;
    (0..n)
        .map(|k| (k % tiles) * per + (k / tiles) % per)
        .collect()
}

/// The figures of one `mortal train` run directory, into `<dir>/plots/`: its training
/// curve and, when it has a checkpoint of a 28 × 28 input, first-layer receptive fields
/// (spread over every location for a local layer).
fn draw_run(dir: &Path) -> Result<Vec<PathBuf>> {
    let out = dir.join(PLOTS);
    let name = dir
        .file_name()
        .map_or("run".to_string(), |n| n.to_string_lossy().into_owned());
    let mut files = vec![plot::training_curves(
        &[(name.clone(), dir.to_path_buf())],
        &name,
        &out.join("curves"),
    )?];
    if let Some((meta, tensors)) = load_tensors(dir)
        && let Some((units, inputs, w)) = first_layer_weights(&meta, &tensors)
        && inputs == mortal::data::PIXELS
    {
        let (tiles, images) = field_images(&tensors, units, inputs, &w, 48);
        let side = mortal::data::SIDE;
        let cols = if tiles > 1 { tiles.min(16) } else { 8 };
        files.push(plot::image_grid(
            &images,
            (side, side),
            cols,
            &format!("{name}: first-layer receptive fields"),
            &format!(
                "{} of {units} units{}; red positive, blue negative, each scaled to its own max |w|",
                images.len(),
                if tiles > 1 {
                    format!(", one column per location ({tiles} locations)")
                } else {
                    String::new()
                }
            ),
            &out.join("fields.png"),
        )?);
    }
    Ok(files)
}

/// Receptive-field grids of the first replicate of each point.
fn fields(m: &ScenarioManifest, dir: &Path, rows: &[Row<'_>], out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let side = mortal::data::SIDE;
    for r in rows.iter().filter(|r| r.entry.replicate == 0) {
        let Some((meta, tensors)) = load_tensors(&dir.join(RUNS).join(&r.entry.id)) else {
            continue;
        };
        let Some((units, inputs, w)) = first_layer_weights(&meta, &tensors) else {
            continue;
        };
        if inputs != side * side || units == 0 {
            continue;
        }
        let (_, images) = field_images(&tensors, units, inputs, &w, m.output.field_units);
        let n = images.len();
        let cols = (n as f64).sqrt().ceil() as usize;
        files.push(plot::image_grid(
            &images,
            (side, side),
            cols,
            &format!("{}: first-layer receptive fields", r.entry.name),
            &format!(
                "{n} of {units} units; red positive, blue negative, each scaled to its own max |w|"
            ),
            &out.join("fields")
                .join(format!("{}.png", file_safe(&r.entry.name))),
        )?);
    }
    Ok(files)
}

/// Every device conductance (G⁺ and G⁻ of each layer's weights) of a checkpoint, µS.
fn conductances(tensors: &[Tensor]) -> Vec<f32> {
    tensors
        .iter()
        .filter(|t| t.0.ends_with(".g_plus") || t.0.ends_with(".g_minus"))
        .flat_map(|t| t.2.iter().copied())
        .collect()
}

/// Conductance histograms before and after training.
fn conductance(dir: &Path, rows: &[Row<'_>], out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.entry.replicate == 0 && r.entry.chip_seed.is_some())
    {
        let run = dir.join(RUNS).join(&r.entry.id);
        let (Some((meta, after)), Some((_, before))) =
            (load_tensors(&run), load_tensors(&run.join("init")))
        else {
            continue;
        };
        let (a, b) = (conductances(&after), conductances(&before));
        if a.is_empty() || b.is_empty() {
            continue;
        }
        let xb = &meta["config"]["chip"]["spec"]["crossbar"];
        let (mut lo, mut hi) = (
            xb["g_min"].as_f64().unwrap_or(0.0),
            xb["g_max"].as_f64().unwrap_or(1.0),
        );
        for v in a
            .iter()
            .chain(&b)
            .map(|v| f64::from(*v))
            .filter(|v| v.is_finite())
        {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let chart = LineChart {
            title: format!("{}: conductances before and after training", r.entry.name),
            x_label: "conductance G (µS)".into(),
            y_label: "devices (%)".into(),
            series: vec![
                Series {
                    label: "before training (programmed initial weights)".into(),
                    points: plot::histogram_steps(&b, lo, hi, 80),
                    plain: true,
                    ..Series::default()
                },
                Series {
                    label: "after training".into(),
                    points: plot::histogram_steps(&a, lo, hi, 80),
                    plain: true,
                    ..Series::default()
                },
            ],
            ..LineChart::default()
        };
        files.push(plot::line_chart(
            &chart,
            &out.join("conductance").join(file_safe(&r.entry.name)),
        )?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {

    #[test]
    fn units_shown_spread_over_the_locations_of_a_local_layer() {
        assert_eq!(units_to_show(100, 1, 5), vec![0, 1, 2, 3, 4]);
        // 4 locations of 3 units: one unit of each location, then the next.
        assert_eq!(units_to_show(12, 4, 6), vec![0, 3, 6, 9, 1, 4]);
        assert_eq!(units_to_show(3, 4, 10), vec![0, 1, 2]);
    }

    #[test]
    fn tiled_first_layer_places_each_block_at_its_rows_and_inputs() {
        let t = |name: &str, shape: Vec<usize>, v: Vec<f32>| (name.to_string(), shape, v);
        let tensors = vec![
            t(
                "substrate.layer0.tile0.weight",
                vec![2, 2],
                vec![1.0, 2.0, 3.0, 4.0],
            ),
            t("substrate.layer0.tile0.rows", vec![2], vec![0.0, 2.0]),
            t("substrate.layer0.tile0.inputs", vec![2], vec![5.0, 783.0]),
            t("substrate.layer0.tile1.weight", vec![1, 1], vec![9.0]),
            t("substrate.layer0.tile1.rows", vec![2], vec![2.0, 1.0]),
            t("substrate.layer0.tile1.inputs", vec![1], vec![0.0]),
        ];
        let (units, inputs, w) = tiled_first_layer(&tensors).unwrap();
        assert_eq!((units, inputs), (3, 784));
        assert_eq!(
            (w[5], w[783], w[784 + 5], w[784 + 783]),
            (1.0, 2.0, 3.0, 4.0)
        );
        assert_eq!(w[2 * 784], 9.0);
        assert_eq!(w.iter().filter(|v| **v != 0.0).count(), 5);
    }

    use super::*;

    #[test]
    fn chip_weights_come_from_conductances() {
        let meta = serde_json::json!({"config": {"chip": {"spec": {"crossbar": {"g_min": 1.0, "g_max": 3.0}}}}});
        let t: Vec<Tensor> = vec![
            ("substrate/layer0.g_plus".into(), vec![1, 2], vec![2.0, 1.0]),
            (
                "substrate/layer0.g_minus".into(),
                vec![1, 2],
                vec![1.0, 2.0],
            ),
            ("substrate/layer0.gain".into(), vec![1], vec![4.0]),
            ("substrate/layer0.weight".into(), vec![1, 2], vec![9.0, 9.0]),
        ];
        let (u, i, w) = first_layer_weights(&meta, &t).unwrap();
        assert_eq!((u, i), (1, 2));
        assert_eq!(w, vec![2.0, -2.0]);
        let digital = vec![t[3].clone()];
        assert_eq!(
            first_layer_weights(&meta, &digital).unwrap().2,
            vec![9.0, 9.0]
        );
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
    }
}
