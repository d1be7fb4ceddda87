"""Stores notes and delivers them: per notification target, at most `max_per_minute` messages in
any 60 s; a note alone when there is room, several as one digest when they come faster; a failed
send backs the target off exponentially (jittered) and counts an attempt on each note it carried;
a note out of attempts is marked `dead` and dead-lettered with the reason.

Every note is stored (one document per target, `_id` = event id + target) before the consumer acks
its event, so nothing is lost across crashes; a note is marked sent only after its target
accepted it (at-least-once: a crash between the two re-sends it once). The clock is injected:
tests drive time by hand and never sleep.
"""
from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import asdict
from typing import Any, Callable, Protocol

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from actors.notify.messages import Note, digest
from contracts.metrics import counter
from contracts.settings import NotifyConf

log = logging.getLogger("replydesk.notify")

SENT = counter("replydesk_notifications_sent_total", "Notification messages sent", ("kind",))
FAILED = counter("replydesk_notification_failures_total", "Failed notification sends")
DEAD = counter("replydesk_notifications_dead_total", "Notifications given up on (dead-lettered)")
WINDOW_S = 60.0


class Sender(Protocol):
    def send(self, title: str, body: str) -> str | None:
        """Deliver one message; None when the target accepted it, else why not."""


DeadLetterFn = Callable[[dict[str, Any], str], None]


class Dispatcher:
    def __init__(self, conf: NotifyConf, coll: Collection, senders: list[Sender], *,
                 clock: Callable[[], float] = time.time, dead_letter: DeadLetterFn | None = None,
                 redact: Callable[[str], str] = lambda s: s, rng: Callable[[], float] = random.random):
        self.conf = conf
        self.coll = coll
        self.senders = senders
        self.clock = clock
        self.dead_letter = dead_letter
        self.redact = redact
        self.rng = rng
        self._sent = [deque() for _ in senders]          # send times in the last minute, per target
        self._failures = [0] * len(senders)             # consecutive failures, per target
        self._retry_at = [0.0] * len(senders)
        self.stats = {"messages": 0, "digests": 0, "notes_sent": 0, "failures": 0, "dead": 0}

    def ensure_indexes(self) -> None:
        self.coll.create_index([("status", ASCENDING), ("target", ASCENDING), ("next_at", ASCENDING)])
        self.coll.create_index([("created", ASCENDING), ("_id", ASCENDING)])

    # ------------------------------------------------------------------ storing
    def add(self, notes: list[Note]) -> int:
        """Store each note once per target (a redelivered event adds nothing); how many are new."""
        now = self.clock()
        docs = [{**asdict(n), "_id": f"{n.note_id}#{t}", "target": t, "status": "pending",
                 "created": now, "next_at": now, "attempts": 0}
                for n in notes for t in range(len(self.senders))]
        if not docs:
            return 0
        try:
            return len(self.coll.insert_many(docs, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            return exc.details.get("nInserted", 0)
        except DuplicateKeyError:
            return 0

    # ------------------------------------------------------------------ delivering
    def step(self) -> float:
        """Deliver what is due now, within each target's rate; seconds until something is due."""
        now = self.clock()
        wait = WINDOW_S
        for t, sender in enumerate(self.senders):
            window = self._sent[t]
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            if now < self._retry_at[t]:
                wait = min(wait, self._retry_at[t] - now)
                continue
            due = list(self.coll.find({"status": "pending", "target": t, "next_at": {"$lte": now}})
                       .sort([("created", ASCENDING), ("_id", ASCENDING)])
                       .limit(self.conf.digest_max_items))
            if not due:
                nxt = self.coll.find_one({"status": "pending", "target": t}, sort=[("next_at", ASCENDING)])
                if nxt is not None:
                    wait = min(wait, max(0.0, nxt["next_at"] - now))
                continue
            budget = self.conf.max_per_minute - len(window)
            if budget <= 0:
                wait = min(wait, window[0] + WINDOW_S - now)
                continue
            if len(due) == 1 or len(due) < budget:     # room for each alone, one slot kept free
                for doc in due:
                    if not self._deliver(t, sender, [doc], doc["title"], doc["body"]):
                        break
            else:
                title, body = digest(due)
                self._deliver(t, sender, due, title, body)
            if self.coll.find_one({"status": "pending", "target": t, "next_at": {"$lte": now}}):
                wait = min(wait, self._blocked_for(t, self.clock()))
        return max(0.0, wait)

    def _blocked_for(self, t: int, now: float) -> float:
        """How long target `t` may not send: its backoff, or until its window has room."""
        window = self._sent[t]
        full = len(window) >= self.conf.max_per_minute
        return max(0.0, self._retry_at[t] - now, (window[0] + WINDOW_S - now) if full else 0.0)

    def _deliver(self, t: int, sender: Sender, docs: list[dict[str, Any]], title: str, body: str) -> bool:
        try:
            error = sender.send(title, body)
        except Exception as exc:   # a sender must not take the dispatcher down
            error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if error is None:
            self._sent[t].append(now)
            self._failures[t] = 0
            ids = [d["_id"] for d in docs]
            self.coll.update_many({"_id": {"$in": ids}},
                                  {"$set": {"status": "sent", "sent_at": now, "batch": len(docs)}})
            self.stats["messages"] += 1
            self.stats["notes_sent"] += len(docs)
            if len(docs) > 1:
                self.stats["digests"] += 1
            SENT.inc(tags={"kind": "digest" if len(docs) > 1 else docs[0]["kind"]})
            return True
        error = self.redact(" ".join(str(error).split()))[:500]
        self._failures[t] += 1
        self.stats["failures"] += 1
        FAILED.inc()
        delay = min(self.conf.backoff_max_s,
                    self.conf.backoff_initial_s * 2 ** (self._failures[t] - 1)) * (0.5 + self.rng() / 2)
        self._retry_at[t] = now + delay
        log.warning("notification not delivered; backing off",
                    extra={"target": t, "notes": len(docs), "error": error, "retry_in_s": round(delay, 2)})
        for doc in docs:
            attempts = doc.get("attempts", 0) + 1
            if attempts >= self.conf.max_attempts:
                reason = f"not delivered after {attempts} attempts; last error: {error}"
                self.coll.update_one({"_id": doc["_id"]}, {"$set": {
                    "status": "dead", "attempts": attempts, "last_error": error, "reason": reason}})
                self.stats["dead"] += 1
                DEAD.inc()
                log.error("notification dead-lettered", extra={"note": doc["_id"], "reason": reason})
                if self.dead_letter is not None:
                    try:
                        self.dead_letter(doc, reason)
                    except Exception:
                        log.exception("could not dead-letter a notification", extra={"note": doc["_id"]})
            else:
                self.coll.update_one({"_id": doc["_id"]}, {"$set": {
                    "attempts": attempts, "last_error": error, "next_at": now + delay}})
        return False

    def pending(self) -> int:
        return self.coll.count_documents({"status": "pending"})
