"""PyTorch's exception types: code written for PyTorch that catches RuntimeError,
IndexError, TypeError or ValueError catches ferry's errors too. Each case names the
status table's row (README, "Errors in Python") it checks; the messages are PyTorch's
where ferry has the same check."""
import numpy as np
import pytest

import ferry


# ---- status -> exception ---------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    # FERRY_ERR_INVALID_ARGUMENT: RuntimeError, as TORCH_CHECK
    (lambda: ferry.ones(2, 3).reshape(4), r"shape '\[4\]' is invalid for input of size 6"),
    (lambda: ferry.ones(2, 3).transpose(0, 1).view(6), "view size is not compatible"),
    (lambda: ferry.ones(2, 3).expand(3, 3), "The expanded size of the tensor"),
    (lambda: ferry.ones(2, 3).permute(0, 0), "duplicate dims are not allowed"),
    (lambda: ferry.ones(2, 3) + ferry.ones(3, 2), "The size of tensor a"),
    (lambda: ferry.ones(2, 3) @ ferry.ones(2, 3), "shape mismatch"),
    (lambda: ferry.ones(3, dtype=ferry.int64).add_(1.5), "can't be cast to the desired"),
    (lambda: ferry.zeros(-1), "negative dimension -1"),
    (lambda: ferry.arange(0, 10, 0), "step must be nonzero"),
    (lambda: ferry.eye(-1), "n must be greater or equal to 0"),
    (lambda: ferry.ones(2, 3).sum(dim=(0, 0)), "dim 0 appears multiple times"),
    (lambda: ferry.ones(1).expand(3).add_(1), "more than one element of the written-to"),
    (lambda: ferry.ones(2, dtype=ferry.int64, requires_grad=True),
     "only Tensors of floating point dtype can require gradients"),
    (lambda: ferry.tensor([1.0]).cuda("cpu"), "Invalid device, must be cuda device"),
    (lambda: ferry.dtype("complex64"), "Unknown dtype 'complex64'"),
])
def test_refused_arguments_are_runtime_errors(call, match):
    with pytest.raises(RuntimeError, match=match) as e:
        call()
    assert type(e.value) is RuntimeError


def test_read_only_writes_are_runtime_errors():
    a = np.arange(3.0)
    a.flags.writeable = False
    t = ferry.from_numpy(a)
    for write in (lambda: t.fill_(1), lambda: t.add_(1), lambda: t.copy_(t),
                  lambda: t.__setitem__(0, 1.0)):
        with pytest.raises(RuntimeError, match="read-only") as e:
            write()
        assert type(e.value) is RuntimeError
    assert a.tolist() == [0.0, 1.0, 2.0]


def test_no_kernel_for_a_dtype_is_not_implemented_error():
    # FERRY_ERR_UNSUPPORTED: NotImplementedError (a RuntimeError), as PyTorch's
    # "not implemented for 'Bool'".
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        ferry.tensor([True, False]).argmax()
    with pytest.raises(NotImplementedError, match="bool tensors are not supported"):
        ferry.tensor([True]) @ ferry.tensor([True])
    assert issubclass(NotImplementedError, RuntimeError)


def test_dims_out_of_range_are_index_errors():
    # FERRY_ERR_INDEX: IndexError, PyTorch's message.
    msg = r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"
    for call in (lambda t: t.sum(dim=2), lambda t: t.transpose(0, 2), lambda t: t.amax(2),
                 lambda t: t.argmax(2), lambda t: t.squeeze(2), lambda t: t.flatten(2),
                 lambda t: t.permute(0, 2), lambda t: t.size(2), lambda t: t.stride(2)):
        with pytest.raises(IndexError, match=msg):
            call(ferry.ones(2, 3))
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3\)"):
        ferry.ones(2, 3).unsqueeze(3)
    with pytest.raises(IndexError, match=r"range of \[-1, 0\], but got 1\)"):
        ferry.tensor(1.0).sum(1)


