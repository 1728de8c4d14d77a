//! The Python package's native module `mortal._mortal` (pyo3; built by maturin with the
//! `python` feature). The Python side (`python/mortal/__init__.py`) adds the friendly
//! names: `Chip.preset`, `Digital`, `train`, `distill`, `run_scenario`, `load_results`.
//!
//! Arrays are numpy `float32`, row-major `[batch, features]` as PyTorch expects (that is
//! the column-major `features × batch` matrix the substrates use, so inputs and outputs
//! are copied once, never transposed); weights are `[out, in]`. Long calls release the
//! GIL. Errors raise `mortal.ParamError` (a bad parameter or input: a `ValueError`) or
//! `mortal.MortalError` (data, files, divergence: a `RuntimeError`) with the CLI's
//! one-line message.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use mortal::error::Error;
use mortal::linalg::Mat;
use mortal::rng::{Rng, stream};
use mortal::substrate::{
    Activation, Chip, DigitalNet, Substrate, SubstrateState, Topology, Update,
};
use mortal::train::ChipConfig;

create_exception!(
    _mortal,
    MortalError,
    PyRuntimeError,
    "A run failed (data, files, divergence)."
);
create_exception!(
    _mortal,
    ParamError,
    PyValueError,
    "A bad parameter or input."
);

/// Converts a library error into the Python exception of its kind.
fn py_err(e: impl Into<anyhow::Error>) -> PyErr {
    let e: anyhow::Error = e.into();
    let msg = format!("{e:#}");
    match e.downcast_ref::<Error>() {
        Some(Error::Param { .. }) => ParamError::new_err(msg),
        _ => MortalError::new_err(msg),
    }
}

fn param(key: &str, value: impl std::fmt::Display, reason: &str) -> PyErr {
    py_err(Error::param(key, value, reason))
}

fn activation(name: &str) -> PyResult<Activation> {
    match name {
        "relu" => Ok(Activation::Relu),
        "sigmoid" => Ok(Activation::Sigmoid),
        "linear" => Ok(Activation::Linear),
        other => Err(param(
            "activation",
            other,
            "expected relu, sigmoid or linear",
        )),
    }
}

fn topology(layers: Vec<usize>, act: &str, output_linear: bool) -> PyResult<Topology> {
    // The CLI's limits, before anything is allocated (a chip's per-weight cost: the
    // larger, so a digital network is held to it too).
    let weights: f64 = layers.windows(2).map(|p| p[0] as f64 * p[1] as f64).sum();
    mortal::resources::check_network(&layers, weights, true, "layers").map_err(py_err)?;
    let a = activation(act)?;
    let t = if output_linear {
        Topology::classifier(layers, a)
    } else {
        Topology::uniform(layers, a)
    };
    t.map_err(py_err)
}

/// A substrate driven from Python: a chip instance or the ideal digital network.
#[pyclass(module = "mortal._mortal")]
pub struct Substrate_ {
    inner: Mutex<Box<dyn Substrate>>,
    noise: Mutex<Rng>,
}

/// Two `[batch, features]` arrays (what the lines received, the activities).
type Pair<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);

/// `[batch, features]` float32 → `features × batch` matrix.
fn mat_of(a: &PyReadonlyArray2<'_, f32>, key: &str, features: usize) -> PyResult<Mat> {
    let view = a.as_array();
    let shape = view.shape();
    if shape[1] != features {
        return Err(param(
            key,
            format!("shape {shape:?}"),
            &format!("needs [batch, {features}]"),
        ));
    }
    let v: Vec<f32> = a.as_array().iter().copied().collect();
    Ok(Mat::from_column_slice(features, shape[0], &v))
}

/// `features × batch` matrix → `[batch, features]` float32.
fn array_of<'py>(py: Python<'py>, m: &Mat) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (f, b) = m.shape();
    PyArray1::from_slice(py, m.as_slice()).reshape([b, f])
}

impl Substrate_ {
    fn wrap(s: Box<dyn Substrate>, seed: u64) -> Self {
        Self {
            inner: Mutex::new(s),
            noise: Mutex::new(stream(seed, "python/noise")),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Substrate, &mut Rng) -> T) -> T {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = self.noise.lock().unwrap_or_else(|p| p.into_inner());
        f(s.as_mut(), &mut n)
    }

    fn check_layer(&self, layer: usize) -> PyResult<(usize, usize)> {
        self.with(|s, _| {
            let t = s.topology();
            if layer >= t.layers() {
                return Err(param(
                    "layer",
                    layer,
                    &format!("the network has {} layers", t.layers()),
                ));
            }
            Ok(t.dims(layer))
        })
    }
}

