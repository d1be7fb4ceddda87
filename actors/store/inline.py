"""The async repositories run inline over the synchronous client, for synchronous callers.

There is one source of query logic: the repositories are coroutines written against pymongo's
async API. A synchronous caller (the bus consumer's handlers and the outbox relay in pika
threads, the supervisor, CLIs, tests) needs no event loop to run them: through `Inline` wrappers
every database call is made at once on pymongo's synchronous client and handed back as an
awaitable that is already done (`Ready`), so the repository's coroutine never suspends and
`run_inline` drives it to its end in the caller's thread. Same queries, the synchronous client's
cost per call (measured in benchmarks/bench_bus.py: AsyncMongoClient costs 1.4-2x the CPU per
round trip), no thread hop.

Only database calls can be awaited this way: a coroutine that waits on anything else (a sleep, a
task, `asyncio.gather`) is stopped with a RuntimeError naming what it waited on.
"""
from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from actors.store.client import AsyncStore

T = TypeVar("T")

# pymongo's async API returns these without an await (builders and handles); every other call
# of a wrapped object is a coroutine in the async API, so it is given back as a Ready awaitable
NOT_AWAITED = frozenset({"find", "find_raw_batches", "with_options", "get_collection", "get_database",
                         "sort", "limit", "skip", "batch_size", "hint", "max_time_ms", "comment",
                         "collation", "allow_disk_use", "where", "max_await_time_ms", "rewind", "clone"})


class Ready:
    """An awaitable that is already done: awaiting it gives `value` without suspending."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def __await__(self) -> Generator[Any, None, Any]:
        if self.error is not None:
            raise self.error
        return self.value
        yield  # unreachable: it makes __await__ a generator that never yields


class Inline:
    """A synchronous pymongo object (database, collection, cursor, change stream) with the async
    API's shape: its calls happen now; what the async API awaits comes back as `Ready`."""

    __slots__ = ("target",)

    def __init__(self, target: Any):
        self.target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.target, name)
        if not callable(value):
            return wrap(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*(unwrap(a) for a in args), **{k: unwrap(v) for k, v in kwargs.items()})
            result = self if result is self.target else wrap(result)   # a builder returns its cursor
            return result if name in NOT_AWAITED else Ready(result)
        return call

    def __getitem__(self, name: str) -> "Inline":
        return Inline(self.target[name])

    def __aiter__(self) -> "Inline":
        return self

    def __anext__(self) -> Ready:
        try:
            return Ready(wrap(next(self.target)))
        except StopIteration:
            return Ready(error=StopAsyncIteration())

    async def __aenter__(self) -> "Inline":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.target.close()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Inline) and self.target == other.target

    def __hash__(self) -> int:
        return hash(self.target)

    def __repr__(self) -> str:
        return f"Inline({self.target!r})"


def wrap(value: Any) -> Any:
    """Database, collection, cursor or change stream -> its Inline view; anything else as is."""
    if isinstance(value, (MongoClient, Database, Collection)) or hasattr(value, "try_next") or (
            hasattr(value, "__next__") and hasattr(value, "alive")):
        return Inline(value)
    return value


def unwrap(value: Any) -> Any:
    return value.target if isinstance(value, Inline) else value


def run_inline(awaitable: Coroutine[Any, Any, T] | Ready) -> T:
    """Drive `awaitable` (a coroutine over Inline objects) to its end in this thread; its result."""
    steps = awaitable.__await__()
    try:
        waited = steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError(f"a store coroutine run inline waited on {waited!r}: only database calls can "
                       "be awaited inline (an asyncio caller uses AsyncStore)")


class InlineStore(AsyncStore):
    """An AsyncStore whose repositories run inline over `db`, a synchronous Database (no loop)."""

    def __init__(self, uri: str, db_name: str, db: Database):
        super().__init__(uri, db_name)
        self._inline: dict[str, Any] = {"db": Inline(db)}

    def __reduce__(self):
        raise TypeError("an InlineStore is its process's own: pickle the Store")

    def _repos(self) -> dict[str, Any]:
        return self._inline
