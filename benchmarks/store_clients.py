"""bench_store's client comparison: the store's calls as the asyncio callers make them (the desk,
the browser session, the sheets writer), through the synchronous client in `asyncio.to_thread`
(what replydesk does) vs pymongo's native `AsyncMongoClient` (issue 26, item 3).

The same operations both ways, on the same server, in interleaved rounds: a journaled
`insert_one` of a message, `find_one` by `_id`, and a conversation's newest 20 (the index the
store uses). Figures: flows per second (three calls a flow) and the client process's CPU per flow
(the server is another process; under a loaded machine CPU per flow is the steadier figure).
"""
from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from pymongo import AsyncMongoClient, MongoClient, WriteConcern

JOURNALED = WriteConcern(w=1, j=True)
INDEX = [("account_id", 1), ("conversation_id", 1), ("seq", -1)]


def _doc(i: int, tag: str) -> dict:
    return {"_id": f"{tag}-{i}", "account_id": "bench", "conversation_id": f"c{i % 50}", "seq": i,
            "text": f"message {i}: " + "lorem ipsum " * 8}


async def _flows(flow: Callable[[int], Awaitable[None]], n: int, concurrency: int) -> tuple[float, float]:
    """(flows per second, client CPU µs per flow) for n flows, `concurrency` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await flow(i)

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


async def _compare(uri: str, n: int, rounds: int, concurrencies: tuple[int, ...]) -> dict[str, list[tuple[float, float]]]:
    db_name = f"bench_clients_{uuid.uuid4().hex[:8]}"
    sync_client = MongoClient(uri, tz_aware=True)
    async_client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
    s = sync_client[db_name].get_collection("via_thread", write_concern=JOURNALED)
    a = async_client[db_name].get_collection("native", write_concern=JOURNALED)
    s.create_index(INDEX)
    await a.create_index(INDEX)
    out: dict[str, list[tuple[float, float]]] = {}
    try:
        for r in range(rounds):
            for c in concurrencies:
                tag = f"r{r}c{c}"

                async def via_thread(i: int) -> None:
                    await asyncio.to_thread(s.insert_one, _doc(i, tag))
                    await asyncio.to_thread(s.find_one, {"_id": f"{tag}-{i}"})
                    await asyncio.to_thread(lambda: s.find({"account_id": "bench", "conversation_id": f"c{i % 50}"})
                                            .sort("seq", -1).limit(20).to_list())

                async def native(i: int) -> None:
                    await a.insert_one(_doc(i, tag))
                    await a.find_one({"_id": f"{tag}-{i}"})
                    await a.find({"account_id": "bench", "conversation_id": f"c{i % 50}"}).sort("seq", -1).limit(20).to_list()

                out.setdefault(f"sync client in to_thread, {c} at once", []).append(await _flows(via_thread, n, c))
                out.setdefault(f"AsyncMongoClient, {c} at once", []).append(await _flows(native, n, c))
        counts = (s.count_documents({}), await a.count_documents({}))
    finally:
        sync_client.drop_database(db_name)
        sync_client.close()
        await async_client.close()
    out["_stored"] = [(float(counts[0]), float(counts[1]))]
    return out


def compare(uri: str, n: int, rounds: int, concurrencies: tuple[int, ...] = (1, 16)) -> dict[str, float]:
    """Run the comparison; print its table; return the figures (medians) for `check`."""
    raw = asyncio.run(_compare(uri, n, rounds, concurrencies))
    stored = raw.pop("_stored")[0]
    figures: dict[str, float] = {"client comparison: documents stored per client": min(stored) / (n * rounds * len(concurrencies))}
    print(f"\nfrom an asyncio caller: {n} flows (insert_one j=true, find_one, newest 20) x {rounds} "
          "interleaved rounds (median)")
    for label, runs in raw.items():
        rate = statistics.median(x[0] for x in runs)
        cpu = statistics.median(x[1] for x in runs)
        figures[f"{label}: flows/s"] = rate
        figures[f"{label}: client CPU us/flow"] = cpu
        print(f"{label:<40} {rate:>8,.0f} flows/s   client CPU {cpu:>7,.0f} µs/flow")
    for c in concurrencies:
        t, n_ = figures[f"sync client in to_thread, {c} at once: flows/s"], figures[f"AsyncMongoClient, {c} at once: flows/s"]
        ct, cn = (figures[f"sync client in to_thread, {c} at once: client CPU us/flow"],
                  figures[f"AsyncMongoClient, {c} at once: client CPU us/flow"])
        print(f"{c} at once: AsyncMongoClient {n_ / t:4.2f}x the flows/s, {cn / ct:4.2f}x the client CPU per flow")
    return figures
