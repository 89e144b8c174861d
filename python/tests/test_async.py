"""Streams, events, non_blocking copies and pinned memory. The ordering checks run in a
child process with sim's delayed queue (FERRY_SIM_QUEUE_DELAY_US, read when sim loads):
every copy waits before it runs, so a read that does not wait for its writer sees wrong
values. They run on opencl:0 and cuda:0 too, with tensors large enough to keep their
queues busy (times are checked on sim only)."""
import os
import subprocess
import sys

import pytest

import ferry

CHILD = r"""
import ferry
n = 4096 * SCALE
h = ferry.arange(n, dtype=ferry.float32)
p = h.pin_memory(DEV)
assert p.is_pinned() and not h.is_pinned()
d = p.to(DEV, non_blocking=True)
back = d.to("cpu", non_blocking=True)
assert back.is_pinned()
assert back.tolist() == h.tolist(), "read did not wait for the async write"
s1, s2 = ferry.Stream(DEV), ferry.Stream(DEV)
with ferry.stream(s1):
    assert ferry.current_stream(DEV) is not None
    a = h.to(DEV)
    a2 = a.clone()
    e1 = s1.record_event()
s2.wait_event(e1)
e2 = s2.record_event()
e2.synchronize()
assert e1.query(), "wait_event did not order s2 after s1"
assert ferry.current_stream(DEV) is None
with ferry.stream(s2):
    b = a2.clone()
assert b.cpu().tolist() == h.tolist()
start = ferry.Event(DEV)
start.record()
c = h.to(DEV)
end = ferry.Event(DEV)
end.record()
end.synchronize()
assert end.query()
assert start.elapsed_time(end) >= 0.9 * DELAY_MS, start.elapsed_time(end)
assert start.elapsed_time(end) == start.elapsed_time(end)
del p, d, a, a2, b, c
ferry.synchronize(DEV)
print("ok")
"""

DELAY_US = 5000


@pytest.mark.parametrize("dev", ["sim:0", "opencl:0", "cuda:0"])
def test_ordering_with_a_delayed_queue(sim, dev):
    kind = dev.split(":")[0]
    if kind != "sim" and not ferry.is_available(kind):
        why = kind + ": " + str(ferry.backend_status(kind))
        if kind in os.environ.get("FERRY_TEST_REQUIRE", ""):
            pytest.fail("required (FERRY_TEST_REQUIRE) but unusable: " + why)
        pytest.skip(why)
    env = dict(os.environ, FERRY_SIM_QUEUE_DELAY_US=str(DELAY_US))
    delayed = dev.startswith("sim")
    code = "DEV = %r\nSCALE = %d\nDELAY_MS = %g\n" % (
        dev, 1 if delayed else 256, DELAY_US / 1000 if delayed else 0) + CHILD
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_synchronous_backends_and_errors(sim):
    s = ferry.Stream("cpu")
    assert s.device == ferry.device("cpu")
    with ferry.stream(s):
        e = ferry.Event()
        e.record(s)
        assert e.query()
        s.synchronize()
    assert ferry.current_stream("cpu") is None
    with ferry.stream(None):
        pass
    with pytest.raises(TypeError):
        ferry.stream("cpu")
    with pytest.raises(TypeError):
        s.wait_event(3)
    with pytest.raises(ValueError):
        ferry.Event().record()
    with pytest.raises(RuntimeError, match="Both events must be recorded"):
        ferry.Event("cpu").elapsed_time(ferry.Event("cpu"))
    with pytest.raises(RuntimeError):
        ferry.Stream("nosuch:0")
    t = ferry.ones(3, device=sim)
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        t.pin_memory()
    with pytest.raises(RuntimeError, match="offers no pinned host memory"):
        ferry.ones(3).pin_memory("cpu")
    assert t.to("cpu", non_blocking=True).tolist() == [1.0, 1.0, 1.0]
