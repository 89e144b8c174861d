"""Selection ops (nonzero, argwhere, masked_select, masked_scatter) against PyTorch where
it is installed, and against values worked out by hand otherwise; on every device."""
import math

import pytest

import ferry


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _devices():
    return [d for d in ("cpu", "sim:0", "opencl:0")
            if d == "cpu" or ferry.is_available(d.split(":")[0])]


DATA = [[1.0, 0.0, 2.0], [0.0, -0.0, math.nan], [3.0, 0.0, 0.5]]


@pytest.mark.parametrize("dev", _devices())
def test_nonzero_values(dev):
    t = ferry.tensor(DATA, device=dev)
    want = [[0, 0], [0, 2], [1, 2], [2, 0], [2, 2]]
    assert t.nonzero().tolist() == want
    assert ferry.argwhere(t).tolist() == want
    assert t.argwhere().tolist() == want
    rows, cols = ferry.nonzero(t, as_tuple=True)
    assert rows.tolist() == [0, 0, 1, 2, 2] and cols.tolist() == [0, 2, 2, 0, 2]
    assert rows.device == t.device and rows.dtype == ferry.int64
    # Transposed input: positions follow the view's own row-major order.
    assert t.T.nonzero().tolist() == [[0, 0], [0, 2], [2, 0], [2, 1], [2, 2]]


def test_nonzero_shapes_of_0d_and_empty():
    assert tuple(ferry.nonzero(ferry.tensor(3.0)).shape) == (1, 0)
    assert tuple(ferry.nonzero(ferry.tensor(0)).shape) == (0, 0)
    assert tuple(ferry.zeros(2, 0, 3).nonzero().shape) == (0, 3)
    (only,) = ferry.nonzero(ferry.tensor(5), as_tuple=True)
    assert only.tolist() == [0]
    (none,) = ferry.nonzero(ferry.tensor(0), as_tuple=True)
    assert none.tolist() == []


@pytest.mark.parametrize("dev", _devices())
def test_masked_select_and_scatter_values(dev):
    t = ferry.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=dev)
    m = ferry.tensor([True, False, True], device=dev)
    assert t.masked_select(m).tolist() == [1.0, 3.0, 4.0, 6.0]
    assert ferry.masked_select(t, mask=m).tolist() == [1.0, 3.0, 4.0, 6.0]
    src = ferry.tensor([10.0, 20.0, 30.0, 40.0, 50.0], device=dev)
    want = [[10.0, 2.0, 20.0], [30.0, 5.0, 40.0]]
    assert t.masked_scatter(m, src).tolist() == want
    assert ferry.masked_scatter(t, m, src).tolist() == want
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert t.masked_scatter_(m, src) is t
    assert t.tolist() == want


def test_against_torch():
    torch = _torch()
    if torch is None:
        pytest.skip("torch is not installed: compared by hand above only")
    import numpy as np
    rng = np.random.default_rng(5)
    for shape in [(7,), (4, 5), (2, 3, 4), (3, 1, 2, 5)]:
        a = rng.integers(-2, 3, size=shape).astype(np.float32)
        for dev in _devices():
            f = ferry.tensor(a.tolist(), device=dev)
            ta = torch.tensor(a)
            assert f.nonzero().tolist() == ta.nonzero().tolist()
            for got, want in zip(ferry.nonzero(f, as_tuple=True), torch.nonzero(ta, as_tuple=True)):
                assert got.tolist() == want.tolist()
            m = a > 0
            assert f.masked_select(ferry.tensor(m.tolist(), device=dev)).tolist() == \
                ta.masked_select(torch.tensor(m)).tolist()
            # A mask broadcasting the input up.
            big = rng.integers(0, 2, size=(2,) + shape).astype(bool)
            assert f.masked_select(ferry.tensor(big.tolist(), device=dev)).tolist() == \
                ta.masked_select(torch.tensor(big)).tolist()
            src = rng.standard_normal(big.size).astype(np.float32)
            got = f.masked_scatter(ferry.tensor(big.tolist(), device=dev),
                                   ferry.tensor(src.tolist(), device=dev))
            want = ta.masked_scatter(torch.tensor(big), torch.tensor(src))
            assert got.tolist() == want.tolist()


def test_gradients_against_torch():
    torch = _torch()
    if torch is None:
        pytest.skip("torch is not installed")
    x = [[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]]
    mask = [[True], [False]]
    fx = ferry.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    fm = ferry.tensor(mask).expand(2, 3)
    tm = torch.tensor(mask).expand(2, 3)
    fy = fx.masked_select(fm)
    ty = tx.masked_select(tm)
    assert fy.grad_fn.name() == "MaskedSelectBackward0"
    (fy * ferry.tensor([1.0, 2.0, 3.0])).sum().backward()
    (ty * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert fx.grad.tolist() == tx.grad.tolist()

    fs = ferry.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    ts = torch.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    fx.grad = None
    tx.grad = None
    w = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    (fx.masked_scatter(fm, fs) * ferry.tensor(w)).sum().backward()
    (tx.masked_scatter(tm, ts) * torch.tensor(w)).sum().backward()
    assert fx.grad.tolist() == tx.grad.tolist()
    assert fs.grad.tolist() == ts.grad.tolist()


def test_errors_match_torch():
    t = ferry.ones(2, 3)
    with pytest.raises(RuntimeError, match="masked_select: expected BoolTensor for mask"):
        t.masked_select(ferry.ones(2, 3, dtype=ferry.uint8))
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        t.masked_select(ferry.ones(4, dtype=ferry.bool))
    with pytest.raises(RuntimeError, match="Number of elements of source < number of ones in mask"):
        t.masked_scatter(ferry.ones(3, dtype=ferry.bool), ferry.ones(5))
    with pytest.raises(RuntimeError, match="expected self and source to have same dtypes"):
        t.masked_scatter(ferry.ones(3, dtype=ferry.bool), ferry.ones(6, dtype=ferry.int64))
    with pytest.raises(RuntimeError, match="The expanded size of the tensor"):
        t.masked_scatter_(ferry.ones(4, 3, dtype=ferry.bool), ferry.ones(12))
    with pytest.raises(TypeError):
        t.masked_select([True, False, True])
    with pytest.raises(TypeError):
        ferry.nonzero(t, True)  # as_tuple is keyword-only, as torch
