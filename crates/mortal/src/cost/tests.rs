//! The counters against hand-computed counts, and counting changing nothing.

use crate::learn::backprop::analog::AnalogLearner;
use crate::learn::ff::FfLearner;
use crate::learn::{BpConfig, FfConfig, OptimizerConfig};
use crate::linalg::Mat;
use crate::rng::stream;
use crate::substrate::device::{HardwareSpec, UpdateMode, presets};
use crate::substrate::{Activation, Chip, Connectivity, Counts, Substrate, Topology};

/// A noiseless chip whose updates are single RESET pulses, with a learning rate so large
/// that every pair with a non-zero request gets its one pulse.
fn reset_only_spec() -> HardwareSpec {
    let mut s = presets::ideal();
    s.update.mode = UpdateMode::ResetOnly;
    s
}

/// Devices whose conductance changed between two snapshots of a chip.
fn changed(before: &Chip, after: &Chip, layers: usize) -> u64 {
    (0..layers)
        .map(|l| {
            let (bp, bm) = before.conductances(l);
            let (ap, am) = after.conductances(l);
            bp.iter()
                .zip(&ap)
                .chain(bm.iter().zip(&am))
                .filter(|(x, y)| x != y)
                .count() as u64
        })
        .sum()
}

fn images(cols: usize) -> Mat {
    Mat::from_fn(784, cols, |i, j| {
        ((i * 7 + j * 13) % 17) as f32 / 16.0 + 0.05
    })
}

#[test]
fn one_ff_step_counts_what_a_hand_count_gives() {
    // 784 → 5 → 4, batch b = 2: positive + neutral pass (4 columns), negative pass (2).
    let topo = Topology::uniform(vec![784, 5, 4], Activation::Relu).unwrap();
    let mut chip = Chip::new(&reset_only_spec(), topo.clone(), 1, 2).unwrap();
    // Initial write-and-verify: every device of every pair (weights and biases).
    let init = chip.ledger().total();
    assert_eq!(init.program_writes, 2 * ((784 * 5 + 5) + (5 * 4 + 4)));
    let cfg = FfConfig {
        optimizer: OptimizerConfig::Sgd {
            lr: 1e3,
            momentum: 0.0,
            weight_decay: 0.0,
        },
        eval_from: 1,
        ..Default::default()
    };
    let mut ff = FfLearner::new(cfg, topo).unwrap();
    let before = chip.clone();
    let start = chip.ledger().clone();
    ff.train_batch(
        &mut chip,
        &images(2),
        &[3, 7],
        1.0,
        &mut stream(3, "neg"),
        &mut stream(4, "noise"),
    )
    .unwrap();
    let d = chip.ledger().since(&start);
    let (l0, l1) = (d.layers()[0], d.layers()[1]);
    // Layer 0: 6 sample-passes × 784 input lines through the DAC, × 5 outputs through the
    // ADC and the neurons, × (784·5 weights + 5 biases) MACs; layer 1 alike with 5 → 4.
    let want0 = Counts {
        dac: 6 * 784,
        adc: 6 * 5,
        analog_macs: 6 * (784 * 5 + 5),
        read_cycles: 6,
        neuron_evals: 6 * 5,
        forward_passes: 6,
        forward_dac: 6 * 784,
        forward_adc: 6 * 5,
        ..l0
    };
    assert_eq!(l0, want0);
    assert_eq!(
        (l1.dac, l1.adc, l1.analog_macs, l1.read_cycles),
        (6 * 5, 6 * 4, 6 * (5 * 4 + 4), 6)
    );
    assert_eq!(l0.transposed_reads + l1.transposed_reads, 0);
    // Reset-only: one pulse per pair with a request, on one device each, none up or down;
    // every such device (and only those) changed.
    let t = d.total();
    assert_eq!((t.pulses_up, t.pulses_down), (0, 0));
    assert!(t.reset_pulses > 0);
    assert_eq!(t.reset_pulses, changed(&before, &chip, 2));
    assert!(t.reset_pulses <= (784 * 5 + 5) + (5 * 4 + 4));
    // Plain SGD is an outer-product request over the b positive and b negative columns
    // (the neutral pass does not learn): with `reset-only` the chip forms ΔW on the host,
    // 2 FLOPs per pair per column; plus the local errors, 2 FLOPs per unit and 10 per
    // sample, for positives and negatives of both layers.
    let g = d.host_work(crate::substrate::Purpose::Gradient).flops;
    let local = 2 * ((2 * 5 * 2 + 10 * 2) + (2 * 4 * 2 + 10 * 2));
    assert_eq!(g, 2 * 4 * ((784 * 5 + 5) + (5 * 4 + 4)) + local);
}

