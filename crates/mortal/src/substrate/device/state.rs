//! The chip's state as named tensors (conductances, gains, write clocks, drift
//! state; checkpoints and resumable states) and its restoration onto an instance.

use super::*;

impl Chip {
    /// [`Substrate::save_state`] of the chip.
    pub(super) fn state(&self) -> SubstrateState {
        let mut tensors: Vec<Tensor> = Vec::new();
        let hi = self.clock as f32;
        let lo = (self.clock - f64::from(hi)) as f32;
        tensors.push(tensor::from_vec("clock", &[hi, lo]));
        for (l, ly) in self.layers.iter().enumerate() {
            let dense = ly.dense();
            for (t, tile) in ly.tiles.iter().enumerate() {
                let p = if dense {
                    format!("layer{l}")
                } else {
                    tensors.extend(tile_index_tensors(l, t, &self.topology.wiring(l).tiles[t]));
                    tile_name(l, t)
                };
                let xb = &tile.xb;
                let (out, inp) = (xb.out, xb.inp);
                let nw = out * inp;
                let mat = |v: &[f32], cols: usize| Mat::from_column_slice(out, cols, v);
                tensors.push(tensor::from_mat(
                    format!("{p}.g_plus"),
                    &mat(&xb.gp[..nw], inp),
                ));
                tensors.push(tensor::from_mat(
                    format!("{p}.g_minus"),
                    &mat(&xb.gm[..nw], inp),
                ));
                tensors.push(tensor::from_vec(format!("{p}.bias_g_plus"), &xb.gp[nw..]));
                tensors.push(tensor::from_vec(format!("{p}.bias_g_minus"), &xb.gm[nw..]));
                tensors.push(tensor::from_vec(format!("{p}.gain"), &[xb.gain]));
                tensors.push(tensor::from_vec(
                    format!("{p}.pending_keep"),
                    &[xb.pending_keep],
                ));
                tensors.push(tensor::from_mat(
                    format!("{p}.weight"),
                    &xb.w.columns(0, inp).into_owned(),
                ));
                tensors.push(tensor::from_vec(
                    format!("{p}.bias"),
                    &xb.w.as_slice()[nw..],
                ));
                if !xb.tw_p.is_empty() {
                    tensors.push(tensor::from_mat(
                        format!("{p}.t_write_plus"),
                        &mat(&xb.tw_p, inp + 1),
                    ));
                    tensors.push(tensor::from_mat(
                        format!("{p}.t_write_minus"),
                        &mat(&xb.tw_m, inp + 1),
                    ));
                }
                if !xb.chi.is_empty() {
                    tensors.push(tensor::from_mat(format!("{p}.chi"), &mat(&xb.chi, inp + 1)));
                }
            }
        }
        SubstrateState {
            kind: "chip".into(),
            identity: self.identity(),
            tensors,
        }
    }

    /// [`Substrate::load_state`] of the chip.
    pub(super) fn restore_state(&mut self, state: &SubstrateState) -> Result<Option<String>> {
        if state.kind != "chip" {
            return Err(Error::param(
                "checkpoint",
                &state.kind,
                "this checkpoint holds a digital network, not a chip",
            ));
        }
        let id = &state.identity;
        let topology: Topology = serde_json::from_value(id["topology"].clone())
            .map_err(|e| Error::param("checkpoint", "identity.topology", e.to_string()))?;
        if topology != self.topology {
            return Err(Error::param(
                "checkpoint",
                format!("{:?}", topology.widths()),
                format!(
                    "the chip has layers {:?} (and its own connectivity)",
                    self.topology.widths()
                ),
            ));
        }
        let spec: HardwareSpec = serde_json::from_value(id["spec"].clone())
            .map_err(|e| Error::param("checkpoint", "identity.spec", e.to_string()))?;
        let seed = id["chip_seed"]
            .as_u64()
            .ok_or_else(|| Error::param("checkpoint", "identity.chip_seed", "missing"))?;
        let same = spec == self.spec && seed == self.chip_seed;
        let clock = tensor::find(&state.tensors, "clock", &[2])?;
        let t = &state.tensors;
        // Read everything first so a bad checkpoint leaves the chip untouched.
        let mut loaded = Vec::new();
        for (l, ly) in self.layers.iter().enumerate() {
            let dense = ly.dense();
            for (ti, tile) in ly.tiles.iter().enumerate() {
                let p = if dense {
                    format!("layer{l}")
                } else {
                    tile_name(l, ti)
                };
                let (out, inp) = (tile.xb.out, tile.xb.inp);
                let flat = |name: &str, cols: usize| -> Result<Vec<f32>> {
                    Ok(tensor::to_mat(t, &format!("{p}.{name}"), out, cols)?
                        .as_slice()
                        .to_vec())
                };
                let mut gp = flat("g_plus", inp)?;
                gp.extend_from_slice(tensor::find(t, &format!("{p}.bias_g_plus"), &[out])?);
                let mut gm = flat("g_minus", inp)?;
                gm.extend_from_slice(tensor::find(t, &format!("{p}.bias_g_minus"), &[out])?);
                let gain = tensor::find(t, &format!("{p}.gain"), &[1])?[0];
                let keep = tensor::find(t, &format!("{p}.pending_keep"), &[1])?[0];
                let mut w = flat("weight", inp)?;
                w.extend_from_slice(tensor::find(t, &format!("{p}.bias"), &[out])?);
                let optional = |name: &str| -> Result<Option<Vec<f32>>> {
                    let key = format!("{p}.{name}");
                    if t.iter().any(|(n, _, _)| *n == key) {
                        flat(name, inp + 1).map(Some)
                    } else {
                        Ok(None)
                    }
                };
                let twp = optional("t_write_plus")?;
                let twm = optional("t_write_minus")?;
                let chi = optional("chi")?;
                loaded.push((gp, gm, gain, keep, w, twp, twm, chi));
            }
        }
        self.clock = f64::from(clock[0]) + f64::from(clock[1]);
        let tiles = self.layers.iter_mut().flat_map(|ly| &mut ly.tiles);
        for (tile, (gp, gm, gain, keep, w, twp, twm, chi)) in tiles.zip(loaded) {
            let xb = &mut tile.xb;
            xb.gp = gp;
            xb.gm = gm;
            xb.gain = gain;
            xb.pending_keep = keep;
            if !xb.tw_p.is_empty() {
                let now = self.clock as f32;
                xb.tw_p = twp.unwrap_or_else(|| vec![now; xb.gp.len()]);
                xb.tw_m = twm.unwrap_or_else(|| vec![now; xb.gp.len()]);
            }
            if !xb.chi.is_empty() {
                let n = xb.gp.len();
                xb.chi = chi.unwrap_or_else(|| vec![0.0; n]);
            }
            if same {
                xb.w.as_mut_slice().copy_from_slice(&w);
            } else {
                xb.enforce_own_devices(&self.phys);
            }
            tile.gsum_dirty = true;
        }
        if same {
            Ok(None)
        } else {
            Ok(Some(format!(
                "conductances of chip {} #{seed} loaded into chip {} #{}: a different \
                 instance (its own device properties, stuck devices, neurons and black box \
                 apply), so the network will not compute exactly what it did",
                spec.name, self.spec.name, self.chip_seed
            )))
        }
    }
}
