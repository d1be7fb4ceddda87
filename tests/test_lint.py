"""Static checks that catch real bugs: undefined names, unused imports and variables, syntax errors."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_pyflakes_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--output-format",
                        "concise", "--quiet", "actors", "supervisor", "contracts", "standins", "tests",
                        "benchmarks"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
