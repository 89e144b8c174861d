"""Writing into tensors: Tensor.fill_, Tensor.copy_ and t[key] = value (over the C API's
ferry_tensor_fill and ferry_tensor_copy_from), with PyTorch's conversions and overflow
checks, broadcasting, every pair of devices, memory shared with NumPy, and the refusal
of read-only tensors."""
import math

import numpy as np
import pytest

import ferry

ALL_DTYPES = [ferry.bool, ferry.uint8, ferry.int8, ferry.int16, ferry.int32, ferry.int64,
              ferry.float16, ferry.bfloat16, ferry.float32, ferry.float64]


def read_only_tensor():
    a = np.arange(4.0)
    a.flags.writeable = False
    return a, ferry.from_numpy(a)


# ---- fill_ -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=repr)
def test_fill_every_dtype(dtype):
    t = ferry.zeros(2, 3, dtype=dtype)
    assert t.fill_(1) is t
    assert t.tolist() == [[1] * 3] * 2  # True == 1 for the bool tensor
    t.fill_(True)
    assert t.sum().item() == 6
    t.fill_(0)
    assert not t.sum().item()


def test_fill_converts_as_pytorch():
    assert ferry.zeros(2, dtype=ferry.int32).fill_(-2.9).tolist() == [-2, -2]
    assert ferry.zeros(2, dtype=ferry.uint8).fill_(-1).tolist() == [255, 255]  # wraps
    assert ferry.zeros(2, dtype=ferry.uint8).fill_(-255).tolist() == [1, 1]
    assert ferry.zeros(2, dtype=ferry.int8).fill_(127.99).tolist() == [127, 127]
    assert ferry.zeros(2, dtype=ferry.bool).fill_(0.5).tolist() == [True, True]
    assert ferry.zeros(2, dtype=ferry.float16).fill_(65504.0).tolist() == [65504.0] * 2
    assert ferry.zeros(1, dtype=ferry.float16).fill_(math.inf).item() == math.inf
    assert math.isnan(ferry.zeros(1).fill_(math.nan).item())
    f = ferry.ones(2, dtype=ferry.float64).fill_(-0.0)
    assert [math.copysign(1, v) for v in f.tolist()] == [-1, -1]
    assert ferry.zeros(1, dtype=ferry.bfloat16).fill_(1.5).item() == 1.5


@pytest.mark.parametrize("dtype,value", [
    (ferry.int8, 128), (ferry.int8, -129), (ferry.int8, 128.0), (ferry.int8, -128.5),
    (ferry.uint8, 256), (ferry.uint8, -256), (ferry.uint8, -0.5), (ferry.int32, 2 ** 31),
    (ferry.int32, math.nan), (ferry.int64, 2 ** 63), (ferry.int64, -2 ** 63 - 1),
    (ferry.int64, 9.3e18), (ferry.float16, 65519.0), (ferry.float16, 70000),
    (ferry.float32, 1e300), (ferry.bfloat16, -1e39),
], ids=repr)
def test_fill_overflow_is_refused_as_pytorch(dtype, value):
    t = ferry.zeros(2, dtype=dtype)
    name = repr(dtype).split(".")[1]
    with pytest.raises(RuntimeError, match=f"value cannot be converted to type {name} without "
                                           "overflow"):
        t.fill_(value)
    with pytest.raises(RuntimeError, match="without overflow"):
        t[0] = value
    assert not t.sum().item()


@pytest.mark.parametrize("value", [2 ** 63 - 1, -2 ** 63, 2 ** 53 + 1, -(2 ** 62 + 3),
                                   2 ** 62 + 1])
def test_fill_int64_is_exact(value):
    t = ferry.zeros(3, dtype=ferry.int64)
    assert t.fill_(value).tolist() == [value] * 3
    t[1] = value - 1 if value > 0 else value + 1
    assert t.tolist()[1] == (value - 1 if value > 0 else value + 1)
    assert ferry.full((2,), value).tolist() == [value] * 2
    assert ferry.full((2,), value).dtype is ferry.int64


def test_full_checks_overflow():
    with pytest.raises(RuntimeError, match="value cannot be converted to type int8 without "
                                           "overflow"):
        ferry.full((2,), 300, dtype=ferry.int8)
    assert ferry.full((2,), -1, dtype=ferry.uint8).tolist() == [255, 255]
    assert ferry.full((2,), 2.5).dtype is ferry.float32


def test_fill_with_a_0d_tensor():
    t = ferry.zeros(3, dtype=ferry.int32)
    assert t.fill_(ferry.tensor(4.7)) is t
    assert t.tolist() == [4, 4, 4]
    with pytest.raises(RuntimeError, match="fill_ only supports 0-dimension value tensor but "
                                           "got tensor with 1 dimensions."):
        t.fill_(ferry.tensor([1]))
    with pytest.raises(TypeError, match="fill_\\(\\): argument 'value' must be a number or a "
                                        "0-d tensor, not str"):
        t.fill_("1")
    t.fill_(t[0] + 1)  # a value computed from the tensor itself
    assert t.tolist() == [5, 5, 5]


