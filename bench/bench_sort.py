"""ferry sort and topk on cpu against NumPy in one run (issue 10's speed goals):
sort of 16M float32 vs numpy.sort (goal >= 1x) and topk(k=10) of 16M vs
numpy.argpartition (goal >= 1x). Ratios are NumPy's time over ferry's (> 1: ferry is
faster). Best of several runs; a shared machine makes single figures noisy."""
import sys
import time

import numpy as np

import ferry


def best(f, reps):
    t = float("inf")
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 24
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    t = ferry.from_numpy(x)
    ours = ferry.msort(t).numpy()
    assert np.array_equal(ours, np.sort(x)), "ferry's sort differs from numpy.sort"
    f_sort = best(lambda: ferry.msort(t), reps)
    f_sorti = best(lambda: t.sort(), reps)
    n_sort = best(lambda: np.sort(x), reps)
    v, i = t.topk(10)
    want = np.sort(x[np.argpartition(x, -10)[-10:]])[::-1]
    assert np.array_equal(v.numpy(), want), "ferry's topk differs from NumPy"
    f_topk = best(lambda: t.topk(10), reps)
    n_topk = best(lambda: np.argpartition(x, -10)[-10:], reps)
    print(f"sort {n} float32: ferry {f_sort * 1e3:.1f} ms (values only; with indices "
          f"{f_sorti * 1e3:.1f} ms), numpy.sort {n_sort * 1e3:.1f} ms: ratio {n_sort / f_sort:.2f}")
    print(f"topk 10 of {n} float32: ferry {f_topk * 1e3:.2f} ms, numpy.argpartition "
          f"{n_topk * 1e3:.2f} ms: ratio {n_topk / f_topk:.2f}")


if __name__ == "__main__":
    main()
