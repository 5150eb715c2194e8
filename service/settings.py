"""Service configuration, read once from `HOTPOSE_*` environment variables (embedded defaults).

Each field's `description` is its documentation: `settings_markdown()` renders the table in
docs/configuration.md from them (a test keeps the two equal).
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTPOSE_", env_file=None)

    host: str = Field(
        default="127.0.0.1",
        description="Address the server listens on (`hotpose serve --host` wins over it). "
        "`0.0.0.0` serves other machines: set `HOTPOSE_API_KEYS` first.",
    )
    port: int = Field(default=8000, description="TCP port of the server (`hotpose serve --port` wins over it).")
    device: str | None = Field(
        default=None, description="Where the models run: `cpu`, `cuda`, `cuda:1`; unset picks CUDA when present."
    )
    threads: int | None = Field(default=None, description="torch CPU threads; unset: torch's default.")
    # The default is the HoT-MixSTE we trained on CMU mocap (models/weights/README.md);
    # HOTPOSE_LIFTER=mixste serves the MixSTE trained the same way, HOTPOSE_LIFTER_WEIGHTS an
    # official or your own checkpoint.
    lifter: str = Field(
        default="hot_mixste",
        description="The 3D lifter: `hot_mixste` (the HoT-MixSTE trained on CMU mocap, shipped) or `mixste` "
        "(the MixSTE trained the same way, shipped); `tpc_mixste`, `mhformer`, `tpc_mhformer`, `motionbert`, "
        "`hot_motionbert` and `mlp` run with weights you give (`HOTPOSE_LIFTER_WEIGHTS`, docs/lifters.md).",
    )
    lifter_weights: Path | None = Field(
        default=None,
        description="An official or your own checkpoint for `HOTPOSE_LIFTER`; unset: the weights shipped in "
        "models/weights. A lifter with no weights serves 2D only.",
    )
    flip: bool = Field(
        default=True,
        description="Test-time flip averaging in the lifter for clip jobs (live streams: `HOTPOSE_LIVE_FLIP`).",
    )
    # The 2D stage: a person detector, a keypoint model on each person's crop, a tracker; names from
    # the registries of `hotpose.models.detector`.
    person_detector: str = Field(
        default="nanodet",
        description="Person detector: `nanodet` (NanoDet-g, finds people by their bodies) or "
        "`blazepose_face` (BlazePose's face-anchored detector, faster, misses small people).",
    )
    keypoints: str = Field(
        default="blazepose_full",
        description="Keypoint model run on each person's crop: `blazepose_full` or `blazepose_heavy`, or a "
        "heatmap model of the seed papers with its authors' weights in `HOTPOSE_KEYPOINTS_WEIGHTS`: "
        "`transpose_r_a3`, `transpose_r_a4`, `transpose_h_s`, `transpose_h_a4`, `transpose_h_a6`, "
        "`tokenpose_t`, `tokenpose_s_v1`, `tokenpose_s_v2`, `tokenpose_b`, `tokenpose_l_d24`, "
        "`uniformer_s_256x192`, `uniformer_b_256x192`; at 384x288 `tokenpose_l_d24_384x288`, "
        "`uniformer_s_384x288`, `uniformer_b_384x288`.",
    )
    keypoints_weights: Path | None = Field(
        default=None,
        description="The checkpoint of a heatmap `HOTPOSE_KEYPOINTS` model, downloaded from its authors "
        "(hotpose ships none; where: docs/pose2d.md). Such a model without it refuses to start.",
    )
    tracker: str = Field(default="motion", description="Tracker that keeps each person's id: `motion`.")
    redetect_every: int = Field(
        default=10, description="Frames between person-detector runs while everyone is tracked."
    )
    lost_redetect_every: int = Field(
        default=2, description="Frames between person-detector runs while a tracked person is lost."
    )
    idle_redetect_every: int = Field(
        default=3, description="Frames between person-detector runs while nobody is in view."
    )
    track_max_gap_s: float = Field(
        default=3.0,
        description="Seconds a person may be hidden and keep their id (and their lifter buffer).",
    )
    home: Path = Field(
        default=Path("~/.cache/hotpose").expanduser(),
        description="Weights cache, filled by `hotpose fetch-weights`.",
    )
    data_dir: Path = Field(
        default=Path("~/.local/share/hotpose").expanduser(),
        description="Clip jobs: their SQLite state, uploads and results.",
    )

    # clip jobs
    max_upload_mb: float = Field(default=500.0, description="Largest clip upload in MB; a larger one gets 413.")
    max_clip_frames: int = Field(
        default=54_000, description="Most frames in a clip (30 min at 30 fps); a longer clip's job fails."
    )
    max_clip_seconds: float = Field(default=1800.0, description="Longest clip in seconds; a longer clip's job fails.")
    max_frame_pixels: int = Field(
        default=3840 * 2160,
        description="Most pixels in one frame or image (3840x2160), for clips and live streams alike.",
    )
    job_workers: int = Field(
        default=1,
        description="Clips processed at once by this server (they share the models' batches); 0: none here, "
        "other servers (or Ray ClipWorkers) take the queued clips from a shared job store.",
        ge=0,
    )
    job_db: str | None = Field(
        default=None,
        description="Where the jobs table lives: unset, SQLite in `HOTPOSE_DATA_DIR`; `postgresql://user@host/db` "
        "for servers on several machines (its queue uses SELECT ... FOR UPDATE SKIP LOCKED).",
    )
    results: str | None = Field(
        default=None,
        description="Where each job's upload and results live: unset, `HOTPOSE_DATA_DIR`/jobs; a directory; or "
        "`s3://bucket/prefix` (S3-compatible storage through boto3: credentials and `AWS_ENDPOINT_URL` as boto3 "
        "reads them) for servers on several machines.",
    )
    job_lease_s: float = Field(
        default=30.0,
        description="A clip worker renews its lease on its job twice a second (as it reads frames); a job whose "
        "worker has renewed nothing for this long (a killed process, a lost machine) is taken by another worker.",
        gt=0,
    )
    job_max_attempts: int = Field(
        default=3,
        description="A clip job is taken again when its worker stops (killed, or a model replica lost); one taken "
        "more often than this fails with the reason, so a clip that kills its workers cannot run forever.",
        ge=1,
    )
    gpu_memory_fraction: float | None = Field(
        default=None,
        description="The share of the GPU's memory one model replica may use (torch's per-process cap) when Ray "
        "Serve replicas share a GPU (`num_gpus` < 1); unset: no cap. Read by the Ray deployments only.",
        gt=0,
        le=1,
    )
    job_poll_s: float = Field(
        default=0.5, description="How often an idle clip worker looks for jobs queued by other servers.", gt=0
    )
    max_pending_jobs: int = Field(
        default=32, description="Clips queued or running at most; a new upload over this gets 429."
    )
    max_pending_jobs_per_key: int = Field(
        default=16,
        description="Clips queued, running or being uploaded at most per API key (with no keys set: per client "
        "address, except the server's own machine); a new upload over this gets 429. Half of "
        "`HOTPOSE_MAX_PENDING_JOBS` by default: one client cannot take every slot.",
    )
    min_upload_kbps: float = Field(
        default=256.0,
        description="Slowest clip upload accepted, in kilobits per second averaged from its start: after "
        "`HOTPOSE_UPLOAD_GRACE_S`, an upload that has sent less than this rate's worth is cut off with 408 "
        "and nothing is kept (slow-client protection); 0: no minimum.",
    )
    upload_grace_s: float = Field(
        default=10.0, description="Seconds an upload may send slower than `HOTPOSE_MIN_UPLOAD_KBPS` (a slow start)."
    )
    retention_hours: float = Field(
        default=24.0 * 7, description="Finished jobs and their files are deleted after this many hours."
    )

    # live streams
    max_streams: int = Field(default=8, description="Live streams at once; one more is closed with 1013.")
    max_streams_per_key: int = Field(
        default=4,
        description="Live streams at once per API key (with no keys set: per client address, except the "
        "server's own machine); one more is closed with 1013. Half of `HOTPOSE_MAX_STREAMS` by default: one "
        "client cannot take every slot.",
    )
    live_stride: int = Field(
        default=8, description="A stream's lifter runs every this many 30 fps grid frames per person."
    )
    live_flip: bool = Field(default=False, description="Test-time flip on live streams (2x the lifter's cost).")
    live_delay_frames: int = Field(default=30, description="Default delay of `delayed` emission, in 30 fps frames.")
    live_queue: int = Field(
        default=2, description="Unprocessed frames kept per stream; a newer frame drops the oldest (reported)."
    )
    live_smoothing: bool = Field(
        default=True, description="One-euro filter on the 2D sent on live streams (the lifter gets the raw 2D)."
    )
    max_message_mb: float = Field(
        default=8.0, description="Largest WebSocket frame message in MB; a larger one gets an `error` message."
    )
    stream_idle_s: float = Field(
        default=60.0, description="A stream with no message for this many seconds is closed (1008)."
    )

    # batching
    detector_max_batch: int = Field(default=8, description="Most frames in one batch of the detector scheduler.")
    detector_max_wait_ms: float = Field(
        default=2.0, description="Milliseconds the detector scheduler waits to fill a batch."
    )
    lifter_max_batch: int = Field(default=16, description="Most windows in one batch of the lifter scheduler.")
    lifter_max_wait_ms: float = Field(
        default=5.0, description="Milliseconds the lifter scheduler waits to fill a batch."
    )

    # access: comma-separated keys; empty = open (bind to localhost then)
    api_keys: str = Field(
        default="",
        description="Comma-separated API keys; empty: open to anyone who can reach it (keep it on localhost then).",
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins whose web pages may call the API from a browser (CORS), e.g. "
        "`https://app.example.com`; empty: none (the service's own page needs none).",
    )

    @field_validator("home", "data_dir", "lifter_weights", "keypoints_weights")
    @classmethod
    def _expand_user(cls, path: Path | None) -> Path | None:
        """`~` as a shell would expand it: compose files, `.env` files and systemd units do not."""
        return path.expanduser() if path is not None else None

    @property
    def keys(self) -> set[str]:
        return {k.strip() for k in self.api_keys.split(",") if k.strip()}

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def settings_markdown() -> str:
    """The settings as a markdown table (env var, type, default, description), from `Settings.model_fields`.

    docs/configuration.md holds this output between its marker comments; regenerate it with
    `python -m hotpose.service.settings docs/configuration.md` (`write_settings_table`).
    Paths under the home directory are written with `~`, so the table is the same on every machine.
    """
    prefix = str(Settings.model_config.get("env_prefix", ""))

    def type_name(annotation: Any) -> str:
        args = get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
            (inner,) = [a for a in args if a is not type(None)]
            return f"{type_name(inner)} (optional)"
        return "path" if annotation is Path else getattr(annotation, "__name__", str(annotation))

    def default_text(value: Any) -> str:
        if value is None:
            return "unset"
        if isinstance(value, bool):
            return "`true`" if value else "`false`"
        if isinstance(value, Path):
            home = Path("~").expanduser()
            value = "~/" + value.relative_to(home).as_posix() if value.is_relative_to(home) else value.as_posix()
        if isinstance(value, float):
            value = f"{value:g}"
        return f"`{value}`" if str(value) else "empty"

    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        cells = [f"`{prefix}{name.upper()}`", type_name(field.annotation), default_text(field.default)]
        cells.append((field.description or "").replace("|", "\\|"))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


TABLE_BEGIN, TABLE_END = "<!-- settings:begin -->\n", "<!-- settings:end -->"


def write_settings_table(doc: Path) -> None:
    """Replace the table between the marker comments of `doc` with `settings_markdown()`."""
    text = doc.read_text()
    if text.count(TABLE_BEGIN) != 1 or text.count(TABLE_END) != 1:
        raise ValueError(f"{doc}: needs one {TABLE_BEGIN.strip()} and one {TABLE_END} line")
    head, rest = text.split(TABLE_BEGIN)
    doc.write_text(head + TABLE_BEGIN + settings_markdown() + TABLE_END + rest.split(TABLE_END)[1])


if __name__ == "__main__":
    import sys

    write_settings_table(Path(sys.argv[1]))
