"""Joining, splitting and shape functions against NumPy (always) and PyTorch (where
installed): values, dtypes, views, gradients and the exceptions PyTorch raises."""
import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the NumPy references still run; torch-only checks skip with why
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed; "
                                 "the torch cross-checks need it")


def ft(a):
    return ferry.from_numpy(np.ascontiguousarray(a))


def test_cat_matches_numpy_and_promotes():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(4, dtype=np.int32).reshape(2, 2)
    for name in ("cat", "concat", "concatenate"):
        r = getattr(ferry, name)([ft(a), ft(b)], dim=1)
        assert r.dtype is ferry.float32
        np.testing.assert_array_equal(r.numpy(), np.concatenate([a, b.astype(np.float32)], 1))
    r = ferry.cat([ft(a), ft(a)], -2)
    np.testing.assert_array_equal(r.numpy(), np.concatenate([a, a], 0))
    # An empty 1-D tensor is skipped, as torch.cat does.
    r = ferry.cat([ft(a), ferry.zeros(0), ft(a)])
    assert tuple(r.shape) == (4, 3)
    assert ferry.cat((ft(a),)).tolist() == a.tolist()


def test_cat_errors_are_pytorchs():
    a, b = ferry.zeros(2, 2), ferry.zeros(3, 3)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 1. "
                       "Expected size 2 but got size 3 for tensor number 1 in the list."):
        ferry.cat([a, b], 1)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range "
                       r"of \[-2, 1\], but got 2\)"):
        ferry.cat([a, a], 2)
    with pytest.raises(ValueError, match="expected a non-empty list of Tensors"):
        ferry.cat([])
    with pytest.raises(TypeError):
        ferry.cat([a, 1])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        ferry.stack([a, b])


def test_stack_matches_numpy():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    for d in range(-3, 3):
        r = ferry.stack([ft(a), ft(a + 1)], d)
        np.testing.assert_array_equal(r.numpy(), np.stack([a, a + 1], d))


def test_split_chunk_unbind_narrow_are_views_with_torch_sizes():
    a = np.arange(35, dtype=np.float32).reshape(5, 7)
    t = ft(a)
    parts = t.split(2, dim=1)
    assert [tuple(p.shape) for p in parts] == [(5, 2), (5, 2), (5, 2), (5, 1)]
    np.testing.assert_array_equal(parts[3].numpy(), a[:, 6:])
    parts = ferry.split(t, [1, 4], 0)
    assert [tuple(p.shape) for p in parts] == [(1, 7), (4, 7)]
    # torch.chunk: pieces of ceil(n / chunks), so 6 into 4 gives 3 pieces.
    assert [p.shape[0] for p in ferry.zeros(6).chunk(4)] == [2, 2, 2]
    assert [p.shape[0] for p in ferry.zeros(5).chunk(3)] == [2, 2, 1]
    assert [p.shape[0] for p in ferry.zeros(0).chunk(3)] == [0, 0, 0]
    rows = ferry.unbind(t, 0)
    assert len(rows) == 5 and rows[2].tolist() == a[2].tolist()
    n = t.narrow(1, -3, 2)
    np.testing.assert_array_equal(n.numpy(), a[:, 4:6])
    n.fill_(-1)  # a view: the write reaches t
    assert t.numpy()[0, 4] == -1
    with pytest.raises(RuntimeError, match=r"start \(1\) \+ length \(3\) exceeds dimension "
                       r"size \(2\)."):
        ferry.zeros(2).narrow(0, 1, 3)
    with pytest.raises(RuntimeError, match="split_size can only be 0 if dimension size is 0"):
        t.split(0)
    with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
        t.chunk(0)
    with pytest.raises(RuntimeError, match="split_with_sizes expects split_sizes to sum exactly"):
        t.split([1, 1])


