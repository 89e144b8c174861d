"""ferry.opencl: whether the OpenCL backend is usable here, in torch.cuda's words."""
from ferry import _ferry


def is_available():
    """True when the OpenCL plugin loaded and sees at least one device."""
    return _ferry.is_available("opencl")


def device_count():
    """Number of OpenCL devices; 0 when the plugin or the ICD loader is missing."""
    return _ferry.device_count("opencl")


def status():
    """None when OpenCL is usable, else why not."""
    return _ferry.backend_status("opencl")


def synchronize(device=None):
    """Waits for the work queued on an OpenCL device (opencl:0 by default)."""
    _ferry.synchronize(device if device is not None else "opencl:0")
