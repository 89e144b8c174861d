"""ferry.fallback_stats: ops a device ran on the cpu because it had no kernel, and
FERRY_STRICT_DEVICE, which turns such a fallback into NotImplementedError."""
import subprocess
import sys

import ferry


def test_sim_counts_its_fallbacks_by_kind(sim):
    ferry.fallback_stats(sim, reset=True)
    a = ferry.ones(4, device=sim)
    b = (a + a).exp()
    assert b.cpu().tolist() == [ferry.tensor(2.0).exp().item()] * 4
    stats = ferry.fallback_stats(sim)
    assert set(stats) == {"fill", "cast", "copy", "unary", "binary", "reduce", "matmul",
                          "named"}
    assert stats["fill"] == 1 and stats["binary"] == 1 and stats["unary"] == 1
    assert ferry.fallback_stats(sim, reset=True)["binary"] == 1
    assert sum(ferry.fallback_stats(sim).values()) == 0


def test_all_devices_are_listed_and_cpu_never_falls_back():
    ferry.ones(3) + 1
    every = ferry.fallback_stats()
    assert "cpu:0" in every
    assert sum(every["cpu:0"].values()) == 0


def test_bad_device_raises_runtime_error():
    try:
        ferry.fallback_stats("nosuch:0")
    except RuntimeError as e:
        assert "nosuch" in str(e)
    else:
        raise AssertionError("no error for an unknown device")


def test_strict_device_raises_not_implemented_naming_the_op(sim):
    code = (
        "import ferry\n"
        f"a = ferry.ones(2).to('{sim}')\n"
        "try:\n"
        "    a * a\n"
        "except NotImplementedError as e:\n"
        "    print('refused:', e)\n"
    )
    env = dict(__import__("os").environ, FERRY_STRICT_DEVICE=sim)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"refused: FERRY_STRICT_DEVICE: {sim} has no binary mul kernel" in out.stdout
