"""ferry.distributed: collectives across processes with torch.distributed's names.

Start the processes with a launcher, then join the job once in each::

    python -m ferry.distributed.run -n 2 train.py      # or: mpirun -np 2 python train.py

    import ferry, ferry.distributed as dist
    dist.init_process_group()                 # backend=None: nccl for CUDA, else mpi
    t = ferry.ones(4, device="opencl:0")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # in place, on every rank
    dist.destroy_process_group()

Rank and world size come from the launcher (mpirun's environment); a script started
without one is a world of one. Tensors may live on any device; see ../shared/API.md,
"Several processes", and ferry/distributed.h for what the C library does underneath.

Where ferry differs from torch.distributed:
- every collective completes before it returns; ``async_op=True`` returns an already
  completed :class:`Work` (``wait()`` returns True at once);
- ``recv`` needs ``src`` (receiving from any rank is not supported), ``all_to_all_single``
  takes equal splits only;
- the rendezvous is the launcher's: ``init_method`` may only be None or ``"env://"``,
  ``store`` only None, and ``rank``/``world_size``, when given, must be what the launcher
  started.
"""
import datetime as _datetime
import enum as _enum
import os as _os

from ferry import _ferry
from ferry._ferry import Tensor as _Tensor

__all__ = [
    "ReduceOp", "Work", "ProcessGroup", "GroupMember", "is_available", "is_initialized",
    "is_mpi_available", "is_nccl_available", "init_process_group", "destroy_process_group",
    "get_backend", "get_rank", "get_world_size", "new_group", "get_process_group_ranks",
    "all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor",
    "reduce_scatter_tensor", "all_to_all_single", "send", "recv", "barrier",
]

_NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to "
                    "call init_process_group.")


class _RedOpType(_enum.IntEnum):
    # The numbers are torch's RedOpType's and ferry_dist_op's alike.
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4

    def __repr__(self):
        return f"<RedOpType.{self.name}: {self.value}>"

    def __str__(self):
        return f"RedOpType.{self.name}"


_RedOpType.__name__ = _RedOpType.__qualname__ = "RedOpType"


class ReduceOp:
    """The reductions of all_reduce, reduce and reduce_scatter_tensor (torch's
    ``ReduceOp.SUM`` etc.). For bool tensors SUM and MAX are a logical or, PRODUCT and MIN
    a logical and; AVG of a bool tensor is refused, AVG of an integer tensor truncates."""
    RedOpType = _RedOpType
    SUM = _RedOpType.SUM
    AVG = _RedOpType.AVG
    PRODUCT = _RedOpType.PRODUCT
    MIN = _RedOpType.MIN
    MAX = _RedOpType.MAX


class Work:
    """What a collective with ``async_op=True`` returns: ferry's collectives have already
    completed when they return, so this one is done."""

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True

    def is_success(self):
        return True

    def __repr__(self):
        return "<ferry.distributed.Work (completed)>"


class ProcessGroup:
    """A group of world ranks made by new_group (collective over the whole world)."""

    def __init__(self, handle, ranks):
        self._handle = handle
        self._ranks = list(ranks)

    def rank(self):
        return _ferry._dist_group_info(self._handle)[0]

    def size(self):
        return len(self._ranks)

    def __repr__(self):
        return f"<ferry.distributed.ProcessGroup ranks={self._ranks}>"


class GroupMember:
    """torch's sentinels: ``GroupMember.WORLD`` is the default group (None here too)."""
    WORLD = None
    NON_GROUP_MEMBER = -100


def _check_initialized():
    if not _ferry._dist_is_initialized():
        raise ValueError(_NOT_INITIALIZED)


def _handle(group, fn):
    """The C handle of group (None: the world), after the before-init check."""
    _check_initialized()
    if group is None:
        return None
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"{fn}(): group must be a ferry.distributed.ProcessGroup or None, "
                        f"got {type(group).__name__}")
    return group._handle


