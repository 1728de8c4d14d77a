"""Your own learning rule on a mortal chip, from Python.

A few lines of Forward-Forward written in numpy (label in the first ten pixels, goodness
= sum of squared activities, logistic loss around a threshold, length normalisation
between layers, plain SGD as rank-1 updates) trained on a `reram` chip, next to the
built-in FF learner on the same chip family and data. Only the substrate interface is
used: forward (what the chip measured), update_outer (the chip applies it with its own
pulse physics).

    pip install .            # from the repository root (builds the Rust crate)
    python examples/own_rule.py
"""

import time

import numpy as np

import mortal

LAYERS = [784, 256, 256]
EPOCHS, BATCH, LR = 10, 100, 0.003
TRAIN, EVAL = 5000, 1000

data = mortal.load_data("synthetic", train_limit=TRAIN, eval_limit=EVAL)
(x_train, y_train), (x_test, y_test) = data["train"], data["test"]
rng = np.random.default_rng(1)


def with_label(x, labels):
    """The image with a one-hot label in its first ten pixels."""
    x = x.copy()
    x[:, :10] = 0.0
    x[np.arange(len(x)), labels] = 1.0
    return x


def sigmoid(z):
    """1 / (1 + exp(-z)) without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def normalise(a):
    """Length (RMS) normalisation: only the direction reaches the next layer."""
    return a / (np.sqrt((a * a).mean(axis=1, keepdims=True)) + 1e-6)


def ff_step(chip, x_pos, x_neg):
    """One FF step: each layer learns from its own goodness only."""
    h_pos, h_neg = normalise(x_pos), normalise(x_neg)
    for layer in range(len(LAYERS) - 1):
        units = LAYERS[layer + 1]
        r_pos, a_pos = chip.forward(layer, h_pos)
        r_neg, a_neg = chip.forward(layer, h_neg)
        g_pos, g_neg = (a_pos**2).sum(1), (a_neg**2).sum(1)
        # d(loss)/d(activity) of log(1 + exp(-(g - θ))) for positives and
        # log(1 + exp(g - θ)) for negatives, θ = number of units.
        c_pos = -sigmoid(units - g_pos)
        c_neg = sigmoid(g_neg - units)
        d = np.vstack([2 * c_pos[:, None] * a_pos, 2 * c_neg[:, None] * a_neg])
        x = np.vstack([r_pos, r_neg])
        chip.update_outer(layer, x, d, scale=-LR / len(x))
        h_pos, h_neg = normalise(a_pos), normalise(a_neg)


def predict(chip, x):
    """The label whose image makes the most goodness in the layers above the first."""
    score = np.zeros((len(x), 10))
    for label in range(10):
        h = normalise(with_label(x, np.full(len(x), label)))
        for layer in range(len(LAYERS) - 1):
            _, a = chip.forward(layer, h)
            if layer >= 1:
                score[:, label] += (a**2).sum(1)
            h = normalise(a)
    return score.argmax(1)


chip = mortal.Chip.preset("reram", layers=LAYERS, seed=7)
t0 = time.time()
for epoch in range(EPOCHS):
    order = rng.permutation(len(x_train))
    for i in range(0, len(order), BATCH):
        idx = order[i : i + BATCH]
        y = y_train[idx]
        wrong = (y + rng.integers(1, 10, len(y))) % 10
        ff_step(chip, with_label(x_train[idx], y), with_label(x_train[idx], wrong))
own_error = float((predict(chip, x_test) != y_test).mean())
own_seconds = time.time() - t0

builtin = mortal.train(algo="ff", dataset="synthetic", layers=LAYERS[1:], epochs=EPOCHS,
                       train_limit=TRAIN, eval_limit=EVAL, chip="reram", chip_seed=7,
                       out="runs/own-rule-builtin", force=True)
print(f"own numpy FF rule on reram #7: test error {100 * own_error:.2f} % by goodness "
      f"({own_seconds:.1f} s)")
print(f"built-in FF on reram #7:       test error {100 * builtin['test_error_goodness']:.2f} % "
      f"by goodness, {100 * builtin['test_error_softmax']:.2f} % by its softmax head "
      f"({builtin['train_seconds']:.1f} s training)")
counts = chip.counters()["total"]
print(f"the own rule's chip operations: {counts['pulses_up'] + counts['pulses_down']:,} pulses, "
      f"{counts['adc']:,} ADC conversions")
