from __future__ import annotations

import threading
import time
from pathlib import Path

from hotpose.service.jobs import ClipLimits, JobRunner, JobStore
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


def queue_clip(store: JobStore, clip: Path) -> str:
    job = store.create(clip.name)
    (store.dir(job.job_id) / "input.mp4").write_bytes(clip.read_bytes())
    return job.job_id


def wait_status(store: JobStore, job_id: str, statuses: tuple[str, ...], timeout: float = 30) -> str:
    end = time.time() + timeout
    while time.time() < end:
        job = store.get(job_id)
        assert job is not None
        if job.status in statuses:
            return job.status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}")


def test_stopping_the_runner_leaves_its_jobs_for_the_next_start(tmp_path: Path, astronaut_clip: Path) -> None:
    store = JobStore(tmp_path)
    started = threading.Event()
    # 0.5 s a frame: the clip would take 15 s, so a stop that waits for it is plain to see
    runner = JobRunner(store, lambda camera: SlowPipeline(started, 0.5), LIMITS, workers=1)  # type: ignore[arg-type, return-value]
    running, waiting = queue_clip(store, astronaut_clip), queue_clip(store, astronaut_clip)
    runner.submit(running)
    runner.submit(waiting)
    assert started.wait(30)
    t0 = time.monotonic()
    runner.close()
    assert time.monotonic() - t0 < 10  # it stops at the next frame, not after the clip
    first, second = store.get(running), store.get(waiting)
    assert first is not None and second is not None
    assert (first.status, first.error) == ("running", None)
    assert (second.status, second.error) == ("queued", None)

    again = JobRunner(store, lambda camera: SlowPipeline(threading.Event(), 0.0), LIMITS, workers=1)  # type: ignore[arg-type, return-value]
    assert again.recover() == [running, waiting]
    assert wait_status(store, running, ("done", "failed")) == "done"
    assert wait_status(store, waiting, ("done", "failed")) == "done"
    done = store.get(waiting)
    assert done is not None and done.frames_done == 30
    again.close()
    store.close()


def test_a_cancelled_job_is_forgotten_once_seen(tmp_path: Path, astronaut_clip: Path) -> None:
    store = JobStore(tmp_path)
    started = threading.Event()
    runner = JobRunner(store, lambda camera: SlowPipeline(started), LIMITS, workers=1)  # type: ignore[arg-type, return-value]
    running, waiting = queue_clip(store, astronaut_clip), queue_clip(store, astronaut_clip)
    runner.submit(running)
    runner.submit(waiting)
    assert started.wait(30)
    runner.cancel(waiting)  # still queued
    runner.cancel(running)
    end = time.time() + 30
    while runner._cancelled and time.time() < end:
        time.sleep(0.02)
    assert runner._cancelled == set()
    job = store.get(waiting)
    assert job is not None and job.status == "queued" and job.frames_done == 0
    runner.close()
    store.close()
