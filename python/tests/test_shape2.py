"""tril/triu, diagonal, diag, diag_embed, trace and F.pad against NumPy (always) and
PyTorch (where installed): values, views, gradients, devices and PyTorch's exceptions;
with the #10 leftovers: cumprod's gradient through zeros, class weights of nll_loss and
cross_entropy, chunk's int64 count, bernoulli's graph node."""
import numpy as np
import pytest

import ferry
import ferry.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the NumPy references still run; torch-only checks skip with why
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed; "
                                 "the torch cross-checks need it")


def ft(a):
    return ferry.from_numpy(np.ascontiguousarray(a))


def devices():
    out = ["cpu"]
    for d in ("opencl:0", "sim:0"):
        if ferry.is_available(d.split(":")[0]):
            out.append(d)
    return out


# ---- tril / triu ----------------------------------------------------------------------


@pytest.mark.parametrize("dev", devices())
def test_tril_triu_match_numpy_batched_every_diagonal(dev):
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5) - 50
    t = ft(a).to(dev)
    for k in (-5, -1, 0, 1, 3, 9):
        np.testing.assert_array_equal(ferry.tril(t, k).cpu().numpy(), np.tril(a, k))
        np.testing.assert_array_equal(t.triu(diagonal=k).cpu().numpy(), np.triu(a, k))
    # A transposed (non-contiguous) input.
    tt = t.transpose(-1, -2)
    np.testing.assert_array_equal(tt.tril(1).cpu().numpy(), np.tril(a.swapaxes(-1, -2), 1))


@pytest.mark.parametrize("dev", devices())
def test_tril_of_batch_dims_out_of_order(dev):
    # The batch dims do not merge into one stride: the op copies them on the device first.
    a = np.arange(2 * 3 * 4 * 5, dtype=np.int32).reshape(2, 3, 4, 5)
    t = ft(a).to(dev).permute(1, 0, 3, 2)
    want = np.tril(a.transpose(1, 0, 3, 2), -1)
    np.testing.assert_array_equal(t.tril(-1).cpu().numpy(), want)


def test_tril_every_dtype_and_in_place():
    for dt in (ferry.bool, ferry.uint8, ferry.int8, ferry.int16, ferry.int32, ferry.int64,
               ferry.float16, ferry.bfloat16, ferry.float32, ferry.float64):
        t = ferry.ones(3, 4, dtype=dt)
        r = t.triu(1)
        assert r.dtype is dt
        np.testing.assert_array_equal(r.float().numpy(), np.triu(np.ones((3, 4)), 1))
    t = ferry.ones(3, 3)
    assert t.tril_() is t
    np.testing.assert_array_equal(t.numpy(), np.tril(np.ones((3, 3))))
    t.triu_(-1)
    np.testing.assert_array_equal(t.numpy(), np.triu(np.tril(np.ones((3, 3))), -1))


def test_tril_in_place_refuses_what_ferrys_autograd_cannot_record():
    x = ferry.ones(3, 3).requires_grad_(True)
    with pytest.raises(NotImplementedError, match="a leaf Variable that requires grad is being "
                       "used in an in-place operation."):
        x.tril_()
    with pytest.raises(NotImplementedError, match="tril_: in-place write into a tensor that "
                       "requires grad .*does not rebase history yet"):
        (x * 2).tril_()
    with ferry.no_grad():
        x.triu_(1)
    assert x.tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_tril_errors_are_pytorchs():
    with pytest.raises(RuntimeError, match="tril: input tensor must have at least 2 dimensions"):
        ferry.zeros(3).tril()
    with pytest.raises(RuntimeError, match="triu: input tensor must have at least 2 dimensions"):
        ferry.triu(ferry.zeros(()))
    with pytest.raises(RuntimeError, match="tril: input tensor must have at least 2 dimensions"):
        ferry.zeros(3).tril_()
    with pytest.raises(TypeError):
        ferry.tril([[1, 2]])


