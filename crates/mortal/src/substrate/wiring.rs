//! Connectivity of a projection (a crossbar array from one layer to the next): dense,
//! local receptive fields without weight sharing, or an explicit mask.
//!
//! Every connectivity is realised as a set of **tiles**. A tile is a block of
//! consecutive output units (`rows`) that all see the same input units (`cols`, sorted;
//! `None` = every input). The tiles partition the outputs, so each output unit belongs to
//! exactly one tile. A dense projection is one tile over everything; a local layer has
//! one tile per grid location (all channels at a location share its window); a mask is
//! split into maximal runs of consecutive units with the same inputs.
//!
//! On a chip each tile is its own crossbar array (absent weights have no device); on the
//! digital substrate each tile is a dense block. The **packed weight layout** of a
//! projection, used by [`super::Update::Dense`] and by optimisers, is the tiles' weight
//! blocks one after another, each column-major `rows × cols`. For a dense projection it
//! is exactly the column-major `out × in` matrix.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linalg::{Mat, Op, Precision, gemm_in};

/// The spatial shape of a layer seen as a topographic map: `h × w` locations with `c`
/// channels each; unit index `(y·w + x)·c + channel`. An image is its own map (MNIST:
/// 28 × 28 × 1, pixel index `y·28 + x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Geometry {
    /// Rows of locations.
    pub h: usize,
    /// Columns of locations.
    pub w: usize,
    /// Channels (units) per location.
    pub c: usize,
}

impl Geometry {
    /// Units in the map.
    pub fn units(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// A local (receptive-field) layer without weight sharing: an `grid[0] × grid[1]` grid of
/// locations with `channels` units each; the units at location (gy, gx) see every
/// channel of the `field × field` window of the input map starting at
/// (gy·stride − pad, gx·stride − pad), truncated at the map's edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Local {
    /// The input map.
    pub input: Geometry,
    /// Output grid (rows, columns of locations).
    pub grid: [usize; 2],
    /// Units per output location.
    pub channels: usize,
    /// Window side, in input locations.
    pub field: usize,
    /// Step between neighbouring windows, in input locations.
    pub stride: usize,
    /// Offset of the first window before the map's edge, in input locations (0: every
    /// window must fit inside the map).
    pub pad: usize,
}

impl Local {
    /// The output map.
    pub fn output(&self) -> Geometry {
        Geometry {
            h: self.grid[0],
            w: self.grid[1],
            c: self.channels,
        }
    }

    /// Checks that the windows fit; `key` names the setting in errors.
    pub fn validate(&self, key: &str) -> Result<()> {
        let bad = |v: String, why: &str| Err(Error::param(key, v, why));
        let g = &self.input;
        if g.h == 0 || g.w == 0 || g.c == 0 {
            return bad(format!("{}x{}x{}", g.h, g.w, g.c), "empty input map");
        }
        if self.grid[0] == 0 || self.grid[1] == 0 || self.channels == 0 {
            return bad(
                format!("{}x{}x{}", self.grid[0], self.grid[1], self.channels),
                "the grid and the channels must be at least 1",
            );
        }
        if self.field == 0 || self.stride == 0 {
            return bad(
                format!("f{} s{}", self.field, self.stride),
                "field and stride must be at least 1",
            );
        }
        const MAX: usize = 1 << 20;
        let sizes = [
            g.h,
            g.w,
            g.c,
            self.grid[0],
            self.grid[1],
            self.channels,
            self.field,
            self.stride,
            self.pad,
        ];
        if let Some(v) = sizes.iter().find(|v| **v > MAX) {
            return bad(
                v.to_string(),
                "sizes, fields, strides and padding must be at most 2²⁰",
            );
        }
        if self.pad >= self.field {
            return bad(
                format!("p{}", self.pad),
                "padding must be smaller than the field",
            );
        }
        for (axis, (n, inp)) in [(self.grid[0], g.h), (self.grid[1], g.w)]
            .into_iter()
            .enumerate()
        {
            let last_start = (n - 1) * self.stride;
            let name = ["rows", "columns"][axis];
            if last_start >= inp + self.pad {
                return bad(
                    format!("{n} {name}, stride {}, pad {}", self.stride, self.pad),
                    &format!(
                        "the last window starts outside the {inp}-wide input ({name}): \
                         (grid − 1)·stride − pad must be < {inp}"
                    ),
                );
            }
            if self.pad == 0 && last_start + self.field > inp {
                return bad(
                    format!("{n} {name}, field {}, stride {}", self.field, self.stride),
                    &format!(
                        "windows do not fit the {inp}-wide input ({name}): \
                         (grid − 1)·stride + field = {} > {inp} (add padding :pP to truncate \
                         at the edges)",
                        last_start + self.field
                    ),
                );
            }
        }
        Ok(())
    }