#[pymethods]
impl Substrate_ {
    /// A chip from a preset name or spec (file path or TOML text), for `layers` widths
    /// (inputs first).
    #[staticmethod]
    #[pyo3(signature = (source, layers, seed=1, variation=1.0, init_seed=1, activation="relu", output_linear=false))]
    fn chip(
        source: &str,
        layers: Vec<usize>,
        seed: u64,
        variation: f64,
        init_seed: u64,
        activation: &str,
        output_linear: bool,
    ) -> PyResult<Self> {
        let topo = topology(layers, activation, output_linear)?;
        let cfg = if source.contains('\n') || source.contains('=') {
            let dir = tempfile::tempdir().map_err(|e| py_err(Error::io("temporary file", e)))?;
            let path = dir.path().join("spec.toml");
            std::fs::write(&path, source).map_err(|e| py_err(Error::io("temporary file", e)))?;
            ChipConfig::from_source(&path.display().to_string(), seed, variation)
        } else {
            ChipConfig::from_source(source, seed, variation)
        }
        .map_err(py_err)?;
        cfg.validate().map_err(py_err)?;
        let chip = Chip::new(&cfg.effective_spec(), topo, seed, init_seed).map_err(py_err)?;
        Ok(Self::wrap(Box::new(chip), seed))
    }

    /// The ideal digital network.
    #[staticmethod]
    #[pyo3(signature = (layers, seed=1, activation="relu", output_linear=false))]
    fn digital(
        layers: Vec<usize>,
        seed: u64,
        activation: &str,
        output_linear: bool,
    ) -> PyResult<Self> {
        let topo = topology(layers, activation, output_linear)?;
        Ok(Self::wrap(Box::new(DigitalNet::new(topo, seed)), seed))
    }

    /// Widths `[inputs, layer 0, …]`.
    #[getter]
    fn layers(&self) -> Vec<usize> {
        self.with(|s, _| s.topology().widths().to_vec())
    }

    /// A short description (`digital`, `chip reram #7 …`).
    fn __repr__(&self) -> String {
        self.with(|s, _| format!("<mortal substrate: {}>", s.describe()))
    }

