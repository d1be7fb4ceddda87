"""Scenario: the node running a browser session is lost; the supervisor re-creates the session on
the other browser node and the flow resumes without extracting anything twice.

Run as its own process (`python -m tests.scenarios.node_loss`): a `ray.cluster_utils.Cluster`
cannot share a process with the test run's in-process Ray. Prints one JSON line with what it saw;
tests/test_node_loss.py asserts on it. Exit code 0 = the scenario ran to the end (the assertions
are the test's), 1 = it timed out or crashed (the JSON then carries `error`).

Cluster: a head WITHOUT the `browser` resource (the driver, supervisor, AI workers, sheets writer
and review desk live there) and two worker nodes with {"browser": 4}. The lost node's raylet and
workers are SIGKILLed (allow_graceful=False), as a crashed machine would; the GCS health check is
tightened so the loss is noticed in about a second instead of Ray's default ~30 s.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSER = "browser:classic:meetme-main"




def _actor_node(name: str, namespace: str) -> str | None:
    from ray._private import state
    alive = [a for a in state.actors().values() if a.get("Name") == name and a.get("State") == "ALIVE"
             and a.get("RayNamespace") in (None, namespace)]
    return alive[0]["Address"]["NodeID"] if len(alive) == 1 else None


def run(result: dict) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from actors.store import Store
    from contracts import settings
    from standins.stack import start_stack, wait_for
    from supervisor import runner
    from tests.raycli import alive, free_ports, related_processes

    stack = start_stack()
    os.environ.update(stack.env)
    cluster = None
    handle = None
    try:
        (agent,) = free_ports(1)
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "resources": {}, "include_dashboard": False,
            "dashboard_agent_listen_port": agent,
            "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                               "health_check_timeout_ms": 300, "health_check_failure_threshold": 3}})
        workers = []
        for _ in range(2):
            (agent,) = free_ports(1)
            workers.append(cluster.add_node(num_cpus=0, resources={"browser": 4},
                                            dashboard_agent_listen_port=agent))
        cluster.wait_for_nodes()
        ns = stack.env["REPLYDESK_NAMESPACE"]
        ray.init(address=cluster.address, namespace=ns, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})

        config = settings.load()                      # the real conf/replydesk.yaml ...
        config.app.accounts[0].poll_interval_s = 0.5  # ... polled briskly (the stand-in allows it)
        config.app.review.port = 0                    # no fixed port on a shared machine
        store = Store.from_config(config)
        handle = runner.start(config)
        result["supervisor_backoff_initial_s"] = config.app.supervisor.restart.backoff_initial_s

        first = stack.site.inject("c-1", "Ann", "Hi! Do you like hiking? Any favourite trails?")
        wait_for(lambda: _draft_for(store, first), 60, "the first draft")

        by_id = {w.node_id: w for w in workers}
        head_id = cluster.head_node.node_id
        before = _child(ray, handle)
        lost_id = wait_for(lambda: _actor_node(BROWSER, ns), 10, "the browser actor's node")
        where = {head_id: "head", **{w.node_id: f"browser-node-{k}" for k, w in enumerate(workers)}}
        result["placement_before"] = {n: where.get(i, i) for n, i in _nodes(ns).items()}
        result["browser_node_was_worker"] = lost_id in by_id
        session = ray.get_actor(BROWSER, namespace=ns)
        worker_pid = ray.get(session.__ray_call__.remote(lambda self: os.getpid()))
        doomed = related_processes(worker_pid)  # the actor's worker, its Playwright driver, Chromium

        t_loss = time.monotonic()
        cluster.remove_node(by_id[lost_id], allow_graceful=False)
        second = stack.site.inject("c-1", "Ann", "Are you around on Sunday afternoon?")
        after = wait_for(lambda: (c := _child(ray, handle))["state"] == "running"
                      and c["actor_id"] != before["actor_id"] and c, 60, "the browser session back")
        result["recreated_s"] = round(time.monotonic() - t_loss, 2)
        new_node = wait_for(lambda: _actor_node(BROWSER, ns), 10, "the new browser actor's node")
        wait_for(lambda: _draft_for(store, second), 60, "the draft of the message sent after the loss")
        # the new draft supersedes the open one right after it is stored
        wait_for(lambda: store.drafts.count({"status": "pending_review"}) == 1, 30, "one open draft")
        result["resumed_s"] = round(time.monotonic() - t_loss, 2)

        result.update(
            lost_node_is_other=new_node != lost_id and new_node in by_id,
            browser_restarts=after["restarts"],
            messages=store.messages.count(),
            message_seen_events=store.db["outbox"].count_documents({"routing_key": "message.seen"}),
            drafts=store.drafts.count(),
            drafts_pending_review=store.drafts.count({"status": "pending_review"}),
            drafts_superseded=store.drafts.count({"status": "superseded"}),
            site_ids_stored=sorted(m["site_message_id"] for m in store.messages.coll.find()),
            site_ids_injected=sorted([first, second]),
            lost_processes_left=sorted(p for p in doomed if alive(p)),
            failed=ray.get(handle.status.remote())["failed"],
        )
    finally:
        if handle is not None:
            try:
                runner.stop(handle)
                runner.decommission(config)
            except Exception as exc:  # reported, never hides the scenario's own outcome
                result.setdefault("teardown_error", repr(exc))
        try:
            Store(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"]).db.client.drop_database(
                stack.env["MONGODB_DB"])
        except Exception as exc:
            result.setdefault("teardown_error", repr(exc))
        import ray
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        stack.close()


def _child(ray, handle) -> dict:
    return next(c for c in ray.get(handle.status.remote(), timeout=30)["children"] if c["name"] == BROWSER)


def _nodes(ns: str) -> dict[str, str]:
    from ray._private import state
    return {a["Name"]: a["Address"]["NodeID"] for a in state.actors().values()
            if a.get("State") == "ALIVE" and a.get("Name") and a.get("RayNamespace") in (None, ns)}


def _draft_for(store, site_id: str):
    msg = store.messages.coll.find_one({"site_message_id": site_id})
    return msg and store.drafts.coll.find_one({"last_message_id": msg["_id"]})


def main() -> int:
    result: dict = {}
    code = 0
    try:
        run(result)
    except BaseException as exc:  # the test shows this instead of a bare non-zero exit
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-3000:]
        code = 1
    print("RESULT " + json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
