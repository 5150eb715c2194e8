// hotpose web page: camera or video file -> WS /v1/stream -> 2D overlay + rotatable 3D view;
// or upload a clip -> job progress -> playback with both skeletons -> downloads.
// No build step, no dependencies. window.hotpose exposes the state for the browser test.

const $ = (id) => document.getElementById(id);
const COLORS = ["#00ff00", "#ff00ff", "#00c8ff", "#ffd000", "#ff5030", "#a0ff80"];
const SEND_WIDTH = 640; // frames are scaled to this width before JPEG encoding
const MAX_IN_FLIGHT = 2; // frames sent and not yet processed (acked), dropped or refused by the server
const MAX_FPS = 15;

const state = {
  apiKey: "", // memory only: never stored
  info: null,
  edges: [],
  mode: "idle", // idle | live | clip
  ws: null,
  stats: { sent: 0, acked: 0, answered: 0, dropped: 0, errors: 0, latency: null, fps: 0, tracks: [] },
  lastPose: null,
  frames: new Map(), // index -> ImageBitmap of a sent frame, until answered
  job: null, // {id, status, progress, error}
  clip: null, // the finished job's result
  view: { yaw: 0.6, pitch: 0.25 },
  colors: COLORS, // track_id % length picks a person's colour
};
window.hotpose = state;

// --- server -------------------------------------------------------------------------