@needs_torch
def test_tril_triu_gradients_match_torch():
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = ft(a).requires_grad_(True)
    tx = torch.tensor(a, requires_grad=True)
    w = np.random.default_rng(1).standard_normal((2, 3, 4))
    (ferry.tril(x, -1) * ft(w)).sum().backward()
    (torch.tril(tx, -1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    x.grad = None
    tx.grad = None
    (x.triu(2) * ft(w)).sum().backward()
    (tx.triu(2) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    assert type(x.triu(0).grad_fn).__name__ == "TriuBackward0" or \
        x.triu(0).grad_fn.name() == "TriuBackward0"


# ---- diagonal, diag, diag_embed, trace ---------------------------------------------------


@pytest.mark.parametrize("dev", devices())
def test_diagonal_is_a_view_matching_numpy(dev):
    a = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    t = ft(a).to(dev)
    for off, d1, d2 in ((0, 0, 1), (1, 0, 1), (-2, 1, 2), (2, 2, 0), (9, 0, 1), (0, -1, -3)):
        np.testing.assert_array_equal(t.diagonal(off, d1, d2).cpu().numpy(),
                                      np.diagonal(a, off, d1, d2))
    v = ferry.diagonal(t, offset=1, dim1=1, dim2=2)
    v.fill_(-1.0)
    back = t.cpu().numpy()
    assert (np.diagonal(back, 1, 1, 2) == -1).all()
    assert back[0, 0, 0] == 0


def test_diagonal_errors_are_pytorchs():
    m = ferry.zeros(3, 3)
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical 0, 0"):
        m.diagonal(0, 0, 0)
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical 1, -1"):
        m.diagonal(0, 1, -1)
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical 0, -1"):
        ferry.diag_embed(ferry.zeros(()), 0, 0, -1)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                       r"\[-2, 1\], but got 2\)"):
        m.diagonal(0, 0, 2)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                       r"\[-1, 0\], but got 1\)"):
        ferry.zeros(3).diagonal()


def test_diag_trace_diag_embed_match_numpy():
    v = np.array([1.0, 2.0, 3.0])
    for k in (-2, 0, 1):
        np.testing.assert_array_equal(ferry.diag(ft(v), k).numpy(), np.diag(v, k))
    m = np.arange(12.0).reshape(3, 4)
    for k in (-1, 0, 2, 5):
        d = ft(m).diag(k)
        np.testing.assert_array_equal(d.numpy(), np.diag(m, k))
    # diag of a matrix is a copy, not a view.
    src = ft(m)
    src.diag().fill_(100.0)
    assert src.numpy()[0, 0] == 0
    assert ferry.trace(ft(m)).item() == np.trace(m)
    t = ft(np.arange(9, dtype=np.int8).reshape(3, 3)).trace()
    assert t.dtype is ferry.int64 and t.item() == 12
    e = ferry.diag_embed(ft(np.arange(6.0).reshape(2, 3)), 1)
    assert tuple(e.shape) == (2, 4, 4)
    np.testing.assert_array_equal(e.numpy()[1], np.diag([3.0, 4.0, 5.0], 1))


def test_diag_and_trace_errors_are_pytorchs():
    with pytest.raises(RuntimeError, match=r"diag\(\): Supports 1D or 2D tensors. Got 3D"):
        ferry.diag(ferry.zeros(2, 2, 2))
    with pytest.raises(RuntimeError, match=r"diag\(\): Supports 1D or 2D tensors. Got 0D"):
        ferry.zeros(()).diag()
    with pytest.raises(RuntimeError, match="trace: expected a matrix, but got tensor with dim 1"):
        ferry.trace(ferry.zeros(3))
    with pytest.raises(NotImplementedError, match="\"trace\" not implemented for 'Bool'"):
        ferry.ones(2, 2, dtype=ferry.bool).trace()


@needs_torch
def test_diagonal_diag_trace_gradients_match_torch():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4, 5))
    w = rng.standard_normal((4, 3))
    x = ft(a).requires_grad_(True)
    tx = torch.tensor(a, requires_grad=True)
    (x.diagonal(-1, 2, 0) * ft(w)).sum().backward()
    (tx.diagonal(-1, 2, 0) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    m = rng.standard_normal((4, 4))
    x = ft(m).requires_grad_(True)
    tx = torch.tensor(m, requires_grad=True)
    (x.trace() * 2 + (x.diag(1) ** 2).sum()).backward()
    (tx.trace() * 2 + (tx.diag(1) ** 2).sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    v = rng.standard_normal(3)
    x = ft(v).requires_grad_(True)
    tx = torch.tensor(v, requires_grad=True)
    (ferry.diag(x, -1) * ft(np.arange(16.0).reshape(4, 4))).sum().backward()
    (torch.diag(tx, -1) * torch.arange(16.0, dtype=torch.float64).reshape(4, 4)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@needs_torch
def test_diag_embed_gradient_matches_torch():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 3))
    x = ft(a).requires_grad_(True)
    tx = torch.tensor(a, requires_grad=True)
    w = rng.standard_normal((5, 2, 5))
    (x.diag_embed(2, 0, 2) * ft(w)).sum().backward()
    (tx.diag_embed(2, 0, 2) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_diagonal_second_derivative():
    # d/dx of sum(diag(x)^3) = 3 x^2 on the diagonal; its gradient again is 6 x there.
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = ft(m).requires_grad_(True)
    (g,) = ferry.autograd.grad((x.diagonal() ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [[3.0, 0.0], [0.0, 48.0]])
    (gg,) = ferry.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), [[6.0, 0.0], [0.0, 24.0]])


# ---- pad --------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("dev", devices())
def test_pad_every_mode_matches_torch(dev):
    rng = np.random.default_rng(3)
    cases = [
        ("constant", (2, 3), (1, 2)), ("constant", (2, 3, 4), (1, -1, 0, 2, 1, 1)),
        ("constant", (2, 3), (-3, 1)),
        ("reflect", (2, 5), (2, 3)), ("reflect", (1, 2, 3, 4), (1, 3, 2, 0)),
        ("reflect", (1, 4), (3, -1)), ("reflect", (1, 1, 2, 3, 4), (1, 1, 1, 1, 1, 1)),
        ("replicate", (3, 4), (2, 5)), ("replicate", (2, 3, 4), (1, 1, 2, 2)),
        ("replicate", (1, 4), (-2, 3)),
        ("circular", (2, 5), (5, 2)), ("circular", (1, 2, 3, 4), (1, 1, 3, 1)),
        ("circular", (1, 4), (-1, 2)),
    ]
    for mode, shape, pads in cases:
        a = rng.standard_normal(shape)
        x = ft(a).to(dev).requires_grad_(True)
        tx = torch.tensor(a, requires_grad=True)
        kw = {"value": 1.5} if mode == "constant" else {}
        r = F.pad(x, pads, mode=mode, **kw)
        tr = TF.pad(tx, pads, mode=mode, **kw)
        np.testing.assert_allclose(r.detach().cpu().numpy(), tr.detach().numpy(),
                                   err_msg=f"{mode} {shape} {pads}")
        w = rng.standard_normal(tuple(tr.shape))
        (r * ft(w).to(dev)).sum().backward()
        (tr * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.cpu().numpy(), tx.grad.numpy(), rtol=1e-12,
                                   err_msg=f"grad {mode} {shape} {pads}")


def test_pad_constant_integers_and_default_value():
    t = ferry.tensor([[1, 2], [3, 4]], dtype=ferry.int32)
    r = F.pad(t, (1, 0, 0, 1), value=7)
    assert r.dtype is ferry.int32
    assert r.tolist() == [[7, 1, 2], [7, 3, 4], [7, 7, 7]]
    assert F.pad(ferry.ones(2), [1, 1]).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_pad_errors_are_pytorchs():
    x = ferry.zeros(2, 3)
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        F.pad(x, (1,))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two "
                       "times the input dimension but got padding length 6 and input of "
                       "dimension 2"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(RuntimeError, match=r"narrow\(\): length must be non-negative."):
        F.pad(x, (-2, -2))
    with pytest.raises(RuntimeError, match=r"narrow\(\): length must be non-negative."):
        F.pad(x, (1, -5))
    assert tuple(F.pad(x, (-3, 0, 1, 0)).shape) == (3, 0)
    with pytest.raises(RuntimeError, match=r"Argument #4: Padding size should be less than the "
                       r"corresponding input dimension, but got: padding \(3, 1\) at dimension 1 "
                       r"of input \[2, 3\]"):
        F.pad(x, (3, 1), mode="reflect")
    with pytest.raises(RuntimeError, match=r"Argument #6: .* padding \(3, 1\) at dimension 2 of "
                       r"input \[1, 2, 3, 4\]"):
        F.pad(ferry.zeros(1, 2, 3, 4), (1, 1, 3, 1), mode="reflect")
    with pytest.raises(RuntimeError, match="Padding value causes wrapping around more than once."):
        F.pad(x, (4, 1), mode="circular")
    with pytest.raises(NotImplementedError, match="Padding size 2 is not supported for 1D input "
                       "tensor."):
        F.pad(ferry.zeros(3), (1, 1), mode="replicate")
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode foo"):
        F.pad(x, (1, 1), mode="foo")
    with pytest.raises(RuntimeError, match='Padding mode "reflect" doesn\'t take in value '
                       'argument'):
        F.pad(x, (1, 1), mode="reflect", value=2)
    with pytest.raises(RuntimeError, match="Negative padding value is resulting in an empty "
                       "dimension"):
        F.pad(x, (-3, -1), mode="circular")
    # torch would read memory it never wrote here (a pad longer than the cropped part).
    with pytest.raises(RuntimeError, match="Padding value causes wrapping around more than once."):
        F.pad(ferry.zeros(3, 4), (3, -3), mode="circular")
    with pytest.raises(RuntimeError, match=r"input \(W: 3\) is too small. Calculated output W: -1"):
        F.pad(x, (-2, -2), mode="replicate")
    with pytest.raises(RuntimeError, match=r"Calculated output H: 2 W: 0 must be >= 1 in every "
                       r"dimension \(input H: 1, W: 3\)"):
        F.pad(ferry.zeros(3, 1, 3), (0, -3, 1, 0), mode="replicate")
    with pytest.raises(TypeError):
        F.pad(x, (1.5, 1))
    with pytest.raises(RuntimeError, match=r"Expected 2D or 3D \(batch mode\) tensor with "
                       r"possibly 0 batch size and other non-zero dimensions for input, but "
                       r"got: \[2, 0\]"):
        F.pad(ferry.zeros(2, 0), (1, 1), mode="replicate")


# ---- #10 leftovers ------------------------------------------------------------------------


@needs_torch
def test_cumprod_gradient_through_zeros_matches_torch():
    rows = [[2.0, 0.0, 3.0, 4.0], [0.0, 0.0, 2.0, 1.0], [1.5, 2.0, 0.5, 0.0],
            [0.0, 3.0, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0]]
    a = np.array(rows)
    w = np.random.default_rng(4).standard_normal(a.shape)
    for dim in (0, 1):
        x = ft(a).requires_grad_(True)
        tx = torch.tensor(a, requires_grad=True)
        (x.cumprod(dim) * ft(w)).sum().backward()
        (tx.cumprod(dim) * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        assert np.isfinite(x.grad.numpy()).all()


def test_cumprod_gradient_through_zeros_matches_finite_differences():
    a = np.array([3.0, 0.0, 2.0, 0.0, 5.0])
    x = ft(a).requires_grad_(True)
    x.cumprod(0).sum().backward()
    fd = []
    for i in range(5):
        h = np.zeros(5)
        h[i] = 1e-6
        fd.append((np.cumprod(a + h).sum() - np.cumprod(a - h).sum()) / 2e-6)
    np.testing.assert_allclose(x.grad.numpy(), fd, rtol=1e-6, atol=1e-9)


@needs_torch
@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_loss_class_weights_match_torch(fn):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 4))
    tgt = np.array([0, 3, 1, -100, 3, 2])
    wt = np.array([0.5, 2.0, 1.0, 3.0])
    for reduction in ("mean", "sum", "none"):
        for smoothing in ((0.0, 0.3) if fn == "cross_entropy" else (0.0,)):
            kw = {"label_smoothing": smoothing} if fn == "cross_entropy" else {}
            x = ft(logits).requires_grad_(True)
            tx = torch.tensor(logits, requires_grad=True)
            r = getattr(F, fn)(x, ft(tgt), weight=ft(wt), reduction=reduction, **kw)
            tr = getattr(TF, fn)(tx, torch.tensor(tgt), weight=torch.tensor(wt),
                                 reduction=reduction, **kw)
            np.testing.assert_allclose(r.detach().numpy(), tr.detach().numpy(), rtol=1e-12)
            r.sum().backward()
            tr.sum().backward()
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_loss_weight_shape_error_is_pytorchs():
    with pytest.raises(RuntimeError, match=r"weight tensor should be defined either for all 3 "
                       r"classes or no classes but got weight tensor of shape: \[2\]"):
        F.nll_loss(ferry.zeros(2, 3), ferry.tensor([0, 1]), weight=ferry.ones(2))


def test_chunk_takes_any_positive_int64():
    t = ferry.arange(5)
    assert [p.tolist() for p in t.chunk(2**40)] == [[0], [1], [2], [3], [4]]
    assert len(ferry.chunk(t, 2**31)) == 5
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0, got: "
                       "-1099511627776"):
        t.chunk(-2**40)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0, got: 0"):
        t.chunk(0)


def test_bernoulli_records_a_node_with_zero_gradient_as_torch():
    p = ferry.full((4,), 0.5).requires_grad_(True)
    b = ferry.bernoulli(p)
    assert b.requires_grad
    b.sum().backward()
    assert p.grad.tolist() == [0.0, 0.0, 0.0, 0.0]
    with ferry.no_grad():
        assert not ferry.bernoulli(p).requires_grad
