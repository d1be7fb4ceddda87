"""Only the called actor's own death is a child's death: an actor error raised inside the
child's method (it called another actor that died) reaches the router as a RayTaskError and the
child, alive, is not reported dead."""
from __future__ import annotations

import pytest
import ray

from supervisor.router import actor_died
from tests.helpers import wait_for


@ray.remote(num_cpus=0)
class _Leaf:
    def ping(self) -> str:
        return "ok"


@ray.remote(num_cpus=0)
class _Child:
    def __init__(self, leaf):
        self.leaf = leaf

    def call_leaf(self) -> str:
        return ray.get(self.leaf.ping.remote())

    def alive(self) -> bool:
        return True


def _dead(actor, method: str = "ping") -> bool:
    try:
        ray.get(getattr(actor, method).remote(), timeout=30)
        return False
    except ray.exceptions.RayActorError:
        return True


def _error_of(ref) -> BaseException:
    with pytest.raises(Exception) as info:
        ray.get(ref, timeout=60)
    return info.value


def test_an_actor_error_inside_the_childs_call_is_not_the_childs_death(ray_session):
    leaf = _Leaf.remote()
    child = _Child.remote(leaf)
    assert ray.get(child.call_leaf.remote(), timeout=60) == "ok"
    ray.kill(leaf, no_restart=True)               # asynchronous: wait until it is gone
    wait_for(lambda: _dead(leaf), what="the leaf actor to be dead")
    inner = _error_of(child.call_leaf.remote())
    assert isinstance(inner, ray.exceptions.RayTaskError)
    assert isinstance(inner, ray.exceptions.RayActorError)    # Ray makes it look like one
    assert not actor_died(inner)
    assert ray.get(child.alive.remote(), timeout=60)          # and indeed the child is alive

    ray.kill(child, no_restart=True)
    wait_for(lambda: _dead(child, "alive"), what="the child actor to be dead")
    died = _error_of(child.alive.remote())
    assert isinstance(died, ray.exceptions.ActorDiedError) and actor_died(died)
    assert not actor_died(None) and not actor_died(ValueError("a handler's own error"))
