"""ferry.tensor and the factories, dtype and device objects, properties, to()/cpu()/
type()/detach(), indexing as views, tolist/item, and the status-to-exception table."""
import pickle
import weakref

import pytest

import ferry

ALL_DTYPES = [ferry.bool, ferry.uint8, ferry.int8, ferry.int16, ferry.int32, ferry.int64,
              ferry.float16, ferry.bfloat16, ferry.float32, ferry.float64]


# ---- dtypes ----------------------------------------------------------------------

def test_dtype_repr_and_aliases():
    assert repr(ferry.float32) == "ferry.float32"
    assert repr(ferry.bfloat16) == "ferry.bfloat16"
    assert ferry.float is ferry.float32
    assert ferry.double is ferry.float64
    assert ferry.half is ferry.float16
    assert ferry.long is ferry.int64
    assert ferry.int is ferry.int32
    assert ferry.short is ferry.int16
    assert ferry.dtype("float") is ferry.float32
    assert isinstance(ferry.float32, ferry.dtype)


def test_dtype_attributes_and_pickle():
    assert ferry.float16.is_floating_point and not ferry.int64.is_floating_point
    assert ferry.float64.itemsize == 8 and ferry.bool.itemsize == 1
    for dt in ALL_DTYPES:
        assert pickle.loads(pickle.dumps(dt)) is dt


def test_dtype_unknown_name_raises_runtime_error():
    with pytest.raises(RuntimeError):
        ferry.dtype("complex64")


# ---- devices -----------------------------------------------------------------------

def test_device_objects():
    d = ferry.device("cpu")
    assert d.type == "cpu" and d.index == 0 and str(d) == "cpu"
    assert repr(d) == "device(type='cpu')"
    s = ferry.device("sim:1") if ferry.is_available("sim") else ferry.device("cpu")
    assert s == ferry.device(str(s))
    assert ferry.device("cpu") != s or s.type == "cpu"
    assert hash(ferry.device("cpu")) == hash(ferry.device("cpu", 0))
    assert pickle.loads(pickle.dumps(d)) == d


def test_device_with_index(sim):
    d = ferry.device("sim", 1)
    assert (d.type, d.index, str(d)) == ("sim", 1, "sim:1")
    assert repr(d) == "device(type='sim', index=1)"
    assert ferry.device("sim") == ferry.device("sim:0")


def test_device_errors_use_pytorch_words():
    with pytest.raises(RuntimeError, match="Expected one of cpu.* device type at start of "
                                           "device string: xpu"):
        ferry.device("xpu")
    with pytest.raises(RuntimeError, match=r"Invalid device string: 'cuda:-1'"):
        ferry.device("cuda:-1")
    with pytest.raises(RuntimeError, match="Device string must not be empty"):
        ferry.device("")
    with pytest.raises(RuntimeError, match="must not include an index"):
        ferry.device("cpu:0", 0)


def test_devices_lists_cpu_first():
    devs = ferry.devices()
    assert devs[0] == ferry.device("cpu")
    assert all(isinstance(d, ferry.device) for d in devs)


def test_backend_queries():
    assert ferry.cuda.is_available() in (True, False)
    assert ferry.opencl.is_available() in (True, False)
    assert ferry.cuda.device_count() >= 0
    assert (ferry.cuda.device_count() > 0) == ferry.cuda.is_available()
    if not ferry.cuda.is_available():
        assert ferry.cuda.status()  # says why


def test_using_a_missing_device_raises_runtime_error():
    with pytest.raises(RuntimeError, match=r"Invalid device: cpu:1 \(cpu has 1 device\)"):
        ferry.zeros(2, device="cpu:1")


# ---- creation ----------------------------------------------------------------------

def test_tensor_infers_dtypes_as_pytorch():
    assert ferry.tensor(1.5).dtype is ferry.float32
    assert ferry.tensor(3).dtype is ferry.int64
    assert ferry.tensor(True).dtype is ferry.bool
    assert ferry.tensor([1, 2.0]).dtype is ferry.float32
    assert ferry.tensor([True, 2]).dtype is ferry.int64
    assert ferry.tensor([]).dtype is ferry.float32
    assert ferry.tensor([[1, 2], [3, 4]], dtype=ferry.float64).dtype is ferry.float64


