"""Zero-copy exchange with NumPy: from_numpy and the buffer protocol both ways, lifetime
and reference counts, negative strides, every dtype, read-only arrays, and PyTorch's
error messages."""
import gc
import subprocess
import sys
import threading

import numpy as np
import pytest

import ferry

# ferry dtype <-> NumPy dtype, every ferry dtype NumPy has.
PAIRS = [(ferry.bool, np.bool_), (ferry.uint8, np.uint8), (ferry.int8, np.int8),
         (ferry.int16, np.int16), (ferry.int32, np.int32), (ferry.int64, np.int64),
         (ferry.float16, np.float16), (ferry.float32, np.float32),
         (ferry.float64, np.float64)]


def sample(np_dtype, shape=(2, 3)):
    n = int(np.prod(shape))
    if np_dtype is np.bool_:
        return (np.arange(n) % 2 == 0).reshape(shape)
    return np.arange(n).astype(np_dtype).reshape(shape)


# ---- from_numpy ---------------------------------------------------------------------

@pytest.mark.parametrize("fdt,ndt", PAIRS, ids=[repr(p[0]) for p in PAIRS])
def test_from_numpy_every_dtype_shares_memory(fdt, ndt):
    a = sample(ndt)
    t = ferry.from_numpy(a)
    assert t.dtype is fdt and t.shape == a.shape and str(t.device) == "cpu"
    assert t.tolist() == a.tolist()
    back = t.numpy()
    assert back.dtype == a.dtype and np.shares_memory(back, a)


def test_writes_are_seen_both_ways():
    a = np.zeros((2, 3), dtype=np.float32)
    t = ferry.from_numpy(a)
    a[1, 2] = 5.0
    assert t[1, 2].item() == 5.0
    t[0, 0] = 7.0
    assert a[0, 0] == 7.0
    t += 1
    assert a[1, 2] == 6.0 and a[0, 1] == 1.0
    n = t.numpy()
    n[0, 1] = -3.0
    assert t[0, 1].item() == -3.0 and a[0, 1] == -3.0


def test_from_numpy_of_eye_gives_float64():
    t = ferry.from_numpy(np.eye(3))
    assert t.dtype is ferry.float64
    assert repr(t) == ("tensor([[1., 0., 0.],\n        [0., 1., 0.],\n"
                       "        [0., 0., 1.]], dtype=ferry.float64)")


