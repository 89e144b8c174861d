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
    fallback_stats,
    float,
    float16,
    float32,
    float64,
    from_dlpack,
    from_numpy,
    full,
    gather,
    half,
    index_put,
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
from ferry._ferry import (  # noqa: F401,E402
    Generator,
    bernoulli,
    default_generator,
    get_rng_state,
    initial_seed,
    manual_seed,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    seed,
    set_rng_state,
)
# Module functions of the existing ops, save/load, print options (python/ferry/_surface.py);
# max and min come from reduce2 below.
from ferry._surface import (  # noqa: E402,F401,A004
    abs,
    absolute,
    add,
    allclose,
    amax,
    amin,
    argmax,
    as_tensor,
    bmm,
    broadcast_shapes,
    broadcast_tensors,
    cos,
    div,
    divide,
    einsum,
    eq,
    equal,
    exp,
    ge,
    get_default_dtype,
    greater,
    greater_equal,
    gt,
    is_tensor,
    isclose,
    le,
    less,
    less_equal,
    load,
    log,
    lt,
    matmul,
    maximum,
    mean,
    minimum,
    mm,
    mul,
    multiply,
    ne,
    neg,
    negative,
    not_equal,
    numel,
    pow,
    relu,
    save,
    set_default_dtype,
    set_printoptions,
    sigmoid,
    sin,
    sqrt,
    sub,
    subtract,
    sum,
    tanh,
    true_divide,
)
# Joining, splitting, shape ops and linspace (python/src/shape.c).
from ferry._ferry import (  # noqa: F401,E402
    broadcast_to,
    cat,
    chunk,
    concat,
    concatenate,
    flip,
    fliplr,
    flipud,
    linspace,
    roll,
    tile,
    moveaxis,
    movedim,
    narrow,
    split,
    stack,
    unbind,
)
# Reductions beyond sum/mean (python/src/reduce2.c).
from ferry._ferry import (  # noqa: F401,E402
    all,
    any,
    argmin,
    count_nonzero,
    cumprod,
    cumsum,
    log_softmax,
    logsumexp,
    max,
    min,
    norm,
    prod,
    softmax,
    std,
    var,
)
from ferry import autograd, cuda, nn, opencl  # noqa: E402,F401
from ferry.autograd import (  # noqa: E402,F401
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "Size", "Tensor", "arange", "autograd", "enable_grad", "is_grad_enabled", "no_grad",
    "set_grad_enabled", "backend_status", "bfloat16", "bool", "cuda", "device",
    "device_count", "devices", "double", "dtype", "empty", "eye", "fallback_stats", "float",
    "float16",
    "float32", "float64", "from_dlpack", "from_numpy", "full", "half", "int", "int8",
    "int16", "int32", "int64", "is_available", "long", "ones", "opencl", "short",
    "synchronize", "tensor", "uint8", "zeros",
    "Generator", "bernoulli", "default_generator", "get_rng_state", "initial_seed",
    "manual_seed", "nn", "rand", "rand_like", "randint", "randn", "randn_like", "randperm",
    "seed", "set_rng_state",
]
__all__ += ["all", "any", "argmin", "count_nonzero", "cumprod", "cumsum", "log_softmax",
            "logsumexp", "max", "min", "norm", "nn", "prod", "softmax", "std", "var"]

# Sorting (python/src/sort.c).
from ferry._ferry import argsort, msort, sort, topk  # noqa: E402,F401

__all__ += ["argsort", "msort", "sort", "topk"]

__all__ += [
    "abs",
    "absolute",
    "add",
    "allclose",
    "amax",
    "amin",
    "argmax",
    "as_tensor",
    "bmm",
    "broadcast_shapes",
    "broadcast_tensors",
    "cos",
    "div",
    "divide",
    "einsum",
    "eq",
    "equal",
    "exp",
    "ge",
    "get_default_dtype",
    "greater",
    "greater_equal",
    "gt",
    "is_tensor",
    "isclose",
    "le",
    "less",
    "less_equal",
    "load",
    "log",
    "lt",
    "matmul",
    "maximum",
    "mean",
    "minimum",
    "mm",
    "mul",
    "multiply",
    "ne",
    "neg",
    "negative",
    "not_equal",
    "numel",
    "pow",
    "relu",
    "save",
    "set_default_dtype",
    "set_printoptions",
    "sigmoid",
    "sin",
    "sqrt",
    "sub",
    "subtract",
    "sum",
    "tanh",
    "true_divide",
]

__all__ += [
    "broadcast_to", "cat", "chunk", "concat", "concatenate", "flip", "fliplr", "flipud",
    "moveaxis", "movedim", "narrow", "split", "stack", "unbind", "linspace", "roll", "tile",
    "empty_like", "zeros_like", "ones_like", "full_like",
]


def _like(make, input, dtype, device, requires_grad, *value):
    t = make(*((tuple(input.shape),) + value), dtype=dtype if dtype is not None else input.dtype,
             device=device if device is not None else input.device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    """A new uninitialised tensor of input's shape (and dtype and device by default)."""
    return _like(empty, input, dtype, device, requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    """A new tensor of zeros of input's shape (and dtype and device by default)."""
    return _like(zeros, input, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    """A new tensor of ones of input's shape (and dtype and device by default)."""
    return _like(ones, input, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A new tensor of fill_value of input's shape (and dtype and device by default)."""
    return _like(full, input, dtype, device, requires_grad, fill_value)

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

__all__ += ["gather", "index_select", "scatter", "scatter_add"]
__all__ += ["index_put"]

# Selection, sized by the data (python/src/select.c).
from ferry._ferry import argwhere, masked_scatter, masked_select, nonzero  # noqa: E402,F401

__all__ += ["argwhere", "masked_scatter", "masked_select", "nonzero"]

# `ferry.distributed` after `import ferry`, as torch.distributed after `import torch`
# (pure Python; it joins no job until init_process_group).
from ferry import distributed  # noqa: E402,F401

# Triangles, diagonals and trace (python/src/shape2.c).
from ferry._ferry import diag, diag_embed, diagonal, trace, tril, triu  # noqa: E402,F401

__all__ += ["diag", "diag_embed", "diagonal", "trace", "tril", "triu"]

# Streams and events (python/src/stream.c; DESIGN.md "Queues, events and asynchronous work").
from ferry._ferry import Event, Stream  # noqa: E402,F401
from ferry import _ferry as _ext  # noqa: E402


def current_stream(device):
    """The calling thread's current ferry.Stream of device, or None for its default."""
    return _ext._current_stream(device)


class stream:
    """``with ferry.stream(s):`` makes s the current stream of its device on this thread
    (None: a no-op), as torch.cuda.stream. Leaving goes back to the stream current
    before; when that was the default, every device of the thread goes back to its
    default."""

    def __init__(self, s):
        if s is not None and not isinstance(s, Stream):
            raise TypeError("stream(): expected a ferry.Stream or None, got "
                            + type(s).__name__)
        self.stream = s
        self._prev = None

    def __enter__(self):
        if self.stream is not None:
            self._prev = current_stream(self.stream.device)
            _ext._set_stream(self.stream)
        return self.stream

    def __exit__(self, *exc):
        if self.stream is not None:
            _ext._set_stream(self._prev)
        return False


__all__ += ["Event", "Stream", "current_stream", "stream"]
