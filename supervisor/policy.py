"""Restart policy, Erlang/OTP style: one-for-one, permanent/transient children, a restart
intensity limit (at most N restarts in T seconds, then the child is failed and reported) and
exponential backoff with jitter between restarts."""
from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable


class RestartType(str, Enum):
    PERMANENT = "permanent"   # always restarted (browser sessions, AI workers, sheets writer)
    TRANSIENT = "transient"   # restarted only after an abnormal exit
    TEMPORARY = "temporary"   # never restarted


@dataclass
class RestartPolicy:
    max_restarts: int = 5
    within_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    jitter: float = 0.2
    clock: Callable[[], float] = time.monotonic
    _history: deque = field(default_factory=deque, repr=False)

    @classmethod
    def from_conf(cls, conf) -> "RestartPolicy":
        return cls(max_restarts=conf.max_restarts, within_s=conf.within_s,
                   backoff_initial_s=conf.backoff_initial_s, backoff_max_s=conf.backoff_max_s)

    def _trim(self, now: float) -> None:
        while self._history and now - self._history[0] > self.within_s:
            self._history.popleft()

    def should_restart(self, restart_type: RestartType, abnormal: bool = True) -> bool:
        """True if the intensity limit allows one more restart now (and the type wants one)."""
        if restart_type is RestartType.TEMPORARY or (restart_type is RestartType.TRANSIENT and not abnormal):
            return False
        self._trim(self.clock())
        return len(self._history) < self.max_restarts

    def record_restart(self) -> float:
        """Record a restart; return the backoff delay (seconds) to wait before doing it."""
        now = self.clock()
        self._trim(now)
        n = len(self._history)
        self._history.append(now)
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** n))
        return base * (1 + random.uniform(-self.jitter, self.jitter)) if base else 0.0

    @property
    def recent_restarts(self) -> int:
        self._trim(self.clock())
        return len(self._history)
