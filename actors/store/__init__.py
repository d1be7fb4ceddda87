"""MongoDB store: one small repository module per collection; unique keys are the idempotency gate.
`AsyncStore` (pymongo's AsyncMongoClient) for coroutines; `Store`, the same repositories run
inline over the synchronous client, for threads."""
from actors.store.sync import Store
from actors.store.client import AsyncStore

__all__ = ["AsyncStore", "Store"]
