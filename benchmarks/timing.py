"""What the benchmarks share: best-of-n wall time (the first call, paying one-time set-up, is not counted)."""

from __future__ import annotations

import time


def best(fn, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn`` after one untimed warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
