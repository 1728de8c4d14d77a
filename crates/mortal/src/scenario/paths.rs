//! Dotted key paths into JSON values (`hardware.spec.adc.bits`): lookup, assignment,
//! deep merge of partial sections over defaults, unknown-key checks and differences.
//!
//! Scenario files are TOML; they are handled as `serde_json::Value`s so that overrides
//! can be applied by path and the result deserialised into typed configurations (serde
//! then checks every type).

use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// The segments of a dotted path.
pub fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// `prefix.key`, or `key` when `prefix` is empty.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The value at `path`, if every segment exists.
pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path)
        .iter()
        .try_fold(v, |cur, seg| cur.as_object()?.get(*seg))
}

/// Sets the value at `path`, creating (or replacing non-object values by) empty objects
/// along the way.
pub fn set(v: &mut Value, path: &str, new: Value) {
    let segs = segments(path);
    let mut cur = v;
    for seg in &segs[..segs.len() - 1] {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(seg.to_string())
            .or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    cur.as_object_mut()
        .expect("just made an object")
        .insert(segs[segs.len() - 1].to_string(), new);
}

/// A partial object holding only `value` at `path`.
pub fn sparse(path: &str, value: Value) -> Value {
    let mut v = Value::Object(Map::new());
    set(&mut v, path, value);
    v
}

/// Replaces an object of a tagged enum (one with a `kind` key) by the defaults of another
/// variant: `retag(base, kind)` returns the defaults of variant `kind`, carrying over what
/// it can from `base`, or `None` if it knows no such variant.
pub type Retag<'a> = &'a dyn Fn(&Value, &str) -> Option<Value>;

/// When `over` switches the variant of the tagged object `base`, the base to merge onto.
fn rebase(base: &Value, over: &Value, retag: Retag<'_>) -> Option<Value> {
    let (b, o) = (base.get("kind")?, over.get("kind")?);
    if b == o {
        return None;
    }
    Some(
        o.as_str()
            .and_then(|k| retag(base, k))
            .unwrap_or_else(|| Value::Object(Map::new())),
    )
}

/// Deep merge: the keys of `over` replace or extend those of `base`; objects merge
/// recursively; anything else (numbers, strings, lists) is replaced whole. An object that
/// switches a tagged enum's `kind` is merged onto that variant's defaults instead.
pub fn merge(base: &mut Value, over: &Value, retag: Retag<'_>) {
    match (base.as_object_mut(), over.as_object()) {
        (Some(_), Some(o)) => {
            if let Some(fresh) = rebase(base, over, retag) {
                *base = fresh;
            }
            let b = base.as_object_mut().expect("object");
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v, retag),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *base = over.clone(),
    }
}

/// The first key of `user` (at any depth) that `full` does not have, as
/// `(dotted path, keys valid at that level)`. `full` holds every key with its default;
/// a `null` in `full` (an unset option) accepts anything below it.
pub fn unknown_key(
    user: &Value,
    full: &Value,
    prefix: &str,
    retag: Retag<'_>,
) -> Option<(String, Vec<String>)> {
    let (Some(u), Some(_)) = (user.as_object(), full.as_object()) else {
        return None;
    };
    let rebased = rebase(full, user, retag);
    let f = rebased.as_ref().unwrap_or(full).as_object()?;
    if rebased
        .as_ref()
        .is_some_and(|r| r.as_object().is_some_and(Map::is_empty))
    {
        // An unknown variant: serde reports it with the valid names.
        return None;
    }
    for (k, v) in u {
        let path = join(prefix, k);
        match f.get(k) {
            None => return Some((path, f.keys().cloned().collect())),
            Some(fv) => {
                if let Some(found) = unknown_key(v, fv, &path, retag) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Every leaf of `v` (non-object values, including lists) with its dotted path.
pub fn leaves(v: &Value, prefix: &str) -> Vec<(String, Value)> {
    match v.as_object() {
        Some(o) if !o.is_empty() => o
            .iter()
            .flat_map(|(k, x)| leaves(x, &join(prefix, k)))
            .collect(),
        _ if prefix.is_empty() => Vec::new(),
        _ => vec![(prefix.to_string(), v.clone())],
    }
}

/// Paths where `a` and `b` differ, as `path: old → new` (objects compared key by key).
pub fn differences(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = join(prefix, k);
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => differences(p, q, &path, out),
                    (Some(p), None) => out.push(format!("{path}: {} → (absent)", short(p))),
                    (None, Some(q)) => out.push(format!("{path}: (absent) → {}", short(q))),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(format!(
            "{}: {} → {}",
            if prefix.is_empty() { "(root)" } else { prefix },
            short(a),
            short(b)
        )),
        _ => {}
    }
}

/// A value as compact JSON, cut at 40 characters.
pub fn short(v: &Value) -> String {
    let s = display(v);
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

/// A value as it appears in a CSV cell or a run name: strings without quotes, everything
/// else as compact JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies `key.path=value` settings (`mortal run --set`) to a scenario file's text: the
/// value is read as TOML (`3`, `0.5`, `true`, `"pcm"`, `[1, 2]`), a bare word as a
/// string; intermediate tables are created. Errors name the setting.
pub fn apply_sets(text: &str, sets: &[String]) -> Result<String> {
    let mut doc: toml::Table = toml::from_str(text)
        .map_err(|e| Error::param("scenario", "(file)", e.message().to_string()))?;
    for set in sets {
        let (key, raw) = set
            .split_once('=')
            .ok_or_else(|| Error::param("--set", set, "expected KEY=VALUE, e.g. train.epochs=3"))?;
        let key = key.trim();
        let parts: Vec<&str> = key.split('.').collect();
        if key.is_empty() || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(Error::param("--set", set, "the key must be a dotted path"));
        }
        let raw = raw.trim();
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let mut table = &mut doc;
        for p in &parts[..parts.len() - 1] {
            let entry = table
                .entry((*p).to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                Error::param(
                    "--set",
                    set,
                    format!("`{p}` is not a table in the scenario"),
                )
            })?;
        }
        table.insert(parts[parts.len() - 1].to_string(), value);
    }
    toml::to_string(&doc).map_err(|e| Error::param("--set", sets.join(" "), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_retag(_: &Value, _: &str) -> Option<Value> {
        None
    }

    #[test]
    fn get_set_merge_and_checks() {
        let mut v = json!({"a": {"b": 1, "c": {"d": 2}}, "n": null});
        assert_eq!(get(&v, "a.c.d"), Some(&json!(2)));
        assert_eq!(get(&v, "a.x"), None);
        set(&mut v, "a.c.d", json!(5));
        set(&mut v, "n.z", json!(true));
        assert_eq!(v, json!({"a": {"b": 1, "c": {"d": 5}}, "n": {"z": true}}));
        merge(&mut v, &json!({"a": {"c": {"e": [1, 2]}}}), &no_retag);
        assert_eq!(get(&v, "a.c.e"), Some(&json!([1, 2])));
        assert_eq!(get(&v, "a.c.d"), Some(&json!(5)));

        let full = json!({"x": {"y": 1, "z": 2}, "opt": null});
        assert_eq!(
            unknown_key(&json!({"x": {"y": 3}}), &full, "", &no_retag),
            None
        );
        assert_eq!(
            unknown_key(&json!({"opt": {"any": 1}}), &full, "", &no_retag),
            None
        );
        let (p, keys) = unknown_key(&json!({"x": {"w": 3}}), &full, "s", &no_retag).unwrap();
        assert_eq!(p, "s.x.w");
        assert_eq!(keys, vec!["y", "z"]);

        assert_eq!(
            leaves(&json!({"a": {"b": 1, "c": [1]}}), ""),
            vec![("a.b".into(), json!(1)), ("a.c".into(), json!([1]))]
        );
        let mut d = Vec::new();
        differences(
            &json!({"a": 1, "b": {"c": 2}}),
            &json!({"a": 1, "b": {"c": 3}}),
            "",
            &mut d,
        );
        assert_eq!(d, vec!["b.c: 2 → 3"]);
    }

    #[test]
    fn switching_a_tagged_variant_merges_onto_its_defaults() {
        let retag =
            |_: &Value, k: &str| (k == "adam").then(|| json!({"kind": "adam", "lr": 1, "beta": 2}));
        let mut v = json!({"opt": {"kind": "sgd", "lr": 5, "momentum": 0.9}});
        merge(&mut v, &json!({"opt": {"kind": "adam", "lr": 3}}), &retag);
        assert_eq!(v, json!({"opt": {"kind": "adam", "lr": 3, "beta": 2}}));
        let full = json!({"opt": {"kind": "sgd", "lr": 5, "momentum": 0.9}});
        assert_eq!(
            unknown_key(
                &json!({"opt": {"kind": "adam", "beta": 1}}),
                &full,
                "",
                &retag
            ),
            None
        );
        assert!(
            unknown_key(
                &json!({"opt": {"kind": "sgd", "beta": 1}}),
                &full,
                "",
                &retag
            )
            .is_some()
        );
    }
}
