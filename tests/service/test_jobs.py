from __future__ import annotations

import threading
import time
from pathlib import Path

from hotpose.service.jobs import ClipLimits, JobRunner, Jobs, RunnerConfig
from hotpose.service.pipeline import FramePoses

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


ONE = RunnerConfig(workers=1)


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
    runner = JobRunner(store, lambda camera: SlowPipeline(threading.Event(), 0.0), LIMITS, RunnerConfig(1, poll_s=0.1))  # type: ignore[arg-type, return-value]
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
        JobRunner(Jobs.open(tmp_path, shared=True), make, LIMITS, RunnerConfig(2, poll_s=0.05)) for _ in range(2)
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
