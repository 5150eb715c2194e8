"""The top-down 2D stage: a person detector, a keypoint model on each person's crop, a tracker.

Per frame of a stream:
1. Every tracked person's crop comes from their own keypoints in the previous frame (the keypoint
   model's `next_roi`), so tracking costs one keypoint-model crop per person.
2. The person detector runs every `redetect_every` frames (to find people who walk in), every
   `idle_redetect_every` frames while nobody is tracked, on every frame while a new person awaits
   confirmation, and every
   `lost_redetect_every` frames while a tracked person is lost (so that one back from an occlusion
   is found in time to keep their id). A detection whose box overlaps a tracked person's is that
   person; the others become new crops (`KeypointModel.roi_for`), refined once by the crop their
   own keypoints place when `refine_new` is set.
3. Crops whose pose score is below `pose_threshold` are not people (a detector's false positives,
   a person who left); two crops that converged on one person keep the tracked one.
4. The tracker gives ids (`hotpose.models.detector.tracking`); a new person is reported once found in
   `confirm_frames` consecutive frames.

`process_batch` runs one frame of each of several independent streams (each with its own
`StreamState`) through each model as one batch: how the service shares the models between clip
jobs and live sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hotpose.models.detector.base import KeypointModel, Keypoints, Person, PersonDetector, Roi, Tracker
from hotpose.models.detector.tracking import box_ious

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # the time of frame i when the caller gives none: i / 30 s


@dataclass(frozen=True)
class TopDownConfig:
    # Detector schedule in tracking mode (README, "choosing the 2D stage" and `hotpose bench detector`).
    redetect_every: int = 10  # frames between detector runs while everyone is tracked (0: every frame)
    lost_redetect_every: int = 2  # frames between detector runs while a tracked person is lost
    # frames between detector runs while nobody is tracked: an empty scene costs a third of the
    # detector per frame (NanoDet with tiles is ~110 ms a 720p frame here), a newcomer waits <= 2 frames
    idle_redetect_every: int = 3
    confirm_frames: int = 2  # temporal gating: a new person is reported once found in this many frames in a row
    # ... found by the detector each time (True), or by the detector first and then by the keypoint model's
    # pose score in the crop their keypoints place (False: a detector that misses someone for a frame, as
    # NanoDet does a face-blurred person, does not reset their confirmation)
    gate_by_detector: bool = False
    pose_threshold: float = 0.5  # the keypoint model's pose score under which a new crop holds no person
    track_threshold: float = 0.3  # ... and under which a tracked person is lost (hysteresis, as MediaPipe's two)
    detection_iou: float = 0.3  # a detection overlapping a tracked person's box this much is that person
    duplicate_iou: float = 0.5  # two crops that converged on one person: keep the better one
    duplicate_distance: float = 0.15  # ... or whose shared keypoints lie this close (median, x their extent)
    # a lost person is searched for (every `lost_redetect_every` frames) once tracked this many frames: a
    # second crop of someone that lives a frame or two (a weak box beside them) is not chased for 3 s
    chase_min_frames: int = 4
    refine_new: bool = True  # a new person's keypoints are read again from the crop they place; the better kept
    retry_lost: bool = True  # a tracked person whose crop holds no pose is tried once more in their last good crop
    max_people: int = 16


_Found = tuple[int | None, Keypoints, Roi]  # (track id or None, keypoints, the crop they came from)


@dataclass
class _Candidate:
    roi: Roi
    track_id: int | None  # the track whose keypoints placed this crop; None: a fresh detection


@dataclass
class StreamState:
    """Tracking state of one video stream (one per clip or live session)."""

    tracker: Tracker
    confirm_frames: int = 2
    frame_index: int = 0
    rois: dict[int, Roi] = field(default_factory=dict)  # track id -> crop for the next frame
    good: dict[int, Roi] = field(default_factory=dict)  # track id -> the crop of their last accepted keypoints
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> its last box
    hits: dict[int, int] = field(default_factory=dict)  # unconfirmed track id -> consecutive detections
    confirmed: set[int] = field(default_factory=set)


class TopDown:
    """A `PersonDetector`, a `KeypointModel` and a tracker factory as one 2D stage (`Detector`)."""

    def __init__(
        self,
        detector: PersonDetector,
        keypoints: KeypointModel,
        tracker: Callable[[], Tracker],
        config: TopDownConfig | None = None,
    ) -> None:
        self.person_detector = detector
        self.keypoint_model = keypoints
        self.make_tracker = tracker
        self.config = config or TopDownConfig()
        self.name = f"{detector.name}+{keypoints.name}"
        self.state = self.new_stream()

    # --- public API ----------------------------------------------------------------

    def new_stream(self) -> StreamState:
        return StreamState(tracker=self.make_tracker(), confirm_frames=self.config.confirm_frames)

    def reset(self) -> None:
        """Forget tracks: call between unrelated videos."""
        self.state = self.new_stream()

    def __call__(self, frames: list[np.ndarray]) -> list[list[Person]]:
        """RGB uint8 frames [H, W, 3] of one video, in order -> people per frame."""
        return [self.process(f) for f in frames]

    def process_image(self, frame: np.ndarray) -> list[Person]:
        """A still image: detector + keypoints, no tracking or temporal gating; ids 1..P."""
        st = self.new_stream()
        st.confirm_frames = 1
        return self.process_batch([(frame, st)])[0]

    def process(self, frame: np.ndarray, t: float | None = None) -> list[Person]:
        """The next RGB uint8 frame [H, W, 3] of the current video at time t (seconds; default
        frame index / 30) -> the people in it, with track ids."""
        return self.process_batch([(frame, self.state)], None if t is None else [t])[0]

    def process_batch(
        self, items: list[tuple[np.ndarray, StreamState]], times: list[float | None] | None = None
    ) -> list[list[Person]]:
        """The next frame of each of several streams (states updated in place) -> people per frame.

        Each state must appear at most once per call (frames of one stream are sequential).
        """
        for frame, _ in items:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
        if len({id(st) for _, st in items}) != len(items):
            raise ValueError("a stream state appears twice in one batch")
        ts = [
            (tt if tt is not None else st.frame_index / DEFAULT_FPS)
            for tt, (_, st) in zip(times or [None] * len(items), items, strict=True)
        ]
        cfg = self.config
        cands = [[_Candidate(roi, tid) for tid, roi in st.rois.items()] for _, st in items]
        fallback = self._detect(items, cands)
        cands = [c[: cfg.max_people] for c in cands]
        crops = [(frame, [c.roi for c in cands[k]]) for k, (frame, _) in enumerate(items)]
        results = self.keypoint_model.estimate_batch(crops)
        if cfg.refine_new:
            self._refine_new(items, cands, results)
        if cfg.retry_lost:
            self._retry_lost(items, cands, results, fallback)
        return [self._finish(st, cands[k], results[k], ts[k]) for k, (_, st) in enumerate(items)]

    # --- steps ---------------------------------------------------------------------------

    def _detect(
        self, items: list[tuple[np.ndarray, StreamState]], cands: list[list[_Candidate]]
    ) -> list[dict[int, Roi]]:
        """Run the person detector on the streams that need it (one batch); new people become candidate
        crops (added to `cands` in place). Returns per stream: tracked id -> the crop of a detection of them."""
        cfg = self.config
        need = [k for k, (_, st) in enumerate(items) if self._needs_detector(st, bool(cands[k]))]
        found = self.person_detector.detect_batch([items[k][0] for k in need])
        fallback: list[dict[int, Roi]] = [{} for _ in items]
        for k, dets in zip(need, found, strict=True):
            st = items[k][1]
            tracked = [(tid, box) for tid, box in st.boxes.items() if tid in st.rois]
            redetected: set[int] = set()
            for det in dets:
                ious = [float(box_ious(det.box, box[None])[0]) for _, box in tracked]
                if ious and max(ious) > cfg.detection_iou:  # already tracked: the detection confirms them
                    fallback[k].setdefault(tracked[int(np.argmax(ious))][0], self.keypoint_model.roi_for(det))
                    redetected.update(tid for (tid, _), v in zip(tracked, ious, strict=True) if v > cfg.detection_iou)
                else:
                    cands[k].append(_Candidate(self.keypoint_model.roi_for(det), None))
            if cfg.gate_by_detector:  # an unconfirmed track the detector did not find again is dropped
                cands[k][:] = [
                    c for c in cands[k] if c.track_id is None or c.track_id not in st.hits or c.track_id in redetected
                ]
        return fallback

    def _needs_detector(self, st: StreamState, tracking: bool) -> bool:
        cfg = self.config
        i = st.frame_index
        if not tracking and not st.hits:  # nobody in view
            return cfg.idle_redetect_every <= 1 or i % cfg.idle_redetect_every == 0
        if st.hits or cfg.redetect_every <= 0 or i % cfg.redetect_every == 0:
            return True
        lost = st.tracker.lost(cfg.chase_min_frames)
        return bool(lost) and (cfg.lost_redetect_every <= 1 or i % cfg.lost_redetect_every == 0)

    def _refine_new(
        self, items: list[tuple[np.ndarray, StreamState]], cands: list[list[_Candidate]], results: list[list[Keypoints]]
    ) -> None:
        """Read a new person's keypoints again from the crop their first keypoints place (a box is a rough
        guess of where the keypoint model wants the crop), keeping the answer with the better pose score."""
        again = [[i for i, c in enumerate(cands[k]) if c.track_id is None] for k in range(len(items))]
        if not any(again):
            return
        second = self.keypoint_model.estimate_batch(
            [(frame, [results[k][i].next_roi for i in again[k]]) for k, (frame, _) in enumerate(items)]
        )
        for k, idx in enumerate(again):
            for i, res in zip(idx, second[k], strict=True):
                if res.score > results[k][i].score:
                    cands[k][i] = _Candidate(results[k][i].next_roi, None)
                    results[k][i] = res

    def _retry_lost(
        self,
        items: list[tuple[np.ndarray, StreamState]],
        cands: list[list[_Candidate]],
        results: list[list[Keypoints]],
        detected: list[dict[int, Roi]],
    ) -> None:
        """A tracked person's new crop (placed by last frame's keypoints) can miss them: a fast move, a
        blurred or hidden face. Before calling them lost, try once more: in the crop of this frame's
        detection of them if there is one, else in the crop that last found them."""
        retry: list[list[tuple[int, Roi]]] = [[] for _ in items]
        for k, (_, st) in enumerate(items):
            for i, (c, r) in enumerate(zip(cands[k], results[k], strict=True)):
                if c.track_id is None or r.score >= self.config.track_threshold:
                    continue
                roi = detected[k].get(c.track_id) or st.good.get(c.track_id)
                if roi is not None and roi is not c.roi:
                    retry[k].append((i, roi))
        if not any(retry):
            return
        crops = [(frame, [roi for _, roi in retry[k]]) for k, (frame, _) in enumerate(items)]
        second = self.keypoint_model.estimate_batch(crops)
        for k, pairs in enumerate(retry):
            for (i, roi), res in zip(pairs, second[k], strict=True):
                if res.score > results[k][i].score:
                    cands[k][i] = _Candidate(roi, cands[k][i].track_id)
                    results[k][i] = res

    def _finish(self, st: StreamState, candidates: list[_Candidate], found: list[Keypoints], t: float) -> list[Person]:
        """Pose filter, duplicates, track ids, gating and next crops for one stream's frame."""
        cfg = self.config
        people = [
            (c.track_id, r, c.roi)
            for c, r in zip(candidates, found, strict=True)
            if r.score >= (cfg.pose_threshold if c.track_id is None else cfg.track_threshold)
        ]
        kept = self._drop_duplicates(people)
        merged = {f[0] for f in people if f[0] is not None} - {f[0] for f in kept}
        for tid in merged:  # a second crop of someone already found: not a lost person
            st.tracker.drop(tid)
            st.confirmed.discard(tid)
        people = kept
        assigned = st.tracker.update([(tid, r.bbox) for tid, r, _ in people], t)
        st.rois, st.boxes = {}, {}
        st.good = {tid: roi for tid, roi in st.good.items() if tid in st.tracker.kept()}
        out: list[Person] = []
        hits: dict[int, int] = {}
        for track_id, (_, res, roi) in zip(assigned, people, strict=True):
            st.rois[track_id] = res.next_roi
            st.boxes[track_id] = res.bbox
            st.good[track_id] = roi
            if track_id not in st.confirmed:
                n = st.hits.get(track_id, 0) + 1
                if n < st.confirm_frames:
                    hits[track_id] = n
                    continue
                st.confirmed.add(track_id)
            out.append(
                Person(
                    track_id=track_id,
                    bbox=(float(res.bbox[0]), float(res.bbox[1]), float(res.bbox[2]), float(res.bbox[3])),
                    score=float(res.score),
                    keypoints=res.keypoints,
                    layout=self.keypoint_model.layout,
                    world=res.world,
                )
            )
        for tid in set(st.hits) - set(hits) - st.confirmed:  # unconfirmed and not found again
            st.tracker.drop(tid)
        st.hits = hits
        st.confirmed &= st.tracker.kept()  # an id the tracker let go never comes back: a long stream forgets it
        st.frame_index += 1
        return out

    def _drop_duplicates(self, people: list[_Found]) -> list[_Found]:
        """Two crops that converged on the same person: keep the tracked one, else the more confident."""
        ranked = sorted(people, key=lambda p: (p[0] is None, -p[1].score))
        kept: list[_Found] = []
        for found in ranked:
            if not any(self._same_person(found[1], other) for _, other, _ in kept):
                kept.append(found)
        return kept

    def _same_person(self, a: Keypoints, b: Keypoints) -> bool:
        """Boxes overlapping more than `duplicate_iou`, or keypoints within `duplicate_distance` of the
        box size on average over the joints both see (two crops of one half-visible person can give boxes
        of different extent around the same joints; the median, as a partial view misplaces a few)."""
        if box_ious(a.bbox, b.bbox[None])[0] > self.config.duplicate_iou:
            return True
        both = (a.keypoints[:, 2] > 0.5) & (b.keypoints[:, 2] > 0.5)
        if both.sum() < 4:
            return False
        size = max(float(np.ptp(a.keypoints[both, 1])), float(np.ptp(a.keypoints[both, 0])), 1.0)
        dist = np.median(np.linalg.norm(a.keypoints[both, :2] - b.keypoints[both, :2], axis=1))
        return bool(dist < self.config.duplicate_distance * size)
