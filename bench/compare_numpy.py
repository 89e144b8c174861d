#!/usr/bin/env python3
"""NumPy against ferry on the sizes bench_ops measures (add with out= and allocating, a
broadcast add, sum, matmul), both timed in this one process, alternating. ferry is
reached through ctypes on libferry.so, so this runs without ferry's Python module.

NumPy should come from PyPI (`pip install numpy`): its wheel bundles its own OpenBLAS
with run-time kernel selection, while Debian's python3-numpy uses Debian's OpenBLAS
0.3.21, which misdetects AVX-512 CPUs of this machine kind as Prescott (about 40 GFLOP/s
for sgemm, see ../shared/BASELINES.md). Comparing with that would flatter ferry.

    python3 bench/compare_numpy.py [--quick]
    FERRY_LIB=/path/to/libferry.so python3 bench/compare_numpy.py
"""
import argparse
import ctypes
import os
import platform
import statistics
import sys
import time

import numpy as np

FLOAT32 = 8  # ferry_dtype FERRY_FLOAT32; the enum values are ABI
HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Ferry:
    """The handful of libferry entry points this comparison needs, typed for ctypes."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        p, i64p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)
        sig = {
            "ferry_version": (ctypes.c_char_p, []),
            "ferry_last_error": (ctypes.c_char_p, []),
            "ferry_empty": (p, [ctypes.c_int, ctypes.c_int, i64p, ctypes.c_char_p]),
            "ferry_tensor_host_data": (p, [p]),
            "ferry_tensor_release": (None, [p]),
            "ferry_add": (p, [p, p]),
            "ferry_add_out": (ctypes.c_int, [p, p, p]),
            "ferry_sum": (p, [p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_bool]),
            "ferry_matmul_out": (ctypes.c_int, [p, p, p]),
            "ferry_shutdown": (None, []),
        }
        for name, (res, args) in sig.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.lib = lib

    def error(self):
        msg = self.lib.ferry_last_error()
        return msg.decode() if msg else "(no message)"

    def empty(self, shape):
        dims = (ctypes.c_int64 * len(shape))(*shape)
        t = self.lib.ferry_empty(FLOAT32, len(shape), dims, b"cpu")
        if not t:
            raise RuntimeError(f"ferry_empty{tuple(shape)}: {self.error()}")
        return t

    def view(self, t, shape):
        """A NumPy view of a cpu tensor's memory (valid while the tensor lives)."""
        ptr = self.lib.ferry_tensor_host_data(t)
        if not ptr:
            raise RuntimeError(f"ferry_tensor_host_data: {self.error()}")
        count = int(np.prod(shape))
        buf = (ctypes.c_float * count).from_address(ptr)
        return np.frombuffer(buf, dtype=np.float32, count=count).reshape(shape)

    def tensor_from(self, arr):
        t = self.empty(arr.shape)
        self.view(t, arr.shape)[...] = arr
        return t


class Failed(Exception):
    pass


# NumPy's OpenBLAS threads busy-wait for 2**28 TSC cycles (about 0.1 s here) after
# each call, and OpenMP's threads spin briefly too: on a 2-core machine the next
# library's sample would share its cores with them. Each sample starts after this pause,
# then one untimed call: after a pause the idle vCPUs of a VM take up to a scheduler tick
# (4 ms) to wake, which would otherwise land in the first timed call of a 2-thread op.
SETTLE_S = 0.15


def measure(fns, reps, calls):
    """Median seconds per call of each fn; order rotates each repetition, after one
    untimed warm-up repetition, so load from other processes spreads over all fns."""
    samples = [[] for _ in fns]
    for r in range(-1, reps):
        for k in range(len(fns)):
            i = (k + max(r, 0)) % len(fns)
            fn = fns[i]
            time.sleep(SETTLE_S)
            fn()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            dt = (time.perf_counter() - t0) / calls
            if r >= 0:
                samples[i].append(dt)
    return [statistics.median(s) for s in samples]


