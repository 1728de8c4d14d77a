//! Operation counters: what a substrate and the host around it did, per layer, so that
//! an energy model ([`crate::cost`]) can say what learning and inference cost.
//!
//! Every substrate keeps a [`Ledger`]: per layer, the chip operations its `forward`,
//! `transpose_read`, `update` and `program` calls performed (converter conversions,
//! analog multiply-accumulates, pulses, program-and-verify writes, …) and the digital
//! work of its own periphery; learners add the host's digital work (goodness,
//! normalisation, local errors and outer products, optimiser state, the softmax head,
//! a digital model's forward and backward passes) by [`Purpose`]. Counting is integer
//! arithmetic on the side: it draws no random numbers and changes no value, so results
//! are the same with counting on or off ([`Ledger::set_enabled`]).

use serde::{Deserialize, Serialize};

/// Counts of one layer (or a whole network): every field is a number of events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// D-to-A conversions (one per input line per sample driven onto an array; the bias
    /// line is a fixed reference and not converted).
    pub dac: u64,
    /// A-to-D conversions (one per output line per sample read off an array).
    pub adc: u64,
    /// Analog multiply-accumulates: one per existing device pair (weights and biases)
    /// per sample read; absent weights (local fields, masks) have no device and no MAC.
    pub analog_macs: u64,
    /// Samples read backwards through a layer (`Wᵀ·d`).
    pub transposed_reads: u64,
    /// Array read cycles (one per sample per layer read, forward or transposed; the tiles
    /// of a layer read in parallel).
    pub read_cycles: u64,
    /// Conductance-increasing (SET / potentiation) pulses, counted per device.
    pub pulses_up: u64,
    /// Conductance-decreasing (RESET / depression) pulses of the incremental modes,
    /// counted per device.
    pub pulses_down: u64,
    /// Single RESET pulses of the `reset-only` update mode, counted per device.
    pub reset_pulses: u64,
    /// Sequential pulse time slots (latency): per update, rows written one after another
    /// times the most pulses any device of a row gets; `BL` slots per sample for
    /// stochastic pulse trains (every device of an array at once).
    pub pulse_slots: u64,
    /// Devices written by program-and-verify (initial programming, deployment,
    /// refresh); each costs the energy model's iterations of pulse + verify read.
    pub program_writes: u64,
    /// Neuron (activation circuit) evaluations.
    pub neuron_evals: u64,
    /// Samples passed through a black box (one per layer input stage per sample).
    pub black_box_passes: u64,
    /// Forward sample-passes through the layer (for re-accounting; not energy itself).
    pub forward_passes: u64,
    /// DAC conversions of forward passes (a subset of `dac`).
    pub forward_dac: u64,
    /// ADC conversions of forward passes (a subset of `adc`).
    pub forward_adc: u64,
    /// Digital floating-point operations (a fused multiply-add is two).
    pub digital_flops: u64,
    /// Bytes moved to and from digital memory (SRAM) by that work.
    pub digital_bytes: u64,
}

macro_rules! fields {
    ($mac:ident) => {
        $mac!(
            dac,
            adc,
            analog_macs,
            transposed_reads,
            read_cycles,
            pulses_up,
            pulses_down,
            reset_pulses,
            pulse_slots,
            program_writes,
            neuron_evals,
            black_box_passes,
            forward_passes,
            forward_dac,
            forward_adc,
            digital_flops,
            digital_bytes
        )
    };
}

impl Counts {
    /// Field-wise sum.
    pub fn add(&mut self, o: &Counts) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        fields!(add);
    }

    /// Field-wise difference `self − o` (saturating at 0).
    pub fn minus(&self, o: &Counts) -> Counts {
        let mut r = *self;
        macro_rules! sub {
            ($($f:ident),*) => { $( r.$f = self.$f.saturating_sub(o.$f); )* };
        }
        fields!(sub);
        r
    }

    /// Every pulse of any kind, per device.
    pub fn pulses(&self) -> u64 {
        self.pulses_up + self.pulses_down + self.reset_pulses
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// What a piece of host digital work is for (the analog-native accounting leaves out
/// the purposes an analog implementation does in the array, see [`crate::cost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Digital work inside a substrate's own periphery (scaling by the DAC range and the
    /// gain, a chip's host-side ΔW of a pulsed outer-product update, mixed-precision
    /// accumulators, pulse-train generation; a digital network's matrix products).
    Substrate,
    /// Goodness of each layer's activities (and per-label sums at evaluation).
    Goodness,
    /// Length normalisation between layers (and of the input).
    Normalise,
    /// Local errors and outer products of a learning rule (FF loss gradient, backprop's
    /// output error and derivatives).
    Gradient,
    /// Optimiser state (velocity, Adam moments) and forming a dense update.
    Optimiser,
    /// The linear softmax head (training step and logits).
    Head,
    /// A digital model's forward and backward passes (offline backprop, a nominal twin).
    Model,
}

