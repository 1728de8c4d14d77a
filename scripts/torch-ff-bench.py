# Not run by CI: needs torch (pip install torch in a scratch virtualenv; measured with
# torch 2.10.0). Usage:
#   python scripts/torch-ff-bench.py [--threads N] [--batches N] [--repeats N]
#                                    [--negatives hard|random] [--layers 2000,2000,2000,2000]
"""The FF training step of `mortal bench`'s `ff-train` rows, written in PyTorch for a
side-by-side speed comparison on the same CPU (strict f32 matmuls).

The step does the same work as mortal's `FfLearner::train_batch` on the digital substrate
with the reference recipe, in the same order: a positive pass (true label in the first 10
pixels) stacked with a neutral-label pass (2B columns), per layer ReLU, goodness (sum of
squares), logistic loss, peer normalisation, length normalisation before the next layer;
a softmax head on the neutral pass of layers 2.. (its pre-update logits choose hard
negatives); a negative pass (B columns); then per layer one SGD step with momentum 0.9
and weight decay 1e-3 on W and b from the 2B columns [positive | negative]. Elementwise
details (threshold, peer term) follow mortal's defaults closely but only the FLOP count
and memory traffic matter here: the GEMMs are the same shapes as `ff_step_gemms` in
crates/mortal-cli/src/bench/pytorch.rs. Prints samples/s (median of repeats) as JSON.
"""
import argparse, json, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batches", type=int, default=10)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--batch", type=int, default=100)
p.add_argument("--negatives", choices=["hard", "random"], default="hard")
p.add_argument("--layers", default="2000,2000,2000,2000")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.set_float32_matmul_precision("highest")
torch.manual_seed(1)
B = a.batch
widths = [784] + [int(w) for w in a.layers.split(",")]
L = len(widths) - 1
W = [torch.randn(o, i) / i**0.5 for i, o in zip(widths, widths[1:])]
bias = [torch.zeros(o, 1) for o in widths[1:]]
vW = [torch.zeros_like(w) for w in W]
vb = [torch.zeros_like(b) for b in bias]
peer = [torch.full((o, 1), 0.5) for o in widths[1:]]
first = 1  # eval_from = 2: the head reads layers 2..L
H = torch.zeros(10, sum(widths[1 + first:]))
vH = torch.zeros_like(H)
images = torch.rand(784, B)
labels = torch.arange(B) % 10
lr, mom, wd, head_lr = 1e-3, 0.9, 1e-3, 1e-2


def rms_norm(x):
    return x / (x.pow(2).mean(0, keepdim=True).sqrt() + 1e-8)


def layer_errors(act, thr, positive, l):
    g = act.pow(2).sum(0, keepdim=True)
    z = (g - thr) if positive else (thr - g)
    coeff = -torch.sigmoid(-z)  # d log-loss / d g
    if not positive:
        coeff = -coeff
    d = 2.0 * coeff * act
    if positive:
        mean = act.mean(1, keepdim=True)
        peer[l].mul_(0.9).add_(0.1 * mean)
        d += 0.03 * (peer[l] - 0.1) * (act > 0)
    return d * (act > 0)


def step():
    x = torch.cat([images, images], 1)
    x[:10, :] = 0
    x[labels, torch.arange(B)] = 1.0
    x[:10, B:] = 0.1
    norm = [rms_norm(x)]
    d_pos, acts = [], []
    for l in range(L):
        act = torch.relu(W[l] @ norm[l] + bias[l])
        thr = float(widths[l + 1])
        d_pos.append(layer_errors(act[:, :B], thr, True, l))
        norm.append(rms_norm(act))
    feats = torch.cat([norm[l + 1][:, B:] for l in range(first, L)], 0)
    logits = H @ feats
    prob = torch.softmax(logits, 0)
    gH = prob.clone()
    gH[labels, torch.arange(B)] -= 1.0
    vH.mul_(0.9).add_(gH @ feats.T / B + 3e-3 * H)
    H.sub_(head_lr * vH)
    if a.negatives == "hard":
        p = prob.clone()
        p[labels, torch.arange(B)] = 0
        neg = torch.multinomial(p.T + 1e-12, 1).squeeze(1)
    else:
        neg = (labels + torch.randint(1, 10, (B,))) % 10
    xn = images.clone()
    xn[:10, :] = 0
    xn[neg, torch.arange(B)] = 1.0
    nn_ = rms_norm(xn)
    for l in range(L):
        act = torch.relu(W[l] @ nn_ + bias[l])
        d_neg = layer_errors(act, float(widths[l + 1]), False, l)
        d = torch.cat([d_pos[l], d_neg], 1)
        r = torch.cat([norm[l][:, :B], nn_], 1)
        vW[l].mul_(mom).add_(d @ r.T + wd * W[l])
        vb[l].mul_(mom).add_(d.sum(1, keepdim=True))
        W[l].sub_(lr * vW[l])
        bias[l].sub_(lr * vb[l])
        nn_ = rms_norm(act)


with torch.no_grad():
    step()
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.batches):
            step()
        times.append(time.perf_counter() - t0)
t = statistics.median(times)
print(json.dumps({
    "torch": torch.__version__, "threads": a.threads, "negatives": a.negatives,
    "layers": widths[1:], "batch": B, "batches": a.batches, "repeats": a.repeats,
    "samples_per_s": a.batches * B / t, "seconds_median": t,
    "seconds_min": min(times), "seconds_max": max(times),
}))
