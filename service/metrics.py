"""Prometheus metrics (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("hotpose_http_requests_total", "HTTP requests", ["method", "route", "status"])
ACTIVE_STREAMS = Gauge("hotpose_active_streams", "Open WebSocket streams")
JOBS = Counter("hotpose_jobs_total", "Clip jobs by final status", ["status"])
FRAMES = Counter("hotpose_frames_processed_total", "Frames processed", ["source"])
FRAMES_DROPPED = Counter("hotpose_frames_dropped_total", "Live frames dropped under backpressure")
QUEUE_DEPTH = Gauge("hotpose_queue_depth", "Requests waiting for a model", ["model"])
BATCH_SIZE = Histogram("hotpose_batch_size", "Requests per model call", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64))
MODEL_SECONDS = Histogram(
    "hotpose_model_seconds",
    "Model call time",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
STAGE_SECONDS = Histogram(
    "hotpose_stage_seconds",
    "Per-stage latency (queue + model, decode)",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