def test_fill_a_strided_view_leaves_the_rest():
    t = ferry.zeros(3, 4)
    t[:, ::2].fill_(1.0)
    t[1].fill_(2.0)
    assert t.tolist() == [[1, 0, 1, 0], [2, 2, 2, 2], [1, 0, 1, 0]]
    t.transpose(0, 1)[3].fill_(7.0)
    assert [r[3] for r in t.tolist()] == [7, 7, 7]
    ferry.zeros(0).fill_(1.0)  # no elements: nothing to do


def test_fill_refuses_read_only():
    a, t = read_only_tensor()
    with pytest.raises(RuntimeError, match="read-only"):
        t.fill_(1.0)
    with pytest.raises(RuntimeError, match="read-only"):
        t[1:].fill_(ferry.tensor(1.0))
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_fill_on_a_device(device):
    t = ferry.zeros(2, 3, device=device)
    assert t.fill_(2.5) is t
    assert t.cpu().tolist() == [[2.5] * 3] * 2
    t[:, 1:].fill_(ferry.tensor(-1.0))  # a host 0-d value into device memory
    assert t.cpu().tolist() == [[2.5, -1.0, -1.0]] * 2
    i = ferry.zeros(2, dtype=ferry.int64, device=device).fill_(2 ** 62 + 1)
    assert i.cpu().tolist() == [2 ** 62 + 1] * 2
    assert ferry.full((2,), 2 ** 62 + 1, device=device).cpu().tolist() == [2 ** 62 + 1] * 2


# ---- copy_ -----------------------------------------------------------------------------

def test_copy_broadcasts_and_casts():
    t = ferry.zeros(2, 3, dtype=ferry.int32)
    assert t.copy_(ferry.tensor([1.9, -2.9, 3.0])) is t
    assert t.tolist() == [[1, -2, 3], [1, -2, 3]]
    assert t.dtype is ferry.int32
    t.copy_(ferry.tensor([[10], [20]], dtype=ferry.int64))
    assert t.tolist() == [[10] * 3, [20] * 3]
    f = ferry.zeros(3, dtype=ferry.float16).copy_(ferry.tensor([True, False, True]))
    assert f.tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(3\) must match the "
                                         r"existing size \(4\) at non-singleton dimension 1"):
        t.copy_(ferry.zeros(4))


def test_copy_from_arrays_lists_and_numbers():
    t = ferry.zeros(2, 2)
    assert t.copy_(np.array([[1, 2], [3, 4]], dtype=np.int16)) is t
    assert t.tolist() == [[1, 2], [3, 4]]
    t.copy_(np.arange(4.0)[::-2].reshape(2, 1))  # negative strides, broadcast
    assert t.tolist() == [[3, 3], [1, 1]]
    t.copy_([[5, 6], [7, 8]])
    assert t.tolist() == [[5, 6], [7, 8]]
    t.copy_(9)
    assert t.tolist() == [[9, 9], [9, 9]]
    t.copy_(ferry.ones(2), non_blocking=True)
    assert t.tolist() == [[1, 1], [1, 1]]
    with pytest.raises(TypeError, match="copy_\\(\\): expected a ferry.Tensor, an array, a list "
                                        "or a number, not str"):
        t.copy_("x")


def test_copy_within_one_tensor_reads_before_writing():
    t = ferry.arange(6)
    t[1:].copy_(t[:-1])
    assert t.tolist() == [0, 0, 1, 2, 3, 4]
    t = ferry.arange(6)
    t[:-1] = t[1:]
    assert t.tolist() == [1, 2, 3, 4, 5, 5]
    m = ferry.arange(9).reshape(3, 3)
    m.copy_(m.transpose(0, 1))
    assert m.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_copy_from_numpy_memory_the_tensor_shares():
    # The array's buffer is another storage to the core: the module checks the memory.
    a = np.arange(10.0)
    t = ferry.from_numpy(a)
    t[2::2] = a[0:-2:2]
    assert a.tolist() == [0, 1, 0, 3, 2, 5, 4, 7, 6, 9]
    t = ferry.arange(6)
    t[1:] = t.numpy()[:-1]
    assert t.tolist() == [0, 0, 1, 2, 3, 4]


def test_copy_refuses_read_only():
    a, t = read_only_tensor()
    for src in (ferry.ones(4, dtype=ferry.float64), np.ones(4), [1.0] * 4, 1.0):
        with pytest.raises(RuntimeError, match="read-only"):
            t.copy_(src)
    with pytest.raises(RuntimeError, match="read-only"):
        t[1:] = ferry.ones(3)
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]
    # A read-only source is fine.
    assert ferry.zeros(4, dtype=ferry.float64).copy_(t).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_copy_between_devices(device):
    d = ferry.zeros(2, 3, device=device)
    assert d.copy_(ferry.tensor([1, 2, 3])) is d  # host int64 -> device float32, broadcast
    assert d.dtype is ferry.float32 and d.cpu().tolist() == [[1, 2, 3]] * 2
    h = ferry.zeros(3, 2, dtype=ferry.float64)
    h.copy_(d.transpose(0, 1))  # strided device source
    assert h.tolist() == [[1, 1], [2, 2], [3, 3]]
    d2 = ferry.zeros(2, 3, dtype=ferry.int32, device=device)
    d2[:, ::2] = d[:, ::2] * 2  # device -> strided device view
    assert d2.cpu().tolist() == [[2, 0, 6]] * 2
    d2.copy_(np.array([7, 8, 9], dtype=np.int8))
    assert d2.cpu().tolist() == [[7, 8, 9]] * 2
    d2[1] = [4, 5, 6]
    assert d2.cpu().tolist() == [[7, 8, 9], [4, 5, 6]]


