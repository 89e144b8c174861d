"""A number on the left of a non-commuting operator (`2 - t`, `2 / t`, `2 ** t`, `7 // t`,
`7 % t`, `1 << t`, `64 >> t`): the C API's reflected forms (ferry_rsub_scalar_ex ...),
whose promotion is the core's, against torch where installed and against the forward
form's rule otherwise, on cpu and on a device whose memory the host cannot touch."""
import math
import operator

import pytest

import ferry

try:
    import torch
except ImportError:  # the rule-based checks below still run
    torch = None

OPS = {"sub": operator.sub, "truediv": operator.truediv, "pow": operator.pow,
       "floordiv": operator.floordiv, "mod": operator.mod, "lshift": operator.lshift,
       "rshift": operator.rshift}
INTEGER_ONLY = {"lshift", "rshift"}
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64"]
FLOATING = {"float16", "bfloat16", "float32", "float64"}


def operand(dtype, device):
    vals = [True, True, True] if dtype == "bool" else [1, 2, 3]
    return ferry.tensor(vals, dtype=getattr(ferry, dtype), device=device)


def refused(name, dtype, scalar):
    """The pairs PyTorch refuses (ferry raises NotImplementedError where the refusal is a
    dtype without a kernel): bool subtraction, shifts of floats or of bool, floor
    division and remainder of bool (the operands here never hold 0)."""
    if name == "sub" and (dtype == "bool" or isinstance(scalar, bool)):
        return RuntimeError
    floating = dtype in FLOATING or isinstance(scalar, float)
    both_bool = dtype == "bool" and isinstance(scalar, bool)
    if name in INTEGER_ONLY and (floating or both_bool):
        return NotImplementedError
    if name in ("floordiv", "mod") and both_bool:
        return NotImplementedError
    return None


@pytest.mark.parametrize("scalar", [True, 7, -3, 2.5], ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("where", ["cpu", "device"])
def test_scalar_on_the_left(where, name, dtype, scalar, request):
    device = "cpu" if where == "cpu" else request.getfixturevalue("device")
    t = operand(dtype, device)
    f = OPS[name]
    err = refused(name, dtype, scalar)
    if err is not None:
        with pytest.raises(err):
            f(scalar, t)
        return
    r = f(scalar, t)
    assert str(r.device) == device
    if torch is None:
        return
    tt = torch.tensor(t.cpu().tolist(), dtype=getattr(torch, dtype))
    try:
        want = f(scalar, tt)
    except (RuntimeError, NotImplementedError):  # torch lacks bool ** bool; ferry's is x >= y
        assert name == "pow" and dtype == "bool", (name, dtype, scalar)
        return
    assert repr(r.dtype)[len("ferry."):] == repr(want.dtype)[len("torch."):]
    got = r.cpu().tolist()
    exp = want.tolist()
    if dtype in FLOATING or want.dtype.is_floating_point:
        assert got == pytest.approx(exp, rel=1e-2, nan_ok=True), (got, exp)
    else:
        assert got == exp


def test_messages_of_the_reflected_forms():
    t = ferry.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with a bool tensor"):
        True - t
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        7 // ferry.tensor([0, 1])
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        7 % ferry.tensor([1, 0], dtype=ferry.int16)
    # an int divided stays exact on its way to float32
    assert (2 ** 62 / ferry.tensor([2], dtype=ferry.int32)).tolist() == [float(2 ** 61)]


def test_reflected_forms_carry_gradients():
    x = ferry.tensor([0.5, 2.0], requires_grad=True)
    y = (3 - x) * (2 / x) + 2 ** x
    y.sum().backward()
    # d/dx [(3 - x) * 2 / x + 2**x] = -2/x - 2(3 - x)/x**2 + 2**x ln 2
    want = [-2 / v - 2 * (3 - v) / v ** 2 + 2 ** v * math.log(2) for v in (0.5, 2.0)]
    assert x.grad.tolist() == pytest.approx(want, rel=1e-5)
