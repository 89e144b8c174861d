"""Advanced indexing (t[idx], t[idx] = v, index_put) against PyTorch where it is
installed, else NumPy (for keys where the two agree: NumPy counts an int mixed with
index arrays as one of them, PyTorch removes its dim first), on every device."""
import numpy as np
import pytest

import ferry


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


TORCH = _torch()
DEVICES = [d for d in ("cpu", "sim:0", "opencl:0")
           if d == "cpu" or ferry.is_available(d.split(":")[0])]

SHAPE = (3, 4, 5)
BASE = np.arange(60, dtype=np.float32).reshape(SHAPE)
MASK = BASE > 37.0
MASK2 = BASE[0] % 3 == 1  # (4, 5)


def _fe(a, dev="cpu"):
    return ferry.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dev)


# (name, key builder taking a converter of index arrays, NumPy agrees with torch)
def _keys():
    k = []
    k.append(("list", lambda c: [0, 2], True))
    k.append(("negative", lambda c: [-1, -3, 0], True))
    k.append(("tensor int64", lambda c: c(np.array([2, 0, 1]), "int64"), True))
    k.append(("tensor int32", lambda c: c(np.array([2, 0]), "int32"), True))
    k.append(("2-D index", lambda c: c(np.array([[0, 1], [2, 0]]), "int64"), True))
    k.append(("two adjacent", lambda c: ([0, 2], [1, 3]), True))
    k.append(("second dim", lambda c: (slice(None), [0, 3, 3]), True))
    k.append(("separated by a slice", lambda c: ([0, 2], slice(None), [1, 4]), True))
    k.append(("separated, broadcast", lambda c: (c(np.array([[0], [2]]), "int64"), slice(None), [1, 4, 0]), True))
    k.append(("ellipsis", lambda c: (Ellipsis, [0, 4]), True))
    k.append(("ellipsis between", lambda c: ([1], Ellipsis, [0, 4]), True))
    k.append(("None before", lambda c: (None, [0, 1]), True))
    k.append(("None after", lambda c: ([0, 1], None), True))
    k.append(("slices around", lambda c: (slice(1, 3), [0, 2], slice(None, None, 2)), True))
    k.append(("int then index", lambda c: (1, slice(None), [0, 1]), False))
    k.append(("index then int", lambda c: ([0, 2], 1), False))
    k.append(("0-d int tensor", lambda c: (c(np.array(1), "int64"), [0, 1]), False))
    k.append(("empty list", lambda c: [], True))
    k.append(("empty tensor", lambda c: (slice(None), c(np.zeros(0, dtype=np.int64), "int64")), True))
    k.append(("numpy array", lambda c: np.array([2, 1]), True))
    k.append(("every dim", lambda c: ([0, 1], [1, 2], [2, 3]), True))
    k.append(("mask", lambda c: c(MASK, "bool"), True))
    k.append(("mask of two dims", lambda c: (slice(None), c(MASK2, "bool")), True))
    k.append(("mask and index", lambda c: (c(np.array([True, False, True]), "bool"), [0, 3]), True))
    k.append(("bool list", lambda c: [True, False, True], True))
    k.append(("True", lambda c: True, True))
    k.append(("False", lambda c: False, True))
    k.append(("True with index", lambda c: (slice(None), True, [0, 1]), True))
    return k


KEYS = _keys()


def _to_ferry(dev):
    def conv(a, dt):
        return ferry.tensor(a.tolist(), dtype=getattr(ferry, dt), device=dev)
    return conv


def _to_torch(a, dt):
    return TORCH.tensor(a.tolist(), dtype=getattr(TORCH, dt))


def _to_numpy(a, dt):
    return np.asarray(a)


