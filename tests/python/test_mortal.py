"""The Python package end to end: substrates from numpy, runs, results, errors."""

import csv
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import mortal

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_binary():
    """The `mortal` binary built from the same source, if there is one."""
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "mortal"
        if p.is_file():
            return p
    return None


def test_forward_shapes_dtypes_and_the_ideal_chip_computes_numpy():
    chip = mortal.Chip.preset("ideal", layers=[6, 4, 3], seed=2)
    assert chip.layers == [6, 4, 3]
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    chip.program(0, w, b)
    x = rng.random((5, 6)).astype(np.float32)
    received, activity = chip.forward(0, x)
    assert received.shape == (5, 6) and activity.shape == (5, 4)
    assert received.dtype == np.float32 and activity.dtype == np.float32
    np.testing.assert_allclose(activity, np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-5)
    # A Python-written SGD step (outer-product form) is applied exactly on the ideal chip.
    d = rng.standard_normal((5, 4)).astype(np.float32)
    chip.update_outer(0, x, d, scale=-0.1)
    w2, b2 = w - 0.1 * d.T @ x, b - 0.1 * d.sum(0)
    _, after = chip.forward(0, x)
    np.testing.assert_allclose(after, np.maximum(x @ w2.T + b2, 0), rtol=1e-4, atol=1e-4)
    # The dense form, and W^T d.
    chip.update(0, np.ones((4, 6), np.float32), np.zeros(4, np.float32), scale=0.01)
    back = chip.transpose_read(0, d)
    np.testing.assert_allclose(back, d @ (w2 + 0.01), rtol=1e-4, atol=1e-4)


def test_the_ideal_chip_equals_the_digital_network():
    rng = np.random.default_rng(1)
    x = rng.random((8, 10)).astype(np.float32)
    d = rng.standard_normal((8, 5)).astype(np.float32)
    outs = []
    for sub in (mortal.Chip.preset("ideal", layers=[10, 5], seed=3, init_seed=4),
                mortal.Digital(layers=[10, 5], seed=4)):
        sub.update_outer(0, x, d, scale=-0.05)
        outs.append(sub.forward(0, x)[1])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def test_a_real_chip_counts_its_operations():
    chip = mortal.Chip.preset("reram", layers=[784, 32, 10], seed=7)
    x = np.random.default_rng(2).random((4, 784)).astype(np.float32)
    chip.forward(0, x)
    c = chip.counters()
    assert c["layers"][0]["dac"] == 4 * 784 and c["layers"][0]["adc"] == 4 * 32
    assert c["dac_bits"] == 7 and c["adc_bits"] == 9
    # Initial write-and-verify of every device that is not stuck (reram has a few).
    devices = 2 * (784 * 32 + 32 + 32 * 10 + 10)
    assert 0.99 * devices <= c["total"]["program_writes"] <= devices


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random((3, 12)).astype(np.float32)
    for make in (lambda: mortal.Digital(layers=[12, 6], seed=5),
                 lambda: mortal.Chip.preset("ideal", layers=[12, 6], seed=5)):
        sub = make()
        sub.update_outer(0, x, rng.standard_normal((3, 6)).astype(np.float32), scale=-0.1)
        sub.save(tmp_path / "s")
        again = mortal.Chip.load(tmp_path / "s")
        np.testing.assert_array_equal(sub.forward(0, x)[1], again.forward(0, x)[1])
        shutil.rmtree(tmp_path / "s")
    chip = mortal.Chip.preset("reram", layers=[12, 6], seed=9)
    chip.save(tmp_path / "c")
    assert "chip reram #9" in repr(mortal.Chip.load(tmp_path / "c"))


def test_bad_input_raises_with_one_line():
    chip = mortal.Chip.preset("ideal", layers=[4, 2])
    with pytest.raises(mortal.ParamError, match="layer"):
        chip.forward(3, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"needs \[batch, 4\]"):
        chip.forward(0, np.zeros((1, 5), np.float32))
    with pytest.raises(mortal.ParamError, match="memristor"):
        mortal.Chip.preset("memristor", layers=[4, 2])
    with pytest.raises(mortal.ParamError, match="decay"):
        chip.update(0, np.zeros((2, 4)), np.zeros(2), decay=2.0)
    with pytest.raises(mortal.ParamError, match="epochs"):
        mortal.train(dataset="synthetic", epochs="many")
    with pytest.raises(mortal.MortalError):
        mortal.load_results("/nonexistent/dir")


