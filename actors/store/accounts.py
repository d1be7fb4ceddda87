"""Per-account state: browser storage state and per-conversation cursors. Never shared."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events import utcnow


class Accounts:
    def __init__(self, db: AsyncDatabase):
        self.state = db["account_state"]
        self.cursors = db["cursors"]

    async def ensure_indexes(self) -> None:
        await self.cursors.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING)],
                                  unique=True, name="account_conversation")

    async def storage_state(self, account_id: str) -> dict[str, Any] | None:
        doc = await self.state.find_one({"_id": account_id}, {"storage_state": 1})
        return doc.get("storage_state") if doc else None

    async def save_storage_state(self, account_id: str, state: dict[str, Any]) -> None:
        await self.state.update_one({"_id": account_id},
                              {"$set": {"storage_state": state, "saved_at": utcnow()}}, upsert=True)

    async def state_saved_at(self, account_id: str) -> Any:
        """When the login state was last stored (a person's `./run login` changes it)."""
        doc = await self.state.find_one({"_id": account_id}, {"saved_at": 1})
        return doc.get("saved_at") if doc else None

    async def set_needs_login(self, account_id: str, reason: str | None, state_at: Any) -> None:
        """Record (reason) or clear (None) that the account waits for a person to log in."""
        if reason is None:
            await self.state.update_one({"_id": account_id}, {"$unset": {"needs_login": ""}})
        else:
            await self.state.update_one({"_id": account_id}, {"$set": {"needs_login": {
                "reason": reason, "state_at": state_at, "at": utcnow()}}}, upsert=True)

    async def needs_login(self, account_id: str) -> dict[str, Any] | None:
        doc = await self.state.find_one({"_id": account_id}, {"needs_login": 1})
        return (doc or {}).get("needs_login")

    async def cursor(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return await self.cursors.find_one({"account_id": account_id, "conversation_id": conversation_id},
                                     {"_id": 0})

    async def cursors_of(self, account_id: str, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The cursors of these conversations, by conversation id (one query)."""
        docs = self.cursors.find({"account_id": account_id, "conversation_id": {"$in": conversation_ids}},
                                 {"_id": 0})
        return {d["conversation_id"]: d async for d in docs}

    async def set_cursor(self, account_id: str, conversation_id: str, **cursor: Any) -> None:
        await self.cursors.update_one({"account_id": account_id, "conversation_id": conversation_id},
                                {"$set": {**cursor, "updated_at": utcnow()}}, upsert=True)
