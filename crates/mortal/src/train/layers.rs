//! Hidden layers as a run describes them: a dense width, or a local (receptive-field)
//! layer, and the named architectures of the paper.
//!
//! Syntax (command line `--layers`, scenario `layers = [...]`, result files):
//! * `2000`: a dense layer of 2000 units;
//! * `local:HxWxC:fF:sS[:pP]`: a local layer without weight sharing: an H × W grid of
//!   locations with C units (channels) each; the units at a location see every channel
//!   of an F × F window of the layer below (locations, not units), windows S locations
//!   apart, the first starting P locations before the edge (default 0: every window must
//!   fit; with P > 0 windows are truncated at the edges). The layer below must be the
//!   image (MNIST: a 28 × 28 × 1 map) or another local layer.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::substrate::{Activation, Connectivity, Geometry, Local, Topology};

/// Hard cap on the units of one layer (a 40 GB allocation is refused before it is tried).
pub const MAX_UNITS: usize = 1 << 20;

/// One hidden layer: a number (dense) or a `local:…` string in files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum LayerSpec {
    /// A dense layer of this many units.
    Dense(usize),
    /// A local layer.
    Local(LocalLayer),
}

/// A local layer's own settings (the input map comes from the layer below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalLayer {
    /// Grid rows, columns (locations).
    pub grid: [usize; 2],
    /// Units per location.
    pub channels: usize,
    /// Window side, in locations of the layer below.
    pub field: usize,
    /// Step between windows, in locations of the layer below.
    pub stride: usize,
    /// Offset of the first window before the edge, in locations of the layer below.
    pub pad: usize,
}

impl std::fmt::Display for LocalLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "local:{}x{}x{}:f{}:s{}",
            self.grid[0], self.grid[1], self.channels, self.field, self.stride
        )?;
        if self.pad > 0 {
            write!(f, ":p{}", self.pad)?;
        }
        Ok(())
    }
}

impl From<LocalLayer> for String {
    fn from(l: LocalLayer) -> String {
        l.to_string()
    }
}

impl TryFrom<String> for LocalLayer {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        LocalLayer::parse(&s)
    }
}

impl LocalLayer {
    /// Parses `local:HxWxC:fF:sS[:pP]`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::param(
                "layers",
                s,
                format!(
                    "{why}; a local layer is local:HxWxC:fF:sS[:pP], e.g. local:4x4x128:f10:s6"
                ),
            )
        };
        let rest = s
            .strip_prefix("local:")
            .ok_or_else(|| bad("not a local layer"))?;
        let mut parts = rest.split(':');
        let shape = parts.next().unwrap_or_default();
        let dims: Vec<usize> = shape
            .split('x')
            .map(|d| whole(d).ok_or_else(|| bad("the grid must be HxWxC whole numbers")))
            .collect::<Result<_>>()?;
        if dims.len() != 3 {
            return Err(bad("the grid must be HxWxC"));
        }
        let (mut field, mut stride, mut pad) = (None, None, 0);
        for p in parts {
            let (tag, v) = p.split_at(p.char_indices().nth(1).map_or(p.len(), |(i, _)| i));
            let v = whole(v).ok_or_else(|| bad(&format!("`{p}` needs a whole number")))?;
            match tag {
                "f" if field.is_none() => field = Some(v),
                "s" if stride.is_none() => stride = Some(v),
                "p" => pad = v,
                _ => return Err(bad(&format!("unknown or repeated part `{p}`"))),
            }
        }
        let l = LocalLayer {
            grid: [dims[0], dims[1]],
            channels: dims[2],
            field: field.ok_or_else(|| bad("missing the field fF"))?,
            stride: stride.unwrap_or(1),
            pad,
        };
        if l.grid.contains(&0) || l.channels == 0 || l.field == 0 || l.stride == 0 {
            return Err(bad("grid, channels, field and stride must be at least 1"));
        }
        Ok(l)
    }
}

/// A whole number with no sign and no leading or trailing junk.
fn whole(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl LayerSpec {
    /// Units of the layer.
    pub fn units(&self) -> usize {
        match self {
            LayerSpec::Dense(w) => *w,
            LayerSpec::Local(l) => l.grid[0]
                .saturating_mul(l.grid[1])
                .saturating_mul(l.channels),
        }
    }

    /// Parses one entry of `--layers`.
    pub fn parse(s: &str) -> Result<Self> {
        if s.starts_with("local") {
            return LocalLayer::parse(s).map(LayerSpec::Local);
        }
        whole(s).map(LayerSpec::Dense).ok_or_else(|| {
            Error::param(
                "layers",
                s,
                "each layer must be a whole number of units or local:HxWxC:fF:sS[:pP]",
            )
        })
    }
}

impl std::fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerSpec::Dense(w) => write!(f, "{w}"),
            LayerSpec::Local(l) => write!(f, "{l}"),
        }
    }
}

