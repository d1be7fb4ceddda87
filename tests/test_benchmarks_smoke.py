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
              "browser": True, "restart": True, "quality": False}


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


def test_quality_data_covers_the_brief_and_bad_files_are_named(tmp_path):
    """The labeled set bench_quality runs: big enough, every class, the languages and the hard
    cases; a bad file is an error naming the file, the conversation and what is wrong."""
    from benchmarks import quality_cases
    cases = quality_cases.load()
    assert len(cases) >= 60
    assert {c.expect for c in cases} == set(quality_cases.CLASSES)
    assert {"en", "de", "es", "fr"} < {c.lang for c in cases}
    tags = {t for c in cases for t in c.tags}
    assert {"closing", "scam", "link", "insult", "injection", "long"} <= tags
    assert all(c.must_not_contain for c in cases if "injection" in c.tags)
    longest = max(cases, key=lambda c: sum(len(t) for _, t in c.messages))
    # three times a 2k-token context (~4 characters a token)
    assert sum(len(t) for _, t in longest.messages) > 3 * 2048 * 4
    bad = tmp_path / "bad.yaml"
    for body, words in [
            ("conversations: [{id: x1, lang: en, expect: maybe, contact: A, messages: [{contact: hi}]}]",
             ["'x1'", "expect must be one of"]),
            ("conversations: [{id: x2, lang: en, expect: abusive, contact: A, messages: [{me: hi}]}]",
             ["'x2'", "newest message must be the contact's"]),
            ("conversations: [{id: x3, lang: en, expect: abusive, contact: A, colour: red, messages: [{contact: hi}]}]",
             ["'x3'", "unknown field(s) ['colour']"]),
            ("conversations: [{id: x4, lang: en, expect: abusive, contact: A, pad: 3, messages: [{contact: hi}]}]",
             ["'x4'", "fillers"])]:
        bad.write_text(body)
        with pytest.raises(ValueError) as err:
            quality_cases.load(bad)
        assert str(bad) in str(err.value) and all(w in str(err.value) for w in words), err.value