    /// Drives layer `layer` with `x` `[batch, in]`; returns `(received, activity)`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        layer: usize,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Pair<'py>> {
        let (inp, _) = self.check_layer(layer)?;
        let x = mat_of(&x, "x", inp)?;
        let (r, a) = py.detach(|| {
            self.with(|s, n| {
                let (mut r, mut a) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
                s.forward(layer, &x, &mut r, &mut a, n);
                (r, a)
            })
        });
        Ok((array_of(py, &r)?, array_of(py, &a)?))
    }

    /// Reads layer `layer` backwards: `Wᵀ·d` for `d` `[batch, out]` → `[batch, in]`.
    fn transpose_read<'py>(
        &self,
        py: Python<'py>,
        layer: usize,
        d: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (_, out) = self.check_layer(layer)?;
        let d = mat_of(&d, "d", out)?;
        let o = py.detach(|| {
            self.with(|s, n| {
                let mut o = Mat::zeros(0, 0);
                s.transpose_read(layer, &d, &mut o, n);
                o
            })
        });
        array_of(py, &o)
    }

    /// Asks for `W ← (1 − decay)·W + scale·dw`, `b ← b + scale·db` (`dw` `[out, in]`,
    /// `db` `[out]`); a chip realises it with its update physics.
    #[pyo3(signature = (layer, dw, db, scale=1.0, decay=0.0))]
    fn update(
        &self,
        py: Python<'_>,
        layer: usize,
        dw: PyReadonlyArray2<'_, f32>,
        db: PyReadonlyArray1<'_, f32>,
        scale: f32,
        decay: f32,
    ) -> PyResult<()> {
        let (inp, out) = self.check_layer(layer)?;
        check_update(scale, decay)?;
        let (w, b) = weights_of(&dw, &db, "dw/db", out, inp)?;
        py.detach(|| {
            self.with(|s, n| {
                let packed = s.topology().wiring(layer).pack(&w);
                s.update(
                    layer,
                    Update::Dense {
                        dw: &packed,
                        db: &b,
                        scale,
                        decay,
                    },
                    n,
                );
            })
        });
        Ok(())
    }

    /// The outer-product form: `dw = dᵀ·x` summed over the batch (`x` `[batch, in]`, `d`
    /// `[batch, out]`), which a chip may apply as rank-1 pulse trains.
    #[pyo3(signature = (layer, x, d, scale=1.0, decay=0.0))]
    fn update_outer(
        &self,
        py: Python<'_>,
        layer: usize,
        x: PyReadonlyArray2<'_, f32>,
        d: PyReadonlyArray2<'_, f32>,
        scale: f32,
        decay: f32,
    ) -> PyResult<()> {
        let (inp, out) = self.check_layer(layer)?;
        check_update(scale, decay)?;
        let (x, d) = (mat_of(&x, "x", inp)?, mat_of(&d, "d", out)?);
        if x.ncols() != d.ncols() {
            return Err(param(
                "x/d",
                format!("{}/{}", x.ncols(), d.ncols()),
                "need the same batch",
            ));
        }
        py.detach(|| {
            self.with(|s, n| {
                s.update(
                    layer,
                    Update::Outer {
                        x: &x,
                        d: &d,
                        scale,
                        decay,
                    },
                    n,
                )
            })
        });
        Ok(())
    }

    /// Sets layer `layer` to weights `w` `[out, in]` and biases `b` `[out]` (write-and-
    /// verify on a chip).
    fn program(
        &self,
        py: Python<'_>,
        layer: usize,
        w: PyReadonlyArray2<'_, f32>,
        b: PyReadonlyArray1<'_, f32>,
    ) -> PyResult<()> {
        let (inp, out) = self.check_layer(layer)?;
        let (w, b) = weights_of(&w, &b, "w/b", out, inp)?;
        py.detach(|| self.with(|s, n| s.program(layer, &w, &b, n)));
        Ok(())
    }

    /// One step of the built-in Forward-Forward learner on this substrate (images
    /// `[batch, inputs]`, labels `[batch]`), with plain SGD at `lr`, random wrong labels
    /// from `seed`, no peer normalisation: the reference a Python-written step can be
    /// checked against. Returns the negative labels it drew.
    #[pyo3(signature = (images, labels, lr=0.01, seed=1))]
    fn ff_step_builtin(
        &self,
        py: Python<'_>,
        images: PyReadonlyArray2<'_, f32>,
        labels: Vec<usize>,
        lr: f32,
        seed: u64,
    ) -> PyResult<Vec<usize>> {
        use mortal::learn::ff::{FfConfig, FfLearner, NegativeLabels};
        let inputs = self.with(|s, _| s.topology().widths()[0]);
        let x = mat_of(&images, "images", inputs)?;
        if labels.len() != x.ncols() || labels.iter().any(|l| *l >= mortal::data::CLASSES) {
            return Err(param(
                "labels",
                labels.len(),
                "need one label in 0..10 per image",
            ));
        }
        if !lr.is_finite() || lr <= 0.0 {
            return Err(param("lr", lr, "must be > 0"));
        }
        py.detach(|| {
            self.with(|s, n| {
                let cfg = FfConfig {
                    optimizer: mortal::learn::OptimizerConfig::Sgd {
                        lr,
                        momentum: 0.0,
                        weight_decay: 0.0,
                    },
                    peer_norm: 0.0,
                    negatives: NegativeLabels::Random,
                    eval_from: 1,
                    ..FfConfig::default()
                };
                let mut ff = FfLearner::new(cfg, s.topology().clone()).map_err(py_err)?;
                let mut neg = stream(seed, "python/negatives");
                ff.train_batch(s, &x, &labels, 1.0, &mut neg, n)
                    .map_err(py_err)?;
                Ok(ff.last_negatives().to_vec())
            })
        })
    }

    /// Lets `seconds` of simulated time pass (conductance drift).
    fn advance_time(&self, seconds: f64) -> PyResult<()> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(param("seconds", seconds, "must be finite and ≥ 0"));
        }
        self.with(|s, _| s.advance_time(seconds));
        Ok(())
    }

    /// The operation counters as JSON (`counters()` on the Python side parses it):
    /// per layer and host work by purpose.
    fn counters_json(&self) -> String {
        self.with(|s, _| {
            let l = s.ledger();
            let host: serde_json::Map<String, serde_json::Value> = mortal::substrate::Purpose::ALL
                .iter()
                .map(|p| {
                    let h = l.host_work(*p);
                    (
                        p.name().to_string(),
                        serde_json::json!({"flops": h.flops, "bytes": h.bytes}),
                    )
                })
                .collect();
            serde_json::json!({
                "layers": l.layers(),
                "total": l.total(),
                "host": host,
                "dac_bits": l.dac_bits,
                "adc_bits": l.adc_bits,
            })
            .to_string()
        })
    }

    /// Saves the substrate into directory `path` (`substrate.json` + `substrate.safetensors`).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let state = self.with(|s, _| s.save_state());
        save_state(&path, &state).map_err(py_err)
    }

    /// Loads a substrate saved by `save`.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let (kind, identity, tensors) = load_state(&path).map_err(py_err)?;
        let topo: Topology = serde_json::from_value(identity["topology"].clone())
            .map_err(|e| param("substrate.json", "topology", &e.to_string()))?;
        mortal::resources::check_network(
            topo.widths(),
            topo.weight_count() as f64,
            kind == "chip",
            "substrate.json topology",
        )
        .map_err(py_err)?;
        let mut sub: Box<dyn Substrate> = if kind == "chip" {
            let spec = serde_json::from_value(identity["spec"].clone())
                .map_err(|e| param("substrate.json", "spec", &e.to_string()))?;
            let seed = identity["chip_seed"].as_u64().unwrap_or(1);
            Box::new(Chip::new(&spec, topo, seed, 1).map_err(py_err)?)
        } else {
            Box::new(DigitalNet::new(topo, 1))
        };
        sub.load_state(&SubstrateState {
            kind,
            identity,
            tensors,
        })
        .map_err(py_err)?;
        Ok(Self::wrap(sub, 1))
    }
}

