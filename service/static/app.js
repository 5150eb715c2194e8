// hotpose web page: camera or video file -> WS /v1/stream -> 2D overlay, 3D viewer, latency and fps
// chart; or upload a clip -> job progress -> playback on a timeline you can scrub, with the 2D
// overlay, the 3D viewer and the joint-angle plot following it -> downloads.
// No build step. The 3D viewer (viewer3d.js) is three.js, loaded on its own: without it (not fetched
// on the server) the rest of the page works and the 3D panel says why. Plots: plot.js, hand-written.
// window.hotpose exposes the page's state and window.hotposeView.state() what it shows, read-only,
// for the browser tests and debugging.

import { LinePlot, PAD } from "/static/plot.js";

const $ = (id) => document.getElementById(id);
const COLORS = ["#00ff00", "#ff00ff", "#00c8ff", "#ffd000", "#ff5030", "#a0ff80"];
const SIDES = { l: "#4fc3f7", r: "#ff8a65" }; // the angle plot's left and right limbs
const SEND_WIDTH = 640; // frames are scaled to this width before JPEG encoding
const MAX_IN_FLIGHT = 2; // frames sent and not yet processed (acked), dropped or refused by the server
const MAX_FPS = 15;
const LIVE_WINDOW_S = 60; // the live chart's span
const LIVE_CHART_EVERY_MS = 250; // the live chart redraws at most this often

const state = {
  apiKey: "", // memory only: never stored
  info: null,
  edges: [],
  mode: "idle", // idle | live | clip
  ws: null,
  stats: { sent: 0, acked: 0, answered: 0, dropped: 0, errors: 0, latency: null, fps: 0, tracks: [] },
  lastPose: null, // the pose message or clip frame shown
  frames: new Map(), // index -> ImageBitmap of a sent frame, until answered
  job: null, // {id, status, progress, error}
  clip: null, // the finished job's result
  frameIndex: null, // the clip frame shown
  angles: null, // the clip's GET /v1/jobs/{id}/angles
  placed: true, // 3D: people at joints_3d + root_3d in one scene, else each about their pelvis
  camera: null, // {focal_px, cx, cy, width, height, assumed}: the stream's or the clip's, for the frustum
  live: [], // the live chart's samples over the last minute: {t (ms), latency (ms), fps}
  drawn2d: null, // what the 2D overlay drew last: {frame, people: [{track_id, keypoints_2d}]}
  colors: COLORS, // track_id % length picks a person's colour
};
window.hotpose = state;

let viewer = null; // the 3D viewer once three.js is loaded and WebGL runs
const plots = {};

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
    await loadViewer();
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

// --- 2D overlay ---------------------------------------------------------------------

function color(trackId) { return COLORS[trackId % COLORS.length]; }

function draw2d(image, people, width, height, frame = null) {
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
  state.drawn2d = { frame, people: people.map((p) => ({ track_id: p.track_id, keypoints_2d: p.keypoints_2d })) };
}

// --- 3D viewer ----------------------------------------------------------------------

function say3d(text) {
  $("msg3d").textContent = text;
  $("msg3d").hidden = !text;
}

async function loadViewer() {
  if (viewer || !state.info) return;
  let createViewer;
  try {
    ({ createViewer } = await import("/static/viewer3d.js"));
  } catch (e) {
    // most likely three.js is not on the server: ask it why
    let why = e.message;
    try {
      const r = await fetch("/vendor/three/three.module.min.js", { method: "HEAD" });
      if (!r.ok) why = "three.js is missing on the server: run `hotpose fetch-weights` there";
    } catch (e2) { /* keep the import's reason */ }
    say3d(`3D view unavailable: ${why}`);
    return;
  }
  try {
    viewer = createViewer($("view3d"), {
      colors: COLORS, edges: state.edges, jointNames: state.info.joint_names, onPick: showPick,
    });
  } catch (e) {
    say3d(`3D view unavailable: this browser cannot run WebGL (${e.message})`);
    return;
  }
  say3d("");
  viewer.setPlaced(state.placed);
  if (state.clip) viewer.setClip(state.clip.frames, state.camera);
  viewer.show(state.lastPose ? state.lastPose.people : [], state.camera);
}

function show3d(people) {
  if (viewer) viewer.show(people, state.camera);
}

function showPick(p) {
  $("picked").textContent = p === null ? "" : `id ${p.track_id} ${p.name}: confidence ${
    p.confidence === null ? "-" : p.confidence.toFixed(2)} (2D)`;
}

function setPlaced(placed) {
  state.placed = placed;
  $("caption3d").textContent = placed ? "3D, metres, camera frame" : "3D, metres, root-relative";
  if (viewer) { viewer.setPlaced(placed); viewer.show(state.lastPose ? state.lastPose.people : [], state.camera); }
}

