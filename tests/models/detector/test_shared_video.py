"""End-to-end on the real office clip in ../shared/videos (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

from models.detector.blazepose import BlazePose
from service.video import iter_frames


def test_office_clip_empty_then_one_stable_person(fresh: BlazePose, shared_dir: Path) -> None:
    clip = shared_dir / "videos" / "people_one_by_one_768x432_10fps.mp4"
    counts, ids = [], set()
    for i, _, frame in iter_frames(clip):
        if i >= 160:
            break
        people = fresh.process(frame)
        counts.append(len(people))
        if 80 <= i < 160:
            ids.update(p.track_id for p in people)
    assert sum(counts[:58]) == 0  # frames 0-57 show only the table: no false positive
    assert all(c == 1 for c in counts[80:160])  # one woman in view
    assert len(ids) == 1  # with one track id
