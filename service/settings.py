"""Service configuration, read once from `HOTPOSE_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTPOSE_", env_file=None)

    host: str = "127.0.0.1"
    port: int = 8000
    device: str | None = None  # "cpu", "cuda", "cuda:1"; None picks CUDA when present
    lifter: str = "hot_mixste"
    lifter_weights: Path | None = None  # None: the weights shipped in models/weights
    home: Path = Path("~/.cache/hotpose").expanduser()  # weights cache
    data_dir: Path = Path("~/.local/share/hotpose").expanduser()  # jobs and results