    /// Input rows (or columns) of the window starting at location `g` along an axis of
    /// `n` input locations.
    fn span(&self, g: usize, n: usize) -> std::ops::Range<usize> {
        let start = (g * self.stride) as isize - self.pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + self.field as isize).max(0) as usize).min(n);
        lo..hi
    }

    /// Input unit indices of output location (gy, gx), ascending.
    pub fn window(&self, gy: usize, gx: usize) -> Vec<usize> {
        let g = &self.input;
        let mut cols = Vec::new();
        for y in self.span(gy, g.h) {
            for x in self.span(gx, g.w) {
                let base = (y * g.w + x) * g.c;
                cols.extend(base..base + g.c);
            }
        }
        cols
    }
}

/// How a projection's outputs are connected to its inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Connectivity {
    /// Every output sees every input.
    #[default]
    Dense,
    /// Local receptive fields without weight sharing.
    Local(Local),
    /// An explicit mask: `inputs[o]` lists the input units output unit `o` sees
    /// (ascending, no repeats).
    Mask {
        /// Per output unit, its inputs.
        inputs: Vec<Vec<u32>>,
    },
}

impl Connectivity {
    /// Whether this is the dense connectivity.
    pub fn is_dense(&self) -> bool {
        matches!(self, Connectivity::Dense)
    }
}

/// One tile: output units `rows` see input units `cols` (`None`: all inputs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    /// First output unit.
    pub row0: usize,
    /// Number of output units.
    pub rows: usize,
    /// Input units, ascending; `None` = every input.
    pub cols: Option<Vec<usize>>,
}

impl Tile {
    /// Number of inputs this tile sees, given the projection's input width.
    pub fn fan_in(&self, inp: usize) -> usize {
        self.cols.as_ref().map_or(inp, Vec::len)
    }
}

/// The tiles of one projection, with the offsets of their blocks in the packed layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wiring {
    /// Inputs of the projection.
    pub inp: usize,
    /// Outputs of the projection.
    pub out: usize,
    /// The tiles, in order of their rows.
    pub tiles: Vec<Tile>,
    /// Offset of each tile's block in the packed layout, plus the total at the end.
    offsets: Vec<usize>,
}

impl Wiring {
    /// The wiring of a projection `inp → out` with connectivity `conn`. `key` names the
    /// setting in errors.
    pub fn new(inp: usize, out: usize, conn: &Connectivity, key: &str) -> Result<Self> {
        let tiles = match conn {
            Connectivity::Dense => vec![Tile {
                row0: 0,
                rows: out,
                cols: None,
            }],
            Connectivity::Local(l) => {
                l.validate(key)?;
                if l.input.units() != inp {
                    return Err(Error::param(
                        key,
                        format!("{}x{}x{}", l.input.h, l.input.w, l.input.c),
                        format!(
                            "the input map has {} units, the layer below {inp}",
                            l.input.units()
                        ),
                    ));
                }
                if l.output().units() != out {
                    return Err(Error::param(
                        key,
                        l.output().units(),
                        format!("the layer has {out} units"),
                    ));
                }
                let mut tiles = Vec::with_capacity(l.grid[0] * l.grid[1]);
                for gy in 0..l.grid[0] {
                    for gx in 0..l.grid[1] {
                        let cols = l.window(gy, gx);
                        if cols.is_empty() {
                            return Err(Error::param(
                                key,
                                format!("location ({gy}, {gx})"),
                                "its window holds no input",
                            ));
                        }
                        tiles.push(Tile {
                            row0: (gy * l.grid[1] + gx) * l.channels,
                            rows: l.channels,
                            cols: Some(cols),
                        });
                    }
                }
                tiles
            }
            Connectivity::Mask { inputs } => {
                if inputs.len() != out {
                    return Err(Error::param(
                        key,
                        inputs.len(),
                        format!("the mask lists {} units, the layer has {out}", inputs.len()),
                    ));
                }
                for (o, ins) in inputs.iter().enumerate() {
                    if ins.windows(2).any(|p| p[0] >= p[1]) {
                        return Err(Error::param(
                            key,
                            format!("unit {o}"),
                            "mask inputs must be ascending without repeats",
                        ));
                    }
                    if let Some(i) = ins.iter().find(|i| **i as usize >= inp) {
                        return Err(Error::param(
                            key,
                            format!("unit {o} input {i}"),
                            format!("the layer below has {inp} units"),
                        ));
                    }
                }
                let mut tiles: Vec<Tile> = Vec::new();
                for (o, ins) in inputs.iter().enumerate() {
                    let cols: Option<Vec<usize>> = if ins.len() == inp {
                        None
                    } else {
                        Some(ins.iter().map(|i| *i as usize).collect())
                    };
                    match tiles.last_mut() {
                        Some(t) if t.cols == cols => t.rows += 1,
                        _ => tiles.push(Tile {
                            row0: o,
                            rows: 1,
                            cols,
                        }),
                    }
                }
                tiles
            }
        };
        let mut offsets = Vec::with_capacity(tiles.len() + 1);
        let mut acc = 0;
        for t in &tiles {
            offsets.push(acc);
            acc += t.rows * t.fan_in(inp);
        }
        offsets.push(acc);
        Ok(Self {
            inp,
            out,
            tiles,
            offsets,
        })
    }