def test_flip_movedim_broadcast_to_match_numpy():
    a = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    t = ft(a)
    np.testing.assert_array_equal(t.flip(0).numpy(), np.flip(a, 0))
    np.testing.assert_array_equal(ferry.flip(t, (0, -1)).numpy(), np.flip(a, (0, 2)))
    np.testing.assert_array_equal(t.flip([1]).numpy(), np.flip(a, 1))
    np.testing.assert_array_equal(t.fliplr().numpy(), np.fliplr(a))
    np.testing.assert_array_equal(ferry.flipud(t).numpy(), np.flipud(a))
    np.testing.assert_array_equal(t.movedim(0, -1).numpy(), np.moveaxis(a, 0, -1))
    np.testing.assert_array_equal(ferry.moveaxis(t, (0, 1), (2, 0)).numpy(),
                                  np.moveaxis(a, (0, 1), (2, 0)))
    b = ft(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(ferry.broadcast_to(b, (2, 3)).numpy(),
                                  np.broadcast_to(np.arange(3, dtype=np.float32), (2, 3)))
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        t.flip((0, 0))


def test_like_functions_take_dtype_and_device():
    t = ferry.zeros(2, 3, dtype=ferry.int32)
    assert ferry.ones_like(t).tolist() == [[1, 1, 1]] * 2 and ferry.ones_like(t).dtype is ferry.int32
    z = ferry.zeros_like(t, dtype=ferry.float64)
    assert z.dtype is ferry.float64 and tuple(z.shape) == (2, 3)
    f = ferry.full_like(t, 7)
    assert f.tolist() == [[7, 7, 7]] * 2
    assert tuple(ferry.empty_like(t).shape) == (2, 3)


@needs_torch
def test_gradients_match_torch():
    a = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    b = np.arange(4, dtype=np.float64).reshape(2, 2) / 5
    fa, fb = ft(a), ft(b)
    fa.requires_grad_(True)
    fb.requires_grad_(True)
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    w = np.arange(2 * 8, dtype=np.float64).reshape(2, 8)

    fr = ferry.cat([fa, fb, fa], 1).flip(1) * ft(w)
    tr = torch.cat([ta, tb, ta], 1).flip(1) * torch.tensor(w)
    fr.sum().backward()
    tr.sum().backward()
    np.testing.assert_allclose(fa.grad.numpy(), ta.grad.numpy())
    np.testing.assert_allclose(fb.grad.numpy(), tb.grad.numpy())


@needs_torch
def test_chunk_sizes_and_messages_match_torch():
    for n in range(0, 9):
        for c in range(1, 6):
            assert ([p.shape[0] for p in ferry.zeros(n).chunk(c)] ==
                    [p.shape[0] for p in torch.zeros(n).chunk(c)]), (n, c)
            if n:
                assert ([p.shape[0] for p in ferry.zeros(n).split(c)] ==
                        [p.shape[0] for p in torch.zeros(n).split(c)]), (n, c)
    for fn in (lambda m: m.cat([m.zeros(2, 2), m.zeros(3, 3)], 1),
               lambda m: m.stack([m.zeros(2, 2), m.zeros(3, 3)]),
               lambda m: m.zeros(2).narrow(0, -3, 1),
               lambda m: m.zeros(2).split(-1)):
        with pytest.raises(Exception) as te:
            fn(torch)
        with pytest.raises(type(te.value), match=None) as fe:
            fn(ferry)
        assert str(fe.value) == str(te.value)


def test_roll_repeat_tile_match_numpy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = ft(a)
    np.testing.assert_array_equal(t.roll(1, 0).numpy(), np.roll(a, 1, 0))
    np.testing.assert_array_equal(ferry.roll(t, (-5, 2), (0, 1)).numpy(), np.roll(a, (-5, 2), (0, 1)))
    np.testing.assert_array_equal(t.roll(7).numpy(), np.roll(a, 7))
    np.testing.assert_array_equal(t.repeat(2, 1, 2).numpy(), np.tile(a, (2, 1, 2)))
    np.testing.assert_array_equal(t.repeat((1, 3)).numpy(), np.tile(a, (1, 3)))
    np.testing.assert_array_equal(ferry.tile(t, (2,)).numpy(), np.tile(a, (2,)))
    with pytest.raises(RuntimeError, match="Number of dimensions of repeat dims can not be smaller"):
        t.repeat(2)


def test_linspace_values():
    np.testing.assert_allclose(ferry.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5, dtype=np.float32))
    assert ferry.linspace(0, 10, 5, dtype=ferry.int64).tolist() == [0, 2, 5, 7, 10]
    assert ferry.linspace(0, 1, 0).tolist() == []
    with pytest.raises(RuntimeError, match="number of steps must be non-negative"):
        ferry.linspace(0, 1, -1)


@needs_torch
def test_linspace_float32_is_bit_identical_to_torch():
    for s, e, n in ((0, 1, 7), (-3.3, 11.7, 1000), (1e-3, 5e4, 333), (2, -2, 10)):
        f = ferry.linspace(s, e, n).numpy()
        t = torch.linspace(s, e, n).numpy()
        assert f.tobytes() == t.tobytes(), (s, e, n)


def test_dims_past_int32_are_index_errors_not_truncated():
    t = ferry.arange(6.).reshape(2, 3)
    msg = r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 1099511627776\)"
    for call in (lambda: ferry.cat([t, t], 2**40), lambda: t.split(1, 2**40),
                 lambda: t.chunk(2, 2**40), lambda: t.unbind(2**40),
                 lambda: t.narrow(2**40, 0, 1), lambda: t.gather(2**40, ferry.zeros(1, 1, dtype=ferry.int64)),
                 lambda: t.index_select(2**40, ferry.zeros(1, dtype=ferry.int64))):
        with pytest.raises(IndexError, match=msg):
            call()
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got -1099511627776"):
        ferry.stack([t, t], -2**40)
