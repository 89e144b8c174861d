"""Trains the MLP of train_mlp.py data-parallel: every rank takes an equal shard of the
batch and the gradients are averaged with all_reduce(AVG) after each backward, so every
rank applies the same update. Then checks, on every device named (default cpu):

- every rank holds bitwise the same weights (each compares its bytes with rank 0's,
  broadcast);
- they equal, to float32 rounding, one process trained on the concatenated batch (rank 0
  trains it too): the largest difference relative to max(1, |weight|) is within
  --tolerance (default 1e-6; 30 steps on 2 or 3 ranks measure about 1.2e-7).

    python -m ferry.distributed.run -n 2 python/examples/train_mlp_dist.py [--device cpu]
        [--steps 30] [--tolerance 1e-6]

The C twin is tools/train_mlp_dist.c.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ferry  # noqa: E402
import ferry.distributed as dist  # noqa: E402
from train_mlp import cross_entropy, forward, init_params, two_spirals  # noqa: E402


def train(params, x, y, steps, lr, average):
    """SGD from params (changed in place); the last step's loss."""
    loss = None
    for _ in range(steps):
        loss = cross_entropy(forward(params, x), y)
        loss.backward()
        with ferry.no_grad():
            for p in params:
                g = p.grad
                if average:
                    # Equal shards: the ranks' mean gradient is the whole batch's.
                    dist.all_reduce(g, op=dist.ReduceOp.AVG)
                p -= g * lr
                p.grad = None
    return loss.item()


def host_bytes(t):
    return bytes(memoryview(t.cpu().contiguous()))


def run(device, args):
    rank, world = dist.get_rank(), dist.get_world_size()
    pts, lab = two_spirals(args.points)
    local = len(pts) // world
    # Shard r is rows r, r + world, ...; the concatenated batch is the shards in order.
    shards = [[k * world + r for k in range(local)] for r in range(world)]
    mine = shards[rank]
    x = ferry.tensor([pts[i] for i in mine], device=device)
    y = ferry.tensor([lab[i] for i in mine], device=device)
    params = init_params(args.hidden, device)
    t0 = time.perf_counter()
    loss = train(params, x, y, args.steps, args.lr, average=True)
    ms = 1e3 * (time.perf_counter() - t0) / args.steps
    lt = ferry.tensor([loss])
    dist.all_reduce(lt, op=dist.ReduceOp.AVG)  # the whole batch's loss

    differ = 0
    for p in params:
        theirs = p.detach().cpu().clone()
        dist.broadcast(theirs, src=0)
        differ += host_bytes(theirs) != host_bytes(p.detach())
    flag = ferry.tensor([differ], dtype=ferry.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    same = flag.item() == 0

    close = True
    if rank == 0:
        order = [i for s in shards for i in s]
        xa = ferry.tensor([pts[i] for i in order], device=device)
        ya = ferry.tensor([lab[i] for i in order], device=device)
        ref = init_params(args.hidden, device)
        ref_loss = train(ref, xa, ya, args.steps, args.lr, average=False)
        worst = worst_abs = 0.0
        for p, q in zip(params, ref):
            a, b = p.detach().cpu().flatten().tolist(), q.detach().cpu().flatten().tolist()
            for u, v in zip(a, b):
                worst_abs = max(worst_abs, abs(u - v))
                worst = max(worst, abs(u - v) / max(1.0, abs(v)))
        close = worst <= args.tolerance
        print(f"{device}: {world} ranks x {local} points, {args.steps} steps: loss "
              f"{lt.item():.6f} (one process: {ref_loss:.6f}), weights "
              f"{'bitwise identical' if same else 'DIFFERENT'} across ranks, largest "
              f"difference from one process {worst_abs:.3g} (relative {worst:.3g}, tolerance "
              f"{args.tolerance:.3g}){'' if close else '  ABOVE the tolerance'}; "
              f"{ms:.2f} ms/step", flush=True)
    return same and close


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", action="append", help="device (repeatable); default cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--points", type=int, default=150, help="points per class")
    ap.add_argument("--tolerance", type=float, default=1e-6)
    args = ap.parse_args(argv)
    dist.init_process_group()
    if 2 * args.points < dist.get_world_size():
        ap.error(f"{2 * args.points} points cannot be shared by {dist.get_world_size()} ranks")
    ok = True
    for dev in args.device or ["cpu"]:
        ok &= run(dev, args)
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
