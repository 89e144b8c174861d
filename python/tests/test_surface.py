"""The everyday PyTorch surface over ferry's existing ops: module functions, casts,
transposes, new_*, in-place variants, geometry (data_ptr, storage_offset, as_strided),
einsum, isclose/allclose/equal, broadcasting helpers, the default dtype, pickling, and
ferry.save/ferry.load in the safetensors format. References come from PyTorch when it
is installed and from NumPy otherwise."""
import copy
import io
import json
import math
import os
import pickle
import struct

import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the NumPy references below take over; said once, here
    torch = None
    print("test_surface: PyTorch not installed, comparing against NumPy")

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64"]


def F(name):
    return getattr(ferry, name)


def to_np(t):
    return np.asarray(t.cpu().float().tolist() if t.dtype is ferry.bfloat16 else t.cpu().tolist())


def ref(fn, *arrays, **kw):
    """fn applied by torch (when installed) or NumPy, as a NumPy array."""
    if torch is not None:
        r = getattr(torch, fn)(*[torch.tensor(a) for a in arrays], **kw)
        return r.numpy() if isinstance(r, torch.Tensor) else r
    npfn = {"sum": np.sum, "mean": np.mean, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
            "relu": lambda x: np.maximum(x, 0), "div": np.true_divide, "mm": np.matmul,
            "bmm": np.matmul, "pow": np.power, "sub": np.subtract, "mul": np.multiply,
            "neg": np.negative, "eq": np.equal,
            "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
            "ge": np.greater_equal}.get(fn) or getattr(np, fn)
    if fn in ("sum", "mean") and "dim" in kw:
        kw = {"axis": kw["dim"]}
    return np.asarray(npfn(*arrays, **kw))


A = np.array([[0.5, -1.25, 2.0], [3.0, 0.25, -0.75]], dtype=np.float32)
B = np.array([[1.5, 2.0, -0.5], [0.125, 4.0, 1.0]], dtype=np.float32)


# ---- module functions ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne",
                                  "lt", "le", "gt", "ge"])
def test_binary_functions(name):
    a, b = ferry.tensor(A), ferry.tensor(B)
    got = getattr(ferry, name)(a, b)
    np.testing.assert_allclose(to_np(got), ref(name, A, B), rtol=1e-6)
    # scalar operand, and out=
    np.testing.assert_allclose(to_np(getattr(ferry, name)(a, 2.0)),
                               to_np(getattr(a, name)(2.0)))
    out = ferry.empty(2, 3, dtype=got.dtype)
    r = getattr(ferry, name)(a, b, out=out)
    assert r is out and to_np(out).tolist() == to_np(got).tolist()


def test_pow_and_alpha():
    a = ferry.tensor(np.abs(A))
    np.testing.assert_allclose(to_np(ferry.pow(a, 2)), np.abs(A) ** 2, rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.add(a, a, alpha=3)), np.abs(A) * 4, rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.sub(a, a, alpha=2)), -np.abs(A), rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.add(2, a)), np.abs(A) + 2, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="rounding_mode='floor'"):
        ferry.div(a, a, rounding_mode="floor")
    with pytest.raises(ValueError, match="rounding_mode"):
        ferry.div(a, a, rounding_mode="x")
    with pytest.raises(TypeError, match=r"add\(\): argument 'input'"):
        ferry.add(1, 2)


@pytest.mark.parametrize("name", ["neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh",
                                  "sigmoid", "relu"])
def test_unary_functions(name):
    x = np.abs(A) + 0.5 if name in ("log", "sqrt") else A
    got = getattr(ferry, name)(ferry.tensor(x))
    np.testing.assert_allclose(to_np(got), ref(name, x), rtol=1e-6, atol=1e-7)
    out = ferry.empty(2, 3)
    assert getattr(ferry, name)(ferry.tensor(x), out=out) is out
    np.testing.assert_allclose(to_np(out), to_np(got))


