//! Sweep expansion: axes × chip seeds × seeds × algorithms → the list of runs, each with
//! a stable id; deduplication of runs that resolve to the same configuration; shards.

use std::collections::HashMap;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::paths;
use super::resolve::{SECTIONS, Scenario};
use super::smoke::Smoke;
use crate::error::{Error, Result};
use crate::train::{Algo, TrainConfig};

/// Most runs a scenario may expand to.
pub const MAX_RUNS: usize = 100_000;

/// One axis: one or several paths (`zip`) and, per point, one value per path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted paths; the first is the axis's name on figures.
    pub paths: Vec<String>,
    /// Per point, one value per path.
    pub values: Vec<Vec<Value>>,
    /// Figure label with unit, if the scenario gives one.
    pub label: Option<String>,
}

/// A checked `[sweep]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Axes, first outermost.
    pub axes: Vec<Axis>,
    /// `hardware.chip_seed` values.
    pub chip_seeds: Option<Vec<u64>>,
    /// `train.seed` values.
    pub seeds: Option<Vec<u64>>,
    /// `train.algo` values.
    pub algos: Option<Vec<Algo>>,
    /// Overrides (dotted path, value) for the runs of one algorithm.
    pub per_algo: Vec<(Algo, Vec<(String, Value)>)>,
}

/// One run of a sweep.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Position in the sweep (0-based); shards split by it.
    pub index: usize,
    /// Stable id: readable name + hash of the configuration.
    pub id: String,
    /// Readable name (algorithm, axis values, chip seed, seed).
    pub name: String,
    /// The validated configuration.
    pub config: TrainConfig,
    /// Value of each axis column (see [`Plan::columns`]); `None` where the run does not
    /// depend on it (e.g. hardware axes of a digital run).
    pub cells: Vec<Option<Value>>,
    /// 0 for the first (chip seed, seed) combination of its point, 1 for the next, ….
    pub replicate: usize,
}

