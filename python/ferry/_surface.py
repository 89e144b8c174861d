"""Module-level functions with torch's names over ferry's existing ops (ferry.add,
ferry.sum, ferry.mm, ferry.einsum, ...), the default dtype, pickling, and
ferry.save/ferry.load in the safetensors format.

The methods themselves are in C (python/src); this file only adds what is easier to
get right in Python: argument juggling, einsum's parsing, and the file format.
"""
import builtins
import collections
import json
import math
import struct
import sys

from ferry import _ferry
from ferry._ferry import Tensor

_bool, _int, _float = builtins.bool, builtins.int, builtins.float

# ---- elementwise and reductions -----------------------------------------------------


def _check_tensor(fn, name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")


# The wrappers below hold the Tensor method they call (looked up once, here) and do no
# more per call than their checks: ferry.add(a, b) must cost about what a.add(b) does.
def _binary(name):
    method = getattr(Tensor, name)

    def f(input, other, *, out=None):
        if not isinstance(input, Tensor):
            if isinstance(other, Tensor):  # torch.add(2, t): the scalar comes first
                input = _ferry.tensor(input, device=other.device)
            else:
                raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, "
                                f"not {type(input).__name__}")
        if out is not None:
            return _ferry._out(name, out, input, other)
        return method(input, other)
    f.__name__ = name
    f.__doc__ = f"{name}(input, other, *, out=None), as torch.{name}"
    return f


def _scaled(other, alpha):
    if alpha is None or (not isinstance(alpha, Tensor) and alpha == 1):
        return other
    return other * alpha


_add, _sub, _div, _pow = (_binary(n) for n in ("add", "sub", "div", "pow"))


def add(input, other, *, alpha=1, out=None):
    """add(input, other, *, alpha=1, out=None): input + alpha * other"""
    return _add(input, _scaled(other, alpha), out=out)


def sub(input, other, *, alpha=1, out=None):
    """sub(input, other, *, alpha=1, out=None): input - alpha * other"""
    return _sub(input, _scaled(other, alpha), out=out)


def div(input, other, *, rounding_mode=None, out=None):
    """div(input, other, *, rounding_mode=None, out=None): true division"""
    if rounding_mode is not None:
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                             f"but found '{rounding_mode}'")
        raise NotImplementedError(f"div(rounding_mode='{rounding_mode}') is not supported yet")
    return _div(input, other, out=out)


def pow(input, exponent, *, out=None):
    """pow(input, exponent, *, out=None)"""
    return _pow(input, exponent, out=out)