/// Weights `[out, in]` and biases `[out]` from numpy, shapes checked (`key` names them).
fn weights_of(
    w: &PyReadonlyArray2<'_, f32>,
    b: &PyReadonlyArray1<'_, f32>,
    key: &str,
    out: usize,
    inp: usize,
) -> PyResult<(Mat, Vec<f32>)> {
    let (wv, bv) = (w.as_array(), b.as_array());
    if wv.shape() != [out, inp] || bv.len() != out {
        return Err(param(
            key,
            format!("{:?}/{}", wv.shape(), bv.len()),
            &format!("need [{out}, {inp}] and [{out}]"),
        ));
    }
    let w = Mat::from_row_slice(out, inp, &wv.iter().copied().collect::<Vec<_>>());
    Ok((w, bv.iter().copied().collect()))
}

fn check_update(scale: f32, decay: f32) -> PyResult<()> {
    if !scale.is_finite() {
        return Err(param("scale", scale, "must be finite"));
    }
    if !(0.0..1.0).contains(&decay) {
        return Err(param("decay", decay, "must be in [0, 1)"));
    }
    Ok(())
}

/// Writes a substrate state into a directory.
fn save_state(dir: &Path, s: &SubstrateState) -> mortal::error::Result<()> {
    mortal::fsutil::create_dir(dir)?;
    let md5 =
        mortal::train::checkpoint::write_tensors(&dir.join("substrate.safetensors"), &s.tensors)?;
    mortal::fsutil::write_json(
        &dir.join("substrate.json"),
        &serde_json::json!({"kind": s.kind, "identity": s.identity, "tensors_md5": md5}),
    )
}

/// Reads what [`save_state`] wrote.
fn load_state(
    dir: &Path,
) -> mortal::error::Result<(String, serde_json::Value, Vec<mortal::tensor::Tensor>)> {
    let meta: serde_json::Value = mortal::fsutil::read_json(&dir.join("substrate.json"))?;
    let kind = meta["kind"].as_str().unwrap_or_default().to_string();
    let tensors = mortal::train::checkpoint::read_tensors(
        &dir.join("substrate.safetensors"),
        meta["tensors_md5"].as_str(),
    )?;
    Ok((kind, meta["identity"].clone(), tensors))
}

/// Parses a `mortal` command line (without the program name).
fn parse(args: &[String]) -> PyResult<mortal_cli::cli::Cli> {
    let argv = std::iter::once("mortal".to_string()).chain(args.iter().cloned());
    <mortal_cli::cli::Cli as clap::Parser>::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
            .collect();
        ParamError::new_err(line.join(" "))
    })
}

/// The reporter of a Python call: lines handed to `progress` (a Python callable) when
/// given, else bars on a terminal / lines on stderr, or nothing when quiet.
fn reporter(quiet: bool, progress: Option<Py<PyAny>>) -> mortal::progress::Reporter {
    match (quiet, progress) {
        (true, _) => mortal::progress::Reporter::quiet(),
        (false, Some(f)) => {
            mortal::progress::Reporter::sink(std::sync::Arc::new(move |msg: &str| {
                Python::attach(|py| {
                    if let Err(e) = f.call1(py, (msg,)) {
                        e.print(py);
                    }
                });
            }))
        }
        (false, None) => mortal_cli::bars::auto(false),
    }
}

