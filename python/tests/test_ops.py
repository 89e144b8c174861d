"""Operators and op methods over the C API: arithmetic, comparisons and @, reflected
forms and PyTorch's promotion of Python scalars, in-place forms, devices, reductions."""
import pytest

import ferry


def test_arithmetic_and_comparisons():
    a = ferry.tensor([1.0, 2.0, 4.0])
    b = ferry.tensor([2.0, 2.0, 2.0])
    assert (a + b).tolist() == [3.0, 4.0, 6.0]
    assert (a - b).tolist() == [-1.0, 0.0, 2.0]
    assert (a * b).tolist() == [2.0, 4.0, 8.0]
    assert (a / b).tolist() == [0.5, 1.0, 2.0]
    assert (a ** b).tolist() == [1.0, 4.0, 16.0]
    assert (-a).tolist() == [-1.0, -2.0, -4.0]
    assert abs(-a).tolist() == a.tolist()
    assert (a == b).tolist() == [False, True, False]
    assert (a != b).tolist() == [True, False, True]
    assert (a < b).tolist() == [True, False, False]
    assert (a <= b).tolist() == [True, True, False]
    assert (a > b).tolist() == [False, False, True]
    assert (a >= b).tolist() == [False, True, True]
    assert (a == b).dtype is ferry.bool


def test_reflected_scalars():
    a = ferry.tensor([1.0, 2.0, 4.0])
    assert (1 + a).tolist() == [2.0, 3.0, 5.0]
    assert (10 - a).tolist() == [9.0, 8.0, 6.0]
    assert (2 * a).tolist() == [2.0, 4.0, 8.0]
    assert (8 / a).tolist() == [8.0, 4.0, 2.0]
    assert (2 ** a).tolist() == [2.0, 4.0, 16.0]
    assert (2 < a).tolist() == [False, False, True]
    assert (2.0 == a).tolist() == [False, True, False]


@pytest.mark.parametrize("make,scalar,dtype", [
    (lambda: ferry.tensor([1, 2]), 2, ferry.int64),
    (lambda: ferry.tensor([1, 2]), 2.0, ferry.float32),   # int tensor + float -> float32
    (lambda: ferry.tensor([1, 2]), 0.5, ferry.float32),
    (lambda: ferry.tensor([1, 2], dtype=ferry.int32), 2, ferry.int32),  # width kept
    (lambda: ferry.tensor([True, False]), True, ferry.bool),
    (lambda: ferry.tensor([True, False]), 1, ferry.int64),
    (lambda: ferry.tensor([True, False]), 1.0, ferry.float32),
    (lambda: ferry.tensor([1.0], dtype=ferry.float16), 1.5, ferry.float16),
    (lambda: ferry.tensor([1.0], dtype=ferry.float64), 2, ferry.float64),
], ids=lambda v: repr(v) if not callable(v) else "")
def test_python_scalars_promote_as_pytorch(make, scalar, dtype):
    t = make()
    assert (t + scalar).dtype is dtype
    assert (scalar + t).dtype is dtype
    assert (t * scalar).dtype is dtype
    if t.dtype is not ferry.bool:  # subtraction with a bool tensor is refused, as in PyTorch
        assert (scalar - t).dtype is dtype


def test_integer_true_division_gives_float32():
    assert (ferry.tensor([1, 2]) / 2).tolist() == [0.5, 1.0]
    assert (ferry.tensor([1, 2]) / 2).dtype is ferry.float32
    assert (3 / ferry.tensor([2])).tolist() == [1.5]


def test_large_python_ints_are_exact():
    t = ferry.tensor([0], dtype=ferry.int64)
    assert (t + (2 ** 60 + 1)).item() == 2 ** 60 + 1
    assert ((2 ** 60 + 1) - t).item() == 2 ** 60 + 1


def test_numpy_scalars_are_numbers():
    np = pytest.importorskip("numpy")
    t = ferry.tensor([1, 2])
    assert (t + np.int64(3)).tolist() == [4, 5]
    assert (t * np.float32(0.5)).dtype is ferry.float32


