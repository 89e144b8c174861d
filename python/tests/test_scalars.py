"""Python numbers as operands (the C API's _scalar_ex forms): PyTorch's promotion of
Python scalars, forward, reflected and in place, beside dimensioned and 0-d tensors of
every dtype; ints exact over the whole int64 range and refused past it; NumPy's
scalars."""
import math
import operator

import numpy as np
import pytest

import ferry

ALL_DTYPES = [ferry.bool, ferry.uint8, ferry.int8, ferry.int16, ferry.int32, ferry.int64,
              ferry.float16, ferry.bfloat16, ferry.float32, ferry.float64]
FLOATING = {ferry.float16, ferry.bfloat16, ferry.float32, ferry.float64}
OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
       "div": operator.truediv, "pow": operator.pow, "eq": operator.eq, "lt": operator.lt,
       "ge": operator.ge}
COMPARISONS = {"eq", "lt", "ge"}


def category(dtype):
    return 0 if dtype is ferry.bool else 2 if dtype in FLOATING else 1


def scalar_category(s):
    return 0 if isinstance(s, bool) else 1 if isinstance(s, int) else 2


def expected_dtype(dtype, scalar, op):
    """PyTorch's rule for a tensor and a Python scalar: the scalar may lift the category
    (to int64 or the default float32), never the width within it; true division of
    integers gives float32; comparisons give bool. 0-d tensors follow the same rule."""
    cs = scalar_category(scalar)
    r = dtype if cs <= category(dtype) else ferry.int64 if cs == 1 else ferry.float32
    if op == "div" and category(r) < 2:
        r = ferry.float32
    return ferry.bool if op in COMPARISONS else r


def values(dtype, ndim):
    if dtype is ferry.bool:
        return [True, False] if ndim else True
    return [1, 3] if ndim else 3


CASES = [(dt, nd, s, op, refl)
         for dt in ALL_DTYPES for nd in (0, 1) for s in (True, 3, 2.5)
         for op in OPS for refl in (False, True)]


@pytest.mark.parametrize("dtype,ndim,scalar,op,reflected", CASES,
                         ids=lambda v: repr(v).replace("ferry.", ""))
def test_scalar_promotion_table(dtype, ndim, scalar, op, reflected):
    vals = values(dtype, ndim)
    t = ferry.tensor(vals, dtype=dtype)
    f = OPS[op]
    call = (lambda: f(scalar, t)) if reflected else (lambda: f(t, scalar))
    if op == "sub" and (dtype is ferry.bool or isinstance(scalar, bool)):
        with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with "):
            call()
        return
    r = call()
    assert r.dtype is expected_dtype(dtype, scalar, op)
    assert r.shape == t.shape
    xs = vals if ndim else [vals]
    got = r.tolist() if ndim else [r.item()]
    for x, g in zip(xs, got):
        assert matches(g, reference(f, x, scalar, reflected), r.dtype), (x, g)


INT_BITS = {ferry.uint8: 8, ferry.int8: 8, ferry.int16: 16, ferry.int32: 32, ferry.int64: 64}


def reference(f, x, s, reflected):
    """The exact result in Python (inf where Python would raise on a division by 0)."""
    try:
        return f(s, x) if reflected else f(x, s)
    except ZeroDivisionError:
        return math.inf


def matches(got, want, dtype):
    if dtype is ferry.bool:
        return got is bool(want)
    if dtype in INT_BITS:  # integers wrap modulo 2**bits
        bits = INT_BITS[dtype]
        lo = 0 if dtype is ferry.uint8 else -2 ** (bits - 1)
        return got == (int(want) - lo) % 2 ** bits + lo
    return got == want or math.isclose(got, want, rel_tol=1e-2)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=repr)
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("scalar", [True, 2, 0.5])
def test_inplace_scalars_keep_the_dtype_or_refuse(dtype, name, scalar):
    t = ferry.tensor(values(dtype, 1), dtype=dtype)
    want = expected_dtype(dtype, scalar, name)
    method = getattr(t, name + "_")
    if name == "sub" and (dtype is ferry.bool or isinstance(scalar, bool)):
        with pytest.raises(RuntimeError, match="Subtraction"):
            method(scalar)
    elif want is not dtype:
        with pytest.raises(RuntimeError, match=f"result type {repr(want)[6:]} can't be cast to "
                                             f"the desired output type {repr(dtype)[6:]}"):
            method(scalar)
    else:
        assert method(scalar) is t and t.dtype is dtype


def test_wrapped_numbers_never_widen():
    i32 = ferry.tensor([1, 3], dtype=ferry.int32)
    assert (2 - i32).dtype is ferry.int32 and (2 - i32).tolist() == [1, -1]
    assert (2.5 - i32).dtype is ferry.float32 and (2.5 - i32).tolist() == [1.5, -0.5]
    z = ferry.tensor(3, dtype=ferry.int32)  # 0-d: two 0-d tensors would give int64
    assert (2 - z).dtype is ferry.int32 and (2 - z).item() == -1
    assert (2 ** z).dtype is ferry.int32 and (2 ** z).item() == 8
    assert (2.5 - z).dtype is ferry.float32
    h = ferry.tensor(2.0, dtype=ferry.float16)
    assert (2.5 - h).dtype is ferry.float16 and (1 / h).dtype is ferry.float16
    assert (3 / ferry.tensor(True)).dtype is ferry.float32
    assert (2 - ferry.tensor([1, 2])).dtype is ferry.int64
    assert (1 + ferry.tensor([True])).dtype is ferry.int64


