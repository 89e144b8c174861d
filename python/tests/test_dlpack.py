"""DLPack per the Python specification: versioned and legacy capsules, their names once
consumed, flags (read-only, copied), dtype codes, devices, refcounts, and round trips
with NumPy, JAX and ferry itself in both directions."""
import ctypes
import gc
import sys

import numpy as np
import pytest

import ferry

kDLCPU, kDLCUDA, kDLOpenCL = 1, 2, 4
kDLInt, kDLUInt, kDLFloat, kDLBfloat, kDLBool = 0, 1, 2, 4, 6
READ_ONLY, IS_COPIED = 1, 2


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p), ("flags", ctypes.c_uint64),
                ("dl_tensor", DLTensor)]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_api = ctypes.pythonapi
_api.PyCapsule_GetName.argtypes = [ctypes.py_object]
_api.PyCapsule_GetName.restype = ctypes.c_char_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p


def capsule_name(cap):
    return _api.PyCapsule_GetName(cap).decode()


def managed(cap):
    """The struct inside an unconsumed capsule (read only; the capsule keeps owning it).
    The struct holds the capsule, and each field read from it holds the struct, so the
    memory stays alive while anything read from it is used, even when the caller passed
    a temporary capsule (`managed(t.__dlpack__()).flags`)."""
    name = capsule_name(cap)
    ptr = _api.PyCapsule_GetPointer(cap, name.encode())
    kind = DLManagedTensorVersioned if name == "dltensor_versioned" else DLManagedTensor
    m = ctypes.cast(ptr, ctypes.POINTER(kind)).contents
    m.capsule = cap
    return m


def geometry(dl):
    return ([dl.shape[i] for i in range(dl.ndim)], [dl.strides[i] for i in range(dl.ndim)])


# ---- capsules ---------------------------------------------------------------------------

def test_versioned_capsule_when_asked_for_1_0():
    t = ferry.arange(6, dtype=ferry.float32).reshape(2, 3)
    cap = t.__dlpack__(max_version=(1, 0))
    assert capsule_name(cap) == "dltensor_versioned"
    m = managed(cap)
    assert (m.version.major, m.version.minor) == (1, 0)
    assert m.flags == 0
    dl = m.dl_tensor
    assert (dl.device.device_type, dl.device.device_id) == (kDLCPU, 0)
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (kDLFloat, 32, 1)
    assert geometry(dl) == ([2, 3], [3, 1])
    assert t.__dlpack__(max_version=(1, 5)) is not None  # a newer minor still gets 1.0


@pytest.mark.parametrize("max_version", [None, (0, 8)])
def test_legacy_capsule_otherwise(max_version):
    t = ferry.arange(4).reshape(2, 2).transpose(0, 1)
    cap = t.__dlpack__() if max_version is None else t.__dlpack__(max_version=max_version)
    assert capsule_name(cap) == "dltensor"
    dl = managed(cap).dl_tensor
    assert (dl.dtype.code, dl.dtype.bits) == (kDLInt, 64)
    assert geometry(dl) == ([2, 2], [1, 2])


@pytest.mark.parametrize("dt,code,bits", [
    (ferry.bool, kDLBool, 8), (ferry.uint8, kDLUInt, 8), (ferry.int8, kDLInt, 8),
    (ferry.int16, kDLInt, 16), (ferry.int32, kDLInt, 32), (ferry.int64, kDLInt, 64),
    (ferry.float16, kDLFloat, 16), (ferry.bfloat16, kDLBfloat, 16),
    (ferry.float32, kDLFloat, 32), (ferry.float64, kDLFloat, 64)], ids=repr)
def test_dtype_codes(dt, code, bits):
    dl = managed(ferry.zeros(2, dtype=dt).__dlpack__(max_version=(1, 0))).dl_tensor
    assert (dl.dtype.code, dl.dtype.bits, dl.dtype.lanes) == (code, bits, 1)


def test_consumed_capsules_are_renamed():
    t = ferry.arange(3)
    for kw, used in (({"max_version": (1, 0)}, "used_dltensor_versioned"), ({}, "used_dltensor")):
        cap = t.__dlpack__(**kw)
        u = ferry.from_dlpack(cap)
        assert capsule_name(cap) == used
        assert u.tolist() == [0, 1, 2]
        with pytest.raises(RuntimeError, match="already consumed"):
            ferry.from_dlpack(cap)
        del cap  # a consumed capsule's destructor leaves the struct to ferry
        gc.collect()
        assert u.tolist() == [0, 1, 2]


