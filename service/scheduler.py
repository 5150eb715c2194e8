"""One batching scheduler per model: requests from every clip job and live stream share batches.

A scheduler owns one worker thread (models never run on the event loop). `submit` returns a
`concurrent.futures.Future`; the worker takes the first waiting request, gathers more for up to
`max_wait_ms` or until `max_batch`, runs them as one call and resolves each future. A request that
makes the batch function fail fails alone: the batch is retried one request at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from hotpose.service import metrics

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class SchedulerClosedError(RuntimeError):
    """The scheduler was shut down before the request ran."""


class BatchResultError(RuntimeError):
    """The batch function returned a number of results other than the number of requests."""


@dataclass(frozen=True)
class BatchConfig:
    """One scheduler's batching (from `Settings.detector_max_*` / `lifter_max_*`)."""

    max_batch: int
    max_wait_ms: float


class BatchScheduler(Generic[I, O]):
    def __init__(self, name: str, fn: Callable[[list[I]], Sequence[O]], config: BatchConfig) -> None:
        self.name = name
        self.fn = fn
        self.config = config
        self._queue: queue.Queue[tuple[I, Future[O], float] | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"batch-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: I) -> Future[O]:
        fut: Future[O] = Future()
        with self._lock:  # never queued after close() put its sentinel: that request would wait forever
            if self._closed:
                fut.set_exception(SchedulerClosedError(f"{self.name} scheduler is closed"))
                return fut
            self._queue.put((item, fut, time.perf_counter()))
        metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())
        return fut

    def run(self, items: list[I]) -> list[O]:
        """Submit several requests and wait for all of them (from a worker thread, never the loop)."""
        futures = [self.submit(it) for it in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.perf_counter() + self.config.max_wait_ms / 1000
            stop = False
            while len(batch) < self.config.max_batch:
                timeout = deadline - time.perf_counter()
                try:
                    nxt = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())
            self._execute(batch)
            if stop:
                break
        while True:  # fail what is left
            try:
                rest = self._queue.get_nowait()
            except queue.Empty:
                break
            if rest is not None:
                rest[1].set_exception(SchedulerClosedError(f"{self.name} scheduler is closed"))

    def _execute(self, batch: list[tuple[I, Future[O], float]]) -> None:
        live = [b for b in batch if b[1].set_running_or_notify_cancel()]
        if not live:
            return
        t0 = time.perf_counter()
        metrics.BATCH_SIZE.labels(self.name).observe(len(live))
        try:
            results = self.fn([it for it, _, _ in live])
        except Exception as e:  # noqa: BLE001 - handed to the caller
            if len(live) == 1:
                log.warning("%s: request failed: %s", self.name, e)
                live[0][1].set_exception(e)
                return
            log.warning("%s: batch of %d failed; retrying one by one", self.name, len(live))
            for it, fut, t_in in live:
                try:
                    fut.set_result(self.fn([it])[0])
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(e)
                metrics.STAGE_SECONDS.labels(self.name).observe(time.perf_counter() - t_in)
            return
        done = time.perf_counter()
        metrics.MODEL_SECONDS.labels(self.name).observe(done - t0)
        if len(results) != len(live):  # a broken batch function: its callers hear it, the thread goes on
            err = BatchResultError(f"{self.name}: {len(results)} results for a batch of {len(live)} requests")
            log.error("%s", err)
            for _, fut, _ in live:
                fut.set_exception(err)
            return
        for (_, fut, t_in), res in zip(live, results, strict=True):
            fut.set_result(res)
            metrics.STAGE_SECONDS.labels(self.name).observe(done - t_in)
