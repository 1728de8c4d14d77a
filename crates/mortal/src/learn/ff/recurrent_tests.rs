//! Tests of recurrent FF ([`super`]).

use super::*;
use crate::rng::stream;
use crate::substrate::DigitalNet;
use crate::substrate::device::{Chip, presets};

fn tiny() -> (Topology, RecurrentFf) {
    // image (1 pixel) → layer 0 (1 unit) ⇄ layer 1 (1 unit) ⇄ label (2 units).
    let t = recurrent_topology(
        1,
        &[1, 1],
        2,
        vec![Connectivity::Dense; 2],
        vec![Connectivity::Dense; 2],
    )
    .unwrap();
    let cfg = FfConfig {
        eval_from: 1,
        ..FfConfig::default()
    };
    let geometry = Geometry { h: 1, w: 1, c: 1 };
    let l = RecurrentFf::new(cfg, RecurrentConfig::default(), t.clone(), geometry).unwrap();
    (t, l)
}

/// Runs the tiny net for 2 iterations with label 0 and returns the states after each
/// layer update, as (iteration, layer, state).
fn two_steps(schedule: IterationSchedule) -> Vec<(usize, usize, f32)> {
    let (t, mut r) = tiny();
    r.rc.iterations = 2;
    r.rc.schedule = schedule;
    let mut sub = DigitalNet::new(t, 1);
    let mut noise = stream(1, "noise");
    // Layer 0 lines [image; layer 1]: w = [−1, 2], b = 0.
    // Layer 1 lines [layer 0; label 0; label 1]: w = [1, 0.5, −0.5], b = 0.2.
    sub.program(
        0,
        &Mat::from_row_slice(1, 2, &[-1.0, 2.0]),
        &[0.0],
        &mut noise,
    );
    sub.program(
        1,
        &Mat::from_row_slice(1, 3, &[1.0, 0.5, -0.5]),
        &[0.2],
        &mut noise,
    );
    r.shape(1);
    normalize_rms(&Mat::from_element(1, 1, 1.0), &mut r.buf.image);
    r.bottom_up(&mut sub, &mut noise);
    r.write_labels(0, &[0]);
    let mut seen = vec![(0, 0, r.buf.state[0][0]), (0, 1, r.buf.state[1][0])];
    r.iterate(&mut sub, &mut noise, &mut |it, l, b: &Buffers| {
        seen.push((it, l, b.state[l][0]));
        Ok(())
    })
    .unwrap();
    seen
}

fn assert_states(got: &[(usize, usize, f32)], want: &[(usize, usize, f32)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{got:?}");
        assert!((g.2 - w.2).abs() < 1e-5, "got {got:?}, want {want:?}");
    }
}

#[test]
fn damping_and_synchronous_schedule_by_hand() {
    let r2 = std::f32::consts::SQRT_2;
    // Bottom-up: s0 = relu(−1·1) = 0 (normalised 0); s1 = relu(1·0 + 0.2) = 0.2 (→ 1).
    // Label 0 on the label layer, normalised: [√2, 0].
    // Iteration 1 (all from the bottom-up states):
    //   c0 = relu(−1 + 2·1) = 1            s0 = 0.3·0 + 0.7·1 = 0.7
    //   c1 = relu(1·0 + 0.5·√2 + 0.2)      s1 = 0.3·0.2 + 0.7·c1
    let c1 = 0.5 * r2 + 0.2;
    let s1 = 0.3 * 0.2 + 0.7 * c1;
    // Iteration 2 (normalised states now 1 and 1):
    //   c0 = relu(−1 + 2) = 1              s0 = 0.3·0.7 + 0.7 = 0.91
    //   c1' = relu(1 + 0.5·√2 + 0.2)       s1' = 0.3·s1 + 0.7·c1'
    let s1b = 0.3 * s1 + 0.7 * (1.0 + 0.5 * r2 + 0.2);
    assert_states(
        &two_steps(IterationSchedule::Synchronous),
        &[
            (0, 0, 0.0),
            (0, 1, 0.2),
            (1, 0, 0.7),
            (1, 1, s1),
            (2, 0, 0.91),
            (2, 1, s1b),
        ],
    );
}