def test_ints_wrap_in_narrow_dtypes_as_pytorch():
    i8 = ferry.tensor([1], dtype=ferry.int8)
    assert (i8 + 1000).tolist() == [-23]
    assert (1000 - i8).tolist() == [-25]
    assert (ferry.tensor([1], dtype=ferry.uint8) + -1).tolist() == [0]
    # Division is done in float32, so the scalar must not wrap on its way there.
    assert (-3 / ferry.tensor([1, 3], dtype=ferry.uint8)).tolist() == [-3.0, -1.0]
    assert (2 ** 62 + 1) / ferry.tensor([1], dtype=ferry.int8) == float(2 ** 62)
    assert ((2 ** 62 + 1) / ferry.tensor(1, dtype=ferry.int16)).item() == float(2 ** 62)


def test_int64_scalars_are_exact_near_the_limits():
    big = 2 ** 63 - 1
    t = ferry.tensor([big, -2 ** 63, 0])
    assert (t == big).tolist() == [True, False, False]
    assert (t == big - 1).tolist() == [False, False, False]  # a double would say True
    assert (t >= big - 1).tolist() == [True, False, False]
    assert (t - 1).tolist() == [big - 1, big, -1]  # int64 wraps, as in PyTorch
    assert (big - t).tolist() == [0, -1, big]
    assert (t + (2 ** 62 + 1)).tolist()[2] == 2 ** 62 + 1
    assert ((2 ** 62 + 1) - ferry.tensor([0])).item() == 2 ** 62 + 1
    assert t.maximum(-2 ** 63 + 1).tolist() == [big, -2 ** 63 + 1, 0]
    u = ferry.zeros(1, dtype=ferry.int64)
    u += 2 ** 62 + 3
    u -= -2 ** 62
    assert u.item() == -2 ** 63 + 3  # 2**63 + 3 wraps, as in PyTorch
    assert (ferry.tensor([1.0]) + big).item() == float(big)  # float tensors take the double


@pytest.mark.parametrize("value", [2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30])
def test_ints_past_int64_are_refused(value):
    t = ferry.tensor([1, 2])
    for call in (lambda: t + value, lambda: value - t, lambda: t < value, lambda: t.mul(value),
                 lambda: t.maximum(value), lambda: ferry.tensor([1.0]) * value):
        with pytest.raises(OverflowError, match="Overflow when unpacking long"):
            call()
    with pytest.raises(OverflowError, match="Overflow when unpacking long"):
        t += value
    assert t.tolist() == [1, 2]


def test_numpy_scalars_are_python_scalars():
    h = ferry.ones(2, dtype=ferry.float16)
    r = np.float32(2) * h  # NumPy leaves the operator to the tensor (__array_priority__)
    assert isinstance(r, ferry.Tensor) and r.dtype is ferry.float16 and r.tolist() == [2, 2]
    i8 = ferry.tensor([1, 3], dtype=ferry.int8)
    assert (np.int64(5) - i8).dtype is ferry.int8 and (np.int64(5) - i8).tolist() == [4, 2]
    assert (i8 / np.int16(2)).dtype is ferry.float32
    assert (np.float64(0.5) + i8).dtype is ferry.float32
    # NumPy bools are bools (PyTorch reads them as float scalars).
    assert (i8 + np.True_).dtype is ferry.int8
    with pytest.raises(OverflowError):
        i8 + np.uint64(2 ** 64 - 1)
    with pytest.raises(TypeError):
        np.ones(2) + ferry.ones(2)  # arrays are not operands, as in PyTorch
    assert np.sin(ferry.zeros(2)).tolist() == [0.0, 0.0]  # ufuncs still take tensors


def test_non_numbers_are_not_operands():
    t = ferry.tensor([1.0])
    assert (t == None) is False  # noqa: E711
    with pytest.raises(TypeError):
        t + [1.0]
    with pytest.raises(TypeError):
        "x" - t
    with pytest.raises(TypeError):
        t + 1j


def test_scalars_on_a_device(device):
    d = ferry.tensor([1, 3], dtype=ferry.int32, device=device)
    for r, dtype, want in ((d + 2, ferry.int32, [3, 5]), (2 - d, ferry.int32, [1, -1]),
                           (2.5 - d, ferry.float32, [1.5, -0.5]), (6 / d, ferry.float32, [6, 2]),
                           (2 ** d, ferry.int32, [2, 8]), (d < 2, ferry.bool, [True, False])):
        assert r.device == ferry.device(device) and r.dtype is dtype
        assert r.cpu().tolist() == want
    d *= 2 ** 30
    assert d.cpu().tolist() == [2 ** 30, -2 ** 30 * 1]  # 3 * 2**30 wraps in int32


def test_0d_tensors_promote_as_pytorch():
    f32, f64 = ferry.ones(2), ferry.tensor(2.0, dtype=ferry.float64)
    assert (f32 + f64).dtype is ferry.float32  # a 0-d operand of the same category
    assert (f64 + f32).dtype is ferry.float32
    i32 = ferry.tensor([1, 2], dtype=ferry.int32)
    assert (ferry.tensor(5) - i32).dtype is ferry.int32  # 0-d int64 keeps int32
    assert (i32 * f64).dtype is ferry.float64  # a higher category does promote
    assert (ferry.tensor(1, dtype=ferry.int32) + ferry.tensor(1)).dtype is ferry.int64
    assert (ferry.tensor([True]) + ferry.tensor(1, dtype=ferry.int8)).dtype is ferry.int8
