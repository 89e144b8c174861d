"""ferry: tensors that live on devices (cpu, OpenCL, CUDA, or a plugin's) with a
PyTorch-style API, zero-copy NumPy exchange and DLPack.

The types and functions come from the C extension ``ferry._ferry``; this file only
gathers them and adds the ``ferry.cuda`` and ``ferry.opencl`` submodules.
"""
try:
    from ferry import _ferry  # noqa: F401
except ImportError as e:  # most often: the source tree's python/ferry shadows the build
    raise ImportError(
        f"ferry's C extension could not be loaded from {__path__[0]} ({e}). Import the "
        "built package (PYTHONPATH=<build dir>/python) or install it with "
        "`pip install ./python`.") from e

from ferry._ferry import (  # noqa: F401,E402
    Size,
    Tensor,
    __version__,
    arange,
    backend_status,
    bfloat16,
    bool,
    device,
    device_count,
    devices,
    double,
    dtype,
    empty,
    eye,
    float,
    float16,
    float32,
    float64,
    from_dlpack,
    from_numpy,
    full,
    gather,
    half,
    index_select,
    int,
    int8,
    int16,
    int32,
    int64,
    is_available,
    long,
    ones,
    scatter,
    scatter_add,
    short,
    synchronize,
    tensor,
    uint8,
    zeros,
)
from ferry import autograd, cuda, opencl  # noqa: E402,F401
from ferry.autograd import (  # noqa: E402,F401
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "Size", "Tensor", "arange", "autograd", "enable_grad", "is_grad_enabled", "no_grad",
    "set_grad_enabled", "backend_status", "bfloat16", "bool", "cuda", "device",
    "device_count", "devices", "double", "dtype", "empty", "eye", "float", "float16",
    "float32", "float64", "from_dlpack", "from_numpy", "full", "half", "int", "int8",
    "int16", "int32", "int64", "is_available", "long", "ones", "opencl", "short",
    "synchronize", "tensor", "uint8", "zeros",
]
