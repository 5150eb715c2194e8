"""Service configuration, read once from `HOTPOSE_*` environment variables (embedded defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTPOSE_", env_file=None)

    host: str = "127.0.0.1"
    port: int = 8000
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None picks CUDA when present
    threads: int | None = None  # torch CPU threads; None: torch's default
    # The default is the HoT-MixSTE we trained on CMU mocap (models/weights/README.md);
    # HOTPOSE_LIFTER=mixste serves the MixSTE trained the same way, HOTPOSE_LIFTER_WEIGHTS an
    # official or your own checkpoint.
    lifter: str = "hot_mixste"
    lifter_weights: Path | None = None  # None: the weights shipped in models/weights
    flip: bool = True  # test-time flip averaging in the lifter
    # The 2D stage (README, "choosing the 2D stage"): a person detector, a keypoint model on each
    # person's crop, a tracker; names from the registries of `hotpose.models.detector`.
    person_detector: str = "nanodet"  # "nanodet" (body-based) or "blazepose_face" (face-anchored)
    keypoints: str = "blazepose_full"  # "blazepose_full" or "blazepose_heavy"
    tracker: str = "motion"
    redetect_every: int = 10  # frames between person-detector runs while everyone is tracked
    lost_redetect_every: int = 2  # frames between person-detector runs while a tracked person is lost
    idle_redetect_every: int = 3  # frames between person-detector runs while nobody is in view
    track_max_gap_s: float = 3.0  # a person hidden up to this long keeps their id (and their lifter buffer)
    home: Path = Path("~/.cache/hotpose").expanduser()  # weights cache
    data_dir: Path = Path("~/.local/share/hotpose").expanduser()  # jobs (SQLite) and results

    # clip jobs
    max_upload_mb: float = 500.0
    max_clip_frames: int = 54_000  # 30 min at 30 fps
    max_clip_seconds: float = 1800.0
    max_frame_pixels: int = 3840 * 2160
    job_workers: int = 1  # clips processed at once (they share the models' batches)
    max_pending_jobs: int = 32  # queued or running clips; a new upload over this gets 429
    retention_hours: float = 24.0 * 7  # finished jobs and their files are deleted after this

    # live streams
    max_streams: int = 8
    live_stride: int = 8  # lifter runs every this many 30 fps grid frames per person
    live_flip: bool = False  # test-time flip on live streams (2x lifter cost)
    live_delay_frames: int = 30  # default delay of "delayed" emission (30 fps frames)
    live_queue: int = 2  # unprocessed frames kept per stream; older ones are dropped
    live_smoothing: bool = True  # one-euro filter on the 2D of live streams
    max_message_mb: float = 8.0
    stream_idle_s: float = 60.0  # a stream with no message for this long is closed (1008)

    # batching
    detector_max_batch: int = 8
    detector_max_wait_ms: float = 2.0
    lifter_max_batch: int = 16
    lifter_max_wait_ms: float = 5.0

    # access: comma-separated keys; empty = open (bind to localhost then)
    api_keys: str = Field(default="")

    @field_validator("home", "data_dir", "lifter_weights")
    @classmethod
    def _expand_user(cls, path: Path | None) -> Path | None:
        """`~` as a shell would expand it: compose files, `.env` files and systemd units do not."""
        return path.expanduser() if path is not None else None

    @property
    def keys(self) -> set[str]:
        return {k.strip() for k in self.api_keys.split(",") if k.strip()}
