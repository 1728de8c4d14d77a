//! From a scenario file to validated training configurations.
//!
//! A scenario's `[data]`, `[model]`, `[train]` and `[hardware]` sections are partial. A
//! run's configuration is obtained by (1) applying the run's sweep overrides to the
//! sections as written, by dotted path; (2) merging them over the full defaults (those of
//! [`TrainConfig::for_algo`] for the run's algorithm, and of the hardware preset or spec
//! file), after checking that
//! every key exists there; (3) deserialising the result into typed sections and a
//! [`TrainConfig`] (serde checks every type); (4) [`TrainConfig::validate`]. Every error
//! names the scenario key path (`hardware.spec.adc.bits`), never an internal one.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::paths::{self, Retag};
use super::schema::{DataSection, HardwareSection, ModelSection, ScenarioFile, VERSION};
use crate::error::{Error, Result};
use crate::learn::optim::OptimizerConfig;
use crate::learn::{BpConfig, FfConfig};
use crate::substrate::device::{HardwareSpec, presets};
use crate::train::{Algo, ChipConfig, TrainConfig};

/// The configuration sections of a scenario.
pub const SECTIONS: [&str; 4] = ["data", "model", "train", "hardware"];
/// Keys of [`TrainConfig`] that live in `[data]`.
const DATA_KEYS: [&str; 4] = ["dataset", "train_limit", "eval_limit", "synthetic"];

/// A parsed scenario whose base configuration (without sweep overrides) is valid.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its text, as read.
    pub text: String,
    /// The typed top level (`[sweep]`, `[output]`, name, …).
    pub file: ScenarioFile,
    /// The configuration sections as written (objects keyed by [`SECTIONS`]).
    raw: Value,
    /// The base configuration sections, fully resolved (every default filled in).
    pub base: Value,
}

/// One resolved run configuration.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The sections, fully resolved.
    pub sections: Value,
    /// The training configuration, validated.
    pub config: TrainConfig,
}

impl Scenario {
    /// Reads and checks a scenario file (its base configuration and top level; the sweep
    /// is checked by [`super::sweep::Plan::new`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        Self::parse(path, text)
    }

    /// Like [`Scenario::load`] with the text given.
    pub fn parse(path: &Path, text: String) -> Result<Self> {
        let file: ScenarioFile = toml::from_str(&text).map_err(|e| toml_error(&text, &e))?;
        if file.version != VERSION {
            return Err(Error::param(
                "version",
                file.version,
                format!("this build of mortal reads scenario format {VERSION}"),
            ));
        }
        let name_ok = !file.name.is_empty()
            && file
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok || file.name.starts_with('.') {
            return Err(Error::param(
                "name",
                format!("{:?}", file.name),
                "must be non-empty and use only letters, digits, '-', '_' and '.'",
            ));
        }
        let mut raw = Map::new();
        for (key, section) in [
            ("data", &file.data),
            ("model", &file.model),
            ("train", &file.train),
            ("hardware", &file.hardware),
        ] {
            match section {
                None => {
                    if key != "hardware" {
                        raw.insert(key.into(), Value::Object(Map::new()));
                    }
                }
                Some(v @ Value::Object(_)) => {
                    raw.insert(key.into(), v.clone());
                }
                Some(other) => {
                    return Err(Error::param(
                        key,
                        paths::short(other),
                        format!("must be a table ([{key}])"),
                    ));
                }
            }
        }
        for k in DATA_KEYS.iter().chain(&["layers", "chip"]) {
            if raw["train"].get(*k).is_some() {
                let home = match *k {
                    "layers" => "model.layers".to_string(),
                    "chip" => "[hardware]".to_string(),
                    other => format!("data.{other}"),
                };
                return Err(Error::param(
                    format!("train.{k}"),
                    "",
                    format!("unknown key in [train]; this setting is {home}"),
                ));
            }
        }
        let mut scn = Scenario {
            path: path.to_path_buf(),
            text,
            file,
            raw: Value::Object(raw),
            base: Value::Null,
        };
        scn.base = scn.resolve(&[])?.sections;
        Ok(scn)
    }

    /// Whether the scenario has a `[hardware]` section.
    pub fn has_hardware(&self) -> bool {
        self.raw.get("hardware").is_some()
    }

    /// Directory that relative paths in the scenario are relative to.
    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The configuration with `overrides` (dotted path, value) applied.
    pub fn resolve(&self, overrides: &[(String, Value)]) -> Result<Resolved> {
        let mut user = self.raw.clone();
        for (p, v) in overrides {
            paths::set(&mut user, p, v.clone());
        }
        // The base is the run's algorithm's defaults (e.g. bp-analog: plain SGD); an
        // invalid `train.algo` falls back to the default one and is reported below.
        let algo = paths::get(&user, "train.algo")
            .and_then(|v| serde_json::from_value::<Algo>(v.clone()).ok())
            .unwrap_or(TrainConfig::default().algo);
        let mut full = defaults(&user, self.dir(), algo)?;
        // `train.energy` (the run's energy model) has no default value in the sections, so
        // that scenarios without it resolve exactly as before it existed.
        if paths::get(&user, "train.energy").is_some() {
            paths::set(&mut full, "train.energy", Value::Null);
        }
        if let Some((path, valid)) = paths::unknown_key(&user, &full, "", &retag) {
            return Err(Error::param(
                path,
                "",
                format!("unknown key; expected one of: {}", valid.join(", ")),
            ));
        }
        let mut sections = full.clone();
        paths::merge(&mut sections, &user, &retag);
        let (mut cfg, hardware) = match typed(&sections) {
            Ok(t) => t,
            Err(msg) => return Err(locate(&full, &user, msg)),
        };
        if cfg.layers.len() == 1 && paths::get(&user, "train.ff.eval_from").is_none() {
            cfg.ff.eval_from = 1;
        }
        if let Some(h) = &hardware {
            h.spec
                .validate()
                .map_err(|e| rekey(e, |k| format!("hardware.spec.{k}")))?;
        }
        // Digital backprop has no chip to run on: it ignores [hardware].
        if cfg.algo == Algo::Bp {
            cfg.chip = None;
        }
        // Settings of algorithms a run does not use do not make it a different run.
        if !cfg.algo.is_ff() {
            cfg.ff = FfConfig::default();
        } else {
            cfg.bp = BpConfig::default();
        }
        if cfg.algo != Algo::FfRecurrent {
            cfg.recurrent = Default::default();
        }
        // A model file is found from the scenario's folder and carried by every run.
        if cfg.energy_model.is_some() {
            return Err(Error::param(
                "train.energy_model",
                "",
                "is filled in from train.energy; name the model file there",
            ));
        }
        cfg.embed_energy_model(Some(self.dir()))
            .map_err(|e| rekey(e, |_| "train.energy".into()))?;
        cfg.validate()
            .map_err(|e| rekey(e, |k| scenario_key(k, &sections)))?;
        Ok(Resolved {
            sections,
            config: cfg,
        })
    }
}

