from __future__ import annotations

import numpy as np
import pytest

from hotpose.models.keypoints import normalize_screen
from hotpose.models.kind import SEQ2FRAME, LifterKind
from hotpose.service.lifting import LiftPolicy, PolicyError, StreamLifter, lift_sequence

F = 27  # a short window keeps the test fast; the logic does not depend on 243
W, H = 640, 480


class EchoLift:
    """Lifts a window by echoing its 2D with z = 0 (so outputs are checkable) and counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1:] == (F, 17, 2)
        self.calls.append(len(windows))
        return np.concatenate([windows, np.zeros_like(windows[..., :1])], axis=-1)


def pose(t: float, track: int = 0) -> np.ndarray:
    """A 2D pose that moves linearly in time (pixels)."""
    base = np.linspace(100, 400, 34).reshape(17, 2)
    return base + np.array([50.0 * t + 20 * track, 10.0 * t])


def run(policy: LiftPolicy, times: list[float], tracks: tuple[int, ...] = (0,)) -> tuple[list, EchoLift]:
    lift = EchoLift()
    sl = StreamLifter(F, lift, policy)
    out = []
    for i, t in enumerate(times):
        out += sl.push(i, t, [(k, pose(t, k)) for k in tracks], W, H)
    out += sl.flush()
    return out, lift


def expected(t: float, track: int = 0) -> np.ndarray:
    return np.asarray(normalize_screen(pose(t, track), W, H))


@pytest.mark.parametrize(
    "policy",
    [
        LiftPolicy(stride=1, delay=0, max_gap_s=1.0, hold_s=0.0),
        LiftPolicy(stride=5, delay=0, max_gap_s=1.0, hold_s=0.0),
        LiftPolicy(stride=4, delay=8, max_gap_s=1.0, hold_s=0.0),
        LiftPolicy.clip(F, max_gap_s=3.0),
    ],
)
def test_every_frame_comes_out_once_in_order_with_its_own_pose(policy: LiftPolicy) -> None:
    times = [i / 30 for i in range(100)]
    out, _ = run(policy, times, tracks=(1, 2))
    assert [k for k, _ in out] == list(range(100))
    for (_, poses), t in zip(out, times, strict=True):
        assert set(poses) == {1, 2}
        for tid in (1, 2):
            np.testing.assert_allclose(poses[tid][:, :2], expected(t, tid), atol=1e-5)


def test_causal_emits_each_frame_as_soon_as_it_is_lifted() -> None:
    lift = EchoLift()
    sl = StreamLifter(F, lift, LiftPolicy(stride=1, delay=0, max_gap_s=1.0, hold_s=0.0))
    for i in range(10):
        assert [k for k, _ in sl.push(i, i / 30, [(0, pose(i / 30))], W, H)] == [i]
    lift5 = EchoLift()
    sl5 = StreamLifter(F, lift5, LiftPolicy(stride=5, delay=0, max_gap_s=1.0, hold_s=0.0))
    sizes = [len(sl5.push(i, i / 30, [(0, pose(i / 30))], W, H)) for i in range(10)]
    assert sizes == [0, 0, 0, 0, 5, 0, 0, 0, 0, 5] and len(lift5.calls) == 2


def test_delayed_holds_frames_by_the_delay() -> None:
    sl = StreamLifter(F, EchoLift(), LiftPolicy(stride=4, delay=8, max_gap_s=1.0, hold_s=0.0))
    emitted = []
    for i in range(40):
        emitted.append([k for k, _ in sl.push(i, i / 30, [(0, pose(i / 30))], W, H)])
        assert all(k <= i - 8 for k in emitted[-1])
    flat = [k for e in emitted for k in e]
    assert flat == list(range(len(flat))) and flat[-1] >= 40 - 1 - 8 - 4


def test_the_end_does_not_lift_the_last_window_twice() -> None:
    out, lift = run(LiftPolicy(stride=1, delay=5, max_gap_s=1.0, hold_s=0.0), [i / 30 for i in range(20)])
    assert [k for k, _ in out] == list(range(20))
    # one window per frame at stride 1 (the last one not again), then 5 end-padded ones for the 5 held
    assert sum(lift.calls) == 20 + 5
    out, lift = run(LiftPolicy(stride=4, delay=5, max_gap_s=1.0, hold_s=0.0), [i / 30 for i in range(19)])
    # grid 3, 7, 11, 15, then at the end 18 and 18 + 4 padded
    assert [k for k, _ in out] == list(range(19)) and sum(lift.calls) == 6


def test_the_last_frames_of_a_clip_get_end_padded_windows_like_the_others() -> None:
    from hotpose.service.lifting import TrackBuffer

    policy = LiftPolicy.clip(F, max_gap_s=3.0)  # stride 9, delay 26: each frame in ~3 windows
    buf = TrackBuffer(0.0, F, policy)
    for i in range(100):
        buf.observe(i / 30, expected(i / 30))
        for w, end in buf.windows():
            buf.deliver(np.concatenate([w, np.zeros_like(w[..., :1])], axis=-1), end)
    ends = buf.flush_windows()
    assert [end - 99 for _, end in ends] == [0, 9, 18]  # the newest frame (99) is in 3 windows, as in a clip's middle
    window, end = ends[2]
    pad = end - 99
    np.testing.assert_allclose(window[-pad - 1 :], np.repeat(expected(99 / 30)[None], pad + 1, axis=0))
    np.testing.assert_allclose(window[0], expected((99 - (F - pad - 1)) / 30), atol=1e-6)
    buf.flush_deliver([(np.concatenate([w, np.zeros_like(w[..., :1])], axis=-1), e) for w, e in ends])
    assert buf.next_final == 100  # every frame final, each read back from its own place in the windows


def test_lower_frame_rate_and_jittered_timestamps_are_resampled() -> None:
    rng = np.random.default_rng(0)
    times = list(np.cumsum(rng.uniform(0.04, 0.1, 60)))  # 10-25 fps, irregular
    for policy in (LiftPolicy(stride=2, delay=0, max_gap_s=1.0, hold_s=0.0), LiftPolicy.clip(F, max_gap_s=3.0)):
        out, _ = run(policy, times)
        assert [k for k, _ in out] == list(range(60))
        for (k, poses), t in zip(out, times, strict=True):
            # the pose moves linearly, so resampling and reading back is exact up to the reading
            # of the grid sample just before the frame (< 1/30 s) in causal mode and at the end
            tol = 0.0 if policy.delay and k < 59 else 50.0 / 30 * 2 / W + 1e-4
            np.testing.assert_allclose(poses[0][:, :2], expected(t), atol=tol + 1e-5)


def test_a_person_who_leaves_does_not_hold_back_the_others() -> None:
    lift = EchoLift()
    sl = StreamLifter(F, lift, LiftPolicy(stride=4, delay=8, hold_s=0.0, max_gap_s=1.0))
    out = []
    for i in range(30):
        people = [(0, pose(i / 30))] + ([(1, pose(i / 30, 1))] if i < 10 else [])
        out += sl.push(i, i / 30, people, W, H)
    assert [k for k, _ in out] == list(range(len(out))) and len(out) >= 30 - 8 - 4
    assert all(1 in p for k, p in out if k < 10) and all(1 not in p for k, p in out if k >= 10)


def test_a_long_gap_starts_a_new_buffer_and_memory_stays_bounded() -> None:
    lift = EchoLift()
    sl = StreamLifter(F, lift, LiftPolicy(stride=3, delay=6, hold_s=0.5, max_gap_s=0.5))
    out = []
    for i in range(3000):
        t = i / 30
        people = [] if 100 <= i < 160 else [(0, pose(t % 3))]
        out += sl.push(i, t, people, W, H)
        buf = sl.tracks.get(0)
        if buf is not None:
            assert len(buf.final) <= 4 and len(buf.acc) <= F + 6 and len(buf.samples) <= F
    out += sl.flush()
    assert [k for k, _ in out] == list(range(3000)) and len(sl.pending) == 0


def test_a_gap_longer_than_the_window_but_within_max_gap_resolves_every_frame() -> None:
    """Found under load: dropped frames left a 1.0 s gap (30 grid frames) in front of a 27-frame window;
    the samples interpolated over it left the buffer before any window covered them."""
    policy = LiftPolicy(stride=4, max_gap_s=1.0, delay=0, hold_s=0.0)
    times = [1 / 15, 16 / 15, 20 / 15, 21 / 15, 22 / 15, 23 / 15]
    out, _ = run(policy, times)
    assert [k for k, _ in out] == list(range(len(times)))
    for (_, poses), t in zip(out, times, strict=True):
        np.testing.assert_allclose(poses[0][:, :2], expected(t), atol=1e-5)


def test_a_time_just_below_a_grid_frame_resolves_at_the_end() -> None:
    out, _ = run(LiftPolicy(stride=4, delay=0, max_gap_s=1.0, hold_s=0.0), [0.0, (5 - 4e-4) / 30])
    assert [k for k, _ in out] == [0, 1] and all(0 in p for _, p in out)


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_lose_no_frame(seed: int) -> None:
    """Irregular times (drops, gaps up to and past max_gap, repeats), people coming and going."""
    rng = np.random.default_rng(seed)
    policy = LiftPolicy(
        stride=int(rng.choice([1, 4, 8, F])),
        delay=int(rng.choice([0, 0, 5, 40])),
        max_gap_s=float(rng.choice([0.5, 1.0, 3.0])),
        hold_s=float(rng.choice([0.0, 0.3])),
    )
    lift = EchoLift()
    sl = StreamLifter(F, lift, policy)
    out: list = []
    t, n = 0.0, int(rng.integers(1, 150))
    sent: list[set[int]] = []  # the people of each frame
    for i in range(n):
        t += float(rng.choice([1 / 30, 1 / 15, 0.0, 0.37, 0.99, 1.6, 4.0], p=[0.3, 0.3, 0.05, 0.1, 0.1, 0.1, 0.05]))
        t += float(rng.normal(0, 1e-3))
        people = [k for k in range(3) if rng.random() < 0.6]
        sent.append(set(people))
        out += sl.push(i, t, [(k, pose(t, k)) for k in people], W, H)
    out += sl.flush()
    assert [k for k, _ in out] == list(range(n))
    for (_, poses), people in zip(out, sent, strict=True):
        assert set(poses) == people


def test_stride_longer_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        StreamLifter(F, EchoLift(), LiftPolicy(stride=F + 1, delay=0, max_gap_s=1.0, hold_s=0.0))


def test_policy_is_checked() -> None:
    with pytest.raises(ValueError):
        LiftPolicy(stride=0, delay=0, max_gap_s=1.0, hold_s=0.0)
    with pytest.raises(ValueError):
        LiftPolicy(hold_s=2.0, max_gap_s=1.0, stride=1, delay=0)


def test_lift_sequence_gives_every_frame_its_own_pose() -> None:
    times = np.arange(50) / 30
    xy = np.stack([pose(t) for t in times])
    for policy in (
        LiftPolicy(stride=4, delay=0, max_gap_s=1.0, hold_s=0.0),
        LiftPolicy(stride=4, delay=8, max_gap_s=1.0, hold_s=0.0),
        LiftPolicy.clip(F, max_gap_s=3.0),
    ):
        y = lift_sequence(EchoLift(), xy, times, policy, W, H, F)
        assert y.shape == (50, 17, 3)
        np.testing.assert_allclose(y[..., :2], np.stack([expected(t) for t in times]), atol=1e-5)


def test_a_person_back_within_the_tracker_gap_continues_their_buffer() -> None:
    """Hidden 2.5 s (within the tracker's 3 s and a 243-frame window): the same buffer, every frame
    resolved; the hidden frames are simply absent from the output."""
    frames = 243
    lift = lambda w: np.concatenate([w, np.zeros_like(w[..., :1])], axis=-1)  # noqa: E731
    sl = StreamLifter(frames, lift, LiftPolicy.clip(frames, max_gap_s=3.0))
    times = [i / 30 for i in range(60)] + [(60 + 75 + i) / 30 for i in range(60)]  # a 75-frame gap
    out = []
    first = None
    for i, t in enumerate(times):
        out += sl.push(i, t, [(7, pose(t))], W, H)
        first = first or sl.tracks[7]
        assert sl.tracks[7] is first  # never a new buffer
    out += sl.flush()
    assert [k for k, _ in out] == list(range(len(times))) and all(7 in p for _, p in out)
    short = StreamLifter(frames, lift, LiftPolicy.clip(frames, max_gap_s=1.0))
    short.push(0, 0.0, [(7, pose(0.0))], W, H)
    buf = short.tracks[7]
    short.push(1, 2.5, [(7, pose(2.5))], W, H)
    assert short.tracks[7] is not buf  # beyond the policy's gap: a new buffer


# --- seq2frame lifters (TPC-MixSTE, MHFormer): one centred window per frame --------------------------


class CentreLift:
    """A seq2frame lifter stand-in: the centre frame of each window echoed with z = the window's mean x
    (so a wrongly centred or wrongly padded window shows), and every window kept for inspection."""

    def __init__(self, channels: int = 2) -> None:
        self.channels = channels
        self.windows: list[np.ndarray] = []

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1:] == (F, 17, self.channels)
        self.windows += list(windows)
        c = SEQ2FRAME.centre(F)
        return np.concatenate([windows[:, c, :, :2], windows[:, :, :, :1].mean(axis=1)], axis=-1)


def test_seq2frame_lifts_every_frame_in_its_own_centred_window() -> None:
    n = 60
    times = np.arange(n) / 30
    xy = np.stack([pose(t) for t in times])
    lift = CentreLift()
    y = lift_sequence(lift, xy, times, LiftPolicy.clip(F, max_gap_s=3.0), W, H, F, SEQ2FRAME)
    assert len(lift.windows) == n  # one window per frame, none twice
    x_n = np.stack([expected(t) for t in times])  # [T, 17, 2] what the lifter reads
    np.testing.assert_allclose(y[..., :2], x_n, atol=1e-5)
    c = SEQ2FRAME.centre(F)
    for i in (0, 5, 30, n - 1):  # the centred window, edge-padded at both ends of the track
        idx = np.clip(np.arange(i - c, i - c + F), 0, n - 1)
        np.testing.assert_allclose(y[i, :, 2], x_n[idx, :, 0].mean(axis=0), atol=1e-5)


def test_seq2frame_serves_delayed_streams_at_half_a_window_and_loses_no_frame() -> None:
    c = SEQ2FRAME.centre(F)
    lift = CentreLift()
    sl = StreamLifter(F, lift, LiftPolicy(stride=1, delay=c, max_gap_s=1.0, hold_s=0.0), SEQ2FRAME)
    out = []
    times = [i / 15 for i in range(40)]  # 15 fps: two grid frames per push, each with its own window
    for i, t in enumerate(times):
        out += sl.push(i, t, [(0, pose(t))], W, H)
        if i * 2 >= c + 2:
            assert out, "frames wait no longer than half a window"
    out += sl.flush()
    assert [k for k, _ in out] == list(range(40))
    for (_, poses), t in zip(out, times, strict=True):
        np.testing.assert_allclose(poses[0][:, :2], expected(t), atol=1e-5)


@pytest.mark.parametrize("delay", [0, 3])
def test_seq2frame_refuses_causal_and_short_delays(delay: int) -> None:
    with pytest.raises(PolicyError, match="seq2frame"):
        StreamLifter(F, CentreLift(), LiftPolicy(stride=1, delay=delay, max_gap_s=1.0, hold_s=0.0), SEQ2FRAME)


def test_a_three_channel_lifter_gets_the_keypoint_confidences() -> None:
    kind = LifterKind("seq2seq", channels=3)
    seen: list[np.ndarray] = []

    def lift(w: np.ndarray) -> np.ndarray:
        assert w.shape[1:] == (F, 17, 3)
        seen.append(w)
        return w

    sl = StreamLifter(F, lift, LiftPolicy(stride=1, delay=0, max_gap_s=1.0, hold_s=0.0), kind)
    conf = np.linspace(0.1, 0.9, 17)[:, None]
    sl.push(0, 0.0, [(0, np.concatenate([pose(0.0), conf], axis=1))], W, H)
    sl.push(1, 1 / 30, [(0, pose(1 / 30))], W, H)  # no confidences given: 1
    np.testing.assert_allclose(seen[0][0, -1, :, 2], conf[:, 0], atol=1e-6)
    np.testing.assert_allclose(seen[1][0, -1, :, 2], 1.0)


@pytest.mark.parametrize("frames", [27, 28])
def test_seq2frame_gives_each_frame_the_window_whose_centre_it_is_for_odd_and_even_windows(frames: int) -> None:
    """The window ending at grid frame e has its centre ((F - 1) // 2, as the models' predict_centre)
    at e - (F - 1 - centre): for an even F that is not e - centre."""
    c = SEQ2FRAME.centre(frames)

    def lift(windows: np.ndarray) -> np.ndarray:  # the centre sample itself: frame i must get frame i's 2D
        return np.concatenate([windows[:, c], np.zeros_like(windows[:, c, :, :1])], axis=-1)

    n = 50
    times = np.arange(n) / 30
    xy = np.stack([pose(t) for t in times])
    y = lift_sequence(lift, xy, times, LiftPolicy.clip(frames, max_gap_s=3.0), W, H, frames, SEQ2FRAME)
    np.testing.assert_allclose(y[..., :2], np.stack([expected(t) for t in times]), atol=1e-5)
    assert SEQ2FRAME.future(frames) == frames - 1 - c
