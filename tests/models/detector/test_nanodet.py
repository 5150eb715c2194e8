from __future__ import annotations

import numpy as np
import pytest

from hotpose.models.detector.nanodet import NanoDet


@pytest.fixture(scope="module")
def nanodet() -> NanoDet:
    return NanoDet(device="cpu")


def test_the_astronaut_is_one_person_box(nanodet: NanoDet, astronaut: np.ndarray) -> None:
    (det,) = nanodet.detect_batch([astronaut])
    assert len(det) == 1 and det[0].score > 0.6 and det[0].roi is None
    x0, y0, x1, y1 = det[0].box
    assert x0 < 60 and y0 < 60 and 300 < x1 < 420 and y1 > 480  # she fills the left two thirds, cut at the bottom


def test_boxes_follow_the_letterbox_and_batches_agree(nanodet: NanoDet, astronaut: np.ndarray) -> None:
    wide = np.full((512, 1400, 3), 128, np.uint8)  # a wide frame: also run as tiles
    wide[:, 700:1212] = astronaut
    assert len(nanodet.tiles(wide)) == 4 and nanodet.tiles(astronaut) == []  # ceil(1400 / 512) + 1, overlapping
    one, two = nanodet.detect_batch([astronaut, wide])
    # one confident person (tiles add weak boxes on details; the keypoint model's pose score rejects those)
    assert len([d for d in two if d.score > 0.5]) == 1
    np.testing.assert_allclose(two[0].box, one[0].box + [700, 0, 700, 0], atol=12.0)  # seen at another scale
    (alone,) = nanodet.detect_batch([wide])
    np.testing.assert_allclose(alone[0].box, two[0].box, atol=1e-3)


def test_a_thin_strip_is_covered_by_a_bounded_number_of_tiles(nanodet: NanoDet) -> None:
    """A 1x5000 image (a live client may send one) once became 5001 network inputs of 416x416: ~10 GB."""
    for h, w in [(1, 5000), (5000, 3), (100, 750)]:
        tiles = nanodet.tiles(np.zeros((h, w), np.uint8))
        long = max(h, w)
        assert 3 <= len(tiles) <= nanodet.config.max_tiles
        spans = sorted((x0, x1) if w >= h else (y0, y1) for x0, y0, x1, y1 in tiles)
        assert spans[0][0] == 0 and spans[-1][1] == long  # the strip is covered end to end, overlapping
        assert all(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))
    square = nanodet.tiles(np.zeros((100, 700), np.uint8))  # ceil(700 / 100) + 1 = 8 tiles: still square
    assert len(square) == 8 and all(x1 - x0 == 100 for x0, _, x1, _ in square)
    assert len(nanodet.detect_batch([np.zeros((1, 5000, 3), np.uint8)])[0]) == 0


def test_nothing_in_an_empty_frame(nanodet: NanoDet) -> None:
    assert nanodet.detect_batch([np.zeros((432, 768, 3), np.uint8)]) == [[]]
    assert nanodet.detect_batch([]) == []
