"""The supervisor's control loop: every manager's update runs each round, one that raises is
logged and counted without stopping the others; child states are an Enum reported as strings."""
from __future__ import annotations

import json

from supervisor.children import Child, ChildSpec, ChildState
from supervisor.policy import RestartPolicy
from supervisor.supervisor import update_all


class _Recorder:
    def __init__(self, name: str, fail: bool = False):
        self.name, self.fail, self.seen = name, fail, []

    def update(self, now: float) -> None:
        self.seen.append(now)
        if self.fail:
            raise RuntimeError(f"{self.name} broke")


def test_a_manager_that_raises_is_reported_and_the_others_still_run(caplog):
    first, broken, last = _Recorder("lifecycle"), _Recorder("heartbeats", fail=True), _Recorder("passes")
    with caplog.at_level("ERROR", logger="replydesk.supervisor"):
        assert update_all([first, broken, last], 12.5) == ["heartbeats"]
        assert update_all([first, broken, last], 13.0) == ["heartbeats"]
    assert first.seen == broken.seen == last.seen == [12.5, 13.0]
    failures = [r for r in caplog.records if r.getMessage() == "supervisor manager update failed"]
    assert [r.manager for r in failures] == ["heartbeats", "heartbeats"]
    assert "heartbeats broke" in str(failures[0].exc_info[1])


def test_child_states_are_an_enum_reported_as_plain_strings():
    child = Child(spec=ChildSpec(name="ai:0", kind="ai", actor_cls=None),
                  policy=RestartPolicy(max_restarts=1, within_s=1.0, backoff_initial_s=0.1, backoff_max_s=1.0))
    assert child.state is ChildState.NEW
    child.state = ChildState.RUNNING
    snap = child.snapshot()
    assert snap["state"] == "running" and type(snap["state"]) is str
    assert json.loads(json.dumps(snap))["status"] == "running"