#[test]
fn alternating_schedule_uses_the_new_even_states() {
    let r2 = std::f32::consts::SQRT_2;
    // Iteration 1: layer 0 first (s0 = 0.7, normalised 1), then layer 1 already sees it:
    //   c1 = relu(1·1 + 0.5·√2 + 0.2), s1 = 0.3·0.2 + 0.7·c1.
    let c1 = 1.0 + 0.5 * r2 + 0.2;
    let s1 = 0.3 * 0.2 + 0.7 * c1;
    let s1b = 0.3 * s1 + 0.7 * c1;
    assert_states(
        &two_steps(IterationSchedule::Alternating),
        &[
            (0, 0, 0.0),
            (0, 1, 0.2),
            (1, 0, 0.7),
            (1, 1, s1),
            (2, 0, 0.91),
            (2, 1, s1b),
        ],
    );
}

fn synthetic_batch(n: usize) -> (Mat, Vec<usize>, Dataset) {
    let data = crate::data::synthetic::generate(n, 4);
    let idx: Vec<usize> = (0..n).collect();
    let mut images = Mat::zeros(crate::data::PIXELS, n);
    data.gather(&idx, &mut images);
    (images, data.gather_labels(&idx), data)
}

fn mnist_topology(hidden: &[usize]) -> Topology {
    recurrent_topology(
        784,
        hidden,
        10,
        vec![Connectivity::Dense; hidden.len()],
        vec![Connectivity::Dense; hidden.len()],
    )
    .unwrap()
}

#[test]
fn ideal_chip_equals_the_digital_recurrent_net() {
    let t = mnist_topology(&[24, 16, 12]);
    let (images, labels, data) = synthetic_batch(30);
    let geometry = Geometry { h: 28, w: 28, c: 1 };
    let mut fd = DigitalNet::new(t.clone(), 2);
    let mut fc = Chip::new(&presets::ideal(), t.clone(), 3, 2).unwrap();
    let mut evals = Vec::new();
    for (sub, seed) in [(&mut fd as &mut dyn Substrate, 0u64), (&mut fc, 1)] {
        let mut r = RecurrentFf::new(
            FfConfig::default(),
            RecurrentConfig {
                iterations: 4,
                eval_window: [2, 3],
                ..RecurrentConfig::default()
            },
            t.clone(),
            geometry,
        )
        .unwrap();
        for _ in 0..3 {
            r.train_batch(
                sub,
                &images,
                &labels,
                1.0,
                &mut stream(7, "neg"),
                &mut stream(seed, "noise"),
            )
            .unwrap();
        }
        evals.push(r.evaluate(sub, &data, &mut stream(seed, "eval")).unwrap());
    }
    for l in 0..3 {
        let (wd, bd) = fd.layer(l);
        let (wc, bc) = fc.effective_layer(l);
        let rms = (wd.iter().map(|v| v * v).sum::<f32>() / wd.len() as f32).sqrt();
        let e = (&wc - &wd).abs().max() / rms;
        assert!(e < 1e-5, "layer {l}: weights differ by {e} (relative)");
        for (x, y) in bc.iter().zip(bd) {
            assert!((x - y).abs() < 1e-5, "layer {l} biases");
        }
    }
    assert_eq!(evals[0], evals[1]);
}