def _not_member(group):
    return group is not None and group.rank() < 0


def _tensor(t, name="tensor"):
    if not isinstance(t, _Tensor):
        raise TypeError("Invalid function argument. Expected parameter "
                        f"`{name}` of type ferry.Tensor\n             but got "
                        f"{type(t)} instead.")
    return t


def _op(op, fn):
    if not isinstance(op, _RedOpType):
        raise TypeError(f"{fn}(): op must be a ferry.distributed.ReduceOp (such as "
                        f"ReduceOp.SUM), got {op!r}")
    return int(op)


def _rank_arg(value, name, fn):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}(): {name} must be an int rank, got {type(value).__name__}")
    return value


def _global_rank(group, rank, group_rank, name, fn):
    """torch's src/dst (world rank) or group_src/group_dst (rank within group), exactly
    one of them."""
    if (rank is None) == (group_rank is None):
        raise ValueError(f"{fn}(): give exactly one of {name} and group_{name}")
    if rank is not None:
        return _rank_arg(rank, name, fn)
    _rank_arg(group_rank, "group_" + name, fn)
    ranks = group._ranks if group is not None else list(range(get_world_size()))
    if not 0 <= group_rank < len(ranks):
        raise ValueError(f"{fn}(): group_{name} {group_rank} is not a rank of the group "
                         f"(it has {len(ranks)})")
    return ranks[group_rank]


def _done(async_op):
    return Work() if async_op else None


# ---- setup ---------------------------------------------------------------------------

def is_available():
    """Whether ferry was built with ferry.distributed (always); see is_mpi_available
    and is_nccl_available for the engines."""
    return True


def _backend_status(name):
    for n, why in _ferry._dist_backends():
        if n == name:
            return why
    return f"no libferry-comm-{name}.so found"


def is_mpi_available():
    return _backend_status("mpi") is None


def is_nccl_available():
    return _backend_status("nccl") is None


def is_initialized():
    return _ferry._dist_is_initialized()


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1,
                       rank=-1, store=None, group_name="", pg_options=None,
                       device_id=None):
    """Joins the job the launcher started. backend: "mpi" (every device), "nccl" (CUDA
    tensors through NCCL, the rest through MPI) or None (nccl when a CUDA device and NCCL
    are usable, else mpi). timeout (a datetime.timedelta) bounds how long a collective
    waits for a peer before the process fails naming it (FERRY_DIST_TIMEOUT, default
    300 s). group_name, pg_options and device_id are accepted and unused."""
    if _ferry._dist_is_initialized():
        raise ValueError("trying to initialize the default process group twice!")
    if backend is not None:
        if not isinstance(backend, str):
            raise TypeError(f"init_process_group(): backend must be a str or None, got "
                            f"{type(backend).__name__}")
        name = backend.lower()
        if name not in ("mpi", "nccl"):
            # torch's type and words, with what ferry has.
            raise AssertionError(f"Unknown backend type {backend} (ferry.distributed has "
                                 "'mpi' for every device and 'nccl' for CUDA tensors)")
        backend = name
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group(): init_method={init_method!r} is not "
                         "supported: ferry takes rank and world size from the launcher "
                         "(python -m ferry.distributed.run, or mpirun)")
    if store is not None:
        raise ValueError("init_process_group(): store is not supported: ferry's "
                         "rendezvous is the launcher's (mpirun)")
    for name, v in (("world_size", world_size), ("rank", rank)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"init_process_group(): {name} must be an int, got "
                            f"{type(v).__name__}")
    if timeout is not None:
        if not isinstance(timeout, _datetime.timedelta):
            raise TypeError("Expected timeout argument to be of type datetime.timedelta")
        secs = timeout.total_seconds()
        if not secs > 0:
            raise ValueError(f"init_process_group(): timeout must be positive, got "
                             f"{timeout}")
        # Read by ferry_dist_init; every rank passes the same timeout.
        _os.environ["FERRY_DIST_TIMEOUT"] = repr(secs)
    _ferry._dist_init(backend)
    r, n = _ferry._dist_group_info(None)
    bad = None
    if world_size not in (-1, n):
        bad = f"world_size={world_size}, but the launcher started {n} process(es)"
    elif rank not in (-1, r):
        bad = f"rank={rank}, but the launcher made this process rank {r}"
    if bad:
        _ferry._dist_finalize()
        raise ValueError(f"init_process_group(): {bad} (ferry takes both from mpirun)")