impl Plan {
    /// Checks the `[sweep]` of `scn` (or an empty plan when there is none).
    pub fn new(scn: &Scenario) -> Result<Self> {
        let Some(sw) = &scn.file.sweep else {
            return Ok(Plan::default());
        };
        if sw.axes.is_empty() && sw.chip_seeds.is_none() && sw.seeds.is_none() && sw.algos.is_none()
        {
            return Err(Error::param(
                "sweep",
                "empty",
                "add [[sweep.axes]] (path + values), chip_seeds, seeds or algos, or remove [sweep]",
            ));
        }
        fn distinct<T: PartialEq + std::fmt::Debug>(key: &str, v: &Option<Vec<T>>) -> Result<()> {
            if let Some(v) = v {
                if v.is_empty() {
                    return Err(Error::param(key, "[]", "must not be empty"));
                }
                if v.len() > MAX_RUNS {
                    return Err(Error::param(
                        key,
                        format!("{} values", v.len()),
                        format!("more than the {MAX_RUNS} runs a scenario may have"),
                    ));
                }
                let mut seen = std::collections::HashSet::with_capacity(v.len());
                for x in v {
                    if !seen.insert(format!("{x:?}")) {
                        return Err(Error::param(key, format!("{x:?}"), "appears twice"));
                    }
                }
            }
            Ok(())
        }
        distinct("sweep.chip_seeds", &sw.chip_seeds)?;
        distinct("sweep.seeds", &sw.seeds)?;
        distinct("sweep.algos", &sw.algos)?;
        if sw.chip_seeds.is_some() && !scn.has_hardware() {
            return Err(Error::param(
                "sweep.chip_seeds",
                "",
                "the scenario has no [hardware] section (it runs on the digital substrate)",
            ));
        }
        let mut used: Vec<(String, String)> = Vec::new();
        for (list, path) in [
            (sw.chip_seeds.is_some(), "hardware.chip_seed"),
            (sw.seeds.is_some(), "train.seed"),
            (sw.algos.is_some(), "train.algo"),
        ] {
            if list {
                let key = match path {
                    "hardware.chip_seed" => "sweep.chip_seeds",
                    "train.seed" => "sweep.seeds",
                    _ => "sweep.algos",
                };
                used.push((path.to_string(), key.to_string()));
            }
        }
        let mut axes = Vec::new();
        for (i, a) in sw.axes.iter().enumerate() {
            let key = format!("sweep.axes[{i}]");
            let (paths, zipped) = match (&a.path, &a.zip) {
                (Some(p), None) => (vec![p.clone()], false),
                (None, Some(z)) if !z.is_empty() => (z.clone(), true),
                (None, Some(_)) => {
                    return Err(Error::param(
                        format!("{key}.zip"),
                        "[]",
                        "must list at least one path",
                    ));
                }
                _ => {
                    return Err(Error::param(
                        key,
                        "",
                        "give either `path` (one setting) or `zip` (settings moving together)",
                    ));
                }
            };
            if a.values.is_empty() {
                return Err(Error::param(
                    format!("{key}.values"),
                    "[]",
                    "must not be empty",
                ));
            }
            if a.values.len() > MAX_RUNS {
                return Err(Error::param(
                    format!("{key}.values"),
                    format!("{} values", a.values.len()),
                    format!("more than the {MAX_RUNS} runs a scenario may have"),
                ));
            }
            for p in &paths {
                check_path(scn, p, &format!("{key}.path"))?;
                if let Some((_, by)) = used.iter().find(|(q, _)| q == p) {
                    return Err(Error::param(
                        format!("{key}.path"),
                        p,
                        format!("this setting is already swept by {by}"),
                    ));
                }
                used.push((p.clone(), key.clone()));
            }
            let values: Vec<Vec<Value>> = if zipped {
                a.values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| match v.as_array() {
                        Some(t) if t.len() == paths.len() => Ok(t.clone()),
                        _ => Err(Error::param(
                            format!("{key}.values[{j}]"),
                            paths::short(v),
                            format!(
                                "a zipped axis needs a list of {} values per point",
                                paths.len()
                            ),
                        )),
                    })
                    .collect::<Result<_>>()?
            } else {
                a.values.iter().map(|v| vec![v.clone()]).collect()
            };
            // Hash-based (an axis of 10⁶ values is refused above, not checked pairwise).
            let mut seen = std::collections::HashSet::with_capacity(values.len());
            for v in &values {
                if !seen.insert(serde_json::to_string(v).unwrap_or_default()) {
                    return Err(Error::param(
                        format!("{key}.values"),
                        paths::short(&json!(v)),
                        "appears twice",
                    ));
                }
            }
            axes.push(Axis {
                paths,
                values,
                label: a.label.clone(),
            });
        }
        let mut per_algo = Vec::new();
        for (name, sections) in sw.per_algo.iter().flatten() {
            let key = format!("sweep.per_algo.{name}");
            let algo: Algo = serde_json::from_value(json!(name))
                .map_err(|e| Error::param(&key, name, e.to_string()))?;
            let algo = &algo;
            if !sw.algos.as_ref().is_some_and(|a| a.contains(algo)) {
                return Err(Error::param(
                    key,
                    algo,
                    "this algorithm is not in sweep.algos",
                ));
            }
            let leaves = paths::leaves(sections, "");
            if leaves.is_empty() {
                return Err(Error::param(
                    key,
                    "{}",
                    "give settings, e.g. [sweep.per_algo.bp-analog.train.bp.optimizer] momentum = 0.0",
                ));
            }
            for (p, _) in &leaves {
                check_path(scn, p, &format!("{key}.{p}"))?;
                if let Some((_, by)) = used.iter().find(|(q, _)| q == p) {
                    return Err(Error::param(
                        format!("{key}.{p}"),
                        p,
                        format!("this setting is already swept by {by}"),
                    ));
                }
            }
            per_algo.push((*algo, leaves));
        }
        Ok(Plan {
            axes,
            chip_seeds: sw.chip_seeds.clone(),
            seeds: sw.seeds.clone(),
            algos: sw.algos.clone(),
            per_algo,
        })
    }

    /// Column names of the axis values (each axis's paths, in order).
    pub fn columns(&self) -> Vec<String> {
        self.axes.iter().flat_map(|a| a.paths.clone()).collect()
    }

    /// Number of (point, chip seed, seed, algorithm) combinations before deduplication.
    pub fn size(&self) -> usize {
        let n = |v: Option<usize>| v.unwrap_or(1);
        self.axes
            .iter()
            .map(|a| a.values.len())
            .fold(1usize, |acc, k| acc.saturating_mul(k))
            .saturating_mul(n(self.chip_seeds.as_ref().map(Vec::len)))
            .saturating_mul(n(self.seeds.as_ref().map(Vec::len)))
            .saturating_mul(n(self.algos.as_ref().map(Vec::len)))
    }
}