// --- live: camera or a video file over WS /v1/stream ------------------------------------

function liveSample(latency, fps) {
  const now = performance.now();
  state.live.push({ t: now, latency, fps });
  while (state.live.length && state.live[0].t < now - LIVE_WINDOW_S * 1000) state.live.shift();
  if (plots.liveTimer) return;
  plots.liveTimer = setTimeout(() => { plots.liveTimer = null; drawLiveChart(); }, LIVE_CHART_EVERY_MS);
}

function drawLiveChart() {
  const now = performance.now();
  const x = state.live.map((s) => (s.t - now) / 1000);
  plots.live.set(x, [
    { name: "latency ms", color: "#ffd000", values: state.live.map((s) => s.latency) },
    { name: "fps", color: "#00c8ff", values: state.live.map((s) => s.fps), axis: "y2" },
  ], [-LIVE_WINDOW_S, 0]);
  $("livedropped").textContent = String(state.stats.dropped);
}

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
  state.clip = null;
  $("timeline").hidden = $("plots").hidden = true;
  $("live").hidden = false;
  state.live = [];
  state.stats = { sent: 0, acked: 0, answered: 0, dropped: 0, errors: 0, latency: null, fps: 0, tracks: [] };
  state.frames.clear();
  state.camera = null;
  if (viewer) viewer.setClip(null); // a new scene: framed afresh, as people come
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
    if (m.type === "dropped") { s.dropped = Math.max(s.dropped + m.indexes.length, m.dropped || 0); m.indexes.forEach((i) => forget(i)); }
    // an error with an index refused that frame; one without is about the stream (it frees no slot)
    if (m.type === "error") { if (m.index !== null) { s.errors += 1; forget(m.index); } setStatus(m.message); }
    if (m.type === "pose") {
      s.answered += 1;
      s.latency = m.latency_ms;
      if (Number.isFinite(m.dropped)) s.dropped = Math.max(s.dropped, m.dropped);
      const now = performance.now();
      answeredAt.push(now);
      while (answeredAt.length && answeredAt[0] < now - 2000) answeredAt.shift();
      s.fps = answeredAt.length / Math.min(2, (now - t0) / 1000);
      s.tracks = m.people.map((p) => p.track_id);
      state.lastPose = m;
      if (m.camera) state.camera = m.camera;
      const frame = state.frames.get(m.index);
      if (frame) draw2d(frame.image, m.people, frame.width, frame.height, m.index);
      show3d(m.people);
      liveSample(m.latency_ms, s.fps);
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

// --- clips: upload, progress, playback on a timeline, angles, downloads ----------------------

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
  state.clip = state.angles = null;
  $("job").hidden = false;
  $("downloads").hidden = true;
  $("live").hidden = $("timeline").hidden = $("plots").hidden = true;
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
    const clip = await (await api(`/v1/jobs/${id}/result`)).json();
    state.camera = clip.camera || null;
    state.clip = clip;
    if (viewer) viewer.setClip(clip.frames, state.camera); // one floor and framing for the whole clip
    $("jobtext").textContent = `done: ${clip.frames.length} frames`;
    offerBvh(id, clip.frames);
    $("downloads").hidden = false;
    setupTimeline(clip);
    setStatus("playing the clip");
    play(file);
    loadAngles(id); // the plot follows when the angles arrive
  } catch (e) {
    $("jobtext").textContent = `failed: ${e.message}`;
    setStatus("job failed");
  }
}

// The frame shown at media time t: the last frame at or before it.
function frameAt(t) {
  const frames = state.clip.frames;
  let lo = 0, hi = frames.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (frames[mid].time <= t + 1e-3) lo = mid; else hi = mid - 1; }
  return lo;
}

// Show clip frame i everywhere: 2D overlay on the video, 3D, scrubber, track bars and plot cursors.
// `seek`: also move the (paused) video there.
function showFrame(i, seek = false) {
  const clip = state.clip;
  if (!clip || !clip.frames.length) return;
  i = Math.max(0, Math.min(clip.frames.length - 1, i));
  const f = clip.frames[i];
  const video = $("video");
  if (seek) {
    video.pause();
    // inside frame i's display interval, whatever the container's rounding
    video.currentTime = f.time + 0.25 / (clip.fps || 30);
  }
  const moved = i !== state.frameIndex;
  state.frameIndex = i;
  state.lastPose = f;
  draw2d(video.readyState >= 2 ? video : null, f.people, clip.width, clip.height, f.index);
  if (moved) show3d(f.people);
  state.stats.tracks = f.people.map((p) => p.track_id);
  showStats();
  $("scrub").value = String(i);
  $("frametext").textContent = `frame ${i + 1} / ${clip.frames.length}, ${f.time.toFixed(2)} s`;
  $("playpause").textContent = video.paused ? "Play" : "Pause";
  drawTrackBars();
  if (plots.angles) plots.angles.cursor(f.time);
}

