from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from hotpose.service.deps import Ready
from hotpose.service.jobs import ClipLimits, JobRunner, Jobs, RunnerConfig
from hotpose.service.pipeline import FramePoses
from hotpose.service.routes.jobs import _tail
from hotpose.service.settings import Settings
from hotpose.service.stores.base import iter_frame_lines

LIMITS = ClipLimits(max_frames=1000, max_seconds=600.0, max_pixels=4096 * 4096)


class SlowPipeline:
    """Stands in for a PosePipeline: each frame takes a while and is answered with no people."""

    def __init__(self, started: threading.Event, delay: float = 0.05) -> None:
        self.started = started
        self.delay = delay

    def push(self, index: int, t: float, rgb: object) -> list[FramePoses]:
        self.started.set()
        time.sleep(self.delay)
        return [FramePoses(index, t, [])]

    def flush(self) -> list[FramePoses]:
        return []


ONE = RunnerConfig.from_settings(Settings(), workers=1)


def queue_clip(jobs: Jobs, clip: Path) -> str:
    """A queued job of this clip, as an upload makes one."""
    staged = jobs.staging_file()
    staged.write_bytes(clip.read_bytes())
    return jobs.create(clip.name, upload=staged).job_id


def wait_status(store: Jobs, job_id: str, statuses: tuple[str, ...], timeout: float = 30) -> str:
    end = time.time() + timeout
    while time.time() < end:
        job = store.get(job_id)
        assert job is not None
        if job.status in statuses:
            return job.status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}")


def test_stopping_the_runner_queues_its_jobs_again(tmp_path: Path, astronaut_clip: Path) -> None:
    store = Jobs.open(tmp_path)
    started = threading.Event()
    # 0.5 s a frame: the clip would take 15 s, so a stop that waits for it is plain to see
    runner = JobRunner(store, lambda camera: SlowPipeline(started, 0.5), LIMITS, ONE)  # type: ignore[arg-type, return-value]
    running, waiting = queue_clip(store, astronaut_clip), queue_clip(store, astronaut_clip)
    runner.start()
    assert started.wait(30)
    t0 = time.monotonic()
    runner.close()
    assert time.monotonic() - t0 < 10  # it stops at the next frame, not after the clip
    first, second = store.get(running), store.get(waiting)
    assert first is not None and second is not None
    assert (first.status, first.error, first.worker, first.attempts) == ("queued", None, None, 1)
    assert (second.status, second.error, second.attempts) == ("queued", None, 0)

    again = JobRunner(store, lambda camera: SlowPipeline(threading.Event(), 0.0), LIMITS, ONE)  # type: ignore[arg-type, return-value]
    assert again.recover() == [running, waiting]
    again.start()
    assert wait_status(store, running, ("done", "failed")) == "done"
    assert wait_status(store, waiting, ("done", "failed")) == "done"
    done = store.get(waiting)
    assert done is not None and done.frames_done == 30
    again.close()
    store.close()


def test_a_deleted_job_stops_and_the_next_one_runs(tmp_path: Path, astronaut_clip: Path) -> None:
    store = Jobs.open(tmp_path)
    started = threading.Event()
    runner = JobRunner(store, lambda camera: SlowPipeline(started), LIMITS, ONE)  # type: ignore[arg-type, return-value]
    running, waiting = queue_clip(store, astronaut_clip), queue_clip(store, astronaut_clip)
    runner.start()
    assert started.wait(30)
    store.delete(running)
    assert wait_status(store, waiting, ("done", "failed")) == "done"
    assert store.get(running) is None and running not in store.files.ids()
    assert runner._cancelled == set()
    runner.close()
    store.close()


def test_a_job_whose_worker_was_killed_is_taken_again_when_its_lease_ends(tmp_path: Path, astronaut_clip: Path) -> None:
    store = Jobs.open(tmp_path, shared=True)
    job_id = queue_clip(store, astronaut_clip)
    dead = store.table.claim("a-killed-worker", lease_s=0.5)  # took it, then renewed nothing
    assert dead is not None and dead.job_id == job_id
    runner = JobRunner(store, lambda camera: SlowPipeline(threading.Event(), 0.0), LIMITS, replace(ONE, poll_s=0.1))  # type: ignore[arg-type, return-value]
    assert runner.recover() == []  # a shared store: no start-up recovery, the lease decides
    runner.start()
    assert wait_status(store, job_id, ("done", "failed")) == "done"
    job = store.get(job_id)
    assert job is not None and job.attempts == 2 and job.frames_done == 30
    assert not store.table.update(job_id, worker="a-killed-worker", progress=0.5)  # fenced out
    runner.close()
    store.close()


def test_two_runners_run_every_job_exactly_once(tmp_path: Path, astronaut_clip: Path) -> None:
    store = Jobs.open(tmp_path, shared=True)
    ran: list[str] = []
    lock = threading.Lock()

    class Counting(SlowPipeline):
        def flush(self) -> list[FramePoses]:
            return []

    def make(camera: object) -> SlowPipeline:
        return Counting(threading.Event(), 0.0)

    ids = [queue_clip(store, astronaut_clip) for _ in range(10)]
    runners = [
        JobRunner(Jobs.open(tmp_path, shared=True), make, LIMITS, replace(ONE, workers=2, poll_s=0.05))
        for _ in range(2)
    ]  # type: ignore[arg-type]
    for r in runners:
        claim = r.jobs.table.claim

        def counted(worker: str, lease_s: float, claim=claim):  # type: ignore[no-untyped-def]
            job = claim(worker, lease_s)
            if job is not None:
                with lock:
                    ran.append(job.job_id)
            return job

        r.jobs.table.claim = counted  # type: ignore[method-assign]
        r.start()
    for job_id in ids:
        assert wait_status(store, job_id, ("done", "failed"), timeout=60) == "done"
    assert sorted(ran) == sorted(ids)
    for r in runners:
        r.close()
    store.close()


