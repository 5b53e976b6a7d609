"""Lifecycle: wire the roles together, run them as named tasks, and shut down in one written-down order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Iterator

from . import http, logs
from .acknowledge import Acknowledger
from .breaker import Breaker
from .config import Settings
from .consumer import Consumer
from .depth import sample_forever
from .dispatcher import Dispatcher
from .handler import Handler, load_handler
from .heartbeat import heartbeat
from .metrics import Metrics
from .poller import Poller
from .pruner import prune_forever
from .sqs import Sqs, queue_name
from .store import Store

READY_DB_FRESH_S = 10.0  # a commit this recent proves the database answers without another query


class App:
    """One sqs2pg service instance. ``run()`` returns after a clean shutdown once ``stop()`` is called."""

    def __init__(self, settings: Settings, handler: Handler | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics([queue_name(u) for u in settings.queue_urls])
        self.store = Store(settings, handler or load_handler(settings.handler))
        self.sqs = Sqs(settings, self.metrics)
        self.dispatcher = Dispatcher(settings.max_in_memory_messages)
        self.breaker = Breaker(settings.breaker_threshold, self.store.ping, self.metrics)
        self.probes = http.Probes()
        self.http_port: int | None = None
        self.pollers: list[Poller] = []
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()

    def stop(self) -> None:
        """Begin the clean shutdown (what SIGTERM and SIGINT do)."""
        self._stopping.set()

    async def started(self) -> None:
        """Wait until the service is receiving."""
        await self._started.wait()

    async def run(self) -> None:
        s = self.settings
        logs.event(logging.INFO, "starting", "start", queues=[queue_name(u) for u in s.queue_urls], database=s.redacted_database_url(), handler=s.handler)
        runner = None
        try:
            await self.store.open()
            await self.sqs.open()
            queues = {url: await self.sqs.describe(url) for url in s.queue_urls}
            acker = Acknowledger(self.sqs, self.metrics, queues, s.ack_flush_interval_ms / 1000)
            consumer = Consumer(s, self.store, self.dispatcher, acker, self.metrics, self.breaker)
            self.pollers = [
                Poller(url, s, self.sqs, self.dispatcher, acker, self.metrics, self.breaker, self._stopping)
                for url in s.queue_urls
                for _ in range(s.pollers_per_queue)
            ]
            self.probes.checks = {
                "database": self._database_ready,
                "circuit_closed": self._circuit_closed,
                "pollers": self._pollers_ready,
            }
            runner, self.http_port = await http.start(self.metrics, self.probes, s.http_host, s.http_port)
            async with asyncio.TaskGroup() as tg:
                # If any of these dies, the TaskGroup cancels the rest and the process exits non-zero.
                background = [
                    tg.create_task(acker.run(), name="acknowledge"),
                    tg.create_task(heartbeat(self.dispatcher, acker, s.visibility_timeout_s, s.heartbeat_fraction), name="heartbeat"),
                    tg.create_task(self._tick(), name="loop-tick"),
                    tg.create_task(self.breaker.run(), name="breaker"),
                ]
                if s.idempotency_retention_days > 0:
                    background.append(tg.create_task(
                        prune_forever(self.store, self.metrics, s.idempotency_retention_days * 86400, s.prune_interval_s, s.prune_batch_size),
                        name="prune",
                    ))
                if s.depth_sample_interval_s > 0:
                    background.append(tg.create_task(
                        sample_forever(self.sqs, self.metrics, list(queues.values()), s.depth_sample_interval_s),
                        name="depth",
                    ))
                workers = [tg.create_task(consumer.work(), name=f"worker-{i}") for i in range(s.max_concurrent_groups)]
                pollers = [tg.create_task(p.run(), name=f"poll-{p.name}-{i}") for i, p in enumerate(self.pollers)]
                logs.event(logging.INFO, "receiving", "start", http_port=self.http_port, workers=len(workers), pollers=len(pollers))
                self._started.set()
                await self._stopping.wait()
                await self._shutdown(consumer, acker, pollers, workers, background)
        finally:
            # Step 5 of the shutdown, and the clean-up after a crash alike.
            if runner is not None:
                await runner.cleanup()
            await self.sqs.close()
            await self.store.close()
        logs.event(logging.INFO, "stopped", "stop")

    async def _shutdown(
        self,
        consumer: Consumer,
        acker: Acknowledger,
        pollers: list[asyncio.Task[None]],
        workers: list[asyncio.Task[None]],
        background: list[asyncio.Task[None]],
    ) -> None:
        """The shutdown order. Everything that stops, stops here, in this order."""
        loop = asyncio.get_running_loop()
        s = self.settings
        stopped_at = loop.time()
        deadline = stopped_at + s.shutdown_grace_s
        logs.event(logging.INFO, "stopping", "stop", grace_s=s.shutdown_grace_s, held=self.dispatcher.held)
        # 1. Stop receiving. A long poll in progress is left to return (it may already have taken messages,
        #    and SQS cannot take a receive back); what it brings is handed back at once.
        # 2. Hand back every received-but-unstarted message with visibility 0, so other consumers can take
        #    those groups at once (a group's order holds: SQS keeps it locked while its head is in flight).
        await acker.release(self.dispatcher.close(), "shutdown")
        # 3. Let each worker finish the message it holds. At the deadline its handling is abandoned, rolled
        #    back and released (a commit that raced the deadline is recognised as a duplicate later).
        consumer.set_deadline(deadline)
        _, late = await asyncio.wait(workers, timeout=s.shutdown_grace_s + 5)
        # A long poll begun before the stop returns within receive_wait_s (+ 5 s for the network and the release).
        _, late_polls = await asyncio.wait(pollers, timeout=max(0.0, stopped_at + s.receive_wait_s + 5 - loop.time()))
        for task in late | late_polls:  # stuck in a call past every timeout: give up on it
            task.cancel()
        # 4. Stop the heartbeat and housekeeping, then flush the deletes of everything that committed.
        for task in background:
            if task.get_name() != "acknowledge":
                task.cancel()
        await acker.close()
        for task in background:
            task.cancel()

    async def _tick(self) -> None:
        while True:
            self.probes.tick()
            await asyncio.sleep(1)

    async def _database_ready(self) -> bool:
        if time.monotonic() - self.store.last_success < READY_DB_FRESH_S:
            return True
        return await self.store.ping()

    async def _circuit_closed(self) -> bool:
        return not self.breaker.is_open

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