def test_tensor_shapes():
    assert ferry.tensor(2.0).shape == ()
    assert ferry.tensor([]).shape == (0,)
    assert ferry.tensor([[], []]).shape == (2, 0)
    t = ferry.tensor([[[1], [2]], [[3], [4]], [[5], [6]]])
    assert t.shape == (3, 2, 1) and t.ndim == 3 and len(t) == 3
    assert isinstance(t.shape, tuple) and isinstance(t.shape, ferry.Size)
    assert repr(t.shape) == "ferry.Size([3, 2, 1])"
    assert t.size() == (3, 2, 1) and t.size(1) == 2 and t.size(-1) == 1
    assert t.numel() == 6 and t.dim() == 3


def test_tensor_ragged_and_bad_leaves():
    with pytest.raises(ValueError, match=r"expected sequence of length 2 at dim 1 \(got 3\)"):
        ferry.tensor([[1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match=r"expected sequence of length 1 at dim 1 \(got 0\)"):
        ferry.tensor([[1], []])
    # A number where a sequence belongs, and the reverse, are TypeErrors as in PyTorch.
    with pytest.raises(TypeError, match=r"not a sequence: expected a sequence of length 1 at "
                                        r"dim 1 \(got int\)"):
        ferry.tensor([[1], 2])
    with pytest.raises(TypeError, match=r"expected a number at dim 1 \(got a sequence of "
                                        r"length 1\)"):
        ferry.tensor([1, [2]])
    with pytest.raises(TypeError, match="not a sequence"):
        ferry.tensor([[[1]], [2]])
    with pytest.raises(TypeError, match="expected a number at dim 1"):
        ferry.tensor([1, []])
    with pytest.raises(TypeError, match="Could not infer dtype of str"):
        ferry.tensor(["a"])
    with pytest.raises(TypeError, match="Could not infer dtype of dict"):
        ferry.tensor({})


def test_tensor_integer_overflow_is_refused():
    with pytest.raises(RuntimeError, match="value cannot be converted to type uint8 without "
                                           "overflow"):
        ferry.tensor([256], dtype=ferry.uint8)
    with pytest.raises(RuntimeError, match="int64 without overflow"):
        ferry.tensor([2 ** 70])


def test_tensor_from_tensor_copies_and_drops_grad():
    a = ferry.tensor([1.0, 2.0], requires_grad=True)
    b = ferry.tensor(a)
    assert not b.requires_grad
    assert b.tolist() == [1.0, 2.0]
    c = ferry.tensor(a, dtype=ferry.int32)
    assert c.dtype is ferry.int32 and c.tolist() == [1, 2]


def test_tensor_of_one_element_tensors():
    t = ferry.tensor([ferry.tensor(1.5), ferry.tensor(2)])
    assert t.dtype is ferry.float32 and t.tolist() == [1.5, 2.0]


def test_factories():
    assert ferry.zeros(2, 3).tolist() == [[0.0] * 3] * 2
    assert ferry.zeros((2, 3)).shape == (2, 3)
    assert ferry.ones(2, dtype=ferry.int32).tolist() == [1, 1]
    assert ferry.empty(4).shape == (4,)
    assert ferry.full((2,), 7).dtype is ferry.int64
    assert ferry.full((2,), 7.5).tolist() == [7.5, 7.5]
    assert ferry.full((1,), True).dtype is ferry.bool
    assert ferry.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert ferry.eye(2, 3).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert ferry.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert ferry.arange(5).dtype is ferry.int64
    assert ferry.arange(1, 2, 0.5).tolist() == [1.0, 1.5]
    assert ferry.arange(1, 2, 0.5).dtype is ferry.float32
    assert ferry.arange(3, dtype=ferry.float64).dtype is ferry.float64


def test_factories_on_a_device(device):
    t = ferry.ones(3, device=device)
    assert str(t.device) == device
    assert t.tolist() == [1.0, 1.0, 1.0]
    assert ferry.tensor([1, 2], device=ferry.device(device)).cpu().tolist() == [1, 2]


def test_requires_grad():
    t = ferry.zeros(2, requires_grad=True)
    assert t.requires_grad
    t.requires_grad = False
    assert not t.requires_grad
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require "
                                         "gradients"):
        ferry.zeros(2, dtype=ferry.int64).requires_grad = True
    assert "requires_grad=True" in repr(ferry.ones(1, requires_grad=True))


# ---- repr, tolist, item ----------------------------------------------------------------

def test_repr_is_the_c_repr():
    assert repr(ferry.eye(3, dtype=ferry.float64)) == (
        "tensor([[1., 0., 0.],\n"
        "        [0., 1., 0.],\n"
        "        [0., 0., 1.]], dtype=ferry.float64)")
    assert repr(ferry.tensor([1, 2])) == "tensor([1, 2])"


def test_repr_names_the_device(device):
    assert repr(ferry.tensor([1, 2], device=device)) == f"tensor([1, 2], device='{device}')"


@pytest.mark.parametrize("dt", ALL_DTYPES, ids=repr)
def test_tolist_and_item_every_dtype(dt):
    values = [0, 1] if dt is ferry.bool else [1, 2, 3]
    t = ferry.tensor(values, dtype=dt)
    out = t.tolist()
    assert out == [type(out[0])(v) for v in values]
    if dt is ferry.bool:
        assert all(isinstance(v, bool) for v in out)
    elif dt.is_floating_point:
        assert all(isinstance(v, float) for v in out)
    else:
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in out)
    assert t[1].item() == out[1]
    assert ferry.tensor(values[-1], dtype=dt).tolist() == out[-1]  # 0-d gives a number


