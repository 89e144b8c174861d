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
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    is_available,
    long,
    ones,
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

# The ELEM2 elementwise ops (python/src/elementwise.c), with torch's names; gelu,
# softplus and leaky_relu take torch.nn.functional's keywords.
_ELEMENTWISE = (
    "floor ceil round trunc sign reciprocal rsqrt square log1p expm1 log2 log10 exp2 erf "
    "tan asin acos atan sinh cosh silu isnan isinf isfinite logical_not bitwise_not atan2 "
    "remainder fmod floor_divide bitwise_and bitwise_or bitwise_xor bitwise_left_shift "
    "bitwise_right_shift hypot logical_and logical_or logical_xor clamp clip where"
).split()
for _name in _ELEMENTWISE:
    if hasattr(_ferry, _name):
        globals()[_name] = getattr(_ferry, _name)
        __all__.append(_name)
gelu, softplus, leaky_relu = _ferry._gelu, _ferry._softplus, _ferry._leaky_relu
__all__ += ["gelu", "softplus", "leaky_relu"]
del _name
