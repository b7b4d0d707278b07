"""Assignments per second of ``offers.rules.arm_for``: 1,000,000 customers, three variants and a
10% holdout, best of three runs, printed with the machine it ran on.

Run from the project root: ``FORETASTE_ENV=development .venv/bin/python bench/bench_assignment.py``.
It needs only the pure rules, so Django is not set up.
"""

import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from machine_info import cpu_model  # bench/ is the script's folder, first on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offers.rules import arm_for

CUSTOMERS = 1_000_000

RUNS = 3
SALT = "bench-offer"
HOLDOUT_PERCENT = 10
VARIANTS = (("espresso", 1), ("filter", 1), ("whole-bean", 2))


def one_run(keys: list[str]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    arms = [arm_for(salt=SALT, customer_key=key, holdout_percent=HOLDOUT_PERCENT, variants=VARIANTS) for key in keys]
    return time.perf_counter() - started, arms


def main() -> None:
    keys = [f"customer-{i}" for i in range(CUSTOMERS)]
    timings = []
    for _ in range(RUNS):
        seconds, arms = one_run(keys)
        timings.append(seconds)
    best = min(timings)
    counts = Counter(arms)
    shares = ", ".join(f"{name} {counts[name] / CUSTOMERS:.2%}" for name in ("holdout", *(n for n, _ in VARIANTS)))
    print(f"arm_for: {CUSTOMERS / best:,.0f} assignments/s (best of {RUNS}: {best:.3f} s for {CUSTOMERS:,} customers)")
    print(f"  runs: {', '.join(f'{t:.3f} s' for t in timings)}")
    print(f"  split: {shares}")
    print(
        f"  machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


if __name__ == "__main__":
    main()