def test_tolist_on_a_device(device):
    assert ferry.arange(6, device=device).reshape(2, 3).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_item_needs_one_element():
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to "
                                           "Scalar"):
        ferry.tensor([1, 2]).item()
    assert float(ferry.tensor([2.5])) == 2.5
    assert int(ferry.tensor(7)) == 7
    assert [10, 20, 30][ferry.tensor(1)] == 20
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value "
                                           "is ambiguous"):
        bool(ferry.tensor([1, 2]))
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1][ferry.tensor(0.0)]


# ---- moving between devices and dtypes --------------------------------------------------

def test_to_returns_self_when_nothing_changes():
    t = ferry.tensor([1.0, 2.0])
    assert t.to("cpu") is t
    assert t.to(ferry.float32) is t
    assert t.to(device="cpu", dtype=ferry.float32) is t
    assert t.cpu() is t
    assert t.type(ferry.float32) is t
    c = t.to("cpu", copy=True)
    assert c is not t and c.tolist() == t.tolist()


def test_to_dtype_and_device(device):
    t = ferry.tensor([1.5, 2.5])
    d = t.to(device)
    assert str(d.device) == device and d.dtype is ferry.float32
    assert d.to(device) is d
    e = t.to(device, ferry.float64)
    assert str(e.device) == device and e.dtype is ferry.float64
    f = t.to(ferry.device(device), dtype=ferry.int32)
    assert f.dtype is ferry.int32 and f.cpu().tolist() == [1, 2]
    assert t.to(f).dtype is ferry.int32 and t.to(f).device == f.device
    assert d.cpu().device == ferry.device("cpu")
    assert d.to("cpu").tolist() == [1.5, 2.5]


def test_type_conversions():
    t = ferry.tensor([1.7, -2.7])
    assert t.type() == "ferry.FloatTensor"
    assert t.type(ferry.int64).tolist() == [1, -2]  # toward zero
    assert t.type("ferry.DoubleTensor").dtype is ferry.float64
    assert ferry.tensor([1]).type() == "ferry.LongTensor"


def test_cuda_and_opencl_methods_without_devices():
    t = ferry.tensor([1.0])
    if not ferry.cuda.is_available():
        with pytest.raises(RuntimeError):
            t.cuda()
    if not ferry.opencl.is_available():
        with pytest.raises(RuntimeError):
            t.opencl()


