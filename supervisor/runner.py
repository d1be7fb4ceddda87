"""Start, watch and stop a supervisor from a driver (the job entrypoint and the demo share this)."""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import ray

from actors.store import Store
from contracts import names
from contracts.draftstate import DraftStatus
from contracts.settings import Config

log = logging.getLogger("replydesk.runner")
SUPERVISOR_NAME = names.SUPERVISOR


def connect(address: str | None, namespace: str, *, log_to_driver: bool = True) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS, as `ray job submit` sets), else run locally
    with one `browser` resource slot per local Chromium session. `log_to_driver=False` keeps the
    actors' output off this process's console (the quiet demo: their logs go to files)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {} if log_to_driver else {"logging_level": logging.WARNING}
    if address and address != "local":
        ray.init(address=address, namespace=namespace, log_to_driver=log_to_driver, **quiet)
    else:
        ray.init(address="local", namespace=namespace, include_dashboard=False,
                 resources={"browser": 64}, log_to_driver=log_to_driver, **quiet)


def start(config: Config, *, detached: bool = False, max_restarts: int = 3) -> Any:
    """Create (or adopt) the named supervisor actor and wait until its children run."""
    from supervisor.specs import near
    from supervisor.supervisor import SupervisorActor
    ns = config.settings.namespace
    try:
        handle = ray.get_actor(SUPERVISOR_NAME, namespace=ns)
        log.info("adopting the running supervisor", extra={"namespace": ns})
    except ValueError:
        opts: dict[str, Any] = {"name": SUPERVISOR_NAME, "namespace": ns, "max_restarts": max_restarts,
                                "max_task_retries": 0,
                                # the driver's node (the head under `ray job submit`), not a browser node
                                **near(ray.get_runtime_context().get_node_id())}
        if detached:
            opts["lifetime"] = "detached"
        handle = SupervisorActor.options(**opts).remote(config)
    status = ray.get(handle.wait_running.remote(90), timeout=180)
    report_start(status["children"])
    return handle


def report_start(children: list[dict[str, Any]]) -> None:
    """Say which children are not running after the start wait, each with its own last error;
    only a browser child that never got a worker (no error at all) points at the `browser`
    resource."""
    for c in children:
        if c["state"] == "running":
            continue
        if c.get("last_error"):
            log.error("child not running", extra={"child": c["name"], "state": c["state"],
                                                   "error": c["last_error"]})
        elif c["kind"] in ("browser", "host"):
            log.warning("browser child still starting: logging in (a refused login backs off), or no "
                        "node offers the `browser` resource", extra={"child": c["name"], "state": c["state"]})
        else:
            log.error("child still starting", extra={"child": c["name"], "state": c["state"]})


def stop(handle: Any, wait_s: float = 15.0) -> dict[str, Any]:
    """Shut the supervisor down cleanly, kill it, and return once it is really gone (ray.kill is
    asynchronous: a dying supervisor could otherwise still touch the broker after we return)."""
    try:
        status = ray.get(handle.shutdown.remote(), timeout=120)
    finally:
        ray.kill(handle, no_restart=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                ray.get(handle.ping.remote(), timeout=2)
            except ray.exceptions.RayActorError:
                break
            except Exception:  # still going away (unavailable, timeout): look again
                pass
            time.sleep(0.1)
    return status


def summary(config: Config) -> dict[str, Any]:
    store = Store.from_config(config)
    return {"messages": store.messages.count(), "drafts": store.drafts.count(),
            "drafts_pending_review": store.drafts.count({"status": DraftStatus.PENDING.value}),
            "sheet_rows": store.sheet_rows.count(),
            "outbox_unpublished": store.outbox.count_pending()}


def reload(handle: Any, config_file: str | None) -> dict[str, Any]:
    """Re-read and validate the config, then apply it to the running supervisor. An invalid
    config raises ConfigError (one line naming what is wrong) and changes nothing."""
    from contracts import settings
    config = settings.load(config_file)
    return ray.get(handle.reload.remote(config), timeout=180)


def run_for(handle: Any, duration_s: float | None, report_every_s: float = 10.0,
            reload_requested: Any = None, config_file: str | None = None) -> None:
    """Keep the job alive for duration_s (None: until interrupted), logging status periodically;
    when `reload_requested` (a list a SIGHUP handler appends to: safe in a signal handler, unlike
    an Event) is not empty, reload the config."""
    from contracts.settings import ConfigError
    deadline = None if not duration_s else time.monotonic() + duration_s
    next_report = time.monotonic() + report_every_s
    while deadline is None or time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.05, (deadline or float("inf")) - time.monotonic())))
        if reload_requested:
            reload_requested.clear()
            try:
                result = reload(handle, config_file)
                log.info("config reloaded", extra={"changes": result["reload"]})
            except ConfigError as exc:
                log.error("reload refused: the running config is unchanged", extra={"error": str(exc)})
            except Exception:  # a failed reload never ends the job
                log.exception("reload failed; the supervisor keeps running")
        if time.monotonic() < next_report:
            continue
        next_report = time.monotonic() + report_every_s
        try:
            st = ray.get(handle.status.remote(), timeout=30)
        except ray.exceptions.GetTimeoutError:  # busy (a long reload): report next time
            log.warning("supervisor status not answered within 30 s")
            continue
        log.info("supervisor status", extra={"states": st["states"], "failed": st["failed"],
                                             "messages_seen": st["messages_seen"]})


def decommission(config: Config) -> None:
    """Delete the namespace's queues and exchanges (a finished demo or test environment)."""
    from actors.bus import delete_topology
    from supervisor.supervisor import ALL_KINDS
    delete_topology(config, ALL_KINDS)