def test_negative_and_odd_strides_are_accepted():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    for view in (a[::-1], a[:, ::-2], a[::2, 1::2], a.T, a[::-1, ::-1].T):
        t = ferry.from_numpy(view)
        assert t.tolist() == view.tolist()
        assert t.stride() == tuple(s // 4 for s in view.strides)
    f = ferry.from_numpy(a[::-1])
    f[0, 0] = 100  # element 0 of the view is the last row of a
    assert a[2, 0] == 100
    assert np.shares_memory(f.numpy(), a)
    assert f.numpy().strides == a[::-1].strides


def test_zero_dim_and_empty_arrays():
    t = ferry.from_numpy(np.array(3.5))
    assert t.shape == () and t.item() == 3.5
    e = ferry.from_numpy(np.zeros((0, 3)))
    assert e.shape == (0, 3) and e.numpy().shape == (0, 3)


def test_from_numpy_error_texts():
    with pytest.raises(TypeError, match=r"expected np.ndarray \(got list\)"):
        ferry.from_numpy([1, 2])
    with pytest.raises(TypeError, match=r"^can't convert np.ndarray of type numpy.complex128. "
                                        r"The only supported types are: float64, float32, "
                                        r"float16, int64, int32, int16, int8, uint8, and bool.$"):
        ferry.from_numpy(np.zeros(2, dtype=np.complex128))
    for bad in (np.uint16, np.uint32, np.uint64, object, "U3", "datetime64[s]"):
        with pytest.raises(TypeError, match="can't convert np.ndarray of type numpy"):
            ferry.from_numpy(np.zeros(2, dtype=bad))
    with pytest.raises(ValueError, match=r"^given numpy array has byte order different from "
                                         r"the native byte order. Conversion between byte "
                                         r"orders is currently not supported.$"):
        ferry.from_numpy(np.zeros(2, dtype=np.dtype(np.float32).newbyteorder()))
    raw = np.zeros(16, dtype=np.uint8)
    odd = np.lib.stride_tricks.as_strided(raw[1:].view(np.uint8), shape=(3,), strides=(3,))
    odd32 = np.lib.stride_tricks.as_strided(np.zeros(8, np.int32), shape=(2,), strides=(6,))
    assert ferry.from_numpy(odd).shape == (3,)  # 3 is a multiple of 1
    with pytest.raises(ValueError, match=r"^given numpy array strides not a multiple of the "
                                         r"element byte size. Copy the numpy array to "
                                         r"reallocate the memory.$"):
        ferry.from_numpy(odd32)


def test_tensor_copies_a_numpy_array():
    a = np.arange(4, dtype=np.float64)
    t = ferry.tensor(a)
    assert t.dtype is ferry.float64
    a[0] = 9
    assert t[0].item() == 0.0
    assert ferry.tensor(a, dtype=ferry.float32).dtype is ferry.float32
    assert ferry.tensor(a[::-1]).tolist() == [3.0, 2.0, 1.0, 9.0]
    assert ferry.tensor(np.float32(2.5)).dtype is ferry.float32
    with pytest.raises(TypeError, match="numpy.complex64"):
        ferry.tensor(np.zeros(2, np.complex64))


def test_tensor_copies_a_buffer():
    t = ferry.tensor(memoryview(bytearray(b"\x01\x02\x03")))
    assert t.dtype is ferry.uint8 and t.tolist() == [1, 2, 3]
    import array
    assert ferry.tensor(array.array("d", [1.5, 2.5])).tolist() == [1.5, 2.5]


# ---- lifetime and reference counts ------------------------------------------------------

def test_array_deleted_first_then_tensor():
    a = np.arange(1000, dtype=np.float64)
    t = ferry.from_numpy(a)
    del a
    gc.collect()
    assert t[999].item() == 999.0
    del t
    gc.collect()


def test_from_numpy_refcount_returns_to_baseline():
    a = np.arange(10.0)
    base = sys.getrefcount(a)
    t = ferry.from_numpy(a)
    assert sys.getrefcount(a) == base + 1
    v = t[2:]
    del t
    assert sys.getrefcount(a) == base + 1  # the view keeps the storage
    del v
    gc.collect()
    assert sys.getrefcount(a) == base


def test_numpy_refcount_returns_to_baseline():
    t = ferry.arange(10)
    base = sys.getrefcount(t)
    n = t.numpy()
    assert sys.getrefcount(t) == base + 1
    n2 = t.numpy()
    del n, n2
    gc.collect()
    assert sys.getrefcount(t) == base


def test_numpy_keeps_tensor_alive():
    t = ferry.arange(5)
    n = t.numpy()
    del t
    gc.collect()
    assert n.tolist() == [0, 1, 2, 3, 4]


def test_many_round_trips_do_not_leak():
    a = np.arange(100.0)
    base = sys.getrefcount(a)
    for _ in range(1000):
        ferry.from_numpy(a).numpy()
    gc.collect()
    assert sys.getrefcount(a) == base


def test_release_from_another_thread():
    a = np.arange(10.0)
    base = sys.getrefcount(a)
    box = [ferry.from_numpy(a)]
    th = threading.Thread(target=box.clear)
    th.start()
    th.join()
    assert sys.getrefcount(a) == base


def test_tensors_alive_at_interpreter_exit():
    code = ("import numpy as np, ferry\n"
            "a = np.arange(4.0)\n"
            "t = ferry.from_numpy(a)\n"
            "del a\n"
            "keep = [t, t.numpy(), t.__dlpack__(max_version=(1, 0)), t[1:]]\n"
            "import builtins; builtins.keep = keep\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ---- numpy() ---------------------------------------------------------------------------

def test_numpy_is_zero_copy():
    t = ferry.arange(6, dtype=ferry.float32).reshape(2, 3)
    n = t.numpy()
    assert n.dtype == np.float32 and n.shape == (2, 3)
    n[1, 1] = 42
    assert t[1, 1].item() == 42
    assert t.numpy().__array_interface__["data"][0] == n.__array_interface__["data"][0]
    np.testing.assert_array_equal(np.asarray(t), n)


def test_numpy_of_a_device_tensor_is_refused(sim, device):
    for dev in {sim, device}:
        t = ferry.tensor([1.0, 2.0], device=dev)
        with pytest.raises(TypeError) as e:
            t.numpy()
        assert str(e.value) == (f"can't convert {dev} device type tensor to numpy. Use "
                                "Tensor.cpu() to copy the tensor to host memory first.")
        with pytest.raises(TypeError, match=f"can't convert {dev} device type tensor"):
            np.asarray(t)
        with pytest.raises(BufferError, match=f"{dev} device type tensor through the buffer "
                                              "protocol.*Use Tensor.cpu\\(\\)"):
            memoryview(t)
        assert t.numpy(force=True).tolist() == [1.0, 2.0]
        assert t.to("cpu").numpy().tolist() == [1.0, 2.0]
        assert t.cpu().numpy().tolist() == [1.0, 2.0]


def test_numpy_of_a_tensor_requiring_grad_is_refused():
    t = ferry.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        t.numpy()
    assert str(e.value) == ("Can't call numpy() on Tensor that requires grad. Use "
                            "tensor.detach().numpy() instead.")
    assert t.detach().numpy().tolist() == [1.0, 2.0]
    f = t.numpy(force=True)
    assert np.shares_memory(f, t.detach().numpy())


def test_numpy_of_bfloat16_names_the_fix():
    t = ferry.tensor([1.0, 2.0], dtype=ferry.bfloat16)
    with pytest.raises(TypeError, match=r"bfloat16.*type\(ferry.float32\).*DLPack"):
        t.numpy()
    with pytest.raises(BufferError, match="bfloat16"):
        memoryview(t)
    assert t.type(ferry.float32).numpy().tolist() == [1.0, 2.0]


# ---- the buffer protocol ---------------------------------------------------------------

@pytest.mark.parametrize("fdt,ndt", PAIRS, ids=[repr(p[0]) for p in PAIRS])
def test_memoryview_formats(fdt, ndt):
    t = ferry.tensor([1, 0, 1], dtype=fdt)
    m = memoryview(t)
    assert np.dtype(m.format) == np.dtype(ndt)
    assert m.itemsize == fdt.itemsize and m.shape == (3,) and not m.readonly


def get_buffer(obj, flags):
    """PyObject_GetBuffer with explicit flags, released at once; raises what it raises."""
    import ctypes
    api = ctypes.pythonapi
    api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    api.PyObject_GetBuffer.restype = ctypes.c_int
    api.PyBuffer_Release.argtypes = [ctypes.c_void_p]
    view = ctypes.create_string_buffer(256)  # larger than Py_buffer
    api.PyObject_GetBuffer(obj, view, flags)
    api.PyBuffer_Release(view)


PyBUF_SIMPLE, PyBUF_WRITABLE, PyBUF_STRIDES, PyBUF_C_CONTIGUOUS = 0, 1, 0x18, 0x38


def test_buffer_strides_are_bytes():
    t = ferry.arange(12, dtype=ferry.int16).reshape(3, 4).transpose(0, 1)
    m = memoryview(t)
    assert m.strides == (2, 8) and m.shape == (4, 3)
    assert not m.c_contiguous and m.tolist() == t.tolist()
    get_buffer(t, PyBUF_STRIDES)
    for flags in (PyBUF_SIMPLE, PyBUF_C_CONTIGUOUS):
        with pytest.raises(BufferError, match="not contiguous"):
            get_buffer(t, flags)
    get_buffer(t.contiguous(), PyBUF_C_CONTIGUOUS)
    assert np.frombuffer(ferry.arange(3, dtype=ferry.int32), dtype=np.int32).tolist() == [0, 1, 2]


# ---- read-only arrays ------------------------------------------------------------------

def test_read_only_array_gives_read_only_tensor():
    a = np.arange(4.0)
    a.flags.writeable = False
    t = ferry.from_numpy(a)
    assert t.is_read_only and t[1:].is_read_only and t.detach().is_read_only
    with pytest.raises(RuntimeError, match="out is read-only"):
        t += 1
    with pytest.raises(RuntimeError, match="read-only"):
        t.mul_(2)
    with pytest.raises(RuntimeError, match="read-only"):
        t[0] = 5.0
    with pytest.raises(RuntimeError, match="read-only"):
        t[1:].add_(ferry.ones(3, dtype=ferry.float64))
    assert a.tolist() == [0.0, 1.0, 2.0, 3.0]
    n = t.numpy()
    assert not n.flags.writeable and np.shares_memory(n, a)
    assert memoryview(t).readonly
    with pytest.raises(BufferError, match="read-only"):
        get_buffer(t, PyBUF_WRITABLE)
    # Reading works, and a result is a fresh writable tensor.
    r = t + 1
    assert not r.is_read_only and r.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert not t.clone().is_read_only


# ---- NumPy values inside lists and as operands, as PyTorch takes them ---------------------

@pytest.mark.parametrize("data, dtype", [
    ([np.int32(1), np.int32(2)], ferry.int32), ([np.int16(1), np.int16(2)], ferry.int16),
    ([np.uint8(1), np.uint8(2)], ferry.uint8), ([np.float16(1), np.float16(2)], ferry.float16),
    ([np.float64(1)], ferry.float64), ([np.float32(1)], ferry.float32),
    ([np.bool_(True), np.bool_(False)], ferry.bool), ([np.int64(3)], ferry.int64),
    # mixed: PyTorch's promotion of the leaves' dtypes
    ([np.int32(1), 2], ferry.int64), ([np.int32(1), 2.5], ferry.float32),
    ([np.uint8(1), np.int8(2)], ferry.int16), ([np.float16(1), 2.0], ferry.float32),
    ([True, np.int8(1)], ferry.int8), ([[np.int16(1)], [2]], ferry.int64),
    ([np.float16(1), np.ones(1, dtype=np.uint8)[0]], ferry.float16),
    ([ferry.tensor(1, dtype=ferry.int32), np.int32(2)], ferry.int32),
    ([ferry.tensor(1, dtype=ferry.int32), 2], ferry.int64),
], ids=str)
def test_lists_of_numpy_scalars_keep_their_dtype(data, dtype):
    t = ferry.tensor(data)
    assert t.dtype is dtype
    assert t.tolist() == [[float(x) for x in row] if isinstance(row, list) else
                          (bool(row) if dtype is ferry.bool else float(row)) for row in data]


def test_lists_of_arrays():
    t = ferry.tensor([np.ones(2, dtype=np.int32), np.full(2, 3, dtype=np.int32)])
    assert t.dtype is ferry.int32 and t.shape == (2, 2) and t.tolist() == [[1, 1], [3, 3]]
    m = ferry.tensor([np.ones(2, dtype=np.int32), [1, 2]])
    assert m.dtype is ferry.int64 and m.tolist() == [[1, 1], [1, 2]]
    assert ferry.tensor([[1], np.ones(1)]).dtype is ferry.float64
    cube = ferry.tensor([np.arange(4.0).reshape(2, 2), np.zeros((2, 2))])
    assert cube.shape == (2, 2, 2) and cube.tolist()[0] == [[0.0, 1.0], [2.0, 3.0]]
    strided = np.arange(6).reshape(2, 3)[:, ::2]
    assert ferry.tensor([strided, [[1, 2], [3, 4]]]).tolist() == [[[0, 2], [3, 5]],
                                                                  [[1, 2], [3, 4]]]
    assert ferry.tensor([np.ones(0), np.ones(0)]).shape == (2, 0)
    with pytest.raises(ValueError, match=r"expected sequence of length 2 at dim 1 \(got 3\)"):
        ferry.tensor([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match=r"expected sequence of length 2 at dim 1 \(got 3\)"):
        ferry.tensor([np.ones(2), [1, 2, 3]])
    with pytest.raises(TypeError, match="expected a number at dim 1"):
        ferry.tensor([np.float32(1), np.ones(2)])
    with pytest.raises(TypeError, match="Could not infer dtype"):
        ferry.tensor([np.array(["a"])])


def test_arrays_are_operands_of_a_tensor():
    r = ferry.tensor([1.0]) + np.ones(2)
    assert isinstance(r, ferry.Tensor) and r.dtype is ferry.float64 and r.tolist() == [2, 2]
    r = ferry.tensor([1, 2]) - np.array([1, 1], dtype=np.int8)
    assert isinstance(r, ferry.Tensor) and r.dtype is ferry.int64 and r.tolist() == [0, 1]
    assert (ferry.tensor([1.0]) == np.ones(2)).tolist() == [True, True]
    assert ferry.tensor([1.0, 2.0]).mul(np.ones((2, 2))).shape == (2, 2)
    t = ferry.zeros(2)
    t += np.array([1.0, 2.0])
    assert t.dtype is ferry.float32 and t.tolist() == [1.0, 2.0]
    with pytest.raises(RuntimeError, match="The size of tensor a"):
        ferry.ones(2, 3) + np.ones(4)
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        t = ferry.zeros(2, dtype=ferry.int32)
        t += np.ones(2)
