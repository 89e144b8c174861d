"""ferry.nn.functional: PyTorch's torch.nn.functional names over ferry's C ops."""
from ferry import _ferry

__all__ = ["dropout"]


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
