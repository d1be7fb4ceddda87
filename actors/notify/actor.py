"""`Notifier`: the Ray actor ("notify:sender") the supervisor's `notify` consumers hand events to.

`add()` turns an event into a note and stores it (one document per target) and returns: the
consumer acks the event only then, and never waits for a delivery, so a slow or unreachable
notification service never holds the pipeline. A thread of its own delivers the stored notes
(see dispatcher.py) and is woken by every `add()`.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import pika
import ray

from actors.bus import deadletter
from actors.bus.connection import client_name, connect
from actors.bus.topology import Topology
from actors.notify import messages
from actors.notify.dispatcher import Dispatcher
from actors.store import Store
from contracts.draftstate import DraftStatus
from contracts import names, telemetry
from contracts.settings import Config

log = logging.getLogger("replydesk.notify")

ACTOR_NAME = names.NOTIFY
CONSUMER = "notify"               # the consumer header of a notification's own dead letter


class AppriseSender:
    """One apprise target (its URL is a secret: never logged, never in an error)."""

    def __init__(self, url: str):
        import apprise
        self._apprise = apprise
        self._url = url

    def send(self, title: str, body: str) -> str | None:
        a = self._apprise.Apprise()
        if not a.add(self._url):
            return "apprise cannot use this notification URL"
        with self._apprise.LogCapture(level=logging.WARNING) as captured:
            ok = a.notify(body=body, title=title)
        if ok:
            return None
        return " ".join(captured.getvalue().split())[:500] or "the target did not accept the notification"


def redactor(config: Config):
    secrets = sorted(config.secret_values(), key=len, reverse=True)

    def redact(text: str) -> str:
        for s in secrets:
            text = text.replace(s, "***")
        return text
    return redact


def make_dispatcher(config: Config, store: Store, **kw: Any) -> Dispatcher:
    senders = kw.pop("senders", None) or [AppriseSender(u.get_secret_value()) for u in config.notify_urls]
    return Dispatcher(config.app.notify, store.db["notifications"], senders,
                      redact=redactor(config), **kw)


def dead_letter_to_broker(config: Config):
    """Publish an undeliverable notification to the dead-letter exchange with the reason."""
    def publish(doc: dict[str, Any], reason: str) -> None:
        conn = connect(config, client_name(config, "notify-dead-letter"))
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            body = {k: doc.get(k) for k in ("note_id", "kind", "title", "account_id", "link")}
            import json
            props = deadletter.properties(pika.BasicProperties(message_id=doc["note_id"],
                                                               content_type="application/json"),
                                          reason=reason, consumer=CONSUMER,
                                          routing_key=f"notification.{doc['kind']}")
            channel.basic_publish(Topology.of(config).dlx, f"notification.{doc['kind']}",
                                  json.dumps(body).encode(), props)
        finally:
            conn.close()
    return publish


class NoteMaker:
    """Events -> notes, with what the store knows (the contact's name, the message's text)."""

    def __init__(self, config: Config, store: Store, desk_url: Any = None):
        self.config = config
        self.conf = config.app.notify
        self.store = store
        self.desk_url = desk_url          # a str, or a callable returning one (resolved late)

    def _desk(self) -> str | None:
        url = self.desk_url() if callable(self.desk_url) else self.desk_url
        return self.conf.desk_url or url

    def note(self, event: dict[str, Any]) -> messages.Note | None:
        """The event's note, or None when its kind is switched off (or a draft was superseded)."""
        kind = event.get("type")
        handler = self.HANDLERS.get(kind)      # type: ignore[arg-type]
        if handler is None:
            # routed here by the registry (contracts/events.py) but nobody wrote its note
            raise ValueError(f"notifier: no note for event type {kind!r} (add one to NoteMaker.HANDLERS)")
        switch, make = handler
        return make(self, event) if getattr(self.conf, switch) else None

    def _draft(self, event: dict[str, Any]) -> messages.Note | None:
        draft = self.store.drafts.get(event.get("draft_id", ""))
        if draft is not None and draft.get("status") == DraftStatus.SUPERSEDED:
            # a newer draft answers the conversation and is announced itself
            log.info("draft superseded before it was announced; not announced",
                     extra={"draft_id": event.get("draft_id"), "superseded_by": draft.get("superseded_by")})
            return None
        contact = text = None
        ids = event.get("message_ids") or []
        if ids:
            msg = self.store.messages.get(ids[-1])
            if msg is not None:
                contact, text = msg.sender, msg.text
        return messages.draft_note(event, contact=contact, message=text, desk_url=self._desk(),
                                   chars=self.conf.excerpt_chars)

    # event type -> (the NotifyConf switch that turns its notes on, how its note is made): one
    # entry per event type the registry routes to "notify", plus the dead-letter notices
    HANDLERS: dict[str, tuple[str, Any]] = {
        "draft.created": ("on_draft", _draft),
        "account.needs_login": ("on_needs_login", lambda self, e: messages.needs_login_note(e)),
        "child.failed": ("on_child_failed", lambda self, e: messages.child_failed_note(e)),
        "dead_letter.seen": ("on_dead_letter",
                             lambda self, e: messages.dead_letter_note(e, self.conf.excerpt_chars)),
    }


@ray.remote(num_cpus=0, max_concurrency=4)
class Notifier:
    def __init__(self, config: Config):
        telemetry.setup_from(config, "notify")
        self.config = config
        self.store = Store.from_config(config)
        self.dispatcher = make_dispatcher(config, self.store, dead_letter=dead_letter_to_broker(config))
        self.maker = NoteMaker(config, self.store, self._desk_url)
        self._desk: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _desk_url(self) -> str | None:
        if self._desk is None:
            try:
                desk = ray.get_actor(names.REVIEW, namespace=self.config.settings.namespace)
                self._desk = ray.get(desk.ping.remote(), timeout=5).get("url")
            except Exception:
                return None
        return self._desk

    def start(self) -> dict[str, Any]:
        self.dispatcher.ensure_indexes()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notify-dispatch", daemon=True)
            self._thread.start()
        return {"targets": len(self.dispatcher.senders), "pending": self.dispatcher.pending()}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.dispatcher.step()
            except Exception:
                log.exception("notification dispatch failed; retrying")
                wait = 1.0
            self._wake.wait(min(max(wait, 0.05), 5.0))
            self._wake.clear()

    def add(self, event: dict[str, Any], carrier: dict[str, str] | None = None) -> int:
        """Store the event's note (idempotent by event id); delivery happens on our own thread."""
        note = self.maker.note(event)
        if note is None:
            return 0
        with telemetry.span("notify.add", carrier, kind=note.kind):
            added = self.dispatcher.add([note])
        self._wake.set()
        return added

    def stats(self) -> dict[str, Any]:
        return {**self.dispatcher.stats, "pending": self.dispatcher.pending()}

    def ping(self) -> dict[str, Any]:
        return {"ok": True}

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