def test_unsupported_operands_are_not_implemented():
    t = ferry.tensor([1.0])
    assert (t == None) is False  # noqa: E711
    assert (t != "x") is True
    with pytest.raises(TypeError):
        t + "x"
    with pytest.raises(TypeError):
        t @ 2
    with pytest.raises(TypeError, match="argument 'other' must be a Tensor or a number"):
        t.add("x")


def test_inplace_writes_into_the_tensor():
    t = ferry.tensor([1.0, 2.0])
    alias = t
    t += 1
    t *= ferry.tensor([2.0, 3.0])
    t -= 1
    t /= 2
    t **= 2
    assert t is alias and t.tolist() == [1.5 ** 2, 4.0 ** 2]
    assert t.add_(1) is t and t.sub_(1).mul_(2).div_(2) is t


def test_inplace_cannot_change_dtype():
    t = ferry.tensor([1, 2])
    with pytest.raises(RuntimeError, match="result type float32 can't be cast to the desired "
                                         "output type int64"):
        t += 1.5
    assert t.tolist() == [1, 2]


def test_bool_ops():
    m = ferry.tensor([True, False])
    assert (~m).tolist() == [False, True]
    # ~ is bitwise_not on integers, as PyTorch's; floats are refused
    assert (~ferry.tensor([1])).tolist() == [-2]
    with pytest.raises(TypeError, match="only implemented on integer and Boolean-type"):
        ~ferry.tensor([1.0])
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor"):
        -m


def test_truthiness_of_single_elements():
    assert bool(ferry.tensor([3]) == 3)
    assert not bool(ferry.tensor(0.0))


def test_matmul():
    a = ferry.arange(6, dtype=ferry.float32).reshape(2, 3)
    b = ferry.ones(3, 2)
    assert (a @ b).tolist() == [[3.0, 3.0], [12.0, 12.0]]
    assert a.matmul(b).shape == (2, 2)
    assert (ferry.tensor([1.0, 2.0]) @ ferry.tensor([3.0, 4.0])).item() == 11.0
    with pytest.raises(RuntimeError, match=r"matmul: shape mismatch \(2, 3\) x \(2, 3\)"):
        a @ a


def test_broadcasting():
    a = ferry.arange(3).reshape(3, 1)
    b = ferry.arange(2)
    assert (a + b).shape == (3, 2)
    with pytest.raises(RuntimeError, match="The size of tensor a"):
        ferry.zeros(2) + ferry.zeros(3)


def test_ops_on_a_device(device):
    a = ferry.tensor([1.0, 2.0], device=device)
    r = a * 2 + 1
    assert r.device == ferry.device(device)
    assert r.cpu().tolist() == [3.0, 5.0]
    assert (1 - a).cpu().tolist() == [0.0, -1.0]
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, "
                                           f"but found at least two devices, {device} and "
                                           "cpu!"):
        a + ferry.tensor([1.0, 2.0])
    a += 1
    assert a.tolist() == [2.0, 3.0]


def test_methods():
    t = ferry.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert t.sum().item() == 6.0
    assert t.sum(dim=0).tolist() == [4.0, 2.0]
    assert t.sum((0, 1), keepdim=True).shape == (1, 1)
    assert t.mean(1).tolist() == [-0.5, 3.5]
    assert t.amax(0).tolist() == [3.0, 4.0]
    assert t.amin().item() == -2.0
    assert t.max().item() == 4.0 and t.min().item() == -2.0
    assert t.argmax().item() == 3
    assert t.abs().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.relu().tolist() == [[1.0, 0.0], [3.0, 4.0]]
    assert t.neg().tolist() == [[-1.0, 2.0], [-3.0, -4.0]]
    assert ferry.tensor([0.0]).exp().item() == 1.0
    assert ferry.tensor([4.0]).sqrt().item() == 2.0
    assert t.maximum(ferry.zeros(2)).tolist() == [[1.0, 0.0], [3.0, 4.0]]
    assert t.minimum(0).tolist() == [[0.0, -2.0], [0.0, 0.0]]
    assert t.eq(3).tolist() == [[False, False], [True, False]]