    /// The wiring of several projections into the same outputs whose inputs are stacked
    /// one after another (a layer fed by several sources): dense if every part is, else
    /// the mask of each unit's inputs, offset by the widths of the parts before.
    pub fn stack(parts: &[Wiring], key: &str) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::param(key, "[]", "no projection to stack"));
        };
        if parts.len() == 1 {
            return Ok(first.clone());
        }
        let out = first.out;
        let inp: usize = parts.iter().map(|p| p.inp).sum();
        if parts.iter().all(Wiring::is_dense) {
            return Wiring::new(inp, out, &Connectivity::Dense, key);
        }
        let mut inputs: Vec<Vec<u32>> = vec![Vec::new(); out];
        let mut offset = 0u32;
        for p in parts {
            assert_eq!(p.out, out, "stack: every part feeds the same outputs");
            for t in &p.tiles {
                for unit in &mut inputs[t.row0..t.row0 + t.rows] {
                    unit.extend(p.inputs(t).map(|i| offset + i as u32));
                }
            }
            offset += p.inp as u32;
        }
        Wiring::new(inp, out, &Connectivity::Mask { inputs }, key)
    }

    /// Whether this is one tile over every input and output (dense).
    pub fn is_dense(&self) -> bool {
        self.tiles.len() == 1 && self.tiles[0].cols.is_none()
    }

    /// Number of existing weights (the length of the packed layout).
    pub fn weight_count(&self) -> usize {
        self.offsets[self.tiles.len()]
    }

    /// The range of tile `t`'s block in the packed layout.
    pub fn block(&self, t: usize) -> std::ops::Range<usize> {
        self.offsets[t]..self.offsets[t + 1]
    }

    /// Whether input `i` of output `o` exists.
    pub fn connects(&self, o: usize, i: usize) -> bool {
        self.tiles
            .iter()
            .find(|t| (t.row0..t.row0 + t.rows).contains(&o))
            .is_some_and(|t| t.cols.as_ref().is_none_or(|c| c.binary_search(&i).is_ok()))
    }

    /// The input units of tile `t`, ascending.
    fn inputs<'a>(&self, t: &'a Tile) -> Box<dyn Iterator<Item = usize> + 'a> {
        match &t.cols {
            Some(c) => Box::new(c.iter().copied()),
            None => Box::new(0..self.inp),
        }
    }

    /// The packed weights of a dense `out × in` matrix (absent entries dropped).
    pub fn pack(&self, w: &Mat) -> Vec<f32> {
        assert_eq!(w.shape(), (self.out, self.inp), "pack: weight shape");
        if self.is_dense() {
            return w.as_slice().to_vec();
        }
        let mut v = Vec::with_capacity(self.weight_count());
        for t in &self.tiles {
            for c in self.inputs(t) {
                v.extend_from_slice(&w.column(c).as_slice()[t.row0..t.row0 + t.rows]);
            }
        }
        v
    }

    /// The dense `out × in` matrix of packed weights (absent entries 0).
    pub fn unpack(&self, packed: &[f32]) -> Mat {
        assert_eq!(packed.len(), self.weight_count(), "unpack: length");
        if self.is_dense() {
            return Mat::from_column_slice(self.out, self.inp, packed);
        }
        let mut w = Mat::zeros(self.out, self.inp);
        for (ti, t) in self.tiles.iter().enumerate() {
            let block = &packed[self.block(ti)];
            for (k, c) in self.inputs(t).enumerate() {
                w.column_mut(c).as_mut_slice()[t.row0..t.row0 + t.rows]
                    .copy_from_slice(&block[k * t.rows..(k + 1) * t.rows]);
            }
        }
        w
    }

    /// `dst ← α·d·xᵀ + β·dst` in the packed layout, for local errors `d` (out × n) and
    /// inputs `x` (in × n), in `precision`: only existing weights are computed. `gather` is
    /// scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn outer(
        &self,
        precision: Precision,
        alpha: f32,
        d: &Mat,
        x: &Mat,
        beta: f32,
        dst: &mut [f32],
        gather: &mut Mat,
    ) {
        assert_eq!(dst.len(), self.weight_count(), "outer: destination length");
        let n = d.ncols();
        for (ti, t) in self.tiles.iter().enumerate() {
            let block = &mut dst[self.block(ti)];
            let dr = d.rows(t.row0, t.rows);
            match &t.cols {
                None if self.tiles.len() == 1 => {
                    let mut c = nalgebra::DMatrixViewMut::from_slice(block, t.rows, self.inp);
                    gemm_in(precision, alpha, d, Op::N, x, Op::T, beta, &mut c);
                }
                None => {
                    let mut c = nalgebra::DMatrixViewMut::from_slice(block, t.rows, self.inp);
                    gemm_in(precision, alpha, &dr, Op::N, x, Op::T, beta, &mut c);
                }
                Some(cols) => {
                    gather_rows(x, cols, gather);
                    let mut c = nalgebra::DMatrixViewMut::from_slice(block, t.rows, cols.len());
                    debug_assert_eq!(gather.ncols(), n);
                    gemm_in(precision, alpha, &dr, Op::N, &*gather, Op::T, beta, &mut c);
                }
            }
        }
    }
}

