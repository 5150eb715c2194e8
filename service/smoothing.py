"""One-euro filter (Casiez et al., CHI 2012) for 2D keypoints of live streams.

Adaptive low-pass: heavy smoothing while a joint is still (kills jitter), light while it moves
fast (keeps latency low). Driven by the frames' timestamps, so it works at any frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff: float = 1.0  # Hz at rest; lower = smoother
    beta: float = 0.05  # cutoff growth per pixel/s of speed; higher = less lag when moving
    d_cutoff: float = 1.0  # Hz, for the speed estimate


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of a fixed shape (e.g. [17, 2] pixels) over time."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self.t: float | None = None
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.t is None or self.x is None or self.dx is None:
            self.t, self.x, self.dx = t, x, np.zeros_like(x)
            return x.copy()
        if t <= self.t:  # a repeated or reordered timestamp: nothing to filter over
            return self.x.copy()
        dt = t - self.t
        c = self.config
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(c.d_cutoff, dt) * (dx - self.dx)
        cutoff = c.min_cutoff + c.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()