/// Checks that `path` names a setting of the scenario.
fn check_path(scn: &Scenario, path: &str, key: &str) -> Result<()> {
    let head = path.split('.').next().unwrap_or("");
    if !SECTIONS.contains(&head) {
        return Err(Error::param(
            key,
            path,
            format!(
                "must start with one of: {}",
                SECTIONS.map(|s| format!("{s}.")).join(", ")
            ),
        ));
    }
    if head == "hardware" && !scn.has_hardware() {
        return Err(Error::param(
            key,
            path,
            "the scenario has no [hardware] section (it runs on the digital substrate)",
        ));
    }
    if paths::get(&scn.base, path).is_some() {
        return Ok(());
    }
    // The deepest existing prefix, to list what is there.
    let segs = paths::segments(path);
    let mut at = String::new();
    for s in &segs {
        let next = paths::join(&at, s);
        if paths::get(&scn.base, &next).is_none() {
            break;
        }
        at = next;
    }
    let keys = paths::get(&scn.base, &at)
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    Err(Error::param(
        key,
        path,
        if keys.is_empty() {
            format!("unknown setting; `{at}` has no keys below it")
        } else {
            format!("unknown setting; `{at}` has: {keys}")
        },
    ))
}

/// Hex of the MD5 of the configuration's JSON (field order is fixed by the types).
pub fn config_hash(cfg: &TrainConfig) -> String {
    let text = serde_json::to_string(cfg).expect("TrainConfig serialises");
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A value in a file-name-safe form (`[256,256]` → `256x256`).
fn name_part(v: &Value) -> String {
    let s = match v {
        Value::Array(items) => items
            .iter()
            .map(paths::display)
            .collect::<Vec<_>>()
            .join("x"),
        other => paths::display(other),
    };
    crate::fsutil::file_safe_with(&s, '-')
}

/// The short name of a path in run names (`hardware.spec.adc.bits` → `adc.bits`).
pub fn short_path(path: &str) -> &str {
    for prefix in ["hardware.spec.", "hardware.", "train.", "data.", "model."] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return rest;
        }
    }
    path
}

fn run_name(cfg: &TrainConfig, columns: &[String], cells: &[Option<Value>]) -> String {
    let mut name = cfg.algo.name().to_string();
    for (c, v) in columns.iter().zip(cells) {
        if let Some(v) = v {
            name.push_str(&format!("_{}-{}", short_path(c), name_part(v)));
        }
    }
    if let Some(chip) = &cfg.chip {
        name.push_str(&format!("_c{}", chip.chip_seed));
    }
    name.push_str(&format!("_s{}", cfg.seed));
    if name.len() > 100 {
        name.truncate(100);
    }
    name
}

