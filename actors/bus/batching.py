"""Batched-ack middleware: acks only after the effect, one bulk write and one multiple-ack per batch.

The work whose effect is done is settled in batches on each step of the consumer thread. With
`ProcessedMarks` the batch is handed to a marker thread, which stores the batch's processed marks
in one bulk write (retrying while MongoDB refuses: the effects are done and must never run again)
while the consumer thread keeps receiving and dispatching; once stored, the consumer thread acks
the batch. With `EffectKeyed` the effect's own key is the mark and the batch is acked at once.
Either way the acks of a batch go out as one multiple-ack for the contiguous oldest run (see
actors/bus/acks.py), and the batch counts as handled (`stats["handled"]`, the consumed metric).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from queue import SimpleQueue
from typing import Any

from pymongo.errors import PyMongoError

from actors.bus import metrics
from actors.bus.acks import Acks
from actors.bus.dedupe import Dedupe
from actors.bus.delivery import Work
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.consumer")


class BatchedAck:
    def __init__(self, config: Config, kind: str, strategy: Dedupe, store: Any, acks: Acks,
                 stats: dict[str, int], stopping: threading.Event):
        self.config, self.kind, self.strategy, self.store = config, kind, strategy, store
        self.acks, self.stats, self._stopping = acks, stats, stopping
        self.done: dict[str, Work] = {}           # effect done: mark processed, then ack
        self.marking: dict[str, Work] = {}        # handed to the marker thread, not yet stored
        self._to_mark: SimpleQueue[list[Work] | None] = SimpleQueue()
        self._marked: deque[list[Work]] = deque()  # stored by the marker: ack them (our thread)
        self._marker: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle (per run)
    def start(self) -> None:
        """A fresh run: what an earlier run left was never acked (the broker redelivers it)."""
        self.done.clear()
        self.marking.clear()
        self._to_mark, self._marked = SimpleQueue(), deque()
        if self.strategy.stores_marks:
            self._marker = threading.Thread(target=self._mark_loop, args=(self._to_mark, self._marked),
                                            name=f"marker-{self.kind}", daemon=True)
            self._marker.start()

    def stop(self) -> None:
        self._to_mark.put(None)
        if self._marker is not None:
            self._marker.join(10.0)
            self._marker = None

    # ------------------------------------------------------------------ consumer thread
    def settle(self) -> None:
        """Hand the done work on to be marked (or straight to the acks), and ack what is marked."""
        if self.done:
            batch = list(self.done.values())
            self.marking.update(self.done)
            self.done.clear()
            if self.strategy.stores_marks:      # ack once the marker has stored the batch
                self._to_mark.put(batch)
            else:                               # the effect's own key is the mark: ack at once
                self._marked.append(batch)
        while self._marked:
            batch = self._marked.popleft()
            for w in batch:
                del self.marking[w.event_id]
            self.acks.ack([d for w in batch for d in (w.delivery, *w.duplicates)])
            metrics.CONSUMED.inc(len(batch), tags={"kind": self.kind})
            self.stats["handled"] += len(batch)

    # ------------------------------------------------------------------ marker thread
    def _mark_loop(self, to_mark: SimpleQueue, marked: deque) -> None:
        """Store each batch's processed marks (retrying: the effects are done and must never run
        again), then queue the batch for the consumer thread to ack."""
        delay = self.config.app.bus.reconnect_initial_s
        while (batch := to_mark.get()) is not None:
            while True:
                try:
                    self.store.processed.mark_many(self.kind, [w.event_id for w in batch])
                    marked.append(batch)
                    break
                except PyMongoError:
                    log.exception("could not mark events processed; retrying",
                                  extra={"consumer": self.kind, "events": len(batch)})
                    if self._stopping.wait(delay):
                        break   # never acked: redelivered after restart, recognised or re-run
