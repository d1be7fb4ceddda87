"""Every Ray call the supervisor makes, in one place: create, find and kill named children, send
a call, ask whether its answer is in, take the answer.

The monitor loop never waits on Ray under its lock: `ready` polls with a zero timeout, `create`
never waits for a name to be freed (it raises `NameTaken` and the caller tries again later).
"""
from __future__ import annotations

import logging
from typing import Any

import ray

from supervisor.children import ChildSpec

log = logging.getLogger("replydesk.supervisor")


class NameTaken(RuntimeError):
    """The child's name is still registered to a predecessor being torn down (now killed)."""


def find(name: str, namespace: str) -> Any | None:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def create(spec: ChildSpec, namespace: str) -> Any:
    """Create the named detached actor; never waits. If a dead predecessor still holds the name,
    it is killed and `NameTaken` raised: the caller tries again a little later."""
    try:
        return spec.actor_cls.options(name=spec.name, namespace=namespace, lifetime="detached",
                                      max_restarts=0, **spec.options).remote(*spec.args)
    except ValueError as exc:  # name still registered to an actor being torn down
        old = find(spec.name, namespace)
        if old is not None:
            ray.kill(old, no_restart=True)
        raise NameTaken(f"could not create actor {spec.name} yet: {exc}") from exc


def kill(handle: Any) -> None:
    """Kill the actor for good; an actor already gone is no error."""
    if handle is None:
        return
    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # already gone
        log.debug("kill of a dead actor", exc_info=True)


def call(handle: Any, method: str, *args: Any) -> ray.ObjectRef:
    """Send `handle.method(*args)`; the answer is taken later with `ready` / `result`."""
    return getattr(handle, method).remote(*args)


def ready(ref: ray.ObjectRef) -> bool:
    """Has the call answered (or failed)? Never waits."""
    return bool(ray.wait([ref], timeout=0)[0])


def result(ref: ray.ObjectRef, timeout: float | None = None) -> Any:
    """The call's answer; raises what the actor raised (or Ray's error about it)."""
    return ray.get(ref, timeout=timeout)


def answers(handle: Any, timeout: float) -> bool:
    """Does the actor answer a ping within `timeout` seconds?"""
    try:
        ray.get(handle.ping.remote(), timeout=timeout)
        return True
    except Exception:
        return False


def settle(refs: list[ray.ObjectRef], timeout: float) -> list[ray.ObjectRef]:
    """Wait up to `timeout` for these calls; the ones that answered (blocking: never under the lock)."""
    return ray.wait(refs, num_returns=len(refs), timeout=timeout)[0] if refs else []
