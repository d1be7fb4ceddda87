"""De-duplication middleware, and the two ways a consumer kind can be exactly-once per event id.

Each kind chooses one, explicitly:

- `ProcessedMarks()`: the consumer stores a processed mark per event id (one bulk write per batch,
  see actors/bus/batching.py) before it acks, and looks new deliveries up among the marks: an id
  already marked is acked without reaching the handler. Two durable writes per event (the effect
  and the mark); right for a handler whose effect has no unique key of its own.
- `EffectKeyed(key)`: the handler's effect has a unique key of its own (`key` says which, for the
  reader and the log): that key is the mark, so the consumer stores none and looks none up; a
  redelivery reaches the handler, which finds its effect done. One durable write per event.

Either way, a copy of an event id that is still being handled (running, waiting for its target,
or being marked) joins that work and is settled with it, never handled twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.bus.acks import Acks
from actors.bus.delivery import Delivery, Work


@dataclass(frozen=True)
class ProcessedMarks:
    """A processed mark per event id, stored before the ack and looked up on delivery."""
    stores_marks = True

    def seen(self, store: Any, kind: str, event_ids: list[str]) -> set[str]:
        return store.processed.seen_many(kind, event_ids)

    def __str__(self) -> str:
        return "processed marks"


@dataclass(frozen=True)
class EffectKeyed:
    """The effect's own unique key is the mark: nothing stored or looked up by the consumer."""
    key: str            # which key, e.g. "sheet_rows._id (the row id)"
    stores_marks = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ValueError(f"EffectKeyed(key={self.key!r}): name the effect's unique key")

    def seen(self, store: Any, kind: str, event_ids: list[str]) -> set[str]:
        return set()

    def __str__(self) -> str:
        return f"effect key {self.key}"


Dedupe = ProcessedMarks | EffectKeyed


class Deduplication:
    """Joins copies of an event id in hand to its work, and acks ids the strategy has seen."""

    def __init__(self, kind: str, strategy: Dedupe, store: Any, acks: Acks, stats: dict[str, int],
                 in_hand: tuple[dict[str, Work], dict[str, Work], dict[str, Work], dict[str, Work]]):
        if not isinstance(strategy, (ProcessedMarks, EffectKeyed)):
            raise TypeError(f"consumer {kind!r}: dedupe must be ProcessedMarks() or "
                            f"EffectKeyed(key), not {strategy!r}")
        self.kind, self.strategy, self.store, self.acks, self.stats = kind, strategy, store, acks, stats
        # every event id handed to the handler and not yet acked, by state: (running, done,
        # being marked, waiting for its target), the consumer's and its middleware's own dicts
        self._in_hand = in_hand

    def join(self, parsed: list[tuple[Delivery, Any]]) -> dict[str, tuple[Work, Any]]:
        """New work per event id not in hand; a copy of one in hand (or earlier in `parsed`)
        joins it as a duplicate: settled with the first copy, never handled twice."""
        running, done, marking, waiting = self._in_hand
        fresh: dict[str, tuple[Work, Any]] = {}
        for d, event in parsed:
            eid = event.event_id
            work = (running.get(eid) or done.get(eid) or marking.get(eid) or waiting.get(eid)
                    or (fresh.get(eid) or (None,))[0])
            if work is not None:
                work.duplicates += (d,)
                self.stats["duplicates"] += 1
            else:
                fresh[eid] = (Work(eid, d), event)
        return fresh

    def unseen(self, fresh: dict[str, tuple[Work, Any]]) -> list[tuple[Work, Any]]:
        """Ack the ids already processed (with their duplicates); the rest, to be handled.
        Raises the store's error (nothing acked then: the caller hands the batch again)."""
        seen = self.strategy.seen(self.store, self.kind, list(fresh))
        if not seen:
            return list(fresh.values())
        todo = []
        for event_id, (work, event) in fresh.items():
            if event_id in seen:
                self.acks.ack(work.deliveries())
                self.stats["duplicates"] += 1
            else:
                todo.append((work, event))
        return todo
