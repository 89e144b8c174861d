"""sort, argsort, topk and msort: values and indices against a stable reference written
here (NaN largest, -0.0 == +0.0, equal keys in input order, which every ferry kernel
keeps), and against torch where it is installed."""
import functools
import math

import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the comparisons with torch are skipped, the rest runs
    torch = None


def _cmp(a, b):
    na, nb = math.isnan(a), math.isnan(b)
    if na or nb:
        return 0 if na == nb else (1 if na else -1)
    return -1 if a < b else (1 if a > b else 0)


def ref_order(row, descending):
    sign = -1 if descending else 1
    return sorted(range(len(row)), key=functools.cmp_to_key(
        lambda i, j: sign * _cmp(float(row[i]), float(row[j]))))


def ref_sort(x, dim, descending, k=None):
    """(values, indices) of numpy array x along dim: the first k of the stable order."""
    xm = np.moveaxis(x, dim, -1)
    n = xm.shape[-1]
    k = n if k is None else k
    vals = np.empty(xm.shape[:-1] + (k,), dtype=x.dtype)
    idx = np.empty(xm.shape[:-1] + (k,), dtype=np.int64)
    for pos in np.ndindex(*xm.shape[:-1]):
        o = ref_order(xm[pos], descending)[:k]
        idx[pos] = o
        vals[pos] = xm[pos][o]
    return np.moveaxis(vals, -1, dim), np.moveaxis(idx, -1, dim)


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    if a.dtype.kind == "f":
        assert np.array_equal(np.isnan(a), np.isnan(b))
        m = ~np.isnan(a)
        assert np.array_equal(a[m], b[m])
    else:
        assert np.array_equal(a, b)


DTYPES = ["float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def make(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        x = (rng.integers(-8, 8, shape) * 0.5).astype(dtype)
        x.flat[::7] = np.nan
        x.flat[3::11] = -0.0
        return x
    lo = 0 if dtype == "uint8" else -20
    return rng.integers(lo, 20, shape).astype(dtype)


def on(x, device):
    return ferry.from_numpy(np.ascontiguousarray(x)).to(device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((40,), 0), ((5, 33), -1), ((33, 5), 0), ((3, 9, 4), 1)])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_stable_reference(dtype, shape, dim, descending):
    x = make(dtype, shape)
    r = on(x, "cpu").sort(dim, descending, stable=True)
    rv, ri = ref_sort(x, dim, descending)
    same(r.values.numpy(), rv)
    same(r.indices.numpy(), ri)
    v, i = ferry.sort(on(x, "cpu"), dim=dim, descending=descending)
    same(i.numpy(), ri)
    same(ferry.argsort(on(x, "cpu"), dim=dim, descending=descending).numpy(), ri)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "bool"])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_stable_reference(dtype, largest):
    x = make(dtype, (4, 50), seed=3)
    for k in (0, 1, 3, 50):
        r = on(x, "cpu").topk(k, largest=largest)
        rv, ri = ref_sort(x, 1, largest, k)
        same(r.values.numpy(), rv)
        same(r.indices.numpy(), ri)
    v, i = ferry.topk(on(x, "cpu"), 2, 0, largest, True)
    rv, ri = ref_sort(x, 0, largest, 2)
    same(v.numpy(), rv)
    same(i.numpy(), ri)


def test_on_a_device_matches_cpu(device):
    for dtype in ("float32", "int64", "float16", "uint8"):
        x = make(dtype, (6, 70), seed=5)
        for desc in (False, True):
            a = on(x, device).sort(-1, desc)
            b = on(x, "cpu").sort(-1, desc)
            assert str(a.values.device) == device
            same(a.values.cpu().numpy(), b.values.numpy())
            same(a.indices.cpu().numpy(), b.indices.numpy())
            t = on(x, device).topk(4, 0, desc)
            u = on(x, "cpu").topk(4, 0, desc)
            same(t.values.cpu().numpy(), u.values.numpy())
            same(t.indices.cpu().numpy(), u.indices.numpy())


def test_result_types_zero_dim_empty_and_msort():
    r = ferry.tensor([3.0, 1.0, 2.0]).sort()
    assert type(r).__name__ == "sort" and isinstance(r, tuple) and len(r) == 2
    assert r.values.tolist() == [1.0, 2.0, 3.0] and r.indices.dtype == ferry.int64
    assert type(ferry.tensor([1.0]).topk(1)).__name__ == "topk"
    z = ferry.tensor(5.0)
    assert z.sort().values.item() == 5.0 and z.sort().indices.item() == 0
    assert z.topk(1).values.item() == 5.0 and z.topk(0).values.item() == 5.0
    e = ferry.zeros((0, 3)).sort(0)
    assert tuple(e.values.shape) == (0, 3) and e.indices.dtype == ferry.int64
    m = ferry.tensor([[2, 1], [0, 5]]).msort()
    assert m.tolist() == [[0, 1], [2, 5]]
    assert ferry.msort(ferry.tensor([[2, 1], [0, 5]])).tolist() == [[0, 1], [2, 5]]


