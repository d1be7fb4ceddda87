"""Every Ray actor name replydesk uses, in one place (what the dashboard shows, and how a
restarted supervisor, the router and the CLI find the actors). Names live in the config's
namespace (`settings.namespace`)."""
from __future__ import annotations

SUPERVISOR = "supervisor"
ROUTER = "router"                       # the outbox relay, the consumers and the AI dispatch
GATE = "ai:gate"                        # the AI workers' shared rate limit and breaker
SHEETS = "sheets:writer"
REVIEW = "review:desk"
NOTIFY = "notify:sender"


def ai_worker(index: int) -> str:
    return f"ai:{index}"


def browser(site: str, account_id: str) -> str:
    return f"browser:{site}:{account_id}"


def browser_host(node_id: str) -> str:
    """The node's session host (hosted layout): its Playwright driver, Chromium and sessions."""
    return f"browser-host:{node_id[:12]}"