def test_export_refusals_are_buffer_errors(sim):
    with pytest.raises(BufferError, match="Can't export tensors that require gradient"):
        ferry.ones(2, requires_grad=True).__dlpack__()
    with pytest.raises(BufferError, match="cannot be exported through DLPack"):
        ferry.ones(2, device=sim).__dlpack__()
    with pytest.raises(BufferError, match="not host memory"):
        memoryview(ferry.ones(2, device=sim))


def test_numpy_of_device_tensor_is_type_error(sim):
    with pytest.raises(TypeError, match="can't convert sim:0 device type tensor to numpy"):
        ferry.ones(2, device=sim).numpy()


def test_python_scalar_conversions_are_value_errors():
    with pytest.raises(ValueError, match="only one element tensors can be converted to "
                                         "Python scalars"):
        float(ferry.ones(2))
    with pytest.raises(ValueError, match="only one element tensors"):
        int(ferry.ones(2))
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value "
                                           "is ambiguous"):
        bool(ferry.ones(2))
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to "
                                           "Scalar"):
        ferry.ones(2).item()


# ---- dims, sizes and indices beyond int32 and int64 -------------------------------------

BIG = 2 ** 32


@pytest.mark.parametrize("call", [
    lambda t, d: t.sum(dim=d), lambda t, d: t.sum(dim=(0, d)), lambda t, d: t.mean(d),
    lambda t, d: t.amax(d), lambda t, d: t.amin(d), lambda t, d: t.argmax(d),
    lambda t, d: t.permute(d, 0), lambda t, d: t.permute(0, d), lambda t, d: t.transpose(d, 0),
    lambda t, d: t.transpose(0, d), lambda t, d: t.squeeze(d), lambda t, d: t.flatten(d),
    lambda t, d: t.flatten(0, d), lambda t, d: t.size(d), lambda t, d: t.stride(d),
], ids=["sum", "sum-list", "mean", "amax", "amin", "argmax", "permute0", "permute1",
        "transpose0", "transpose1", "squeeze", "flatten", "flatten-end", "size", "stride"])
@pytest.mark.parametrize("dim", [BIG, BIG + 1, -BIG, 2 ** 63 - 1, -2 ** 63])
def test_dims_are_never_truncated(call, dim):
    t = ferry.ones(2, 3)
    with pytest.raises(IndexError, match=r"^Dimension out of range \(expected to be in range "
                                         rf"of \[-2, 1\], but got {dim}\)$"):
        call(t, dim)


@pytest.mark.parametrize("dim", [BIG, BIG + 1, -BIG - 1])
def test_unsqueeze_dim_is_never_truncated(dim):
    with pytest.raises(IndexError, match=rf"range of \[-3, 2\], but got {dim}\)$"):
        ferry.ones(2, 3).unsqueeze(dim)


@pytest.mark.parametrize("dim", [2 ** 63, -2 ** 63 - 1, 2 ** 64, 2 ** 100])
def test_dims_past_int64_are_value_errors(dim):
    t = ferry.ones(2, 3)
    for call in (lambda: t.sum(dim=dim), lambda: t.unsqueeze(dim), lambda: t.permute(dim, 0),
                 lambda: t.transpose(0, dim), lambda: t.argmax(dim), lambda: t.size(dim)):
        with pytest.raises(ValueError, match="Overflow when unpacking long long"):
            call()


def test_dims_must_be_ints():
    t = ferry.ones(2, 3)
    with pytest.raises(TypeError):
        t.sum(dim=1.0)
    with pytest.raises(TypeError):
        t.transpose(0, "1")
    with pytest.raises(TypeError):
        t.unsqueeze(None)


@pytest.mark.parametrize("make", [
    lambda s: ferry.zeros(s), lambda s: ferry.ones(2, s), lambda s: ferry.empty((s,)),
    lambda s: ferry.full((s,), 1.0), lambda s: ferry.ones(1).expand(s),
    lambda s: ferry.ones(1).reshape(s), lambda s: ferry.ones(1).view(1, s),
], ids=["zeros", "ones", "empty", "full", "expand", "reshape", "view"])
@pytest.mark.parametrize("size", [2 ** 63, 2 ** 64, -2 ** 63 - 1])
def test_sizes_past_int64_are_type_errors(make, size):
    with pytest.raises(TypeError, match=r"argument '(size|shape)' failed to unpack the object "
                                        r"at pos \d with error \"Overflow when unpacking long "
                                        r"long\""):
        make(size)