def test_train_equals_the_cli_for_the_same_seed(tmp_path):
    opts = dict(algo="ff", dataset="synthetic", layers=[32, 32], epochs=2,
                train_limit=600, eval_limit=200, seed=3, chip="reram", chip_seed=2)
    r = mortal.train(out=tmp_path / "py", **opts)
    assert 0.0 <= r["test_error"] <= 1.0 and r["seed"] == 3
    assert r["cost"]["train"]["per_sample"]["energy_j"] > 0
    binary = cli_binary()
    if binary is None:
        pytest.skip("no target/*/mortal binary to compare with (run cargo build)")
    args = [str(binary), "train", "-q", "--out", str(tmp_path / "cli")]
    for k, v in opts.items():
        args += ["--" + k.replace("_", "-"), ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    subprocess.run(args, check=True, capture_output=True)
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    for key in ("test_error", "test_error_goodness", "test_error_softmax", "valid_error", "seeds"):
        assert r[key] == cli[key], key

    def rows(d):
        with open(d / "epochs.csv") as f:
            return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]

    assert rows(tmp_path / "py") == rows(tmp_path / "cli")


def test_scenarios_and_results_load_into_rows(tmp_path):
    out = mortal.run_scenario(ROOT / "scenarios" / "quickstart.toml", out=tmp_path / "q", smoke=True)
    rows = mortal.load_results(out)
    assert rows and {"run_id", "algo", "test_error"} <= set(rows[0])
    assert all(isinstance(r["test_error"], float) for r in rows if r["status"] == "ok")


