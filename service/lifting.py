"""Streaming 2D -> 3D lifting: per-person buffers, sliding windows, causal or delayed emission.

Used by clip jobs, live sessions and `hotpose run` alike (no web import).

Time. The lifter was trained at 30 fps. Each person's 2D observations are
resampled onto a 30 fps grid from their timestamps (linear interpolation
between observations), so variable frame rate, dropped frames and 10 or 60 fps
sources all reach the model at the speed it knows. A frame's 3D is read back
from the grid at the frame's own time.

Windows. A person's grid samples live in a buffer of the last `frames` (243)
samples. Every `stride` grid frames, and whenever a frame falls due with no
window over it yet, the window ending at the newest sample is lifted (edge-
padded at the start of a track). Each grid frame accumulates the outputs of
every window that covered it before it became final.

Emission (`LiftPolicy.delay`, in grid frames):
- `delay == 0` ("causal"): a grid frame is final as soon as a window ending at
  or after it has been lifted. The lowest latency; a frame waits for the next
  lift (up to `stride` - 1 grid frames) and sees only the frames that arrived
  meanwhile as future context.
  A frame's 3D is the grid sample at or just before its time (at most 1/30 s
  earlier).
- `delay > 0` ("delayed"): a grid frame is final once `delay` newer samples
  exist, so windows see up to `delay` frames of future context (more
  accurate), at `delay / 30` s of extra latency. Clip jobs use
  `delay = frames - 1` with a stride of `frames // 3`: every frame averages
  about three windows, as offline. When a track ends (the clip's end, a person
  gone), windows ending `stride`, 2 `stride`, ... (up to `delay`) grid frames
  after its newest sample, edge-padded there, give its last frames as many
  windows as the others.

Seq2frame lifters (`LifterKind`: TPC-MixSTE, MHFormer) predict only the centre frame of a window:
every grid frame gets its own window, centred on it (`stride` does not apply), lifted once half a
window of future samples exists; so they need `delay >= (frames - 1) // 2` and cannot run causal.

Inputs carry the 2D confidence beside x, y (a lifter that declares 3 channels, MotionBERT, gets it;
the others get x, y only).

A person missing for longer than `hold_s` has its pending frames finalised
with the context it has (so other people's frames are not held back); one
missing for longer than `max_gap_s`, or for longer than one window can bridge
(the samples interpolated over the gap must fit in the next window), starts a
new buffer when seen again.
Memory per person is bounded by the window and the delay, not the video.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hotpose.models import Lifter
from hotpose.models.evaluate import lift_windows
from hotpose.models.keypoints import normalize_image
from hotpose.models.kind import SEQ2SEQ, LifterKind

LIFTER_FPS = 30.0
# windows [N, F, 17, C] (normalised x, y, then the confidence if C == 3) -> [N, F, 17, 3] (seq2seq) or
# [N, 17, 3] (seq2frame: the centre frames)
LiftFn = Callable[[np.ndarray], np.ndarray]


class PolicyError(ValueError):
    """A lifting policy the lifter cannot serve (a seq2frame lifter asked for causal emission)."""


def lift_root_relative(lifter: Lifter, windows: np.ndarray, flip: bool = True, batch: int | None = None) -> np.ndarray:
    """Normalised 2D windows [N, F, 17, C] -> root-relative 3D (the pelvis is the origin): [N, F, 17, 3]
    from a seq2seq lifter, [N, 17, 3] (the centre frames) from a seq2frame one, with test-time flip
    averaging or not (`hotpose.models.evaluate.lift_windows`); `batch` windows per model call (None:
    all in one, for a caller that bounds its batches itself, as the service's scheduler does; a
    seq2frame track's end asks for half a window of windows at once)."""
    y = lift_windows(lifter, windows, flip, batch=batch or max(len(windows), 1))
    out: np.ndarray = y - y[..., :1, :]
    return out


def min_delay(frames: int, kind: LifterKind) -> int:
    """The least delay (grid frames) a lifter of this kind needs: half a window for seq2frame, else 0."""
    return kind.future(frames) if kind.seq2frame else 0


@dataclass(frozen=True, kw_only=True)
class LiftPolicy:
    """When windows are lifted and frames emitted; built from the settings (`LiftPolicy.clip` for clip
    jobs, `StreamConfig.policy` for live streams), so it declares no defaults of its own."""

    stride: int  # grid frames between lifts
    delay: int  # grid frames a frame waits for future context (0: causal)
    max_gap_s: float  # a person lost longer than this starts a new buffer
    hold_s: float  # finalise a missing person's pending frames after this long

    def __post_init__(self) -> None:
        if self.stride < 1 or self.delay < 0:
            raise ValueError(f"stride must be >= 1 and delay >= 0, got {self.stride}, {self.delay}")
        if self.hold_s > self.max_gap_s:
            raise ValueError("hold_s must not exceed max_gap_s")

    @classmethod
    def clip(cls, frames: int, max_gap_s: float) -> LiftPolicy:
        """Offline quality for whole clips: ~3 windows per frame (seq2seq), full future context (a
        seq2frame lifter needs half of it). A person hidden up to `max_gap_s` (the tracker's gap)
        continues their buffer when found again."""
        return cls(stride=max(frames // 3, 1), delay=frames - 1, max_gap_s=max_gap_s, hold_s=min(1.0, max_gap_s))


@dataclass
class Request:
    """One observed frame of one person waiting for its 3D."""

    u: float  # position on the track's grid
    value: np.ndarray | None = None  # [17, 3] once resolved


class TrackBuffer:
    """One person's continuous run of observations on a 30 fps grid."""

    def __init__(self, t0: float, frames: int, policy: LiftPolicy, kind: LifterKind = SEQ2SEQ) -> None:
        self.t0 = t0
        self.frames = frames
        self.policy = policy
        self.seq2frame = kind.seq2frame
        # seq2frame: the window ending at grid frame `end` predicts frame `end - future` (its centre)
        self.future = kind.future(frames)
        # the newest grid samples [17, C]: one window, or (seq2frame) a window plus the new samples
        # since the last lift (at most one window: `can_bridge`), each of which gets its own window
        self.samples: deque[np.ndarray] = deque(maxlen=2 * frames if self.seq2frame else frames)
        self.first: np.ndarray | None = None  # grid sample 0 (edge padding)
        self.n = 0  # grid samples generated
        self.last_t = t0
        self.last_xy: np.ndarray | None = None
        self.last_lift = -1  # newest grid index at the last lift (seq2frame: the last window's end)
        self.acc: dict[int, np.ndarray] = {}  # pending grid index -> summed outputs [17, 3]
        self.cnt: dict[int, int] = {}
        self.final: dict[int, np.ndarray] = {}
        self.next_final = 0  # grid indexes below this are final
        self.requests: deque[Request] = deque()

    def grid_position(self, t: float) -> float:
        """Where time t falls on the grid (snapped to a grid frame when within 1e-3 of one)."""
        u = (max(t, self.last_t) - self.t0) * LIFTER_FPS
        return float(round(u)) if abs(u - round(u)) < 1e-3 else u

    def can_bridge(self, t: float) -> bool:
        """Whether an observation at t keeps every new grid sample inside the next window.

        A gap longer than the window would push interpolated samples out of the buffer before any
        window covered them (their frames could then never be resolved)."""
        return math.floor(self.grid_position(t)) - self.last_lift <= self.frames

    def observe(self, t: float, xy: np.ndarray) -> Request:
        """Add an observation (normalised 2D [17, C]) at time t (>= the previous one)."""
        t = max(t, self.last_t)
        u = self.grid_position(t)
        if self.last_xy is None:
            self._append(xy)
        else:
            # every grid frame up to the request's own (so that it can always be resolved)
            span = t - self.last_t
            while self.n <= math.floor(u):
                tg = self.t0 + self.n / LIFTER_FPS
                a = 1.0 if span <= 1e-9 else min(max((tg - self.last_t) / span, 0.0), 1.0)
                self._append((1 - a) * self.last_xy + a * xy)
        self.last_t, self.last_xy = t, xy
        req = Request(u)
        self.requests.append(req)
        return req

    def _append(self, xy: np.ndarray) -> None:
        if self.first is None:
            self.first = xy
        self.samples.append(xy)
        self.n += 1

    @property
    def newest(self) -> int:
        return self.n - 1

    def windows(self) -> list[tuple[np.ndarray, int]]:
        """The windows to lift now, as (window [F, 17, C], grid index of its last position)."""
        newest = self.newest
        if newest < 0 or newest <= self.last_lift:
            return []
        if self.seq2frame:
            # one window per new grid frame whose centred window is complete
            first = max(self.last_lift + 1, self.next_final + self.future)
            return [(self._window(end), end) for end in range(first, newest + 1)]
        due_uncovered = self.policy.delay > 0 and any(
            self.cnt.get(g, 0) == 0 for g in range(self.next_final, newest - self.policy.delay + 1)
        )
        if newest - self.last_lift < self.policy.stride and not due_uncovered:
            return []
        return [(self._window(newest), newest)]

    def _window(self, end: int) -> np.ndarray:
        """[F, 17, C]: the window whose last position is grid frame `end`; positions before the first
        sample take the first sample (edge padding at the start of a track), positions after the
        newest take the newest (edge padding at its end)."""
        oldest = self.n - len(self.samples)
        g = np.clip(np.arange(end - self.frames + 1, end + 1), 0, self.newest)  # [F] grid frame of each position
        assert self.first is not None and (g[g > 0].min(initial=oldest) >= oldest), "a window left the buffer"
        held = np.stack(self.samples)  # [S, 17, C]
        out = np.where((g == 0)[:, None, None], self.first, held[np.maximum(g - oldest, 0)])
        return out.astype(np.float32)

    def deliver(self, out: np.ndarray, end: int) -> None:
        """The output of the window ending at grid frame `end`: [F, 17, 3] (seq2seq) or the centre
        frame's [17, 3] (seq2frame)."""
        newest = self.newest
        self.last_lift = max(self.last_lift, min(end, newest))
        if self.seq2frame:
            self._add(end - self.future, out)
        else:
            for g in range(max(self.next_final, end - self.frames + 1), newest + 1):
                self._add(g, out[self.frames - 1 - (end - g)])
        self._finalise(newest - self.policy.delay)

    def _add(self, g: int, y: np.ndarray) -> None:
        if g < self.next_final:
            return
        if g in self.acc:
            self.acc[g] += y
            self.cnt[g] += 1
        else:
            self.acc[g] = y.astype(np.float64)
            self.cnt[g] = 1

    def flush_windows(self) -> list[tuple[np.ndarray, int]]:
        """(window, end) pairs that cover every pending sample at the end of the track; `end` past the
        newest sample means the window is edge-padded at the end with it.

        Seq2seq: the window ending at the newest sample (unless the last lift ended there: it would
        count twice); with a delay (future context), also windows ending `stride`, 2 `stride`, ... grid
        frames after it, while they still hold it, as `hotpose.models.evaluate.predict` pads a clip's
        end: the last frames of a clip are averaged over about as many windows as the others (3 for
        clips), not lifted once near a window's end. Seq2frame: the centred window of every pending
        frame, edge-padded past the newest sample."""
        newest = self.newest
        if self.next_final > newest:
            return []
        if self.seq2frame:
            first = max(self.last_lift + 1, self.next_final + self.future)
            return [(self._window(end), end) for end in range(first, newest + self.future + 1)]
        out = [] if newest == self.last_lift else [(self._window(newest), newest)]
        if self.policy.delay > 0:
            step = self.policy.stride
            ends = range(newest + step, newest + min(self.policy.delay, self.frames - 1) + 1, step)
            out += [(self._window(end), end) for end in ends]
        return out

    def flush_deliver(self, outs: list[tuple[np.ndarray, int]]) -> None:
        """The outputs of `flush_windows`, each with its window's end."""
        for y, end in outs:
            self.deliver(y, end)
        self._finalise(self.newest, resolve_all=True)

    def _finalise(self, upto: int, resolve_all: bool = False) -> None:
        for g in range(self.next_final, upto + 1):
            if self.cnt.get(g, 0) == 0:
                break
            self.final[g] = (self.acc.pop(g) / self.cnt.pop(g)).astype(np.float32)
            self.next_final = g + 1
        self._resolve(resolve_all)
        # keep only the final samples unresolved requests can still need
        keep_from = math.floor(self.requests[0].u) if self.requests else self.next_final - 1
        for g in [g for g in self.final if g < keep_from]:
            del self.final[g]

    def _resolve(self, resolve_all: bool) -> None:
        while self.requests:
            req = self.requests[0]
            lo, hi = math.floor(req.u), math.ceil(req.u)
            if lo not in self.final:
                break
            if hi == lo:
                req.value = self.final[lo]
            elif hi in self.final:
                a = req.u - lo
                req.value = ((1 - a) * self.final[lo] + a * self.final[hi]).astype(np.float32)
            elif self.policy.delay == 0 or resolve_all:
                req.value = self.final[lo]  # causal: the grid sample at or just before the frame
            else:
                break
            self.requests.popleft()


@dataclass
class _Pending:
    key: object  # the caller's frame
    requests: list[Request] = field(default_factory=list)


class StreamLifter:
    """Frames in order -> the same frames out in order, each person's 3D resolved.

    `push(key, t, people, width, height)` takes one frame's people as (track id, 2D pixels [17, 2],
    or [17, 3] with the keypoint confidences) and returns the frames that became complete, as
    (key, {track id: 3D [17, 3]}). `kind` is what the lifter behind `lift` declares (`LifterKind`).
    """

    def __init__(self, frames: int, lift: LiftFn, policy: LiftPolicy, kind: LifterKind = SEQ2SEQ) -> None:
        if policy.stride > frames:
            raise ValueError(f"stride {policy.stride} exceeds the lifter's window of {frames} frames")
        need = min_delay(frames, kind)
        if policy.delay < need:
            raise PolicyError(
                f"this lifter predicts the centre frame of a {frames}-frame window (seq2frame): it needs "
                f"{need} frames of future context, so it serves clips and delayed streams with delay_frames "
                f">= {need}, not {'causal streams' if policy.delay == 0 else f'a delay of {policy.delay}'}"
            )
        self.frames = frames
        self.lift = lift
        self.policy = policy
        self.kind = kind
        self.tracks: dict[int, TrackBuffer] = {}
        self.retired: list[TrackBuffer] = []
        self.pending: deque[tuple[_Pending, dict[int, Request]]] = deque()

    def push(
        self, key: object, t: float, people: list[tuple[int, np.ndarray]], width: int, height: int
    ) -> list[tuple[object, dict[int, np.ndarray]]]:
        reqs: dict[int, Request] = {}
        for track_id, kp in people:
            buf = self.tracks.get(track_id)
            if buf is not None and (t - buf.last_t > self.policy.max_gap_s or not buf.can_bridge(t)):
                self.retired.append(buf)
                buf = None
            if buf is None:
                buf = self.tracks[track_id] = TrackBuffer(t, self.frames, self.policy, self.kind)
            reqs[track_id] = buf.observe(t, self._sample(np.asarray(kp, np.float64), width, height))
        self.pending.append((_Pending(key), reqs))
        seen = {tid for tid, _ in people}
        stale = [b for tid, b in self.tracks.items() if tid not in seen and t - b.last_t > self.policy.hold_s]
        self._run([b for tid, b in self.tracks.items() if tid in seen], flush=[*stale, *self.retired])
        self.retired = []
        for tid in [tid for tid, b in self.tracks.items() if t - b.last_t > self.policy.max_gap_s]:
            del self.tracks[tid]  # already flushed as stale; a return starts a new buffer
        return self._complete()

    def _sample(self, kp: np.ndarray, width: int, height: int) -> np.ndarray:
        """Pixels [17, 2 or 3] -> what the lifter reads [17, channels]: normalised x, y (+ confidence,
        1 where none was given)."""
        xy = normalize_image(kp[:, :2], width, height)
        if self.kind.channels == 2:
            return xy.astype(np.float32)
        conf = kp[:, 2:3] if kp.shape[1] > 2 else np.ones((len(kp), 1))
        return np.concatenate([xy, conf], axis=1).astype(np.float32)

    def flush(self) -> list[tuple[object, dict[int, np.ndarray]]]:
        """Lift everything still pending (end of a clip or stream) and return the remaining frames."""
        self._run([], flush=[*self.tracks.values(), *self.retired])
        self.retired = []
        out = self._complete()
        assert not self.pending, "a frame was left unresolved"
        return out

    def _run(self, active: list[TrackBuffer], flush: list[TrackBuffer]) -> None:
        jobs: list[tuple[TrackBuffer, np.ndarray, int, bool]] = []  # (buffer, window, its end, from a flush)
        for b in active:
            jobs += [(b, w, end, False) for w, end in b.windows()]
        for b in flush:
            jobs += [(b, w, end, True) for w, end in b.flush_windows()]
        ends: dict[int, tuple[TrackBuffer, list[tuple[np.ndarray, int]]]] = {id(b): (b, []) for b in flush}
        if jobs:
            out = self.lift(np.stack([w for _, w, _, _ in jobs]))
            for (b, _, end, flushing), y in zip(jobs, out, strict=True):
                if flushing:
                    ends[id(b)][1].append((y, end))
                else:
                    b.deliver(y, end)
        for b, outs in ends.values():
            b.flush_deliver(outs)

    def _complete(self) -> list[tuple[object, dict[int, np.ndarray]]]:
        done = []
        while self.pending and all(r.value is not None for r in self.pending[0][1].values()):
            p, reqs = self.pending.popleft()
            done.append((p.key, {tid: r.value for tid, r in reqs.items() if r.value is not None}))
        return done


def lift_sequence(
    lift: LiftFn,
    xy: np.ndarray,
    times: np.ndarray,
    policy: LiftPolicy,
    width: int,
    height: int,
    frames: int,
    kind: LifterKind = SEQ2SEQ,
) -> np.ndarray:
    """One person seen in every frame: pixels [T, 17, 2 or 3] at `times` (seconds) -> 3D [T, 17, 3],
    lifted exactly as the service lifts a track under `policy` (`hotpose eval-lifter --service`)."""
    streamer = StreamLifter(frames, lift, policy, kind)
    out: dict[object, np.ndarray] = {}
    for i, (t, pose) in enumerate(zip(times, xy, strict=True)):
        out.update((key, y[0]) for key, y in streamer.push(i, float(t), [(0, pose)], width, height))
    out.update((key, y[0]) for key, y in streamer.flush())
    return np.stack([out[i] for i in range(len(xy))])
