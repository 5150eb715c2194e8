"""2D human keypoint detection: a top-down stage built from three registries.

`create_detector(person_detector="nanodet", keypoints="blazepose_full", tracker="motion")`
returns the 2D stage (`hotpose.models.detector.topdown.TopDown`): call `process(frame, t)` with the RGB
uint8 frames of one video in order, get per frame a list of `Person` (`track_id`, `bbox`, `score`,
`keypoints` in the model's `layout`, and `coco17()` / `h36m17()`).

- `PERSON_DETECTORS`: `nanodet` (NanoDet-g, body-based, the default), `blazepose_face`
  (BlazePose's face-anchored detector);
- `KEYPOINT_MODELS`: `blazepose_full` (the default), `blazepose_heavy` (weights from `hotpose fetch-weights`);
- `HEATMAP_KEYPOINT_MODELS`: the seed papers' heatmap models of `hotpose.models.pose2d` by their names
  (`transpose_h_a6`, `tokenpose_l_d24`, `uniformer_b_256x192`, ...; run by
  `hotpose.models.detector.heatmap_pose`), which need a `weights` file: their authors' checkpoint, which the
  user downloads (never shipped; without it they refuse to build);
- `TRACKERS`: `motion` (`hotpose.models.detector.tracking.MotionTracker`).
Each entry is a factory `(device, home, **config) -> implementation`; a new model is a new file
and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from hotpose.models.detector.base import Detection, Detector, KeypointModel, Person, PersonDetector, Roi, Tracker
from hotpose.models.device import DeviceLike
from hotpose.models.keypoints import BLAZEPOSE_TO_COCO
from hotpose.models.pose2d import names as pose2d_names


def _nanodet(device: DeviceLike, home: Path | None, **kw: Any) -> PersonDetector:
    from hotpose.models.detector.nanodet import NanoDet, NanoDetConfig

    return NanoDet(NanoDetConfig(**kw), device=device, home=home)


def _blazepose_face(device: DeviceLike, home: Path | None, **kw: Any) -> PersonDetector:
    from hotpose.models.detector.blazepose import BlazePoseDetectorConfig, BlazePoseFaceDetector

    return BlazePoseFaceDetector(BlazePoseDetectorConfig(**kw), device=device, home=home)


def _blazepose_landmarks(variant: str) -> Callable[..., KeypointModel]:
    def make(device: DeviceLike, home: Path | None, **kw: Any) -> KeypointModel:
        from hotpose.models.detector.blazepose import BlazePoseLandmarks, BlazePoseLandmarksConfig

        if kw.pop("weights", None) is not None:
            raise ValueError(
                f"blazepose_{variant} takes no weights file (hotpose fetch-weights caches it); "
                "HOTPOSE_KEYPOINTS_WEIGHTS / --keypoints-weights are for the heatmap models"
            )
        return BlazePoseLandmarks(BlazePoseLandmarksConfig(variant=variant, **kw), device=device, home=home)

    return make


def _heatmap_pose(name: str) -> Callable[..., KeypointModel]:
    def make(device: DeviceLike, home: Path | None, weights: Path | None = None, **kw: Any) -> KeypointModel:
        from hotpose.models.detector.heatmap_pose import HeatmapPoseConfig, load_heatmap_pose

        return load_heatmap_pose(name, weights, device, HeatmapPoseConfig(**kw))

    return make


def _motion(**kw: Any) -> Callable[[], Tracker]:
    from hotpose.models.detector.tracking import MotionTracker, TrackerConfig

    config = TrackerConfig(**kw)
    return lambda: MotionTracker(config)


PERSON_DETECTORS: dict[str, Callable[..., PersonDetector]] = {
    "nanodet": _nanodet,
    "blazepose_face": _blazepose_face,
}
KEYPOINT_MODELS: dict[str, Callable[..., KeypointModel]] = {
    "blazepose_full": _blazepose_landmarks("full"),
    "blazepose_heavy": _blazepose_landmarks("heavy"),
}
HEATMAP_KEYPOINT_MODELS: dict[str, Callable[..., KeypointModel]] = {
    name: _heatmap_pose(name) for name in pose2d_names()
}
TRACKERS: dict[str, Callable[..., Callable[[], Tracker]]] = {"motion": _motion}


def _pick(registry: dict[str, Any], kind: str, name: str) -> Any:
    if name not in registry:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]


def create_detector(
    person_detector: str = "nanodet",
    keypoints: str = "blazepose_full",
    tracker: str = "motion",
    device: DeviceLike = None,
    home: Path | None = None,
    detector_config: dict[str, Any] | None = None,
    keypoint_config: dict[str, Any] | None = None,
    tracker_config: dict[str, Any] | None = None,
    **stage_config: Any,
) -> Detector:
    """The 2D stage from registry names; `*_config` are each part's config fields, `stage_config`
    the `TopDownConfig` fields (detector schedule, gating). `home` is the weights cache the models
    are read from (the service passes `Settings.home`); None means
    `hotpose.models.detector.weights.default_home()`."""
    from hotpose.models.detector.topdown import TopDown, TopDownConfig

    make_det = _pick(PERSON_DETECTORS, "person detector", person_detector)
    make_kp = _pick({**KEYPOINT_MODELS, **HEATMAP_KEYPOINT_MODELS}, "keypoint model", keypoints)
    make_tracker = _pick(TRACKERS, "tracker", tracker)
    known = {f.name for f in fields(TopDownConfig)}
    if set(stage_config) - known:
        raise TypeError(f"unknown 2D stage settings {sorted(set(stage_config) - known)}; known: {sorted(known)}")
    return TopDown(
        make_det(device, home, **(detector_config or {})),
        make_kp(device, home, **(keypoint_config or {})),
        make_tracker(**(tracker_config or {})),
        TopDownConfig(**stage_config),
    )


__all__ = [
    "BLAZEPOSE_TO_COCO",
    "HEATMAP_KEYPOINT_MODELS",
    "KEYPOINT_MODELS",
    "PERSON_DETECTORS",
    "TRACKERS",
    "Detection",
    "Detector",
    "KeypointModel",
    "Person",
    "PersonDetector",
    "Roi",
    "Tracker",
    "create_detector",
]