/// Every run of the scenario, deduplicated, in sweep order. Every configuration is
/// resolved and validated here, before anything runs.
pub fn expand(scn: &Scenario, plan: &Plan, smoke: Option<&Smoke>) -> Result<Vec<RunSpec>> {
    if plan.size() > MAX_RUNS {
        return Err(Error::param(
            "sweep",
            plan.size(),
            format!("expands to more than {MAX_RUNS} runs"),
        ));
    }
    let opt = |v: &Option<Vec<u64>>| -> Vec<Option<u64>> {
        v.as_ref()
            .map_or(vec![None], |x| x.iter().copied().map(Some).collect())
    };
    let chip_seeds = opt(&plan.chip_seeds);
    let seeds = opt(&plan.seeds);
    let algos: Vec<Option<Algo>> = plan
        .algos
        .as_ref()
        .map_or(vec![None], |x| x.iter().copied().map(Some).collect());
    let columns = plan.columns();

    struct Item {
        hash: String,
        config: TrainConfig,
        cells: Vec<Value>,
        replicate: usize,
    }
    let mut groups: Vec<Vec<Item>> = Vec::new();
    let mut by_hash: HashMap<String, usize> = HashMap::new();
    let lens: Vec<usize> = plan.axes.iter().map(|a| a.values.len()).collect();
    let mut combo = vec![0usize; lens.len()];
    loop {
        let mut overrides: Vec<(String, Value)> = Vec::new();
        let mut cells = Vec::new();
        for (a, &vi) in plan.axes.iter().zip(&combo) {
            for (p, v) in a.paths.iter().zip(&a.values[vi]) {
                overrides.push((p.clone(), v.clone()));
                cells.push(v.clone());
            }
        }
        let mut replicate = 0;
        for cs in &chip_seeds {
            for s in &seeds {
                for algo in &algos {
                    let mut o: Vec<(String, Value)> = plan
                        .per_algo
                        .iter()
                        .filter(|(a, _)| Some(*a) == *algo)
                        .flat_map(|(_, ov)| ov.iter().cloned())
                        .collect();
                    o.extend(overrides.iter().cloned());
                    if let Some(cs) = cs {
                        o.push(("hardware.chip_seed".into(), json!(cs)));
                    }
                    if let Some(s) = s {
                        o.push(("train.seed".into(), json!(s)));
                    }
                    if let Some(a) = algo {
                        o.push(("train.algo".into(), json!(a)));
                    }
                    let mut config = scn.resolve(&o).map_err(|e| at_point(e, &o))?.config;
                    if let Some(sm) = smoke {
                        sm.apply(&mut config);
                        config.validate().map_err(|e| at_point(e, &o))?;
                    }
                    let hash = config_hash(&config);
                    let item = Item {
                        hash: hash.clone(),
                        config,
                        cells: cells.clone(),
                        replicate,
                    };
                    match by_hash.get(&hash) {
                        Some(&g) => groups[g].push(item),
                        None => {
                            by_hash.insert(hash, groups.len());
                            groups.push(vec![item]);
                        }
                    }
                }
                replicate += 1;
            }
        }
        // Next combination, last axis fastest.
        let mut k = lens.len();
        loop {
            if k == 0 {
                break;
            }
            k -= 1;
            combo[k] += 1;
            if combo[k] < lens[k] {
                break;
            }
            combo[k] = 0;
        }
        if combo.iter().all(|&c| c == 0) {
            break;
        }
    }
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(index, g)| {
            let first = &g[0];
            let cells: Vec<Option<Value>> = (0..columns.len())
                .map(|j| {
                    let v = &first.cells[j];
                    g.iter().all(|it| &it.cells[j] == v).then(|| v.clone())
                })
                .collect();
            let name = run_name(&first.config, &columns, &cells);
            RunSpec {
                index,
                id: format!("{name}-{}", &first.hash[..8]),
                name,
                config: first.config.clone(),
                cells,
                replicate: g.iter().map(|it| it.replicate).min().unwrap_or(0),
            }
        })
        .collect())
}

/// Adds the sweep point to a parameter error's reason.
fn at_point(e: Error, overrides: &[(String, Value)]) -> Error {
    if overrides.is_empty() {
        return e;
    }
    let point = overrides
        .iter()
        .map(|(p, v)| format!("{}={}", short_path(p), paths::short(v)))
        .collect::<Vec<_>>()
        .join(", ");
    match e {
        Error::Param { key, value, reason } => Error::Param {
            key,
            value,
            reason: format!("{reason} (sweep point {point})"),
        },
        other => other,
    }
}