def test_eye_past_int64_is_value_error():
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        ferry.eye(2 ** 64)
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        ferry.eye(2, 2 ** 64)


@pytest.mark.parametrize("index", [2 ** 63, 2 ** 64, -2 ** 63 - 1])
def test_indices_past_int64_are_value_errors(index):
    t = ferry.ones(2, 3)
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        t[index]
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        t[0, index]
    with pytest.raises(ValueError, match="Overflow when unpacking long long"):
        t[0, index] = 1.0


def test_index_error_names_the_dimension_of_the_tensor():
    t = ferry.arange(6.0).reshape(2, 3)
    with pytest.raises(IndexError, match="^index 3 is out of bounds for dimension 1 with size "
                                         "3$"):
        t[0, 3]
    with pytest.raises(IndexError, match="for dimension 1 with size 3$"):
        t[1, -4]
    with pytest.raises(IndexError, match="for dimension 1 with size 3$"):
        t[None, 0, 3]
    with pytest.raises(IndexError, match="for dimension 1 with size 3$"):
        t[..., 5]
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size "
                                         "2$"):
        t[2, 0]
    with pytest.raises(IndexError, match="for dimension 2 with size 4$"):
        ferry.zeros(2, 3, 4)[:, 0, 4]


# ---- bool arguments --------------------------------------------------------------------

@pytest.mark.parametrize("value", ["yes", 2, 1, None, 1.0])
def test_bool_arguments_must_be_bools(value):
    name = type(value).__name__
    with pytest.raises(TypeError, match=f"^tensor\\(\\): argument 'requires_grad' must be "
                                        f"bool, not {name}$"):
        ferry.tensor([1.0], requires_grad=value)
    for fn, call in (("ones", lambda: ferry.ones(2, requires_grad=value)),
                     ("full", lambda: ferry.full((2,), 1.0, requires_grad=value)),
                     ("arange", lambda: ferry.arange(3.0, requires_grad=value)),
                     ("eye", lambda: ferry.eye(2, requires_grad=value))):
        with pytest.raises(TypeError, match=f"^{fn}\\(\\): argument 'requires_grad' must be "
                                            f"bool, not {name}$"):
            call()
    t = ferry.ones(2, 3)
    for fn in ("sum", "mean", "amax", "amin", "argmax"):
        with pytest.raises(TypeError, match=f"^{fn}\\(\\): argument 'keepdim' must be bool, "
                                            f"not {name}$"):
            getattr(t, fn)(0, keepdim=value)
    with pytest.raises(TypeError, match="argument 'force' must be bool"):
        t.numpy(force=value)
    with pytest.raises(TypeError, match="argument 'non_blocking' must be bool"):
        t.copy_(t.clone(), non_blocking=value)
    with pytest.raises(TypeError, match="argument 'copy' must be bool"):
        t.to("cpu", copy=value)


def test_bool_arguments_take_bools_and_numpy_bools():
    assert ferry.tensor([1.0], requires_grad=np.bool_(True)).requires_grad
    assert ferry.ones(2, 3).sum(0, keepdim=True).shape == (1, 3)
    assert ferry.ones(2, 3).sum(0, keepdim=np.False_).shape == (3,)


def test_reductions_of_nothing_without_a_dim_raise_as_torch():
    empty = ferry.ones(0)
    with pytest.raises(IndexError, match=r"^argmax\(\): Expected reduction dim to be "
                       r"specified for input.numel\(\) == 0\.$"):
        empty.argmax()
    for name in ("max", "min"):
        with pytest.raises(RuntimeError, match=rf"^{name}\(\): Expected reduction dim to be "
                           r"specified for input.numel\(\) == 0\. Specify the reduction dim "
                           r"with the 'dim' argument\.$") as e:
            getattr(empty, name)()
        assert not isinstance(e.value, IndexError)
