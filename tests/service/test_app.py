from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from hotpose.service.app import create_app
from hotpose.service.jobs import Jobs
from hotpose.service.routes.clips import _limited, _UploadTooLargeError
from hotpose.service.settings import Settings
from tests.service.test_video import huge_png_header


def wait_job(client: TestClient, job_id: str, timeout: float = 120) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def submit(client: TestClient, content: bytes, name: str = "clip.mp4") -> str:
    r = client.post("/v1/clips", files={"file": (name, content, "video/mp4")})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["job_id"]


def test_health_info_metrics(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings())) as client:
        assert client.get("/livez").json() == {"status": "alive"}
        assert client.get("/healthz").status_code == 200
        info = client.get("/v1/info").json()
        assert info["device"] == "cpu" and info["window"] == 27
        assert info["lifter"]["name"] == "hot_mixste" and info["lifter"]["trained"] is True
        assert info["joint_names"][0] == "pelvis" and len(info["skeleton_edges"]) == 16
        assert "camera frame" in info["coordinates"]["joints_3d"] and info["limits"]["max_streams"] == 8
        two_d = info["detector"]
        assert two_d["person_detector"]["name"] == "nanodet" and two_d["keypoints"]["name"] == "blazepose_full"
        assert two_d["keypoints"]["layout"] == "blazepose33" and two_d["tracker"]["max_gap_s"] == 3.0
        text = client.get("/metrics").text
        assert "hotpose_batch_size" in text and "hotpose_active_streams" in text


def test_not_ready_before_lifespan(make_settings: Callable[..., Settings]) -> None:
    client = TestClient(create_app(make_settings()))  # no context manager: lifespan not run
    assert client.get("/healthz").status_code == 503
    assert client.get("/livez").status_code == 200
    assert client.get("/v1/info").status_code == 503


def test_a_live_stride_longer_than_the_window_stops_the_start(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(live_stride=28))  # the test lifter's window is 27 frames
    with pytest.raises(ValueError, match="HOTPOSE_LIVE_STRIDE=28 exceeds"), TestClient(app):
        pass


