"""The web page (`service/static`) in a real headless Chromium, driven over the DevTools protocol.

The fake camera plays a real clip (y4m); the page streams it over WS /v1/stream with an API key
typed into the page, and must draw skeletons where the person is, in 2D and in the three.js viewer,
and chart latency and fps as they come; an uploaded clip must end as a finished job with downloads
offered, played on a timeline that scrubs the 2D overlay and the 3D pose to a frame's values, with an
angle plot of one point per frame. `window.hotposeView.state()` is the page's read-only account of
what it shows. No timed assertions: each wait is bounded, only for the test not to hang.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hotpose.service.app import create_app
from hotpose.service.settings import Settings
from tests.conftest import astronaut_frames, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--remote-debugging-port=0", "--window-size=1400,1300",
    "--enable-unsafe-swiftshader",  # WebGL in software where there is no GPU (the 3D viewer)
]  # fmt: skip


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> None:
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())


class Page:
    """The smallest DevTools-protocol client: commands on one page target, events ignored."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None)
        self.ws.__enter__()
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg["result"])

    def js(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.25)
        state = self.js(
            "JSON.stringify({status: document.getElementById('status').textContent,"
            " stats: window.hotpose && window.hotpose.stats, job: window.hotpose && window.hotpose.job})"
        )
        raise AssertionError(f"timed out waiting for {what}; page state: {state}")

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)  # BGR

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[[], Page]]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it with apt where it can)")
    y4m = tmp_path / "camera.y4m"
    write_y4m(y4m, astronaut_frames(30), fps=10)
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--use-file-for-fake-video-capture={y4m}", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pages: list[Page] = []

    def open_page() -> Page:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = Page(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))
        pages.append(page)
        return page

    try:
        yield open_page
    finally:
        for p in pages:
            p.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def keep_screenshot(page: Page, name: str) -> None:
    """With HOTPOSE_SCREENSHOTS=<folder>, the page as the test left it, to look at (nothing asserted)."""
    folder = os.environ.get("HOTPOSE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(Path(folder) / f"{name}.png"), page.screenshot())


def skeleton_pixels(bgr: np.ndarray, color: str) -> np.ndarray:
    """Pixels of a track's colour (saturated colours the clip does not contain)."""
    want = np.array([int(color[5:7], 16), int(color[3:5], 16), int(color[1:3], 16)])  # "#rrggbb" -> BGR
    return np.abs(bgr.astype(int) - want).max(axis=-1) < 60


def open_page(page: Page, url: str) -> Page:
    """The service's page loaded, with the server's `/v1/info` read (so the page is ready for input)
    and the 3D viewer (three.js) running."""
    page.call("Page.navigate", url=url + "/")
    page.wait_for("document.readyState === 'complete' && window.hotpose && window.hotpose.info !== null", 30, "page")
    page.wait_for("window.hotposeView.state().viewer !== null", 30, "the 3D viewer")
    return page


VIEW = "window.hotposeView.state()"
RENDERED = f"({VIEW}.viewer && !{VIEW}.viewer.pending)"  # the 3D viewer drew its latest change

# Per track id, the pixels of the WebGL canvas in its colour: {id: [pixels, top row, bottom row]}
# (copied through a 2D canvas: the viewer keeps its drawing buffer).
SAMPLE_3D = """((ids) => {
  const c = document.getElementById('view3d'), t = document.createElement('canvas');
  t.width = c.width; t.height = c.height;
  const g = t.getContext('2d'); g.drawImage(c, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const out = {};
  for (const id of ids) {
    const h = window.hotpose.colors[id % window.hotpose.colors.length];
    const want = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
    let n = 0, top = Infinity, bottom = -Infinity;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.max(...want.map((v, k) => Math.abs(d[i + k] - v))) >= 60) continue;
      const row = Math.floor(i / 4 / c.width);
      n += 1; top = Math.min(top, row); bottom = Math.max(bottom, row);
    }
    out[id] = [n, top, bottom];
  }
  return out;
})"""


def sample_3d(page: Page, ids: list[int]) -> dict[int, list[int]]:
    page.wait_for(RENDERED, 30, "the 3D view to render")
    return {int(k): v for k, v in page.js(f"{SAMPLE_3D}({json.dumps(ids)})").items()}


def test_camera_stream_draws_skeletons_where_the_person_is(
    browser: Callable[[], Page], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(api_keys="page-key"))
    with serve(app) as url:
        page = browser()
        page.call("Page.navigate", url=url + "/")
        page.wait_for("document.readyState === 'complete' && !!window.hotpose", 30, "the page")
        server = "document.getElementById('server').textContent"
        assert "401" in page.wait_for(f"{server}.includes('401') && {server}", 15, "the key refusal")
        page.js("(() => { const k = document.getElementById('key'); k.value = 'page-key';"
                " k.dispatchEvent(new Event('change')); })()")  # fmt: skip
        page.wait_for("window.hotpose.info !== null", 15, "/v1/info with the key")
        page.js("document.getElementById('camera').click()")
        page.wait_for(
            "window.hotpose.stats.answered >= 10 && window.hotpose.lastPose && "
            "window.hotpose.lastPose.people.length > 0 && window.hotpose.lastPose.people[0].joints_3d !== null",
            120, "pose messages for the fake camera",
        )  # fmt: skip
        # the live chart: latency and fps samples, redrawn as pose messages come
        chart = f"{VIEW}.liveChart"
        first = page.wait_for(f"{chart}.draws >= 1 && {chart}.samples >= 3 && {chart}", 60, "the live chart")
        later = page.wait_for(
            f"{chart}.draws > {first['draws']} && {chart}.samples > {first['samples']} && {chart}", 60,
            "the live chart to update",
        )  # fmt: skip
        chart_shown = page.js("!document.getElementById('live').hidden")
        page.wait_for(f"{RENDERED} && {VIEW}.viewer.people.length > 0", 30, "the 3D view")
        info = page.js(
            "(() => { const c = document.getElementById('view2d').getBoundingClientRect();"
            " const p = window.hotpose.lastPose.people[0];"
            " return {c: [c.left, c.top, c.width, c.height],"
            " w: document.getElementById('view2d').width, kp: p.keypoints_2d, bbox: p.bbox,"
            " latency: document.getElementById('latency').textContent,"
            " tracks: document.getElementById('tracks').textContent, stats: window.hotpose.stats,"
            " track: p.track_id, color: window.hotpose.colors[p.track_id % window.hotpose.colors.length]}; })()"
        )
        drawn3d = page.js(f"{VIEW}.viewer.people.map((d) => d.track_id)")
        pixels3d = sample_3d(page, drawn3d)
        shot = page.screenshot()
        keep_screenshot(page, "live")
        page.js("document.getElementById('stop').click()")
    stats = info["stats"]
    assert stats["sent"] >= stats["answered"] >= 10 and stats["errors"] == 0
    assert info["latency"] != "-" and info["tracks"] != "-"
    assert chart_shown and later["points"][0] > 0 and later["points"][1] > 0  # latency and fps drawn

    green = skeleton_pixels(shot, info["color"])
    x, y, w, h = (int(round(v)) for v in info["c"])
    scale = w / info["w"]  # canvas pixels -> page pixels
    kp = np.asarray(info["kp"])
    # where the person is: their keypoints' extent and box (the id label sits just above), 40 px margin
    x0 = min(kp[:, 0].min(), info["bbox"][0]) - 40
    y0 = min(kp[:, 1].min(), info["bbox"][1]) - 40
    x1 = max(kp[:, 0].max(), info["bbox"][2]) + 40
    y1 = max(kp[:, 1].max(), info["bbox"][3]) + 40
    person = green[y + max(int(y0 * scale), 0) : y + int(y1 * scale), x + max(int(x0 * scale), 0) : x + int(x1 * scale)]
    view = green[y : y + h, x : x + w]
    assert person.sum() > 150, "no skeleton drawn over the person"
    assert person.sum() > 0.9 * view.sum(), "skeleton pixels away from the person"
    # the 3D viewer draws them (placed in the scene, or root-relative without a root) in their colour
    assert info["track"] in drawn3d and pixels3d[info["track"]][0] > 40, "no 3D skeleton drawn"


def scrub_to(page: Page, frame: int) -> dict[str, Any]:
    """Drag the timeline's scrubber to `frame`; what the page shows once it has drawn that frame."""
    page.js(f"(() => {{ const s = document.getElementById('scrub'); s.value = '{frame}';"
            " s.dispatchEvent(new Event('input')); })()")  # fmt: skip
    state: dict[str, Any] = page.wait_for(f"{VIEW}.frame === {frame} && {RENDERED} && {VIEW}", 30, f"frame {frame}")
    return state


def test_uploaded_clip_finishes_plays_and_scrubs(
    browser: Callable[[], Page], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    clip = tmp_path / "astronaut.webm"  # VP8: decoded by OpenCV on the server and by Chromium on the page
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"VP80"), 10.0, (512, 512))
    for f in astronaut_frames(30):
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    app = create_app(make_settings())
    with serve(app) as url:
        page = open_page(browser(), url)
        doc = page.call("DOM.getDocument")["root"]["nodeId"]
        node = page.call("DOM.querySelector", nodeId=doc, selector="#clipfile")["nodeId"]
        page.call("DOM.setFileInputFiles", files=[str(clip)], nodeId=node)
        page.wait_for("window.hotpose.job && window.hotpose.job.status === 'done' && window.hotpose.clip !== null",
                      120, "the job to finish")  # fmt: skip
        text = page.js("document.getElementById('jobtext').textContent")
        shown = page.js("!document.getElementById('downloads').hidden")
        page.wait_for("window.hotpose.lastPose && window.hotpose.lastPose.people.length > 0", 30, "playback")
        frames = page.js("window.hotpose.clip.frames")
        bvh = page.js("[...document.querySelectorAll('#bvh button')].map((b) => b.dataset.href)")
        # each BVH button asks for one person, so a clip with several people (or ids) downloads too
        statuses = page.js(f"Promise.all({json.dumps(bvh)}.map((u) => fetch(u).then((r) => r.status)))")

        # the timeline: scrubbing pauses and shows that frame in 2D and 3D
        lifted = [i for i, f in enumerate(frames) if any(p["joints_3d"] for p in f["people"])]
        a, b = lifted[len(lifted) // 2], lifted[-1]
        at_a = scrub_to(page, a)
        pixels = sample_3d(page, [p["track_id"] for p in frames[a]["people"]])
        at_b = scrub_to(page, b)
        page.js("document.getElementById('back').click()")
        stepped = page.wait_for(f"{VIEW}.frame === {b - 1} && {VIEW}", 30, "a step back")
        timeline = page.js("[!document.getElementById('timeline').hidden, document.getElementById('scrub').max,"
                           " document.getElementById('frametext').textContent]")  # fmt: skip
        # the angle plot: one point per frame with 3D, for the person shown
        plot = page.wait_for(f"{VIEW}.anglePlot.draws > 0 && {VIEW}.anglePlot", 60, "the angle plot")
        person = int(page.js("document.getElementById('angleperson').value"))
        keep_screenshot(page, "clip")
    assert text == "done: 30 frames" and shown and len(frames) == 30
    lifted_ids = sorted({p["track_id"] for f in frames for p in f["people"] if p["joints_3d"]})
    assert lifted_ids and [int(u.split("track_id=")[1]) for u in bvh] == lifted_ids and statuses == [200] * len(bvh)

    assert timeline[0] and timeline[1] == "29" and timeline[2].startswith(f"frame {b}")
    for k, view in ((a, at_a), (b, at_b)):
        f = frames[k]
        assert view["paused"] and view["overlay"]["frame"] == f["index"]
        assert view["overlay"]["people"] == [{"track_id": p["track_id"], "keypoints_2d": p["keypoints_2d"]}
                                             for p in f["people"]]  # fmt: skip
        drawn = {d["track_id"]: d for d in view["viewer"]["people"]}
        for p in f["people"]:
            if not p["joints_3d"]:
                continue
            want = np.asarray(p["joints_3d"])
            if drawn[p["track_id"]]["placed"]:
                want = want + np.asarray(p["root_3d"])
            np.testing.assert_allclose(np.asarray(drawn[p["track_id"]]["joints"]), want, atol=1e-9)
    assert stepped["overlay"]["frame"] == frames[b - 1]["index"]
    # the 3D view draws the people of the frame, in their colours
    assert all(pixels[p["track_id"]][0] > 40 for p in frames[a]["people"] if p["joints_3d"]), pixels
    assert at_a["viewer"]["frustum"] == any(p.get("root_3d") for p in frames[a]["people"])

    with_3d = sum(1 for f in frames if any(p["track_id"] == person and p["joints_3d"] for p in f["people"]))
    assert plot["x"] == len(frames) and plot["points"] == [with_3d, with_3d]
    assert plot["series"] == ["left knee", "right knee"]


# A person standing, facing the camera: H36M-17, metres, camera axes (y down), pelvis at the origin.
STANDING = [
    [0, 0, 0], [-0.13, 0, 0], [-0.14, 0.45, 0.02], [-0.14, 0.88, 0], [0.13, 0, 0], [0.14, 0.45, 0.02],
    [0.14, 0.88, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.72, 0], [0.18, -0.48, 0],
    [0.22, -0.22, 0], [0.24, 0.02, -0.05], [-0.18, -0.48, 0], [-0.22, -0.22, 0], [-0.24, 0.02, -0.05],
]  # fmt: skip


def test_3d_view_places_people_by_depth_and_toggles_back(
    browser: Callable[[], Page], make_settings: Callable[..., Settings]
) -> None:
    def person(track_id: int, root: list[float] | None) -> dict[str, Any]:
        kp = [[100.0 + 10 * track_id, 100.0, 0.9]] * 17
        return {"track_id": track_id, "bbox": [0, 0, 10, 10], "score": 0.9, "keypoints_2d": kp,
                "joints_3d": STANDING, "root_3d": root}  # fmt: skip

    near, far, unplaced = person(1, [-0.5, 0, 3]), person(2, [0.6, 0, 6]), person(3, None)
    app = create_app(make_settings())
    with serve(app) as url:
        page = open_page(browser(), url)
        assert page.js("window.hotpose.placed && document.getElementById('placed').checked")
        # the page redraws its last pose when the toggle changes: what a stream or a clip draws
        page.js(f"window.hotpose.lastPose = {{people: {json.dumps([near, far, unplaced])}}}")
        toggle = "(() => { const t = document.getElementById('placed'); t.click(); return t.checked; })()"
        assert page.js(toggle) is False
        page.wait_for(f"{RENDERED} && {VIEW}.viewer.people.length === 3", 30, "the root-relative view")
        relative = {d["track_id"]: d for d in page.js(f"{VIEW}.viewer.people")}
        caption_relative = page.js("document.getElementById('caption3d').textContent")
        keep_screenshot(page, "relative")
        assert page.js(toggle) is True
        page.wait_for(f"{RENDERED} && {VIEW}.viewer.placed && {VIEW}.viewer.people.length === 3", 30, "placed")
        view = page.js(f"{VIEW}.viewer")
        placed = {d["track_id"]: d for d in view["people"]}
        placed_px = sample_3d(page, [1, 2, 3])
        # a click on person 1's head picks it: its name and the 2D confidence
        head = placed[1]["screen"][10]
        box = page.js("(() => { const c = document.getElementById('view3d'), r = c.getBoundingClientRect();"
                      " return [r.left, r.top, r.width / c.width]; })()")  # fmt: skip
        x, y = box[0] + head[0] * box[2], box[1] + head[1] * box[2]
        for kind in ("mousePressed", "mouseReleased"):
            page.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        picked = page.wait_for("document.getElementById('picked').textContent", 30, "the picked joint")
        keep_screenshot(page, "placed")

    def height(d: dict[str, Any]) -> float:
        ys = [q[1] for q in d["screen"]]
        return float(max(ys) - min(ys))

    # placed, seen from above and behind the camera: the nearer pelvis lower on the canvas and left of
    # the farther one (as in the video), the nearer person drawn taller; the camera drawn
    assert placed[1]["placed"] and placed[2]["placed"] and not placed[3]["placed"] and view["frustum"]
    assert placed[3]["label"] == "id 3 (no root)"
    np.testing.assert_allclose(placed[2]["joints"], np.asarray(STANDING) + [0.6, 0, 6])
    p1, p2 = placed[1]["screen"][0], placed[2]["screen"][0]
    assert p1[1] > p2[1] + 20 and p1[0] < p2[0]
    assert height(placed[1]) > 1.1 * height(placed[2])
    assert placed_px[1][0] > 100 and placed_px[2][0] > 50 and placed_px[3][0] > 20  # drawn in their colours
    # the toggle's other side: everyone about their pelvis, alike whatever their depth
    assert not any(d["placed"] for d in relative.values()) and set(relative) == {1, 2, 3}
    for d in relative.values():
        np.testing.assert_allclose(d["joints"], STANDING)
    assert "root-relative" in caption_relative
    assert picked == "id 1 head: confidence 0.90 (2D)"


def test_without_three_js_the_page_says_so_and_works(
    browser: Callable[[], Page], make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hotpose.service.routes import info

    monkeypatch.setattr(info, "npm_dir", lambda source, home: tmp_path / "no-three")
    app = create_app(make_settings())
    with serve(app) as url:
        page = browser()
        page.call("Page.navigate", url=url + "/")
        page.wait_for("window.hotpose && window.hotpose.info !== null", 30, "the page")
        message = page.wait_for(f"{VIEW}.message3d.includes('fetch-weights') && {VIEW}.message3d", 30, "the message")
        server = page.js("document.getElementById('server').textContent")
        keep_screenshot(page, "no-three")
    assert message.startswith("3D view unavailable: three.js is missing on the server")
    assert "hot_mixste" in server  # the rest of the page runs
