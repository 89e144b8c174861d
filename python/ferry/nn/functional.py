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


def _no_weight(fn, weight):
    if weight is not None:
        raise NotImplementedError(f"{fn}: class weights are not supported yet")


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
    _no_weight("nll_loss", weight)
    return _ferry._nn_nll_loss(input, target, ignore_index, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    _no_weight("cross_entropy", weight)
    return _ferry._nn_cross_entropy(input, target, ignore_index, reduction,
                                    float(label_smoothing))