let plays = 0;

function play(file) {
  const video = $("video");
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  video.loop = true;
  video.playbackRate = Number($("speed").value);
  const token = (plays += 1); // a later clip's playback ends this one's frame callbacks
  const onFrame = (now, meta) => {
    if (state.mode !== "clip" || !state.clip || token !== plays) return;
    // playing: the frame is the video's; paused: the timeline's (a seek's frame, not its rounding)
    showFrame(video.paused ? state.frameIndex : frameAt(meta ? meta.mediaTime : video.currentTime));
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  video.play();
}

// Per person, a bar over the clip's frames: solid where lifted (3D), faint where seen in 2D only.
function setupTimeline(clip) {
  const ids = [...new Set(clip.frames.flatMap((f) => f.people.map((p) => p.track_id)))].sort((a, b) => a - b);
  state.frameIndex = null;
  const c = $("trackbars");
  c.height = Math.max(1, ids.length) * 14 + 4;
  plots.tracks = { ids };
  $("scrub").max = String(Math.max(0, clip.frames.length - 1));
  $("timeline").hidden = false;
  showFrame(0);
}

function drawTrackBars() {
  const clip = state.clip, c = $("trackbars"), g = c.getContext("2d");
  if (!clip || !plots.tracks) return;
  const n = clip.frames.length, w = c.width - PAD.left - PAD.right;
  const x = (i) => PAD.left + (i / Math.max(n, 1)) * w;
  g.clearRect(0, 0, c.width, c.height);
  g.font = "11px sans-serif";
  plots.tracks.ids.forEach((id, row) => {
    const y = 2 + row * 14;
    g.fillStyle = color(id);
    g.fillText(`id ${id}`, 4, y + 10);
    clip.frames.forEach((f, i) => {
      const p = f.people.find((q) => q.track_id === id);
      if (!p) return;
      g.globalAlpha = p.joints_3d ? 1 : 0.35;
      g.fillRect(x(i), y + 2, Math.max(x(i + 1) - x(i), 1), 9);
    });
    g.globalAlpha = 1;
  });
  if (state.frameIndex !== null) {
    const X = Math.round(x(state.frameIndex + 0.5)) + 0.5;
    g.strokeStyle = "#fff";
    g.beginPath(); g.moveTo(X, 0); g.lineTo(X, c.height); g.stroke();
  }
}

async function loadAngles(id) {
  try {
    state.angles = await (await api(`/v1/jobs/${id}/angles`)).json();
  } catch (e) {
    $("anglenote").textContent = `angles: ${e.message}`;
    return;
  }
  const people = state.angles.people;
  $("angleperson").replaceChildren(...people.map((p) => {
    const o = document.createElement("option");
    o.value = String(p.track_id); o.textContent = `id ${p.track_id}`;
    return o;
  }));
  const d = state.angles.definitions;
  $("anglenote").textContent = people.length ? Object.entries(d).map(([k, v]) => `${k}: ${v}`).join("; ")
    : "nobody was lifted to 3D in this clip: no angles";
  $("plots").hidden = false;
  drawAngles();
}

function drawAngles() {
  const a = state.angles;
  if (!a) return;
  const person = a.people.find((p) => String(p.track_id) === $("angleperson").value) || a.people[0];
  const joint = $("anglejoint").value; // knee | hip | elbow | shoulder
  const series = person ? ["l", "r"].map((side) => ({
    name: `${side === "l" ? "left" : "right"} ${joint}`, color: SIDES[side], values: person.angles[`${side}_${joint}`],
  })) : [];
  plots.angles.set(a.times, series, [a.times[0] || 0, a.times[a.times.length - 1] || 1]);
  if (state.frameIndex !== null && state.clip) plots.angles.cursor(state.clip.frames[state.frameIndex].time);
}

// A BVH holds one person: one button per track id that has 3D (none when nobody was lifted).
function offerBvh(id, frames) {
  const ids = new Set();
  for (const f of frames) for (const p of f.people) if (p.joints_3d) ids.add(p.track_id);
  const buttons = [...ids].sort((a, b) => a - b).map((track) => {
    const b = document.createElement("button");
    b.textContent = ids.size === 1 ? "BVH" : `BVH id ${track}`;
    b.dataset.href = resultUrl(id, "bvh", track);
    b.addEventListener("click", () => download(b.dataset.href, `${id}_id${track}.bvh`));
    return b;
  });
  $("bvh").replaceChildren(...buttons);
}

function resultUrl(id, format, track = null) {
  return `/v1/jobs/${id}/result?format=${format}` + (track === null ? "" : `&track_id=${track}`);
}

async function download(url, filename) {
  try {
    const r = await api(url);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await r.blob());
    a.download = filename;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    $("jobtext").textContent = `${filename}: ${e.message}`;
  }
}

