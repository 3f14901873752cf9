"""The timing loop the micro-benches share, and how they print their figures.

    from bench._timing import call_times, percentile, print_figures
    times = call_times(lambda i: work(i), calls=300)  # or seconds=1.0: as many calls as that holds
    print_figures({"work_p99_ms": percentile(times, 0.99) * 1e3}, as_json=False, digits=3)

Each call is timed alone, so a figure can be a median or a tail as well as a mean; calls of a few microseconds are
timed in batches instead (`batch`), since the clock reads and the bookkeeping around one call cost about half a
microsecond here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

__all__ = ["call_times", "percentile", "print_figures"]


def call_times(fn: Callable[[int], object], *, calls: int = 0, seconds: float = 0.0, batch: int = 1) -> list[float]:
    """The seconds each call fn(0), fn(1), ... took, in call order: `calls` calls, or as many as `seconds` holds.
    With `batch`, each figure is the mean of that many calls timed together."""
    if (calls > 0) == (seconds > 0):
        raise ValueError("give either calls or seconds")
    times: list[float] = []
    deadline = time.perf_counter() + seconds

    def more() -> bool:
        return len(times) * batch < calls if calls else time.perf_counter() < deadline

    while more():
        first = len(times) * batch
        start = time.perf_counter()
        for i in range(first, first + batch):
            fn(i)
        times.append((time.perf_counter() - start) / batch)
    return times


def percentile(times: list[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) of times, the rank rounded down: 0.99 of 300 times is the 297th fastest."""
    ranked = sorted(times)
    return ranked[max(0, int(len(ranked) * q) - 1)]


def print_figures(figures: dict[str, float], *, as_json: bool, digits: int) -> None:
    """The figures as a JSON object, or one `name value` line each."""
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:28} {value:8.{digits}f}")
