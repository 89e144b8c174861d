"""ferry.distributed in one process: the errors before init, ReduceOp, and the launcher
`python -m ferry.distributed.run` (its command line, its error without mpirun, and a real
2-rank run). The collectives themselves run under mpirun in python/tests_dist."""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import ferry
import ferry.distributed as dist
from ferry.distributed import run as launcher

NOT_INIT = ("Default process group has not been initialized, please make sure to call "
            "init_process_group.")


def _env():
    """The environment of a child python that imports this ferry."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(ferry.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def test_before_init_raises_torchs_value_error():
    assert dist.is_available() and not dist.is_initialized()
    t = ferry.ones(3)
    calls = [dist.get_rank, dist.get_world_size, dist.get_backend, dist.barrier,
             lambda: dist.all_reduce(t), lambda: dist.broadcast(t, 0),
             lambda: dist.reduce(t, 0), lambda: dist.all_gather_into_tensor(t, t),
             lambda: dist.all_gather([t], t), lambda: dist.reduce_scatter_tensor(t, t),
             lambda: dist.all_to_all_single(t, t), lambda: dist.send(t, 1),
             lambda: dist.recv(t, 1), lambda: dist.new_group([0])]
    for call in calls:
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == NOT_INIT
    with pytest.raises(AssertionError, match="Process group cannot be None"):
        dist.destroy_process_group()
    assert not dist.is_initialized()


def test_reduce_op_matches_torch():
    names = ["SUM", "AVG", "PRODUCT", "MIN", "MAX"]
    assert [int(getattr(dist.ReduceOp, n)) for n in names] == [0, 1, 2, 3, 4]
    assert dist.ReduceOp.SUM is dist.ReduceOp.RedOpType.SUM
    assert str(dist.ReduceOp.MAX) == "RedOpType.MAX"
    try:
        import torch.distributed as td
    except ImportError:
        if "torch" in os.environ.get("FERRY_TEST_REQUIRE", ""):
            pytest.fail("torch required but not importable")
        return
    for n in names:
        assert int(getattr(td.ReduceOp, n)) == int(getattr(dist.ReduceOp, n))
        assert str(getattr(td.ReduceOp, n)) == str(getattr(dist.ReduceOp, n))


def test_init_refuses_unknown_backend_and_options():
    with pytest.raises(AssertionError, match="Unknown backend type bogus"):
        dist.init_process_group("bogus")
    with pytest.raises(TypeError, match="backend must be a str or None"):
        dist.init_process_group(3)
    with pytest.raises(ValueError, match="store is not supported"):
        dist.init_process_group("mpi", store=object())
    with pytest.raises(TypeError, match="world_size must be an int"):
        dist.init_process_group("mpi", world_size="2")
    import datetime
    with pytest.raises(ValueError, match="timeout must be positive"):
        dist.init_process_group("mpi", timeout=datetime.timedelta(0))
    assert not dist.is_initialized()


def _args(argv):
    class A:
        pass
    a = A()
    opts, a.script, a.module, a.script_args = launcher._split(argv)
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, dest="nproc", default=1)
    ap.add_argument("--mpirun")
    ap.add_argument("--mpirun-arg", dest="mpirun_args", action="append", default=[])
    ns = ap.parse_args(opts)
    a.nproc, a.mpirun, a.mpirun_args = ns.nproc, ns.mpirun, ns.mpirun_args
    return a


def test_launcher_command_line():
    if not (shutil.which("mpirun") or shutil.which("mpiexec")):
        pytest.skip("no mpirun or mpiexec on PATH")
    # The script's own -n stays the script's.
    cmd, env = launcher.build_command(_args(["-n", "3", "train.py", "-n", "7"]), {})
    i = cmd.index(sys.executable)
    assert cmd[1:3] == ["-np", "3"] and cmd[i:] == [sys.executable, "train.py", "-n", "7"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(ferry.__file__)))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root
    if launcher._is_open_mpi(cmd[0]):
        assert ("--allow-run-as-root" in cmd) == (os.geteuid() == 0)
        assert "-x" in cmd and cmd[cmd.index("-x") + 1] == "PYTHONPATH"
    cmd, _ = launcher.build_command(_args(["--mpirun-arg=--bind-to", "--mpirun-arg=none",
                                           "-m", "pkg.mod", "x"]), {"PYTHONPATH": "/a"})
    i = cmd.index(sys.executable)
    assert cmd[i - 2:i] == ["--bind-to", "none"] and cmd[i:] == [sys.executable, "-m",
                                                                "pkg.mod", "x"]


def test_launcher_without_mpirun(tmp_path):
    env = _env()
    env["PATH"] = str(tmp_path)  # no mpirun there
    r = subprocess.run([sys.executable, "-m", "ferry.distributed.run", "-n", "2", "x.py"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "ferry.distributed.run: neither mpirun nor mpiexec is on PATH" in r.stderr
    assert "apt-get install openmpi-bin" in r.stderr
    r = subprocess.run([sys.executable, "-m", "ferry.distributed.run", "--mpirun",
                        str(tmp_path / "nope"), "x.py"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "nope not found" in r.stderr
    r = subprocess.run([sys.executable, "-m", "ferry.distributed.run", "-n", "2"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "give a script" in r.stderr


def test_launcher_runs_two_ranks(tmp_path):
    if not (shutil.which("mpirun") or shutil.which("mpiexec")):
        pytest.skip("no mpirun or mpiexec on PATH")
    if not dist.is_mpi_available():
        pytest.skip(f"the mpi communicator is not usable: {dist._backend_status('mpi')}")
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import sys
        import ferry, ferry.distributed as dist
        dist.init_process_group()
        t = ferry.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(t)
        print(f"rank {dist.get_rank()}/{dist.get_world_size()} {dist.get_backend()} "
              f"{t.item()} args={sys.argv[1:]}")
        dist.destroy_process_group()
    """))
    env = _env()
    env.setdefault("FERRY_DIST_TIMEOUT", "60")
    r = subprocess.run([sys.executable, "-m", "ferry.distributed.run", "-n", "2", str(script),
                        "-n", "5"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # mpirun forwards each rank's stdout on its own, so two lines may arrive interleaved
    # on one: find the reports, not the lines.
    lines = sorted(re.findall(r"rank \d/\d \w+ [\d.]+ args=\[[^\]]*\]", r.stdout))
    assert lines == ["rank 0/2 mpi 3.0 args=['-n', '5']", "rank 1/2 mpi 3.0 args=['-n', '5']"]


def test_world_of_one_without_launcher():
    if not dist.is_mpi_available():
        pytest.skip(f"the mpi communicator is not usable: {dist._backend_status('mpi')}")
    code = textwrap.dedent("""
        import ferry, ferry.distributed as dist
        dist.init_process_group("mpi", world_size=1, rank=0)
        t = ferry.tensor([2.0, 3.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        print(dist.get_rank(), dist.get_world_size(), t.tolist())
        dist.destroy_process_group()
        print(dist.is_initialized())
    """)
    env = {k: v for k, v in _env().items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX"))}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["0 1 [2.0, 3.0]", "False"]
    # world_size and rank, when given, must be the launcher's.
    code = textwrap.dedent("""
        import ferry.distributed as dist
        try:
            dist.init_process_group("mpi", world_size=4)
        except ValueError as e:
            print(e, dist.is_initialized())
    """)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == ("init_process_group(): world_size=4, but the launcher started "
                                "1 process(es) (ferry takes both from mpirun) False")


def test_rank_leaving_early_is_named(tmp_path):
    """Through the launcher, 3 ranks: the last one returns without destroy_process_group
    while the others wait in all_reduce; they end naming it, long before the timeout."""
    if not (shutil.which("mpirun") or shutil.which("mpiexec")):
        pytest.skip("no mpirun or mpiexec on PATH")
    if not dist.is_mpi_available():
        pytest.skip(f"the mpi communicator is not usable: {dist._backend_status('mpi')}")
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent("""
        import ferry, ferry.distributed as dist
        dist.init_process_group("mpi")
        dist.barrier()
        if dist.get_rank() == dist.get_world_size() - 1:
            raise SystemExit(0)  # no destroy_process_group
        dist.all_reduce(ferry.ones(1000))
        print("all_reduce returned", flush=True)
    """))
    env = _env()
    env["FERRY_DIST_TIMEOUT"] = "100"
    import time
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ferry.distributed.run", "-n", "3", str(script)],
                       env=env, capture_output=True, text=True, timeout=90)
    took = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "all_reduce returned" not in out
    # The watchdog's words when the goodbye comes during the call, the call's own
    # (a RuntimeError) when it came first.
    import re
    assert re.search(r"rank 2 (has )?exited \(?without calling ferry_dist_finalize", out), out
    assert took < 30, f"took {took:.1f} s (FERRY_DIST_TIMEOUT is 100)"
