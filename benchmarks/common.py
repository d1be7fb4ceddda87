"""What the benchmarks share: the `--smoke` check of their figures, and the services they start
(or reuse when the caller already runs them: tests/test_benchmarks_smoke.py runs every benchmark's
smoke mode in the test process, on the suite's Ray instance and MongoDB-wire server).

A smoke run is seconds long on tiny sizes; it proves the benchmark still runs end to end and still
produces its figures. `check` raises SmokeFailed (an AssertionError: the script exits non-zero)
when a figure is missing, not a finite number, or outside its sane range.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Iterator, Mapping

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class SmokeFailed(AssertionError):
    """A benchmark's smoke run did not produce sane figures."""


def check(bench: str, figures: Mapping[str, float | int | None],
          bounds: Mapping[str, tuple[float, float]] | None = None) -> None:
    """Every figure must be a finite number within its bounds (inclusive; by default > 0)."""
    bounds = dict(bounds or {})
    unknown = set(bounds) - set(figures)
    problems = [f"{name}: no such figure was produced" for name in sorted(unknown)]
    if not figures:
        problems.append("no figures at all")
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{name}={value!r} is not a number")
            continue
        if not math.isfinite(value):
            problems.append(f"{name}={value} is not finite")
            continue
        lo, hi = bounds.get(name, (None, math.inf))
        if (value <= 0 if lo is None else value < lo) or value > hi:
            want = "> 0" if lo is None else f">= {lo}"
            problems.append(f"{name}={value:g} is not {want}" + (f" and <= {hi:g}" if hi != math.inf else ""))
    if problems:
        raise SmokeFailed(f"{bench} --smoke: " + "; ".join(problems))
    print(f"smoke ok: {bench}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()), flush=True)


@contextlib.contextmanager
def mongo_uri() -> Iterator[str]:
    """MONGODB_URI when set (the test suite's server), else a throwaway secantusd-py for this run."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    from standins.mongo import MongoServer
    with MongoServer() as server:
        yield server.uri


@contextlib.contextmanager
def ray_instance(**init: object) -> Iterator[None]:
    """The caller's Ray instance when one is initialised (the test suite's: its workers import
    this checkout), else a local one for this run, shut down afterwards."""
    import ray
    if ray.is_initialized():
        yield
        return
    ray.init(**{"address": "local", "num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
                "runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT)}}, **init})
    try:
        yield
    finally:
        ray.shutdown()
