"""`Store`: the synchronous face of the store, for code that runs in threads (the bus consumer's
handlers in pika threads, the supervisor and reconciler, CLIs, stand-ins, benchmarks, tests).

There is one source of query logic, the async repositories (`AsyncStore`). `Store` runs them on
ONE background event loop per process (a daemon thread, started on first use):
`store.drafts.get(x)` submits the coroutine there and waits for its result. Attributes that are
not coroutine functions pass through; objects with coroutine methods (a repository, the outbox
reader and change stream, a cursor) are wrapped the same way, async iteration and `async with`
becoming their synchronous forms. Collections cross by name: a repository's `coll` reads as the
synchronous `Collection` of the same name and options (raw use, e.g. tests' `find_one`), and a
synchronous `Collection` passed in is given to the repository as its async twin.

`Store.db` is a synchronous pymongo `Database` (raw and admin use only: backups, tests,
benchmarks); no repository uses it. Calling the bridge from a coroutine on its own loop would
deadlock: it raises instead. Each call costs a thread hop (measured in benchmarks/bench_bus.py).
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.collection import Collection
from pymongo.database import Database

from actors.store.client import JOURNALED, AsyncStore, sync_client_for

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def bridge_loop() -> asyncio.AbstractEventLoop:
    """The process's bridge loop, started on first use."""
    global _loop, _thread
    loop, thread = _loop, _thread
    if loop is not None and thread is not None and thread.is_alive():
        return loop
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=serve, name="store-bridge", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
        return _loop


def _forget_after_fork() -> None:       # a forked child has no loop thread: start its own
    global _loop, _thread, _lock
    _loop, _thread, _lock = None, None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the bridge loop and wait for its result (from any other thread)."""
    loop = bridge_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError("the synchronous Store was called on its own bridge loop (it would wait "
                           "for itself forever): a coroutine uses AsyncStore and awaits")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


@functools.cache
def _asyncish(cls: type) -> bool:
    """Does `cls` have coroutine methods, async iteration or async context management?"""
    return any(inspect.iscoroutinefunction(getattr(cls, n, None)) or inspect.isasyncgenfunction(
        getattr(cls, n, None)) for n in dir(cls) if not n.startswith("__")) or hasattr(cls, "__aiter__")


class Bridged:
    """A synchronous view of an object whose methods are coroutines (see the module doc), made
    by a `Store` (whose synchronous `db` and `aio` translate collections)."""

    __slots__ = ("_target", "_store")

    def __init__(self, target: Any, store: "Store"):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_store", store)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):
            return functools.partial(self._call, value)
        if inspect.isasyncgenfunction(value):
            return functools.partial(self._iterate_call, value)
        if inspect.ismethod(value) or inspect.isfunction(value):
            return functools.partial(self._plain, value)
        return self._wrap(value)

    def __setattr__(self, name: str, value: Any) -> None:
        """Set on the target (a test replacing a repository method). Setting back what this
        view gave out (the bridged method) removes the replacement."""
        owner = getattr(getattr(value, "func", None), "__self__", None)
        if isinstance(owner, Bridged) and owner._target is self._target:
            vars(self._target).pop(name, None)
        else:
            setattr(self._target, name, value)

    def __delattr__(self, name: str) -> None:
        vars(self._target).pop(name, None)     # a replacement removed: the method shows again

    def __repr__(self) -> str:
        return f"Bridged({self._target!r})"

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, AsyncCollection):
            return _twin(value, self._store.db.client)
        if isinstance(value, AsyncDatabase):
            return self._store.db.client.get_database(value.name, codec_options=value.codec_options,
                                                      write_concern=value.write_concern)
        return Bridged(value, self._store) if _asyncish(type(value)) else value

    def _unwrap(self, value: Any) -> Any:
        """Runs on the loop: a synchronous Collection argument becomes its async twin."""
        if isinstance(value, Collection):
            return _twin(value, self._store.aio.db.client)
        return value._target if isinstance(value, Bridged) else value

    def _args(self, args: tuple, kwargs: dict) -> tuple[list, dict]:
        return [self._unwrap(a) for a in args], {k: self._unwrap(v) for k, v in kwargs.items()}

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            a, k = self._args(args, kwargs)
            return await fn(*a, **k)
        return self._wrap(run(call()))

    def _plain(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(fn(*args, **kwargs))

    def _iterate_call(self, fn: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        async def start() -> Any:
            a, k = self._args(args, kwargs)
            return fn(*a, **k)
        return self._iterate(run(start()))

    def _iterate(self, iterable: Any) -> Iterator[Any]:
        it = iterable.__aiter__()
        while True:
            try:
                item = run(it.__anext__())
            except StopAsyncIteration:
                return
            yield self._wrap(item)

    def __iter__(self) -> Iterator[Any]:
        return self._iterate(self._target)

    def __enter__(self) -> Any:
        return self._wrap(run(self._target.__aenter__()))

    def __exit__(self, *exc: Any) -> Any:
        return run(self._target.__aexit__(*exc))


def _twin(coll: Any, client: Any) -> Any:
    """The collection of the same name and options on `client` (sync <-> async)."""
    return client.get_database(coll.database.name).get_collection(
        coll.name, codec_options=coll.codec_options, read_preference=coll.read_preference,
        write_concern=coll.write_concern, read_concern=coll.read_concern)


class Store:
    """The store for synchronous code: the repositories of `AsyncStore` (same attributes), each
    call run on the bridge loop. `db` is synchronous (raw use); `aio` is the AsyncStore;
    picklable."""

    REPOSITORIES = ("accounts", "conversations", "messages", "drafts", "outbox", "ai_failures",
                    "dead_letters", "processed", "sends", "sheet_rows", "summaries")

    def __init__(self, uri: str, db_name: str):
        self.uri = uri
        self.db_name = db_name
        self.db: Database = sync_client_for(uri).get_database(db_name, write_concern=JOURNALED)
        self.aio = AsyncStore(uri, db_name)
        self._repos: tuple[asyncio.AbstractEventLoop | None, dict[str, Bridged]] = (None, {})

    @classmethod
    def from_config(cls, config) -> "Store":
        if config.settings.mongodb_uri is None:   # only `./run up` runs without it (it embeds one)
            raise ValueError("MONGODB_URI: not set (`./run up` starts its embedded database first)")
        return cls(config.settings.mongodb_uri, config.settings.mongodb_db)

    def __reduce__(self):  # picklable: rebuilt (with this process's clients) on the other side
        return (Store, (self.uri, self.db_name))

    def __getattr__(self, name: str) -> Any:
        if name not in Store.REPOSITORIES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        loop = bridge_loop()
        bound, repos = self._repos
        if bound is not loop:
            repos = {}
            self._repos = (loop, repos)
        repo = repos.get(name)
        if repo is None:       # the repository of the bridge loop's client

            async def get() -> Any:
                return getattr(self.aio, name)
            repo = repos[name] = Bridged(run(get()), self)
        return repo

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine (e.g. one over `self.aio`) on the bridge loop; its result."""
        return run(coro)

    def sync(self, obj: Any) -> Any:
        """A synchronous view of `obj`, an object with coroutine methods (e.g. a desk Reviewer
        made over `self.aio`): its calls run on the bridge loop."""
        return Bridged(obj, self)

    def ensure_indexes(self) -> None:
        run(self.aio.ensure_indexes())

    def ping(self) -> bool:
        return run(self.aio.ping())