def test_unconsumed_capsule_frees_its_tensor():
    a = np.arange(5.0)
    base = sys.getrefcount(a)
    t = ferry.from_numpy(a)
    cap = t.__dlpack__(max_version=(1, 0))
    legacy = t.__dlpack__()
    del t
    gc.collect()
    assert sys.getrefcount(a) == base + 1  # the capsules hold the storage
    del cap, legacy
    gc.collect()
    assert sys.getrefcount(a) == base


def test_capsule_and_exporter_refcounts():
    t = ferry.arange(4)
    base = sys.getrefcount(t)
    caps = [t.__dlpack__(max_version=(1, 0)) for _ in range(100)]
    cap = caps.pop()
    rc = sys.getrefcount(cap)  # outside assert: pytest's rewriting holds temporaries
    assert rc == 2
    assert sys.getrefcount(t) == base  # a capsule holds the storage, not the object
    del caps, cap
    imported = [ferry.from_dlpack(t) for _ in range(100)]
    assert sys.getrefcount(t) == base
    del imported
    gc.collect()


# ---- a capsule's struct is deleted exactly once, whatever the consumer does ---------------

_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int


# PyCapsule_SetName keeps the pointer it is given: the names must outlive the capsules.
USED = {"dltensor_versioned": b"used_dltensor_versioned", "dltensor": b"used_dltensor"}


def _call_deleter(cap):
    """What a consumer does when it deletes the struct: calls its deleter."""
    name = capsule_name(cap).encode()
    ptr = _api.PyCapsule_GetPointer(cap, name)
    kind = DLManagedTensorVersioned if name.endswith(b"_versioned") else DLManagedTensor
    deleter = ctypes.cast(ptr, ctypes.POINTER(kind)).contents.deleter
    _DELETER(deleter)(ptr)


CAPSULE_KINDS = [({"max_version": (1, 0)}, "dltensor_versioned"), ({}, "dltensor")]


@pytest.mark.parametrize("kw, name", CAPSULE_KINDS, ids=["versioned", "legacy"])
def test_consumer_failing_after_taking_the_capsule(kw, name):
    # It took the struct, renamed the capsule, then failed and deleted the struct: the
    # capsule's destructor must leave it alone.
    a = np.arange(4.0)
    base = sys.getrefcount(a)
    cap = ferry.from_numpy(a).__dlpack__(**kw)
    assert sys.getrefcount(a) == base + 1
    assert _api.PyCapsule_SetName(cap, USED[name]) == 0
    _call_deleter(cap)
    assert sys.getrefcount(a) == base
    del cap
    gc.collect()
    assert sys.getrefcount(a) == base


@pytest.mark.parametrize("kw, name", CAPSULE_KINDS, ids=["versioned", "legacy"])
def test_consumer_deleting_without_renaming(kw, name):
    # PyTorch refusing a device deleted the struct on its error path but left the
    # capsule's name: ferry's destructor freed the struct a second time (double free).
    a = np.arange(4.0)
    base = sys.getrefcount(a)
    cap = ferry.from_numpy(a).__dlpack__(**kw)
    _call_deleter(cap)
    assert sys.getrefcount(a) == base
    assert capsule_name(cap) == name
    del cap
    gc.collect()
    assert sys.getrefcount(a) == base  # once, not twice


@pytest.mark.parametrize("kw, name", CAPSULE_KINDS, ids=["versioned", "legacy"])
def test_consumer_failing_before_taking_the_capsule(kw, name):
    # It refused the capsule untouched: the destructor deletes the struct, once.
    a = np.arange(4.0)
    base = sys.getrefcount(a)
    cap = ferry.from_numpy(a).__dlpack__(**kw)

    def refusing_consumer(capsule):
        m = managed(capsule)  # reads the struct, then refuses it before taking it
        if m.dl_tensor.device.device_type != kDLOpenCL:
            raise BufferError("this consumer takes only OpenCL memory")

    with pytest.raises(BufferError, match="only OpenCL"):
        refusing_consumer(cap)
    gc.collect()
    assert capsule_name(cap) == name and sys.getrefcount(a) == base + 1
    del cap
    gc.collect()
    assert sys.getrefcount(a) == base


def test_consumer_taking_the_capsule_deletes_later():
    # The normal path: rename, use, delete when done, from any thread.
    import threading
    a = np.arange(4.0)
    base = sys.getrefcount(a)
    cap = ferry.from_numpy(a).__dlpack__(max_version=(1, 0))
    assert _api.PyCapsule_SetName(cap, USED["dltensor_versioned"]) == 0
    holder = [cap]
    del cap
    gc.collect()
    assert sys.getrefcount(a) == base + 1  # the consumer still owns the struct
    th = threading.Thread(target=_call_deleter_raw, args=(holder,))
    th.start()
    th.join()
    assert sys.getrefcount(a) == base


