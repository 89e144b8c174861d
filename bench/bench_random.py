"""randn of 16M float32: ferry (cpu) against numpy.random.default_rng().standard_normal
(dtype=float32), median of 7 in one process. Goal (issue 10): ferry >= 2x numpy."""
import statistics
import time

import numpy as np

import ferry

N = 16 << 20


def median_ms(f, reps=7):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


rng = np.random.default_rng(0)
g = ferry.Generator().manual_seed(0)
t_np = median_ms(lambda: rng.standard_normal(N, dtype=np.float32))
t_fe = median_ms(lambda: ferry.randn(N, generator=g))
t_np_u = median_ms(lambda: rng.random(N, dtype=np.float32))
t_fe_u = median_ms(lambda: ferry.rand(N, generator=g))
print(f"randn 16M float32: ferry {t_fe:.1f} ms, numpy {t_np:.1f} ms, ratio {t_np / t_fe:.2f}")
print(f"rand  16M float32: ferry {t_fe_u:.1f} ms, numpy {t_np_u:.1f} ms, ratio {t_np_u / t_fe_u:.2f}")