def test_errors_follow_pytorch():
    t = ferry.tensor([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        t.topk(4)
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        ferry.tensor(1.0).topk(2)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range "
                                         r"of \[-1, 0\], but got 1\)"):
        t.sort(1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        ferry.argsort(t, -2)
    with pytest.raises(NotImplementedError, match="topk does not support bool dtypes"):
        ferry.tensor([True, False]).topk(1)
    with pytest.raises(TypeError, match="must be bool"):
        t.sort(descending=1)
    with pytest.raises(TypeError):
        ferry.sort([1, 2])


def test_gradient_scatters_to_the_indices(device):
    for dev in ("cpu", device):
        x = ferry.tensor([[1.0, 4.0, 2.0], [0.5, -1.0, 3.0]], device=dev, requires_grad=True)
        v, _ = x.sort(1, descending=True)
        w = ferry.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=dev)
        (v * w).sum().backward()
        assert x.grad.cpu().tolist() == [[3.0, 1.0, 2.0], [5.0, 6.0, 4.0]]
        assert v.grad_fn.name() == "SortBackward0"
        y = ferry.tensor([[1.0, 4.0, 2.0]], device=dev, requires_grad=True)
        t = y.topk(2)
        t.values.sum().backward()
        assert y.grad.cpu().tolist() == [[0.0, 1.0, 1.0]]
        assert t.values.grad_fn.name() == "TopkBackward0"


@pytest.mark.skipif(torch is None, reason="torch is not installed: the comparison with "
                    "torch.sort/topk is skipped (the stable reference above still runs)")
def test_same_as_torch():
    rng = np.random.default_rng(11)
    x = (rng.integers(-5, 5, (7, 64)) * 0.25).astype(np.float32)
    x[0, 3] = np.nan
    x[2, ::5] = -0.0
    for desc in (False, True):
        a = ferry.from_numpy(x).sort(1, desc, stable=True)
        b = torch.from_numpy(x).sort(dim=1, descending=desc, stable=True)
        same(a.values.numpy(), b.values.numpy())
        same(a.indices.numpy(), b.indices.numpy())
    a = ferry.from_numpy(x).topk(5, 1)
    b = torch.from_numpy(x).topk(5, 1)
    same(a.values.numpy(), b.values.numpy())
    xt = torch.from_numpy(x).requires_grad_()
    xf = ferry.from_numpy(x.copy())
    xf.requires_grad_()
    torch.sort(xt, 0)[0].pow(2).sum().backward()
    ferry.sort(xf, 0)[0].pow(2).sum().backward()
    assert np.allclose(xf.grad.numpy(), xt.grad.numpy(), equal_nan=True)


# One long float32/int32 row on the cpu: msort (values only) against numpy.sort bit for
# bit (-0.0 before +0.0 from the threaded length on, NaNs as one quiet NaN), sort with
# indices against a stable lexsort, at lengths around the cpu's thresholds (threads from
# 2^17 elements, streamed stores from 2^20 and 2^21) and with data spread over many top
# bits, crowded into a few, or equal in their top bits (the cpu then takes its MSD digit
# lower down). The thread count is read once per process, so each count runs in a child.
_LONG_ROWS = r"""
import numpy as np, ferry
rng = np.random.default_rng(5)
bad = []
for n in (131071, 131072, 131089, (1 << 20) + 3, (1 << 21) + 7):
    for kind in ("normal", "special", "crowded", "one_exponent", "int32", "int32_ext",
                 "int32_small", "constant"):
        if kind == "normal":
            x = rng.standard_normal(n, dtype=np.float32)
        elif kind == "special":
            x = (rng.standard_normal(n, dtype=np.float32) * 1e30).astype(np.float32)
            for v, step in ((np.nan, 7), (-0.0, 11), (0.0, 13), (np.inf, 17), (-np.inf, 19),
                            (1e-45, 23)):
                x[rng.integers(0, n, n // step)] = v
        elif kind == "crowded":
            x = (rng.integers(-8, 8, n) * 0.5).astype(np.float32)
            x[::9] = -0.0
        elif kind == "one_exponent":
            x = (1 + rng.random(n, dtype=np.float32)).astype(np.float32)
        elif kind == "int32_small":
            x = rng.integers(0, 1000, n).astype(np.int32)
        elif kind == "constant":
            x = np.full(n, 7, np.int32)
        elif kind == "int32":
            x = rng.integers(-2**31, 2**31, n, dtype=np.int64).astype(np.int32)
        else:
            x = rng.integers(-2**31, 2**31, n, dtype=np.int64).astype(np.int32)
            x[::5], x[::7], x[::9], x[::11] = -2**31, 2**31 - 1, 0, -1
        t = ferry.from_numpy(x)
        want = np.sort(x)
        # Below the threaded length msort is the stable sort (zeros in input order).
        if x.dtype == np.float32 and n >= 131072:
            z = np.nonzero(want == 0)[0]
            nneg = int(np.count_nonzero((x == 0) & np.signbit(x)))
            want[z[:nneg]], want[z[nneg:]] = -0.0, 0.0
        key = np.where(np.isnan(x), np.inf, x).astype(np.float64)
        last = np.isnan(x)
        if n < 131072:
            want = x[np.lexsort((np.arange(n), key, last))]
        got = ferry.msort(t).numpy()
        if x.dtype == np.float32:
            got[np.isnan(got)] = np.float32(np.nan)
            want[np.isnan(want)] = np.float32(np.nan)
        if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            bad.append((n, kind, "msort"))
        for desc in (False, True):
            o = np.lexsort((np.arange(n), -key if desc else key, ~last if desc else last))
            v, i = t.sort(descending=desc)
            if not (np.array_equal(i.numpy(), o) and
                    np.array_equal(v.numpy().view(np.uint32), x[o].view(np.uint32))):
                bad.append((n, kind, "sort", desc))
assert not bad, bad
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_cpu_long_row_sorts(threads):
    import os
    import subprocess
    import sys
    env = dict(os.environ, FERRY_NUM_THREADS=threads)
    r = subprocess.run([sys.executable, "-c", _LONG_ROWS], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
