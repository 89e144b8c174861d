"""The second set of reductions from Python (prod, argmin, any, all, count_nonzero,
logsumexp, var, std, norm, max/min over a dim, cumsum, cumprod, softmax, log_softmax):
values, dtypes, keywords, errors and gradients against PyTorch where installed, against
NumPy otherwise, on every device."""
import math

import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the comparisons with PyTorch are skipped, saying so
    torch = None

DEVICES = [str(d) for d in ferry.devices()]
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

X = np.array([[0.5, -1.25, 2.0, 0.0], [1.5, 0.75, -0.5, 3.0], [-2.0, 1.0, 1.0, 0.25]])


@pytest.fixture(autouse=True)
def strict_device(request, monkeypatch):
    """On a real device nothing may run through the CPU fallback (sim has no kernels at
    all: everything there is the fallback)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    if not str(params.get("dev", "sim")).startswith("sim"):
        monkeypatch.setenv("FERRY_STRICT_DEVICE", "1")


def make(values, dev, dtype=ferry.float64, requires_grad=False):
    return ferry.tensor(values, dtype=dtype, device=dev, requires_grad=requires_grad)


def np_of(t):
    return t.cpu().numpy()


@pytest.mark.parametrize("dev", DEVICES)
def test_against_numpy(dev):
    x = make(X.tolist(), dev)
    np.testing.assert_allclose(np_of(x.prod(1)), X.prod(1))
    np.testing.assert_allclose(np_of(x.prod()), X.prod())
    assert x.argmin().item() == int(X.argmin())
    np.testing.assert_array_equal(np_of(x.argmin(1)), X.argmin(1))
    np.testing.assert_allclose(np_of(x.var(0)), X.var(0, ddof=1))
    np.testing.assert_allclose(np_of(x.std(1, unbiased=False)), X.std(1))
    np.testing.assert_allclose(np_of(x.var(correction=2)), X.var(ddof=2))
    np.testing.assert_allclose(np_of(x.norm()), np.linalg.norm(X))
    np.testing.assert_allclose(np_of(x.norm(p=1, dim=1)), np.abs(X).sum(1))
    np.testing.assert_allclose(np_of(x.norm(float("inf"), 0)), np.abs(X).max(0))
    np.testing.assert_allclose(np_of(x.cumsum(1)), X.cumsum(1))
    np.testing.assert_allclose(np_of(x.cumprod(0)), X.cumprod(0))
    e = np.exp(X - X.max(1, keepdims=True))
    np.testing.assert_allclose(np_of(x.softmax(-1)), e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(np_of(x.log_softmax(1)), np.log(e / e.sum(1, keepdims=True)))
    np.testing.assert_allclose(np_of(x.logsumexp(1)), np.log(np.exp(X).sum(1)))
    assert x.any().item() is True and x.all().item() is False
    np.testing.assert_array_equal(np_of(x.all(0)), (X != 0).all(0))
    np.testing.assert_array_equal(np_of(x.count_nonzero(1)), (X != 0).sum(1))
    v, i = x.max(1)
    np.testing.assert_allclose(np_of(v), X.max(1))
    np.testing.assert_array_equal(np_of(i), X.argmax(1))
    r = x.min(dim=0, keepdim=True)
    np.testing.assert_allclose(np_of(r.values), X.min(0, keepdims=True))
    np.testing.assert_array_equal(np_of(r.indices), X.argmin(0)[None])
    assert r[0] is not None and len(r) == 2


@pytest.mark.parametrize("dev", DEVICES)
def test_dtypes_as_torch(dev):
    i = make([[1, 2], [3, 4]], dev, dtype=ferry.int32)
    assert i.prod().dtype == ferry.int64 and i.prod().item() == 24
    assert i.cumsum(0).dtype == ferry.int64
    assert i.cumprod(1).tolist() == [[1, 2], [3, 12]]
    assert i.any().dtype == ferry.bool and i.count_nonzero().dtype == ferry.int64
    assert i.argmin().dtype == ferry.int64
    assert i.logsumexp(0).dtype == ferry.float32
    b = make([True, False, True], dev, dtype=ferry.bool)
    assert b.prod().item() == 0 and b.cumsum(0).tolist() == [1, 1, 2]
    assert b.max(0).values.dtype == ferry.bool and b.max(0).indices.item() == 0
    f = make([1.0, 2.0], dev, dtype=ferry.float32)
    assert f.prod(dtype=ferry.float64).dtype == ferry.float64
    assert f.softmax(0, dtype=ferry.float64).dtype == ferry.float64
    big = make([-(2**63), 2**63 - 1, 0], dev, dtype=ferry.int64)
    assert big.argmin().item() == 0 and big.min(0).indices.item() == 0


@pytest.mark.parametrize("dev", DEVICES)
def test_nan_inf_and_empty(dev):
    nan = float("nan")
    x = make([[1.0, nan, 3.0], [-math.inf, -math.inf, -math.inf]], dev)
    assert x.max(1).indices.tolist()[0] == 1 and math.isnan(x.max(1).values.tolist()[0])
    assert x.min(1).indices.tolist()[0] == 1
    assert x.argmin(1).tolist() == [1, 0]
    assert x.logsumexp(1).tolist()[1] == -math.inf
    assert all(math.isnan(v) for v in x.softmax(1).tolist()[1])
    assert math.isnan(make([1.0], dev).var().item())
    assert math.isinf(make([1.0, 2.0], dev).var(correction=2).item())
    e = ferry.zeros((0, 3), dtype=ferry.float32, device=dev)
    assert e.prod(0).tolist() == [1.0, 1.0, 1.0]
    assert e.logsumexp(0).tolist() == [-math.inf] * 3
    assert e.any().item() is False and e.all().item() is True
    assert e.softmax(1).shape == (0, 3) and e.cumsum(0).shape == (0, 3)
    with pytest.raises(IndexError, match=r"argmin\(\): Expected reduction dim 0 to have non-zero size\."):
        e.argmin(0)
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 0 to have non-zero size\."):
        e.max(0)
    s = make(3.0, dev)
    assert s.softmax(0).item() == 1.0 and s.cumsum(0).item() == 3.0 and s.max(0).indices.item() == 0


@pytest.mark.parametrize("dev", DEVICES)
def test_errors_as_torch(dev):
    i = make([1, 2], dev, dtype=ferry.int64)
    with pytest.raises(NotImplementedError, match="std and var only support floating point"):
        i.var()
    with pytest.raises(NotImplementedError, match="linalg.vector_norm: Expected a floating point"):
        i.norm()
    with pytest.raises(NotImplementedError, match="\"softmax_lastdim_kernel_impl\" not implemented for 'Long'"):
        i.softmax(0)
    with pytest.raises(NotImplementedError, match="argmin\\(\\): does not support bool input"):
        make([True], dev, dtype=ferry.bool).argmin()
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-1, 0\], but got 3\)"):
        i.cumsum(3)
    with pytest.raises(TypeError):
        i.prod((0,))
    with pytest.raises(TypeError):
        i.logsumexp()


def grads(dev, fn, values=X):
    x = make(values.tolist(), dev, requires_grad=True)
    y = fn(x)
    w = ferry.tensor(np.linspace(-1, 1, int(np.prod(y.shape)) or 1)[: int(np.prod(y.shape))]
                     .reshape(tuple(y.shape)).tolist(), dtype=ferry.float64, device=dev)
    (y * w).sum().backward()
    return np_of(x.grad), np_of(w)


GRAD_CASES = [
    ("prod", lambda t: t.prod(1)),
    ("prod_all", lambda t: t.prod()),
    ("logsumexp", lambda t: t.logsumexp(0)),
    ("var", lambda t: t.var(1)),
    ("std", lambda t: t.std()),
    ("norm3", lambda t: t.norm(3, 1)),
    ("max_dim", lambda t: t.max(1).values),
    ("min_dim", lambda t: t.min(0, True).values),
    ("cumsum", lambda t: t.cumsum(1)),
    ("softmax", lambda t: t.softmax(1)),
    ("log_softmax", lambda t: t.log_softmax(0)),
]


@needs_torch
@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name,fn", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_as_torch(dev, name, fn):
    g, w = grads(dev, fn)
    tx = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    ty = fn(tx)
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    y = fn(make(X.tolist(), dev, requires_grad=True))
    assert y.grad_fn.name() == ty.grad_fn.name()


@needs_torch
@pytest.mark.parametrize("dev", DEVICES)
def test_prod_and_cumprod_gradients_with_zeros(dev):
    v = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.5, -2.0, 0.5]])
    g, w = grads(dev, lambda t: t.prod(1), v)
    tx = torch.tensor(v, requires_grad=True)
    (tx.prod(1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy())
    g, w = grads(dev, lambda t: t.prod(), v[2:])
    tx = torch.tensor(v[2:], requires_grad=True)
    (tx.prod() * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy())
    # cumprod's gradient divides by the input: checked where it has no zeros.
    nz = np.abs(v) + 0.5
    g, w = grads(dev, lambda t: t.cumprod(1), nz)
    tx = torch.tensor(nz, requires_grad=True)
    (tx.cumprod(1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy())


@needs_torch
@pytest.mark.parametrize("dev", DEVICES)
def test_values_as_torch_on_random_inputs(dev):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    x = make(a.tolist(), dev, dtype=ferry.float32)
    t = torch.tensor(a)
    for dim in (0, 1, -1):
        for name in ("softmax", "log_softmax", "cumsum", "cumprod"):
            np.testing.assert_allclose(np_of(getattr(x, name)(dim)), getattr(t, name)(dim).numpy(),
                                       rtol=2e-5, atol=2e-6)
        for keep in (False, True):
            np.testing.assert_allclose(np_of(x.logsumexp(dim, keep)), t.logsumexp(dim, keep).numpy(),
                                       rtol=2e-5, atol=2e-6)
            np.testing.assert_allclose(np_of(x.prod(dim, keep)), t.prod(dim, keep).numpy(), rtol=2e-5)
            np.testing.assert_allclose(np_of(x.var(dim, keepdim=keep)), t.var(dim, keepdim=keep).numpy(),
                                       rtol=2e-5)
            r, tr = x.max(dim, keep), t.max(dim, keep)
            np.testing.assert_array_equal(np_of(r.indices), tr.indices.numpy())
            r, tr = x.min(dim, keepdim=keep), t.min(dim, keepdim=keep)
            np.testing.assert_array_equal(np_of(r.indices), tr.indices.numpy())
            np.testing.assert_array_equal(np_of(x.argmin(dim, keep)), t.argmin(dim, keep).numpy())
    for dims in ((0, 2), (1,), None):
        np.testing.assert_allclose(np_of(x.std(dims)), t.std(dims).numpy(), rtol=2e-5)
        np.testing.assert_allclose(np_of(x.norm(2, dims)), t.norm(2, dims).numpy(), rtol=2e-5)
        np.testing.assert_array_equal(np_of(ferry.count_nonzero(x, dims)),
                                      torch.count_nonzero(t, dims).numpy())
    np.testing.assert_allclose(np_of(ferry.logsumexp(x, (0, 1))), torch.logsumexp(t, (0, 1)).numpy(),
                               rtol=2e-5)


# ---- ferry.nn.functional: softmax, linear and the losses ---------------------------------

LOGITS = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.75, -0.5, 3.0], [-2.0, 1.0, 1.0, 0.0]])
TARGET = [2, 3, -100]


@pytest.mark.parametrize("dev", DEVICES)
def test_losses_against_numpy(dev):
    F = ferry.nn.functional
    x = make(LOGITS.tolist(), dev)
    t = ferry.tensor([2, 3, 0], dtype=ferry.int64, device=dev)
    lp = LOGITS - np.log(np.exp(LOGITS).sum(1, keepdims=True))
    want = -lp[[0, 1, 2], [2, 3, 0]]
    np.testing.assert_allclose(np_of(F.cross_entropy(x, t, reduction="none")), want)
    np.testing.assert_allclose(F.cross_entropy(x, t).item(), want.mean())
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(x, 1), t, reduction="sum").item(), want.sum())
    ti = ferry.tensor(TARGET, dtype=ferry.int64, device=dev)
    np.testing.assert_allclose(F.cross_entropy(x, ti).item(), want[:2].mean())
    y = make((LOGITS * 0.5).tolist(), dev)
    np.testing.assert_allclose(F.mse_loss(x, y).item(), ((LOGITS * 0.5) ** 2).mean())
    w = make(LOGITS[:2].tolist(), dev)
    b = make([0.5, -0.5], dev)
    np.testing.assert_allclose(np_of(F.linear(x, w, b)), LOGITS @ LOGITS[:2].T + [0.5, -0.5])
    with pytest.raises(IndexError, match="Target 7 is out of bounds."):
        F.cross_entropy(x, ferry.tensor([0, 7, 1], dtype=ferry.int64, device=dev))
    with pytest.raises(RuntimeError, match="expected scalar type Long but found Int"):
        F.nll_loss(x, ferry.tensor([0, 1, 1], dtype=ferry.int32, device=dev))
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.mse_loss(x, y, reduction="avg")


@needs_torch
@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_as_torch(dev, smoothing, reduction):
    x = make(LOGITS.tolist(), dev, requires_grad=True)
    t = ferry.tensor(TARGET, dtype=ferry.int64, device=dev)
    r = ferry.nn.functional.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing)
    tx = torch.tensor(LOGITS, requires_grad=True)
    tr = torch.nn.functional.cross_entropy(tx, torch.tensor(TARGET), reduction=reduction,
                                           label_smoothing=smoothing)
    np.testing.assert_allclose(np_of(r.detach()), tr.detach().numpy(), rtol=1e-12, atol=1e-12)
    r.sum().backward()
    tr.sum().backward()
    np.testing.assert_allclose(np_of(x.grad), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
