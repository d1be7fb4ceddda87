"""Every sheet row that what MongoDB holds stands for (messages, drafts and their decisions,
sends, conversations classified as needing no reply), page by page: what the writer re-derives
after a crash (or when a sheet is configured later: it fills from the beginning) and what the
desk's CSV download holds when no sheet is configured. One mapping (rows.py) for both."""
from __future__ import annotations

from typing import Any, AsyncIterator, Callable

from actors.sheets.rows import Row, RowMapper
from actors.store import AsyncStore


async def stored_rows(store: AsyncStore, mapper: RowMapper,
                      accounts: list[str] | None = None) -> AsyncIterator[list[Row]]:
    """Pages of rows, source by source in _id order; `accounts`: only theirs (None: all).
    Outgoing messages have no row of their own (their send has), as on the event path."""
    m = mapper
    sources: list[tuple[Any, Callable[[dict], list[Row]]]] = [
        (store.messages.coll, lambda d: [] if d.get("direction") == "out" else [m.from_message_doc(d)]),
        (store.drafts.coll, m.draft_rows),
        (store.sends.coll, lambda d: [m.from_send_doc(d)]),
        (store.conversations.coll,
         lambda d: [r] if (r := m.from_classification_doc(d)) is not None else []),
    ]
    for coll, to_rows in sources:
        async for docs in store.sheet_rows.pages(coll):
            yield [r for d in docs if accounts is None or d.get("account_id") in accounts
                   for r in to_rows(d)]
