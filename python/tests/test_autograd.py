"""Autograd from Python: gradients of every op family against NumPy-computed formulas on
every device, the Tensor attributes and grad-mode switches of API.md, PyTorch's messages,
and (where torch is installed) the same gradients as torch.autograd."""
import re
import threading

import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the comparison with PyTorch is skipped, saying so
    torch = None

DEVICES = [str(d) for d in ferry.devices()]


def leaf(values, device="cpu", dtype=ferry.float64):
    return ferry.tensor(values, dtype=dtype, device=device, requires_grad=True)


def grad_np(t):
    return t.grad.cpu().numpy()


X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.5]])
Y = np.array([[1.25, 0.5, -1.5], [0.25, -2.0, 1.75]])
W = np.array([[1.0, -0.5, 2.0], [0.25, 1.5, -1.0]])


def weighted(y, device):
    return (y * ferry.tensor(W if y.shape == (2, 3) else np.ones(tuple(y.shape)),
                             dtype=ferry.float64, device=device)).sum()


UNARY = [
    ("neg", lambda t: -t, lambda x: -np.ones_like(x)),
    ("abs", lambda t: t.abs(), np.sign),
    ("exp", lambda t: t.exp(), np.exp),
    ("sin", lambda t: t.sin(), np.cos),
    ("cos", lambda t: t.cos(), lambda x: -np.sin(x)),
    ("tanh", lambda t: t.tanh(), lambda x: 1 - np.tanh(x) ** 2),
    ("sigmoid", lambda t: t.sigmoid(), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    ("relu", lambda t: t.relu(), lambda x: (x > 0).astype(float)),
    ("square", lambda t: t ** 2, lambda x: 2 * x),
    ("scale", lambda t: t * 3 - 1, lambda x: 3 * np.ones_like(x)),
    ("rdiv", lambda t: t / 4, lambda x: np.full_like(x, 0.25)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,f,df", UNARY, ids=[u[0] for u in UNARY])
def test_unary_gradients_match_numpy(device, name, f, df):
    x = leaf(X, device)
    weighted(f(x), device).backward()
    np.testing.assert_allclose(grad_np(x), W * df(X), rtol=1e-12, atol=1e-12)
    assert x.grad.device == x.device


@pytest.mark.parametrize("device", DEVICES)
def test_log_and_sqrt_gradients_match_numpy(device):
    x = leaf(np.abs(X) + 0.5, device)
    (x.log() + x.sqrt()).sum().backward()
    xa = np.abs(X) + 0.5
    np.testing.assert_allclose(grad_np(x), 1 / xa + 0.5 / np.sqrt(xa), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_binary_gradients_sum_over_broadcast_dims(device):
    a = leaf(X, device)
    b = leaf(Y[0], device)  # shape (3,), broadcast over rows
    weighted(a * b + a / (b * b + 1) - b, device).backward()
    B = Y[0]
    np.testing.assert_allclose(grad_np(a), W * (B + 1 / (B * B + 1)), rtol=1e-12)
    gb = W * (X - X * 2 * B / (B * B + 1) ** 2 - 1)
    np.testing.assert_allclose(grad_np(b), gb.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_pow_and_maximum_gradients(device):
    a = leaf(np.abs(X) + 0.5, device)
    b = leaf(Y, device)
    (a ** b).sum().backward()
    A = np.abs(X) + 0.5
    np.testing.assert_allclose(grad_np(a), Y * A ** (Y - 1), rtol=1e-12)
    np.testing.assert_allclose(grad_np(b), A ** Y * np.log(A), rtol=1e-12)
    c = leaf([1.0, 2.0, 3.0], device)
    d = leaf([1.0, 5.0, 0.0], device)
    c.maximum(d).sum().backward()
    assert c.grad.tolist() == [0.5, 0.0, 1.0] and d.grad.tolist() == [0.5, 1.0, 0.0]


@pytest.mark.parametrize("device", DEVICES)
def test_reduction_gradients(device):
    x = leaf(X, device)
    (x.sum(1) * ferry.tensor([1.0, 2.0], dtype=ferry.float64, device=device)).sum().backward()
    np.testing.assert_allclose(grad_np(x), np.array([[1.0] * 3, [2.0] * 3]))
    x.grad = None
    x.mean().backward()
    np.testing.assert_allclose(grad_np(x), np.full((2, 3), 1 / 6))
    t = leaf([[3.0, 1.0, 3.0], [2.0, 2.0, 0.0]], device)
    (t.max() + t.amax(1).sum()).backward()  # ties share the gradient evenly
    assert t.grad.tolist() == [[1.0, 0.0, 1.0], [0.5, 0.5, 0.0]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
                                   ((2, 2, 3), (3, 4)), ((1, 2, 3), (2, 3, 4))])
def test_matmul_gradients_in_every_shape(device, sa, sb):
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = leaf(A, device), leaf(B, device)
    out = a @ b
    G = rng.standard_normal(tuple(out.shape))
    out.backward(ferry.tensor(G, dtype=ferry.float64, device=device))
    A2 = A[None, :] if A.ndim == 1 else A
    B2 = B[:, None] if B.ndim == 1 else B
    G2 = G.reshape(np.matmul(A2, B2).shape)
    ga = np.matmul(G2, np.swapaxes(B2, -1, -2))
    gb = np.matmul(np.swapaxes(A2, -1, -2), G2)
    while ga.ndim > A2.ndim:
        ga = ga.sum(0)
    while gb.ndim > B2.ndim:
        gb = gb.sum(0)
    ga = ga.sum(axis=tuple(i for i in range(A2.ndim) if A2.shape[i] == 1 and ga.shape[i] != 1),
                keepdims=True)
    gb = gb.sum(axis=tuple(i for i in range(B2.ndim) if B2.shape[i] == 1 and gb.shape[i] != 1),
                keepdims=True)
    np.testing.assert_allclose(grad_np(a), ga.reshape(sa), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_np(b), gb.reshape(sb), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_view_gradients(device):
    x = leaf(X, device)
    v = x.transpose(0, 1).reshape(6).view(2, 3).unsqueeze(0).expand(2, 2, 3).squeeze(0)
    (v * 2).sum().backward()
    np.testing.assert_allclose(grad_np(x), np.full((2, 3), 4.0))
    x.grad = None
    x[:, ::2].sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    x.grad = None
    x.permute(1, 0).flatten().sum().backward()
    assert x.grad.tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize("device", DEVICES)
def test_to_another_device_and_dtype_sends_gradient_back(device):
    x = leaf(X, "cpu", ferry.float32)
    y = x.to(device).to(ferry.float64)
    assert y.grad_fn.name() == ("ToCopyBackward0")
    (y * y).sum().backward()
    assert x.grad.device == ferry.device("cpu") and x.grad.dtype is ferry.float32
    np.testing.assert_allclose(grad_np(x), 2 * X.astype(np.float32), rtol=1e-6)


def test_attributes_and_repr():
    x = leaf([1.0, 2.0], dtype=ferry.float32)
    assert x.is_leaf and x.grad is None and x.grad_fn is None
    y = x * x
    assert not y.is_leaf and y.requires_grad
    assert repr(y) == "tensor([1., 4.], grad_fn=<MulBackward0>)"
    assert y.grad_fn.name() == "MulBackward0"
    assert re.fullmatch(r"<MulBackward0 object at 0x[0-9a-f]+>", repr(y.grad_fn))
    assert y.grad_fn == y.grad_fn
    assert repr((x + 1).sum()) == "tensor(5., grad_fn=<SumBackward0>)"
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    z = ferry.tensor([1.0, 2.0])
    assert z.requires_grad_() is z and z.requires_grad and z.is_leaf
    assert (x < 2).requires_grad is False
    assert x.detach().requires_grad is False


def test_grad_read_write_and_none():
    x = leaf([1.0, 2.0])
    x.grad = ferry.tensor([5.0, 6.0], dtype=ferry.float64)
    (x * 2).sum().backward()  # accumulates into the assigned gradient
    assert x.grad.tolist() == [7.0, 8.0]
    x.grad = None
    assert x.grad is None
    with pytest.raises(TypeError, match="assigned grad expected to be a Tensor or None but got "
                                        "grad of type int"):
        x.grad = 3
    with pytest.raises(TypeError, match="attempting to assign a gradient with dtype "
                                        "'ferry.float32' to a tensor with dtype 'ferry.float64'"):
        x.grad = ferry.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="attempting to assign a gradient of size '\\[3\\]' to "
                                           "a tensor of size '\\[2\\]'"):
        x.grad = ferry.zeros(3, dtype=ferry.float64)


def test_retain_grad_and_non_leaf_grad():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    assert y.retains_grad
    z = (y * y).sum()
    z.backward()
    assert y.grad.tolist() == [6.0, 12.0] and x.grad.tolist() == [18.0, 36.0]
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        ferry.tensor([1.0]).retain_grad()


def test_messages_follow_pytorch():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (x * 2).backward()
    s = (x * x).sum()
    s.backward()
    with pytest.raises(RuntimeError, match=re.escape(
            "Trying to backward through the graph a second time (or directly access saved "
            "tensors after they have already been freed). Saved intermediate values of the graph "
            "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if "
            "you need to backward through the graph a second time or if you need to access saved "
            "tensors after calling backward.")):
        s.backward()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in "
                                           "an in-place operation."):
        x += 1
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being "
                                           "used in an in-place operation."):
        x[0] = 5.0
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does "
                                           "not have a grad_fn"):
        ferry.tensor(1.0).backward()
    w = ferry.tensor([1.0, 2.0], dtype=ferry.float64)
    t = (x * w).sum()
    w.mul_(2)
    with pytest.raises(RuntimeError, match=re.escape(
            "one of the variables needed for gradient computation has been modified by an "
            "inplace operation: [ferry.DoubleTensor [2]] is at version 1; expected version 0 "
            "instead.")):
        t.backward()
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables."):
        (x * 2).requires_grad_(False)


def test_no_grad_enable_grad_and_set_grad_enabled():
    x = leaf([1.0, 2.0])
    assert ferry.is_grad_enabled()
    with ferry.no_grad():
        assert not ferry.is_grad_enabled()
        y = x * 2
        with ferry.enable_grad():
            z = x * 2
        x += 1  # an SGD-style update of a leaf is allowed here
    assert ferry.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and z.requires_grad
    assert x.detach().tolist() == [2.0, 3.0]

    @ferry.no_grad()
    def f():
        return ferry.is_grad_enabled()

    @ferry.enable_grad()
    def g():
        return ferry.is_grad_enabled()

    assert f() is False and ferry.is_grad_enabled()
    with ferry.no_grad():
        assert g() is True
    ferry.set_grad_enabled(False)
    assert not ferry.is_grad_enabled()
    ferry.set_grad_enabled(True)
    with ferry.set_grad_enabled(False):
        assert not ferry.is_grad_enabled()
    assert ferry.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with ferry.no_grad():
        t = threading.Thread(target=lambda: seen.append(ferry.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_autograd_grad_and_hessian_vector_product():
    xs = np.array([-1.5, -0.2, 0.3, 1.1])
    v = np.array([1.0, -2.0, 0.5, 3.0])
    x = leaf(xs)
    f = (x.tanh() ** 3).sum()
    (g,) = ferry.autograd.grad(f, x, create_graph=True)
    th = np.tanh(xs)
    np.testing.assert_allclose(g.detach().numpy(), 3 * th ** 2 * (1 - th ** 2), rtol=1e-12)
    assert g.requires_grad and x.grad is None
    (h,) = ferry.autograd.grad((g * ferry.tensor(v, dtype=ferry.float64)).sum(), [x])
    np.testing.assert_allclose(h.numpy(), v * (6 * th - 12 * th ** 3) * (1 - th ** 2),
                               rtol=1e-12)
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ga, gb = ferry.autograd.grad([(a * b).sum()], [a, b])
    assert ga.tolist() == [3.0, 4.0] and gb.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors appears to not have "
                                           "been used in the graph"):
        ferry.autograd.grad((a * 2).sum(), [b])


def test_backward_create_graph_gives_differentiable_grad():
    x = leaf([2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [12.0]
    (gx,) = ferry.autograd.grad(x.grad.sum(), x)
    assert gx.tolist() == [12.0]  # d/dx 3x^2 = 6x


@pytest.mark.skipif(torch is None, reason="torch is not installed: the comparison with "
                                          "torch.autograd is skipped")
@pytest.mark.parametrize("device", DEVICES)
def test_gradients_match_torch(device):
    rng = np.random.default_rng(1)
    A, B, C = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)

    def loss(lib, a, b, c):
        h = (a @ b + c).tanh()
        z = h - h.amax(1, keepdim=True).detach()
        return (z.exp().sum(1).log() * (a.sum(1).sigmoid())).mean() + (b ** 2).sum() / 7

    fa, fb, fc = (leaf(m, device) for m in (A, B, C))
    loss(ferry, fa, fb, fc).backward()
    ta, tb, tc = (torch.tensor(m, requires_grad=True) for m in (A, B, C))
    loss(torch, ta, tb, tc).backward()
    for f, t in ((fa, ta), (fb, tb), (fc, tc)):
        np.testing.assert_allclose(grad_np(f), t.grad.numpy(), rtol=1e-10, atol=1e-12)
    x = ferry.tensor([1.0], requires_grad=True)
    assert (x * 2).grad_fn.name() == (torch.tensor([1.0], requires_grad=True) * 2).grad_fn.name()


def test_train_mlp_example_reaches_95_percent_on_cpu(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_mlp.py"
    spec = importlib.util.spec_from_file_location("train_mlp", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--device", "cpu", "--log-every", "0"]) == 0
    assert "cpu: training accuracy" in capsys.readouterr().out