mul = _binary("mul")
multiply, subtract, divide, true_divide = mul, sub, div, div
maximum = _binary("maximum")
minimum = _binary("minimum")
eq, ne, lt, le, gt, ge = (_binary(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def _unary(name):
    method = getattr(Tensor, name)

    def f(input, *, out=None):
        _check_tensor(name, "input", input)
        if out is not None:
            return _ferry._out(name, out, input)
        return method(input)
    f.__name__ = name
    f.__doc__ = f"{name}(input, *, out=None), as torch.{name}"
    return f


neg, abs, exp, log, sqrt, sin, cos, tanh, sigmoid, relu = (
    _unary(n) for n in ("neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid",
                        "relu"))
negative, absolute = neg, abs


def _dims(input, dim):
    if dim is None:
        return ()
    if isinstance(dim, (tuple, list)):
        return tuple(dim)
    return (dim,)


def _reduction(name, method):
    bound = getattr(Tensor, method)

    def f(input, dim=None, keepdim=False, *, dtype=None, out=None):
        _check_tensor(name, "input", input)
        if out is not None:
            if dtype is not None:
                input = input.to(dtype)
            return _ferry._reduce_out(method, out, input, _dims(input, dim), keepdim)
        if dim is None and keepdim is False and dtype is None:
            return bound(input)  # the method's own fast path, without its parser
        return bound(input, dim, keepdim=keepdim, dtype=dtype)
    f.__name__ = name
    f.__doc__ = f"{name}(input, dim=None, keepdim=False, *, dtype=None, out=None)"
    return f


sum = _reduction("sum", "sum")
mean = _reduction("mean", "mean")


def _noddtype(name, method):
    bound = getattr(Tensor, method)

    def f(input, dim=None, keepdim=False, *, out=None):
        _check_tensor(name, "input", input)
        if out is not None:
            return _ferry._reduce_out(method, out, input, _dims(input, dim), keepdim)
        return bound(input, dim, keepdim=keepdim)
    f.__name__ = name
    return f


amax = _noddtype("amax", "amax")
amin = _noddtype("amin", "amin")
argmax = _noddtype("argmax", "argmax")

return_types_max = collections.namedtuple("max", ["values", "indices"])
return_types_min = collections.namedtuple("min", ["values", "indices"])


def max(input, dim=None, keepdim=False, *, out=None):
    """max(input), max(input, dim, keepdim=False) -> (values, indices), max(input, other)"""
    _check_tensor("max", "input", input)
    if isinstance(dim, Tensor):
        return maximum(input, dim, out=out)
    if dim is None:
        return input.max()
    return return_types_max(input.amax(dim, keepdim=keepdim), input.argmax(dim, keepdim=keepdim))


def min(input, dim=None, keepdim=False, *, out=None):
    """min(input), min(input, dim, keepdim=False) -> (values, indices), min(input, other)"""
    _check_tensor("min", "input", input)
    if isinstance(dim, Tensor):
        return minimum(input, dim, out=out)
    if dim is None:
        return input.min()
    values = input.amin(dim, keepdim=True)
    # The first position holding the minimum (or a NaN, which the minimum then is), via
    # argmax over a mask: the C API has no argmin.
    hit = input.eq(values)
    if input.dtype.is_floating_point:
        hit = (hit.int() + input.ne(input).int()).gt(0)
    indices = hit.int().argmax(dim, keepdim=keepdim)
    return return_types_min(values if keepdim else values.squeeze(dim), indices)


# ---- matrix products ------------------------------------------------------------------


def matmul(input, other, *, out=None):
    """matmul(input, other, *, out=None), as torch.matmul"""
    _check_tensor("matmul", "input", input)
    if out is not None:
        return _ferry._out("matmul", out, input, other)
    return input.matmul(other)


def mm(input, mat2, *, out=None):
    """mm(input, mat2, *, out=None): a 2-D matrix product, as torch.mm"""
    _check_tensor("mm", "input", input)
    _check_tensor("mm", "mat2", mat2)
    if input.dim() != 2:
        raise RuntimeError(f"mm: self must be a matrix, got {input.dim()}-D tensor")
    if mat2.dim() != 2:
        raise RuntimeError(f"mm: mat2 must be a matrix, got {mat2.dim()}-D tensor")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mm: mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                           f"{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    return matmul(input, mat2, out=out)


def bmm(input, mat2, *, out=None):
    """bmm(input, mat2, *, out=None): batched 3-D matrix products, as torch.bmm"""
    _check_tensor("bmm", "input", input)
    _check_tensor("bmm", "mat2", mat2)
    if input.dim() != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.dim() != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if mat2.shape[0] != input.shape[0] or mat2.shape[1] != input.shape[2]:
        raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{input.shape[0]}, {input.shape[2]}] but got: [{mat2.shape[0]}, "
                           f"{mat2.shape[1]}].")
    return matmul(input, mat2, out=out)


# ---- einsum ---------------------------------------------------------------------------


def _einsum_diag(x, labels):
    """Folds repeated labels of one operand (x 'ii' -> the diagonal, labelled 'i') by
    masking with an identity and summing the repeat away, so autograd follows."""
    while True:
        seen = {}
        for pos, c in enumerate(labels):
            if c in seen:
                break
            seen[c] = pos
        else:
            return x, labels
        p, q = seen[c], pos
        n = x.shape[p]
        shape = [1] * x.dim()
        shape[p] = shape[q] = n
        eye = _ferry.eye(n, dtype=x.dtype, device=x.device).reshape(shape)
        x = (x * eye).sum(q)
        labels = labels[:q] + labels[q + 1:]


def _einsum_sum(x, labels, keep):
    drop = [i for i, c in enumerate(labels) if c not in keep]
    if drop:
        x = x.sum(drop)
        labels = "".join(c for c in labels if c in keep)
    return x, labels


def _einsum_pair(a, la, b, lb, keep):
    """Contracts two operands with one batched matmul: labels in both and kept are batch
    dims, in both and not kept are contracted, the rest stay on their side."""
    a, la = _einsum_sum(a, la, keep + lb)
    b, lb = _einsum_sum(b, lb, keep + la)
    batch = [c for c in la if c in lb and c in keep]
    contr = [c for c in la if c in lb and c not in keep]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    size = {}
    for c, n in list(zip(la, a.shape)) + list(zip(lb, b.shape)):
        size[c] = n

    def prod(cs):
        p = 1
        for c in cs:
            p *= size[c]
        return p

    ap = a.permute(*[la.index(c) for c in batch + left + contr]) if a.dim() else a
    bp = b.permute(*[lb.index(c) for c in batch + contr + right]) if b.dim() else b
    ap = ap.reshape(prod(batch), prod(left), prod(contr))
    bp = bp.reshape(prod(batch), prod(contr), prod(right))
    r = ap.matmul(bp).reshape(*[size[c] for c in batch + left + right])
    return r, "".join(batch + left + right)


def einsum(equation, *operands):
    """einsum(equation, *operands): explicit ('ij,jk->ik') and implicit ('ij,jk')
    equations over any number of operands, with traces and diagonals ('ii->', 'ii->i');
    ellipses are not supported yet."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotImplementedError("einsum(): ellipsis ('...') is not supported yet")
    if "->" in eq:
        lhs, out = eq.split("->")
        explicit = True
    else:
        lhs, out, explicit = eq, None, False
    terms = lhs.split(",")
    for t in terms + ([out] if out else []):
        for c in t:
            if not c.isalpha():
                raise RuntimeError(f"einsum(): invalid subscript given at index "
                                   f"{eq.index(c)} in the equation string, subscripts must be "
                                   "in [a-zA-Z]")
    if len(terms) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                           "equation")
    if len(terms) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    size = {}
    for i, (t, x) in enumerate(zip(terms, operands)):
        _check_tensor("einsum", "operands", x)
        if len(t) != x.dim():
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t)})"
                               f" does not match the number of dimensions ({x.dim()}) for "
                               f"operand {i} and no ellipsis was given")
        for c, n in zip(t, x.shape):
            if c in size and size[c] != n:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for operand {i} "
                                   f"which does not broadcast with previously seen size "
                                   f"{size[c]}")
            size[c] = n
    if not explicit:
        counts = collections.Counter("".join(terms))
        out = "".join(sorted(c for c in counts if counts[c] == 1))
    for c in out:
        if c not in size:
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                               "equation for any input operand")
        if out.count(c) > 1:
            raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                               "the output")
    ops = []
    for t, x in zip(terms, operands):
        ops.append(_einsum_diag(x, t))
    x, lx = ops[0]
    for k in range(1, len(ops)):
        later = "".join(t for _, t in ops[k + 1:])
        x, lx = _einsum_pair(x, lx, ops[k][0], ops[k][1], out + later)
    x, lx = _einsum_sum(x, lx, out)
    if lx != out:
        x = x.permute(*[lx.index(c) for c in out])
    return x


# ---- comparisons of whole tensors -----------------------------------------------------


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False), as torch.isclose"""
    _check_tensor("isclose", "input", input)
    _check_tensor("isclose", "other", other)
    if input.dtype != other.dtype:
        raise RuntimeError(f"{_torch_name(input.dtype)} did not match "
                           f"{_torch_name(other.dtype)}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    same = input.eq(other)
    if input.dtype == _ferry.bool:
        return same
    a, b = input, other
    if not a.dtype.is_floating_point:
        a, b = a.double(), b.double()
    diff = (a - b).abs()
    # Only finite differences count (inf vs -inf is not close), as torch.
    close = diff.le((b.abs() * rtol) + atol).int() * diff.lt(math.inf).int()
    r = same.int() + close
    if equal_nan and a.dtype.is_floating_point:
        r = r + (a.ne(a).int() * b.ne(b).int())
    return r.gt(0)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """allclose(...) -> bool: isclose(...) everywhere"""
    c = isclose(input, other, rtol, atol, equal_nan)
    return _bool(c.numel() == 0 or (c.int().sum().item() == c.numel()))


def equal(input, other):
    """equal(input, other) -> bool: same shape and the same elements (NaN never equal)"""
    _check_tensor("equal", "input", input)
    _check_tensor("equal", "other", other)
    if input.shape != other.shape:
        return False
    return _bool(input.numel() == 0 or input.ne(other).int().sum().item() == 0)


def is_tensor(obj):
    """is_tensor(obj): whether obj is a ferry.Tensor"""
    return isinstance(obj, Tensor)


def numel(input):
    """numel(input): the number of elements"""
    _check_tensor("numel", "input", input)
    return input.numel()


def broadcast_shapes(*shapes):
    """broadcast_shapes(*shapes): the shape all of them broadcast to, as torch"""
    norm = []
    for s in shapes:
        if isinstance(s, _int) or hasattr(s, "__index__"):
            s = (s,)
        s = tuple(operator_index(n) for n in s)
        for n in s:
            if n < 0:
                raise RuntimeError(f"Trying to create tensor with negative dimension {n}: "
                                   f"{list(s)}")
        norm.append(s)
    nd = builtins.max([len(s) for s in norm], default=0)
    result = [1] * nd
    for idx, s in enumerate(norm):
        for i in range(1, len(s) + 1):
            n, r = s[-i], result[-i]
            if n == r or n == 1:
                continue
            if r == 1:
                result[-i] = n
            else:
                raise RuntimeError(f"Attempting to broadcast a dimension of length {n} at "
                                   f"{-i}! Mismatching argument at index {idx} had {s}; but "
                                   f"expected shape should be broadcastable to {result}")
    return _ferry.Size(result)


def operator_index(n):
    import operator
    return operator.index(n)


def broadcast_tensors(*tensors):
    """broadcast_tensors(*tensors): views of each expanded to the common shape"""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for t in tensors:
        _check_tensor("broadcast_tensors", "tensors", t)
    shape = broadcast_shapes(*[t.shape for t in tensors])
    return tuple(t.expand(*shape) for t in tensors)


def as_tensor(data, dtype=None, device=None):
    """as_tensor(data, dtype=None, device=None): data itself when it already is a tensor
    of that dtype and device, NumPy arrays without a copy on cpu, else ferry.tensor"""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype)
    if type(data).__module__ == "numpy" and type(data).__name__ == "ndarray":
        try:
            t = _ferry.from_numpy(data)
        except (TypeError, ValueError):
            t = None
        if t is not None:
            return t.to(device=device, dtype=dtype)
    return _ferry.tensor(data, dtype=dtype, device=device)


# ---- default dtype --------------------------------------------------------------------


def set_default_dtype(d):
    """set_default_dtype(d): the dtype of Python floats in ferry.tensor and of the float
    factories (zeros, ones, full, arange, ...); float32 or float64 only, as torch"""
    if not isinstance(d, _ferry.dtype) or d not in (_ferry.float32, _ferry.float64):
        raise TypeError("only floating-point types are supported as the default type")
    _ferry._set_default_float(d)


def get_default_dtype():
    """get_default_dtype(): the dtype Python floats become (float32 unless set)"""
    return _ferry._get_default_float()


# ---- pickling -------------------------------------------------------------------------


def _host_bytes(t):
    if sys.byteorder != "little":  # the stored format is little-endian
        raise NotImplementedError("saving tensors on a big-endian host is not supported")
    return _ferry._to_bytes(t.detach())


def _rebuild(data, dtype_name, shape, device, requires_grad):
    dt = getattr(_ferry, dtype_name)
    t = _ferry._from_bytes(data, dt, tuple(shape), "cpu")
    if device != "cpu":
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _reduce(t):
    return (_rebuild, (_host_bytes(t), str(t.dtype).split(".")[-1], tuple(t.shape),
                       str(t.device), t.requires_grad))


def _deepcopy(t):
    if not t.is_leaf:
        raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support "
                           "the deepcopy protocol at the moment.")
    fn, args = _reduce(t)
    return fn(*args)