/// A shard `i/n`: runs whose index ≡ i (mod n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` with 0 ≤ i < n.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::param("shard", s, "expected i/n with 0 ≤ i < n, e.g. 0/8");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether run `index` belongs to this shard.
    pub fn contains(&self, index: usize) -> bool {
        index % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scn(text: &str) -> Scenario {
        Scenario::parse(Path::new("x.toml"), text.to_string()).unwrap()
    }

    const HW: &str = "version = 1\nname = \"t\"\n[model]\nlayers = [32, 32]\n\
                      [hardware]\npreset = \"reram\"\n";

    #[test]
    fn expansion_crosses_axes_seeds_and_algos_and_dedups_digital_runs() {
        let s = scn(&format!(
            "{HW}[sweep]\nchip_seeds = [1, 2]\nalgos = [\"ff\", \"bp\"]\n\
             [[sweep.axes]]\npath = \"hardware.variation\"\nvalues = [0, 0.5, 1]\n"
        ));
        let plan = Plan::new(&s).unwrap();
        assert_eq!(plan.size(), 12);
        let runs = expand(&s, &plan, None).unwrap();
        // 3 variations × 2 chips of ff, and one digital bp run.
        assert_eq!(runs.len(), 7);
        let bp: Vec<&RunSpec> = runs.iter().filter(|r| r.config.algo == Algo::Bp).collect();
        assert_eq!(bp.len(), 1);
        assert_eq!(bp[0].cells, vec![None]);
        assert!(bp[0].config.chip.is_none());
        assert_eq!(runs[0].name, "ff_variation-0_c1_s1");
        assert_eq!(runs[0].cells, vec![Some(json!(0))]);
        let ids: std::collections::HashSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), runs.len());
        // Stable: the same scenario gives the same ids.
        let again = expand(&s, &plan, None).unwrap();
        assert_eq!(
            runs.iter().map(|r| &r.id).collect::<Vec<_>>(),
            again.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        assert_eq!(runs.iter().filter(|r| r.replicate == 1).count(), 3);
    }

    #[test]
    fn per_algo_settings_apply_to_their_algorithm_only() {
        let s = scn(&format!(
            "{HW}[sweep]\nalgos = [\"ff\", \"bp\"]\n\
             [sweep.per_algo.bp.train.bp.optimizer]\nlr = 0.125\n"
        ));
        let runs = expand(&s, &Plan::new(&s).unwrap(), None).unwrap();
        let lr = |r: &RunSpec| match r.config.bp.optimizer {
            crate::learn::optim::OptimizerConfig::Sgd { lr, .. } => lr,
            _ => panic!(),
        };
        assert_eq!(lr(&runs[1]), 0.125);
        assert_ne!(lr(&runs[0]), 0.125, "ff runs keep the default bp settings");
        let bad = scn(&format!(
            "{HW}[sweep]\nalgos = [\"ff\"]\n[sweep.per_algo.bp.train.bp.optimizer]\nlr = 0.1\n"
        ));
        assert!(Plan::new(&bad).is_err());
    }

    #[test]
    fn each_run_starts_from_its_algorithms_defaults() {
        let s = scn(&format!(
            "{HW}[sweep]\nalgos = [\"bp-deploy\", \"bp-analog\"]\n"
        ));
        let runs = expand(&s, &Plan::new(&s).unwrap(), None).unwrap();
        for r in &runs {
            let want = TrainConfig::for_algo(r.config.algo).bp.optimizer;
            assert_eq!(r.config.bp.optimizer, want, "{}", r.name);
        }
        let m = |r: &RunSpec| match r.config.bp.optimizer {
            crate::learn::optim::OptimizerConfig::Sgd { momentum, .. } => momentum,
            _ => panic!(),
        };
        assert_eq!(
            m(&runs[1]),
            0.0,
            "bp-analog: plain SGD without a per_algo override"
        );
        assert!(m(&runs[0]) > 0.0);
    }

    #[test]
    fn zipped_axes_move_together() {
        let s = scn(&format!(
            "{HW}[[sweep.axes]]\nzip = [\"hardware.spec.adc.bits\", \"hardware.spec.dac.bits\"]\n\
             values = [[4, 5], [8, 9]]\n"
        ));
        let runs = expand(&s, &Plan::new(&s).unwrap(), None).unwrap();
        assert_eq!(runs.len(), 2);
        let spec = &runs[1].config.chip.as_ref().unwrap().spec;
        assert_eq!((spec.adc.bits, spec.dac.bits), (8, 9));
    }

    #[test]
    fn bad_sweeps_are_rejected_with_their_key() {
        let cases = [
            ("[sweep]\n", "sweep"),
            (
                "[[sweep.axes]]\npath = \"hardware.spec.adc.bitz\"\nvalues = [1]\n",
                "sweep.axes[0].path",
            ),
            (
                "[[sweep.axes]]\npath = \"hardware.variation\"\nvalues = []\n",
                "sweep.axes[0].values",
            ),
            (
                "[[sweep.axes]]\npath = \"hardware.spec.adc.bits\"\nvalues = [8, 0, 1]\n",
                "hardware.spec.adc.bits",
            ),
            ("[sweep]\nchip_seeds = []\n", "sweep.chip_seeds"),
        ];
        for (text, want) in cases {
            let s = scn(&format!("{HW}{text}"));
            let e = Plan::new(&s)
                .and_then(|p| expand(&s, &p, None))
                .unwrap_err();
            match e {
                Error::Param { key, .. } => assert_eq!(key, want, "{text}"),
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn shards_partition_the_runs() {
        let s = Shard::parse("1/3").unwrap();
        assert!(s.contains(4) && !s.contains(3));
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("x").is_err());
    }
}
