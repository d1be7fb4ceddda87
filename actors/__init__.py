"""Ray actors and the adapters they use (store, bus). Depends only on contracts."""