# ---- safetensors save/load ------------------------------------------------------------

_ST_NAMES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "int32": "I32",
    "int64": "I64", "float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64",
}
_ST_DTYPES = {v: k for k, v in _ST_NAMES.items()}
_SINGLE = "__ferry_single_tensor__"  # key when a bare tensor is saved
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


def _torch_name(dt):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16",
            "int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
            "bool": "Bool"}[str(dt).split(".")[-1]]


def save(obj, f):
    """save(obj, f): writes a tensor, or a dict of str -> tensor, to a path or a binary
    file object in the safetensors format (any dtype; non-contiguous tensors densely;
    each tensor's device recorded in the metadata for load's map_location)."""
    single = isinstance(obj, Tensor)
    if single:
        obj = {_SINGLE: obj}
    if not isinstance(obj, dict):
        raise TypeError(f"ferry.save: expected a Tensor or a dict of str to Tensor, not "
                        f"{type(obj).__name__}")
    header, blobs, offset, meta = {}, [], 0, {}
    for k, t in obj.items():
        if not isinstance(k, str):
            raise TypeError(f"ferry.save: dict keys must be str, not {type(k).__name__}")
        if k == "__metadata__":
            raise ValueError("ferry.save: '__metadata__' is reserved by the format")
        if not isinstance(t, Tensor):
            raise TypeError(f"ferry.save: value of '{k}' must be a Tensor, not "
                            f"{type(t).__name__}")
        data = _host_bytes(t)
        header[k] = {"dtype": _ST_NAMES[str(t.dtype).split(".")[-1]], "shape": list(t.shape),
                     "data_offsets": [offset, offset + len(data)]}
        meta["device:" + k] = str(t.device)
        blobs.append(data)
        offset += len(data)
    if single:
        meta["ferry.single"] = "1"
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # aligns the data as the safetensors writer does
    chunks = [struct.pack("<Q", len(h)), h] + blobs
    if hasattr(f, "write"):
        for c in chunks:
            f.write(c)
    else:
        with open(f, "wb") as fh:
            for c in chunks:
                fh.write(c)


