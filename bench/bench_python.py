#!/usr/bin/env python3
"""The Python module's overheads, all measured in this one process:

  * t.numpy() and ferry.from_numpy(a) at 1K and 64M float32 elements. Both share memory,
    so both are O(1): the 64M time must be within 2x of the 1K time.
  * a + b on 1-element tensors against NumPy's a + b on 1-element arrays: the cost of a
    call through the module (goal: not slower than NumPy). For information, the same for
    a Python scalar operand (a + 1.0, and 1.0 - a, which needs a 0-d tensor for the
    scalar on the left), a * 2, a.sum(), a[0] (a 0-d tensor view in ferry, as in PyTorch;
    a NumPy scalar in NumPy), and for writes (a[0] = 1.0, a.fill_(1.0)).
  * [a + a for _ in range(50000)]: per element, with every result kept alive until the
    list is dropped, against NumPy's (goal: not slower than NumPy). The list's release is
    timed with it, so deallocation counts too.

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
    def np_set():
        na[0] = 1.0

    def fe_set():
        fa[0] = 1.0

    # (label, NumPy statement, ferry statement); the first row is the goal.
    rows = [("a + b", lambda: na + nb, lambda: fa + fb),
            ("a + 1.0", lambda: na + 1.0, lambda: fa + 1.0),
            ("1.0 - a", lambda: 1.0 - na, lambda: 1.0 - fa),
            ("a * 2", lambda: na * 2, lambda: fa * 2),
            ("a.sum()", lambda: na.sum(), lambda: fa.sum()),
            ("a[0]", lambda: na[0], lambda: fa[0]),
            ("a[0] = 1.0", np_set, fe_set),
            ("a.fill(1.0) / fill_", lambda: na.fill(1.0), lambda: fa.fill_(1.0))]
    stmts = {"nil": lambda: None}
    for i, (_, n_stmt, f_stmt) in enumerate(rows):
        stmts[("np", i)], stmts[("fe", i)] = n_stmt, f_stmt
    best = dict.fromkeys(stmts, float("inf"))
    for _ in range(repeat):
        for key, stmt in stmts.items():
            best[key] = min(best[key], per_call_ns(stmt, number * 5, 1))
    for i, (label, _, _) in enumerate(rows):
        t_np, t_fe = best[("np", i)], best[("fe", i)]
        flag = "  <- slower than NumPy" if i == 0 and t_fe > t_np else ""
        print(f"{'numpy  ' + label:28}{t_np:8.0f}")
        print(f"{'ferry  ' + label:28}{t_fe:8.0f}{t_fe / t_np:10.2f} x NumPy{flag}")
    print(f"{'(empty lambda call)':28}{best['nil']:8.0f}")
    ok &= best[("fe", 0)] <= best[("np", 0)]

    n_live = 50000
    print("\n[a + a for _ in range(%d)], then del (ns per element, best of %d, "
          "alternating)" % (n_live, repeat))
    live = range(n_live)

    def comprehension(a):
        def run():
            kept = [a + a for _ in live]
            del kept
        return run
    lc = {"numpy": comprehension(na), "ferry": comprehension(fa)}
    lc_best = dict.fromkeys(lc, float("inf"))
    for _ in range(repeat):
        for key, stmt in lc.items():
            lc_best[key] = min(lc_best[key], per_call_ns(stmt, 1, 1) / n_live)
    t_np, t_fe = lc_best["numpy"], lc_best["ferry"]
    flag = "  <- slower than NumPy" if t_fe > t_np else ""
    print(f"{'numpy':28}{t_np:8.0f}")
    print(f"{'ferry':28}{t_fe:8.0f}{t_fe / t_np:10.2f} x NumPy{flag}")
    ok &= t_fe <= t_np

    print("\nall goals met" if ok else "\nsome goals missed")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