def destroy_process_group(group=None):
    """Leaves the job (group None), freeing every group; a group alone stays until then,
    as its handle is shared by the ranks."""
    if group is not None:
        _handle(group, "destroy_process_group")
        return
    if not _ferry._dist_is_initialized():
        # torch's type and words for destroying what was never made.
        raise AssertionError("Process group cannot be None")
    _ferry._dist_finalize()


def get_backend(group=None):
    _handle(group, "get_backend")
    return _ferry._dist_backend()


def get_rank(group=None):
    """This process's rank in group (None: the world); -1 when not a member."""
    return _ferry._dist_group_info(_handle(group, "get_rank"))[0]


def get_world_size(group=None):
    """The number of ranks in group (None: the world); -1 when this rank is not a
    member, as torch."""
    r, n = _ferry._dist_group_info(_handle(group, "get_world_size"))
    return -1 if r < 0 else n


def get_process_group_ranks(group):
    _handle(group, "get_process_group_ranks")
    return list(range(get_world_size())) if group is None else list(group._ranks)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization=False, group_desc=None, device_id=None):
    """A group of world ranks; every rank calls it with the same list (members or not).
    ranks None: the whole world."""
    _check_initialized()
    world = get_world_size()
    ranks = list(range(world)) if ranks is None else list(ranks)
    for r in ranks:
        _rank_arg(r, "ranks", "new_group")
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"ranks list must not contain duplicate entries, got {ranks}")
    if len(ranks) > world:
        raise ValueError("the new group's world size should be less or equal to the "
                         "world size set by init_process_group")
    for r in ranks:
        if not 0 <= r < world:
            raise ValueError(f"new_group(): rank {r} is not in the world (ranks 0 .. "
                             f"{world - 1})")
    if backend is not None and str(backend).lower() != _ferry._dist_backend():
        raise ValueError(f"new_group(): backend={backend!r} differs from the default "
                         f"group's {_ferry._dist_backend()!r}; ferry groups share it")
    return ProcessGroup(_ferry._dist_new_group(ranks), sorted(ranks))


def barrier(group=None, async_op=False, device_ids=None):
    h = _handle(group, "barrier")
    if not _not_member(group):
        _ferry._dist_barrier(h)
    return _done(async_op)


# ---- collectives ---------------------------------------------------------------------