def _reference(build, numpy_ok, base=BASE):
    """The expected t[key] as a NumPy array, or None (skip) without a reference."""
    if TORCH is not None:
        return TORCH.tensor(base)[build(_to_torch)].numpy()
    if not numpy_ok:
        return None
    return base[build(_to_numpy)]


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name,build,numpy_ok", KEYS, ids=[k[0] for k in KEYS])
def test_read_matches_reference(dev, name, build, numpy_ok):
    ref = _reference(build, numpy_ok)
    if ref is None:
        pytest.skip("PyTorch is not installed and NumPy places this key otherwise")
    got = _fe(BASE, dev)[build(_to_ferry(dev))]
    assert tuple(got.shape) == ref.shape, name
    assert np.array_equal(np.array(got.cpu().tolist(), dtype=np.float32).reshape(ref.shape), ref)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name,build,numpy_ok", KEYS, ids=[k[0] for k in KEYS])
def test_write_matches_reference(dev, name, build, numpy_ok):
    if TORCH is None and not numpy_ok:
        pytest.skip("PyTorch is not installed and NumPy places this key otherwise")
    if TORCH is not None:
        ref_t = TORCH.tensor(BASE)
        shape = ref_t[build(_to_torch)].shape
    else:
        shape = BASE[build(_to_numpy)].shape
    # distinct values, so a misplaced write shows; keys here name distinct elements
    vals = (np.arange(int(np.prod(shape)), dtype=np.float32) + 100).reshape(shape)
    if TORCH is not None:
        ref_t[build(_to_torch)] = TORCH.tensor(vals)
        ref = ref_t.numpy()
    else:
        ref = BASE.copy()
        ref[build(_to_numpy)] = vals
    t = _fe(BASE, dev)
    t[build(_to_ferry(dev))] = _fe(vals, dev)
    assert np.array_equal(np.array(t.cpu().tolist(), dtype=np.float32), ref), name
    # a number, broadcast
    t = _fe(BASE, dev)
    t[build(_to_ferry(dev))] = -1
    ref2 = BASE.copy()
    sel = np.zeros(SHAPE, dtype=bool)
    if TORCH is not None:
        m = TORCH.zeros(SHAPE, dtype=TORCH.bool)
        m[build(_to_torch)] = True
        sel = m.numpy()
    else:
        sel[build(_to_numpy)] = True
    ref2[sel] = -1
    assert np.array_equal(np.array(t.cpu().tolist(), dtype=np.float32), ref2), name


@pytest.mark.parametrize("dev", DEVICES)
def test_write_values_of_every_kind(dev):
    t = ferry.zeros(2, 3, device=dev)
    t[[0, 1], [1, 2]] = ferry.tensor([1.0, 2.0], dtype=ferry.float64, device=dev)  # cast
    t[[1], [0]] = [5]
    t[ferry.tensor([0]), 0] = np.array([7.0])
    assert t.cpu().tolist() == [[7.0, 1.0, 0.0], [5.0, 0.0, 2.0]]
    t[t > 1.5] = 0
    assert t.cpu().tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    i = ferry.zeros(4, dtype=ferry.int32, device=dev)
    i[[0, 2]] = 2.0**31 - 1
    assert i.cpu().tolist() == [2147483647, 0, 2147483647, 0]


