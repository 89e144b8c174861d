"""ferry.nn.functional: torch.nn.functional's names over ferry's C ops (dropout from
python/src/random.c; softmax, the losses and linear from python/src/reduce2.c), with
PyTorch's keywords and defaults."""
from ferry import _ferry

def dropout(input, p=0.5, training=True, inplace=False):
    """torch.nn.functional.dropout: zeroes elements with probability ``p`` (from the
    global generator) and scales the rest by 1 / (1 - p); differentiable. With
    ``training=False`` (or p == 0) returns ``input`` itself."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    out = _ferry._dropout(input, float(p), bool(training))
    if inplace and out is not input:
        input.copy_(out)
        return input
    return out


# ---- softmax, losses and linear (reduce2) ----------------------------------------------


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        # PyTorch's implicit choice, without its deprecation warning.
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return input.softmax(dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return input.log_softmax(dim, dtype=dtype)


def linear(input, weight, bias=None):
    return _ferry._nn_linear(input, weight, bias)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _ferry._nn_mse_loss(input, target, reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    return _ferry._nn_nll_loss(input, target, ignore_index, reduction, 0.0, weight)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    return _ferry._nn_cross_entropy(input, target, ignore_index, reduction,
                                    float(label_smoothing), weight)


# ---- pad (python/src/shape2.c for the constant mode) ----------------------------------

_PAD_SUPPORTED = (
    "Supported combinations for non-constant padding:\n"
    "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
    "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
    "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")


def _pad_source(mode, size, lo, hi):
    """The input position each output position along one dim reads, as torch's reflect
    (about the edge elements, which are not repeated), replicate and circular modes.
    Negative pads crop; circular wraps within what the crop kept, as torch does."""
    if mode == "circular":
        start = max(-lo, 0)
        kept = size - start - max(-hi, 0)
        n = kept + max(lo, 0) + max(hi, 0)
        # torch copies wrapped parts out of what the crop kept; a pad longer than that
        # reads memory torch never wrote, so ferry refuses it as wrapping more than once.
        if n > 0 and (kept <= 0 or lo > kept or hi > kept):
            raise RuntimeError("Padding value causes wrapping around more than once.")
        return [start + (o - max(lo, 0)) % kept for o in range(n)]
    out = []
    for o in range(size + lo + hi):
        i = o - lo
        if mode == "reflect":
            i = -i if i < 0 else (2 * (size - 1) - i if i >= size else i)
        else:
            i = 0 if i < 0 else (size - 1 if i >= size else i)
        out.append(i)
    return out


def pad(input, pad, mode="constant", value=None):
    """torch.nn.functional.pad: ``pad`` lists (before, after) pairs from the last dim
    backwards; negative pads crop. 'constant' fills with ``value`` (0 by default) on any
    number of dims; 'reflect', 'replicate' and 'circular' pad the last 1 to 3 dims of a
    batched or unbatched input, as index_select over the input (so every device runs
    them, and the gradient is index_select's)."""
    import operator

    import ferry

    pad = [operator.index(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension "
            f"but got padding length {len(pad)} and input of dimension {input.ndim}")
    if mode == "constant":
        return _ferry._pad(input, pad, 0.0 if value is None else float(value))
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    k = len(pad) // 2
    nd = input.ndim
    if k not in (1, 2, 3) or nd not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {nd}D input tensor.\n"
            + _PAD_SUPPORTED)
    shape = list(input.shape)
    # reflect and replicate need every non-batch dim non-empty; circular only refuses
    # wrapping more than once (below).
    if mode != "circular" and any(s == 0 for s in shape[0 if nd == k + 1 else 1:]):
        raise RuntimeError(
            f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size "
            f"and other non-zero dimensions for input, but got: [{', '.join(map(str, shape))}]")
    # torch's order: every dim's pad-size check, then the output sizes, then the work.
    dims = [(nd - 1 - j, pad[2 * j], pad[2 * j + 1]) for j in range(k)]
    for j, (dim, lo, hi) in enumerate(dims):
        size = shape[dim]
        if mode == "reflect" and (lo >= size or hi >= size):
            raise RuntimeError(
                f"Argument #{4 + 2 * j}: Padding size should be less than the corresponding "
                f"input dimension, but got: padding ({lo}, {hi}) at dimension {dim} of input "
                f"[{', '.join(map(str, shape))}]")
    if mode == "circular":
        # torch checks the outermost padded dim first, both conditions per dim.
        for dim, lo, hi in reversed(dims):
            if lo > shape[dim] or hi > shape[dim]:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            if shape[dim] + lo + hi < 0:
                raise RuntimeError("Negative padding value is resulting in an empty dimension")
    else:
        outs = [shape[dim] + lo + hi for dim, lo, hi in reversed(dims)]
        if any(o < 1 for o in outs):
            names = "DHW"[3 - k:]
            if k == 1:
                raise RuntimeError(f"input (W: {shape[-1]}) is too small. Calculated output "
                                   f"W: {outs[0]}")
            got = " ".join(f"{c}: {o}" for c, o in zip(names, outs))
            ins = ", ".join(f"{c}: {s}" for c, s in zip(names, shape[nd - k:]))
            raise RuntimeError(f"Calculated output {got} must be >= 1 in every dimension "
                               f"(input {ins})")
    out = input
    for dim, lo, hi in dims:
        idx = ferry.tensor(_pad_source(mode, shape[dim], lo, hi), dtype=ferry.int64,
                           device=input.device)
        out = out.index_select(dim, idx)
    return out
