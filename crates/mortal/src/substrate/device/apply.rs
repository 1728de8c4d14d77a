//! The chip's update: a learner's request (dense, rank-1 outer products, pulse
//! trains) realised per tile by the device physics.

use super::*;

impl Chip {
    /// [`Substrate::update`] of the chip: the request realised as the device physics
    /// and the update mode say (see the module documentation).
    pub(super) fn apply_update(&mut self, layer: usize, update: Update<'_>, noise: &mut Rng) {
        let prec = self.precision;
        let seed: u64 = noise.random();
        let phys = &self.phys;
        let wiring = self.topology.wiring(layer);
        let ly = &mut self.layers[layer];
        let dense = ly.dense();
        let (scheme, step) = (self.spec.pair_scheme(), self.spec.pair_step() as f32);
        let clock = self.clock;
        let count = self.ledger.enabled();
        let mut tally = update::PulseTally::default();
        let (mut slots, mut host_flops, mut host_bytes) = (0u64, 0u64, 0u64);
        let (mut grad_flops, mut grad_bytes) = (0u64, 0u64);
        if let Update::Dense { dw, .. } = update {
            assert_eq!(dw.len(), wiring.weight_count(), "update: dw length");
        }
        let bias = update.drives_bias();
        for (t, tile) in ly.tiles.iter_mut().enumerate() {
            let seed = tile_seed(seed, t);
            let (r0, rows) = (tile.row0, tile.rows);
            // This tile's share of the request: its block of a dense ΔW, or its rows of
            // the errors and its inputs of an outer product.
            let update = match update {
                Update::Dense {
                    dw,
                    db,
                    scale,
                    decay,
                } => Update::Dense {
                    dw: &dw[wiring.block(t)],
                    db: &db[r0..r0 + rows],
                    scale,
                    decay,
                },
                Update::Outer { x, d, scale, decay }
                | Update::Trains {
                    x, d, scale, decay, ..
                } if !dense => {
                    let trains = matches!(update, Update::Trains { .. });
                    if let Some(cols) = &tile.cols {
                        gather_rows(x, cols, &mut tile.gin);
                    }
                    ensure_shape(&mut tile.dg, rows, d.ncols());
                    tile.dg.copy_from(&d.rows(r0, rows));
                    let x = if tile.cols.is_some() { &tile.gin } else { x };
                    let d = &tile.dg;
                    if trains {
                        Update::Trains {
                            x,
                            d,
                            scale,
                            decay,
                            bias,
                        }
                    } else {
                        Update::Outer { x, d, scale, decay }
                    }
                }
                other => other,
            };
            let xb = &mut tile.xb;
            match (phys.mode, update) {
                (
                    UpdateMode::Ideal,
                    Update::Dense {
                        dw,
                        db,
                        scale,
                        decay,
                    },
                ) => {
                    update::ideal(
                        xb,
                        phys,
                        IdealUpdate::Dense {
                            dw,
                            db,
                            scale,
                            decay,
                        },
                    );
                }
                (
                    UpdateMode::Ideal,
                    Update::Outer { x, d, scale, decay }
                    | Update::Trains {
                        x, d, scale, decay, ..
                    },
                ) => {
                    tile.db.resize(xb.out, 0.0);
                    update::ideal(
                        xb,
                        phys,
                        IdealUpdate::Outer {
                            x,
                            d,
                            scale,
                            decay,
                            db_buf: &mut tile.db,
                            bias,
                        },
                    );
                }
                (UpdateMode::StochasticPulse, Update::Outer { x, d, scale, decay })
                | (
                    _,
                    Update::Trains {
                        x, d, scale, decay, ..
                    },
                ) => {
                    // Pulse trains: every device of the array at once, BL slots a sample;
                    // the host draws one train per line per sample. `reset-only` trains
                    // give each device at most one RESET pulse per sample (single
                    // depressions, as that mode's pulsed updates); `pulsed` and
                    // `mixed-precision` chips, which need the host's ΔW, take trains as
                    // `stochastic-pulse` does (analog-native training refuses them).
                    let (scheme, cap) = if phys.mode == UpdateMode::ResetOnly {
                        (PairScheme::Depress, 1)
                    } else {
                        (scheme, 0)
                    };
                    let (bl, b) = (u64::from(self.spec.update.bl), x.ncols() as u64);
                    slots += bl * b;
                    host_flops += (xb.inp + 1 + xb.out) as u64 * b * 2;
                    host_bytes += F32 * (xb.inp + xb.out) as u64 * b;
                    let t = update::stochastic_pulse(
                        xb,
                        phys,
                        scheme,
                        step,
                        self.spec.update.bl,
                        x,
                        d,
                        scale,
                        decay,
                        clock,
                        seed,
                        cap,
                        bias,
                        &mut tile.trains,
                    );
                    tally = update::PulseTally::merge(tally, t);
                }
                // `pulsed`, `mixed-precision`, and `stochastic-pulse` given a dense request
                // (there are no per-sample vectors to form pulse trains from).
                (
                    _,
                    Update::Dense {
                        dw,
                        db,
                        scale,
                        decay,
                    },
                ) => {
                    let req = Request {
                        dw,
                        db,
                        scale,
                        decay,
                    };
                    let t = pulsed::pulsed(xb, phys, scheme, step, &req, clock, seed, count);
                    slots += xb.out as u64 * t.max_count;
                    tally = update::PulseTally::merge(tally, t);
                    if phys.mode == UpdateMode::MixedPrecision {
                        let p = xb.pairs() as u64;
                        host_flops += 2 * p;
                        host_bytes += 2 * F32 * p;
                    }
                }
                (_, Update::Outer { x, d, scale, decay }) => {
                    ensure_shape(&mut tile.dw, xb.out, xb.inp);
                    tile.db.resize(xb.out, 0.0);
                    gemm_in(prec, 1.0, d, Op::N, x, Op::T, 0.0, &mut tile.dw);
                    row_sums(d, &mut tile.db);
                    // The host forms ΔW = d·xᵀ (2 FLOPs per pair per sample).
                    let (p, b) = (xb.pairs() as u64, x.ncols() as u64);
                    grad_flops += 2 * p * b;
                    grad_bytes += F32 * (p + (xb.inp + xb.out) as u64 * b);
                    let req = Request {
                        dw: tile.dw.as_slice(),
                        db: &tile.db,
                        scale,
                        decay,
                    };
                    let t = pulsed::pulsed(xb, phys, scheme, step, &req, clock, seed, count);
                    slots += xb.out as u64 * t.max_count;
                    tally = update::PulseTally::merge(tally, t);
                    if phys.mode == UpdateMode::MixedPrecision {
                        host_flops += 2 * p;
                        host_bytes += 2 * F32 * p;
                    }
                }
            }
            tile.gsum_dirty = true;
        }
        self.ledger.count(layer, |c| {
            c.pulses_up += tally.up;
            c.pulses_down += tally.down;
            c.reset_pulses += tally.reset;
            c.pulse_slots += slots;
            c.program_writes += tally.writes;
        });
        self.ledger.host(Purpose::Substrate, host_flops, host_bytes);
        self.ledger.host(Purpose::Gradient, grad_flops, grad_bytes);
    }
}
