"""The web page (`service/static`) in a real headless Chromium, driven over the DevTools protocol.

The fake camera plays a real clip (y4m); the page streams it over WS /v1/stream with an API key
typed into the page, and must draw skeletons where the person is; an uploaded clip must end as a
finished job with downloads offered.
"""

from __future__ import annotations

import base64
import json
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
    "--use-fake-ui-for-media-stream", "--remote-debugging-port=0", "--window-size=1400,1000",
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


def skeleton_pixels(bgr: np.ndarray, color: str) -> np.ndarray:
    """Pixels of a track's colour (saturated colours the clip does not contain)."""
    want = np.array([int(color[5:7], 16), int(color[3:5], 16), int(color[1:3], 16)])  # "#rrggbb" -> BGR
    return np.abs(bgr.astype(int) - want).max(axis=-1) < 60


def open_page(page: Page, url: str) -> Page:
    """The service's page loaded, with the server's `/v1/info` read (so the page is ready for input)."""
    page.call("Page.navigate", url=url + "/")
    page.wait_for("document.readyState === 'complete' && window.hotpose && window.hotpose.info !== null", 30, "page")
    return page


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
        info = page.js(
            "(() => { const c = document.getElementById('view2d').getBoundingClientRect();"
            " const d = document.getElementById('view3d').getBoundingClientRect();"
            " const p = window.hotpose.lastPose.people[0];"
            " return {c: [c.left, c.top, c.width, c.height], d: [d.left, d.top, d.width, d.height],"
            " w: document.getElementById('view2d').width, kp: p.keypoints_2d, bbox: p.bbox,"
            " latency: document.getElementById('latency').textContent,"
            " tracks: document.getElementById('tracks').textContent, stats: window.hotpose.stats,"
            " drawn3d: window.hotpose.drawn3d.map((d) => d.track_id), track: p.track_id,"
            " color: window.hotpose.colors[p.track_id % window.hotpose.colors.length]}; })()"
        )
        shot = page.screenshot()
        page.js("document.getElementById('stop').click()")
    stats = info["stats"]
    assert stats["sent"] >= stats["answered"] >= 10 and stats["errors"] == 0
    assert info["latency"] != "-" and info["tracks"] != "-"

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
    dx, dy, dw, dh = (int(round(v)) for v in info["d"])
    # the 3D view draws them placed in the scene (small, when far) or, without a root, root-relative in a box
    assert info["track"] in info["drawn3d"] and green[dy : dy + dh, dx : dx + dw].sum() > 40, "no 3D skeleton drawn"


def test_uploaded_clip_finishes_and_plays(
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
        frames = page.js("window.hotpose.clip.frames.length")
        lifted = page.js("[...new Set(window.hotpose.clip.frames.flatMap((f) => f.people"
                         ".filter((p) => p.joints_3d).map((p) => p.track_id)))].sort((a, b) => a - b)")  # fmt: skip
        bvh = page.js("[...document.querySelectorAll('#bvh button')].map((b) => b.dataset.href)")
        # each BVH button asks for one person, so a clip with several people (or ids) downloads too
        statuses = page.js(f"Promise.all({json.dumps(bvh)}.map((u) => fetch(u).then((r) => r.status)))")
    assert text == "done: 30 frames" and shown and frames == 30
    assert lifted and [int(u.split("track_id=")[1]) for u in bvh] == lifted and statuses == [200] * len(bvh)


# A person standing, facing the camera: H36M-17, metres, camera axes (y down), pelvis at the origin.
STANDING = [
    [0, 0, 0], [-0.13, 0, 0], [-0.14, 0.45, 0.02], [-0.14, 0.88, 0], [0.13, 0, 0], [0.14, 0.45, 0.02],
    [0.14, 0.88, 0], [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, -0.05], [0, -0.72, 0], [0.18, -0.48, 0],
    [0.22, -0.22, 0], [0.24, 0.02, -0.05], [-0.18, -0.48, 0], [-0.22, -0.22, 0], [-0.24, 0.02, -0.05],
]  # fmt: skip
# Per track id, the rows of the 3D canvas in its colour: {id: [pixels, top row, bottom row]}.
SAMPLE_3D = """(() => {
  const c = document.getElementById('view3d'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const out = {};
  for (const id of [1, 2, 3]) {
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
})()"""


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
        relative = {d["track_id"]: d for d in page.js("window.hotpose.drawn3d")}
        relative_px = page.js(SAMPLE_3D)
        caption_relative = page.js("document.getElementById('caption3d').textContent")
        assert page.js(toggle) is True
        placed = {d["track_id"]: d for d in page.js("window.hotpose.drawn3d")}
        placed_px = page.js(SAMPLE_3D)
        size = page.js("[document.getElementById('view3d').width, document.getElementById('view3d').height]")

    def height(d: dict[str, Any]) -> float:
        return float(d["bottom"] - d["top"])

    # placed, seen from above and behind the camera: the nearer pelvis lower on the canvas and left of
    # the farther one (as in the video), the nearer person drawn taller
    assert placed[1]["placed"] and placed[2]["placed"] and not placed[3]["placed"]
    assert placed[1]["pelvis"][1] > placed[2]["pelvis"][1] + 20 and placed[1]["pelvis"][0] < placed[2]["pelvis"][0]
    assert height(placed[1]) > 1.1 * height(placed[2])
    n1, top1, bottom1 = placed_px["1"]
    n2, top2, bottom2 = placed_px["2"]
    assert n1 > 100 and n2 > 50  # drawn in their colours, where the page says
    assert abs(bottom1 - placed[1]["bottom"]) < 6 and abs(bottom2 - placed[2]["bottom"]) < 6
    assert bottom1 - top1 > bottom2 - top2 and bottom1 > bottom2
    # no root: root-relative in a box along the bottom edge
    assert placed[3]["top"] >= size[1] * 3 / 4 and placed_px["3"][0] > 20 and placed_px["3"][1] >= size[1] * 3 / 4
    # the toggle's other side: everyone about their pelvis, alike whatever their depth
    assert not any(d["placed"] for d in relative.values()) and set(relative) == {1, 2, 3}
    assert abs(height(relative[1]) - height(relative[2])) < 1
    assert abs((relative_px["1"][2] - relative_px["1"][1]) - (relative_px["2"][2] - relative_px["2"][1])) <= 2
    assert "root-relative" in caption_relative
