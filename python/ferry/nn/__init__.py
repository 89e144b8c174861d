"""ferry.nn: torch.nn's functional layer (``ferry.nn.functional``)."""
from ferry.nn import functional  # noqa: F401

__all__ = ["functional"]
