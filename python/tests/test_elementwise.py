"""The ELEM2 ops from Python (methods, in-place forms, module functions) against torch
where installed, else against NumPy, on cpu and on a non-host device."""
import math

import numpy as np
import pytest

import ferry

try:
    import torch
except ImportError:  # the NumPy references below still run
    torch = None

X = [-2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 3.7, float("nan")]
I = [-7, -3, 0, 2, 5, 9]

NP_UNARY = {
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "trunc": np.trunc,
    "sign": lambda a: np.nan_to_num(np.sign(a)), "reciprocal": lambda a: 1 / a,
    "log1p": np.log1p, "expm1": np.expm1, "exp2": np.exp2, "tan": np.tan, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "isnan": np.isnan, "isinf": np.isinf,
    "isfinite": np.isfinite, "logical_not": np.logical_not,
}


def to_np(t):
    return np.asarray(t.cpu().tolist())


@pytest.mark.parametrize("name", sorted(NP_UNARY))
def test_unary_float_matches_numpy_on_cpu_and_device(name, device):
    a = np.array(X, dtype=np.float32)
    want = NP_UNARY[name](a)
    for dev in ("cpu", device):
        t = ferry.tensor(X, dtype=ferry.float32, device=dev)
        got_m = to_np(getattr(t, name)())
        got_f = to_np(getattr(ferry, name)(t))
        np.testing.assert_allclose(got_m, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(got_f, want, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_integer_rounding_keeps_dtype_and_bool_is_refused():
    t = ferry.tensor(I)
    assert t.floor().dtype == ferry.int64 and t.floor().tolist() == I
    with pytest.raises(NotImplementedError, match="\"floor_vml_cpu\" not implemented for 'Bool'"):
        ferry.tensor([True]).floor()


def test_in_place_forms_write_self():
    t = ferry.tensor([1.5, -1.5])
    assert t.floor_() is t and t.tolist() == [1.0, -2.0]
    t = ferry.tensor([-3.0, 0.5, 9.0])
    assert t.clamp_(0, 1) is t and t.tolist() == [0.0, 0.5, 1.0]


def test_integer_division_follows_python(device):
    a, b = [7, -7, 7, -7], [2, 2, -2, -2]
    for dev in ("cpu", device):
        ta, tb = ferry.tensor(a, device=dev), ferry.tensor(b, device=dev)
        assert ta.floor_divide(tb).tolist() == [x // y for x, y in zip(a, b)]
        assert ta.remainder(tb).tolist() == [x % y for x, y in zip(a, b)]
        assert ferry.fmod(ta, tb).tolist() == [math.fmod(x, y) for x, y in zip(a, b)]
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            ta.floor_divide(0)


def test_bitwise_and_shifts(device):
    for dev in ("cpu", device):
        a = ferry.tensor([12, -8, 5], device=dev)
        assert a.bitwise_and(10).tolist() == [8, 8, 0]
        assert a.bitwise_or(1).tolist() == [13, -7, 5]
        assert a.bitwise_xor(a).tolist() == [0, 0, 0]
        assert a.bitwise_not().tolist() == [~12, 7, ~5]
        assert a.bitwise_left_shift(2).tolist() == [48, -32, 20]
        assert a.bitwise_right_shift(1).tolist() == [6, -4, 2]
        assert ferry.bitwise_right_shift(a, 70).tolist() == [0, -1, 0]
    with pytest.raises(NotImplementedError, match="\"bitwise_and_cpu\" not implemented for 'Float'"):
        ferry.tensor([1.0]).bitwise_and(1)


def test_where_masked_fill_clamp(device):
    for dev in ("cpu", device):
        c = ferry.tensor([True, False, True], device=dev)
        a = ferry.tensor([1.0, 2.0, 3.0], device=dev)
        assert ferry.where(c, a, 0.5).tolist() == [1.0, 0.5, 3.0]
        assert ferry.where(c, 0.5, a).tolist() == [0.5, 2.0, 0.5]
        assert a.masked_fill(c, -1).tolist() == [-1.0, 2.0, -1.0]
        assert ferry.clamp(a, min=1.5).tolist() == [1.5, 2.0, 3.0]
        assert a.clip(max=ferry.tensor([0.0, 5.0, 2.0], device=dev)).tolist() == [0.0, 2.0, 2.0]
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max' must not be None"):
        ferry.tensor([1.0]).clamp()
    with pytest.raises(RuntimeError, match="where expected condition to be a boolean tensor"):
        ferry.where(ferry.tensor([1]), ferry.tensor([1]), ferry.tensor([2]))


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc", "sign", "reciprocal",
                                  "rsqrt", "log1p", "expm1", "log2", "log10", "exp2", "erf",
                                  "tan", "asin", "acos", "atan", "sinh", "cosh", "isnan",
                                  "isinf", "isfinite", "logical_not"])
def test_unary_matches_torch_on_float_and_int(name):
    for vals in (X + [float("inf"), -float("inf"), 0.25, -0.75], I):
        want = getattr(torch, name)(torch.tensor(vals))
        got = getattr(ferry, name)(ferry.tensor(vals))
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_allclose(to_np(got).astype(float), want.double().numpy(),
                                   rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "leaky_relu"])
