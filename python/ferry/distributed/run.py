"""Starts a script on several processes for ferry.distributed:

    python -m ferry.distributed.run -n 2 script.py [args...]
    python -m ferry.distributed.run -n 3 -m package.module [args...]

It replaces itself with ``mpirun -np N <this python> script.py args...``, so the ranks run
the same interpreter and import the same ferry (its folder is put first on PYTHONPATH,
which mpirun passes on with ``-x``). With Open MPI it adds ``--allow-run-as-root`` when
run as root (Open MPI refuses root without it) and ``--oversubscribe`` when run as root
or when N exceeds the cores (Open MPI otherwise refuses more ranks than slots).
``--mpirun-arg=ARG`` (repeatable) passes ARG to mpirun; ``--mpirun PATH`` picks the
launcher (default: mpirun, then mpiexec, on PATH). The launcher's options end at the
script's name, so the script's own options are its own.
"""
import argparse
import os
import shutil
import subprocess
import sys


def _ferry_root():
    """The folder that holds the ferry package (for the ranks' PYTHONPATH)."""
    import ferry
    return os.path.dirname(os.path.dirname(os.path.abspath(ferry.__file__)))


def _is_open_mpi(mpirun):
    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in out.stdout + out.stderr or "OpenRTE" in out.stdout + out.stderr


def build_command(args, env):
    """The mpirun command line and environment for parsed args."""
    mpirun = args.mpirun or shutil.which("mpirun") or shutil.which("mpiexec")
    if not mpirun or not (os.path.isfile(mpirun) or shutil.which(mpirun)):
        raise SystemExit(
            "ferry.distributed.run: "
            + (f"{args.mpirun} not found" if args.mpirun else
               "neither mpirun nor mpiexec is on PATH")
            + "; install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin) or pass "
            "--mpirun /path/to/mpirun")
    cmd = [mpirun, "-np", str(args.nproc)]
    pythonpath = os.pathsep.join(p for p in (_ferry_root(), env.get("PYTHONPATH")) if p)
    env = dict(env, PYTHONPATH=pythonpath)
    if _is_open_mpi(mpirun):
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if root:
            cmd.append("--allow-run-as-root")
        if root or args.nproc > (os.cpu_count() or 1):
            cmd.append("--oversubscribe")
        cmd += ["-x", "PYTHONPATH"]
    cmd += args.mpirun_args
    cmd.append(sys.executable)
    if args.module:
        cmd += ["-m", args.module]
    else:
        cmd.append(args.script)
    cmd += args.script_args
    return cmd, env


_VALUED = {"-n", "--nproc", "--nproc-per-node", "--nproc_per_node", "--mpirun", "--mpirun-arg"}


def _split(argv):
    """(launcher options, script or None, module or None, script args): the first word
    that is not an option (or -m's value) ends the launcher's options, so the script's
    own options (even -n) stay the script's."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            if i + 1 >= len(argv):
                return argv[:i + 1], None, None, []
            return argv[:i], None, argv[i + 1], argv[i + 2:]
        if a == "--":
            return argv[:i], (argv[i + 1] if i + 1 < len(argv) else None), None, argv[i + 2:]
        if not a.startswith("-"):
            return argv[:i], a, None, argv[i + 1:]
        i += 2 if a in _VALUED else 1
    return argv, None, None, []


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(
        prog="python -m ferry.distributed.run",
        usage="%(prog)s [-n N] [--mpirun PATH] [--mpirun-arg=ARG]... [--dry-run] "
              "(script.py | -m module) [args...]",
        description="Run a ferry.distributed script on N processes through mpirun.")
    ap.add_argument("-n", "--nproc", "--nproc-per-node", "--nproc_per_node", type=int,
                    default=1, help="number of processes (default 1)")
    ap.add_argument("--mpirun", help="the launcher (default: mpirun or mpiexec on PATH)")
    ap.add_argument("--mpirun-arg", dest="mpirun_args", action="append", default=[],
                    metavar="ARG", help="one more mpirun argument, before the script "
                    "(repeatable; --mpirun-arg=--bind-to --mpirun-arg=none)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the mpirun command instead of running it")
    opts, script, module, script_args = _split(argv)
    args = ap.parse_args(opts)
    args.script, args.module, args.script_args = script, module, script_args
    if not args.module and not args.script:
        ap.error("give a script (or -m module) to run")
    if args.nproc < 1:
        ap.error(f"-n must be at least 1, got {args.nproc}")
    cmd, env = build_command(args, os.environ)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    sys.exit(main())
