"""mortal: learning on analog hardware whose exact behaviour is unknown and different on
every chip, from Python.

Substrates (numpy float32 in and out, row-major ``[batch, features]``; weights
``[out, in]``)::

    import mortal, numpy as np
    chip = mortal.Chip.preset("reram", layers=[784, 256, 10], seed=7)
    received, activity = chip.forward(0, x)          # x: [batch, 784]
    chip.update(0, dw, db, scale=-0.01)              # dw: [256, 784], db: [256]
    chip.update_outer(0, x, d, scale=-0.01)          # rank-1 pulse trains on a chip
    chip.transpose_read(1, d)                        # W^T d
    chip.program(0, w, b); chip.advance_time(3600.0)
    chip.save("my-chip"); chip = mortal.Chip.load("my-chip")
    chip.counters()                                  # operation counts (dict)

Runs, as on the command line (keyword = flag without ``--``, ``_`` for ``-``)::

    r = mortal.train(algo="ff", dataset="synthetic", layers=[64, 64], epochs=2)
    mortal.run_scenario("scenarios/quickstart.toml", out="runs/q", smoke=True)
    import pandas as pd; pd.DataFrame(mortal.load_results("runs/q"))

Errors raise :class:`ParamError` (a ``ValueError``: bad parameter or input) or
:class:`MortalError` (a ``RuntimeError``: data, files, divergence) with the CLI's
one-line messages.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from typing import Any, Iterable

from . import _mortal
from ._mortal import MortalError, ParamError

__all__ = [
    "Chip",
    "Digital",
    "Substrate",
    "MortalError",
    "ParamError",
    "train",
    "distill",
    "run_scenario",
    "load_results",
    "load_data",
    "__version__",
]

__version__ = _mortal.version()


class Substrate:
    """A substrate driven from Python (a chip instance or the digital network)."""

    def __init__(self, native: Any):
        self._s = native

    @property
    def layers(self) -> list[int]:
        """Widths ``[inputs, layer 0, ...]``."""
        return self._s.layers

    def __repr__(self) -> str:
        return repr(self._s)

    def forward(self, layer: int, x):
        """Drives ``layer`` with ``x`` ``[batch, in]``; returns ``(received, activity)``."""
        return self._s.forward(layer, _f32(x))

    def transpose_read(self, layer: int, d):
        """``W^T d`` for ``d`` ``[batch, out]`` -> ``[batch, in]``."""
        return self._s.transpose_read(layer, _f32(d))

    def update(self, layer: int, dw, db, scale: float = 1.0, decay: float = 0.0) -> None:
        """Asks for ``W <- (1 - decay) W + scale dw``, ``b <- b + scale db``."""
        self._s.update(layer, _f32(dw), _f32(db), scale, decay)

    def update_outer(self, layer: int, x, d, scale: float = 1.0, decay: float = 0.0) -> None:
        """The outer-product form ``dw = d^T x`` over the batch (rank-1 pulse trains on a chip)."""
        self._s.update_outer(layer, _f32(x), _f32(d), scale, decay)

    def program(self, layer: int, w, b) -> None:
        """Sets ``layer`` to weights ``w`` ``[out, in]`` and biases ``b`` (write-and-verify on a chip)."""
        self._s.program(layer, _f32(w), _f32(b))

    def ff_step_builtin(self, images, labels, lr: float = 0.01, seed: int = 1) -> list[int]:
        """One step of the built-in FF learner (plain SGD at ``lr``, random wrong labels
        from ``seed``, no peer normalisation), e.g. to check a Python-written step
        against; returns the negative labels it drew."""
        return self._s.ff_step_builtin(_f32(images), [int(v) for v in labels], lr, seed)

    def advance_time(self, seconds: float) -> None:
        """Lets simulated time pass (conductance drift), seconds."""
        self._s.advance_time(float(seconds))

    def counters(self) -> dict:
        """Operation counts so far: per layer, total, host work by purpose, converter bits."""
        return json.loads(self._s.counters_json())

    def save(self, path: str | os.PathLike) -> None:
        """Saves into directory ``path`` (``substrate.json`` + ``substrate.safetensors``)."""
        self._s.save(os.fspath(path))


class Chip(Substrate):
    """Constructors of chip instances (see :class:`Substrate` for the methods)."""

    @staticmethod
    def preset(name: str, layers: Iterable[int], seed: int = 1, variation: float = 1.0,
               init_seed: int = 1, activation: str = "relu", output_linear: bool = False) -> "Chip":
        """Chip ``seed`` of a preset family (``ideal``, ``reram``, ``pcm``, ``harsh``)."""
        return Chip(_mortal.Substrate_.chip(name, list(layers), seed, variation, init_seed,
                                             activation, output_linear))

    @staticmethod
    def from_spec(spec: str | os.PathLike, layers: Iterable[int], seed: int = 1,
                  variation: float = 1.0, init_seed: int = 1, activation: str = "relu",
                  output_linear: bool = False) -> "Chip":
        """A chip from a spec TOML file path, or TOML text."""
        return Chip(_mortal.Substrate_.chip(os.fspath(spec) if isinstance(spec, os.PathLike) else spec,
                                             list(layers), seed, variation, init_seed,
                                             activation, output_linear))

    @staticmethod
    def load(path: str | os.PathLike) -> "Substrate":
        """A substrate saved by :meth:`Substrate.save`."""
        return Chip(_mortal.Substrate_.load(os.fspath(path)))


def Digital(layers: Iterable[int], seed: int = 1, activation: str = "relu",
            output_linear: bool = False) -> Substrate:
    """The ideal digital network with the shared initial weights of ``seed``."""
    return Substrate(_mortal.Substrate_.digital(list(layers), seed, activation, output_linear))


def _f32(a):
    import numpy as np
    return np.ascontiguousarray(a, dtype=np.float32)


def _flags(kwargs: dict) -> list[str]:
    args: list[str] = []
    for key, value in kwargs.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return args


_EPOCH = re.compile(r"^(?P<head>.*?)epoch\s+(?P<i>\d+)/(?P<n>\d+):\s*(?P<rest>.*)$")


class _TextBar:
    """A tqdm-like bar for notebooks and pipes, one step per epoch line: redrawn in place
    with a carriage return, other lines printed as they come."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.open = False

    def __call__(self, line: str) -> None:
        m = _EPOCH.match(line)
        if m is None:
            if self.open:
                print(file=self.stream)
                self.open = False
            print(line, file=self.stream, flush=True)
            return
        i, n = int(m["i"]), int(m["n"])
        done = round(20 * i / max(n, 1))
        bar = "#" * done + "." * (20 - done)
        print(f"\r{m['head']}[{bar}] {i}/{n} {m['rest']}", end="", file=self.stream, flush=True)
        self.open = i < n
        if i >= n:
            print(file=self.stream, flush=True)


