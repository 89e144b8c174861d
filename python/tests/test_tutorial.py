"""python/examples/tutorial.py, the two seed tutorials, runs to the end and says what
they say."""
import os
import pathlib
import subprocess
import sys

TUTORIAL = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tutorial.py"


def test_tutorial_runs():
    r = subprocess.run([sys.executable, str(TUTORIAL)], capture_output=True, text=True,
                       env=os.environ.copy(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    device = out.splitlines()[0].split(": ")[1]
    assert device in ("cuda:0", "opencl:0", "sim:0")
    assert (f"TypeError: can't convert {device} device type tensor to numpy. Use "
            "Tensor.cpu() to copy the tensor to host memory first.") in out
    assert ("RuntimeError: Can't call numpy() on Tensor that requires grad. Use "
            "tensor.detach().numpy() instead.") in out
    assert f"{device} -> cpu" in out
    assert "[0.52 0.42 0.53]" in out
    assert "dtype=ferry.float64)" in out
    assert f"device='{device}', dtype=ferry.float64)" in out
    assert out.count("[[1. 0. 0.]") == 3