def test_load_data_gives_the_splits():
    data = mortal.load_data("synthetic", train_limit=50, eval_limit=20)
    x, y = data["train"]
    assert x.shape == (50, 784) and x.dtype == np.float32 and y.shape == (50,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert data["test"][0].shape == (20, 784)


def python_ff_step(chip, images, labels, negatives, lr):
    """Forward-Forward in numpy, written against the substrate interface only: label in
    the first ten pixels, RMS normalisation, goodness = sum of squares, logistic loss
    around the number of units, local errors coeff * activity, plain SGD as rank-1
    updates over the positive and negative passes."""

    def with_label(x, ys, value=1.0):
        x = x.copy()
        x[:, :10] = 0.0
        x[np.arange(len(x)), ys] = value
        return x

    def rms(a):
        return a / np.sqrt((a * a).mean(axis=1, keepdims=True), dtype=np.float32)

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    layers = len(chip.layers) - 1
    updates = []
    h_pos, h_neg = rms(with_label(images, labels)), rms(with_label(images, negatives))
    for layer in range(layers):
        units = chip.layers[layer + 1]
        r_pos, a_pos = chip.forward(layer, h_pos)
        r_neg, a_neg = chip.forward(layer, h_neg)
        g_pos, g_neg = (a_pos * a_pos).sum(1), (a_neg * a_neg).sum(1)
        d_pos = (-(1.0 - sigmoid(g_pos - units)))[:, None] * a_pos
        d_neg = sigmoid(g_neg - units)[:, None] * a_neg
        updates.append((np.vstack([r_pos, r_neg]), np.vstack([d_pos, d_neg]).astype(np.float32)))
        h_pos, h_neg = rms(a_pos), rms(a_neg)
    for layer, (x, d) in enumerate(updates):
        chip.update_outer(layer, x, d, scale=-lr / len(images))


def test_a_python_written_ff_step_equals_the_built_in_step():
    layers = [784, 32, 16]
    data = mortal.load_data("synthetic", train_limit=8, eval_limit=8)
    x, y = data["train"]
    builtin = mortal.Chip.preset("ideal", layers=layers, seed=4)
    mine = mortal.Chip.preset("ideal", layers=layers, seed=4)
    probe = data["test"][0]
    before = builtin.forward(0, probe)[1]
    negatives = builtin.ff_step_builtin(x, y, lr=0.05, seed=3)
    assert len(negatives) == len(y) and all(n != t for n, t in zip(negatives, y))
    python_ff_step(mine, x, y, np.array(negatives), lr=0.05)
    for layer in range(2):
        h = probe if layer == 0 else mine.forward(0, probe)[1]
        a = builtin.forward(layer, h)[1]
        b = mine.forward(layer, h)[1]
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(before, builtin.forward(0, probe)[1]), "the step changed nothing"


def test_progress_reaches_a_python_callback(tmp_path):
    lines = []
    mortal.train(dataset="synthetic", layers=[16], epochs=2, train_limit=200, eval_limit=100,
                 out=tmp_path / "p", progress=lines.append)
    assert any("epoch   1/2" in l for l in lines) and any("epoch   2/2" in l for l in lines), lines
    quiet = []
    mortal.train(dataset="synthetic", layers=[16], epochs=1, train_limit=200, eval_limit=100,
                 out=tmp_path / "q", progress=quiet.append, quiet=True)
    assert quiet == []
    scenario = []
    mortal.run_scenario(ROOT / "scenarios" / "quickstart.toml", out=tmp_path / "s", smoke=True,
                        progress=scenario.append)
    assert any("epoch" in l for l in scenario), scenario


def test_the_notebook_text_bar_advances_by_epoch():
    import io
    out = io.StringIO()
    bar = mortal._TextBar(out)
    bar("ff on synthetic: starting")
    bar("ff epoch   1/2: loss 1.0  valid err 50.00%")
    bar("ff epoch   2/2: loss 0.5  valid err 20.00%")
    text = out.getvalue()
    assert "[##########..........] 1/2" in text and "[####################] 2/2" in text
    assert text.count("\r") == 2 and text.endswith("\n")


def test_train_takes_the_precision_and_records_it(tmp_path):
    opts = dict(dataset="synthetic", layers=[32, 32], epochs=1, train_limit=400,
                eval_limit=200, seed=4, quiet=True)
    f = mortal.train(out=tmp_path / "f32", **opts)
    b = mortal.train(out=tmp_path / "bf16", precision="bf16", **opts)
    assert "precision" not in f["config"]
    assert b["config"]["precision"] == "bf16"
    with pytest.raises(mortal.ParamError, match="precision"):
        mortal.train(out=tmp_path / "bad", precision="fp8", **opts)


def test_distill_returns_a_dict_for_one_student_and_rows_for_a_fleet(tmp_path):
    mortal.train(algo="ff", dataset="synthetic", layers=[16, 16], epochs=1, train_limit=300,
                 eval_limit=100, chip="harsh", chip_seed=1, out=tmp_path / "t", quiet=True)
    one = mortal.distill(teacher=tmp_path / "t", student_chip="harsh", student_seed=2,
                         transfer=200, epochs=1, baselines="basic", out=tmp_path / "one",
                         quiet=True)
    assert isinstance(one, dict) and one["student_seed"] == 2 and one["init"] == "copy"
    assert 0.0 <= one["test_error"] <= 1.0
    fleet = mortal.distill(teacher=tmp_path / "t", student_chip="harsh", student_seed="2-3",
                           transfer=200, epochs=1, out=tmp_path / "fleet", quiet=True)
    assert isinstance(fleet, list) and [r["student_seed"] for r in fleet] == [2, 3]


def test_run_scenario_returns_the_directory_it_wrote(tmp_path, monkeypatch):
    # The file's name differs from the scenario's `name`: the directory follows `name`.
    other = tmp_path / "other.toml"
    other.write_text((ROOT / "scenarios" / "quickstart.toml").read_text())
    monkeypatch.chdir(tmp_path)
    out = mortal.run_scenario(other, smoke=True, quiet=True, no_plot=True)
    assert os.path.isdir(out) and os.path.isfile(os.path.join(out, "results.csv")), out


def test_networks_beyond_the_cli_limits_are_refused_before_allocating():
    with pytest.raises(mortal.ParamError, match="layers"):
        mortal.Chip.preset("reram", layers=[784, 2**20 + 1, 10])
    with pytest.raises(mortal.ParamError, match="memory"):
        mortal.Chip.preset("reram", layers=[784, 2**20, 2**20, 10])
