"""Prometheus metrics. Label values for ``outcome`` are exactly the Outcome words used in logs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..errors import DATABASE_ERROR_KINDS, SQS_TRANSIENT_KINDS, Outcome

_AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
_HANDLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# The SQS calls sqs2pg makes on a source queue (label ``operation`` of sqs2pg_sqs_requests_total and
# sqs2pg_sqs_errors_total): describing it at start, sampling its depth, and the hot calls.
QUEUE_OPERATIONS = (
    "get_queue_attributes",
    "get_queue_url",
    "receive_message",
    "delete_message_batch",
    "change_message_visibility_batch",
)
# ... and on its dead-letter queue, counted under the dead-letter queue's name: the copies sent there, the depth.
DEAD_LETTER_QUEUE_OPERATIONS = ("send_message", "get_queue_attributes")


class Metrics:
    """All sqs2pg_ metrics, on a registry of their own (one per service instance)."""

    def __init__(self, queue_names: list[str] | tuple[str, ...] = ()) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("sqs2pg_messages", "Messages settled, by outcome", ["queue", "outcome"], registry=r)
        self.received = Counter("sqs2pg_received_messages", "Messages received from SQS", ["queue"], registry=r)
        self.handle_seconds = Histogram(
            "sqs2pg_handle_duration_seconds",
            "Time to handle one message: transaction and commit",
            ["queue"],
            buckets=_HANDLE_BUCKETS,
            registry=r,
        )
        self.age_seconds = Histogram(
            "sqs2pg_message_age_seconds",
            "End-to-end age at commit: now minus the message's SentTimestamp",
            ["queue"],
            buckets=_AGE_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "sqs2pg_in_flight_messages", "Messages held in memory: received and not yet settled", ["queue"], registry=r
        )
        self.sqs_requests = Counter(
            "sqs2pg_sqs_requests",
            "SQS API calls made (each is billed), by operation",
            ["queue", "operation"],
            registry=r,
        )
        self.sqs_errors = Counter(
            "sqs2pg_sqs_errors",
            "Failed SQS calls or batch entries, by operation and kind",
            ["queue", "operation", "kind"],
            registry=r,
        )
        self.db_errors = Counter(
            "sqs2pg_db_errors", "Failed database transactions, by kind", ["queue", "kind"], registry=r
        )
        self.pollers_up = Gauge(
            "sqs2pg_pollers_up",
            "1 when the queue was described and its last receive did not fail",
            ["queue"],
            registry=r,
        )
        self.receive_lanes = Gauge(
            "sqs2pg_receive_lanes",
            "Receive lanes open on the queue (adapts from 1 to SQS2PG_POLLERS_PER_QUEUE)",
            ["queue"],
            registry=r,
        )
        self.receives_in_flight = Gauge(
            "sqs2pg_receives_in_flight", "ReceiveMessage calls in flight on the queue", ["queue"], registry=r
        )
        self.breaker_open = Gauge(
            "sqs2pg_circuit_open", "1 while the database is unreachable and receiving is paused", registry=r
        )
        self.queue_messages = Gauge(
            "sqs2pg_queue_messages",
            "Approximate messages in the queue by state (visible, in_flight, delayed), sampled from GetQueueAttributes",
            ["queue", "state"],
            registry=r,
        )
        self.dead_letter_messages = Gauge(
            "sqs2pg_dead_letter_messages",
            "Approximate messages in the queue's dead-letter queue, sampled",
            ["queue"],
            registry=r,
        )
        self.quarantined_groups = Gauge(
            "sqs2pg_quarantined_groups",
            "Message groups quarantined (SQS2PG_ON_PERMANENT_ERROR=quarantine_group), sampled from the database",
            ["queue"],
            registry=r,
        )
        self.pruned = Counter("sqs2pg_idempotency_pruned", "Expired idempotency records deleted", registry=r)
        self.mapping_stale = Counter(
            "sqs2pg_mapping_stale_rows",
            "Rows SQS2PG_MAPPING did not update because the table's newer column was not older (the message commits)",
            ["table"],
            registry=r,
        )
        self.order_inversions = Counter(
            "sqs2pg_order_inversions",
            "Messages that arrived older than what their group already applied (the SQS server broke FIFO order): "
            "dead-lettered as out_of_order, never applied",
            ["queue"],
            registry=r,
        )
        self.sqs_up = Gauge(
            "sqs2pg_sqs_up", "1 while SQS answers sqs2pg's calls, 0 from the first one it leaves unanswered", registry=r
        )
        # Every series a dashboard or an alert reads exists from the start (tests/integration/test_alert_rules.py
        # checks that against the shipped rules and dashboard): a counter at 0, so that the first event is an
        # increase Prometheus sees (rate() and increase() need two samples of one series), and a histogram
        # with empty buckets. Gauges get their true value when it is known: sqs2pg_pollers_up 1 once the queue
        # was described (a Poller is made then), the depth gauges at the first sample (App.run takes it before
        # any work starts); a gauge at 0 before that would claim a dead poller or an empty queue that nobody
        # looked at.
        for q in queue_names:
            for outcome in Outcome:
                self.messages.labels(q, outcome.value)
            self.received.labels(q)
            self.handle_seconds.labels(q)
            self.age_seconds.labels(q)
            self.in_flight.labels(q)
            self.receive_lanes.labels(q)
            self.receives_in_flight.labels(q)
            self.quarantined_groups.labels(q)
            self.order_inversions.labels(q)
            for kind in DATABASE_ERROR_KINDS:
                self.db_errors.labels(q, kind)
            self._sqs_calls(q, QUEUE_OPERATIONS)

    def dead_letter_queue(self, name: str) -> None:
        """Create the series of a dead-letter queue's calls at 0 (its name is known once its queue was described)."""
        self._sqs_calls(name, DEAD_LETTER_QUEUE_OPERATIONS)

    def _sqs_calls(self, queue: str, operations: tuple[str, ...]) -> None:
        for operation in operations:
            self.sqs_requests.labels(queue, operation)
            for kind in SQS_TRANSIENT_KINDS:
                self.sqs_errors.labels(queue, operation, kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)
