"""ferry.cuda: whether the CUDA backend is usable here, as torch.cuda answers it."""
from ferry import _ferry


def is_available():
    """True when the CUDA plugin loaded and sees at least one device."""
    return _ferry.is_available("cuda")


def device_count():
    """Number of CUDA devices; 0 when the plugin or the driver is missing."""
    return _ferry.device_count("cuda")


def status():
    """None when CUDA is usable, else why not (missing library, driver error, ...)."""
    return _ferry.backend_status("cuda")


def synchronize(device=None):
    """Waits for the work queued on a CUDA device (cuda:0 by default)."""
    _ferry.synchronize(device if device is not None else "cuda:0")