impl<'de> Deserialize<'de> for LayerSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = LayerSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of units or a local:HxWxC:fF:sS[:pP] layer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<LayerSpec, E> {
                usize::try_from(v)
                    .map(LayerSpec::Dense)
                    .map_err(|_| E::custom(format!("{v} units is too many")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<LayerSpec, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::custom(format!("{v}: a layer needs a positive number of units"))
                    })
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<LayerSpec, E> {
                LayerSpec::parse(v).map_err(|e| match e {
                    Error::Param { value, reason, .. } => E::custom(format!("{value}: {reason}")),
                    other => E::custom(other.to_string()),
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl From<usize> for LayerSpec {
    fn from(w: usize) -> Self {
        LayerSpec::Dense(w)
    }
}

/// Dense layers of these widths.
pub fn dense(widths: &[usize]) -> Vec<LayerSpec> {
    widths.iter().map(|w| LayerSpec::Dense(*w)).collect()
}

/// `[a, b, …]` as the user wrote the layers.
pub fn display(layers: &[LayerSpec]) -> String {
    let parts: Vec<String> = layers.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Named architectures (`--net NAME`).
pub const NETS: [&str; 3] = ["paper-local", "cifar-local2", "cifar-local3"];

/// The hidden layers of a named architecture.
///
/// `paper-local` (Hinton 2022, §3.2 and footnote 8): layer 1 a 4 × 4 grid with stride 6,
/// 10 × 10 receptive fields and 128 channels per location; layer 2 a 3 × 3 grid with 220
/// channels, each unit seeing all channels of a 2 × 2 square of adjacent locations
/// below; layer 3 a 2 × 2 grid with 512 channels, likewise.
pub fn named(name: &str) -> Result<Vec<LayerSpec>> {
    let local = |g: usize, c: usize, f: usize, s: usize| {
        LayerSpec::Local(LocalLayer {
            grid: [g, g],
            channels: c,
            field: f,
            stride: s,
            pad: 0,
        })
    };
    // CIFAR-10 (§4, Table 1): 32 × 32 maps of 3 units per location, each unit an 11 × 11
    // field of the layer below centred on its location, truncated at the edges.
    let cifar = LayerSpec::Local(LocalLayer {
        grid: [32, 32],
        channels: 3,
        field: 11,
        stride: 1,
        pad: 5,
    });
    match name {
        "paper-local" => Ok(vec![
            local(4, 128, 10, 6),
            local(3, 220, 2, 1),
            local(2, 512, 2, 1),
        ]),
        "cifar-local2" => Ok(vec![cifar; 2]),
        "cifar-local3" => Ok(vec![cifar; 3]),
        other => Err(Error::param(
            "net",
            other,
            format!("unknown architecture; expected one of {}", NETS.join(", ")),
        )),
    }
}

/// Parses a comma-separated `--layers` list (no empty entries).
pub fn parse_list(s: &str) -> Result<Vec<LayerSpec>> {
    if s.trim().is_empty() {
        return Err(Error::param(
            "layers",
            format!("{s:?}"),
            "need at least one hidden layer, e.g. 500,500",
        ));
    }
    s.split(',').map(|p| LayerSpec::parse(p.trim())).collect()
}

/// Hidden widths of a list of layers.
pub fn widths(layers: &[LayerSpec]) -> Vec<usize> {
    layers.iter().map(LayerSpec::units).collect()
}

/// Whether every layer is dense.
pub fn all_dense(layers: &[LayerSpec]) -> bool {
    layers.iter().all(|l| matches!(l, LayerSpec::Dense(_)))
}

/// Checks sizes and the chain of maps; errors name `layers[i]`.
pub fn validate(layers: &[LayerSpec], input: Geometry) -> Result<()> {
    topology(layers, input, Activation::Relu).map(|_| ())
}

/// The topology of `input → layers` with one activation for every layer.
pub fn topology(layers: &[LayerSpec], input: Geometry, act: Activation) -> Result<Topology> {
    if layers.is_empty() {
        return Err(Error::param(
            "layers",
            "[]",
            "need at least one hidden layer",
        ));
    }
    let mut widths = vec![input.units()];
    let mut conn = Vec::with_capacity(layers.len());
    let mut below = Some(input);
    for (i, l) in layers.iter().enumerate() {
        let key = format!("layers[{i}]");
        let units = l.units();
        if units == 0 || units > MAX_UNITS {
            return Err(Error::param(
                key,
                l,
                format!("a layer needs 1 to {MAX_UNITS} units (it has {units})"),
            ));
        }
        match l {
            LayerSpec::Dense(_) => {
                conn.push(Connectivity::Dense);
                below = None;
            }
            LayerSpec::Local(ll) => {
                let input = below.ok_or_else(|| {
                    Error::param(
                        &key,
                        l,
                        "a local layer must follow the image or another local layer",
                    )
                })?;
                let local = Local {
                    input,
                    grid: ll.grid,
                    channels: ll.channels,
                    field: ll.field,
                    stride: ll.stride,
                    pad: ll.pad,
                };
                local.validate(&key)?;
                below = Some(local.output());
                conn.push(Connectivity::Local(local));
            }
        }
        widths.push(units);
    }
    Topology::uniform(widths, act)?.with_connectivity(conn)
}

/// A backprop classifier: `input → layers` (activation `hidden`, connectivity as in
/// [`topology`]) then a dense linear layer of 10 logits.
pub fn classifier_topology(
    layers: &[LayerSpec],
    input: Geometry,
    hidden: Activation,
) -> Result<Topology> {
    let chain = topology(layers, input, hidden)?;
    let mut widths = chain.widths().to_vec();
    widths.push(crate::data::CLASSES);
    let mut conn: Vec<Connectivity> = (0..chain.layers())
        .map(|l| chain.projections(l)[0].connectivity.clone())
        .collect();
    conn.push(Connectivity::Dense);
    Topology::classifier(widths, hidden)?.with_connectivity(conn)
}

/// The recurrent FF network (`ff-recurrent`, see
/// [`crate::learn::ff::recurrent::recurrent_topology`]): `input → layers` bottom-up as
/// in [`topology`], plus a top-down projection into every layer from the layer above
/// (the 10-unit label layer for the last). A top-down projection is local when the layer
/// above is a local layer of stride 1 on this layer's map (the CIFAR-10 nets): each unit
/// sees the same-sized window (field and padding of the layer above) of the layer above,
/// centred on its own location; otherwise it is dense.
pub fn recurrent_topology(layers: &[LayerSpec], input: Geometry) -> Result<Topology> {
    let chain = topology(layers, input, Activation::Relu)?;
    if layers.len() < 2 {
        return Err(Error::param(
            "layers",
            format!("{} layer", layers.len()),
            "recurrent FF needs at least 2 hidden layers",
        ));
    }
    let up: Vec<Connectivity> = (0..chain.layers())
        .map(|l| chain.projections(l)[0].connectivity.clone())
        .collect();
    let mut down = Vec::with_capacity(layers.len());
    for l in 0..layers.len() {
        let conn = match (up.get(l + 1), &up[l]) {
            (Some(Connectivity::Local(above)), Connectivity::Local(here))
                if above.stride == 1 && above.input == here.output() =>
            {
                let top = above.output();
                let local = Local {
                    input: top,
                    grid: here.grid,
                    channels: here.channels,
                    field: above.field,
                    stride: 1,
                    pad: above.pad,
                };
                local.validate(&format!("layers[{}]", l + 1))?;
                Connectivity::Local(local)
            }
            _ => Connectivity::Dense,
        };
        down.push(conn);
    }
    crate::learn::ff::recurrent::recurrent_topology(
        input.units(),
        &widths(layers),
        crate::data::CLASSES,
        up,
        down,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: Geometry = Geometry { h: 28, w: 28, c: 1 };

    #[test]
    fn syntax_round_trips_and_bad_entries_name_the_key() {
        let l = LayerSpec::parse("local:4x4x128:f10:s6").unwrap();
        assert_eq!(l.units(), 2048);
        assert_eq!(l.to_string(), "local:4x4x128:f10:s6");
        let json = serde_json::to_value(vec![l, LayerSpec::Dense(10)]).unwrap();
        assert_eq!(json, serde_json::json!(["local:4x4x128:f10:s6", 10]));
        let back: Vec<LayerSpec> = serde_json::from_value(json).unwrap();
        assert_eq!(back[0], l);
        for bad in [
            "10,,10",
            "10,",
            "+10",
            "local:4x4:f10",
            "local:4x4x128:s6",
            "local:4x4x128:f10:s6:q1",
            "local:0x4x1:f1",
            "-3",
        ] {
            let e = parse_list(bad).unwrap_err().to_string();
            assert!(e.contains("`layers`"), "{bad}: {e}");
        }
    }

    #[test]
    fn paper_local_builds_with_the_papers_sizes() {
        let t = topology(&named("paper-local").unwrap(), MNIST, Activation::Relu).unwrap();
        assert_eq!(t.widths(), &[784, 2048, 1980, 2048]);
        assert_eq!(
            t.weight_count(),
            16 * 128 * 100 + 9 * 220 * (4 * 128) + 4 * 512 * (4 * 220)
        );
    }

    #[test]
    fn windows_that_do_not_fit_and_local_after_dense_are_refused() {
        let e = validate(&parse_list("local:4x4x8:f10:s7").unwrap(), MNIST)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers[0]`") && e.contains("do not fit"), "{e}");
        let e = validate(&parse_list("100,local:2x2x8:f1:s1").unwrap(), MNIST)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers[1]`"), "{e}");
        let e = validate(&[LayerSpec::Dense(1_000_000_000)], MNIST)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers[0]`"), "{e}");
    }
}
