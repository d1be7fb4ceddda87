"""The bus's Ray metrics (no-ops outside Ray, see contracts.metrics)."""
from contracts.metrics import counter, gauge

PUBLISHED = counter("replydesk_events_published_total", "Outbox events confirmed by the broker")
CONSUMED = counter("replydesk_events_consumed_total", "Events processed and acked", ("kind",))
DEAD_LETTERED = counter("replydesk_events_dead_lettered_total", "Events sent to the dead queue",
                        ("kind",))
QUEUE_DEPTH = gauge("replydesk_queue_depth", "Ready messages per queue", ("queue",))
WAITED = counter("replydesk_events_waited_total",
                 "Deliveries handed again after a delay because their target was dead or restarting",
                 ("kind",))
