"""ferry.autograd: grad mode (no_grad, enable_grad, set_grad_enabled) as context managers
and decorators, and grad(), as torch.autograd. Grad mode is per thread."""
import functools

from ferry import _ferry

is_grad_enabled = _ferry.is_grad_enabled


class _GradMode:
    """Base of the grad-mode switches: a context manager, and a decorator that runs the
    function under a fresh instance of the same switch."""

    _mode = None

    def __enter__(self):
        self._prev = _ferry._set_grad_enabled(self._mode)
        return None

    def __exit__(self, exc_type, exc, tb):
        _ferry._set_grad_enabled(self._prev)
        return False

    def _fresh(self):
        return type(self)()

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return func(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Ops inside record nothing: results do not require grad, and in-place updates of
    leaves (an SGD step) are allowed."""

    _mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a no_grad block."""

    _mode = True


class set_grad_enabled(_GradMode):
    """set_grad_enabled(mode): sets the mode at once (as a plain call), and restores the
    previous one when used as a context manager that exits."""

    def __init__(self, mode):
        self._mode = bool(mode)
        self._prev = _ferry._set_grad_enabled(self._mode)

    def __enter__(self):
        return None

    def _fresh(self):
        return set_grad_enabled(self._mode)

    def __call__(self, func):
        # Used as a decorator the constructor has switched the mode already: undo that.
        _ferry._set_grad_enabled(self._prev)
        return super().__call__(func)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False):
    """torch.autograd.grad: a tuple with the gradient of outputs for each of inputs."""
    return _ferry._grad(outputs, inputs, grad_outputs, retain_graph, create_graph)


__all__ = ["enable_grad", "grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
