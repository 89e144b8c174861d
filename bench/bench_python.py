#!/usr/bin/env python3
"""The Python module's overheads, all measured in this one process:

  * t.numpy() and ferry.from_numpy(a) at 1K and 64M float32 elements. Both share memory,
    so both are O(1): the 64M time must be within 2x of the 1K time.
  * a + b on 1-element tensors against NumPy's a + b on 1-element arrays: the cost of a
    call through the module (goal: not slower than NumPy).

    PYTHONPATH=build/release/python python3 bench/bench_python.py [--quick] [--check]

--check exits with status 1 when a criterion is missed (timings on a busy machine are
noisy, so it is off by default).
"""
import argparse
import platform
import sys
import timeit

import numpy as np

import ferry

SIZES = [("1K", 1 << 10), ("64M", 1 << 26)]


def per_call_ns(stmt, number, repeat):
    """Best of `repeat` runs of `number` calls, in nanoseconds per call: the minimum is
    the run least disturbed by the rest of the machine."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke run)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()
    number, repeat = (2000, 3) if args.quick else (20000, 7)

    print(f"ferry {ferry.__version__}, NumPy {np.__version__}, Python "
          f"{platform.python_version()}, {platform.machine()}")
    ok = True

    print("\nzero-copy exchange (float32, ns per call, best of %d x %d)" % (repeat, number))
    print(f"{'':24}" + "".join(f"{name:>12}" for name, _ in SIZES) + f"{'ratio':>10}")
    rows = {}
    arrays = {name: np.zeros(n, dtype=np.float32) for name, n in SIZES}
    tensors = {name: ferry.empty(n, dtype=ferry.float32) for name, n in SIZES}
    rows["ferry.from_numpy(a)"] = [
        per_call_ns(lambda a=arrays[name]: ferry.from_numpy(a), number, repeat)
        for name, _ in SIZES]
    rows["t.numpy()"] = [
        per_call_ns(lambda t=tensors[name]: t.numpy(), number, repeat) for name, _ in SIZES]
    rows["from_numpy(a).numpy()"] = [
        per_call_ns(lambda a=arrays[name]: ferry.from_numpy(a).numpy(), number, repeat)
        for name, _ in SIZES]
    for label, (small, large) in rows.items():
        ratio = large / small
        flag = "" if ratio <= 2.0 else "  <- not O(1)"
        ok &= ratio <= 2.0
        print(f"{label:24}{small:12.0f}{large:12.0f}{ratio:10.2f}{flag}")

    print("\n1-element a + b (ns per call, best of %d x %d, alternating)" % (repeat, number * 5))
    na, nb = np.ones(1, dtype=np.float32), np.ones(1, dtype=np.float32)
    fa, fb = ferry.ones(1), ferry.ones(1)
    # Alternating the contenders round by round keeps a load change on a shared machine
    # from favouring whichever ran in the quiet moment.
    stmts = {"np": lambda: na + nb, "fe": lambda: fa + fb, "ns": lambda: na + 1.0,
             "fs": lambda: fa + 1.0, "nil": lambda: None}
    best = dict.fromkeys(stmts, float("inf"))
    for _ in range(repeat):
        for key, stmt in stmts.items():
            best[key] = min(best[key], per_call_ns(stmt, number * 5, 1))
    t_np, t_fe, t_ns, t_fs, t_nil = (best[k] for k in ("np", "fe", "ns", "fs", "nil"))
    print(f"{'numpy  a + b':24}{t_np:12.0f}")
    print(f"{'ferry  a + b':24}{t_fe:12.0f}{t_fe / t_np:10.2f} x NumPy"
          + ("" if t_fe <= t_np else "  <- slower than NumPy"))
    print(f"{'numpy  a + 1.0':24}{t_ns:12.0f}")
    print(f"{'ferry  a + 1.0':24}{t_fs:12.0f}{t_fs / t_ns:10.2f} x NumPy")
    print(f"{'(empty lambda call)':24}{t_nil:12.0f}")
    ok &= t_fe <= t_np

    print("\nall goals met" if ok else "\nsome goals missed")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