def test_clip_job_result_in_every_format(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        job_id = submit(client, astronaut_clip.read_bytes())
        job = wait_job(client, job_id)
        assert job["status"] == "done" and job["progress"] == 1.0 and job["frames_done"] == 30, job
        kept = {f.name for f in (settings.data_dir / "jobs" / job_id).iterdir()}
        assert kept == {"frames.ndjson", "meta.json"}  # the upload is deleted once the job is done
        res = client.get(f"/v1/jobs/{job_id}/result").json()
        assert res["width"] == 512 and res["fps"] == 10.0 and res["joint_names"][0] == "pelvis"
        frames = res["frames"]
        assert [f["index"] for f in frames] == list(range(30))
        assert np.allclose([f["time"] for f in frames], np.arange(30) / 10.0, atol=1e-3)
        people = [p for f in frames for p in f["people"]]
        assert len(people) >= 28 and len({p["track_id"] for p in people}) == 1
        assert all(
            np.asarray(p["joints_3d"]).shape == (17, 3) and np.asarray(p["keypoints_2d"]).shape == (17, 3)
            for p in people
        )
        lines = client.get(f"/v1/jobs/{job_id}/stream").text.strip().split("\n")
        assert [json.loads(line)["index"] for line in lines] == list(range(30))
        npz = np.load(io.BytesIO(client.get(f"/v1/jobs/{job_id}/result?format=npz").content))
        assert npz["joints_3d"].shape == (len(people), 17, 3) and len(npz["frame_index"]) == 30
        csv = client.get(f"/v1/jobs/{job_id}/result?format=csv").text.splitlines()
        assert csv[0].startswith("frame,time,track_id,person_score") and len(csv) == 1 + 17 * len(people)
        bvh = client.get(f"/v1/jobs/{job_id}/result?format=bvh")
        assert bvh.status_code == 200 and bvh.text.startswith("HIERARCHY") and "Frames: 30" in bvh.text
        tid = people[0]["track_id"]
        assert client.get(f"/v1/jobs/{job_id}/result?format=bvh&track_id={tid}").text == bvh.text
        missing = client.get(f"/v1/jobs/{job_id}/result?format=bvh&track_id={tid + 1}")
        assert missing.status_code == 422 and "no person with track_id" in missing.json()["detail"]
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
        assert client.get("/v1/jobs/nope/result").status_code == 404


def test_bad_uploads_fail_clearly(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    content = astronaut_clip.read_bytes()
    limit_mb = 0.6 * len(content) / (1 << 20)  # the whole clip is over this server's limit, a third is not
    settings = make_settings(max_upload_mb=limit_mb, max_clip_frames=10)
    with TestClient(create_app(settings)) as client:
        bad = wait_job(client, submit(client, b"this is not a video at all" * 100, "notes.mp4"))
        assert bad["status"] == "failed" and "decode" in bad["error"]
        assert not list((settings.data_dir / "jobs" / bad["job_id"]).glob("input*"))  # nothing left to retry
        bomb = wait_job(client, submit(client, huge_png_header(30000, 30000), "bomb.png"))  # refused undecoded
        assert bomb["status"] == "failed" and "30000x30000 exceed the limit" in bomb["error"]
        failed = client.get(f"/v1/jobs/{bad['job_id']}/result")  # no result in the job's state: a conflict
        assert failed.status_code == 409 and failed.json()["detail"].startswith("job is failed: notes.mp4")
        r = client.post("/v1/clips", files={"file": ("clip.mp4", content, "video/mp4")})
        assert r.status_code == 413
        truncated = wait_job(client, submit(client, content[: len(content) // 3]))
        assert truncated["status"] in ("failed", "done") and (truncated["error"] or truncated["frames_done"] <= 10)
        assert client.post("/v1/clips", files={"file": ("e.mp4", b"", "video/mp4")}).status_code == 422
        assert client.post("/v1/clips", files={"video": ("x.mp4", b"abc", "video/mp4")}).status_code == 422
        raw = client.post("/v1/clips", content=b"raw", headers={"content-type": "text/plain"})
        assert raw.status_code in (400, 422)


def test_uploads_over_the_pending_job_limit_get_429(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(max_pending_jobs=0))) as client:
        r = client.post("/v1/clips", files={"file": ("clip.mp4", b"x" * 1000, "video/mp4")})
    assert r.status_code == 429 and "too many clips waiting (limit 0)" in r.json()["detail"]
    assert r.headers["retry-after"] == "30"


def multipart_chunks(size: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    for _ in range(size // chunk):
        yield b"\0" * chunk
    yield b"\r\n--b0undary--\r\n"


def test_an_upload_without_a_length_is_cut_off_at_the_limit(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> int:
        raise AssertionError("the whole upload was read before the limit was checked")

    monkeypatch.setattr("hotpose.service.routes.clips._copy_upload", never)
    settings = make_settings(max_upload_mb=1.0)
    with TestClient(create_app(settings)) as client:
        r = client.post(  # a generator body goes out chunked, with no Content-Length
            "/v1/clips",
            content=multipart_chunks(3 << 20),
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert r.status_code == 413 and "larger than 1 MB" in r.json()["detail"]
        assert list((settings.data_dir / "jobs").iterdir()) == []

    # the request's receive stops past the limit: the form parser never reads the rest of the body
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\0" * (1 << 16), "more_body": True}

    headers = [(b"content-type", b"multipart/form-data; boundary=b0undary")]
    scope = {"type": "http", "method": "POST", "headers": headers}
    with pytest.raises(_UploadTooLargeError):
        asyncio.run(Request(scope, _limited(receive, 1 << 20)).body())
    assert pulled == 17


def test_clip_limits(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    with TestClient(create_app(make_settings(max_clip_frames=10))) as client:
        job = wait_job(client, submit(client, astronaut_clip.read_bytes()))
        assert job["status"] == "failed" and "10" in job["error"] and "frames" in job["error"]


def test_jobs_survive_a_restart(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        done_id = submit(client, astronaut_clip.read_bytes())
        assert wait_job(client, done_id)["status"] == "done"
    # a job the previous server accepted but never finished (killed while running)
    store = Jobs.open(settings.data_dir)
    staged = store.staging_file()
    staged.write_bytes(astronaut_clip.read_bytes())
    job = store.create("interrupted.mp4", upload=staged)
    store.table.update(job.job_id, status="running", progress=0.3)
    lost = store.create("lost.mp4")
    store.table.update(lost.job_id, status="running")
    store.close()
    with TestClient(create_app(settings)) as client:
        assert len(client.get(f"/v1/jobs/{done_id}/result").json()["frames"]) == 30
        assert wait_job(client, job.job_id)["status"] == "done"
        failed = client.get(f"/v1/jobs/{lost.job_id}").json()
        assert failed["status"] == "failed" and "restart" in failed["error"]


def test_retention_deletes_old_jobs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(retention_hours=1.0)
    settings.data_dir.mkdir(parents=True)
    store = Jobs.open(settings.data_dir)
    old = store.create("old.mp4")
    store.files.put_json(old.job_id, "meta.json", {})
    store.table.update(old.job_id, status="done")
    store.table._db.execute("UPDATE jobs SET updated = ? WHERE job_id = ?", (time.time() - 7200, old.job_id))  # type: ignore[attr-defined]
    store.close()
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/v1/jobs/{old.job_id}").status_code == 404
    assert not (settings.data_dir / "jobs" / old.job_id).exists()


def test_api_keys(make_settings: Callable[..., Settings]) -> None:
    with TestClient(create_app(make_settings(api_keys="k1, k2"))) as client:
        assert client.get("/healthz").status_code == 200  # probes stay open
        assert client.get("/v1/info").status_code == 401
        assert client.get("/v1/info", headers={"Authorization": "Bearer k2"}).status_code == 200
        assert client.get("/v1/info?api_key=k1").status_code == 200
        assert client.get("/v1/info?api_key=wrong").status_code == 401


def test_the_2d_stage_is_chosen_by_settings(make_settings: Callable[..., Settings], astronaut_clip: Path) -> None:
    """The second person detector and the second keypoint model, selected by settings alone."""
    settings = make_settings(person_detector="blazepose_face", keypoints="blazepose_heavy", redetect_every=5)
    with TestClient(create_app(settings)) as client:
        two_d = client.get("/v1/info").json()["detector"]
        assert two_d["person_detector"]["name"] == "blazepose_face"
        assert two_d["keypoints"]["name"] == "blazepose_heavy" and two_d["schedule"]["redetect_every"] == 5
        job = wait_job(client, submit(client, astronaut_clip.read_bytes()))
        assert job["status"] == "done", job
        frames = client.get(f"/v1/jobs/{job['job_id']}/result").json()["frames"]
        assert sum(len(f["people"]) for f in frames) >= 25  # the astronaut, in 30 frames


def test_an_unknown_2d_model_stops_the_start(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(person_detector="yolo"))
    with pytest.raises(KeyError, match="person detector 'yolo'"), TestClient(app):
        pass


def test_a_clip_places_people_with_the_camera_it_was_given(
    make_settings: Callable[..., Settings], astronaut_clip: Path
) -> None:
    # the shipped lifter: an untrained one's shapes can place people anywhere, behind the camera too
    with TestClient(create_app(make_settings(lifter_weights=None))) as client:
        r = client.post("/v1/clips", files={"file": ("c.mp4", astronaut_clip.read_bytes())}, data={"fov_deg": "90"})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert wait_job(client, job_id)["status"] == "done"
        res = client.get(f"/v1/jobs/{job_id}/result").json()
        assert res["camera"] == {"focal_px": 256.0, "cx": 256.0, "cy": 256.0, "width": 512, "height": 512,
                                 "assumed": False}  # fmt: skip
        people = [p for f in res["frames"] for p in f["people"]]
        assert people and all("root_3d" in p for p in people)
        placed = np.array([p["root_3d"] for p in people if p["root_3d"] is not None])
        assert len(placed) == len(people) and placed.shape[1] == 3
        assert (placed[:, 2] > 0.3).all() and (placed[:, 2] < 5).all()  # in front of the camera, at arm's length or so
        default = submit(client, astronaut_clip.read_bytes())
        assert wait_job(client, default)["status"] == "done"
        assert client.get(f"/v1/jobs/{default}/result").json()["camera"]["assumed"] is True


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"focal_px": "wide"}, "focal_px must be a number"), ({"fov_deg": "250"}, "fov_deg must be in"),
     ({"focal_px": "800", "fov_deg": "60"}, "not both"), ({"person_height_m": "9"}, "person_height_m")],
)  # fmt: skip
def test_a_bad_camera_field_is_refused_and_leaves_no_job(
    make_settings: Callable[..., Settings], fields: dict[str, str], error: str
) -> None:
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/clips", files={"file": ("c.mp4", b"\x00" * 100)}, data=fields)
        assert r.status_code == 422 and error in r.json()["detail"], r.text
        assert list((settings.data_dir / "jobs").iterdir()) == []


def test_keys_stay_out_of_the_logs_and_info_shows_no_server_paths(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-key-123"
    settings = make_settings(api_keys=secret)
    with caplog.at_level("DEBUG"), TestClient(create_app(settings)) as client:
        assert client.get("/v1/info", params={"api_key": "wrong"}).status_code == 401
        info = client.get("/v1/info", params={"api_key": secret})
        assert client.get("/v1/info", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert info.status_code == 200
    assert info.json()["lifter"]["weights"] == settings.lifter_weights.name  # type: ignore[union-attr]
    assert str(settings.lifter_weights.parent) not in info.text and str(settings.data_dir) not in info.text  # type: ignore[union-attr]
    server_logs = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("httpx")
    )  # not the client's
    assert "/v1/info" in server_logs and secret not in server_logs and "wrong" not in server_logs


def test_cors_is_closed_unless_origins_are_configured(make_settings: Callable[..., Settings]) -> None:
    asked = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(make_settings())) as client:
        assert "access-control-allow-origin" not in client.get("/livez", headers=asked).headers
        assert "access-control-allow-origin" not in client.options("/v1/info", headers=asked).headers
    with TestClient(create_app(make_settings(cors_origins="https://app.example.com"))) as client:
        assert client.get("/livez", headers=asked).headers["access-control-allow-origin"] == "https://app.example.com"
        assert client.options("/v1/info", headers=asked).status_code == 200
        other = {**asked, "Origin": "https://evil.example.com"}
        assert "access-control-allow-origin" not in client.get("/livez", headers=other).headers