# ---- t[key] = value --------------------------------------------------------------------

def test_setitem_scalars():
    t = ferry.zeros(2, 3, dtype=ferry.int64)
    t[0] = 5
    t[1, 1:] = True
    t[..., 0] = 2.9
    assert t.tolist() == [[2, 5, 5], [2, 1, 1]]
    t[None, 1, 2] = np.int16(-7)
    assert t[1, 2].item() == -7
    t[1, 2] = 2 ** 63 - 1
    assert t[1, 2].item() == 2 ** 63 - 1
    f = ferry.tensor([1.0, 2.0])
    f[0] = -0.0
    assert str(f[0].item()) == "-0.0"
    f[:] = np.float32(0.25)
    assert f.tolist() == [0.25, 0.25]
    b = ferry.zeros(3, dtype=ferry.bool)
    b[1] = 3
    assert b.tolist() == [False, True, False]


def test_setitem_tensors_arrays_and_lists():
    t = ferry.zeros(3, 4, dtype=ferry.float32)
    t[1:] = ferry.tensor([1, 2, 3, 4])  # broadcast over the rows
    t[0, ::2] = np.array([9.5, 8.5])
    t[:, 3] = [7, 7, 7]
    t[0, 1] = ferry.tensor(6)
    assert t.tolist() == [[9.5, 6, 8.5, 7], [1, 2, 3, 7], [1, 2, 3, 7]]
    with pytest.raises(RuntimeError):
        t[0] = ferry.zeros(3)
    with pytest.raises(TypeError, match="can't assign to a ferry tensor: expected a "
                                        "ferry.Tensor, an array, a list or a number, not str"):
        t[0] = "x"
    with pytest.raises(TypeError, match="can't assign to a ferry tensor"):
        t[0] = b"1234"
    with pytest.raises(TypeError, match="cannot be deleted"):
        del t[0]
    with pytest.raises(RuntimeError, match="value cannot be converted to type uint8"):
        ferry.zeros(2, dtype=ferry.uint8)[:] = [1, 300]


def test_setitem_refuses_read_only():
    a, t = read_only_tensor()
    for value in (5.0, ferry.tensor(5.0), np.array([5.0]), [5.0]):
        with pytest.raises(RuntimeError, match="read-only"):
            t[1:2] = value
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_setitem_on_a_device(device):
    d = ferry.zeros(2, 3, device=device)
    d[0] = 5
    d[1] = np.array([1.0, 2.0, 3.0])
    d[:, 1] = ferry.tensor([7, 8])
    assert d.cpu().tolist() == [[5, 7, 5], [1, 8, 3]]
    h = ferry.zeros(3)
    h[:] = d[1]  # device -> host
    assert h.tolist() == [1, 8, 3]
    h[1:] = d[0, 1:]
    assert h.tolist() == [1, 7, 5]


def test_setitem_single_elements():
    # One int per dim on a host tensor is stored in place; it must write what the
    # general path writes, and leave every refusal to it.
    t = ferry.arange(12, dtype=ferry.int32).reshape(3, 4).transpose(0, 1)  # strided
    t[1, 2] = 100
    t[-1, -3] = -5.9
    t[0, 0] = True
    assert t.tolist() == [[1, 4, 8], [1, 5, 100], [2, 6, 10], [-5, 7, 11]]
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 0 with size 4"):
        t[4, 0] = 1
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        t[0, 2 ** 70] = 1
    with pytest.raises(RuntimeError, match="value cannot be converted to type int32 without "
                                           "overflow"):
        t[0, 0] = 2 ** 31
    z = ferry.tensor(1.5, dtype=ferry.float16)
    z[()] = 2.5
    assert z.item() == 2.5
    g = ferry.zeros(2, requires_grad=True)
    with ferry.no_grad():  # a leaf that requires grad is written in place only so
        g[1] = 3.0  # no host pointer for a tensor that requires grad: the general path
    assert g.detach().tolist() == [0.0, 3.0]
    a, r = read_only_tensor()
    with pytest.raises(RuntimeError, match="read-only"):
        r[0] = 1.0
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]
    n = np.zeros(3, dtype=np.int64)
    v = ferry.from_numpy(n)
    v[np.int64(1)] = 2 ** 62 + 1  # a NumPy int index takes the general path
    v[2] = 2 ** 63 - 1
    assert n.tolist() == [0, 2 ** 62 + 1, 2 ** 63 - 1]
