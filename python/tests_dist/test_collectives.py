"""ferry.distributed on several processes: every function, with exact values each rank
computes for itself. ctest runs this file under `mpirun -np 2` and `-np 3` (every rank
runs the same tests in the same order; the collectives pair up across ranks), with a
short FERRY_DIST_TIMEOUT so that a rank that fails an assertion between two collectives
turns the others' wait into a failure naming it, not a hang.

    mpirun -np 2 python -m pytest -q -p no:cacheprovider python/tests_dist

The single-process parts (before init, the launcher) are python/tests/test_distributed.py.
"""
import datetime
import os

import pytest

import ferry
import ferry.distributed as dist

DEVICES = ["cpu", "sim:0", "opencl:0"]


def _device_or_skip(dev):
    kind = dev.split(":")[0]
    if kind != "cpu" and not ferry.is_available(kind):
        required = os.environ.get("FERRY_TEST_REQUIRE", "")
        if kind in required:
            pytest.fail(f"{dev} required but not usable: {ferry.backend_status(kind)}")
        pytest.skip(f"{dev} not usable: {ferry.backend_status(kind)}")
    return dev


# ---- before init (every rank alone) ----------------------------------------------------

def test_before_init():
    assert dist.is_available()
    assert not dist.is_initialized()
    msg = ("Default process group has not been initialized, please make sure to call "
           "init_process_group.")
    t = ferry.ones(2)
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(t), lambda: dist.broadcast(t, 0),
                 lambda: dist.send(t, 0), lambda: dist.new_group([0])):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == msg


def test_init_refuses_bad_arguments():
    with pytest.raises(AssertionError, match="Unknown backend type gloo"):
        dist.init_process_group("gloo")
    with pytest.raises(ValueError, match="init_method='tcp://x:1' is not supported"):
        dist.init_process_group("mpi", init_method="tcp://x:1")
    with pytest.raises(TypeError, match="datetime.timedelta"):
        dist.init_process_group("mpi", timeout=30)
    assert not dist.is_initialized()


def test_init():
    # Shorter than ctest's limit, longer than any test here.
    dist.init_process_group(backend="mpi", timeout=datetime.timedelta(seconds=60))
    assert dist.is_initialized()
    assert dist.get_backend() == "mpi"
    n = dist.get_world_size()
    assert n == int(os.environ.get("OMPI_COMM_WORLD_SIZE", n)) and n >= 2
    assert 0 <= dist.get_rank() < n
    assert dist.get_rank() == int(os.environ.get("OMPI_COMM_WORLD_RANK", dist.get_rank()))
    with pytest.raises(ValueError, match="trying to initialize the default process group "
                                         "twice!"):
        dist.init_process_group("mpi")


# ---- after init ------------------------------------------------------------------------

def rank():
    return dist.get_rank()


def world():
    return dist.get_world_size()


@pytest.mark.parametrize("op,expect", [
    (dist.ReduceOp.SUM, lambda v: sum(v)),
    (dist.ReduceOp.AVG, lambda v: sum(v) / len(v)),
    (dist.ReduceOp.PRODUCT, lambda v: __import__("math").prod(v)),
    (dist.ReduceOp.MIN, min),
    (dist.ReduceOp.MAX, max),
], ids=["SUM", "AVG", "PRODUCT", "MIN", "MAX"])
def test_all_reduce_ops(op, expect):
    # rank r holds [r + 1, 2 - r, 0.5 * r]: every op has a different answer.
    def row(r):
        return [r + 1.0, 2.0 - r, 0.5 * r]
    t = ferry.tensor(row(rank()), dtype=ferry.float64)
    assert dist.all_reduce(t, op=op) is None
    want = [expect([row(r)[i] for r in range(world())]) for i in range(3)]
    assert t.tolist() == want