/// The full default sections for the sections `user` of a run of `algo` (the defaults of
/// [`TrainConfig::for_algo`]; the spec of `[hardware]` comes from its preset or spec
/// file).
fn defaults(user: &Value, dir: &Path, algo: Algo) -> Result<Value> {
    let Value::Object(mut train) =
        serde_json::to_value(TrainConfig::for_algo(algo)).expect("TrainConfig serialises")
    else {
        unreachable!("TrainConfig serialises to an object")
    };
    let mut data = Map::new();
    for k in DATA_KEYS {
        data.insert(k.into(), train.remove(k).unwrap_or(Value::Null));
    }
    let model = json!({ "layers": train.remove("layers").unwrap_or(Value::Null) });
    train.remove("chip");
    let mut full = json!({ "data": data, "model": model, "train": train });
    if let Some(hw) = user.get("hardware") {
        let spec = base_spec(hw, dir)?;
        full["hardware"] = json!({
            "preset": null,
            "spec_file": null,
            "variation": 1.0,
            "chip_seed": 1,
            "spec": serde_json::to_value(spec).expect("HardwareSpec serialises"),
        });
    }
    Ok(full)
}

/// The spec named by `[hardware]`'s preset or spec file.
fn base_spec(hw: &Value, dir: &Path) -> Result<HardwareSpec> {
    let get = |k: &str| hw.get(k).filter(|v| !v.is_null());
    match (get("preset"), get("spec_file")) {
        (Some(p), None) => {
            let name = p.as_str().ok_or_else(|| {
                Error::param(
                    "hardware.preset",
                    paths::short(p),
                    format!("must be a preset name: {}", presets::NAMES.join(", ")),
                )
            })?;
            presets::by_name(name).map_err(|e| rekey(e, |_| "hardware.preset".into()))
        }
        (None, Some(f)) => {
            let name = f.as_str().ok_or_else(|| {
                Error::param("hardware.spec_file", paths::short(f), "must be a file name")
            })?;
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::param(
                    "hardware.spec_file",
                    name,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            toml::from_str::<HardwareSpec>(&text).map_err(|e| {
                Error::param(
                    "hardware.spec_file",
                    name,
                    format!(
                        "{} is not a valid hardware spec: {}",
                        path.display(),
                        one_line(e.message())
                    ),
                )
            })
        }
        (Some(_), Some(_)) => Err(Error::param(
            "hardware",
            "preset + spec_file",
            "give either a preset or a spec_file, not both",
        )),
        (None, None) => Err(Error::param(
            "hardware.preset",
            "missing",
            format!(
                "[hardware] needs a preset ({}) or a spec_file",
                presets::NAMES.join(", ")
            ),
        )),
    }
}

/// Defaults of optimiser variants, for a `[...optimizer]` table that switches `kind`.
fn retag_impl(base: &Value, kind: &str) -> Option<Value> {
    let wd = base
        .get("weight_decay")
        .and_then(Value::as_f64)
        .unwrap_or(0.0) as f32;
    let cfg = match kind {
        "sgd" => OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: wd,
        },
        "adam" => OptimizerConfig::adam(1e-3, wd),
        _ => return None,
    };
    serde_json::to_value(cfg).ok()
}

