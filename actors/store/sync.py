"""`Store`: the synchronous face of the store, for code that runs in threads (the bus consumer's
handlers and the outbox relay in pika threads, the supervisor and reconciler, CLIs, stand-ins,
benchmarks, tests).

There is one source of query logic, the async repositories (`AsyncStore`). `Store` runs them
inline over pymongo's synchronous client (actors/store/inline.py): `store.drafts.get(x)` drives
the repository's coroutine to its end in the caller's thread, with no event loop and no thread
hop, at the synchronous client's cost per call. Attributes that are not coroutine functions pass
through; objects with coroutine methods (a repository, the outbox reader and change stream, a
cursor) are wrapped the same way, async iteration and `async with` becoming their synchronous
forms. A repository's `coll` reads as its synchronous `Collection` (raw use, e.g. tests'
`find_one`), and a synchronous `Collection` passed in is given to the repository inline.

`store.sync(obj)` gives the same synchronous view of any object built over `store.inline` (e.g.
a desk `Reviewer` in a test) and `store.run(coro)` drives one coroutine over it. `Store.db` is
the synchronous `Database` (raw and admin use: backups, tests, benchmarks); `Store.aio` is an
`AsyncStore` of the same database for a coroutine handed a `Store` (a desk app in a test).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database

from actors.store.client import JOURNALED, REPOSITORIES, AsyncStore, OneDatabase, sync_client_for
from actors.store.inline import Inline, InlineStore, run_inline

T = TypeVar("T")


@functools.cache
def _asyncish(cls: type) -> bool:
    """Does `cls` have coroutine methods, async iteration or async context management?"""
    return any(inspect.iscoroutinefunction(getattr(cls, n, None)) or inspect.isasyncgenfunction(
        getattr(cls, n, None)) for n in dir(cls) if not n.startswith("__")) or hasattr(cls, "__aiter__")


class SyncView:
    """A synchronous view of an object whose methods are coroutines over Inline objects (see the
    module doc); its calls are driven with `run_inline`."""

    __slots__ = ("_target",)

    def __init__(self, target: Any):
        object.__setattr__(self, "_target", target)

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
        view gave out (its synchronous method) removes the replacement."""
        owner = getattr(getattr(value, "func", None), "__self__", None)
        if isinstance(owner, SyncView) and owner._target is self._target:
            vars(self._target).pop(name, None)
        else:
            setattr(self._target, name, value)

    def __delattr__(self, name: str) -> None:
        vars(self._target).pop(name, None)     # a replacement removed: the method shows again

    def __repr__(self) -> str:
        return f"SyncView({self._target!r})"

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, Inline):     # a repository's collection (raw use) or its cursor/stream
            t = value.target
            return t if isinstance(t, (Collection, Database)) else SyncView(value)
        return SyncView(value) if _asyncish(type(value)) else value

    def _unwrap(self, value: Any) -> Any:
        """A synchronous Collection argument is given to the repository inline."""
        if isinstance(value, Collection):
            return Inline(value)
        return value._target if isinstance(value, SyncView) else value

    def _args(self, args: tuple, kwargs: dict) -> tuple[list, dict]:
        return [self._unwrap(a) for a in args], {k: self._unwrap(v) for k, v in kwargs.items()}

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        a, k = self._args(args, kwargs)
        return self._wrap(run_inline(fn(*a, **k)))

    def _plain(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._wrap(fn(*args, **kwargs))

    def _iterate_call(self, fn: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        a, k = self._args(args, kwargs)
        return self._iterate(fn(*a, **k))

    def _iterate(self, iterable: Any) -> Iterator[Any]:
        it = iterable.__aiter__()
        while True:
            try:
                item = run_inline(it.__anext__())
            except StopAsyncIteration:
                return
            yield self._wrap(item)

    def __iter__(self) -> Iterator[Any]:
        return self._iterate(self._target)

    def __enter__(self) -> Any:
        return self._wrap(run_inline(self._target.__aenter__()))

    def __exit__(self, *exc: Any) -> Any:
        return run_inline(self._target.__aexit__(*exc))


class Store(OneDatabase):
    """The store for synchronous code: the repositories of `AsyncStore` (same attributes) run
    inline over the synchronous client (actors/store/inline.py: no loop, no thread hop). `db` is
    the synchronous Database (raw use); `inline` the InlineStore the repositories are made over;
    `aio` an AsyncStore of the same database (for coroutines on a loop); picklable."""

    def __init__(self, uri: str, db_name: str):
        super().__init__(uri, db_name)
        self.db: Database = sync_client_for(uri).get_database(db_name, write_concern=JOURNALED)
        self.aio = AsyncStore(uri, db_name)
        self.inline = InlineStore(uri, db_name, self.db)
        self._repos: dict[str, SyncView] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in REPOSITORIES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        repo = self._repos.get(name)
        if repo is None:
            repo = self._repos[name] = SyncView(getattr(self.inline, name))
        return repo

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Drive a coroutine over `self.inline` (e.g. a desk Reviewer's) in this thread; its result."""
        return run_inline(coro)

    def sync(self, obj: Any) -> Any:
        """A synchronous view of `obj`, an object with coroutine methods made over `self.inline`
        (e.g. a desk Reviewer in a test): its calls are driven in this thread."""
        return SyncView(obj)

    def ensure_indexes(self) -> None:
        run_inline(self.inline.ensure_indexes())

    def ping(self) -> bool:
        return run_inline(self.inline.ping())