def test_reductions_functions():
    a = ferry.tensor(A)
    np.testing.assert_allclose(to_np(ferry.sum(a)), A.sum(), rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.sum(a, 1)), ref("sum", A, dim=1), rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.mean(a, 0)), ref("mean", A, dim=0), rtol=1e-6)
    assert ferry.sum(a, dim=(0, 1), keepdim=True).shape == (1, 1)
    out = ferry.empty(2)
    assert ferry.sum(a, 1, out=out) is out
    np.testing.assert_allclose(to_np(out), A.sum(1), rtol=1e-6)
    i = ferry.tensor([[1, 2], [3, 4]])
    s = ferry.sum(i, dtype=ferry.float64)
    assert s.dtype is ferry.float64 and s.item() == 10.0
    assert i.sum(dtype=ferry.int32).dtype is ferry.int32
    m = i.mean(1, dtype=ferry.float64)
    assert m.dtype is ferry.float64 and m.tolist() == [1.5, 3.5]
    assert ferry.max(a).item() == 3.0 and ferry.min(a).item() == -1.25
    v, idx = ferry.max(a, 1)
    assert to_np(v).tolist() == [2.0, 3.0] and idx.tolist() == [2, 0]
    r = ferry.min(a, 1, keepdim=True)
    assert r.values.shape == (2, 1) and r.indices.tolist() == [[1], [2]]
    assert ferry.max(a, ferry.tensor(B)).tolist() == ferry.maximum(a, ferry.tensor(B)).tolist()
    nan = ferry.tensor([[1.0, math.nan, 0.0], [2.0, 1.0, 1.0]])
    v, idx = ferry.min(nan, 1)
    assert math.isnan(v.tolist()[0]) and idx.tolist() == [1, 1]  # first min, NaN wins
    if torch is not None:
        tv, ti = torch.min(torch.tensor(nan.tolist()), 1)
        assert ti.tolist() == idx.tolist()
    assert ferry.argmax(a, 1).tolist() == [2, 0]