def _map_device(saved, map_location):
    if map_location is None:
        return saved
    if isinstance(map_location, dict):
        return map_location.get(saved, saved)
    if callable(map_location) and not isinstance(map_location, (str, _ferry.device)):
        return str(map_location(saved))
    return str(map_location)


def load(f, map_location=None):
    """load(f, map_location=None): reads what save wrote (or any safetensors file):
    a tensor, or a dict of str -> tensor, on its saved device unless map_location (a
    device, a str, a dict old -> new, or a callable) says otherwise."""
    if hasattr(f, "read"):
        raw = f.read()
    else:
        with open(f, "rb") as fh:
            raw = fh.read()
    if len(raw) < 8:
        raise RuntimeError(f"ferry.load: file too short for a safetensors header ({len(raw)} "
                           "bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER or n > len(raw) - 8:
        raise RuntimeError(f"ferry.load: header length {n} exceeds the file's {len(raw) - 8} "
                           "bytes after the length")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"ferry.load: the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError("ferry.load: the header must be a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise ValueError("ferry.load: __metadata__ must be a JSON object")
    data = memoryview(raw)[8 + n:]
    out = {}
    for k, info in header.items():
        if not isinstance(info, dict):
            raise ValueError(f"ferry.load: entry '{k}' must be a JSON object")
        dt, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dt not in _ST_DTYPES:
            raise ValueError(f"ferry.load: entry '{k}' has unsupported dtype {dt!r}")
        if (not isinstance(shape, list) or
                not builtins.all(type(s) is _int and s >= 0 for s in shape)):
            raise ValueError(f"ferry.load: entry '{k}' has an invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or
                not builtins.all(type(o) is _int for o in offs)):
            raise ValueError(f"ferry.load: entry '{k}' has invalid data_offsets {offs!r}")
        b, e = offs
        if not 0 <= b <= e <= len(data):
            raise ValueError(f"ferry.load: entry '{k}' data_offsets [{b}, {e}] out of range "
                             f"of the {len(data)} data bytes")
        dtype = getattr(_ferry, _ST_DTYPES[dt])
        # _from_bytes checks that shape's element count (overflow included) fits e - b.
        t = _ferry._from_bytes(data[b:e], dtype, tuple(shape), "cpu")
        dev = _map_device(meta.get("device:" + k, "cpu"), map_location)
        out[k] = t if dev == "cpu" else t.to(dev)
    if meta.get("ferry.single") == "1" and list(out) == [_SINGLE]:
        return out[_SINGLE]
    return out


# ---- print options --------------------------------------------------------------------

_PRINT_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}
_print_opts = dict(_PRINT_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
    profile=None, sci_mode=None), as torch: a profile ('default', 'short', 'full') sets
    the first four, the arguments given override it, and sci_mode is always set (None:
    chosen per tensor)."""
    new = dict(_print_opts)
    if profile is not None:
        if profile not in _PRINT_PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r} (expected "
                             "'default', 'short' or 'full')")
        new.update(_PRINT_PROFILES[profile])
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            new[k] = v
    new["sci_mode"] = sci_mode
    thr = new["threshold"]
    thr = 2**63 - 1 if thr == math.inf or thr > 2**63 - 1 else _int(thr)
    sci = -1 if sci_mode is None else (1 if sci_mode else 0)
    _ferry._set_print_options(_int(new["precision"]), thr, _int(new["edgeitems"]),
                              _int(new["linewidth"]), sci)
    _print_opts.clear()
    _print_opts.update(new)