impl Purpose {
    /// Every purpose, in report order.
    pub const ALL: [Purpose; 7] = [
        Purpose::Substrate,
        Purpose::Goodness,
        Purpose::Normalise,
        Purpose::Gradient,
        Purpose::Optimiser,
        Purpose::Head,
        Purpose::Model,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Substrate => "substrate",
            Purpose::Goodness => "goodness",
            Purpose::Normalise => "normalise",
            Purpose::Gradient => "gradient",
            Purpose::Optimiser => "optimiser",
            Purpose::Head => "head",
            Purpose::Model => "model",
        }
    }
}

/// Digital work of one purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWork {
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// The counters of one substrate (or of a trainer's host): per layer, and the host's
/// digital work by purpose. Also records the converters' resolutions, bits (0: ideal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    enabled: bool,
    layers: Vec<Counts>,
    host: [HostWork; Purpose::ALL.len()],
    /// DAC resolution, bits (0: an ideal converter).
    pub dac_bits: u32,
    /// ADC resolution, bits (0: an ideal converter).
    pub adc_bits: u32,
}

impl Ledger {
    /// An empty, enabled ledger for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            enabled: true,
            layers: vec![Counts::default(); layers],
            host: [HostWork::default(); Purpose::ALL.len()],
            dac_bits: 0,
            adc_bits: 0,
        }
    }

    /// Switches counting on or off (off: every `count*` call is a no-op).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Whether counting is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds to layer `l`'s counts (no-op when counting is off).
    #[inline]
    pub fn count(&mut self, l: usize, f: impl FnOnce(&mut Counts)) {
        if self.enabled {
            if self.layers.len() <= l {
                self.layers.resize(l + 1, Counts::default());
            }
            f(&mut self.layers[l]);
        }
    }

    /// Adds host digital work of a purpose (no-op when counting is off).
    #[inline]
    pub fn host(&mut self, purpose: Purpose, flops: u64, bytes: u64) {
        if self.enabled {
            let h = &mut self.host[purpose.index()];
            h.flops += flops;
            h.bytes += bytes;
        }
    }

    /// Per-layer counts.
    pub fn layers(&self) -> &[Counts] {
        &self.layers
    }

    /// Host work of a purpose.
    pub fn host_work(&self, p: Purpose) -> HostWork {
        self.host[p.index()]
    }

    /// Every layer's counts plus all host work (in `digital_flops` / `digital_bytes`).
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in &self.layers {
            t.add(c);
        }
        for h in &self.host {
            t.digital_flops += h.flops;
            t.digital_bytes += h.bytes;
        }
        t
    }

    /// What was counted since `before` (a clone of this ledger taken earlier).
    pub fn since(&self, before: &Ledger) -> Ledger {
        let mut d = self.clone();
        for (l, c) in d.layers.iter_mut().enumerate() {
            if let Some(b) = before.layers.get(l) {
                *c = c.minus(b);
            }
        }
        for (h, b) in d.host.iter_mut().zip(&before.host) {
            h.flops = h.flops.saturating_sub(b.flops);
            h.bytes = h.bytes.saturating_sub(b.bytes);
        }
        d
    }

    /// Adds everything of `other` (layers matched by index; converter bits taken from
    /// `other` where this ledger has none).
    pub fn absorb(&mut self, other: &Ledger) {
        if self.layers.len() < other.layers.len() {
            self.layers.resize(other.layers.len(), Counts::default());
        }
        for (c, o) in self.layers.iter_mut().zip(&other.layers) {
            c.add(o);
        }
        for (h, o) in self.host.iter_mut().zip(&other.host) {
            h.flops += o.flops;
            h.bytes += o.bytes;
        }
        if self.dac_bits == 0 {
            self.dac_bits = other.dac_bits;
        }
        if self.adc_bits == 0 {
            self.adc_bits = other.adc_bits;
        }
    }

    /// Clears every count (keeps the bits and the switch).
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|c| *c = Counts::default());
        self.host = [HostWork::default(); Purpose::ALL.len()];
    }
}

/// Bytes of one f32.
pub const F32: u64 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_off_counts_nothing_and_since_subtracts() {
        let mut l = Ledger::new(2);
        l.count(1, |c| c.adc += 5);
        l.host(Purpose::Goodness, 10, 40);
        let before = l.clone();
        l.count(1, |c| c.adc += 2);
        l.host(Purpose::Goodness, 1, 4);
        let d = l.since(&before);
        assert_eq!(d.layers()[1].adc, 2);
        assert_eq!(
            d.host_work(Purpose::Goodness),
            HostWork { flops: 1, bytes: 4 }
        );
        assert_eq!(d.total().digital_flops, 1);
        l.set_enabled(false);
        l.count(0, |c| c.dac += 9);
        l.host(Purpose::Head, 3, 3);
        assert_eq!(l.layers()[0].dac, 0);
        assert_eq!(l.host_work(Purpose::Head), HostWork::default());
        let mut a = Ledger::new(1);
        a.absorb(&l);
        assert_eq!(a.layers().len(), 2);
        assert_eq!(a.total().adc, 7);
    }
}