def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """tensor = op over every rank's tensor, in place on every rank."""
    h = _handle(group, "all_reduce")
    _tensor(tensor)
    o = _op(op, "all_reduce")
    if not _not_member(group):
        _ferry._dist_all_reduce(tensor, o, h)
    return _done(async_op)


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """tensor = src's tensor on every rank (src a world rank)."""
    h = _handle(group, "broadcast")
    _tensor(tensor)
    root = _global_rank(group, src, group_src, "src", "broadcast")
    if not _not_member(group):
        _ferry._dist_broadcast(tensor, root, h)
    return _done(async_op)


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """On dst, tensor = op over every rank's tensor; the others' tensor is unchanged."""
    h = _handle(group, "reduce")
    _tensor(tensor)
    o = _op(op, "reduce")
    root = _global_rank(group, dst, group_dst, "dst", "reduce")
    if not _not_member(group):
        _ferry._dist_reduce(tensor, root, o, h)
    return _done(async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output_tensor (group size times input's dim 0) gets every rank's input in rank
    order."""
    h = _handle(group, "all_gather_into_tensor")
    _tensor(output_tensor, "output_tensor")
    _tensor(input_tensor, "input_tensor")
    if not _not_member(group):
        _ferry._dist_all_gather(output_tensor, input_tensor, h)
    return _done(async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] = rank r's tensor (one tensor of tensor's shape per rank)."""
    h = _handle(group, "all_gather")
    _tensor(tensor)
    if not isinstance(tensor_list, list):
        raise TypeError("all_gather(): tensor_list must be a list of ferry.Tensor, got "
                        f"{type(tensor_list).__name__}")
    for t in tensor_list:
        _tensor(t, "tensor_list")
    if _not_member(group):
        return _done(async_op)
    n = get_world_size(group)
    if len(tensor_list) != n:
        raise RuntimeError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the "
                           f"group has {n} ranks")
    for i, t in enumerate(tensor_list):
        if tuple(t.shape) != tuple(tensor.shape) or t.dtype != tensor.dtype:
            raise RuntimeError(f"all_gather: tensor_list[{i}] is {t.dtype} "
                               f"{tuple(t.shape)}, expected {tensor.dtype} "
                               f"{tuple(tensor.shape)} as tensor")
    src = tensor if tensor.is_contiguous() else tensor.contiguous()
    flat = _ferry.empty((n,) + tuple(tensor.shape), dtype=tensor.dtype, device=tensor.device)
    _ferry._dist_all_gather(flat, src.unsqueeze(0), h)
    for i, t in enumerate(tensor_list):
        t.copy_(flat[i])
    return _done(async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """output = op over every rank's block (own rank) of input, which has group size
    times output's dim 0."""
    h = _handle(group, "reduce_scatter_tensor")
    _tensor(output, "output")
    _tensor(input, "input")
    o = _op(op, "reduce_scatter_tensor")
    if not _not_member(group):
        _ferry._dist_reduce_scatter(output, input, o, h)
    return _done(async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    """Block r of input goes to rank r, block r of output comes from rank r: dim 0 split
    in input_split_sizes / output_split_sizes rows (None: equal blocks)."""
    h = _handle(group, "all_to_all_single")
    _tensor(output, "output")
    _tensor(input, "input")
    if not _not_member(group):
        if output_split_sizes is None and input_split_sizes is None:
            _ferry._dist_all_to_all(output, input, h)
        else:
            _ferry._dist_all_to_all_v(output, output_split_sizes, input, input_split_sizes,
                                      h)
    return _done(async_op)


def send(tensor, dst=None, group=None, tag=0, group_dst=None):
    """Sends tensor to rank dst; recv(t, src, tag) there receives it, in order per tag."""
    _handle(group, "send")
    _tensor(tensor)
    peer = _global_rank(group, dst, group_dst, "dst", "send")
    _rank_arg(tag, "tag", "send")
    if peer == get_rank():
        # torch's type and words.
        raise ValueError("Invalid destination rank: destination rank should not be the "
                         "same as the rank of the current process.")
    _ferry._dist_send(tensor, peer, tag)


def recv(tensor, src=None, group=None, tag=0, group_src=None):
    """Receives into tensor what rank src sent with tag (src None: whichever rank sends
    first); returns the sender's rank."""
    _handle(group, "recv")
    _tensor(tensor)
    if src is None and group_src is None:
        _rank_arg(tag, "tag", "recv")
        if group is not None:
            # Any rank of the world could match; torch limits it to the group's.
            raise NotImplementedError("recv(): src=None with a group: ferry receives from "
                                      "any rank of the world only (pass group=None)")
        return _ferry._dist_recv_any(tensor, tag)
    peer = _global_rank(group, src, group_src, "src", "recv")
    _rank_arg(tag, "tag", "recv")
    if peer == get_rank():
        raise ValueError("Invalid source rank: source rank should not be the same as the "
                         "rank of the current process.")
    _ferry._dist_recv(tensor, peer, tag)
    return peer
