"""Lifecycle: wire the roles together, run them as named tasks, and shut down in one written-down order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Iterator

from ..config import Settings
from ..db.pool import database_misconfigured, describe_database_error
from ..db.store import Store
from ..errors import StartupError
from ..handler import Handler, configured_handler
from ..message import queue_name
from ..observe import http, logs
from ..observe.metrics import Metrics
from ..sqs.client import ANSWER_WITHIN_S, Sqs
from .breaker import Breaker
from .deletes import DeleteBatcher
from .dispatcher import Dispatcher
from .holdings import Holdings
from .housekeeping import heartbeat, prune_forever, sample_forever, sample_once, sample_quarantines_forever
from .order import Verdicts
from .poller import Poller
from .ports import Database, Queues
from .settle import Settler
from .worker import Consumer

READY_DB_FRESH_S = 10.0  # a commit this recent proves the database answers without another query


class App:
    """One sqs2pg service instance. ``run()`` returns after a clean shutdown once ``stop()`` is called."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler | None = None,
        *,
        store: Database | None = None,
        sqs: Queues | None = None,
    ) -> None:
        """``store`` and ``sqs`` replace the real ones (the unit tests' in-memory fakes, tests/support/fakes.py)."""
        self.settings = settings
        self.metrics = Metrics([queue_name(u) for u in settings.queue_urls])
        if store is None:
            handler = handler or configured_handler(settings)
            if (count_stale := getattr(handler, "count_stale", None)) is not None:  # SQS2PG_MAPPING's
                count_stale(self.metrics.mapping_stale)
        self.store: Database = store or Store(settings, handler)  # type: ignore[arg-type]
        self.sqs: Queues = sqs or Sqs(settings, self.metrics)
        self.dispatcher = Dispatcher(settings.max_in_memory_messages)
        self.breaker = Breaker(settings.breaker_threshold, self.store.unavailable, self.metrics)
        self.probes = http.Probes()
        self.http_port: int | None = None
        self.pollers: list[Poller] = []
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()

    def stop(self) -> None:
        """Begin the clean shutdown (what SIGTERM and SIGINT do)."""
        self._stopping.set()

    @property
    def has_started(self) -> bool:
        return self._started.is_set()

    async def started(self) -> None:
        """Wait until the service is receiving."""
        await self._started.wait()

    async def run(self) -> None:
        """Start, run until stop(), shut down. StartupError when it cannot start (port, queues, SQS)."""
        s = self.settings
        logs.event(
            logging.INFO,
            "starting",
            "start",
            queues=[queue_name(u) for u in s.queue_urls],
            database=s.redacted_database_url(),
            handler=s.handler,
            envelope=s.envelope,
            on_permanent_error=s.on_permanent_error,
        )
        runner = None
        try:
            # The HTTP port first: a port in use fails at once, and /healthz answers while the rest starts.
            runner, self.http_port = await http.start(self.metrics, self.probes, s.http_host, s.http_port)
            await self.store.open()
            await self.sqs.open()
            queues = {url: await self.sqs.describe(url) for url in s.queue_urls}
            for info in queues.values():
                self.metrics.dead_letter_queue(queue_name(info.dlq_url))
            holdings = Holdings(max_unclaimed=s.pollers_per_queue)
            deletes = DeleteBatcher(self.sqs, holdings, s.ack_flush_interval_ms / 1000)
            settler = Settler(
                s, self.sqs, queues, self.dispatcher, self.breaker, holdings, deletes, self.metrics, self.store
            )
            consumer = Consumer(s, self.store, self.dispatcher, settler, deletes, self.breaker)
            # A described queue has its pollers up (sqs2pg_pollers_up 1) from here, not from the first receive that
            # returns: an idle queue's first long poll takes 20 s, and the gauge at 0 meanwhile looked like an outage.
            # Each queue's server as a replica judged its SequenceNumbers before, and each new verdict stored.
            verdicts = Verdicts(self.store)
            known = await verdicts.load()
            self.pollers = []
            for info in queues.values():
                poller = Poller(
                    info, s, self.sqs, self.dispatcher, settler, holdings, self.metrics, self.breaker, self._stopping
                )
                poller.order.verdict = known.get((info.name, info.created), poller.order.verdict)
                poller.on_judged = functools.partial(verdicts.remember, info)
                self.pollers.append(poller)
            # A server that broke a group's order under overlapping receives gets one receive at a time from then on.
            by_url = {p.url: p for p in self.pollers}
            settler.on_inversion = lambda url: by_url[url].serialise()
            if s.depth_sample_interval_s > 0:
                # The depth gauges' first values before anything else is served: a dashboard or an alert reading
                # them right after a (re)start sees the queue as it is, not a missing series.
                await sample_once(self.sqs, self.metrics, list(queues.values()), set())
            # A database that does not answer is not a reason to exit (a cluster still booting, a database not
            # created yet, a schema not migrated yet): say so now, start with the circuit open (nothing is
            # received, so no receive count grows) and let the breaker's probe find it.
            if (problem := await self.store.probe(s.db_connect_timeout_s)) is not None:
                if isinstance(problem, StartupError):  # SQS2PG_MAPPING does not match the tables
                    raise problem
                reason = describe_database_error(problem, s.redacted_database_url())
                if database_misconfigured(problem):
                    # Waiting cannot fix these; exiting lets the orchestrator restart the task with fresh settings
                    # (a rotated secret is read again at start).
                    raise StartupError(f"the database refuses these settings: {reason}")
                self.breaker.open(f"at start: {reason}")
            if s.writes_endpoint == "on":
                self.probes.writes = self.store.write_status
            self.probes.checks = {
                "database": self._database_ready,
                "circuit_closed": self._circuit_closed,
                "pollers": self._pollers_ready,
                "sqs": self._sqs_answers,
            }
            self.sqs.watching = True  # from here on, SQS not answering is one ERROR line (sqs/client.py)
            self.metrics.sqs_up.set(1)
            async with asyncio.TaskGroup() as tg:
                # If any of these dies, the TaskGroup cancels the rest and the process exits non-zero.
                deletes_task = tg.create_task(deletes.run(), name="deletes")
                background = [
                    tg.create_task(
                        heartbeat(self.dispatcher, settler, s.visibility_timeout_s, s.heartbeat_fraction),
                        name="heartbeat",
                    ),
                    tg.create_task(self._tick(), name="loop-tick"),
                    tg.create_task(self.breaker.run(), name="breaker"),
                ]
                background.append(  # with retention 0, records are kept: the days are still created ahead
                    tg.create_task(
                        prune_forever(
                            self.store,
                            self.metrics,
                            s.idempotency_retention_days * 86400 or None,
                            s.prune_interval_s,
                            s.prune_batch_size,
                        ),
                        name="prune",
                    )
                )
                if s.depth_sample_interval_s > 0:
                    background.append(
                        tg.create_task(
                            sample_forever(self.sqs, self.metrics, list(queues.values()), s.depth_sample_interval_s),
                            name="depth",
                        )
                    )
                if s.on_permanent_error == "quarantine_group":
                    background.append(
                        tg.create_task(
                            sample_quarantines_forever(
                                self.store, self.metrics, list(queues.values()), s.depth_sample_interval_s or 15
                            ),
                            name="quarantines",
                        )
                    )
                workers = [tg.create_task(consumer.work(), name=f"worker-{i}") for i in range(s.max_concurrent_groups)]
                pollers = [
                    tg.create_task(lane, name=f"poll-{p.name}-{i}")
                    for p in self.pollers
                    for i, lane in enumerate(p.runners())
                ]
                logs.event(
                    logging.INFO,
                    "receiving",
                    "start",
                    http_port=self.http_port,
                    workers=len(workers),
                    pollers=len(pollers),
                )
                self._started.set()
                await self._stopping.wait()
                await self._shutdown(consumer, settler, deletes, pollers, workers, background, deletes_task)
        finally:
            # Step 5 of the shutdown, and the clean-up after a crash or a failed start alike.
            if runner is not None:
                await runner.cleanup()
            await self.sqs.close()
            await self.store.close()
        logs.event(logging.INFO, "stopped", "stop")

    async def _shutdown(
        self,
        consumer: Consumer,
        settler: Settler,
        deletes: DeleteBatcher,
        pollers: list[asyncio.Task[None]],
        workers: list[asyncio.Task[None]],
        background: list[asyncio.Task[None]],
        deletes_task: asyncio.Task[None],
    ) -> None:
        """The shutdown order. Everything that stops, stops here, in this order."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.shutdown_grace_s
        logs.event(logging.INFO, "stopping", "stop", grace_s=s.shutdown_grace_s, held=self.dispatcher.held)
        # 1. Hand back every received-but-unstarted message with visibility 0, so other consumers can take
        #    those groups at once (a group's order holds: SQS keeps it locked while its head is in flight).
        #    From here on workers start nothing new, and handling still running at the deadline is abandoned,
        #    rolled back and released (a commit that raced the deadline is recognised as a duplicate later).
        await settler.release(self.dispatcher.close(), "shutdown")
        consumer.set_deadline(deadline)
        # 2. Stop receiving: each poller starts no new receive, and lets the one in flight finish (a long poll
        #    within SQS2PG_RECEIVE_WAIT_S, 5 s by default, so a stop fits `docker stop`'s 10 s) and hands back at
        #    once what it brought. Cut short instead, the poll would go on at the server, which would hand the
        #    next messages to a connection nobody reads: invisible until their visibility timeout, a restart
        #    would wait that long for them. Past the grace deadline a poll is cut anyway (it is then only a delay,
        #    never a loss or a reordering: their groups stay locked meanwhile).
        polls_s = min(s.receive_wait_s + ANSWER_WITHIN_S, max(0.0, deadline - loop.time()))
        _, late_polls = await asyncio.wait(pollers, timeout=polls_s)
        # 3. Let each worker finish the message it holds, until the deadline (plus the time to release).
        _, late = await asyncio.wait(workers, timeout=max(0.0, deadline + 5 - loop.time()))
        for task in late | late_polls:  # stuck in a call past every timeout: give up on it
            task.cancel()
        # 4. Stop the heartbeat and housekeeping, then flush the deletes of everything that committed.
        for task in background:
            task.cancel()
        await deletes.close()
        deletes_task.cancel()
        # 5. (in run's finally) close the HTTP port, the SQS client and the database pool.

    async def _tick(self) -> None:
        lag = 0.0
        while True:
            self.probes.tick(lag)
            before = time.monotonic()
            await asyncio.sleep(http.TICK_S)
            lag = time.monotonic() - before - http.TICK_S

    async def _database_ready(self) -> bool:
        if time.monotonic() - self.store.last_success < READY_DB_FRESH_S:
            return True
        return await self.store.ping()

    async def _circuit_closed(self) -> bool:
        return not self.breaker.is_open

    async def _sqs_answers(self) -> bool:
        return self.sqs.answering

    async def _pollers_ready(self) -> bool:
        return bool(self.pollers) and all(p.healthy for p in self.pollers) and not self._stopping.is_set()


@contextlib.contextmanager
def stop_on_signals(app: App) -> Iterator[None]:
    """SIGTERM/SIGINT begin the clean shutdown; a second one ends the process at once. Restores handlers."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            logs.event(logging.INFO, "signal received: stopping", "signal", signal=signal.Signals(signum).name)
            app.stop()
        elif main is not None:
            logs.event(logging.WARNING, "second signal: exiting now", "signal", signal=signal.Signals(signum).name)
            main.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