@pytest.mark.parametrize("dev", DEVICES)
def test_index_put_accumulates_duplicates(dev):
    t = ferry.zeros(4, device=dev)
    idx = ferry.tensor([1, 1, -1, 1], device=dev)
    v = ferry.tensor([1.0, 2.0, 3.0, 4.0], device=dev)
    r = t.index_put((idx,), v, accumulate=True)
    assert r.cpu().tolist() == [0.0, 7.0, 0.0, 3.0]
    assert t.cpu().tolist() == [0.0, 0.0, 0.0, 0.0]
    assert t.index_put_((idx,), v, True) is t
    assert t.cpu().tolist() == [0.0, 7.0, 0.0, 3.0]
    r = ferry.index_put(t, (None if False else idx,), ferry.tensor(1.0, device=dev), accumulate=True)
    assert r.cpu().tolist() == [0.0, 10.0, 0.0, 4.0]
    # assignment of duplicates: one of them wins
    r = ferry.index_put(ferry.zeros(2, device=dev), (ferry.tensor([0, 0], device=dev),),
                        ferry.tensor([1.0, 2.0], device=dev))
    assert r.cpu().tolist()[0] in (1.0, 2.0)
    # None skips a dim
    m = ferry.zeros(2, 3, device=dev)
    m.index_put_((None, ferry.tensor([2, 0], device=dev)), ferry.tensor(1.0, device=dev))
    assert m.cpu().tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    if TORCH is not None:
        tt = TORCH.zeros(2, 3)
        tt.index_put_((TORCH.tensor([1, 1, 0]), TORCH.tensor([2, 2, 0])), TORCH.tensor(1.5), accumulate=True)
        f = ferry.zeros(2, 3, device=dev)
        f.index_put_((ferry.tensor([1, 1, 0], device=dev), ferry.tensor([2, 2, 0], device=dev)),
                     ferry.tensor(1.5, device=dev), accumulate=True)
        assert f.cpu().tolist() == tt.tolist()