/// Name of tile `t` of projection `l` in checkpoints: `layer{l}.tile{t}`.
pub fn tile_name(l: usize, t: usize) -> String {
    format!("layer{l}.tile{t}")
}

/// The index tensors of a tiled projection's tile, for readers without the topology:
/// `<tile>.rows` = [first output unit, number of units] and `<tile>.inputs` = the input
/// unit indices (f32, exact below 2²⁴).
pub fn tile_index_tensors(l: usize, t: usize, tile: &Tile) -> Vec<crate::tensor::Tensor> {
    let name = tile_name(l, t);
    let cols = tile.cols.as_deref().unwrap_or_default();
    vec![
        crate::tensor::from_vec(
            format!("{name}.rows"),
            &[tile.row0 as f32, tile.rows as f32],
        ),
        crate::tensor::from_vec(
            format!("{name}.inputs"),
            &cols.iter().map(|c| *c as f32).collect::<Vec<_>>(),
        ),
    ]
}

/// `dst ← x[rows, :]` (|rows| × n), resized if needed.
pub fn gather_rows(x: &Mat, rows: &[usize], dst: &mut Mat) {
    let n = x.ncols();
    crate::linalg::ensure_shape(dst, rows.len(), n);
    let r = x.nrows();
    let src = x.as_slice();
    for (j, col) in dst
        .as_mut_slice()
        .chunks_mut(rows.len().max(1))
        .enumerate()
        .take(n)
    {
        let s = &src[j * r..(j + 1) * r];
        for (o, &i) in col.iter_mut().zip(rows) {
            *o = s[i];
        }
    }
}

