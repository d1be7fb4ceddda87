"""benchmarks/bench_ai.py keeps working: its smoke mode runs one tiny pool end to end (stand-in,
Ray workers, gate, MongoDB) with and without 429s and prints both rows."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.fixtures.infra import ROOT


def test_bench_ai_smoke():
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MONGODB_URI")}
    run = subprocess.run([sys.executable, "benchmarks/bench_ai.py", "--smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith("1x2")]
    assert [r[1] for r in rows] == ["none", "30%"], run.stdout
    # columns from the right: db ms, 429s, busy, pool/base, med/ideal, pool/ideal, pool/s
    assert all(float(r[-7]) > 0 for r in rows), run.stdout
    assert int(rows[0][-2]) == 0 and int(rows[1][-2]) > 0   # the 429s were counted and retried