def test_all_reduce_int_and_bool():
    t = ferry.tensor([rank() + 1, -7], dtype=ferry.int32)
    dist.all_reduce(t)  # op defaults to SUM
    assert t.tolist() == [world() * (world() + 1) // 2, -7 * world()]
    b = ferry.tensor([rank() == 0, True, False])
    dist.all_reduce(b, op=dist.ReduceOp.MAX)
    assert b.tolist() == [True, True, False]
    b = ferry.tensor([rank() == 0, True, False])
    dist.all_reduce(b, op=dist.ReduceOp.MIN)
    assert b.tolist() == [False, True, False]


@pytest.mark.parametrize("dev", DEVICES)
def test_all_reduce_broadcast_gather_on_device(dev):
    _device_or_skip(dev)
    r, n = rank(), world()
    t = ferry.tensor([[r, 10 * r], [1, 2]], dtype=ferry.float32, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    s = n * (n - 1) / 2
    assert str(t.device) == dev
    assert t.tolist() == [[s, 10 * s], [n, 2 * n]]
    b = ferry.full((5,), float(r), device=dev)
    dist.broadcast(b, src=n - 1)
    assert b.tolist() == [n - 1.0] * 5
    out = ferry.zeros(2 * n, dtype=ferry.int64, device=dev)
    dist.all_gather_into_tensor(out, ferry.tensor([r, -r], device=dev))
    assert out.tolist() == [v for q in range(n) for v in (q, -q)]


def test_broadcast_and_reduce():
    r, n = rank(), world()
    t = ferry.tensor([r, r * r], dtype=ferry.float32)
    dist.broadcast(t, 1)
    assert t.tolist() == [1.0, 1.0]
    t = ferry.tensor([r + 1.0])
    dist.reduce(t, dst=0, op=dist.ReduceOp.PRODUCT)
    import math
    assert t.tolist() == ([float(math.factorial(n))] if r == 0 else [r + 1.0])
    # group_src: a rank within the group.
    t = ferry.tensor([float(r)])
    dist.broadcast(t, group_src=n - 1)
    assert t.tolist() == [n - 1.0]


def test_async_op_returns_completed_work():
    t = ferry.ones(3)
    w = dist.all_reduce(t, async_op=True)
    assert isinstance(w, dist.Work) and w.is_completed() and w.wait()
    assert t.tolist() == [float(world())] * 3
    assert dist.barrier(async_op=True).wait()


def test_all_gather_list():
    r, n = rank(), world()
    outs = [ferry.zeros(2, 2) for _ in range(n)]
    dist.all_gather(outs, ferry.tensor([[r, 1.0], [2.0, r]]))
    assert [o.tolist() for o in outs] == [[[q, 1.0], [2.0, q]] for q in range(n)]
    with pytest.raises(RuntimeError, match=f"tensor_list has 1 tensors, the group has {n}"):
        dist.all_gather([ferry.zeros(2, 2)], ferry.zeros(2, 2))


def test_reduce_scatter_tensor():
    r, n = rank(), world()
    # block b of rank q's input is [q + b, 100 * b]; rank r gets the sum of its block.
    inp = ferry.tensor([[q + b, 100.0 * b] for b in range(n) for q in [r]])
    out = ferry.zeros(1, 2)
    dist.reduce_scatter_tensor(out, inp)
    assert out.tolist() == [[sum(q + r for q in range(n)), 100.0 * r * n]]
    out = ferry.zeros(1, 2)
    dist.reduce_scatter_tensor(out, inp, op=dist.ReduceOp.MAX)
    assert out.tolist() == [[n - 1.0 + r, 100.0 * r]]


def test_all_to_all_single():
    r, n = rank(), world()
    # block b of rank r's input is 10 * r + b; rank r gets block r of every rank.
    inp = ferry.tensor([10 * r + b for b in range(n) for _ in range(2)], dtype=ferry.int16)
    out = ferry.zeros(2 * n, dtype=ferry.int16)
    dist.all_to_all_single(out, inp)
    assert out.tolist() == [10 * q + r for q in range(n) for _ in range(2)]


def _uneven(q, b):
    """Rows rank q sends to rank b: 0 on the diagonal of rank 0, else q + 2 * b + 1."""
    return 0 if q == b == 0 else q + 2 * b + 1


@pytest.mark.parametrize("dev", DEVICES)
def test_all_to_all_single_uneven(dev):
    _device_or_skip(dev)
    r, n = rank(), world()
    # Rank r's rows for rank b hold 100 * r + b, in pairs of columns (dim 1 travels too).
    sizes_in = [_uneven(r, b) for b in range(n)]
    sizes_out = [_uneven(q, r) for q in range(n)]
    rows = [[100 * r + b, k] for b in range(n) for k in range(sizes_in[b])]
    inp = ferry.tensor(rows, dtype=ferry.float32).to(dev)
    out = ferry.zeros(sum(sizes_out), 2, dtype=ferry.float32).to(dev)
    dist.all_to_all_single(out, inp, output_split_sizes=sizes_out,
                           input_split_sizes=sizes_in)
    assert out.tolist() == [[100 * q + r, k] for q in range(n) for k in range(sizes_out[q])]
    # One side given: the other splits evenly (here the input: n rows, one per rank).
    inp = ferry.tensor([[10 * r + b, 0] for b in range(n)], dtype=ferry.float32).to(dev)
    out = ferry.zeros(n, 2, dtype=ferry.float32).to(dev)
    dist.all_to_all_single(out, inp, output_split_sizes=[1] * n)
    assert out.tolist() == [[10 * q + r, 0] for q in range(n)]


def test_all_to_all_single_bad_splits():
    n = world()
    inp, out = ferry.zeros(2 * n), ferry.zeros(2 * n)
    with pytest.raises(RuntimeError, match="Number of tensor splits not equal to group size"):
        dist.all_to_all_single(out, inp, input_split_sizes=[2 * n])
    with pytest.raises(RuntimeError, match="Split sizes doesn't match total dim 0 size"):
        dist.all_to_all_single(out, inp, input_split_sizes=[2 * n + 1] + [0] * (n - 1))
    with pytest.raises(RuntimeError, match=r"input_split_sizes\[0\] is -1, negative"):
        dist.all_to_all_single(out, inp, input_split_sizes=[-1] + [0] * (n - 2) + [2 * n + 1])
    with pytest.raises(TypeError, match="must hold ints"):
        dist.all_to_all_single(out, inp, output_split_sizes=[2.0] * n)
    with pytest.raises(RuntimeError, match="agree in every dimension but 0"):
        dist.all_to_all_single(ferry.zeros(n, 2), ferry.zeros(n, 3), output_split_sizes=[1] * n)
    # The ranks still agree after the refusals.
    t = ferry.ones(1)
    dist.all_reduce(t)
    assert t.tolist() == [float(n)]


@pytest.mark.parametrize("dev", DEVICES)
def test_recv_from_any_rank(dev):
    _device_or_skip(dev)
    r, n = rank(), world()
    # Every other rank sends rank 0 two messages; rank 0 takes them as they come and
    # learns each sender, whose two messages keep their order.
    if r == 0:
        seen = {}
        for _ in range(2 * (n - 1)):
            t = ferry.zeros(3, dtype=ferry.int32).to(dev)
            src = dist.recv(t, tag=7)
            assert src != 0 and t.tolist()[0] == src
            seen.setdefault(src, []).append(t.tolist()[1])
        assert seen == {q: [0, 1] for q in range(1, n)}
        empty = ferry.zeros(0).to(dev)
        assert dist.recv(empty, tag=8) == n - 1  # an empty tensor names its sender too
    else:
        for k in range(2):
            dist.send(ferry.tensor([r, k, 5], dtype=ferry.int32).to(dev), 0, tag=7)
        if r == n - 1:
            dist.send(ferry.zeros(0).to(dev), 0, tag=8)
    with pytest.raises(NotImplementedError, match="with a group"):
        dist.recv(ferry.zeros(1), group=dist.new_group(list(range(n))))
    dist.barrier()


def test_send_recv_in_order():
    r, n = rank(), world()
    # A ring: each rank sends two messages with one tag and one with another; the
    # receiver takes them in the order sent per tag.
    right, left = (r + 1) % n, (r - 1) % n
    if r % 2 == 0:
        for k in range(2):
            dist.send(ferry.tensor([r, k]), right, tag=3)
        dist.send(ferry.tensor([r, 9]), dst=right, tag=4)
    got = []
    for tag in (3, 3, 4):
        t = ferry.zeros(2, dtype=ferry.int64)
        assert dist.recv(t, src=left, tag=tag) == left
        got.append(t.tolist())
    if r % 2 == 1:
        for k in range(2):
            dist.send(ferry.tensor([r, k]), right, tag=3)
        dist.send(ferry.tensor([r, 9]), dst=right, tag=4)
    assert got == [[left, 0], [left, 1], [left, 9]]
    dist.barrier()


def test_new_group():
    r, n = rank(), world()
    g = dist.new_group([n - 1, 0])
    member = r in (0, n - 1)
    assert dist.get_rank(g) == ({0: 0, n - 1: 1}[r] if member else -1)
    assert dist.get_world_size(g) == (2 if member else -1)
    assert dist.get_process_group_ranks(g) == [0, n - 1]
    t = ferry.tensor([r + 1.0])
    assert dist.all_reduce(t, group=g) is None
    assert t.tolist() == ([1.0 + n] if member else [r + 1.0])  # non-members: untouched
    t = ferry.tensor([float(r)])
    dist.broadcast(t, group=g, group_src=1)
    assert t.tolist() == ([n - 1.0] if member else [float(r)])
    dist.barrier(group=g)
    assert dist.new_group() is not None  # the whole world
    with pytest.raises(ValueError, match=r"ranks list must not contain duplicate entries, "
                                         r"got \[0, 0\]"):
        dist.new_group([0, 0])
    with pytest.raises(ValueError, match="less or equal to the world size"):
        dist.new_group(list(range(n + 1)))
    with pytest.raises(ValueError, match=f"rank {n} is not in the world"):
        dist.new_group([0, n])


# ---- errors after init -----------------------------------------------------------------

def test_errors():
    r, n = rank(), world()
    t = ferry.ones(2)
    with pytest.raises(TypeError, match="op must be a ferry.distributed.ReduceOp"):
        dist.all_reduce(t, op="sum")
    with pytest.raises(TypeError, match="op must be a ferry.distributed.ReduceOp"):
        dist.all_reduce(t, op=0)
    with pytest.raises(TypeError, match="Expected parameter `tensor` of type ferry.Tensor"):
        dist.all_reduce([t])
    with pytest.raises(RuntimeError) as e:
        dist.broadcast(t, n + 2)
    assert str(e.value) == f"ferry_broadcast: Invalid rank {n + 2} (the world has ranks 0 .. " \
                           f"{n - 1})"
    with pytest.raises(RuntimeError, match=f"ferry_reduce: Invalid rank -1"):
        dist.reduce(t, dst=-1)
    with pytest.raises(ValueError, match="destination rank should not be the same"):
        dist.send(t, r)
    with pytest.raises(RuntimeError, match=f"ferry_send: Invalid destination rank {n}"):
        dist.send(t, n)
    with pytest.raises(NotImplementedError, match="Cannot use ReduceOp.AVG with boolean"):
        dist.all_reduce(ferry.ones(2, dtype=ferry.bool), op=dist.ReduceOp.AVG)
    with pytest.raises(RuntimeError, match="Tensors must be contiguous"):
        dist.all_reduce(ferry.ones(2, 2).t())
    with pytest.raises(RuntimeError, match="output tensor must have the same type"):
        dist.all_gather_into_tensor(ferry.zeros(2 * n, dtype=ferry.float64), t)
    with pytest.raises(ValueError, match="give exactly one of src and group_src"):
        dist.broadcast(t, 0, group_src=0)
    # The ranks still agree after the refusals.
    dist.all_reduce(t)
    assert t.tolist() == [float(n)] * 2


def test_gil_released_during_collectives():
    # While rank 0 waits in the barrier for the last rank (which sleeps first), another
    # Python thread of rank 0 keeps running.
    import threading
    import time
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    th = threading.Thread(target=tick)
    th.start()
    dist.barrier()  # line the ranks up, so rank 0 surely waits about a second below
    if rank() == world() - 1:
        time.sleep(1.0)
    before = len(ticks)
    dist.barrier()
    waited = len(ticks) - before
    stop.set()
    th.join()
    if rank() == 0:
        assert waited >= 10, f"the other thread ran {waited} times during the barrier"


def test_destroy_process_group():
    g = dist.new_group([0, 1])
    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.all_reduce(ferry.ones(1))
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank(g)
    with pytest.raises(AssertionError, match="Process group cannot be None"):
        dist.destroy_process_group()
