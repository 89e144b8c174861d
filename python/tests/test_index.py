"""Indexing ops (index_select, gather, scatter, scatter_add) against PyTorch where it is
installed, and against values worked out by hand otherwise."""
import pytest

import ferry


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


DEVICES = ["cpu", "sim:0", "opencl:0"]


def _devices():
    out = []
    for d in DEVICES:
        if d == "cpu" or ferry.is_available(d.split(":")[0]):
            out.append(d)
    return out


@pytest.mark.parametrize("dev", _devices())
def test_index_select_and_gather_values(dev):
    t = ferry.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=dev)
    idx = ferry.tensor([2, -3, 2], device=dev)
    assert t.index_select(1, idx).tolist() == [[3.0, 1.0, 3.0], [6.0, 4.0, 6.0]]
    assert ferry.index_select(t, dim=0, index=ferry.tensor([1], device=dev)).tolist() == [[4.0, 5.0, 6.0]]
    g = ferry.tensor([[0, 0], [1, 0]], device=dev)
    assert t.gather(1, g).tolist() == [[1.0, 1.0], [5.0, 4.0]]
    assert ferry.gather(t, 1, index=g).tolist() == [[1.0, 1.0], [5.0, 4.0]]


@pytest.mark.parametrize("dev", _devices())
def test_scatter_and_scatter_add_values(dev):
    z = ferry.zeros(3, 2, device=dev)
    idx = ferry.tensor([[0, 1], [2, 0]], device=dev)
    src = ferry.tensor([[1.0, 2.0], [3.0, 4.0]], device=dev)
    assert z.scatter(0, idx, src).tolist() == [[1.0, 4.0], [0.0, 2.0], [3.0, 0.0]]
    dup = ferry.tensor([[0, 0], [0, 0]], device=dev)
    assert ferry.scatter_add(z, 0, dup, src).tolist() == [[4.0, 6.0], [0.0, 0.0], [0.0, 0.0]]
    r = z.scatter_add_(0, dup, src)
    assert r is z
    assert z.tolist() == [[4.0, 6.0], [0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("dev", _devices())
def test_out_of_range_and_bad_dtype_raise_as_torch(dev):
    t = ferry.zeros(5, device=dev)
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with size 5"):
        t.index_select(0, ferry.tensor([7], device=dev))
    with pytest.raises(IndexError, match="index 7 is out of bounds for dimension 0 with size 5"):
        t.gather(0, ferry.tensor([1, 7], device=dev))
    with pytest.raises(RuntimeError, match=r"gather\(\): Expected dtype int32/int64 for index"):
        t.gather(0, ferry.zeros(1, device=dev))
    with pytest.raises(TypeError):
        t.gather(0, [1])


def test_matches_torch_with_gradients():
    torch = _torch()
    if torch is None:
        pytest.skip("torch is not installed")
    data = [[0.5, -1.0, 2.0, 3.5], [1.5, 2.5, -0.5, 4.0], [7.0, 8.0, 9.0, -2.0]]
    idx = [[0, 2, 2, 1], [1, 0, -1, 0]]
    a = ferry.tensor(data, requires_grad=True)
    b = torch.tensor(data, requires_grad=True)
    ra = a.gather(0, ferry.tensor([[0, 2, 2, 1], [1, 0, 2, 0]]))
    rb = b.gather(0, torch.tensor([[0, 2, 2, 1], [1, 0, 2, 0]]))
    assert ra.tolist() == rb.tolist()
    ra.sum().backward()
    rb.sum().backward()
    assert a.grad.tolist() == b.grad.tolist()
    sa = a.detach().index_select(1, ferry.tensor(idx[0]))
    sb = b.detach().index_select(1, torch.tensor(idx[0]))
    assert sa.tolist() == sb.tolist()
    src = [[10.0, 20.0, 30.0, 40.0]]
    ua = ferry.tensor(data).scatter_add(0, ferry.tensor([[2, 0, 2, 1]]), ferry.tensor(src))
    ub = torch.tensor(data).scatter_add(0, torch.tensor([[2, 0, 2, 1]]), torch.tensor(src))
    assert ua.tolist() == ub.tolist()
