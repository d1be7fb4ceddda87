"""MongoDB store: one small repository module per collection; unique keys are the idempotency gate."""
from actors.store.client import Store

__all__ = ["Store"]
