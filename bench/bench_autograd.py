"""Autograd from Python, ratios measured in this one run: recording overhead of a
1-element add, forward+backward of a chain of 100 one-element ops, and one SGD step of
the two-spirals MLP at batch 64 -- ferry on cpu (and opencl:0) against PyTorch on the
cpu when torch is installed (said and skipped otherwise).

    PYTHONPATH=build/release/python python3 bench/bench_autograd.py [--quick]
"""
import statistics
import sys
import time

import ferry

try:
    import torch
    torch.set_num_threads(1)
except ImportError as e:
    torch = None
    TORCH_WHY = f"torch not importable ({e})"

QUICK = "--quick" in sys.argv
REPS = 3 if QUICK else 15


def median_time(fn, inner):
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def add_overhead():
    a, b = ferry.tensor([1.0]), ferry.tensor([2.0])
    ag, bg = ferry.tensor([1.0], requires_grad=True), ferry.tensor([2.0], requires_grad=True)
    n = 200 if QUICK else 20000
    plain = median_time(lambda: a + b, n)
    rec = median_time(lambda: ag + bg, n)
    print(f"1-element add           without grad {plain * 1e9:8.0f} ns   requires_grad "
          f"{rec * 1e9:8.0f} ns   ratio {rec / plain:.2f}x")


def chain(lib):
    def run():
        x = lib.tensor([0.5], requires_grad=True)
        y = x
        for i in range(100):
            y = y * 1.01 if i % 4 == 0 else y + 0.1 if i % 4 == 1 else y.tanh() if i % 4 == 2 \
                else y * y
        y.sum().backward()
    return run


def mlp_step(lib, device):
    kw = {"device": device} if lib is ferry else {}
    x = lib.full((64, 2), 0.3, **kw)
    y = lib.full((64, 2), 0.5, **kw)
    params = [lib.full(s, v, **kw).requires_grad_() for s, v in
              (((2, 64), 0.1), ((1, 64), 0.0), ((64, 2), -0.1), ((1, 2), 0.0))]

    def run():
        w1, b1, w2, b2 = params
        z = (x @ w1 + b1).tanh() @ w2 + b2
        zc = z - z.amax(1, keepdim=True).detach()
        loss = -((zc - zc.exp().sum(1, keepdim=True).log()) * y).sum(1).mean()
        loss.backward()
        with lib.no_grad():
            for p in params:
                p -= p.grad * 0.01
                p.grad = None
    return run


def main():
    print(f"bench_autograd.py (median of {REPS} runs)\n")
    add_overhead()
    n = 3 if QUICK else 200
    fc = median_time(chain(ferry), n)
    line = f"chain of 100 ops fwd+bwd  ferry {fc * 1e6:8.1f} us"
    if torch:
        tc = median_time(chain(torch), n)
        line += f"   torch {tc * 1e6:8.1f} us   ferry speedup {tc / fc:.2f}x"
    else:
        line += f"   (torch comparison skipped: {TORCH_WHY})"
    print(line)
    steps = 3 if QUICK else 100
    fm = median_time(mlp_step(ferry, "cpu"), steps)
    line = f"MLP step batch 64 cpu     ferry {fm * 1e6:8.1f} us"
    if torch:
        tm = median_time(mlp_step(torch, "cpu"), steps)
        line += f"   torch {tm * 1e6:8.1f} us   ferry speedup {tm / fm:.2f}x"
    else:
        line += f"   (torch comparison skipped: {TORCH_WHY})"
    print(line)
    if ferry.opencl.is_available():
        fo = median_time(mlp_step(ferry, "opencl:0"), steps)
        ferry.synchronize("opencl:0")
        print(f"MLP step batch 64 opencl:0 ferry {fo * 1e6:8.1f} us")
    else:
        print(f"MLP step on opencl:0 skipped: {ferry.backend_status('opencl')}")


if __name__ == "__main__":
    main()