class LateOutput(SlowPipeline):
    """Stands in for a clip's first window: nothing out while frames go in, everything at the end."""

    def __init__(self, delay: float) -> None:
        super().__init__(threading.Event(), delay)
        self.held: list[FramePoses] = []

    def push(self, index: int, t: float, rgb: object) -> list[FramePoses]:
        self.held += super().push(index, t, rgb)
        return []

    def flush(self) -> list[FramePoses]:
        return self.held


def test_a_worker_renews_its_lease_while_frames_go_in_with_none_out(tmp_path: Path, astronaut_clip: Path) -> None:
    """30 frames x 0.1 s with no frame out until the end, under a 1 s lease: the lease is renewed as frames
    are read, so the other runner never takes the job (one attempt)."""
    store = Jobs.open(tmp_path, shared=True)
    job_id = queue_clip(store, astronaut_clip)
    config = replace(ONE, lease_s=1.0, poll_s=0.05)
    runners = [JobRunner(Jobs.open(tmp_path, shared=True), lambda c: LateOutput(0.1), LIMITS, config) for _ in range(2)]  # type: ignore[arg-type, return-value]
    for r in runners:
        r.start()
    assert wait_status(store, job_id, ("done", "failed")) == "done"
    job = store.get(job_id)
    assert job is not None and job.attempts == 1 and job.frames_done == 30
    for r in runners:
        r.close()
    store.close()


def test_a_worker_that_lost_its_job_stops_and_the_result_is_the_new_attempt_s(
    tmp_path: Path, astronaut_clip: Path
) -> None:
    """Runner A stalls past its lease mid-job; runner B takes the job and finishes it; A, waking, finds the job
    is not its own at its next renewal and stops: B's frames are the result, once each."""
    store = Jobs.open(tmp_path, shared=True)
    job_id = queue_clip(store, astronaut_clip)
    stalled, go_on = threading.Event(), threading.Event()

    class Stalls(SlowPipeline):
        def push(self, index: int, t: float, rgb: object) -> list[FramePoses]:
            if index == 5:
                stalled.set()
                go_on.wait(30)  # longer than the lease
            return super().push(index, t, rgb)

    config = replace(ONE, lease_s=0.5, poll_s=0.05)
    a = JobRunner(Jobs.open(tmp_path, shared=True), lambda c: Stalls(threading.Event(), 0.0), LIMITS, config)  # type: ignore[arg-type, return-value]
    a.start()
    assert stalled.wait(30)
    b = JobRunner(Jobs.open(tmp_path, shared=True), lambda c: SlowPipeline(threading.Event(), 0.0), LIMITS, config)  # type: ignore[arg-type, return-value]
    b.start()
    assert wait_status(store, job_id, ("done", "failed")) == "done"
    go_on.set()
    time.sleep(1.0)  # A goes on for a moment: it must notice at once and write nothing that counts
    job = store.get(job_id)
    assert job is not None and job.status == "done" and job.attempts == 2 and job.frames_done == 30
    lines = list(iter_frame_lines(store.files, job_id, job.attempts))
    assert [json.loads(line)["index"] for line in lines] == list(range(30))
    for r in (a, b):
        r.close()
    store.close()


def test_the_job_stream_goes_on_across_a_retake_with_each_frame_once(tmp_path: Path) -> None:
    """A client following a job whose worker died: the new attempt's lines it has already had are skipped."""
    jobs = Jobs.open(tmp_path, shared=True)
    job = jobs.create("clip.mp4")
    state = Ready(Settings(data_dir=tmp_path), None, jobs, Counter(), asyncio.Lock())  # type: ignore[arg-type]
    line = '{{"index": {i}}}'

    async def follow() -> list[int]:
        got: list[int] = []
        stream = _tail(state, job.job_id)
        first = jobs.table.claim("dies", lease_s=0.01)
        assert first is not None
        out = jobs.files.frames_writer(job.job_id, first.attempts)
        for i in range(4):
            out.write(line.format(i=i))
        got += [json.loads(x)["index"] for x in (await stream.__anext__()).splitlines()]
        out.close()  # the worker dies after frame 3
        time.sleep(0.05)
        second = jobs.table.claim("takes-over", lease_s=30)
        assert second is not None and second.attempts == 2
        out = jobs.files.frames_writer(job.job_id, second.attempts)
        for i in range(10):
            out.write(line.format(i=i))
        out.commit()
        out.close()
        jobs.table.update(job.job_id, worker="takes-over", status="done")
        async for chunk in stream:
            got += [json.loads(x)["index"] for x in chunk.splitlines()]
        return got

    assert asyncio.run(follow()) == list(range(10))
    jobs.close()