// --- wiring --------------------------------------------------------------------------------

function stepFrame(delta) {
  if (state.clip && state.frameIndex !== null) showFrame(state.frameIndex + delta, true);
}

$("key").addEventListener("change", (e) => { state.apiKey = e.target.value.trim(); loadInfo(); });
$("camera").addEventListener("click", () => startLive("camera").catch((e) => setStatus(`camera: ${e.message}`)));
$("streamfile").addEventListener("change", (e) => {
  if (e.target.files[0]) startLive(e.target.files[0]).catch((err) => setStatus(err.message));
});
$("clipfile").addEventListener("change", (e) => { if (e.target.files[0]) processClip(e.target.files[0]); });
$("stop").addEventListener("click", () => { stop(); setStatus("stopped"); });
for (const b of document.querySelectorAll("#downloads button[data-format]")) {
  b.addEventListener("click", () => {
    const id = state.job && state.job.id;
    if (id) download(resultUrl(id, b.dataset.format), `${id}.${b.dataset.format}`);
  });
}
$("anglecsv").addEventListener("click", () => {
  const id = state.job && state.job.id;
  if (id) download(`/v1/jobs/${id}/angles?format=csv`, `${id}_angles.csv`);
});
$("playpause").addEventListener("click", () => {
  const video = $("video");
  if (!state.clip) return;
  if (video.paused) video.play(); else video.pause();
  $("playpause").textContent = video.paused ? "Play" : "Pause";
});
$("back").addEventListener("click", () => stepFrame(-1));
$("forward").addEventListener("click", () => stepFrame(1));
$("speed").addEventListener("change", (e) => { $("video").playbackRate = Number(e.target.value); });
$("scrub").addEventListener("input", (e) => showFrame(Number(e.target.value), true));
$("video").addEventListener("seeked", () => { if (state.clip && state.frameIndex !== null) showFrame(state.frameIndex); });
$("trackbars").addEventListener("click", (e) => {
  const c = $("trackbars"), r = c.getBoundingClientRect(), n = state.clip ? state.clip.frames.length : 0;
  const px = (e.clientX - r.left) * (c.width / r.width);
  if (n) showFrame(Math.floor(((px - PAD.left) / (c.width - PAD.left - PAD.right)) * n), true);
});
document.addEventListener("keydown", (e) => {
  if (!state.clip || e.target.closest("input, select, textarea")) return;
  if (e.key === "ArrowLeft") stepFrame(-1);
  else if (e.key === "ArrowRight") stepFrame(1);
  else if (e.key === " ") { e.preventDefault(); $("playpause").click(); } else return;
});
$("anglejoint").addEventListener("change", drawAngles);
$("angleperson").addEventListener("change", drawAngles);
$("placed").addEventListener("change", (e) => setPlaced(e.target.checked));
$("resetview").addEventListener("click", () => { if (viewer) viewer.resetView(); });

plots.angles = new LinePlot($("angleplot"), {
  yLabel: "degrees", xLabel: "s", yRange: [0, 180],
  onSeek: (t) => { if (state.clip) showFrame(frameAt(t), true); },
});
plots.live = new LinePlot($("livechart"), { yLabel: "ms", xLabel: "s", yRange: [0, 100], y2Range: [0, 5], dots: false });
setPlaced($("placed").checked);
say3d("3D view: waiting for the server");

window.hotposeView = {
  // what the page shows, as plain data (copies)
  state() {
    return {
      mode: state.mode,
      frame: state.frameIndex,
      paused: $("video").paused,
      overlay: state.drawn2d,
      viewer: viewer ? viewer.state() : null,
      message3d: $("msg3d").hidden ? "" : $("msg3d").textContent,
      anglePlot: { x: plots.angles.x.length, points: plots.angles.drawnPoints, draws: plots.angles.draws,
        series: plots.angles.series.map((s) => s.name) },
      liveChart: { samples: state.live.length, points: plots.live.drawnPoints, draws: plots.live.draws },
    };
  },
};

loadInfo().then(() => {
  if (new URLSearchParams(location.search).get("autostart") === "camera") $("camera").click();
});