def _call_deleter_raw(holder):
    # The capsule object is still alive in holder, renamed: read its pointer by the new
    # name and delete the struct as a consumer on another thread would.
    cap = holder.pop()
    ptr = _api.PyCapsule_GetPointer(cap, USED["dltensor_versioned"])
    del cap
    m = ctypes.cast(ptr, ctypes.POINTER(DLManagedTensorVersioned)).contents
    _DELETER(m.deleter)(ptr)


def test_dlpack_device():
    assert ferry.zeros(1).__dlpack_device__() == (kDLCPU, 0)


def test_stream_must_be_none_on_cpu():
    with pytest.raises(BufferError, match="stream must be None"):
        ferry.zeros(1).__dlpack__(stream=1)


def test_requires_grad_is_refused_as_pytorch_does():
    t = ferry.zeros(2, requires_grad=True)
    # BufferError as PyTorch's __dlpack__ (the protocol's type for a refused export).
    with pytest.raises(BufferError, match="Can't export tensors that require gradient, use "
                                          "tensor.detach()"):
        t.__dlpack__(max_version=(1, 0))
    assert ferry.from_dlpack(t.detach()).shape == (2,)


# ---- read-only and copies --------------------------------------------------------------

def test_read_only_flag():
    a = np.arange(3.0)
    a.flags.writeable = False
    t = ferry.from_numpy(a)
    cap = t.__dlpack__(max_version=(1, 0))
    assert managed(cap).flags & READ_ONLY
    with pytest.raises(BufferError, match="read-only.*versioned"):
        t.__dlpack__()
    n = np.from_dlpack(t)
    assert not n.flags.writeable and np.shares_memory(n, a)
    assert ferry.from_dlpack(t).is_read_only
    assert ferry.from_dlpack(a).is_read_only  # NumPy flags its read-only arrays too


def test_copy_true_makes_a_flagged_copy():
    t = ferry.arange(4, dtype=ferry.float32)
    cap = t.__dlpack__(max_version=(1, 0), copy=True)
    m = managed(cap)
    assert m.flags & IS_COPIED
    c = ferry.from_dlpack(cap)
    c.add_(10)
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0] and c.tolist() == [10.0, 11.0, 12.0, 13.0]
    assert not managed(t.__dlpack__(max_version=(1, 0), copy=False)).flags & IS_COPIED


def test_device_tensor_to_host_copy(device):
    t = ferry.tensor([1.0, 2.0, 3.0], device=device)
    if device.startswith("sim"):
        with pytest.raises(BufferError, match=r"sim:0 tensors cannot be exported through "
                                              r"DLPack.*cpu\(\)"):
            t.__dlpack__(max_version=(1, 0))
        with pytest.raises(BufferError, match="sim:0"):
            t.__dlpack_device__()
    with pytest.raises(BufferError, match="needs a copy, but copy=False"):
        t.__dlpack__(max_version=(1, 0), dl_device=(kDLCPU, 0), copy=False)
    cap = t.__dlpack__(max_version=(1, 0), dl_device=(kDLCPU, 0))
    m = managed(cap)
    assert m.flags & IS_COPIED and m.dl_tensor.device.device_type == kDLCPU
    assert ferry.from_dlpack(cap).tolist() == [1.0, 2.0, 3.0]
    n = np.from_dlpack(t, device="cpu") if device.startswith("sim") else None
    if n is not None:
        assert n.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(BufferError, match="dl_device"):
        t.__dlpack__(max_version=(1, 0), dl_device=(kDLCUDA, 7))


# ---- NumPy -----------------------------------------------------------------------------

@pytest.mark.parametrize("ndt", [np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
                                 np.float16, np.float32, np.float64])
def test_numpy_round_trip_every_dtype(ndt):
    a = (np.arange(6) % 2 == 1) if ndt is np.bool_ else np.arange(6).astype(ndt)
    a = a.reshape(2, 3)
    t = ferry.from_dlpack(a)
    assert t.tolist() == a.tolist()
    b = np.from_dlpack(t)
    assert b.dtype == a.dtype and np.shares_memory(a, b)


def test_numpy_to_ferry_shares_memory_both_capsule_kinds():
    a = np.zeros(4, dtype=np.float32)
    for t in (ferry.from_dlpack(a), ferry.from_dlpack(a.__dlpack__()),
              ferry.from_dlpack(a.__dlpack__(max_version=(1, 0)))):
        t.add_(1)
    assert a.tolist() == [3.0, 3.0, 3.0, 3.0]