/// [`retag_impl`] as a [`Retag`].
pub fn retag(base: &Value, kind: &str) -> Option<Value> {
    retag_impl(base, kind)
}

const _: Retag<'static> = &retag;

/// Deserialises resolved sections into a training configuration (without validation).
fn typed(sections: &Value) -> std::result::Result<(TrainConfig, Option<HardwareSection>), String> {
    fn section<T: serde::de::DeserializeOwned>(
        v: &Value,
        key: &str,
    ) -> std::result::Result<T, String> {
        serde_json::from_value(v[key].clone()).map_err(|e| format!("[{key}]: {e}"))
    }
    let data: DataSection = section(sections, "data")?;
    let model: ModelSection = section(sections, "model")?;
    let hardware: Option<HardwareSection> = match sections.get("hardware") {
        Some(_) => Some(section(sections, "hardware")?),
        None => None,
    };
    let mut tc = sections["train"].clone();
    let obj = tc
        .as_object_mut()
        .ok_or_else(|| "[train] must be a table".to_string())?;
    obj.insert("dataset".into(), json!(data.dataset));
    obj.insert("train_limit".into(), json!(data.train_limit));
    obj.insert("eval_limit".into(), json!(data.eval_limit));
    obj.insert("synthetic".into(), json!(data.synthetic));
    obj.insert("layers".into(), json!(model.layers));
    let chip = hardware.as_ref().map(|h| ChipConfig {
        source: h
            .preset
            .clone()
            .or_else(|| h.spec_file.clone())
            .unwrap_or_default(),
        spec: h.spec.clone(),
        chip_seed: h.chip_seed,
        variation: h.variation,
    });
    obj.insert("chip".into(), json!(chip));
    let cfg: TrainConfig = serde_json::from_value(tc).map_err(|e| format!("[train]: {e}"))?;
    Ok((cfg, hardware))
}

/// Finds which key the user wrote makes [`typed`] fail, by applying each alone.
fn locate(full: &Value, user: &Value, fallback: String) -> Error {
    for (path, v) in paths::leaves(user, "") {
        let mut one = full.clone();
        paths::merge(&mut one, &paths::sparse(&path, v.clone()), &retag);
        if let Err(msg) = typed(&one) {
            let reason = msg.split_once("]: ").map_or(msg.as_str(), |x| x.1);
            return Error::param(path, paths::short(&v), reason.to_string());
        }
    }
    Error::param("(scenario)", "", fallback)
}

/// Renames the key of a parameter error.
pub fn rekey(e: Error, f: impl Fn(&str) -> String) -> Error {
    match e {
        Error::Param { key, value, reason } => Error::Param {
            key: f(&key),
            value,
            reason,
        },
        other => other,
    }
}

/// The scenario path of a [`TrainConfig`] key (`layers` → `model.layers`, `adc.bits` →
/// `hardware.spec.adc.bits`, `ff.temperature` → `train.ff.temperature`, …).
pub fn scenario_key(key: &str, sections: &Value) -> String {
    let head = key.split(['.', '[']).next().unwrap_or(key);
    match head {
        "chip" => key.replacen("chip", "hardware", 1),
        "layers" => format!("model.{key}"),
        "variation" => "hardware.variation".into(),
        h if DATA_KEYS.contains(&h) => format!("data.{key}"),
        h if paths::get(sections, &format!("hardware.spec.{h}")).is_some() => {
            format!("hardware.spec.{key}")
        }
        _ => format!("train.{key}"),
    }
}

