"""One chat account's browser session: extracts only NEW messages and sends only APPROVED replies.

`AccountSession` is the plain async class (tests drive it in-process); `BrowserSession` is the
same class as a Ray actor (num_cpus=0). The supervisor creates it, one per account:

    BrowserSession.options(name=f"browser:{site}:{account_id}", namespace=cfg.settings.namespace,
                           resources={"browser": 0.01}, max_restarts=0, max_task_retries=0,
                           max_concurrency=8).remote(cfg, account_id)

and restarts it itself. It is a composition of its three jobs, each a module of its own:
- lifecycle.py (`SessionLife`): the browser and the site on its page (the YAML-driven adapter,
  or the class the site spec names: site.py), the login handoff to a person, the reopen after a
  disconnect, and the status (`degraded` while any element of the site spec misses, named in
  `ping()`);
- reading.py (`SessionReader`): passes over the inbox, a live site's watched inbox, catching up
  on each conversation from its cursor (messages stored and emitted before the cursor moves);
- sender.py (`SessionSender`): the exactly-once send proof (approved -> sending -> sent,
  superseded or unproven).
"""
from __future__ import annotations

from datetime import datetime
from typing import Awaitable, Callable

import ray
from playwright.async_api import Browser

from actors.browser.lifecycle import SessionLife
from actors.browser.reading import SessionReader
from actors.browser.sender import EXIT_AFTER_SEND_CLICK, SessionSender  # noqa: F401  (tests' fault point)
from contracts import telemetry
from contracts.events import utcnow
from contracts.settings import Config


class AccountSession:
    def __init__(self, config: Config, account_id: str, clock: Callable[[], datetime] = utcnow,
                 browser_source: Callable[[], Awaitable[Browser]] | None = None):
        """`browser_source`: the hosted layout's shared browser (hosted.SessionHost), on which
        the session opens only its own context; without it the layout decides. `clock`: poll
        time (resolves times of day, decides revisits)."""
        telemetry.setup_from(config, f"browser:{account_id}")
        self.life = SessionLife(config, account_id, clock, browser_source)
        self.reader = SessionReader(self.life)
        self.sender = SessionSender(self.life, self.reader)
        self.life.on_resume = self.sender.send_waiting   # after a login handoff

    @property
    def store(self):
        return self.life.store

    @property
    def handle(self):
        return self.life.handle

    async def start(self) -> dict:
        """Open the browser with the stored session; log in only when it is missing or expired.
        A login challenge leaves the session alive in `needs_login`: it does not touch the site
        again until a person stores a new login state (`./run login ACCOUNT`), then resumes."""
        return await self.life.start()

    @ray.method(concurrency_group="health")
    async def ping(self) -> dict:
        return self.life.status()

    async def stop(self) -> None:
        """Close page, context and browser and delete this session's scratch directory."""
        await self.life.stop()

    async def poll(self, carrier: dict | None = None) -> dict:
        """One pass over the inbox; returns the ids of the messages emitted as new."""
        return await self.reader.poll(carrier)

    async def wake(self) -> None:
        """Run the waiting pass of a live site now (`poll_now`); a polled site's next pass is the
        supervisor's to schedule."""
        self.life.changed.set()

    async def send(self, event: dict, carrier: dict | None = None) -> dict:
        """Send one approved draft exactly once (sender.py)."""
        return await self.sender.send(event, carrier)


# the heartbeat has its own concurrency group: sends and polls waiting for the page can fill the
# default group's slots, and a session that cannot answer its ping looks hung to the supervisor
BrowserSession = ray.remote(num_cpus=0, concurrency_groups={"health": 2})(AccountSession)
