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


# DLPack's stream exchange, ferry to ferry on sim's delayed queues (sim's queued variant
# declares kDLExtDev and numbers its default queue 1, as CUDA's legacy stream). Stream a
# has a long queue of delayed copies ending in the write of x; the import runs on stream
# b, which has nothing queued. An event recorded on b after the import is done only
# once b waited for a: that wait is the whole of the export's ordering, so the control
# (stream=-1, no ordering) must see b finish while a still runs.
DLPACK_CHILD = r"""
import ferry
n = 256
h = ferry.arange(n, dtype=ferry.float32)
a, b = ferry.Stream("sim:0"), ferry.Stream("sim:0")

keep = []  # a free waits for its queued work on the host, so nothing queued is freed

def busy_write():
    with ferry.stream(a):
        keep.extend(h.to("sim:0") for _ in range(QUEUED))
        x = h.to("sim:0")
        done = a.record_event()
    return x, done

seen = []
class Producer:
    # another library's array over x: it gets ferry's stream and forwards it
    def __init__(self, x):
        self.x = x
    def __dlpack_device__(self):
        return self.x.__dlpack_device__()
    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        seen.append(stream)
        return self.x.__dlpack__(stream=stream, max_version=max_version)

x, x_done = busy_write()
assert x.__dlpack_device__() == (12, 0)
with ferry.stream(b):
    y = ferry.from_dlpack(Producer(x))
    after = b.record_event()
    # ferry's own record of x would order this clone after a anyway: hence the event first
    z = y.clone()
after.synchronize()
x_done.synchronize()
# b's event runs right after the write it waited for, a's next mark too: within a delay
gap = x_done.elapsed_time(after)
assert gap > -DELAY_MS, "the import's stream did not wait for the producer's write: %g" % gap
assert z.cpu().tolist() == h.tolist()
y_default = ferry.from_dlpack(Producer(x))
assert seen[0] not in (None, -1, 0, 1, 2) and seen[1] == 1, seen

class OldProducer(Producer):
    # DLPack < 1.0: no max_version keyword, but the stream one
    def __dlpack__(self, stream=None):
        seen.append(stream)
        return self.x.__dlpack__(stream=stream)

with ferry.stream(b):
    y_old = ferry.from_dlpack(OldProducer(x))
assert seen[2] == seen[0], seen
assert y_old.cpu().tolist() == h.tolist()

x, x_done = busy_write()
capsule = x.__dlpack__(stream=-1, max_version=(1, 0))
with ferry.stream(b):
    y = ferry.from_dlpack(capsule)
    after = b.record_event()
after.synchronize()
x_done.synchronize()
control = x_done.elapsed_time(after) > -DELAY_MS
# ferry's own records still order ferry's reads of y after a
assert y.cpu().tolist() == h.tolist()

x, x_done = busy_write()
try:
    x.__dlpack__(stream=987654321)
except BufferError as e:
    assert "987654321 is no DLPack stream of this device" in str(e), e
else:
    raise AssertionError("a stream sim does not have was accepted")
ferry.synchronize("sim:0")
del keep[:]
print("ok", control)
"""


def test_dlpack_stream_exchange_on_delayed_queues(sim):
    env = dict(os.environ, FERRY_SIM_QUEUE_DELAY_US=str(DELAY_US))
    code = "QUEUED = 12\nDELAY_MS = %g\n" % (DELAY_US / 1000) + DLPACK_CHILD
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    # b, with nothing queued, finishing long before a's 13 delayed copies (65 ms) shows
    # that the ordering above came from the export's wait and nothing else.
    assert r.stdout.strip() == "ok False"


def test_dlpack_stream_argument_errors(sim):
    t = ferry.ones(3, device=sim)
    with pytest.raises(TypeError, match="stream must be an int or None, got str"):
        t.__dlpack__(stream="1")
    with pytest.raises(TypeError, match="stream must be an int or None, got bool"):
        t.__dlpack__(stream=True)
    with pytest.raises(BufferError, match=r"stream -2 is no DLPack stream"):
        ferry.ones(3).to(sim).__dlpack__(stream=-2)
    with pytest.raises(BufferError, match=r"stream 36893488147419103232 is no DLPack stream"):
        t.__dlpack__(stream=2**65)
    with pytest.raises(BufferError, match="stream must be None for a cpu tensor"):
        ferry.ones(3).__dlpack__(stream=1)
