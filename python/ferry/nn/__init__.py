"""ferry.nn: what PyTorch's torch.nn offers that ferry has so far (functional)."""
from ferry.nn import functional  # noqa: F401

__all__ = ["functional"]
