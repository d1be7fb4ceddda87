"""AIWorker: classify a conversation and store a draft for human review. Never sends anything.

The supervisor (or AIPool) calls `draft()` per conversation that got a new message. The draft id
is derived from the conversation's newest message, so a redelivered event finds the draft and
only re-queues its (idempotent) outbox event; the AI is not asked twice. At most one draft of a
conversation is open: a new one supersedes the older pending one, and one written from an older
history than an existing draft is superseded at once (two workers racing on one conversation).
A draft costs three database round trips: the reads, the insert, the event with the rest.

Concurrency: at most `app.ai.concurrency` AI requests are in flight per worker (the permits'
semaphore, also capped by the worker's share of `max_concurrent_requests`). It covers the HTTP
request only, so the MongoDB reads and writes of one draft overlap with the next draft's AI call
instead of holding a request slot.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import ray
from ray.exceptions import RayActorError

from actors.ai import metrics
from actors.ai.drafter import Drafter, Tally
from actors.ai.gate import get_or_create_gate
from actors.store import Store
from contracts import telemetry
from contracts.errors import DeadLetter
from contracts.events import ChatMessage, ConversationClassified, DraftCreated
from contracts.ids import account_hash, draft_id
from contracts.settings import Config

log = logging.getLogger(__name__)
T = TypeVar("T")
# MongoDB calls run off the event loop on a few threads per worker: journaled writes slow down
# sharply when many run at once (measured: 1 100/s with 1-4 writers, 350/s with 16), so more
# threads would only queue inside the database.
DB_THREADS = 3     # a draft's first round trip is three reads at once


def answered_messages(history: list[ChatMessage]) -> list[str]:
    """Ids of the incoming messages since our last outgoing one: what the draft replies to."""
    ids: list[str] = []
    for m in reversed(history):
        if m.direction == "out":
            break
        ids.append(m.message_id)
    return ids[::-1]


@ray.remote(num_cpus=0)
class AIWorker:
    def __init__(self, config: Config, index: int, namespace: str | None = None):
        self.name = f"ai:{index}"
        telemetry.setup_from(config, self.name)
        ai = config.app.ai
        self.history = ai.history_messages
        self.store = Store.from_config(config)
        self.gate = get_or_create_gate(config, namespace or config.settings.namespace)
        self._namespace = namespace or config.settings.namespace
        self._config = config
        self.drafter = Drafter.from_config(config, self.name,
                                           lease=lambda w, n: self._at_gate("lease", w, n),
                                           record=lambda w, o: self._at_gate("record", w, o))
        self.model = self.drafter.model
        self.permits = self.drafter.permits
        self._db_pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix=f"{self.name}-db")
        self.in_flight = 0
        self.counts = {"drafts": 0, "created": 0, "duplicates": 0, "classified": 0, "skipped": 0,
                       "dead_letters": 0, "errors": 0, "attempts": 0, "retries": 0, "tokens": 0,
                       "rate_limited": 0, "db_ms": 0.0}

    async def draft(self, account_id: str, conversation_id: str,
                    carrier: dict[str, str] | None = None) -> dict[str, Any]:
        """Classify the conversation; store a pending_review draft when it needs a reply.
        Returns {"draft_id": str | None, "classification": str | None, "created": bool}."""
        self.in_flight += 1
        self.counts["drafts"] += 1
        try:
            with telemetry.span("ai.draft", carrier, **{
                    "account.hash": account_hash(account_id), "conversation.id": conversation_id,
                    "ai.model": self.model, "ai.worker": self.name}) as span:
                result = await self._draft(span, account_id, conversation_id)
                span.set_attribute("ai.classification", result["classification"] or "")
                span.set_attribute("ai.created", result["created"])
                return result
        except DeadLetter as exc:
            self.counts["dead_letters"] += 1
            log.error("AI draft dead-lettered", extra={"conversation_id": conversation_id,
                                                       "account": account_hash(account_id),
                                                       "reason": exc.reason})
            raise
        except Exception as exc:
            self.counts["errors"] += 1
            log.error("AI draft failed", extra={"conversation_id": conversation_id,
                                                "account": account_hash(account_id),
                                                "error": f"{type(exc).__name__}: {exc}"})
            raise
        finally:
            self.in_flight -= 1

    async def _at_gate(self, method: str, *args: Any) -> Any:
        """Call the shared gate; a gate that died (the supervisor restarts it under the same
        name) is looked up again once."""
        try:
            return await getattr(self.gate, method).remote(*args)
        except RayActorError:
            self.gate = await asyncio.to_thread(get_or_create_gate, self._config, self._namespace)
            return await getattr(self.gate, method).remote(*args)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            return await loop.run_in_executor(self._db_pool, functools.partial(fn, *args))
        finally:
            self.counts["db_ms"] += (time.perf_counter() - t0) * 1000

    async def _draft(self, span: Any, account_id: str, conversation_id: str) -> dict[str, Any]:
        # independent lookups run at once: each round trip a draft waits for is taken from the
        # window of unacked events that keeps the AI endpoint busy
        (history, seq), latest, known = await asyncio.gather(
            self._db(self.store.messages.history, account_id, conversation_id, self.history),
            self._db(self.store.drafts.latest_for_conversation, account_id, conversation_id),
            self._db(self.store.conversations.get, account_id, conversation_id))
        if not history:
            raise DeadLetter(f"no stored messages for conversation {conversation_id!r}")
        last = history[-1]
        if last.direction == "out":
            # decided by sequence: the newest stored message is our reply, so every incoming one
            # before it was answered (the send path refuses a reply older than the conversation)
            self.counts["skipped"] += 1
            span.set_attribute("ai.skipped", "newest message is our reply")
            return {"draft_id": None, "classification": None, "created": False}
        did = draft_id(account_id, conversation_id, last.message_id)
        span.set_attribute("ai.draft_id", did)
        # the draft of this history, if written already, is the conversation's newest (a rare
        # older one written later only costs a second AI call; its insert is a no-op)
        existing = latest if latest is not None and latest["_id"] == did else None
        if existing is not None:  # redelivery: make sure its event is queued, do not ask again
            self.counts["duplicates"] += 1
            event = DraftCreated.make(draft_id=did, account_id=account_id,
                                      conversation_id=conversation_id,
                                      message_ids=existing["message_ids"],
                                      classification=existing["classification"], text=existing["text"])
            await self._db(self.store.outbox.add, [event], telemetry.inject())
            return {"draft_id": did, "classification": existing["classification"], "created": False}
        if known and known["last_message_id"] == last.message_id and known["draft_id"] is None:
            # redelivery of a conversation already classified as needing no reply
            self.counts["duplicates"] += 1
            await self._db(self.store.outbox.add, [self._classified(
                did, account_id, conversation_id, last.message_id, known["classification"])],
                telemetry.inject())
            return {"draft_id": None, "classification": known["classification"], "created": False}

        tally = Tally()
        try:
            answer = await self.drafter.classify(history, tally, context={
                "conversation_id": conversation_id, "account": account_hash(account_id)})
        finally:
            span.set_attributes(tally.attributes())
            for k in ("attempts", "retries", "tokens", "rate_limited"):
                self.counts[k] += getattr(tally, k)

        message_ids = answered_messages(history)
        carrier = telemetry.inject()
        drafts = self.store.drafts
        if answer.classification != "needs_reply":
            self.counts["classified"] += 1
            event = self._classified(did, account_id, conversation_id, last.message_id,
                                     answer.classification)
            await asyncio.gather(   # all idempotent: a redelivery after a crash redoes any
                self._db(functools.partial(
                    self.store.conversations.record_classification, account_id=account_id,
                    conversation_id=conversation_id, last_message_id=last.message_id,
                    classification=answer.classification, draft_id=None, seq=seq)),
                self._db(self.store.outbox.add, [event], carrier),
                # the newer reading of the conversation says no reply: an older draft is out of date
                self._db(drafts.supersede_older, account_id, conversation_id, seq, None,
                         f"the conversation, read again with newer messages, was classified "
                         f"{answer.classification!r}"))
            return {"draft_id": None, "classification": answer.classification, "created": False}

        doc = {"_id": did, "account_id": account_id, "conversation_id": conversation_id,
               "message_ids": message_ids, "last_message_id": last.message_id, "answers_seq": seq,
               "classification": answer.classification, "text": answer.reply,
               "reason": answer.reason, "model": self.model, "status": "pending_review",
               "ai": {"attempts": tally.attempts, "tokens": tally.tokens}}
        created = await self._db(drafts.insert, doc)
        self.counts["created" if created else "duplicates"] += 1
        if created:
            metrics.count("drafts", 1, self.model)
        event = DraftCreated.make(draft_id=did, account_id=account_id, conversation_id=conversation_id,
                                  message_ids=message_ids, classification=answer.classification,
                                  text=answer.reply or "")
        # after the draft is stored, at once (a redelivery finds it): its event, the conversation's
        # state, and at most one open draft per conversation: this one supersedes older ones, and
        # is itself superseded if a newer one was written while the AI answered
        _, _, others = await asyncio.gather(
            self._db(functools.partial(
                self.store.conversations.record_classification, account_id=account_id,
                conversation_id=conversation_id, last_message_id=last.message_id,
                classification=answer.classification, draft_id=did, seq=seq)),
            self._db(self.store.outbox.add, [event], carrier),
            self._db(drafts.rivals, account_id, conversation_id, did, seq))
        newer = next((d for d in others if (d.get("answers_seq") or 0) > seq), None)
        if newer is not None:
            await self._db(drafts.supersede, did, ("pending_review",), newer["_id"],
                           "a draft written from newer messages exists")
        elif any(d.get("status") == "pending_review" for d in others):
            await self._db(drafts.supersede_older, account_id, conversation_id, seq, did,
                           "newer messages arrived; a new draft answers them all")
        log.info("draft created", extra={"draft_id": did, "conversation_id": conversation_id,
                                         "account": account_hash(account_id),
                                         "superseded": newer is not None})
        return {"draft_id": did, "classification": answer.classification, "created": created}

    @staticmethod
    def _classified(did: str, account_id: str, conversation_id: str, last_message_id: str,
                    classification: str) -> ConversationClassified:
        return ConversationClassified.make(draft_id=did, account_id=account_id,
                                           conversation_id=conversation_id,
                                           last_message_id=last_message_id,
                                           classification=classification)

    async def ping(self) -> dict[str, Any]:
        return {"worker": self.name, "in_flight": self.in_flight,
                "breaker": self.permits.breaker.get("state")}

    async def stats(self) -> dict[str, Any]:
        return {"worker": self.name, "in_flight": self.in_flight, "model": self.model,
                "gate_leases": self.permits.leases, "breaker": dict(self.permits.breaker),
                **self.counts}

    async def stop(self) -> None:
        await self.drafter.client.close()
        self._db_pool.shutdown(wait=False)
