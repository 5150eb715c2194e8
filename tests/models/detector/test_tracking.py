from __future__ import annotations

import numpy as np

from hotpose.models.detector.tracking import MotionTracker, TrackerConfig


def _box(cx: float, cy: float = 300.0, h: float = 200.0) -> np.ndarray:
    return np.array([cx - h / 4, cy - h / 2, cx + h / 4, cy + h / 2])


def test_known_ids_are_kept_and_new_people_get_new_ids() -> None:
    tr = MotionTracker()
    (a,) = tr.update([(None, _box(100))], 0.0)
    assert tr.update([(a, _box(105)), (None, _box(600))], 1 / 30) == [a, a + 1]


def test_a_walker_hidden_for_two_seconds_is_found_where_their_motion_leads() -> None:
    tr = MotionTracker()
    ids = [tr.update([(None if i == 0 else 1, _box(100 + 3 * i))], i / 30)[0] for i in range(30)]  # 90 px/s
    assert set(ids) == {1}
    for i in range(30, 90):  # hidden 2 s
        assert tr.update([], i / 30) == []
    assert tr.lost() == [1]
    # back 180 px further on (the walk went on; the 1 s extrapolation horizon and the widened gate cover it)
    assert tr.update([(None, _box(100 + 3 * 90))], 90 / 30) == [1]
    assert tr.lost() == []


def test_someone_else_far_away_or_of_another_size_is_not_the_lost_person() -> None:
    tr = MotionTracker()
    tr.update([(None, _box(100))], 0.0)
    tr.update([], 0.5)
    assert tr.update([(None, _box(900))], 1.0) == [2]  # far from where person 1 was going
    tr.update([], 1.5)
    assert tr.update([(None, _box(100, h=600))], 2.0) == [3]  # three times the size


def test_forgotten_after_the_gap() -> None:
    tr = MotionTracker(TrackerConfig(max_gap_s=3.0))
    tr.update([(None, _box(100))], 0.0)
    tr.update([], 3.5)
    assert tr.kept() == set() and tr.update([(None, _box(100))], 3.6) == [2]


def test_two_lost_people_are_matched_to_the_nearest_returns() -> None:
    tr = MotionTracker()
    a, b = tr.update([(None, _box(100)), (None, _box(400))], 0.0)
    tr.update([], 1.0)
    assert tr.update([(None, _box(410)), (None, _box(95))], 1.5) == [b, a]
    tr.drop(a)
    assert tr.kept() == {b}