function authHeaders() {
  return state.apiKey ? { Authorization: `Bearer ${state.apiKey}` } : {};
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status} ${detail}`);
  }
  return r;
}

async function loadInfo() {
  try {
    state.info = await (await api("/v1/info")).json();
    state.edges = state.info.skeleton_edges;
    $("server").textContent = `${state.info.lifter.name} on ${state.info.device}, window ${state.info.window}`;
  } catch (e) {
    $("server").textContent = `server: ${e.message}`;
  }
}

function setStatus(text) { $("status").textContent = text; }

function showStats() {
  const s = state.stats;
  $("latency").textContent = s.latency === null ? "-" : s.latency.toFixed(0);
  $("fps").textContent = s.fps.toFixed(1);
  $("dropped").textContent = String(s.dropped);
  $("tracks").textContent = s.tracks.length ? s.tracks.join(", ") : "-";
}

// --- drawing ------------------------------------------------------------------------

function color(trackId) { return COLORS[trackId % COLORS.length]; }

function draw2d(image, people, width, height) {
  const c = $("view2d");
  if (c.width !== width || c.height !== height) { c.width = width; c.height = height; }
  const g = c.getContext("2d");
  if (image) g.drawImage(image, 0, 0, width, height); else g.clearRect(0, 0, width, height);
  for (const p of people) {
    const k = p.keypoints_2d;
    g.strokeStyle = g.fillStyle = color(p.track_id);
    g.lineWidth = Math.max(2, width / 200);
    for (const [a, b] of state.edges) {
      if (k[a][2] < 0.2 || k[b][2] < 0.2) continue;
      g.beginPath(); g.moveTo(k[a][0], k[a][1]); g.lineTo(k[b][0], k[b][1]); g.stroke();
    }
    for (const [x, y, s] of k) {
      if (s < 0.2) continue;
      g.beginPath(); g.arc(x, y, g.lineWidth * 1.5, 0, 2 * Math.PI); g.fill();
    }
    g.font = `${Math.max(12, width / 40)}px sans-serif`;
    g.fillText(`id ${p.track_id}`, p.bbox[0], Math.max(14, p.bbox[1] - 4));
  }
}

function project(v, view, scale, cx, cy) {
  // camera frame (x right, y down, z forward) -> y up, rotated by the view, orthographic
  const x = v[0], y = -v[1], z = -v[2];
  const cyaw = Math.cos(view.yaw), syaw = Math.sin(view.yaw);
  const x1 = cyaw * x + syaw * z, z1 = -syaw * x + cyaw * z;
  const cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const y2 = cp * y - sp * z1;
  return [cx + scale * x1, cy - scale * y2];
}

function draw3d(people) {
  const c = $("view3d");
  const g = c.getContext("2d");
  g.fillStyle = "#000"; g.fillRect(0, 0, c.width, c.height);
  const scale = c.height / 2.6, cx = c.width / 2, cy = c.height / 2;
  g.strokeStyle = "#333"; g.lineWidth = 1; // floor grid 1 m below the pelvis, 0.5 m squares
  for (let i = -2; i <= 2; i++) {
    for (const [a, b] of [[[i / 2, 1, -1], [i / 2, 1, 1]], [[-1, 1, i / 2], [1, 1, i / 2]]]) {
      const p = project(a, state.view, scale, cx, cy), q = project(b, state.view, scale, cx, cy);
      g.beginPath(); g.moveTo(p[0], p[1]); g.lineTo(q[0], q[1]); g.stroke();
    }
  }
  const lifted = people.filter((p) => p.joints_3d);
  lifted.forEach((p, n) => {
    const shift = (n - (lifted.length - 1) / 2) * 1.0; // people side by side, 1 m apart
    const pts = p.joints_3d.map((v) => project([v[0] + shift, v[1], v[2]], state.view, scale, cx, cy));
    g.strokeStyle = g.fillStyle = color(p.track_id);
    g.lineWidth = 3;
    for (const [a, b] of state.edges) {
      g.beginPath(); g.moveTo(pts[a][0], pts[a][1]); g.lineTo(pts[b][0], pts[b][1]); g.stroke();
    }
    for (const [x, y] of pts) { g.beginPath(); g.arc(x, y, 3, 0, 2 * Math.PI); g.fill(); }
  });
}

function enableRotation() {
  const c = $("view3d");
  let drag = null;
  c.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointerup", () => { drag = null; });
  c.addEventListener("pointermove", (e) => {
    if (!drag) return;
    state.view.yaw += (e.clientX - drag[0]) * 0.01;
    state.view.pitch = Math.max(-1.5, Math.min(1.5, state.view.pitch + (e.clientY - drag[1]) * 0.01));
    drag = [e.clientX, e.clientY];
    draw3d(state.lastPose ? state.lastPose.people : []);
  });
}

// --- live: camera or a video file over WS /v1/stream ------------------------------------

async function startLive(source) {
  stop();
  const video = $("video");
  if (source === "camera") {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: false });
  } else {
    video.srcObject = null;
    video.src = URL.createObjectURL(source);
    video.loop = false;
  }
  await video.play();
  state.mode = "live";
  state.stats = { sent: 0, acked: 0, answered: 0, dropped: 0, errors: 0, latency: null, fps: 0, tracks: [] };
  state.frames.clear();
  $("stop").disabled = false;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const key = state.apiKey ? `?api_key=${encodeURIComponent(state.apiKey)}` : "";
  const ws = new WebSocket(`${proto}://${location.host}/v1/stream${key}`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  const t0 = performance.now();
  const answeredAt = [];
  let inFlight = MAX_IN_FLIGHT; // at most the server's queue: more unanswered frames could be dropped
  ws.onopen = () => ws.send(JSON.stringify({ type: "config", emit: $("emit").value, ack: true }));
  ws.onclose = (e) => {
    if (state.ws === ws) { setStatus(e.code === 1000 ? "ended" : `closed: ${e.code} ${e.reason}`); stop(); }
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    const s = state.stats;
    if (m.type === "ready") {
      inFlight = Math.max(1, Math.min(MAX_IN_FLIGHT, m.queue || MAX_IN_FLIGHT));
      setStatus(`streaming (${m.emit}, stride ${m.stride})`);
      pump();
      return;
    }
    if (m.type === "ack") s.acked += 1;
    if (m.type === "dropped") { s.dropped += m.indexes.length; m.indexes.forEach((i) => forget(i)); }
    // an error with an index refused that frame; one without is about the stream (it frees no slot)
    if (m.type === "error") { if (m.index !== null) { s.errors += 1; forget(m.index); } setStatus(m.message); }
    if (m.type === "pose") {
      s.answered += 1;
      s.latency = m.latency_ms;
      const now = performance.now();
      answeredAt.push(now);
      while (answeredAt.length && answeredAt[0] < now - 2000) answeredAt.shift();
      s.fps = answeredAt.length / Math.min(2, (now - t0) / 1000);
      s.tracks = m.people.map((p) => p.track_id);
      state.lastPose = m;
      const frame = state.frames.get(m.index);
      if (frame) draw2d(frame.image, m.people, frame.width, frame.height);
      draw3d(m.people);
      forget(m.index);
    }
    showStats();
    pump();
  };
  let sending = false;
  let lastSent = 0;
  async function pump() {
    // send the current video frame when there is room; the video element keeps playing meanwhile
    const s = state.stats;
    if (sending || state.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    if (s.sent - s.acked - s.dropped - s.errors >= inFlight) return;
    if (video.ended) { ws.send(JSON.stringify({ type: "end" })); return; }
    const wait = 1000 / MAX_FPS - (performance.now() - lastSent);
    if (wait > 0) { setTimeout(pump, wait); return; }
    sending = true;
    try {
      const w = Math.min(SEND_WIDTH, video.videoWidth), h = Math.round(video.videoHeight * w / video.videoWidth);
      if (!w || !h) { setTimeout(pump, 50); return; }
      const t = (performance.now() - t0) / 1000; // the capture time (encoding takes a varying while)
      const canvas = new OffscreenCanvas(w, h);
      canvas.getContext("2d").drawImage(video, 0, 0, w, h);
      const image = canvas.transferToImageBitmap();
      const enc = new OffscreenCanvas(w, h);
      enc.getContext("2d").drawImage(image, 0, 0);
      const blob = await enc.convertToBlob({ type: "image/jpeg", quality: 0.8 });
      const bytes = await blob.arrayBuffer();
      if (state.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      const index = s.sent;
      state.frames.set(index, { image, width: w, height: h });
      ws.send(JSON.stringify({ type: "frame", t }));
      ws.send(bytes);
      s.sent += 1;
      lastSent = performance.now();
    } finally {
      sending = false;
    }
    setTimeout(pump, 0);
  }
}

function forget(index) {
  const f = state.frames.get(index);
  if (f) { f.image.close(); state.frames.delete(index); }
}

function stop() {
  const video = $("video");
  if (state.ws) { const ws = state.ws; state.ws = null; if (ws.readyState === WebSocket.OPEN) ws.close(1000); }
  if (video.srcObject) { video.srcObject.getTracks().forEach((t) => t.stop()); video.srcObject = null; }
  video.pause();
  state.mode = "idle";
  $("stop").disabled = true;
}

// --- clips: upload, progress, playback, downloads ------------------------------------------

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/clips");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { $("progress").value = e.loaded / e.total; $("jobtext").textContent = "uploading"; }
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) resolve(body.job_id); else reject(new Error(`${xhr.status} ${body.detail || xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the server cannot be reached"));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

async function processClip(file) {
  stop();
  state.mode = "clip";
  state.clip = null;
  $("job").hidden = false;
  $("downloads").hidden = true;
  try {
    const id = await upload(file);
    state.job = { id, status: "queued", progress: 0, error: null };
    setStatus(`job ${id.slice(0, 8)}`);
    for (;;) {
      const job = await (await api(`/v1/jobs/${id}`)).json();
      state.job = { id, status: job.status, progress: job.progress, error: job.error };
      $("progress").value = job.progress;
      $("jobtext").textContent = `${job.status}: ${job.frames_done} / ${job.frames_total} frames`;
      if (job.status === "failed") throw new Error(job.error);
      if (job.status === "done") break;
      await new Promise((r) => setTimeout(r, 500));
    }
    state.clip = await (await api(`/v1/jobs/${id}/result`)).json();
    $("jobtext").textContent = `done: ${state.clip.frames.length} frames`;
    offerBvh(id, state.clip.frames);
    $("downloads").hidden = false;
    setStatus("playing the clip");
    play(file);
  } catch (e) {
    $("jobtext").textContent = `failed: ${e.message}`;
    setStatus("job failed");
  }
}

function play(file) {
  const video = $("video");
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  video.loop = true;
  const frames = state.clip.frames;
  const times = frames.map((f) => f.time);
  const onFrame = (now, meta) => {
    if (state.mode !== "clip") return;
    const t = meta ? meta.mediaTime : video.currentTime;
    let lo = 0, hi = times.length - 1; // the last frame at or before t
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t + 1e-3) lo = mid; else hi = mid - 1; }
    const f = frames[lo];
    const people = f ? f.people : [];
    draw2d(video, people, state.clip.width, state.clip.height);
    draw3d(people);
    state.lastPose = f;
    state.stats.tracks = people.map((p) => p.track_id);
    showStats();
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  video.play();
}

// A BVH holds one person: one button per track id that has 3D (none when nobody was lifted).
function offerBvh(id, frames) {
  const ids = new Set();
  for (const f of frames) for (const p of f.people) if (p.joints_3d) ids.add(p.track_id);
  const buttons = [...ids].sort((a, b) => a - b).map((track) => {
    const b = document.createElement("button");
    b.textContent = ids.size === 1 ? "BVH" : `BVH id ${track}`;
    b.dataset.href = resultUrl(id, "bvh", track);
    b.addEventListener("click", () => download("bvh", track));
    return b;
  });
  $("bvh").replaceChildren(...buttons);
}

function resultUrl(id, format, track = null) {
  return `/v1/jobs/${id}/result?format=${format}` + (track === null ? "" : `&track_id=${track}`);
}

async function download(format, track = null) {
  const id = state.job && state.job.id;
  if (!id) return;
  try {
    const r = await api(resultUrl(id, format, track));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = track === null ? `${id}.${format}` : `${id}_id${track}.${format}`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    $("jobtext").textContent = `${format}: ${e.message}`;
  }
}

// --- wiring --------------------------------------------------------------------------------

$("key").addEventListener("change", (e) => { state.apiKey = e.target.value.trim(); loadInfo(); });
$("camera").addEventListener("click", () => startLive("camera").catch((e) => setStatus(`camera: ${e.message}`)));
$("streamfile").addEventListener("change", (e) => {
  if (e.target.files[0]) startLive(e.target.files[0]).catch((err) => setStatus(err.message));
});
$("clipfile").addEventListener("change", (e) => { if (e.target.files[0]) processClip(e.target.files[0]); });
$("stop").addEventListener("click", () => { stop(); setStatus("stopped"); });
for (const b of document.querySelectorAll("#downloads button[data-format]")) {
  b.addEventListener("click", () => download(b.dataset.format));
}
enableRotation();
draw3d([]);
loadInfo().then(() => {
  if (new URLSearchParams(location.search).get("autostart") === "camera") $("camera").click();
});
