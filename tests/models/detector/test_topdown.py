"""The default top-down 2D stage (NanoDet-g + BlazePose full landmarks + motion tracker) on photos."""

from __future__ import annotations

import numpy as np

from hotpose.models.detector.footage import blur_faces
from hotpose.models.detector.topdown import TopDown


def test_two_people_from_one_photo_mirrored_and_face_blurred(stage: TopDown, astronaut: np.ndarray) -> None:
    """The astronaut twice side by side, one mirrored, one with her face blurred: two people, two ids."""
    face = stage.process_image(astronaut)
    assert len(face) == 1
    pair = np.ascontiguousarray(np.concatenate([astronaut[:, ::-1], blur_faces(astronaut, face)], axis=1))
    still = stage.process_image(pair)
    assert len(still) == 2 and {p.bbox[0] < 512 for p in still} == {True, False}
    stage.reset()
    frames = [stage.process(pair, i / 30) for i in range(6)]
    assert all(len(ps) == 2 for ps in frames[1:])  # frame 0: awaiting confirmation
    ids = [sorted(p.track_id for p in ps) for ps in frames[1:]]
    assert all(i == ids[0] for i in ids) and len(set(ids[0])) == 2


def test_a_person_hidden_for_two_seconds_keeps_their_id(stage: TopDown, astronaut: np.ndarray) -> None:
    """One of two people covered for 2 s (60 frames at 30 fps) is absent meanwhile, then back with their id."""
    two = np.ascontiguousarray(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1))
    hidden = two.copy()
    hidden[:, 512:] = 128
    frames = [two] * 10 + [hidden] * 60 + [two] * 10
    people = [stage.process(f, i / 30) for i, f in enumerate(frames)]
    right_before = {p.track_id for p in people[9] if p.bbox[0] > 512}
    assert len(right_before) == 1
    assert all(all(p.bbox[0] < 512 for p in ps) for ps in people[10:70])  # no invented pose while hidden
    back = [{p.track_id for p in ps if p.bbox[0] > 512} for ps in people[72:]]
    assert all(b == right_before for b in back)


def test_a_person_hidden_longer_than_the_gap_gets_a_new_id(stage: TopDown, astronaut: np.ndarray) -> None:
    hidden = np.full_like(astronaut, 128)
    frames = [astronaut] * 5 + [hidden] * 100 + [astronaut] * 5  # 3.3 s away (the gap is 3 s)
    people = [stage.process(f, i / 30) for i, f in enumerate(frames)]
    before = {p.track_id for p in people[4]}
    after = {p.track_id for p in people[-1]}
    assert len(before) == len(after) == 1 and before != after
    assert stage.state.confirmed == after and set(stage.state.good) == after  # the first id's state went


def test_nothing_in_empty_or_flat_images(stage: TopDown) -> None:
    for img in (np.zeros((480, 640, 3), np.uint8), np.full((720, 1280, 3), 200, np.uint8)):
        assert stage.process(img) == [] and stage.process(img) == [] and stage.process_image(img) == []


def test_describes_its_parts(stage: TopDown) -> None:
    assert stage.name == "nanodet+blazepose_full"
    assert stage.person_detector.name == "nanodet" and stage.keypoint_model.layout == "blazepose33"
