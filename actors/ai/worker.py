"""AIWorker: classify a conversation and store a draft for human review. Never sends anything.

The supervisor (or AIPool) calls `draft()` per conversation that got a new message. The draft id
is derived from the conversation's newest message, so a redelivered event finds the draft and
only re-queues its (idempotent) outbox event; the AI is not asked twice. At most one draft of a
conversation is open: a new one supersedes the older pending one, and one written from an older
history than an existing draft is superseded at once (two workers racing on one conversation).
A draft costs three database round trips and four operations: two reads (the history and the
conversation's state), the insert, then its event and the conversation's state at once (which
also says what the draft supersedes, or that it is out of date itself).

Concurrency: at most `app.ai.concurrency` AI requests are in flight per worker (the permits'
semaphore, also capped by the worker's share of `max_concurrent_requests`). It covers the HTTP
request only, so the MongoDB reads and writes of one draft overlap with the next draft's AI call
instead of holding a request slot. The store is the AsyncStore (pymongo's AsyncMongoClient) on the
actor's event loop: no threads for database calls.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, TypeVar

import ray
from ray.exceptions import RayActorError

from actors.ai import metrics
from actors.ai.drafter import Drafter, Tally
from actors.ai.errors import AIGaveUp
from actors.ai.gate import get_or_create_gate
from actors.store import AsyncStore
from contracts import telemetry
from contracts.draftstate import DraftStatus
from contracts.errors import DeadLetter
from contracts.events import ConversationClassified, DraftCreated, answered_messages
from contracts.ids import account_hash, draft_id
from contracts.settings import Config

log = logging.getLogger(__name__)
T = TypeVar("T")


@ray.remote(num_cpus=0)
class AIWorker:
    def __init__(self, config: Config, index: int, namespace: str | None = None):
        self.name = f"ai:{index}"
        telemetry.setup_from(config, self.name)
        ai = config.app.ai
        self.history = ai.history_messages
        self.store = AsyncStore.from_config(config)
        self.gate = get_or_create_gate(config, namespace or config.settings.namespace)
        self._namespace = namespace or config.settings.namespace
        self._config = config
        self.drafter = Drafter.from_config(config, self.name,
                                           lease=lambda w, n: self._at_gate("lease", w, n),
                                           record=lambda w, o: self._at_gate("record", w, o))
        self.model = self.drafter.model
        self.permits = self.drafter.permits
        self.in_flight = 0
        self.counts = {"drafts": 0, "created": 0, "duplicates": 0, "classified": 0, "skipped": 0,
                       "dead_letters": 0, "handed_over": 0, "errors": 0, "attempts": 0, "retries": 0, "tokens": 0,
                       "rate_limited": 0, "db_ms": 0.0}

    async def draft(self, account_id: str, conversation_id: str,
                    carrier: dict[str, str] | None = None,
                    request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Classify the conversation; store a pending_review draft when it needs a reply.
        `request`: a person's DraftRequested (as JSON): with an instruction or a draft to
        replace, a new draft is written whatever drafts exist (see `_redraft`).
        Returns {"draft_id": str | None, "classification": str | None, "created": bool}."""
        self.in_flight += 1
        self.counts["drafts"] += 1
        try:
            with telemetry.span("ai.draft", carrier, **{
                    "account.hash": account_hash(account_id), "conversation.id": conversation_id,
                    "ai.model": self.model, "ai.worker": self.name}) as span:
                redraft = request and (request.get("instruction") or request.get("replaces"))
                result = await (self._redraft(span, account_id, conversation_id, request) if redraft
                                else self._draft(span, account_id, conversation_id))
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
            # not a database call: Ray's named-actor lookup blocks, so it runs in a thread
            self.gate = await asyncio.to_thread(get_or_create_gate, self._config, self._namespace)
            return await getattr(self.gate, method).remote(*args)

    async def _db(self, call: Awaitable[T]) -> T:
        """Await a store call, counting the time drafts waited on the database."""
        t0 = time.perf_counter()
        try:
            return await call
        finally:
            self.counts["db_ms"] += (time.perf_counter() - t0) * 1000

    async def _draft(self, span: Any, account_id: str, conversation_id: str) -> dict[str, Any]:
        # independent lookups run at once: each round trip a draft waits for is taken from the
        # window of unacked events that keeps the AI endpoint busy
        (history, seq), known = await asyncio.gather(
            self._db(self.store.messages.history(account_id, conversation_id, self.history)),
            self._db(self.store.conversations.get(account_id, conversation_id)))
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
        carrier = telemetry.inject()
        drafts = self.store.drafts
        # the conversation's state names the draft of its newest decision: a redelivery finds
        # it there (a crash between the draft's insert and this state costs one more AI call,
        # and the draft already stored is what its event carries)
        existing = (await self._db(drafts.get(did))
                    if known and known.get("draft_id") == did else None)
        if existing is not None:  # redelivery: make sure its event is queued, do not ask again
            self.counts["duplicates"] += 1
            await self._db(self.store.outbox.add([DraftCreated.of_draft(existing)], carrier))
            return {"draft_id": did, "classification": existing["classification"], "created": False}
        if known and known["last_message_id"] == last.message_id and known["draft_id"] is None:
            # redelivery of a conversation already classified as needing no reply
            self.counts["duplicates"] += 1
            await self._db(self.store.outbox.add([self._classified(
                did, account_id, conversation_id, last.message_id, known["classification"])],
                carrier))
            return {"draft_id": None, "classification": known["classification"], "created": False}

        tally = Tally()
        try:
            answer = await self.drafter.classify(history, tally, context={
                "conversation_id": conversation_id, "account": account_hash(account_id)})
        except AIGaveUp as exc:   # dead-lettered, and shown to a person in the desk with why
            self.counts["handed_over"] += 1
            await self._db(self.store.ai_failures.record(
                account_id, conversation_id, exc.reason,
                kind=exc.kind, last_message_id=last.message_id, seq=seq,
                message_ids=answered_messages(history), model=self.model, attempts=tally.attempts))
            raise
        finally:
            span.set_attributes(tally.attributes())
            for k in ("attempts", "retries", "tokens", "rate_limited"):
                self.counts[k] += getattr(tally, k)

        def record(draft_id: str | None) -> Awaitable[tuple[bool, dict[str, Any] | None]]:
            return self.store.conversations.record_classification(
                account_id=account_id, conversation_id=conversation_id,
                last_message_id=last.message_id, classification=answer.classification, seq=seq,
                known=known, draft_id=draft_id)
        if answer.classification != "needs_reply":
            self.counts["classified"] += 1
            event = self._classified(did, account_id, conversation_id, last.message_id,
                                     answer.classification)
            (recorded, before), _, _ = await asyncio.gather(   # idempotent: a redelivery redoes any
                self._db(record(None)),
                self._db(self.store.outbox.add([event], carrier)),
                self._db(self.store.ai_failures.clear(account_id, conversation_id, seq)))
            if recorded and before and before.get("draft_id"):
                # the newer reading of the conversation says no reply: an older draft is out of date
                await self._db(drafts.supersede_older(account_id, conversation_id, seq, None,
                               f"the conversation, read again with newer messages, was classified "
                               f"{answer.classification!r}"))
            return {"draft_id": None, "classification": answer.classification, "created": False}

        doc = {"_id": did, "account_id": account_id, "conversation_id": conversation_id,
               "message_ids": answered_messages(history), "last_message_id": last.message_id,
               "answers_seq": seq, "classification": answer.classification, "text": answer.reply,
               "reason": answer.reason, "model": self.model, "status": DraftStatus.PENDING,
               "ai": {"attempts": tally.attempts, "tokens": tally.tokens,
                      "context_retries": tally.context_retries}}
        if tally.cut:   # the model did not see the whole conversation: the reviewer should know
            doc["prompt_cut"] = tally.cut
        created = await self._db(drafts.insert(doc))
        self.counts["created" if created else "duplicates"] += 1
        if created:
            metrics.count("drafts", 1, self.model)
        else:   # stored by an earlier delivery: its event carries what is stored, not this answer
            doc = await self._db(drafts.get(did)) or doc
        # after the draft is stored, at once (a redelivery finds it): its event and the
        # conversation's state, which also says what it supersedes: at most one open draft per
        # conversation, so this one supersedes older ones, and is itself superseded at once if
        # one written from newer messages was recorded while the AI answered
        (recorded, other), _, _ = await asyncio.gather(
            self._db(record(did)),
            self._db(self.store.outbox.add([DraftCreated.of_draft(doc)], carrier)),
            self._db(self.store.ai_failures.clear(account_id, conversation_id, seq)))
        if not recorded:
            await self._db(drafts.supersede(did, (DraftStatus.PENDING,), other.get("draft_id"),
                           "a newer reading of the conversation exists"))
        elif other and other.get("draft_id") not in (None, did):
            await self._db(drafts.supersede_older(account_id, conversation_id, seq, did,
                           "newer messages arrived; a new draft answers them all"))
        log.info("draft created", extra={"draft_id": did, "conversation_id": conversation_id,
                                         "account": account_hash(account_id),
                                         "superseded": not recorded})
        return {"draft_id": did, "classification": answer.classification, "created": created}

    async def _redraft(self, span: Any, account_id: str, conversation_id: str,
                       request: dict[str, Any]) -> dict[str, Any]:
        """A new draft at a person's request: its id names the request (a redelivery finds it),
        the instruction goes to the model as data, and it supersedes the draft it replaces."""
        history, seq = await self._db(self.store.messages.history(account_id, conversation_id,
                                      self.history))
        if not history:
            raise DeadLetter(f"no stored messages for conversation {conversation_id!r}")
        last = history[-1]
        did = draft_id(account_id, conversation_id, f"{last.message_id}|{request['request']}")
        span.set_attribute("ai.draft_id", did)
        carrier = telemetry.inject()
        existing = await self._db(self.store.drafts.get(did))
        if existing is None:
            tally = Tally()
            try:
                answer = await self.drafter.classify(history, tally, context={
                    "conversation_id": conversation_id, "account": account_hash(account_id)},
                    instruction=request.get("instruction"))
            finally:
                span.set_attributes(tally.attributes())
            if not (answer.reply or "").strip():
                raise DeadLetter(f"asked for a new draft, the model wrote none (it classified the "
                                 f"conversation {answer.classification!r}: {answer.reason})")
            doc = {"_id": did, "account_id": account_id, "conversation_id": conversation_id,
                   "message_ids": answered_messages(history), "last_message_id": last.message_id,
                   "answers_seq": seq, "classification": "needs_reply", "text": answer.reply,
                   "reason": answer.reason, "model": self.model, "status": DraftStatus.PENDING.value,
                   "instruction": request.get("instruction"), "requested_by": request.get("requested_by"),
                   "replaces": request.get("replaces"),
                   "ai": {"attempts": tally.attempts, "tokens": tally.tokens}}
            created = await self._db(self.store.drafts.insert(doc))
            existing = doc if created else await self._db(self.store.drafts.get(did)) or doc
            self.counts["created" if created else "duplicates"] += 1
        else:
            created = False
            self.counts["duplicates"] += 1
        await self._db(self.store.outbox.add([DraftCreated.of_draft(existing)], carrier))
        if request.get("replaces") and request["replaces"] != did:
            await self._db(self.store.drafts.supersede(request["replaces"], (DraftStatus.PENDING,), did,
                           f"redrafted at {request.get('requested_by') or 'a reviewer'}'s request"))
        log.info("draft created at a person's request", extra={
            "draft_id": did, "conversation_id": conversation_id, "account": account_hash(account_id),
            "replaces": request.get("replaces"), "created": created})
        return {"draft_id": did, "classification": "needs_reply", "created": created}

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
                "endpoint": self.drafter.info.describe(), "requests": self.permits.limiter.stats(),
                **self.counts}

    async def stop(self) -> None:
        await self.drafter.client.close()
