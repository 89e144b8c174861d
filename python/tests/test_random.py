"""Random numbers from Python: torch's signatures and messages, the same numbers on every
device, generator state, dropout's gradient."""
import numpy as np
import pytest

import ferry
import ferry.nn.functional as F


def _devices():
    devs = ["cpu"]
    for d in ("opencl:0", "sim:0"):
        if ferry.is_available(d.split(":")[0]):
            devs.append(d)
    return devs


@pytest.mark.parametrize("dev", _devices())
@pytest.mark.parametrize("make", [
    lambda g, d: ferry.rand(5, 7, generator=g, device=d),
    lambda g, d: ferry.randn(33, generator=g, device=d, dtype=ferry.float64),
    lambda g, d: ferry.randn(9, generator=g, device=d, dtype=ferry.float16),
    lambda g, d: ferry.randint(-5, 5, (21,), generator=g, device=d),
    lambda g, d: ferry.randint(1 << 40, (21,), generator=g, device=d),
    lambda g, d: ferry.randperm(50, generator=g, device=d),
    lambda g, d: ferry.empty(13, device=d).uniform_(2, 3, generator=g),
    lambda g, d: ferry.empty(13, device=d).normal_(-1, 2, generator=g),
    lambda g, d: ferry.bernoulli(ferry.full((17,), 0.3, device=d), generator=g),
])
def test_same_numbers_on_every_device(dev, make):
    ref = make(ferry.Generator().manual_seed(42), "cpu").numpy()
    got = make(ferry.Generator().manual_seed(42), dev).cpu().numpy()
    assert got.dtype == ref.dtype
    assert got.tobytes() == ref.tobytes()


def test_defaults_and_dtypes():
    assert ferry.rand(2, 3).dtype == ferry.float32
    assert ferry.rand((2, 3)).shape == (2, 3)
    assert ferry.randn(4, dtype=ferry.float64).dtype == ferry.float64
    assert ferry.randint(3, (4,)).dtype == ferry.int64
    assert ferry.randint(0, 2, (4,), dtype=ferry.bool).dtype == ferry.bool
    assert ferry.randperm(4).dtype == ferry.int64
    x = ferry.rand(3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    assert ferry.rand_like(x).shape == (3,)
    assert ferry.randn_like(ferry.zeros(2, 2, dtype=ferry.float64)).dtype == ferry.float64
    v = ferry.randint(low=2, high=4, size=(1000,)).numpy()
    assert v.min() == 2 and v.max() == 3


def test_manual_seed_and_state():
    ferry.manual_seed(123)
    a = ferry.randn(8).numpy()
    ferry.manual_seed(123)
    state = ferry.get_rng_state()
    b = ferry.randn(8).numpy()
    assert a.tobytes() == b.tobytes()
    ferry.set_rng_state(state)
    assert ferry.randn(8).numpy().tobytes() == a.tobytes()
    assert ferry.initial_seed() == 123
    g = ferry.Generator()
    assert g.manual_seed(7) is g
    assert g.initial_seed() == 7
    ferry.rand(6, generator=g)
    assert g.offset == 8
    assert isinstance(ferry.manual_seed(1), ferry.Generator)
    g.manual_seed(-1)  # negative seeds wrap, as in PyTorch
    assert g.initial_seed() == 2**64 - 1


def test_randperm_is_a_permutation():
    p = ferry.randperm(1000).numpy()
    assert sorted(p.tolist()) == list(range(1000))
    assert ferry.randperm(0).shape == (0,)


def test_distribution_summary():
    g = ferry.Generator().manual_seed(5)
    u = ferry.rand(10**6, generator=g).numpy().astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 2e-3 and abs(u.var() - 1 / 12) < 1e-3
    z = ferry.randn(10**6, generator=g).numpy().astype(np.float64)
    assert abs(z.mean()) < 5e-3 and abs(z.var() - 1) < 7e-3


def test_dropout():
    x = ferry.ones(1000, requires_grad=True)
    y = F.dropout(x, 0.2)
    vals = set(np.unique(y.detach().numpy()).tolist())
    assert vals <= {0.0, np.float32(1 / 0.8)}
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    assert x.grad.numpy().tobytes() == y.detach().numpy().tobytes()
    assert F.dropout(x, 0.5, training=False) is x
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.dropout(x, 1.5)


def test_errors_match_torch():
    with pytest.raises(RuntimeError, match=r"random_ expects 'from' to be less than 'to', but got from=5 >= to=5"):
        ferry.randint(5, 5, (3,))
    with pytest.raises(RuntimeError, match="to - 1 is out of bounds for signed char"):
        ferry.randint(0, 300, (3,), dtype=ferry.int8)
    with pytest.raises(RuntimeError, match=r"Trying to create tensor with negative dimension -1: \[-1\]"):
        ferry.randperm(-1)
    with pytest.raises(NotImplementedError, match="\"check_uniform_bounds\" not implemented for 'Long'"):
        ferry.rand(3, dtype=ferry.int64)
    with pytest.raises(NotImplementedError, match="\"normal_kernel_cpu\" not implemented for 'Long'"):
        ferry.randn(3, dtype=ferry.int64)
    with pytest.raises(RuntimeError, match=r"Expected p_in >= 0 && p_in <= 1 to be true"):
        ferry.bernoulli(ferry.full((3,), 1.5))
    with pytest.raises(RuntimeError, match=r"bernoulli_ expects p to be in \[0, 1\], but got p=1.5"):
        ferry.empty(3).bernoulli_(1.5)
    with pytest.raises(RuntimeError, match=r"uniform_ expects to return a \[from, to\) range, but found from=2 > to=1"):
        ferry.empty(3).uniform_(2, 1)
    with pytest.raises(RuntimeError, match="normal expects std >= 0.0, but found std -1"):
        ferry.empty(3).normal_(0, -1)


def test_against_torch_semantics():
    torch = pytest.importorskip("torch", reason="torch not installed: semantics-only checks")
    # Same shapes and dtypes as torch for the same calls (the numbers differ by design:
    # ferry's are the same on every device, torch's are not).
    for f, a in [("rand", (2, 3)), ("randn", (4,))]:
        assert tuple(getattr(ferry, f)(*a).shape) == tuple(getattr(torch, f)(*a).shape)
    assert str(ferry.randint(0, 5, (2,)).dtype).split(".")[-1] == str(torch.randint(0, 5, (2,)).dtype).split(".")[-1]