def test_ferry_to_numpy_shares_memory_both_capsule_kinds():
    t = ferry.zeros(3)

    class Legacy:  # a consumer that only knows the unversioned protocol
        def __dlpack__(self, stream=None):
            return t.__dlpack__()

        def __dlpack_device__(self):
            return t.__dlpack_device__()

    n = np.from_dlpack(t)
    n += 1
    assert t.tolist() == [1.0, 1.0, 1.0]
    legacy = np.from_dlpack(Legacy())  # NumPy makes legacy imports read-only
    assert np.shares_memory(legacy, t.numpy()) and legacy.tolist() == [1.0, 1.0, 1.0]


def test_numpy_import_refcount():
    a = np.arange(3.0)
    base = sys.getrefcount(a)
    t = ferry.from_dlpack(a)
    assert sys.getrefcount(a) > base
    del t
    gc.collect()
    assert sys.getrefcount(a) == base


def test_strided_views_round_trip():
    t = ferry.arange(12).reshape(3, 4)[::2, 1::2]
    n = np.from_dlpack(t)
    assert n.tolist() == [[1, 3], [9, 11]]
    rev = ferry.from_numpy(np.arange(4)[::-1])
    assert np.from_dlpack(rev).tolist() == [3, 2, 1, 0]


def test_views_with_offsets_point_data_at_their_first_element():
    # Consumers that ignore byte_offset (PyTorch, pytorch/pytorch#168177) must read the
    # view's own elements: data points at element 0 and byte_offset is 0.
    base = ferry.arange(12, dtype=ferry.int32)
    grid = base.reshape(3, 4)
    for view, want in ((base[1:], list(range(1, 12))), (grid[1:, 2:], [[6, 7], [10, 11]]),
                       (grid[:, 1::2].transpose(0, 1), [[1, 5, 9], [3, 7, 11]]),
                       (grid[2, 3], 11)):
        for kw in ({"max_version": (1, 0)}, {}):
            cap = view.__dlpack__(**kw)
            dl = managed(cap).dl_tensor
            assert dl.byte_offset == 0
            assert dl.data == view.numpy().ctypes.data
            del dl, cap
        n = np.from_dlpack(view)
        assert n.tolist() == want and np.shares_memory(n, base.numpy())
        assert ferry.from_dlpack(view).tolist() == want


def test_numpy_negative_strides_through_dlpack():
    a = np.arange(6.0).reshape(2, 3)[::-1]
    assert ferry.from_dlpack(a).tolist() == a.tolist()


def test_ferry_to_ferry():
    t = ferry.arange(4, dtype=ferry.float64)
    u = ferry.from_dlpack(t)
    u[0] = 100.0
    assert t[0].item() == 100.0
    assert ferry.from_dlpack(t, copy=True).tolist() == t.tolist()


def test_from_dlpack_rejects_other_objects():
    with pytest.raises(TypeError, match="expected an object with __dlpack__"):
        ferry.from_dlpack([1, 2])


# ---- JAX -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jnp():
    pytest.importorskip("jax", reason="JAX (CPU) is not installed: pip install 'jax[cpu]'")
    import jax.numpy
    return jax.numpy


def test_jax_to_ferry(jnp):
    j = jnp.arange(8.0, dtype=jnp.float32).reshape(2, 4)
    t = ferry.from_dlpack(j)
    assert t.tolist() == j.tolist() and t.dtype is ferry.float32
    assert t.numpy().ctypes.data == j.unsafe_buffer_pointer()  # no copy
    legacy = ferry.from_dlpack(j.__dlpack__())
    assert legacy.tolist() == j.tolist()
    b = ferry.from_dlpack(jnp.array([1.5, 2.5], dtype=jnp.bfloat16))
    assert b.dtype is ferry.bfloat16 and b.tolist() == [1.5, 2.5]


def test_ferry_to_jax(jnp):
    t = ferry.arange(8, dtype=ferry.float32)
    j = jnp.from_dlpack(t)
    assert j.tolist() == t.tolist() and j.dtype == jnp.float32
    b = jnp.from_dlpack(ferry.tensor([1.5, -2.0], dtype=ferry.bfloat16))
    assert str(b.dtype) == "bfloat16" and b.tolist() == [1.5, -2.0]
    i = jnp.from_dlpack(ferry.tensor([[1, 2], [3, 4]], dtype=ferry.int32))
    assert i.tolist() == [[1, 2], [3, 4]]


def test_jax_round_trip(jnp):
    t = ferry.arange(6, dtype=ferry.float32).reshape(2, 3)
    back = ferry.from_dlpack(jnp.from_dlpack(t))
    assert back.tolist() == t.tolist()
