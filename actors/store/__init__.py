"""MongoDB store: one small repository module per collection; unique keys are the idempotency gate.
`AsyncStore` (pymongo's AsyncMongoClient) for coroutines; `Store`, its synchronous bridge, for
threads."""
from actors.store.bridge import Store
from actors.store.client import AsyncStore

__all__ = ["AsyncStore", "Store"]
