"""Trains a 2-layer MLP on two interleaved spirals with softmax cross-entropy and plain
SGD, on every device ferry finds (or the ones named), and checks the training accuracy.

    PYTHONPATH=build/release/python python3 python/examples/train_mlp.py [--device cpu]
        [--steps 1500] [--min-accuracy 0.95]

Everything is ferry: the data set is made here with ferry ops, softmax is written with
exp/log/sum/amax (it is not an op yet), the gradients come from loss.backward(), and the
update runs in place under ferry.no_grad(). The C twin is tools/train_mlp.c.
"""
import argparse
import math
import sys
import time

import ferry


def two_spirals(n_per_class, turns=1.5, noise=0.03, scale=5.0, seed=0):
    """Points (2n, 2) and labels one-hot (2n, 2), as plain lists: class c's arm is the
    other's rotated by pi. The radius grows to `scale`, so that tanh units of a small
    initialisation can tell neighbouring turns apart."""
    state = seed * 2654435761 % 2 ** 32 or 1

    def uniform():  # xorshift32, so the set is the same everywhere without NumPy
        nonlocal state
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        return state / 2 ** 32

    points, labels = [], []
    for c in range(2):
        for i in range(n_per_class):
            t = (i + 0.5) / n_per_class
            theta = 2 * math.pi * turns * t + c * math.pi
            r = 0.1 + 0.9 * t
            points.append([scale * (r * math.cos(theta) + noise * (2 * uniform() - 1)),
                           scale * (r * math.sin(theta) + noise * (2 * uniform() - 1))])
            labels.append([1.0, 0.0] if c == 0 else [0.0, 1.0])
    return points, labels


def init_params(hidden, device, seed=1):
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, as torch.nn.Linear."""
    state = seed

    def uniform(bound):
        nonlocal state
        state = (state * 6364136223846793005 + 1442695040888963407) % 2 ** 64
        return bound * (2 * ((state >> 11) / 2 ** 53) - 1)

    def matrix(rows, cols, fan_in):
        b = 1 / math.sqrt(fan_in)
        return ferry.tensor([[uniform(b) for _ in range(cols)] for _ in range(rows)],
                            device=device, requires_grad=True)

    w1 = matrix(2, hidden, 2)
    b1 = matrix(1, hidden, 2)
    w2 = matrix(hidden, 2, hidden)
    b2 = matrix(1, 2, hidden)
    return [w1, b1, w2, b2]


def forward(params, x):
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    return h @ w2 + b2


def cross_entropy(logits, onehot):
    """mean(-log softmax(logits)[label]), with the max subtracted for stability."""
    m = logits.amax(1, keepdim=True).detach()
    z = logits - m
    log_probs = z - z.exp().sum(1, keepdim=True).log()
    return -(log_probs * onehot).sum(1).mean()


def accuracy(logits, onehot):
    pred = logits.argmax(1)
    truth = onehot.argmax(1)
    return (pred == truth).sum().item() / pred.shape[0]


def train(device, steps, lr, hidden, n_per_class, log_every):
    pts, lab = two_spirals(n_per_class)
    x = ferry.tensor(pts, device=device)
    y = ferry.tensor(lab, device=device)
    params = init_params(hidden, device)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        loss = cross_entropy(forward(params, x), y)
        loss.backward()
        with ferry.no_grad():
            for p in params:
                p -= p.grad * lr
                p.grad = None
        if log_every and (step % log_every == 0 or step == steps):
            with ferry.no_grad():
                acc = accuracy(forward(params, x), y)
            print(f"  {device}: step {step:5d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    elapsed = time.perf_counter() - t0
    with ferry.no_grad():
        acc = accuracy(forward(params, x), y)
    return acc, elapsed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", action="append", help="device to train on (repeatable); "
                    "default: every device ferry finds")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--points", type=int, default=200, help="points per class")
    ap.add_argument("--min-accuracy", type=float, default=0.95)
    ap.add_argument("--log-every", type=int, default=500)
    args = ap.parse_args(argv)
    devices = args.device or [str(d) for d in ferry.devices()]
    failed = False
    for dev in devices:
        acc, secs = train(dev, args.steps, args.lr, args.hidden, args.points, args.log_every)
        ok = acc >= args.min_accuracy
        failed |= not ok
        print(f"{dev}: training accuracy {acc:.3f} after {args.steps} steps "
              f"({1e3 * secs / args.steps:.2f} ms/step){'' if ok else '  BELOW ' + str(args.min_accuracy)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