/// The message of a TOML error as a parameter error: the key path at the error's
/// position (from the table headers above it), the line, and the message on one line.
fn toml_error(text: &str, e: &toml::de::Error) -> Error {
    let msg = one_line(e.message());
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            Error::param(key_at(text, span.start), format!("line {line}"), msg)
        }
        None => Error::param("(file)", "TOML", msg),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The dotted key path at byte `pos` of a TOML text (best effort: table headers and
/// `key = value` lines).
fn key_at(text: &str, pos: usize) -> String {
    let mut header = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut last_key = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let t = line.trim();
        let is_header = t.starts_with('[');
        if is_header {
            let array = t.starts_with("[[");
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            header = if array {
                let n = counts.entry(name.clone()).or_insert(0);
                *n += 1;
                format!("{name}[{}]", *n - 1)
            } else {
                name
            };
            last_key.clear();
        } else if let Some((k, _)) = t.split_once('=')
            && !t.starts_with('#')
        {
            last_key = k.trim().trim_matches('"').to_string();
        }
        if pos < offset || offset == text.len() {
            let _ = start;
            if is_header || last_key.is_empty() {
                return if header.is_empty() {
                    "(top level)".into()
                } else {
                    header
                };
            }
            return paths::join(&header, &last_key);
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse(Path::new("x.toml"), text.to_string())
    }

    fn key(e: Error) -> String {
        match e {
            Error::Param { key, .. } => key,
            other => panic!("expected a parameter error, got {other}"),
        }
    }

    #[test]
    fn minimal_scenario_resolves_to_defaults() {
        let s = parse("version = 1\nname = \"t\"\n").unwrap();
        let r = s.resolve(&[]).unwrap();
        let d = TrainConfig::default();
        assert_eq!(r.config.layers, d.layers);
        assert_eq!(r.config.chip, None);
    }

    #[test]
    fn partial_sections_merge_over_defaults_and_presets() {
        let s = parse(
            "version = 1\nname = \"t\"\n[model]\nlayers = [64]\n[train.ff.optimizer]\nlr = 0.5\n\
             [hardware]\npreset = \"pcm\"\nvariation = 0.5\n[hardware.spec.adc]\nbits = 6\n",
        )
        .unwrap();
        let c = s.resolve(&[]).unwrap().config;
        assert_eq!(c.ff.eval_from, 1, "single layer evaluates from layer 1");
        let chip = c.chip.unwrap();
        assert_eq!(chip.source, "pcm");
        assert_eq!(chip.spec.adc.bits, 6);
        assert_eq!(chip.spec.drift.nu_mean, 0.06, "pcm preset kept");
        assert_eq!(chip.variation, 0.5);
        match c.ff.optimizer {
            OptimizerConfig::Sgd { lr, momentum, .. } => {
                assert_eq!((lr, momentum), (0.5, 0.9));
            }
            other => panic!("{other:?}"),
        }
        let r = s
            .resolve(&[
                ("hardware.spec.adc.bits".into(), json!(8)),
                (
                    "train.ff.optimizer".into(),
                    json!({"kind": "adam", "lr": 0.01}),
                ),
            ])
            .unwrap();
        assert_eq!(r.config.chip.unwrap().spec.adc.bits, 8);
        assert!(matches!(r.config.ff.optimizer, OptimizerConfig::Adam { lr, .. } if lr == 0.01));
    }

    #[test]
    fn errors_name_the_scenario_key() {
        let base = "version = 1\nname = \"t\"\n";
        let cases = [
            (
                "[hardware]\npreset = \"reram\"\n[hardware.spec.adc]\nbits = 1\n",
                "hardware.spec.adc.bits",
            ),
            (
                "[hardware]\npreset = \"reram\"\n[hardware.spec.adc]\nbitz = 8\n",
                "hardware.spec.adc.bitz",
            ),
            (
                "[hardware]\npreset = \"reram\"\nvariation = -1\n",
                "hardware.variation",
            ),
            ("[hardware]\npreset = \"nope\"\n", "hardware.preset"),
            ("[model]\nlayers = []\n", "model.layers"),
            ("[train]\nepochs = \"five\"\n", "train.epochs"),
            ("[train]\nalgo = \"xx\"\n", "train.algo"),
            ("[train.ff]\ntemperature = 0\n", "train.ff.temperature"),
            ("[data]\ndataset = \"cifar\"\n", "data.dataset"),
            (
                "[hardware]\npreset = \"reram\"\n[hardware.spec.read]\nout_noise = -0.5\n",
                "hardware.spec.read.out_noise",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&format!("{base}{text}")).unwrap_err();
            assert_eq!(key(e), want, "{text}");
        }
        let e =
            parse("version = 1\nname = \"t\"\n[data]\nx = 1\n[sweep]\nbogus = 2\n").unwrap_err();
        assert_eq!(key(e), "sweep.bogus");
    }

    #[test]
    fn key_at_follows_headers() {
        let t = "a = 1\n[x.y]\nb = 2\n[[s.axes]]\nc = 3\n[[s.axes]]\nd = 4\n";
        assert_eq!(key_at(t, 2), "a");
        assert_eq!(key_at(t, t.find("b =").unwrap()), "x.y.b");
        assert_eq!(key_at(t, t.find("d =").unwrap() + 4), "s.axes[1].d");
    }
}
