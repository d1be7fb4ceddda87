"""The one rule for a draft the conversation has moved past: when the contact wrote after the
history the draft answers, the draft is not sent, it is marked superseded (nothing was clicked),
and the draft of the newer messages answers the whole conversation. The desk applies it when a
reviewer decides, the browser session just before it clicks send."""
from __future__ import annotations

from typing import Any

from actors.store.client import AsyncStore
from contracts.events import ChatMessage


def newer_reason(count: int, when: str) -> str:
    return f"{count} newer message{'s' if count != 1 else ''} arrived {when}"


async def supersede_out_of_date(store: AsyncStore, draft: dict[str, Any], from_statuses: tuple[str, ...],
                                when: str) -> tuple[list[ChatMessage], str | None]:
    """The contact's messages newer than `draft` and, when there are any, the reason the draft
    (if still in one of `from_statuses`) was marked superseded; ([], None) when it is current."""
    newer = await store.messages.newer_than_draft(draft)
    if not newer:
        return [], None
    reason = newer_reason(len(newer), when)
    await store.drafts.supersede(draft["_id"], from_statuses, None, reason)
    return newer, reason