def _progress(quiet: bool, progress):
    """Where progress goes: nowhere (quiet), the given callable, the native bars on a
    terminal, else (a notebook, a pipe) a text bar advancing each epoch."""
    if quiet:
        return None
    if progress is not None:
        return progress
    if sys.stderr.isatty():
        return None
    return _TextBar()


def train(quiet: bool = False, data_dir: str | None = None, progress=None, **options) -> dict:
    """Trains like ``mortal train`` (options are its flags: ``algo="ff"``,
    ``layers=[256, 256]``, ``chip="reram"``, ``out="runs/x"``, ...); returns the
    ``results.json`` content, with ``"out"`` the directory written. Progress: bars on a
    terminal, one line per epoch in a notebook, ``progress(line)`` if given, nothing if
    ``quiet``."""
    args = _flags(options)
    if quiet:
        args.append("-q")
    if data_dir is not None:
        args += ["--data-dir", os.fspath(data_dir)]
    text, out = _mortal.train_cli(args, _progress(quiet, progress))
    r = json.loads(text)
    r["out"] = out
    return r


def distill(quiet: bool = False, data_dir: str | None = None, progress=None,
            **options) -> dict | list[dict]:
    """Distils like ``mortal distill`` (``teacher=``, ``student_chip=``, ``out=`` ...).
    One student: its ``results.json`` as a dict (as :func:`train` returns a run's);
    several (a fleet, ``student_seed="2-33"``, or several ``transfer`` sizes): the list of
    their ``results.csv`` rows."""
    if "out" not in options:
        raise ParamError("distill: out= is required (the output directory)")
    args = ["distill"] + _flags(options)
    if quiet:
        args.append("-q")
    if data_dir is not None:
        args += ["--data-dir", os.fspath(data_dir)]
    _mortal.run_cli(args, _progress(quiet, progress))
    out = os.fspath(options["out"])
    if os.path.isfile(os.path.join(out, "results.csv")):
        return load_results(out)
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    r["out"] = out
    return r


def run_scenario(path: str | os.PathLike, out: str | os.PathLike | None = None,
                 smoke: bool = False, quiet: bool = False, data_dir: str | None = None,
                 progress=None, **options) -> str:
    """Runs a scenario file like ``mortal run`` (resumable); returns its output directory."""
    args = ["run", os.fspath(path)]
    if out is not None:
        args += ["--out", os.fspath(out)]
    if smoke:
        args.append("--smoke")
    args += _flags(options)
    if quiet:
        args.append("-q")
    if data_dir is not None:
        args += ["--data-dir", os.fspath(data_dir)]
    # The directory mortal wrote (the scenario's `name` or [output] dir when no out=).
    return _mortal.run_scenario_cli(args, _progress(quiet, progress))


def load_data(dataset: str = "synthetic", data_dir: str | None = None,
              train_limit: int | None = None, eval_limit: int | None = None) -> dict:
    """The paper's splits of a dataset: ``{"train": (images, labels), "valid": ...,
    "test": ...}``, images ``[n, pixels]`` float32 in [0, 1], labels int64. ``synthetic``
    is built in; ``mnist`` / ``fashion-mnist`` are read from ``data_dir`` or
    ``$MORTAL_DATA``."""
    splits = _mortal.load_data(dataset, None if data_dir is None else os.fspath(data_dir),
                               train_limit, eval_limit)
    return {name: (x, y) for name, x, y in splits}


def _number(v: str):
    if v == "":
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def load_results(directory: str | os.PathLike) -> list[dict]:
    """The results of an output directory as a list of dicts (``pandas.DataFrame`` of it):
    a scenario's or a distillation's ``results.csv`` rows, or a single run's
    ``results.json``."""
    d = os.fspath(directory)
    csv_path = os.path.join(d, "results.csv")
    if os.path.isfile(csv_path):
        with open(csv_path, newline="") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    json_path = os.path.join(d, "results.json")
    if os.path.isfile(json_path):
        with open(json_path) as f:
            return [json.load(f)]
    raise MortalError(f"{d}: no results.csv or results.json here")
