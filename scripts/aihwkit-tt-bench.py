# Not run by CI: needs aihwkit 1.1.0 and torch 2.10 (pip install torch==2.10.0 aihwkit==1.1.0
# in a scratch virtualenv). Usage: python scripts/aihwkit-tt-bench.py [BATCHES]
"""Time aihwkit 1.1.0's analog SGD and its Tiki-Taka configurations (TTv2, c-TTv2,
AGAD via aihwkit.simulator.configs.helpers.build_config) on 784-256-128-10 sigmoid,
batch 64, one thread, ReRamSB preset devices; seconds per 60,000-sample epoch
extrapolated from timed batches (median of repeats)."""
import sys, time, statistics
import torch
from torch import nn
from aihwkit.nn import AnalogLinear, AnalogSequential
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import SingleRPUConfig
from aihwkit.simulator.configs.helpers import build_config
from aihwkit.simulator.presets.devices import ReRamSBPresetDevice

torch.set_num_threads(1)
torch.manual_seed(1)
B, BATCHES, REPEATS = 64, int(sys.argv[1]) if len(sys.argv) > 1 else 20, 3

def model(cfg):
    return AnalogSequential(
        AnalogLinear(784, 256, rpu_config=cfg), nn.Sigmoid(),
        AnalogLinear(256, 128, rpu_config=cfg), nn.Sigmoid(),
        AnalogLinear(128, 10, rpu_config=cfg))

x = torch.rand(B, 784)
y = torch.randint(0, 10, (B,))
configs = {
    "analog-sgd ReRamSB": SingleRPUConfig(device=ReRamSBPresetDevice()),
    "ttv2 ReRamSB": build_config("ttv2", ReRamSBPresetDevice),
    "c-ttv2 ReRamSB": build_config("c-ttv2", ReRamSBPresetDevice),
    "agad ReRamSB": build_config("agad", ReRamSBPresetDevice),
}
for cfg in configs.values():
    # One tile per layer (no splitting of the 784 inputs), as mortal's chip.
    cfg.mapping.max_input_size = 0
    cfg.mapping.max_output_size = 0
loss_fn = nn.CrossEntropyLoss()
for name, cfg in configs.items():
    m = model(cfg)
    opt = AnalogSGD(m.parameters(), lr=0.1)
    opt.regroup_param_groups(m)
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(BATCHES):
            opt.zero_grad()
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    t = statistics.median(times) / BATCHES
    print(f"{name}: {t * 60000 / B:.2f} s per 60,000-sample epoch ({t * 1e3:.1f} ms per batch of {B}; times {['%.3f' % v for v in times]})", flush=True)