/// `dst[rows, :] += src` (src: |rows| × n).
pub fn scatter_add_rows(src: &Mat, rows: &[usize], dst: &mut Mat) {
    let r = dst.nrows();
    let n = src.ncols();
    let s = src.as_slice();
    for (j, col) in dst.as_mut_slice().chunks_mut(r.max(1)).enumerate().take(n) {
        let sc = &s[j * rows.len()..(j + 1) * rows.len()];
        for (v, &i) in sc.iter().zip(rows) {
            col[i] += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper_l1() -> Local {
        Local {
            input: Geometry { h: 28, w: 28, c: 1 },
            grid: [4, 4],
            channels: 128,
            field: 10,
            stride: 6,
            pad: 0,
        }
    }

    #[test]
    fn paper_local_layer_one_has_sixteen_10x10_windows() {
        let w = Wiring::new(784, 2048, &Connectivity::Local(paper_l1()), "layers").unwrap();
        assert_eq!(w.tiles.len(), 16);
        assert_eq!(w.weight_count(), 16 * 128 * 100);
        let last = w.tiles[15].cols.as_ref().unwrap();
        // Location (3, 3) starts at pixel (18, 18) and ends at (27, 27).
        assert_eq!(last[0], 18 * 28 + 18);
        assert_eq!(*last.last().unwrap(), 27 * 28 + 27);
        assert!(w.connects(15 * 128, 18 * 28 + 18));
        assert!(!w.connects(0, 27 * 28 + 27));
    }

    /// Found by the scenario fuzzer: a huge stride overflowed the fit check.
    #[test]
    fn huge_sizes_are_refused_not_overflowed() {
        let mut l = paper_l1();
        l.stride = usize::MAX;
        let e = l.validate("layers[0]").unwrap_err().to_string();
        assert!(e.contains("layers[0]") && e.contains("2²⁰"), "{e}");
        let mut l = paper_l1();
        l.grid = [usize::MAX / 2, 1];
        assert!(l.validate("layers[0]").is_err());
    }

    #[test]
    fn windows_that_do_not_fit_are_refused_with_the_key() {
        let mut l = paper_l1();
        l.stride = 7;
        let e = Wiring::new(784, 2048, &Connectivity::Local(l), "layers[0]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers[0]`") && e.contains("do not fit"), "{e}");
        l.pad = 2;
        assert!(Wiring::new(784, 2048, &Connectivity::Local(l), "k").is_ok());
    }

    #[test]
    fn padded_windows_truncate_at_the_edges() {
        let l = Local {
            input: Geometry { h: 5, w: 5, c: 2 },
            grid: [5, 5],
            channels: 1,
            field: 3,
            stride: 1,
            pad: 1,
        };
        let w = Wiring::new(50, 25, &Connectivity::Local(l), "k").unwrap();
        // Corner: 2 × 2 locations × 2 channels; centre: 3 × 3 × 2.
        assert_eq!(w.tiles[0].fan_in(50), 8);
        assert_eq!(w.tiles[12].fan_in(50), 18);
    }

    #[test]
    fn masks_group_consecutive_units_and_round_trip() {
        let inputs = vec![vec![0, 2], vec![0, 2], vec![1], vec![0, 1, 2]];
        let w = Wiring::new(3, 4, &Connectivity::Mask { inputs }, "mask").unwrap();
        assert_eq!(w.tiles.len(), 3);
        assert_eq!(w.tiles[2].cols, None);
        assert_eq!(w.weight_count(), 4 + 1 + 3);
        let dense = Mat::from_fn(4, 3, |i, j| (i * 3 + j) as f32 + 1.0);
        let packed = w.pack(&dense);
        let back = w.unpack(&packed);
        for i in 0..4 {
            for j in 0..3 {
                let want = if w.connects(i, j) { dense[(i, j)] } else { 0.0 };
                assert_eq!(back[(i, j)], want);
            }
        }
        let bad = Connectivity::Mask {
            inputs: vec![vec![3]],
        };
        assert!(Wiring::new(3, 1, &bad, "mask").is_err());
    }

    #[test]
    fn outer_equals_the_masked_dense_product() {
        let inputs = vec![vec![0, 2], vec![0, 2], vec![1], vec![0, 1, 2]];
        let w = Wiring::new(3, 4, &Connectivity::Mask { inputs }, "mask").unwrap();
        let d = Mat::from_fn(4, 5, |i, j| (i as f32 - 1.5) * (j as f32 + 0.5));
        let x = Mat::from_fn(3, 5, |i, j| (i as f32 + 1.0) * (j as f32 - 2.0));
        let mut packed = vec![0.0; w.weight_count()];
        let mut g = Mat::zeros(0, 0);
        w.outer(Precision::F32, 0.5, &d, &x, 0.0, &mut packed, &mut g);
        let full = &d * x.transpose() * 0.5;
        let got = w.unpack(&packed);
        for i in 0..4 {
            for j in 0..3 {
                let want = if w.connects(i, j) { full[(i, j)] } else { 0.0 };
                assert!((got[(i, j)] - want).abs() < 1e-4);
            }
        }
    }
}
