//! Checkpoints: `checkpoint.json` (what was trained, how, on which substrate) plus
//! `checkpoint.safetensors` (every tensor, row-major f32, loadable from Python with the
//! `safetensors` package).

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::fsutil::{read_json, write_atomic, write_json};

pub use crate::tensor::Tensor;

/// Contents of `checkpoint.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Format version of the checkpoint.
    pub format: u32,
    /// Version of mortal that wrote it.
    pub mortal_version: String,
    /// The configuration the network was trained with.
    pub config: TrainConfig,
    /// Substrate kind (`digital` or `chip`).
    pub substrate_kind: String,
    /// Substrate identity (e.g. chip spec and seed).
    pub substrate_identity: serde_json::Value,
    /// MD5 (hex) of `checkpoint.safetensors` as written with this file; set by [`save`]
    /// and verified by [`load`], so corrupted tensors, or tensors of another run left
    /// beside this file, are refused rather than evaluated. Absent in older checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors_md5: Option<String>,
    /// Whether the directory is sealed by a manifest written after every file of the run
    /// ([`super::manifest`]); loading then requires it. Absent (false) in older ones.
    #[serde(default)]
    pub sealed: bool,
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Current checkpoint format. 2 (mortal 0.2): device specs carry `asymmetry`, whose
/// default became aihwkit's convention; format-1 files are read with the old meaning
/// ([`migrate_v1`]).
pub const FORMAT: u32 = 2;

/// Upgrades a format-1 `checkpoint.json` in place: every device spec (an object with
/// `dw_min` and `up_down`) without `asymmetry` gets `asymmetry = "both"`, the convention
/// it was trained with.
pub fn migrate_v1(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key("dw_min") && m.contains_key("up_down") && !m.contains_key("asymmetry")
            {
                m.insert("asymmetry".into(), "both".into());
            }
            m.values_mut().for_each(migrate_v1);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(migrate_v1),
        _ => {}
    }
}

/// File names inside a checkpoint directory.
pub const META_FILE: &str = "checkpoint.json";
pub const TENSOR_FILE: &str = "checkpoint.safetensors";

/// Writes a checkpoint into `dir` (both files atomically).
pub fn save(dir: &Path, meta: &CheckpointMeta, tensors: &[Tensor]) -> Result<()> {
    let md5 = write_tensors(&dir.join(TENSOR_FILE), tensors)?;
    let meta = CheckpointMeta {
        tensors_md5: Some(md5),
        ..meta.clone()
    };
    write_json(&dir.join(META_FILE), &meta)
}

/// Writes named f32 tensors as a safetensors file (atomically); returns its MD5.
pub fn write_tensors(path: &Path, tensors: &[Tensor]) -> Result<String> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.clone(),
                s.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::artifact(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let info: HashMap<String, String> = HashMap::from([("format".into(), "mortal".into())]);
    let blob = safetensors::serialize(views, Some(info))
        .map_err(|e| Error::artifact(path, e.to_string()))?;
    write_atomic(path, &blob)?;
    Ok(md5_hex(&blob))
}

/// Reads a checkpoint from `dir`.
pub fn load(dir: &Path) -> Result<(CheckpointMeta, Vec<Tensor>)> {
    let meta_path = dir.join(META_FILE);
    if !meta_path.exists() {
        return Err(Error::artifact(
            dir,
            format!("no {META_FILE} here; pass the output directory of a `mortal train` run"),
        ));
    }
    let mut raw: serde_json::Value = read_json(&meta_path)?;
    let migrated = raw["format"] == 1;
    if migrated {
        migrate_v1(&mut raw);
        raw["format"] = FORMAT.into();
    }
    let meta: CheckpointMeta = serde_json::from_value(raw)
        .map_err(|e| Error::artifact(&meta_path, format!("not a mortal checkpoint: {e}")))?;
    if meta.format != FORMAT {
        return Err(Error::artifact(
            &meta_path,
            format!(
                "checkpoint format {} is not supported (expected {FORMAT})",
                meta.format
            ),
        ));
    }
    // Every checkpoint of this format is written sealed, so its manifest is required
    // whatever its `sealed` flag says (removing the flag cannot skip verification); only
    // checkpoints of the first format, which had no manifest, load without one.
    if meta.sealed || !migrated {
        super::manifest::verify(dir)?;
    }
    let tensors = read_tensors(&dir.join(TENSOR_FILE), meta.tensors_md5.as_deref())?;
    Ok((meta, tensors))
}

/// Reads a safetensors file of f32 tensors (sorted by name), checking its MD5 if given.
pub fn read_tensors(path: &Path, md5: Option<&str>) -> Result<Vec<Tensor>> {
    let path = path.to_path_buf();
    let blob = std::fs::read(&path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if let Some(want) = md5
        && md5_hex(&blob) != want
    {
        return Err(Error::artifact(
            &path,
            format!(
                "does not match the checksum in {META_FILE} (corrupted, or written by another \
                 run); refusing to use it"
            ),
        ));
    }
    let st = SafeTensors::deserialize(&blob)
        .map_err(|e| Error::artifact(&path, format!("corrupt tensor file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::artifact(
                &path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        let vals = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, view.shape().to_vec(), vals));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod migrate_tests {
    use super::*;

    #[test]
    fn format_1_device_specs_keep_the_asymmetry_they_were_trained_with() {
        let mut v = serde_json::json!({
            "format": 1,
            "config": {"hardware": {"spec": {"device": {"dw_min": 0.002, "up_down": 0.05}}}},
            "other": [{"device": {"dw_min": 0.002, "up_down": 0.0, "asymmetry": "aihwkit"}}],
        });
        migrate_v1(&mut v);
        assert_eq!(
            v["config"]["hardware"]["spec"]["device"]["asymmetry"],
            "both"
        );
        assert_eq!(v["other"][0]["device"]["asymmetry"], "aihwkit");
        let d: crate::substrate::device::DeviceSpec =
            serde_json::from_value(v["config"]["hardware"]["spec"]["device"].clone()).unwrap();
        assert_eq!(d.asymmetry, crate::substrate::device::Asymmetry::Both);
        assert_eq!(d.dw_min, 0.002);
    }
}
