"""A browser node is lost: the supervisor re-creates the session on the other browser node, the
flow resumes, nothing is extracted twice, and the control plane (supervisor, AI workers, sheets
writer, review desk) was never on the lost node. The multi-node cluster runs in its own process
(tests/scenarios/node_loss.py): it cannot share this process with the run's in-process Ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER = "browser:classic:meetme-main"


@pytest.fixture
def scenario(mongo_uri, rabbit_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(MONGODB_URI=mongo_uri, RABBITMQ_URL=rabbit_url, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "tests.scenarios.node_loss"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=170)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(line[len("RESULT "):])
    assert "error" not in result, result.get("traceback", result)
    return result


@pytest.mark.timeout(200)
def test_lost_browser_node_session_recreated_elsewhere(scenario):
    r = scenario
    placement = r["placement_before"]
    assert placement[BROWSER].startswith("browser-node")
    control = {n: where for n, where in placement.items()
               if n in ("supervisor", "router") or n.split(":")[0] in ("ai", "sheets", "review") and n != "ai:gate"}
    assert control and set(control.values()) == {"head"}, placement

    assert r["lost_node_is_other"], r            # re-created on the surviving browser node
    assert r["browser_restarts"] == 1 and r["failed"] == []
    assert r["site_ids_stored"] == r["site_ids_injected"]   # the message after the loss was extracted
    assert r["messages"] == r["message_seen_events"] == 2   # ... and nothing was extracted twice
    # the flow resumed: the second message's draft answers both (it supersedes the first); none sent
    assert r["drafts"] == 2 and r["drafts_pending_review"] == r["drafts_superseded"] == 1
    assert r["lost_processes_left"] == []                   # its worker and Chromium went with it
