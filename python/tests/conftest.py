"""Shared fixtures of the ferry Python tests: a device whose memory the host cannot
touch (sim, OpenCL or CUDA), and helpers for optional libraries."""
import os

import pytest

import ferry


def _device_memory_not_host():
    """The first non-host device, preferring a real GPU; None when there is none."""
    for dev in ("cuda:0", "opencl:0", "sim:0"):
        if ferry.is_available(dev.split(":")[0]):
            return dev
    return None


@pytest.fixture(scope="session")
def device():
    """A device other than cpu. The build with the sim plugin sets FERRY_TEST_REQUIRE=sim,
    so there a missing device is a failure, never a skip."""
    dev = _device_memory_not_host()
    if dev is None:
        if "sim" in os.environ.get("FERRY_TEST_REQUIRE", ""):
            pytest.fail("sim plugin required but not found: "
                        + str(ferry.backend_status("sim")))
        pytest.skip("no device other than cpu (no sim plugin, OpenCL or CUDA)")
    return dev


@pytest.fixture(scope="session")
def sim():
    """The sim device: host access to its memory is refused, so every message that names
    a device is checked against 'sim:0'."""
    if not ferry.is_available("sim"):
        if "sim" in os.environ.get("FERRY_TEST_REQUIRE", ""):
            pytest.fail("sim plugin required but not found: "
                        + str(ferry.backend_status("sim")))
        pytest.skip("sim plugin not built: " + str(ferry.backend_status("sim")))
    return "sim:0"