def test_mm_bmm_matmul():
    a, b = ferry.tensor(A), ferry.tensor(B.T.copy())
    np.testing.assert_allclose(to_np(ferry.mm(a, b)), A @ B.T, rtol=1e-6)
    np.testing.assert_allclose(to_np(ferry.matmul(a, b)), A @ B.T, rtol=1e-6)
    out = ferry.empty(2, 2)
    assert ferry.mm(a, b, out=out) is out
    with pytest.raises(RuntimeError, match=r"^mm: self must be a matrix, got 1-D tensor$"):
        ferry.mm(ferry.ones(3), b)
    with pytest.raises(RuntimeError, match=r"^mm: mat2 must be a matrix, got 1-D tensor$"):
        ferry.mm(a, ferry.ones(3))
    with pytest.raises(RuntimeError, match=re.escape(
            "mm: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")):
        ferry.mm(a, ferry.ones(4, 5))
    x, y = np.random.default_rng(0).standard_normal((2, 4, 3, 5)).astype(np.float32)[:2, 0], None
    x = np.random.default_rng(1).standard_normal((4, 2, 3)).astype(np.float32)
    y = np.random.default_rng(2).standard_normal((4, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(to_np(ferry.bmm(ferry.tensor(x), ferry.tensor(y))), x @ y,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="^batch1 must be a 3D tensor$"):
        ferry.bmm(a, a)
    with pytest.raises(RuntimeError, match="^batch2 must be a 3D tensor$"):
        ferry.bmm(ferry.tensor(x), a)
    with pytest.raises(RuntimeError, match=re.escape(
            "Expected size for first two dimensions of batch2 tensor to be: [4, 3] but got: "
            "[4, 2].")):
        ferry.bmm(ferry.tensor(x), ferry.ones(4, 2, 3))


import re  # noqa: E402  (used by the tests above and below)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->ji", [(2, 3)]), ("ii->", [(3, 3)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("i,i->", [(4,), (4,)]), ("i,j->ij", [(3,), (4,)]),
    ("ij->", [(2, 3)]), ("ij->j", [(2, 3)]), ("ijk->kji", [(2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ik,jk->ij", [(2, 3), (4, 3)]), ("ijj->i", [(2, 3, 3)])])
def test_einsum(eq, shapes):
    rng = np.random.default_rng(len(eq))
    xs = [rng.standard_normal(s).astype(np.float64) for s in shapes]
    got = ferry.einsum(eq, *[ferry.tensor(x) for x in xs])
    want = (torch.einsum(eq, *[torch.tensor(x) for x in xs]).numpy() if torch is not None
            else np.einsum(eq, *xs))
    assert got.shape == want.shape
    np.testing.assert_allclose(to_np(got), want, rtol=1e-10, atol=1e-12)
    # the list form, and autograd through the trace
    x = ferry.tensor(xs[0], requires_grad=True)
    ferry.einsum(eq, [x] + [ferry.tensor(v) for v in xs[1:]]).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_einsum_errors():
    a, b = ferry.ones(2, 3), ferry.ones(4, 5)
    with pytest.raises(RuntimeError, match="fewer operands were provided"):
        ferry.einsum("ij,jk->ik", a)
    with pytest.raises(RuntimeError, match="more operands were provided"):
        ferry.einsum("ij->ij", a, a)
    with pytest.raises(RuntimeError, match=re.escape(
            "einsum(): subscript j has size 4 for operand 1 which does not broadcast with "
            "previously seen size 3")):
        ferry.einsum("ij,jk->ik", a, b)
    with pytest.raises(RuntimeError, match=re.escape(
            "einsum(): output subscript k does not appear in the equation for any input "
            "operand")):
        ferry.einsum("ij->k", a)
    with pytest.raises(RuntimeError, match="number of subscripts"):
        ferry.einsum("ijk->i", a)
    with pytest.raises(NotImplementedError, match="ellipsis"):
        ferry.einsum("...ij->...ji", a)


def test_isclose_allclose_equal():
    a = ferry.tensor([1.0, 2.0, math.nan, math.inf, -math.inf, 1.0])
    b = ferry.tensor([1.0 + 1e-6, 2.1, math.nan, math.inf, math.inf, 1.00002])
    want = [True, False, False, True, False, False]
    if torch is not None:
        want = torch.isclose(torch.tensor(a.tolist()), torch.tensor(b.tolist())).tolist()
    assert ferry.isclose(a, b).tolist() == want
    assert ferry.isclose(a, b, equal_nan=True).tolist()[2] is True
    assert ferry.isclose(a, b, rtol=1e-4).tolist()[5] is True
    assert ferry.allclose(a[:1], b[:1]) is True and ferry.allclose(a, b) is False
    i = ferry.tensor([1, 2, 3])
    assert ferry.isclose(i, ferry.tensor([1, 3, 3])).tolist() == [True, False, True]
    with pytest.raises(RuntimeError, match="^Float did not match Double$"):
        ferry.isclose(ferry.ones(2), ferry.ones(2, dtype=ferry.float64))
    with pytest.raises(RuntimeError, match="rtol must be greater than or equal to zero"):
        ferry.isclose(a, b, rtol=-1)
    assert ferry.equal(ferry.tensor(A), ferry.tensor(A)) is True
    assert ferry.equal(ferry.tensor(A), ferry.tensor(B)) is False
    assert ferry.equal(ferry.ones(2), ferry.ones(3)) is False
    assert ferry.equal(ferry.tensor([math.nan]), ferry.tensor([math.nan])) is False


def test_is_tensor_numel_broadcast_as_tensor():
    a = ferry.ones(2, 1, 3)
    assert ferry.is_tensor(a) and not ferry.is_tensor(np.ones(2)) and not ferry.is_tensor(1)
    assert ferry.numel(a) == 6 and a.nelement() == 6
    assert ferry.broadcast_shapes((2, 1), (3,), (1, 1, 1)) == (1, 2, 3)
    assert ferry.broadcast_shapes() == ()
    assert isinstance(ferry.broadcast_shapes((2,)), ferry.Size)
    with pytest.raises(RuntimeError, match=re.escape(
            "Attempting to broadcast a dimension of length 4 at -2! Mismatching argument at "
            "index 1 had (4, 3); but expected shape should be broadcastable to [2, 3]")):
        ferry.broadcast_shapes((2, 3), (4, 3))
    x, y = ferry.broadcast_tensors(ferry.ones(2, 1), ferry.zeros(3))
    assert x.shape == (2, 3) and y.shape == (2, 3)
    if torch is not None:
        assert tuple(torch.broadcast_shapes((2, 1), (3,), (1, 1, 1))) == (1, 2, 3)
    assert ferry.as_tensor(a) is a
    assert ferry.as_tensor(a, dtype=ferry.float64).dtype is ferry.float64
    arr = np.arange(3.0)
    t = ferry.as_tensor(arr)
    arr[0] = 7
    assert t.tolist()[0] == 7.0  # no copy from NumPy on cpu
    assert ferry.as_tensor([1, 2]).dtype is ferry.int64


# ---- methods --------------------------------------------------------------------------

CASTS = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
         "long": "int64", "int": "int32", "short": "int16", "char": "int8", "byte": "uint8",
         "bool": "bool"}


@pytest.mark.parametrize("method", sorted(CASTS))
def test_casts(method):
    a = ferry.tensor([[0.0, 1.5], [-2.0, 3.0]])
    r = getattr(a, method)()
    assert r.dtype is F(CASTS[method])
    if method != "byte":  # negative to uint8 is implementation defined in torch
        want = [[0.0, 1.5], [-2.0, 3.0]]
        if torch is not None:
            want = getattr(torch.tensor(want), method)().tolist()
            assert r.tolist() == want
    assert getattr(r, method)() is r  # already that dtype: self, as torch
    assert a.type_as(r).dtype is r.dtype


def test_transposes_and_as():
    a = ferry.tensor(A)
    assert to_np(a.t()).tolist() == A.T.tolist() and to_np(a.T).tolist() == A.T.tolist()
    assert ferry.ones(3).t().shape == (3,) and ferry.tensor(2.0).t().shape == ()
    with pytest.raises(RuntimeError, match=r"^t\(\) expects a tensor with <= 2 dimensions, but "
                                           r"self is 3D$"):
        ferry.ones(2, 2, 2).t()
    b = ferry.ones(4, 2, 3)
    assert b.mT.shape == (4, 3, 2) and b.T.shape == (3, 2, 4)
    with pytest.raises(RuntimeError, match=re.escape(
            "tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor.")):
        ferry.ones(3).mT
    assert a.view_as(ferry.ones(3, 2)).shape == (3, 2)
    assert a.t().reshape_as(ferry.ones(6)).tolist() == A.T.reshape(-1).tolist()
    assert ferry.ones(1, 3).expand_as(ferry.ones(4, 3)).shape == (4, 3)
    with pytest.raises(TypeError, match="view_as"):
        a.view_as((3, 2))
    with pytest.raises(RuntimeError):
        a.t().view_as(ferry.ones(6))  # not viewable, as torch


def test_new_factories(device):
    for dev in ("cpu", device):
        a = ferry.ones(2, dtype=ferry.float64, device=dev)
        z = a.new_zeros(2, 3)
        assert z.dtype is ferry.float64 and str(z.device) == str(a.device)
        assert z.cpu().tolist() == [[0.0] * 3] * 2
        assert a.new_ones((2,)).cpu().tolist() == [1.0, 1.0]
        assert a.new_full((2,), 7).cpu().tolist() == [7.0, 7.0]
        assert a.new_empty(4).shape == (4,)
        n = a.new_tensor([1, 2])
        assert n.dtype is ferry.float64 and str(n.device) == str(a.device)
        assert a.new_zeros(2, dtype=ferry.int32).dtype is ferry.int32
        assert a.new_ones(2, device="cpu").device.type == "cpu"
        assert not a.new_zeros(2).requires_grad
    if torch is not None:
        assert torch.ones(2, dtype=torch.float64).new_tensor([1, 2]).dtype == torch.float64


@pytest.mark.parametrize("name", ["neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh",
                                  "sigmoid", "relu"])
def test_inplace_unary(name, device):
    x = np.abs(A) + 0.5 if name in ("log", "sqrt") else A
    for dev in ("cpu", device):
        t = ferry.tensor(x, device=dev)
        view = t[0]
        r = getattr(t, name + "_")()
        assert r is t
        np.testing.assert_allclose(to_np(t), to_np(getattr(ferry.tensor(x), name)()), rtol=1e-6)
        assert to_np(view).tolist() == to_np(t)[0].tolist()  # views see the write


def test_inplace_zero_fill_pow():
    t = ferry.tensor([1.0, 2.0, 3.0])
    assert t.pow_(2) is t and t.tolist() == [1.0, 4.0, 9.0]
    t.pow_(ferry.tensor([0.5, 0.5, 0.5]))
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert t.zero_() is t and t.tolist() == [0.0, 0.0, 0.0]
    i = ferry.tensor([2, 3])
    with pytest.raises(RuntimeError):
        i.sqrt_()  # float result cannot go into int64, as torch
    with pytest.raises(TypeError, match="pow_"):
        t.pow_("x")


def test_inplace_autograd_rules():
    x = ferry.ones(3, requires_grad=True)
    for op in ("exp_", "relu_", "neg_", "zero_"):
        with pytest.raises(RuntimeError, match=re.escape(
                "a leaf Variable that requires grad is being used in an in-place operation.")):
            getattr(x, op)()
    with pytest.raises(RuntimeError, match="a leaf Variable"):
        x.pow_(2)
    with ferry.no_grad():
        x.exp_()  # allowed without grad mode, as torch
    assert abs(x.tolist()[0] - math.e) < 1e-6
    # a saved tensor written in place makes backward fail (the version counter)
    y = ferry.ones(3, requires_grad=True)
    z = y.exp()
    z.exp_() if False else None
    w = y.sigmoid()
    w2 = w * 1.0
    w.detach()  # detach shares storage; writing through it bumps the version
    s = (w * w).sum()
    w.detach().mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        s.backward()


def test_geometry():
    a = ferry.arange(12, dtype=ferry.float32).reshape(3, 4)
    assert a.storage_offset() == 0 and a[1].storage_offset() == 4
    assert a[1:, 2:].storage_offset() == 6
    assert a[1].data_ptr() == a.data_ptr() + 16
    if torch is not None:
        tt = torch.from_dlpack(a)
        assert tt.data_ptr() == a.data_ptr()
    s = a.as_strided((2, 2), (1, 4), 1)
    assert s.tolist() == [[1.0, 5.0], [2.0, 6.0]]
    assert a[1].as_strided((2,), (1,)).tolist() == [4.0, 5.0]  # offset defaults to self's
    with pytest.raises(RuntimeError, match=re.escape(
            "setStorage: sizes [13], strides [1], storage offset 0, and itemsize 4 requiring a "
            "storage size of 52 are out of bounds for storage of size 48")):
        a.as_strided((13,), (1,), 0)
    with pytest.raises(RuntimeError, match="^Tensor: invalid storage offset -1$"):
        a.as_strided((2,), (1,), -1)
    with pytest.raises(RuntimeError, match=re.escape(
            "as_strided: Negative strides are not supported at the moment, got strides: [-1]")):
        a.as_strided((2,), (-1,))
    with pytest.raises(RuntimeError, match="mismatch in length of strides and shape"):
        a.as_strided((2, 2), (1,))
    with pytest.raises(RuntimeError, match="integer multiplication overflow"):
        a.as_strided((2**40, 2**40), (2**40, 1))
    with pytest.raises(RuntimeError, match="beyond int64|out of bounds|overflow"):
        a.as_strided((2**62, 4), (2**62, 1))
    assert a.as_strided((0, 5), (100, 100), 48).shape == (0, 5)  # empty: nothing addressed
    with pytest.raises(NotImplementedError, match="requires grad"):
        ferry.ones(2, requires_grad=True).as_strided((2,), (1,))


# ---- default dtype --------------------------------------------------------------------

def test_default_dtype():
    assert ferry.get_default_dtype() is ferry.float32
    try:
        ferry.set_default_dtype(ferry.float64)
        assert ferry.get_default_dtype() is ferry.float64
        assert ferry.tensor([1.5]).dtype is ferry.float64
        assert ferry.tensor([]).dtype is ferry.float64
        assert ferry.zeros(2).dtype is ferry.float64 and ferry.ones(2).dtype is ferry.float64
        assert ferry.full((2,), 1.5).dtype is ferry.float64
        assert ferry.arange(0, 1, 0.5).dtype is ferry.float64 and ferry.eye(2).dtype is ferry.float64
        assert ferry.tensor([1]).dtype is ferry.int64 and ferry.full((2,), 1).dtype is ferry.int64
    finally:
        ferry.set_default_dtype(ferry.float32)
    assert ferry.tensor([1.5]).dtype is ferry.float32
    for bad in (ferry.int32, ferry.float16, "float64"):
        with pytest.raises(TypeError, match="^only floating-point types are supported as the "
                                            "default type$"):
            ferry.set_default_dtype(bad)
    if torch is not None:
        with pytest.raises(TypeError, match="only floating-point types are supported"):
            torch.set_default_dtype(torch.int32)


# ---- pickle, deepcopy -----------------------------------------------------------------

def _all_dtypes_tensor(name, dev="cpu"):
    vals = [[0, 1, 2], [3, 4, 5]] if name != "bool" else [[True, False, True], [False] * 3]
    return ferry.tensor(vals, dtype=F(name), device=dev)


@pytest.mark.parametrize("name", DTYPES)
def test_pickle_and_deepcopy(name, device):
    for dev in ("cpu", device):
        t = _all_dtypes_tensor(name, dev)
        for r in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t)):
            assert r.dtype is t.dtype and str(r.device) == str(t.device)
            assert r.cpu().tolist() == t.cpu().tolist()
            assert r.data_ptr() != t.data_ptr()
    g = ferry.tensor([1.0, 2.0], requires_grad=True)
    r = copy.deepcopy(g)
    assert r.requires_grad and r.is_leaf and r.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match=r"^Only Tensors created explicitly by the user "
                                           r"\(graph leaves\) support the deepcopy protocol"):
        copy.deepcopy(g * 2)
    assert pickle.loads(pickle.dumps(g * 2)).requires_grad  # pickling makes a leaf, as torch
    shared = {"a": g, "b": g}
    c = copy.deepcopy(shared)
    assert c["a"] is c["b"]  # the memo keeps identity
    nc = ferry.arange(6.0).reshape(2, 3).t()
    assert pickle.loads(pickle.dumps(nc)).tolist() == nc.tolist()
    assert copy.deepcopy({"a": nc})["a"].tolist() == nc.tolist()


# ---- save / load ----------------------------------------------------------------------

def read_safetensors(raw):
    """A tiny independent reader: 8-byte little-endian length, JSON header, raw bytes."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    np_types = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": "<i2", "I32": "<i4",
                "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        arr = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np_types[v["dtype"]])
        if v["dtype"] == "BF16":  # widen bfloat16 bits to float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[k] = (v["dtype"], arr.reshape(v["shape"]))
    return out, meta


def test_save_load_roundtrip_every_dtype(tmp_path, device):
    d = {name: _all_dtypes_tensor(name) for name in DTYPES}
    d["dev"] = ferry.tensor([1.5, 2.5], device=device)
    d["noncontig"] = ferry.arange(6.0).reshape(2, 3).t()
    d["empty"] = ferry.zeros(0, 3)
    d["scalar"] = ferry.tensor(3.25, dtype=ferry.float64)
    p = tmp_path / "t.safetensors"
    ferry.save(d, p)
    back = ferry.load(p)
    assert sorted(back) == sorted(d)
    for k, t in d.items():
        assert back[k].dtype is t.dtype and back[k].shape == t.shape, k
        assert str(back[k].device) == str(t.device), k
        assert back[k].cpu().tolist() == t.cpu().tolist(), k
    on_cpu = ferry.load(p, map_location="cpu")
    assert str(on_cpu["dev"].device) == "cpu"
    mapped = ferry.load(p, map_location={device: "cpu"})
    assert str(mapped["dev"].device) == "cpu"
    raw = p.read_bytes()
    parsed, meta = read_safetensors(raw)
    assert meta["device:dev"] == device
    codes = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "int32": "I32",
             "int64": "I64", "float16": "F16", "bfloat16": "BF16", "float32": "F32",
             "float64": "F64"}
    for name in DTYPES:
        code, arr = parsed[name]
        assert code == codes[name]
        assert arr.tolist() == d[name].tolist(), name
    assert parsed["noncontig"][1].tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    # a bare tensor, through a file object
    buf = io.BytesIO()
    ferry.save(d["noncontig"], buf)
    buf.seek(0)
    t = ferry.load(buf)
    assert isinstance(t, ferry.Tensor) and t.tolist() == d["noncontig"].tolist()


def test_safetensors_library_reads_it(tmp_path):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        pytest.skip("the safetensors library is not installed (pip install safetensors); the "
                    "format is still checked by this file's own reader")
    p = tmp_path / "x.safetensors"
    ferry.save({"a": ferry.tensor(A), "i": ferry.tensor([1, 2], dtype=ferry.int16)}, p)
    got = load_file(str(p))
    assert got["a"].tolist() == A.tolist() and got["i"].dtype == np.int16
    from safetensors.numpy import save_file
    save_file({"z": np.arange(4, dtype=np.int32)}, str(tmp_path / "y.safetensors"))
    assert ferry.load(tmp_path / "y.safetensors")["z"].tolist() == [0, 1, 2, 3]


def _file(header_bytes, data=b"", n=None):
    n = len(header_bytes) if n is None else n
    return io.BytesIO(struct.pack("<Q", n) + header_bytes + data)


def test_load_bad_files():
    with pytest.raises(RuntimeError, match="too short"):
        ferry.load(io.BytesIO(b"\x01\x02"))
    with pytest.raises(RuntimeError, match="header length"):
        ferry.load(_file(b"{}", n=1000))
    with pytest.raises(RuntimeError, match="header length"):
        ferry.load(_file(b"{}", n=2**64 - 1))
    with pytest.raises(ValueError, match="not valid JSON"):
        ferry.load(_file(b"{nope"))
    with pytest.raises(ValueError, match="JSON object"):
        ferry.load(_file(b"[1]"))

    def entry(**kw):
        e = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        e.update(kw)
        return json.dumps({"x": e}).encode()
    with pytest.raises(ValueError, match="out of range"):
        ferry.load(_file(entry(), b"\0" * 4))
    with pytest.raises(ValueError, match="out of range"):
        ferry.load(_file(entry(data_offsets=[8, 0]), b"\0" * 8))
    with pytest.raises(ValueError, match="unsupported dtype 'C64'"):
        ferry.load(_file(entry(dtype="C64"), b"\0" * 8))
    with pytest.raises(ValueError, match="invalid shape"):
        ferry.load(_file(entry(shape=[-1]), b"\0" * 8))
    with pytest.raises(ValueError, match="do not hold"):
        ferry.load(_file(entry(shape=[3]), b"\0" * 8))
    with pytest.raises(ValueError, match="overflows|do not hold"):
        ferry.load(_file(entry(shape=[2**40, 2**40]), b"\0" * 8))
    with pytest.raises(ValueError, match="invalid data_offsets"):
        ferry.load(_file(entry(data_offsets=[0]), b"\0" * 8))
    with pytest.raises(TypeError, match="dict keys must be str"):
        ferry.save({1: ferry.ones(1)}, io.BytesIO())
    with pytest.raises(TypeError, match="expected a Tensor or a dict"):
        ferry.save([ferry.ones(1)], io.BytesIO())


# ---- print options --------------------------------------------------------------------

PRINT_CASES = [
    (dict(precision=2), [1.123456, 2.5, 3e-5], "tensor([1.12e+00, 2.50e+00, 3.00e-05])"),
    (dict(sci_mode=True), [1.0, 2.0], "tensor([1.0000e+00, 2.0000e+00])"),
    (dict(sci_mode=False), [1e-8, 1e9], "tensor([         0.0000, 1000000000.0000])"),
    (dict(threshold=5, edgeitems=1), list(range(20)), "tensor([ 0,  ..., 19])"),
    (dict(linewidth=20), [1.5] * 3, "tensor([1.5000,\n        1.5000,\n        1.5000])"),
    (dict(profile="short"), [1.123456, 2.0], "tensor([1.12, 2.00])"),
    (dict(profile="full"), list(range(1001)), None),
]


@pytest.mark.parametrize("kw,data,want", PRINT_CASES)
def test_set_printoptions(kw, data, want):
    try:
        ferry.set_printoptions(**kw)
        got = repr(ferry.tensor(data))
        if torch is not None:
            torch.set_printoptions(**kw)
            want = repr(torch.tensor(data)).replace("torch.", "ferry.")
        if want is None:  # 'full' never summarizes
            assert "..." not in got and got.count(",") == 1000
        else:
            assert got == want
    finally:
        ferry.set_printoptions(profile="default")
        if torch is not None:
            torch.set_printoptions(profile="default")
    assert repr(ferry.tensor([1.123456])) == "tensor([1.1235])"


def test_set_printoptions_errors():
    with pytest.raises(ValueError, match="unknown profile"):
        ferry.set_printoptions(profile="nope")
    with pytest.raises(ValueError, match=r"precision must be in \[0, 64\]"):
        ferry.set_printoptions(precision=-1)
    with pytest.raises(ValueError, match="linewidth must be >= 1"):
        ferry.set_printoptions(linewidth=0)
    with pytest.raises(ValueError, match="edgeitems"):
        ferry.set_printoptions(edgeitems=10**6)
    assert repr(ferry.tensor([1.123456])) == "tensor([1.1235])"  # nothing half-applied