def calls_for(seconds_guess, target=0.05):
    return max(1, int(target / max(seconds_guess, 1e-9)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repetitions (CI)")
    ap.add_argument("--matmul-only", action="store_true",
                    help="only the matmul rows (issue 12's figures), skipping add and sum")
    ap.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")],
                    help="matmul sizes, comma-separated (default 256,1024,2048; 64,128,256 "
                         "with --quick)")
    args = ap.parse_args()

    lib_path = os.environ.get("FERRY_LIB") or os.path.join(
        HERE, "..", "build", "release", "lib", "libferry.so")
    lib_path = os.path.abspath(lib_path)
    if not os.path.exists(lib_path):
        sys.exit(f"compare_numpy: {lib_path} not found; build ferry or set FERRY_LIB")
    fy = Ferry(lib_path)

    reps = 3 if args.quick else 7
    mm_sizes = args.sizes or ([64, 128, 256] if args.quick else [256, 1024, 2048])
    rows = cols = 1024 if args.quick else 4096

    print(f"compare_numpy: ferry {fy.lib.ferry_version().decode()} ({lib_path})")
    print(f"NumPy {np.__version__} ({np.__file__}), Python {platform.python_version()}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} online; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"FERRY_NUM_THREADS={os.environ.get('FERRY_NUM_THREADS', 'unset')}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')} "
          f"(it picks the kernels of NumPy's OpenBLAS and of the one ferry may use); "
          f"median of {reps} repetitions, NumPy and ferry alternating")
    try:
        import threadpoolctl
        for pool in threadpoolctl.threadpool_info():
            print("threadpoolctl: " + ", ".join(
                f"{k}={pool.get(k)}" for k in
                ("internal_api", "version", "architecture", "num_threads", "threading_layer")))
    except ImportError:
        print("threadpoolctl: not installed (pip install threadpoolctl shows NumPy's BLAS "
              "kernels and threads)")

    results = []  # (id, op, size, unit, numpy_value, ferry_value or None, note)
    rng = np.random.default_rng(0)
    held = []  # ferry tensors to release at the end

    def check_status(status, what):
        if status != 0:
            raise Failed(f"{what}: {fy.error()}")

    def check_tensor(t, what):
        if not t:
            raise Failed(f"{what}: {fy.error()}")

    def run(fid, op, size, unit, work, numpy_fn, ferry_fn, verify):
        """work: bytes or flops per call; the figures are work per second. A refused
        ferry call leaves NumPy's figure measured and ferry's marked failed."""
        fns, note = [numpy_fn], ""
        try:
            ferry_fn()
            verify()
            fns.append(ferry_fn)
        except Failed as e:
            note = str(e)
        # Samples are sized by the slower library's warm per-call time: the best of three
        # calls, since a first call may pay for waking threads or packing buffers.
        slowest = 0.0
        for fn in fns:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            slowest = max(slowest, best)
        times = measure(fns, reps, calls_for(slowest))
        v_fy = work / times[1] / 1e9 if len(times) > 1 else None
        results.append((fid, op, size, unit, work / times[0] / 1e9, v_fy, note))

    if not args.matmul_only:
        # add, contiguous: two reads and one write per element
        a_np = rng.standard_normal((rows, cols), dtype=np.float32)
        b_np = rng.standard_normal((rows, cols), dtype=np.float32)
        row_np = rng.standard_normal(cols, dtype=np.float32)
        o_np = np.empty_like(a_np)
        a_fy, b_fy, row_fy = fy.tensor_from(a_np), fy.tensor_from(b_np), fy.tensor_from(row_np)
        o_fy = fy.empty((rows, cols))
        held += [a_fy, b_fy, row_fy, o_fy]
        o_view = fy.view(o_fy, (rows, cols))
        n = rows * cols
        size = f"{n >> 20}M" if n >= 1 << 20 else str(n)

        def fy_add_out():
            check_status(fy.lib.ferry_add_out(o_fy, a_fy, b_fy), "ferry_add_out")

        def verify_add():
            if not np.array_equal(o_view, a_np + b_np):
                sys.exit("compare_numpy: ferry_add_out differs from NumPy")

        run("np.add_out", "add out=", size, "GB/s", 12.0 * n,
            lambda: np.add(a_np, b_np, out=o_np), fy_add_out, verify_add)

        def fy_add_alloc():
            t = fy.lib.ferry_add(a_fy, b_fy)
            check_tensor(t, "ferry_add")
            fy.lib.ferry_tensor_release(t)

        run("np.add_alloc", "add allocating", size, "GB/s", 12.0 * n,
            lambda: a_np + b_np, fy_add_alloc, lambda: None)

        def fy_add_row():
            check_status(fy.lib.ferry_add_out(o_fy, a_fy, row_fy), "ferry_add_out (broadcast)")

        def verify_row():
            if not np.array_equal(o_view, a_np + row_np):
                sys.exit("compare_numpy: broadcast ferry_add_out differs from NumPy")

        run("np.add_bcast_row", "add [R,C]+[C] out=", f"{rows}x{cols}", "GB/s",
            4.0 * (2 * n + cols), lambda: np.add(a_np, row_np, out=o_np), fy_add_row, verify_row)

        # sum over everything; positive data keeps the relative check meaningful
        s_np = rng.random((rows, cols), dtype=np.float32) + 0.5
        s_fy = fy.tensor_from(s_np)
        held.append(s_fy)
        fy_sum_value = [0.0]

        def fy_sum():
            t = fy.lib.ferry_sum(s_fy, 0, None, False)
            check_tensor(t, "ferry_sum")
            fy_sum_value[0] = float(fy.view(t, ())[()])
            fy.lib.ferry_tensor_release(t)

        def verify_sum():
            want = float(s_np.sum(dtype=np.float64))
            if abs(fy_sum_value[0] - want) > 1e-4 * want:
                sys.exit(f"compare_numpy: ferry_sum gives {fy_sum_value[0]}, NumPy {want}")

        run("np.sum", "sum (all dims)", size, "GB/s", 4.0 * n, lambda: s_np.sum(), fy_sum,
            verify_sum)

    # matmul into preallocated outputs on both sides
    for m in mm_sizes:
        x_np = rng.uniform(-1, 1, (m, m)).astype(np.float32)
        y_np = rng.uniform(-1, 1, (m, m)).astype(np.float32)
        z_np = np.empty((m, m), np.float32)
        x_fy, y_fy, z_fy = fy.tensor_from(x_np), fy.tensor_from(y_np), fy.empty((m, m))
        z_view = fy.view(z_fy, (m, m))

        def fy_mm(x_fy=x_fy, y_fy=y_fy, z_fy=z_fy):
            check_status(fy.lib.ferry_matmul_out(z_fy, x_fy, y_fy), "ferry_matmul_out")

        def verify_mm(x_np=x_np, y_np=y_np, z_view=z_view):
            ref = x_np.astype(np.float64) @ y_np.astype(np.float64)
            if np.max(np.abs(z_view - ref)) > 1e-4 * np.max(np.abs(ref)):
                sys.exit(f"compare_numpy: ferry_matmul_out {m}x{m} differs from float64")

        run(f"np.matmul_{m}", "matmul out=", f"{m}x{m}", "GFLOP/s", 2.0 * m ** 3,
            lambda x=x_np, y=y_np, z=z_np: np.matmul(x, y, out=z), fy_mm, verify_mm)
        for t in (x_fy, y_fy, z_fy):
            fy.lib.ferry_tensor_release(t)

    for t in held:
        fy.lib.ferry_tensor_release(t)

    # Issue 12's goal: matmul at least as fast as NumPy (its own OpenBLAS) at every size.
    def goal_of(fid):
        return 1.0 if fid.startswith("np.matmul_") else None

    print(f"\n{'op':<22} {'size':>10} {'numpy':>16} {'ferry':>16} {'ratio':>7} {'goal':>7} "
          f"{'met':>4}  note")
    failed = 0
    for fid, op, size, unit, v_np, v_fy, note in results:
        goal = goal_of(fid)
        gtxt = f">= {goal:.2f}" if goal else ""
        if v_fy is None:
            failed += 1
            print(f"{op:<22} {size:>10} {v_np:>10.2f} {unit:<5} {'failed':>16} {'':>7} "
                  f"{gtxt:>7} {'':>4}  {note}")
        else:
            r = v_fy / v_np
            met = ("yes" if r >= goal else "NO") if goal else ""
            print(f"{op:<22} {size:>10} {v_np:>10.2f} {unit:<5} {v_fy:>10.2f} {unit:<5} "
                  f"{r:>7.3f} {gtxt:>7} {met:>4}  "
                  f"{'ferry faster' if v_fy > v_np else 'NumPy faster'}")
    print()
    for fid, op, size, unit, v_np, v_fy, note in results:
        key = "gflops" if unit == "GFLOP/s" else "gbps"
        goal = goal_of(fid)
        if v_fy is None:
            print(f'BENCH figure={fid} numpy_{key}={v_np:.3f} failed="{note}"')
        else:
            r = v_fy / v_np
            extra = f" goal_min={goal:.2f} met={int(r >= goal)}" if goal else ""
            print(f"BENCH figure={fid} ratio={r:.4f} numpy_{key}={v_np:.3f} "
                  f"ferry_{key}={v_fy:.3f}{extra}")
    fy.lib.ferry_shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
