"""AI worker pool: classifies conversations and drafts replies (pending_review), never sends.

pool.AIPool starts a shared gate.AIGate (rate, concurrency, circuit breaker) and worker.AIWorker
actors; each worker asks an OpenAI-compatible endpoint through client.AIClient with the retry
policy of retry.py and validates the answer with schema.py / guard.py.
"""
