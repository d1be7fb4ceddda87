"""Every benchmark in benchmarks/ runs in its --smoke mode, so none can rot unseen.

A smoke run is seconds long on tiny sizes and checks its own figures (benchmarks/common.py
`check`: present, finite, within sane bounds; it raises otherwise). The benchmarks run in this
process, on the suite's Ray instance and MongoDB-wire server (they reuse what is already there),
which keeps the whole module well under a minute. Each test restores the environment variables
its benchmark sets.
"""
from __future__ import annotations

import importlib
import os

import pytest

from tests.helpers import wait_for

# name -> whether it needs Ray (the browser and restart benchmarks need the `browser` resource,
# which the suite's Ray instance offers)
BENCHMARKS = {"store": False, "review": False, "bus": False, "sheets": True, "ai": True,
              "browser": True, "restart": True}


def test_every_benchmark_is_smoke_tested():
    from tests.fixtures.infra import ROOT
    on_disk = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert on_disk == set(BENCHMARKS)


@pytest.fixture
def restored_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _named_actors() -> set[tuple[str, str]]:
    import ray
    return {(a["namespace"], a["name"]) for a in ray.util.list_named_actors(all_namespaces=True)}


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_smoke(name, request, restored_environ, mongo_uri, rabbit_url, capsys):
    if BENCHMARKS[name]:
        request.getfixturevalue("ray_session")
        before = _named_actors()
    os.environ.update({"MONGODB_URI": mongo_uri, "RABBITMQ_URL": rabbit_url})
    bench = importlib.import_module(f"benchmarks.bench_{name}")
    assert bench.main(["--smoke"]) == 0       # check() raises SmokeFailed on a bad figure
    out = capsys.readouterr().out
    assert f"smoke ok: bench_{name}:" in out, out[-3000:]
    if BENCHMARKS[name]:   # it shared the suite's Ray instance: it leaves no actor behind
        wait_for(lambda: _named_actors() <= before, timeout=30,
                 what=f"bench_{name}'s actors to be gone: {_named_actors() - before}")


def test_smoke_check_refuses_missing_or_insane_figures():
    from benchmarks.common import SmokeFailed, check
    for figures, bounds in [({}, None), ({"rate": float("nan")}, None), ({"rate": float("inf")}, None),
                            ({"rate": 0}, None), ({"rate": None}, None), ({"ratio": 5}, {"ratio": (0, 2)}),
                            ({"rate": 1}, {"other": (0, 1)})]:
        with pytest.raises(SmokeFailed):
            check("bench_x", figures, bounds)
    check("bench_x", {"rate": 10.5, "errors": 0}, {"errors": (0, 0)})