/// `mortal train ARGS…`: returns results.json's content as JSON text and the output
/// directory. `progress`: a callable given each progress line.
#[pyfunction]
#[pyo3(signature = (args, progress=None))]
fn train_cli(
    py: Python<'_>,
    args: Vec<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let cli = parse(&[vec!["train".to_string()], args].concat())?;
    let rep = reporter(cli.quiet, progress);
    let data_dir = cli.data_dir.clone();
    let mortal_cli::cli::Command::Train(t) = cli.command else {
        unreachable!("parsed as train")
    };
    let (r, out) = py
        .detach(|| mortal_cli::cli::train_command(&t, data_dir.as_deref(), rep))
        .map_err(py_err)?;
    let json = serde_json::to_string(&r).map_err(|e| py_err(Error::io("results", e.into())))?;
    Ok((json, out.display().to_string()))
}

/// Any `mortal` command line (e.g. `run`, `distill`), as the CLI runs it; `progress`: a
/// callable given each progress line.
#[pyfunction]
#[pyo3(signature = (args, progress=None))]
fn run_cli(py: Python<'_>, args: Vec<String>, progress: Option<Py<PyAny>>) -> PyResult<()> {
    let cli = parse(&args)?;
    let rep = reporter(cli.quiet, progress);
    py.detach(|| mortal_cli::cli::run_with(cli, rep))
        .map_err(py_err)
}

/// `mortal run …` (a scenario) as the CLI runs it; returns the directory it wrote (the
/// scenario's own default, from its `name`, when no `--out` is given).
#[pyfunction]
#[pyo3(signature = (args, progress=None))]
fn run_scenario_cli(
    py: Python<'_>,
    args: Vec<String>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let cli = parse(&args)?;
    let rep = reporter(cli.quiet, progress);
    let data_dir = cli.data_dir.clone();
    match cli.command {
        mortal_cli::cli::Command::Run(a) => py
            .detach(|| mortal_cli::scenario_cmd::run(&a, data_dir.as_deref(), &rep))
            .map(|d| d.display().to_string())
            .map_err(py_err),
        _ => Err(param("run_scenario", "command", "expected `run …`")),
    }
}

/// The splits of a dataset as numpy arrays: `{split: (images [n, pixels] float32 in
/// [0, 1], labels [n] int64)}` for `train`, `valid`, `test` (the paper's split; the
/// synthetic set is built in, the others read from `data_dir` or `$MORTAL_DATA`).
#[pyfunction]
#[pyo3(signature = (dataset, data_dir=None, train_limit=None, eval_limit=None))]
#[allow(clippy::type_complexity)]
fn load_data<'py>(
    py: Python<'py>,
    dataset: &str,
    data_dir: Option<PathBuf>,
    train_limit: Option<usize>,
    eval_limit: Option<usize>,
) -> PyResult<Vec<(String, Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<i64>>)>> {
    let cfg = mortal::train::TrainConfig {
        dataset: mortal::data::DatasetKind::parse(dataset).map_err(py_err)?,
        train_limit,
        eval_limit,
        ..Default::default()
    };
    let splits = py
        .detach(|| cfg.load_data(data_dir.as_deref()))
        .map_err(py_err)?;
    let mut out = Vec::new();
    for (name, d) in [
        ("train", &splits.train),
        ("valid", &splits.valid),
        ("test", &splits.test),
    ] {
        let idx: Vec<usize> = (0..d.len()).collect();
        let mut m = Mat::zeros(d.pixels(), d.len());
        d.gather(&idx, &mut m);
        let labels: Vec<i64> = d.labels().iter().map(|l| i64::from(*l)).collect();
        out.push((
            name.to_string(),
            array_of(py, &m)?,
            PyArray1::from_vec(py, labels),
        ));
    }
    Ok(out)
}

/// The package's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The native module.
#[pymodule]
fn _mortal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Substrate_>()?;
    m.add_function(wrap_pyfunction!(train_cli, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(run_scenario_cli, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(load_data, m)?)?;
    m.add("MortalError", m.py().get_type::<MortalError>())?;
    m.add("ParamError", m.py().get_type::<ParamError>())?;
    Ok(())
}
