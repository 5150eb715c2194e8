"""BatchScheduler: requests from many threads merged into one model call, each answer to its caller.

Batches are made deterministic by holding the batch function on a gate: while the worker is stuck
in the first call, later requests pile up in the queue, and the next batch takes them all at once
(up to max_batch). No test asserts on speed; timeouts only keep a broken scheduler from hanging.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import pytest
from prometheus_client import REGISTRY

from hotpose.service.scheduler import BatchConfig, BatchResultError, BatchScheduler, SchedulerClosedError

TIMEOUT = 5.0  # seconds: a liveness bound, never a speed claim


class Model:
    """A batch function that records every batch it is called with.

    With `hold=True` every call blocks until `release()`, so a test can queue requests
    behind it; `entered` is set once that first call has started.
    """

    def __init__(self, hold: bool = False, fail: Callable[[list[int]], bool] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self._gate = threading.Event()
        if not hold:
            self._gate.set()
        self._fail = fail
        self._lock = threading.Lock()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, items: list[int]) -> Sequence[int]:
        with self._lock:
            self.batches.append(list(items))
        self.entered.set()
        assert self._gate.wait(TIMEOUT), "the test never released the held batch"
        if self._fail is not None and self._fail(items):
            raise RuntimeError(f"model failed on {items}")
        return [10 * x for x in items]

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


class CountingScheduler(BatchScheduler[int, int]):
    """Counts accepted submissions, so a test can wait until its requests are queued (also through `run`)."""

    def __init__(self, name: str, fn: Callable[[list[int]], Sequence[int]], config: BatchConfig) -> None:
        super().__init__(name, fn, config)
        self.submitted = threading.Semaphore(0)

    def submit(self, item: int) -> Future[int]:
        fut = super().submit(item)
        self.submitted.release()
        return fut

    def wait_submitted(self, n: int) -> None:
        for _ in range(n):
            assert self.submitted.acquire(timeout=TIMEOUT), "requests were not submitted in time"


MakeScheduler = Callable[..., CountingScheduler]


@pytest.fixture
def make_scheduler(request: pytest.FixtureRequest) -> Iterator[MakeScheduler]:
    """Schedulers named after the test (so its metric labels are its own), closed at teardown."""
    made: list[CountingScheduler] = []

    def make(
        model: Callable[[list[int]], Sequence[int]], max_batch: int = 8, max_wait_ms: float = 5.0
    ) -> CountingScheduler:
        name = f"{request.node.name}-{len(made)}"
        sched = CountingScheduler(name, model, BatchConfig(max_batch=max_batch, max_wait_ms=max_wait_ms))
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.close()


def hold_first_batch(sched: CountingScheduler, model: Model, item: int = 0) -> Future[int]:
    """Submit `item` alone and wait until the worker is stuck running it."""
    fut = sched.submit(item)
    sched.wait_submitted(1)
    assert model.entered.wait(TIMEOUT)
    return fut


def run(sched: BatchScheduler[int, int], items: list[int]) -> list[int]:
    """`sched.run(items)` with a timeout: `run` itself waits forever, so it runs on a daemon thread."""
    out: Future[list[int]] = Future()

    def target() -> None:
        try:
            out.set_result(sched.run(items))
        except Exception as e:  # noqa: BLE001 - handed to the test thread
            out.set_exception(e)

    threading.Thread(target=target, daemon=True).start()
    return out.result(timeout=TIMEOUT)


def metric(name: str, scheduler: str, label: str = "model") -> float:
    return REGISTRY.get_sample_value(name, {label: scheduler}) or 0.0


def test_run_returns_each_result_in_submission_order(make_scheduler: MakeScheduler) -> None:
    model = Model()
    sched = make_scheduler(model, max_batch=4)
    assert run(sched, list(range(20))) == [10 * x for x in range(20)]
    assert [x for b in model.batches for x in b] == list(range(20))  # first in, first out, nothing run twice


def test_submit_resolves_each_future_with_its_own_result(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model)
    first = hold_first_batch(sched, model, 7)
    futures = {x: sched.submit(x) for x in (3, 1, 2)}
    model.release()
    assert first.result(timeout=TIMEOUT) == 70
    assert {x: f.result(timeout=TIMEOUT) for x, f in futures.items()} == {3: 30, 1: 10, 2: 20}
    assert model.batches == [[7], [3, 1, 2]]  # the three shared one call


def test_batches_never_exceed_max_batch(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model, max_batch=3)
    first = hold_first_batch(sched, model)
    rest = [sched.submit(x) for x in range(1, 11)]
    model.release()
    assert [f.result(timeout=TIMEOUT) for f in [first, *rest]] == [10 * x for x in range(11)]
    assert model.batches == [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]


def test_lone_request_runs_alone_without_waiting_for_a_full_batch(make_scheduler: MakeScheduler) -> None:
    model = Model()
    sched = make_scheduler(model, max_batch=64, max_wait_ms=20)
    # each request waits for its answer before the next is sent: none can share a batch
    assert [sched.submit(x).result(timeout=TIMEOUT) for x in range(3)] == [0, 10, 20]
    assert model.batches == [[0], [1], [2]]


def test_concurrent_submitters_share_batches(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model, max_batch=16)
    first = hold_first_batch(sched, model, 99)
    threads, per_thread = 4, 3
    answers: dict[int, list[int]] = {}
    errors: list[Exception] = []
    start = threading.Barrier(threads)

    def caller(k: int) -> None:
        try:
            start.wait(TIMEOUT)
            answers[k] = sched.run([100 * k + i for i in range(per_thread)])
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    sched.wait_submitted(threads * per_thread)  # everyone is queued behind the held batch
    model.release()
    for w in workers:
        w.join(TIMEOUT)
        assert not w.is_alive(), "a caller is still waiting for its results"
    assert not errors
    assert first.result(timeout=TIMEOUT) == 990
    assert answers == {k: [10 * (100 * k + i) for i in range(per_thread)] for k in range(threads)}
    assert model.sizes == [1, threads * per_thread]  # all four threads in one model call
    merged = model.batches[1]
    for k in range(threads):  # each thread's requests stay in its own order inside the shared batch
        mine = [x for x in merged if x // 100 == k]
        assert mine == [100 * k + i for i in range(per_thread)]


def test_failed_batch_reaches_every_caller_and_later_requests_still_run(make_scheduler: MakeScheduler) -> None:
    broken = threading.Event()
    broken.set()
    model = Model(hold=True, fail=lambda items: broken.is_set())
    sched = make_scheduler(model)
    first = hold_first_batch(sched, model)
    futures = [sched.submit(x) for x in (1, 2, 3)]
    model.release()
    for f in [first, *futures]:
        with pytest.raises(RuntimeError, match="model failed"):
            f.result(timeout=TIMEOUT)
    # the shared batch is retried one request at a time before each caller gets its error
    assert model.batches == [[0], [1, 2, 3], [1], [2], [3]]
    with pytest.raises(RuntimeError, match="model failed"):
        run(sched, [4])
    broken.clear()
    assert run(sched, [5, 6]) == [50, 60]


def test_request_that_breaks_the_batch_fails_alone(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True, fail=lambda items: any(x < 0 for x in items))
    sched = make_scheduler(model)
    first = hold_first_batch(sched, model)
    good1, bad, good2 = (sched.submit(x) for x in (1, -1, 2))
    model.release()
    assert first.result(timeout=TIMEOUT) == 0
    assert good1.result(timeout=TIMEOUT) == 10
    assert good2.result(timeout=TIMEOUT) == 20
    with pytest.raises(RuntimeError, match=r"model failed on \[-1\]"):
        bad.result(timeout=TIMEOUT)
    assert model.batches == [[0], [1, -1, 2], [1], [-1], [2]]


def test_cancelled_request_never_reaches_the_model(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model)
    first = hold_first_batch(sched, model)
    keep, drop = sched.submit(1), sched.submit(2)
    assert drop.cancel()
    model.release()
    assert keep.result(timeout=TIMEOUT) == 10
    assert first.result(timeout=TIMEOUT) == 0
    assert model.batches == [[0], [1]]


def test_close_stops_the_worker_and_later_requests_fail(make_scheduler: MakeScheduler) -> None:
    model = Model()
    sched = make_scheduler(model)
    assert run(sched, [1]) == [10]
    worker = next(t for t in threading.enumerate() if t.name == f"batch-{sched.name}")
    sched.close()
    assert not worker.is_alive()
    fut = sched.submit(2)  # submit itself does not raise: the future carries the error
    with pytest.raises(SchedulerClosedError, match=re.escape(f"{sched.name} scheduler is closed")):
        fut.result(timeout=TIMEOUT)
    with pytest.raises(SchedulerClosedError, match="is closed"):
        run(sched, [3])
    assert model.batches == [[1]]
    sched.close()  # closing twice is harmless


def test_close_finishes_requests_queued_before_it(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model, max_batch=2)
    first = hold_first_batch(sched, model)
    queued = [sched.submit(x) for x in (1, 2, 3)]
    closer = threading.Thread(target=sched.close)
    closer.start()  # blocks in join until the worker has drained the queue
    model.release()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert [f.result(timeout=TIMEOUT) for f in [first, *queued]] == [0, 10, 20, 30]
    assert model.batches == [[0], [1, 2], [3]]


def test_wrong_number_of_results_fails_that_batch_and_the_scheduler_goes_on(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    short = {"on": True}
    sched = make_scheduler(lambda items: model(items)[:1] if short["on"] and len(items) > 1 else model(items))
    first = hold_first_batch(sched, model)
    a, b = sched.submit(1), sched.submit(2)
    model.release()
    assert first.result(timeout=TIMEOUT) == 0
    for f in (a, b):  # which result was whose is unknown: every caller of the batch hears it
        err = f.exception(timeout=TIMEOUT)
        assert isinstance(err, BatchResultError) and "1 results for a batch of 2" in str(err)
    short["on"] = False
    assert sched.submit(3).result(timeout=TIMEOUT) == 30  # the worker thread lived


def test_metrics_record_batches_latency_and_queue_depth(make_scheduler: MakeScheduler) -> None:
    model = Model(hold=True)
    sched = make_scheduler(model)
    name = sched.name
    first = hold_first_batch(sched, model)
    queued = [sched.submit(x) for x in (1, 2, 3)]
    gauge = "hotpose_queue_depth"
    assert metric(gauge, name) == 3  # three waiting behind the held batch
    model.release()
    for f in [first, *queued]:
        f.result(timeout=TIMEOUT)
    assert metric(gauge, name) == 0
    assert metric("hotpose_batch_size_count", name) == 2  # two model calls ...
    assert metric("hotpose_batch_size_sum", name) == 4  # ... of 1 and 3 requests
    assert metric("hotpose_model_seconds_count", name) == 2
    assert metric("hotpose_stage_seconds_count", name, label="stage") == 4  # one latency per request