def test_activations_and_their_gradients_match_torch(name):
    vals = [-3.0, -0.5, 0.25, 1.0, 4.0, 25.0]
    tt = torch.tensor(vals, dtype=torch.float64, requires_grad=True)
    want = getattr(torch.nn.functional, name)(tt)
    want.sum().backward()
    ft = ferry.tensor(vals, dtype=ferry.float64, requires_grad=True)
    got = getattr(ferry, name)(ft)
    got.sum().backward()
    np.testing.assert_allclose(to_np(got), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(ft.grad), tt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("name", ["atan2", "remainder", "fmod", "floor_divide", "hypot",
                                  "logical_and", "logical_or", "logical_xor"])
def test_binary_matches_torch(name):
    a = [-7.5, -3.0, 2.0, 5.5, 0.0, 9.0]
    b = [2.0, -2.5, 3.0, -1.5, 4.0, 0.5]
    want = getattr(torch, name)(torch.tensor(a), torch.tensor(b))
    got = getattr(ferry, name)(ferry.tensor(a), ferry.tensor(b))
    np.testing.assert_allclose(to_np(got).astype(float), want.double().numpy(), rtol=1e-6)


# Operators: Python's own int arithmetic is the reference (its // and % signs are
# PyTorch's), torch too where installed.
OPS = {
    "//": lambda a, b: a // b, "%": lambda a, b: a % b, "&": lambda a, b: a & b,
    "|": lambda a, b: a | b, "^": lambda a, b: a ^ b, "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b,
}
IOPS = {
    "//=": "__ifloordiv__", "%=": "__imod__", "&=": "__iand__", "|=": "__ior__",
    "^=": "__ixor__", "<<=": "__ilshift__", ">>=": "__irshift__",
}
A = [12, -7, 5, -1, 0, 9]
B = [5, 3, -2, 4, 1, -3]
SH = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("op", list(OPS))
def test_operators_tensor_number_reflected(device, op):
    f = OPS[op]
    rhs = SH if "<" in op or ">" in op else B
    a, b = ferry.tensor(A).to(device), ferry.tensor(rhs).to(device)
    assert f(a, b).tolist() == [f(x, y) for x, y in zip(A, rhs)]
    k = 2
    assert f(a, k).tolist() == [f(x, k) for x in A]
    if "<" in op or ">" in op:
        assert f(k, b).tolist() == [f(k, y) for y in rhs]
    else:
        assert f(7, b).tolist() == [f(7, y) for y in rhs]
    if torch is not None:
        ta, tb = torch.tensor(A), torch.tensor(rhs)
        assert f(a, b).tolist() == f(ta, tb).tolist()
        assert f(3, b).tolist() == f(3, tb).tolist()
        assert f(a, 3).tolist() == f(ta, 3).tolist()


def test_operator_dtypes_follow_torch():
    i32 = ferry.tensor([5, -3], dtype=ferry.int32)
    assert (7 // i32).dtype == ferry.int32
    assert (7 % i32).dtype == ferry.int32
    assert (7.5 // i32).dtype == ferry.float32
    assert (7.5 // i32).tolist() == [1.0, -3.0]
    assert (ferry.tensor([7.5, -7.5]) % 2).tolist() == [1.5, 0.5]
    assert (True & ferry.tensor([True, False])).tolist() == [True, False]
    assert (ferry.tensor([True, False]) ^ True).tolist() == [False, True]
    assert (ferry.tensor([True, False]) | ferry.tensor([False, False])).tolist() == [True, False]


@pytest.mark.parametrize("op", list(IOPS))
def test_inplace_operators(device, op):
    rhs = SH if "<" in op or ">" in op else B
    f = OPS[op[:-1]]
    a = ferry.tensor(A).to(device)
    before = a
    a = getattr(a, IOPS[op])(ferry.tensor(rhs).to(device))
    assert a is before
    assert a.tolist() == [f(x, y) for x, y in zip(A, rhs)]
    c = ferry.tensor(A).to(device)
    exec(f"c {op} 2", {}, {"c": c})  # a statement, so the slot runs as written
    assert c.tolist() == [f(x, 2) for x in A]


def test_inplace_operator_refuses_wider_result():
    t = ferry.tensor([1, 2])
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        t //= 2.5
    if torch is not None:
        tt = torch.tensor([1, 2])
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            tt //= 2.5


def test_invert(device):
    assert (~ferry.tensor(A).to(device)).tolist() == [~x for x in A]
    assert (~ferry.tensor([True, False]).to(device)).tolist() == [False, True]
    u8 = ferry.tensor([0, 5], dtype=ferry.uint8)
    assert (~u8).tolist() == [255, 250]
    msg = r"~ \(operator.invert\) is only implemented on integer and Boolean-type tensors"
    with pytest.raises(TypeError, match=msg):
        ~ferry.tensor([1.0])
    if torch is not None:
        with pytest.raises(TypeError, match=msg):
            ~torch.tensor([1.0])
        assert (~ferry.tensor([True, False])).tolist() == (~torch.tensor([True, False])).tolist()


def test_operators_on_floats_raise_like_torch():
    cases = [
        (lambda x: x & 1, "\"bitwise_and_cpu\" not implemented for 'Float'"),
        (lambda x: 1 | x, "\"bitwise_or_cpu\" not implemented for 'Float'"),
        (lambda x: x ^ x, "\"bitwise_xor_cpu\" not implemented for 'Float'"),
        (lambda x: x << 1, "\"lshift_cpu\" not implemented for 'Float'"),
        (lambda x: 1 >> x, "\"rshift_cpu\" not implemented for 'Float'"),
    ]
    for f, msg in cases:
        with pytest.raises(NotImplementedError, match=msg):
            f(ferry.tensor([1.0]))
        if torch is not None:
            with pytest.raises(NotImplementedError, match=msg):
                f(torch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        ferry.tensor([1]) // 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        ferry.tensor([1]) % ferry.tensor([0])


def test_operators_with_other_objects_are_type_errors():
    t = ferry.tensor([1, 2])
    with pytest.raises(TypeError):
        t // "a"
    with pytest.raises(TypeError):
        "a" & t


def test_square(device):
    x = ferry.tensor([1.5, -2.0, 0.0]).to(device)
    assert x.square().tolist() == [2.25, 4.0, 0.0]
    assert ferry.square(x).tolist() == [2.25, 4.0, 0.0]
    i8 = ferry.tensor([3, -4], dtype=ferry.int8)
    assert i8.square().dtype == ferry.int8 and i8.square().tolist() == [9, 16]
    b = ferry.tensor([True, False])
    assert b.square().dtype == ferry.int64 and b.square().tolist() == [1, 0]
    t = ferry.tensor([3, 4]).to(device)
    assert t.square_() is t and t.tolist() == [9, 16]
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        ferry.tensor([True]).square_()
    with pytest.raises(TypeError, match="square\\(\\): argument 'input' must be Tensor"):
        ferry.square(3)
    if torch is not None:
        assert torch.square(torch.tensor([True, False])).dtype == torch.int64
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            torch.tensor([True]).square_()


def test_square_gradient():
    x = ferry.tensor([1.5, -2.0, 0.25], requires_grad=True)
    (x.square() * ferry.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [3.0, -8.0, 1.5]
    if torch is not None:
        tx = torch.tensor([1.5, -2.0, 0.25], requires_grad=True)
        (tx.square() * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        assert x.grad.tolist() == tx.grad.tolist()
