from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hotpose.service.cli import build_parser, main
from hotpose.service.commands.train import _overrides


def test_parser_commands() -> None:
    p = build_parser()
    args = p.parse_args(["bench", "lifter", "--batch", "1", "--rounds", "2"])
    assert args.batch == [1] and args.rounds == 2
    with pytest.raises(SystemExit):
        p.parse_args(["bench"])


def test_set_overrides_read_json_or_text() -> None:
    got = _overrides(["dim=128", "norm=foo", "flip=true", "name=", "heads=[1, 2]", "tag=fast"])
    assert got == {"dim": 128, "norm": "foo", "flip": True, "name": "", "heads": [1, 2], "tag": "fast"}


def test_commands_refuse_missing_or_wrong_weights(
    tmp_path: Path, tiny_weights: Path, astronaut_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-lifter", "--data", str(tmp_path / "x.npz"), "--model", "mlp"]) == 1
    assert "no trained weights for lifter 'mlp'" in capsys.readouterr().err
    out = tmp_path / "poses.json"
    assert main(["run", str(astronaut_clip), "-o", str(out), "--lifter", "mixste", "--weights", str(tiny_weights)]) == 1
    assert "holds a 'hot_mixste' lifter, not 'mixste'" in capsys.readouterr().err and not out.exists()


def test_detect2d_on_an_image(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    import cv2
    from skimage import data

    from hotpose.service.cli import main

    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["detect2d", str(path)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["index"] == 0
    (person,) = line["people"]  # a still image: no temporal gating
    assert person["track_id"] == 1 and person["layout"] == "blazepose33" and len(person["keypoints"]) == 33
    assert len(person["coco17"]) == 17 and len(person["h36m17"]) == 17


def test_detect2d_rejects_a_non_video(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from hotpose.service.cli import main

    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    assert main(["detect2d", str(path)]) == 1
    assert "not a video" in capsys.readouterr().err


def test_bench_without_video_or_sample_photo_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)  # scikit-image comes with the dev and bench extras only
    assert main(["bench", "detector", "--frames", "2"]) == 1
    assert "pip install 'hotpose[bench]'" in capsys.readouterr().err


def test_serve_lets_uvicorn_take_websocket_messages_over_the_frame_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("HOTPOSE_MAX_MESSAGE_MB", "32")
    assert main(["serve", "--port", "8123"]) == 0
    # above the frame limit, so that a larger frame gets the stream's own error instead of a 1009 close
    assert seen["port"] == 8123 and seen["ws_max_size"] == 64 << 20


def test_eval_lifter_can_lift_as_the_service_does(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.models.test_train import _mocap_file

    data = _mocap_file(tmp_path / "mocap.npz")  # 3 clips of 60-80 frames, 4 cameras each
    base = ["eval-lifter", "--data", str(data), "--weights", str(tiny_weights), "--views-every", "2"]
    assert main([*base, "--service", "causal", "--live-stride", "4"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert (live["service"], live["lift_stride"], live["delay_frames"], live["flip"]) == ("causal", 4, 0, False)
    assert live["views_every"] == 2 and live["frames_evaluated"] == 2 * (60 + 70 + 80)  # 6 of the 12 views
    assert main([*base, "--service", "clip"]) == 0
    clip = json.loads(capsys.readouterr().out)
    assert (clip["service"], clip["lift_stride"], clip["delay_frames"], clip["flip"]) == ("clip", 9, 26, True)
    assert clip["noisy2d"]["mpjpe_mm"] != live["noisy2d"]["mpjpe_mm"]  # the two ways lift differently
    assert main([*base, "--views-every", "0"]) == 1 and "--views-every" in capsys.readouterr().err


def test_eval_lifter_labels_other_cameras_as_not_the_protocol(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.models.test_train import _mocap_file

    base = ["eval-lifter", "--data", str(_mocap_file(tmp_path / "mocap.npz")), "--weights", str(tiny_weights)]
    assert main(base) == 0
    protocol = json.loads(capsys.readouterr().out)
    assert main([*base, "--camera-focal", "715", "--camera-distance", "2.3", "3.2"]) == 0
    webcam = json.loads(capsys.readouterr().out)
    assert "cameras" not in protocol and webcam["cameras"] == {"focal_px": 715.0, "distance_m": [2.3, 3.2]}
    assert webcam["frames_evaluated"] == protocol["frames_evaluated"]
    assert webcam["gt2d"]["mpjpe_mm"] != protocol["gt2d"]["mpjpe_mm"]


def test_eval_lifter_reports_groups_of_clips_by_name(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.models.test_train import _mocap_file

    base = ["eval-lifter", "--data", str(_mocap_file(tmp_path / "mocap.npz")), "--weights", str(tiny_weights)]
    assert main([*base, "--group", "first=c0", "--group", "later=c1,c9", "--by-clip"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clip_groups"] == {"first": ["c0"], "later": ["c1", "c9"]}
    frames = {g: v["frames"] for g, v in report["noisy2d"]["by_group"].items()}
    assert frames == {"first": 4 * 60, "later": 4 * 70, "other": 4 * 80}
    assert set(report["gt2d"]["by_clip"]) == {"c0", "c1", "c2"}
    for bad in ("first", "=c0", "first=", "other=c0"):
        assert main([*base, "--group", bad]) == 1
        assert "--group" in capsys.readouterr().err
    assert main([*base, "--group", "a=c0", "--group", "a=c1"]) == 1 and "given twice" in capsys.readouterr().err


def test_bench_service_takes_unset_flags_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import hotpose.service.bench

    seen = []
    monkeypatch.setattr(hotpose.service.bench, "bench_service", lambda settings, **kw: seen.append(settings) or {})
    monkeypatch.setattr(hotpose.service.bench, "format_service_report", lambda report: "")
    monkeypatch.setenv("HOTPOSE_THREADS", "3")
    monkeypatch.setenv("HOTPOSE_LIFTER", "mixste")
    assert main(["bench", "service"]) == 0
    assert (seen[-1].threads, seen[-1].lifter) == (3, "mixste")  # not overridden by unset flags
    assert main(["bench", "service", "--lifter", "hot_mixste", "--threads", "1"]) == 0
    assert (seen[-1].threads, seen[-1].lifter) == (1, "hot_mixste")


def test_train_lifter_passes_camera_ranges_and_keeps_the_defaults_when_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hotpose.models.train
    from hotpose.models.data import Augment

    seen: list[hotpose.models.train.TrainConfig] = []
    monkeypatch.setattr(hotpose.models.train, "train", lambda cfg, on_step=None: seen.append(cfg) or {})
    base = ["train-lifter", "--data", str(tmp_path / "m.npz"), "--out", str(tmp_path / "o.pt")]
    assert main(base) == 0
    assert main([*base, "--focal", "550", "1600", "--distance", "2", "8"]) == 0
    assert (seen[0].focal, seen[0].distance) == (Augment.focal, Augment.distance)
    assert (seen[1].focal, seen[1].distance) == ((550.0, 1600.0), (2.0, 8.0))