def test_gradients_flow_through_index_and_writes():
    x = _fe(BASE)
    x.requires_grad_(True)
    y = x[[0, 0, 2], :, [1, 1, 4]]  # separated: (3, 4), duplicates accumulate
    y.sum().backward()
    g = np.zeros(SHAPE, dtype=np.float32)
    np.add.at(g, ([0, 0, 2], slice(None), [1, 1, 4]), 1.0)
    assert np.array_equal(np.array(x.grad.tolist(), dtype=np.float32), g)

    # t[idx] = v on a non-leaf is recorded: self's written places get no gradient, v
    # gets the gradient of the places it went to
    a = ferry.ones(4, requires_grad=True)
    v = ferry.tensor([2.0, 3.0], requires_grad=True)
    b = a * 2
    b[[1, 3]] = v
    (b * ferry.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    assert a.grad.tolist() == [2.0, 0.0, 200.0, 0.0]
    assert v.grad.tolist() == [10.0, 1000.0]

    # accumulate keeps self's gradient; a broadcast value sums its gradient
    a = ferry.ones(2, 3, requires_grad=True)
    w = ferry.tensor(1.0, requires_grad=True)
    c = (a * 1).index_put((ferry.tensor([0, 0]), ferry.tensor([1, 1])), w, accumulate=True)
    c.sum().backward()
    assert a.grad.tolist() == [[1.0] * 3] * 2
    assert w.grad.item() == 2.0


def test_errors_as_torch():
    t = ferry.zeros(2, 3)
    leaf = ferry.zeros(3, requires_grad=True)
    cases = [
        (lambda: t[[0, 5]], IndexError, "index 5 is out of bounds for dimension 0 with size 2"),
        (lambda: t[:, [3]], IndexError, "out of bounds"),
        (lambda: t[[0, 1], [0, 1, 2]], IndexError,
         "shape mismatch: indexing tensors could not be broadcast together with shapes [2], [3]"),
        (lambda: t[ferry.tensor([0.5])], IndexError,
         "tensors used as indices must be long, int, byte or bool tensors"),
        (lambda: t[[0], [0], [0]], IndexError, "too many indices for tensor of dimension 2"),
        (lambda: t[ferry.tensor([True, False, True])], IndexError,
         "The shape of the mask [3] at index 0 does not match the shape of the indexed tensor "
         "[2, 3] at index 0"),
        (lambda: t.__setitem__([0, 1], ferry.ones(3, 3)), RuntimeError,
         "shape mismatch: value tensor of shape [3, 3] cannot be broadcast to indexing result "
         "of shape [2, 3]"),
        (lambda: leaf.__setitem__([0], 1.0), RuntimeError,
         "a leaf Variable that requires grad is being used in an in-place operation."),
        (lambda: t.index_put_(([0],), ferry.ones(1)), TypeError, "must be tuple of Tensors"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc) as e:
            fn()
        assert msg in str(e.value)
    if TORCH is not None:
        tt = TORCH.zeros(2, 3)
        tleaf = TORCH.zeros(3, requires_grad=True)
        tcases = [lambda: tt[[0, 5]], lambda: tt[:, [3]], lambda: tt[[0, 1], [0, 1, 2]],
                  lambda: tt[TORCH.tensor([0.5])], lambda: tt[[0], [0], [0]],
                  lambda: tt[TORCH.tensor([True, False, True])],
                  lambda: tt.__setitem__([0, 1], TORCH.ones(3, 3)),
                  lambda: tleaf.__setitem__([0], 1.0),
                  lambda: tt.index_put_(([0],), TORCH.ones(1))]
        assert len(tcases) == len(cases)
        for fn, (_, exc, _) in zip(tcases, cases):
            with pytest.raises(exc):
                fn()


@pytest.mark.parametrize("dev", [d for d in DEVICES if d != "cpu"])
def test_devices_equal_cpu(dev):
    idx = ([2, 0, 2], slice(None), [[1], [4]])
    a = _fe(BASE)[idx]
    b = _fe(BASE, dev)[idx]
    assert b.cpu().tolist() == a.tolist()
    t1, t2 = ferry.zeros(3, 4), ferry.zeros(3, 4, device=dev)
    for t in (t1, t2):
        t.index_put_((ferry.tensor([0, 2, 0], device=t.device), ferry.tensor([1, 3, 1], device=t.device)),
                     ferry.tensor([1.0, 2.0, 4.0], device=t.device), accumulate=True)
    assert t2.cpu().tolist() == t1.tolist()
    # torch numbers the index tensors, not the tensor's dims: [:, [9]] names dimension 0.
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 0 with size 4"):
        ferry.zeros(3, 4, device=dev)[:, [9]]
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 1 with size 4"):
        ferry.zeros(2, 3, 4, device=dev)[[0], :, [9]]


def test_accumulate_large_with_duplicates_is_exact():
    # big enough for the cpu's threads: split by the first dim (indices on dim 1) and by
    # columns (indices on dim 0); integer values, so the sums are exact
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 300, size=2000)
    vals = rng.integers(-4, 5, size=(256, 2000)).astype(np.float32)
    want = np.zeros((256, 300), dtype=np.float32)
    np.add.at(want, (slice(None), idx), vals)
    t = ferry.zeros(256, 300)
    t.index_put_((None, ferry.tensor(idx.tolist())), ferry.from_numpy(vals), accumulate=True)
    assert np.array_equal(t.numpy(), want)

    rows = rng.integers(0, 50, size=1000)
    vals = rng.integers(-4, 5, size=(1000, 1024)).astype(np.float32)
    want = np.zeros((50, 1024), dtype=np.float32)
    np.add.at(want, rows, vals)
    t = ferry.zeros(50, 1024)
    t.index_put_((ferry.tensor(rows.tolist()),), ferry.from_numpy(vals), accumulate=True)
    assert np.array_equal(t.numpy(), want)
    # the backward of t[idx] is this accumulation
    x = ferry.zeros(50, 1024, requires_grad=True)
    x[ferry.tensor(rows.tolist())].backward(ferry.from_numpy(vals))
    assert np.array_equal(x.grad.numpy(), want)


@pytest.mark.parametrize("dt", ["int64", "int32"])
def test_whole_rows_large_with_negative_indices(dt):
    # t[idx] over whole rows, big enough for the cpu's threads (the index_select walk)
    rng = np.random.default_rng(11)
    base = rng.standard_normal((5000, 16)).astype(np.float32)
    idx = rng.integers(-5000, 5000, size=40000)
    t = ferry.from_numpy(base)
    got = t[ferry.from_numpy(idx.astype(dt))]
    assert np.array_equal(got.numpy(), base[idx])
    # a view with a row stride: rows of 8 out of 16
    assert np.array_equal(t[:, 4:12][ferry.from_numpy(idx.astype(dt))].numpy(), base[:, 4:12][idx])
    bad = idx.copy()
    bad[-7] = 5000
    with pytest.raises(IndexError, match="index 5000 is out of bounds for dimension 0 with size 5000"):
        t[ferry.from_numpy(bad.astype(dt))]


def test_scalar_bool_tensor_and_view_writes():
    t = _fe(BASE)
    assert tuple(t[ferry.tensor(True)].shape) == (1, 3, 4, 5)
    # a 0-d bool is a new dim indexed by [] or [0], broadcast with the other indices
    assert tuple(t[ferry.tensor(False), [0]].shape) == (0, 4, 5)
    assert tuple(t[ferry.tensor(True), [0, 1]].shape) == (2, 4, 5)
    assert tuple(t[0, ferry.tensor(True)].shape) == (1, 4, 5)
    # a write through ints/slices lands in the base
    t[1, :, [0, 4]] = -5.0
    ref = BASE.copy()
    ref[1][:, [0, 4]] = -5.0
    assert np.array_equal(t.numpy(), ref)
    # with grad: a write into a view of a non-leaf is refused with a clear error
    a = ferry.ones(2, 3, requires_grad=True)
    b = a * 1
    with pytest.raises(RuntimeError, match="view"):
        b[0, [0, 1]] = ferry.tensor([1.0, 2.0])


def test_many_index_tensors():
    # More index tensors than a kernel's stack of descriptors holds: six broadcast
    # together, and 64 one-element masks over 64 dims (each mask owns three tensors).
    a = ferry.arange(216.0).reshape(2, 3, 2, 3, 2, 3)
    i, j = [[1, 0]], [[2], [0]]
    key = tuple(ferry.tensor(v) for v in (i, j, i, j, i, j))
    want = [[a[1, 2, 1, 2, 1, 2].item(), a[0, 2, 0, 2, 0, 2].item()],
            [a[1, 0, 1, 0, 1, 0].item(), a[0, 0, 0, 0, 0, 0].item()]]
    assert a[key].tolist() == want
    t = ferry.zeros([1] * 64)
    masks = tuple([ferry.tensor([True])] * 64)
    assert tuple(t[masks].shape) == (1,)
    t[masks] = 5
    assert t.sum().item() == 5.0


@pytest.mark.parametrize("dev", [d for d in DEVICES if d == "opencl:0"])
def test_many_index_tensors_run_on_the_device(dev):
    # Six index tensors (more than a device kernel takes as arguments: they are composed
    # into one offset first) for read, write and accumulate, with no cpu fallback.
    base = np.arange(216, dtype=np.float32).reshape(2, 3, 2, 3, 2, 3)
    i, j = [[1, 0]], [[2], [0]]
    key_np = (np.array(i), np.array(j)) * 3
    ferry.fallback_stats(dev, reset=True)
    a = _fe(base, dev)
    key = tuple(ferry.tensor(v, device=dev) for v in (i, j, i, j, i, j))
    assert np.array_equal(a[key].cpu().numpy(), base[key_np])
    a[key] = ferry.tensor([[1.0, 2.0], [3.0, 4.0]], device=dev)
    want = base.copy()
    want[key_np] = [[1.0, 2.0], [3.0, 4.0]]
    assert np.array_equal(a.cpu().numpy(), want)
    dup = tuple(ferry.tensor([1, 1, 0, 1], device=dev) for _ in range(6))
    a.index_put_(dup, ferry.tensor([1.0, 2.0, 4.0, 8.0], device=dev), accumulate=True)
    want[(1,) * 6] += 11.0
    want[(0,) * 6] += 4.0
    assert np.array_equal(a.cpu().numpy(), want)
    assert sum(ferry.fallback_stats(dev).values()) == 0
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 4 with size 2"):
        a[tuple(ferry.tensor([5 if k == 4 else 0], device=dev) for k in range(6))]