def test_detach_shares_storage_and_drops_grad():
    t = ferry.tensor([1.0, 2.0], requires_grad=True)
    d = t.detach()
    assert not d.requires_grad and t.requires_grad
    d.add_(1)
    assert t.tolist() == [2.0, 3.0]


# ---- indexing ----------------------------------------------------------------------------

def test_basic_indexing_is_a_view():
    t = ferry.arange(12).reshape(3, 4)
    assert t[1].tolist() == [4, 5, 6, 7]
    assert t[-1, -1].item() == 11
    assert t[:, 1].tolist() == [1, 5, 9]
    assert t[1:, ::2].tolist() == [[4, 6], [8, 10]]
    assert t[None].shape == (1, 3, 4)
    assert t[..., None].shape == (3, 4, 1)
    assert t[1, ..., 2].item() == 6
    assert t[...].shape == (3, 4)
    assert t[5:].shape == (0, 4)
    v = t[1:, 2]
    v.mul_(10)
    assert t.tolist()[1][2] == 60 and t.tolist()[2][2] == 100


def test_indexing_errors():
    t = ferry.arange(3)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        t[3]
    with pytest.raises(IndexError, match="too many indices for tensor of dimension 1"):
        t[0, 0]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        t[::-1]
    with pytest.raises(IndexError, match="single ellipsis"):
        t[..., ...]
    with pytest.raises(IndexError, match="only integers, slices"):
        t["a"]
    assert t[[0, 1]].tolist() == [0, 1]  # advanced indexing (test_advindex.py)
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(ferry.tensor(1))


def test_iteration_and_setitem():
    t = ferry.arange(6).reshape(2, 3)
    assert [r.tolist() for r in t] == [[0, 1, 2], [3, 4, 5]]
    t[0] = 9
    t[1, 1:] = ferry.tensor([7, 8])
    assert t.tolist() == [[9, 9, 9], [3, 7, 8]]
    f = ferry.tensor([1.0, 2.0])
    f[0] = -0.0
    assert str(f[0].item()) == "-0.0"


def test_views():
    t = ferry.arange(6)
    assert t.view(2, 3).shape == (2, 3)
    assert t.reshape((3, 2)).transpose(0, 1).shape == (2, 3)
    assert t.reshape(2, 3).permute(1, 0).stride() == (1, 3)
    assert t.reshape(2, 1, 3).squeeze().shape == (2, 3)
    assert t.unsqueeze(0).shape == (1, 6)
    assert t.reshape(1, 6).expand(3, 6).shape == (3, 6)
    assert t.reshape(2, 3).flatten().shape == (6,)
    assert not t.reshape(2, 3).transpose(0, 1).is_contiguous()
    assert t.reshape(2, 3).transpose(0, 1).contiguous().is_contiguous()


# ---- objects ---------------------------------------------------------------------------

def test_tensor_is_weak_referenceable_and_freed():
    t = ferry.zeros(3)
    r = weakref.ref(t)
    del t
    assert r() is None


def test_tensor_cannot_be_constructed_directly():
    with pytest.raises(TypeError):
        ferry.Tensor()


def test_tensor_hash_is_identity():
    a, b = ferry.zeros(1), ferry.zeros(1)
    assert len({a, b}) == 2


def test_tensor_without_elements_reads_only_the_first_elements():
    # PyTorch stores nothing when the shape the first elements give has no elements, so
    # nothing past them is checked: [[], [1]] has shape (2, 0).
    for data, shape in (([[], [1]], (2, 0)), ([[], [[1]]], (2, 0)), ([[[]], [1]], (2, 1, 0)),
                        ([[], 1], (2, 0)), (([], ()), (2, 0)), ([], (0,)), ([[[]]], (1, 1, 0))):
        t = ferry.tensor(data)
        assert t.shape == shape and t.dtype is ferry.float32 and t.numel() == 0
    # The dtype is still inferred from every leaf: an empty list counts as float32.
    assert ferry.tensor([[], [1]]).dtype is ferry.float32
    assert ferry.tensor([[], [True]], dtype=ferry.int8).dtype is ferry.int8