#[test]
fn one_bp_analog_step_counts_what_a_hand_count_gives() {
    // 784 → 5 (sigmoid: every derivative non-zero) → 10 logits, batch 3.
    let topo = Topology::classifier(vec![784, 5, 10], Activation::Sigmoid).unwrap();
    let mut chip = Chip::new(&reset_only_spec(), topo.clone(), 1, 2).unwrap();
    let cfg = BpConfig {
        hidden: Activation::Sigmoid,
        optimizer: OptimizerConfig::Sgd {
            lr: 1e4,
            momentum: 0.0,
            weight_decay: 0.0,
        },
        ..Default::default()
    };
    let mut bp = AnalogLearner::new(cfg, topo).unwrap();
    let before = chip.clone();
    let start = chip.ledger().clone();
    bp.train_batch(&mut chip, &images(3), &[1, 4, 9], 1.0, &mut stream(5, "n"))
        .unwrap();
    let d = chip.ledger().since(&start);
    let (l0, l1) = (d.layers()[0], d.layers()[1]);
    // Forward: 3 samples through each layer. Backward: layer 1 read transposed (10 error
    // lines in through the DAC, 5 out through the ADC, 50 weight MACs a sample); layer 0
    // needs no errors below it.
    assert_eq!(
        (
            l0.dac,
            l0.adc,
            l0.analog_macs,
            l0.neuron_evals,
            l0.transposed_reads
        ),
        (3 * 784, 3 * 5, 3 * (784 * 5 + 5), 3 * 5, 0)
    );
    assert_eq!(
        (
            l1.dac,
            l1.adc,
            l1.analog_macs,
            l1.neuron_evals,
            l1.transposed_reads
        ),
        (
            3 * 5 + 3 * 10,
            3 * 10 + 3 * 5,
            3 * (5 * 10 + 10) + 3 * 50,
            0,
            3
        )
    );
    // Every request is non-zero (sigmoid hidden units, softmax errors): one RESET pulse
    // on one device of every pair.
    assert_eq!(l0.reset_pulses, 784 * 5 + 5);
    assert_eq!(l1.reset_pulses, 5 * 10 + 10);
    assert_eq!(
        l0.reset_pulses + l1.reset_pulses,
        changed(&before, &chip, 2)
    );
}

#[test]
fn masked_projections_count_only_existing_devices() {
    let topo = Topology::uniform(vec![6, 3], Activation::Relu)
        .unwrap()
        .with_connectivity(vec![Connectivity::Mask {
            inputs: vec![vec![0, 1], vec![2], vec![3, 4, 5]],
        }])
        .unwrap();
    let mut chip = Chip::new(&presets::ideal(), topo, 1, 2).unwrap();
    // 6 weights + 3 biases exist: 9 pairs, 18 devices (the ideal chip has no stuck ones).
    assert_eq!(chip.ledger().total().program_writes, 18);
    let start = chip.ledger().clone();
    let x = Mat::from_element(6, 2, 0.5);
    let (mut r, mut y) = (Mat::zeros(0, 0), Mat::zeros(0, 0));
    chip.forward(0, &x, &mut r, &mut y, &mut stream(1, "f"));
    let c = chip.ledger().since(&start).total();
    assert_eq!((c.analog_macs, c.dac, c.adc), (2 * 9, 2 * 6, 2 * 3));
}

#[test]
fn counting_changes_no_result() {
    use crate::data::synthetic::{SyntheticConfig, splits};
    use crate::progress::Reporter;
    use crate::train::{ChipConfig, RunOptions, TrainConfig, run};
    let data = splits(&SyntheticConfig {
        seed: 3,
        train: 120,
        valid: 40,
        test: 40,
    })
    .unwrap();
    let cfg = TrainConfig {
        dataset: crate::data::DatasetKind::Synthetic,
        layers: crate::train::layers::dense(&[24, 24]),
        epochs: 2,
        batch: 20,
        chip: Some(ChipConfig::from_source("harsh", 2, 1.0).unwrap()),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let go = |count: bool, sub: &str| {
        let out = dir.path().join(sub);
        let r = run(
            &cfg,
            &data,
            &RunOptions {
                out: Some(out.clone()),
                reporter: Reporter::quiet(),
                checkpoint: true,
                count,
            },
        )
        .unwrap();
        let tensors = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
        (r, tensors)
    };
    let (on, t_on) = go(true, "on");
    let (off, t_off) = go(false, "off");
    assert!(on.cost.is_some() && off.cost.is_none());
    assert_eq!(t_on, t_off, "checkpoint tensors");
    assert_eq!(on.test_error, off.test_error);
    assert_eq!(on.test_error_goodness, off.test_error_goodness);
    assert_eq!(on.valid_error, off.valid_error);
    let cost = on.cost.unwrap();
    assert!(cost.train.per_sample.energy_j > 0.0 && cost.inference.per_image.energy_j > 0.0);
    let native = cost.analog_native.unwrap();
    assert!(native.train_per_sample.adc < cost.train.per_sample.adc);
}