#[test]
fn evaluation_never_sees_the_true_label() {
    // Same images, labels permuted: every score is identical, so the prediction
    // cannot depend on the labels; only the error counts change.
    let t = mnist_topology(&[20, 10]);
    let (images, labels, data) = synthetic_batch(20);
    let geometry = Geometry { h: 28, w: 28, c: 1 };
    let mut sub = DigitalNet::new(t.clone(), 5);
    let mut r =
        RecurrentFf::new(FfConfig::default(), RecurrentConfig::default(), t, geometry).unwrap();
    r.train_batch(
        &mut sub,
        &images,
        &labels,
        1.0,
        &mut stream(1, "neg"),
        &mut stream(1, "noise"),
    )
    .unwrap();
    let a = r.scores(&mut sub, &images, &mut stream(2, "eval")).unwrap();
    let mut shuffled = data.labels().to_vec();
    shuffled.rotate_left(3);
    let pixels: Vec<u8> = (0..data.len())
        .flat_map(|i| data.image(i).to_vec())
        .collect();
    let other = Dataset::new(pixels, shuffled).unwrap();
    let e1 = r.evaluate(&mut sub, &data, &mut stream(2, "eval")).unwrap();
    let e2 = r
        .evaluate(&mut sub, &other, &mut stream(2, "eval"))
        .unwrap();
    // The predictions of the label-free scores explain both error rates.
    let window: Mat = a.0[2..5].iter().fold(Mat::zeros(10, 20), |acc, m| acc + m);
    let pred: Vec<usize> = (0..20).map(|j| window.column(j).imax()).collect();
    let rate = |d: &Dataset| (0..20).filter(|&j| pred[j] != d.label(j)).count() as f64 / 20.0;
    assert_eq!(e1.error_goodness, rate(&data));
    assert_eq!(e2.error_goodness, rate(&other));
    assert_eq!(e1.error_by_iteration.len(), 8);
}

#[test]
fn recurrent_ff_learns_the_synthetic_set() {
    let t = mnist_topology(&[60, 60]);
    let (images, labels, data) = synthetic_batch(400);
    let geometry = Geometry { h: 28, w: 28, c: 1 };
    let mut sub = DigitalNet::new(t.clone(), 1);
    let cfg = FfConfig {
        optimizer: crate::learn::OptimizerConfig::adam(3e-3, 0.0),
        ..FfConfig::default()
    };
    let mut r = RecurrentFf::new(cfg, RecurrentConfig::default(), t, geometry).unwrap();
    let before = r.evaluate(&mut sub, &data, &mut stream(3, "eval")).unwrap();
    let (mut neg, mut noise) = (stream(1, "neg"), stream(1, "noise"));
    for _ in 0..30 {
        for c in (0..400).step_by(50) {
            let x = images.columns(c, 50).into_owned();
            r.train_batch(&mut sub, &x, &labels[c..c + 50], 1.0, &mut neg, &mut noise)
                .unwrap();
        }
    }
    let after = r.evaluate(&mut sub, &data, &mut stream(3, "eval")).unwrap();
    assert!(
        after.error_goodness < 0.6 * before.error_goodness,
        "goodness error {} → {}",
        before.error_goodness,
        after.error_goodness
    );
}

#[test]
fn bad_settings_name_their_key() {
    let cases = [
        (
            RecurrentConfig {
                iterations: 0,
                ..Default::default()
            },
            "recurrent.iterations",
        ),
        (
            RecurrentConfig {
                damping: 1.0,
                ..Default::default()
            },
            "recurrent.damping",
        ),
        (
            RecurrentConfig {
                damping: -0.1,
                ..Default::default()
            },
            "recurrent.damping",
        ),
        (
            RecurrentConfig {
                eval_window: [4, 9],
                ..Default::default()
            },
            "recurrent.eval_window",
        ),
        (
            RecurrentConfig {
                eval_window: [0, 2],
                ..Default::default()
            },
            "recurrent.eval_window",
        ),
    ];
    for (c, key) in cases {
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
    assert_eq!(RecurrentConfig::parse_window("3-5").unwrap(), [3, 5]);
    assert!(RecurrentConfig::parse_window("x").is_err());
}
