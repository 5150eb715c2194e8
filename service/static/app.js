// hotpose web page: camera or video file -> WS /v1/stream -> 2D overlay + rotatable 3D view;
// or upload a clip -> job progress -> playback with both skeletons -> downloads.
// The 3D view places people in one scene (joints_3d + root_3d) or draws each about their pelvis.
// No build step, no dependencies. window.hotpose exposes the state for the browser test (the test
// sets lastPose and redraws it with the "placed" toggle; drawn3d holds what was drawn).

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
  view: { yaw: 0.6, pitch: 0.25 }, // the root-relative view (orthographic)
  sceneView: { yaw: 0.35, pitch: 0.5 }, // the placed view: a viewer above and behind the camera
  placed: true, // people at joints_3d + root_3d in one scene, else each about their pelvis
  camera: null, // {focal_px, cx, cy, width, height, assumed}: the stream's or the clip's, for the frustum
  scene: null, // the placed view's framing, smoothed: {lo, hi, floor, at}
  // what the 3D view drew last, for the browser test and debugging: per person
  // {track_id, placed, pelvis: [x, y], top, bottom} in canvas pixels (top/bottom: their joints' extent)
  drawn3d: [],
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

const FEET = [3, 6]; // Human3.6M-17 r_ankle, l_ankle
const HEAD = 10;
const NEAR_M = 0.05; // the viewer's near plane: nearer geometry is cut
const MARGIN_M = 0.3; // around the people and the camera in the framing box
const SMOOTH_S = 0.5; // time constant of the framing and the floor: neither jumps between frames

// A person's joints in the camera frame (joints_3d + root_3d), or null without 3D or a root.
function placedJoints(p) {
  const r = p.root_3d;
  if (!p.joints_3d || !r || r.length !== 3 || !r.every(Number.isFinite)) return null;
  return p.joints_3d.map((v) => [v[0] + r[0], v[1] + r[1], v[2] + r[2]]);
}

// The framing box {lo, hi} and floor y (camera y is down: the lowest feet), moved towards this
// frame's people and the camera: a box grows fast (nobody walks out of the view), shrinks, moves and
// lowers its floor slowly. Kept as it was when nobody is placed.
// How well the 2D stage saw a person: 2 both feet, 1 most of the body, 0 neither (a head at the
// frame's edge, say). The floor counts the best-seen people only, as the renderer's (service/render.py).
function seen(p) {
  const kp = p.keypoints_2d || [];
  const ok = kp.map((k) => k[2] >= 0.5);
  if (FEET.every((f) => ok[f])) return 2;
  return ok.filter(Boolean).length >= (2 / 3) * kp.length ? 1 : 0;
}

function refit(joints, seenBy) {
  const now = performance.now();
  if (!joints.length) {
    return state.scene || { lo: [-1.5, -0.5, -0.5], hi: [1.5, 1.5, 5], floor: 1.5, at: now };
  }
  const lo = [0, 0, 0], hi = [0, 0, 0]; // the camera, at the origin, is in the scene
  let floor = -Infinity;
  const best = Math.max(...seenBy);
  joints.forEach((j, i) => {
    for (const v of j) for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], v[k]); hi[k] = Math.max(hi[k], v[k]); }
    if (seenBy[i] === best) for (const f of FEET) floor = Math.max(floor, j[f][1]);
  });
  for (let k = 0; k < 3; k++) { lo[k] -= MARGIN_M; hi[k] += MARGIN_M; }
  hi[1] = Math.max(hi[1], floor);
  const s = state.scene;
  if (!s) { state.scene = { lo, hi, floor, at: now }; return state.scene; }
  const a = 1 - Math.exp(-Math.min(Math.max(now - s.at, 0), 1000) / 1000 / SMOOTH_S), fast = Math.max(a, 0.5);
  state.scene = {
    lo: s.lo.map((v, k) => v + (lo[k] < v ? fast : a) * (lo[k] - v)),
    hi: s.hi.map((v, k) => v + (hi[k] > v ? fast : a) * (hi[k] - v)),
    floor: s.floor + a * (floor - s.floor),
    at: now,
  };
  return state.scene;
}

// A pinhole viewer at the view's angles (yaw 0: straight behind the camera; pitch: looking down),
// far enough that the box's bounding sphere is in front of it, zoomed and shifted so the box's
// corners fill 90% of the canvas. Returns (point) -> [x, y, depth].
function makeViewer(view, lo, hi, width, height) {
  const cy = Math.cos(view.yaw), sy = Math.sin(view.yaw), cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  const fwd = [-sy * cp, sp, cy * cp], right = [cy, 0, sy];
  const down = [fwd[1] * right[2] - fwd[2] * right[1], fwd[2] * right[0] - fwd[0] * right[2],
    fwd[0] * right[1] - fwd[1] * right[0]];
  const dot = (u, v) => u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
  const dist = Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2 / Math.sin(Math.PI / 8);
  const eye = [0, 1, 2].map((k) => (lo[k] + hi[k]) / 2 - dist * fwd[k]);
  const raw = (p) => {
    const d = [p[0] - eye[0], p[1] - eye[1], p[2] - eye[2]];
    const z = dot(d, fwd), w = Math.max(z, NEAR_M);
    return [dot(d, right) / w, dot(d, down) / w, z];
  };
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const x of [lo[0], hi[0]]) for (const y of [lo[1], hi[1]]) for (const z of [lo[2], hi[2]]) {
    const [u, v] = raw([x, y, z]);
    x0 = Math.min(x0, u); x1 = Math.max(x1, u); y0 = Math.min(y0, v); y1 = Math.max(y1, v);
  }
  const f = 0.9 * Math.min(width / Math.max(x1 - x0, 1e-9), height / Math.max(y1 - y0, 1e-9));
  const ox = width / 2 - f * (x0 + x1) / 2, oy = height / 2 - f * (y0 + y1) / 2;
  const viewer = (p) => { const [u, v, z] = raw(p); return [ox + f * u, oy + f * v, z]; };
  viewer.depth = (p) => dot([p[0] - eye[0], p[1] - eye[1], p[2] - eye[2]], fwd);
  return viewer;
}

// A segment a -> b (camera frame) cut at the viewer's near plane, drawn with the current stroke.
function segment(g, viewer, a, b) {
  const da = viewer.depth(a), db = viewer.depth(b);
  if (da <= NEAR_M && db <= NEAR_M) return;
  const cut = (p, q, dp, dq) => (dp >= NEAR_M ? p : p.map((v, k) => v + (NEAR_M - dp) / (dq - dp) * (q[k] - v)));
  const p = viewer(cut(a, b, da, db)), q = viewer(cut(b, a, db, da));
  g.beginPath(); g.moveTo(p[0], p[1]); g.lineTo(q[0], q[1]); g.stroke();
}

function drawSkeleton(g, pts, col, width) {
  g.strokeStyle = g.fillStyle = col;
  g.lineWidth = width;
  for (const [a, b] of state.edges) {
    g.beginPath(); g.moveTo(pts[a][0], pts[a][1]); g.lineTo(pts[b][0], pts[b][1]); g.stroke();
  }
  for (const [x, y] of pts) { g.beginPath(); g.arc(x, y, width, 0, 2 * Math.PI); g.fill(); }
}

function record(p, pts, placed) {
  const ys = pts.map((q) => q[1]);
  state.drawn3d.push({ track_id: p.track_id, placed, pelvis: [pts[0][0], pts[0][1]],
    top: Math.min(...ys), bottom: Math.max(...ys) });
}

// Each person about their pelvis, side by side 1 m apart, in the box (x0, y0, size).
function drawRootRelative(g, people, x0, y0, size, width) {
  const scale = size / 2.6;
  people.forEach((p, n) => {
    const shift = (n - (people.length - 1) / 2) * 1.0;
    const pts = p.joints_3d.map((v) => project([v[0] + shift, v[1], v[2]], state.view, scale, x0 + size / 2, y0 + size / 2));
    drawSkeleton(g, pts, color(p.track_id), width);
    record(p, pts, false);
  });
}

function drawPlaced(g, lifted, w, h) {
  const placed = [], unplaced = [];
  for (const p of lifted) { const j = placedJoints(p); if (j) placed.push([p, j]); else unplaced.push(p); }
  const { lo, hi, floor } = refit(placed.map(([, j]) => j), placed.map(([p]) => seen(p)));
  const viewer = makeViewer(state.sceneView, lo, hi, w, h);
  g.strokeStyle = "#333"; g.lineWidth = 1; // ground grid, 1 m squares fixed in the scene, under the lowest feet
  const xs = [Math.floor(lo[0]) - 2, Math.ceil(hi[0]) + 2], zs = [Math.floor(lo[2]) - 2, Math.ceil(hi[2]) + 2];
  for (let x = xs[0]; x <= xs[1]; x++) segment(g, viewer, [x, floor, zs[0]], [x, floor, zs[1]]);
  for (let z = zs[0]; z <= zs[1]; z++) segment(g, viewer, [xs[0], floor, z], [xs[1], floor, z]);
  // the camera: a small pyramid to its image's corners, and a line down to the floor
  const cam = state.camera || { focal_px: w, width: w, height: h }; // older servers send none: a nominal shape
  const d = Math.min(Math.max(0.03 * Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), 0.15), 1);
  const sx = cam.width / 2 / cam.focal_px * d, sy = cam.height / 2 / cam.focal_px * d;
  const corners = [[-sx, -sy, d], [sx, -sy, d], [sx, sy, d], [-sx, sy, d]];
  g.strokeStyle = "#666";
  segment(g, viewer, [0, 0, 0], [0, floor, 0]);
  g.strokeStyle = "#ccc";
  corners.forEach((c, i) => { segment(g, viewer, [0, 0, 0], c); segment(g, viewer, c, corners[(i + 1) % 4]); });
  const top = viewer([0, -sy, d]);
  g.fillStyle = "#ccc"; g.font = "11px sans-serif";
  if (top[2] > NEAR_M) g.fillText("camera", top[0] - 18, top[1] - 5);
  // far people first: the nearer ones are drawn over them
  placed.sort((a, b) => b[1][0][2] - a[1][0][2]);
  for (const [p, j] of placed) {
    const col = color(p.track_id);
    const pts = j.map((v) => viewer(v));
    const shadow = viewer([j[0][0], floor, j[0][2]]);
    g.globalAlpha = 0.4; g.strokeStyle = g.fillStyle = col; g.lineWidth = 1;
    g.beginPath(); g.moveTo(pts[0][0], pts[0][1]); g.lineTo(shadow[0], shadow[1]); g.stroke();
    g.beginPath(); g.arc(shadow[0], shadow[1], 4, 0, 2 * Math.PI); g.fill();
    g.globalAlpha = 1;
    drawSkeleton(g, pts, col, 2.5);
    g.font = "14px sans-serif";
    g.fillText(`id ${p.track_id}`, pts[HEAD][0] - 12, pts[HEAD][1] - 10);
    record(p, pts, true);
  }
  // no root: each about their pelvis, in boxes along the bottom edge
  const box = Math.min(h / 4, w / Math.max(unplaced.length, 1));
  unplaced.forEach((p, n) => {
    const x0 = n * box, y0 = h - box;
    g.fillStyle = "#000"; g.fillRect(x0, y0, box, box);
    g.strokeStyle = "#444"; g.lineWidth = 1; g.strokeRect(x0 + 0.5, y0 + 0.5, box - 1, box - 1);
    drawRootRelative(g, [p], x0, y0, box, 1.5);
    g.fillStyle = color(p.track_id); g.font = "11px sans-serif";
    g.fillText(`id ${p.track_id} (no root)`, x0 + 4, y0 + 12);
  });
}

function draw3d(people) {
  const c = $("view3d");
  const g = c.getContext("2d");
  g.fillStyle = "#000"; g.fillRect(0, 0, c.width, c.height);
  state.drawn3d = [];
  const lifted = people.filter((p) => p.joints_3d);
  if (state.placed) { drawPlaced(g, lifted, c.width, c.height); return; }
  const scale = c.height / 2.6, cx = c.width / 2, cy = c.height / 2;
  g.strokeStyle = "#333"; g.lineWidth = 1; // floor grid 1 m below the pelvis, 0.5 m squares
  for (let i = -2; i <= 2; i++) {
    for (const [a, b] of [[[i / 2, 1, -1], [i / 2, 1, 1]], [[-1, 1, i / 2], [1, 1, i / 2]]]) {
      const p = project(a, state.view, scale, cx, cy), q = project(b, state.view, scale, cx, cy);
      g.beginPath(); g.moveTo(p[0], p[1]); g.lineTo(q[0], q[1]); g.stroke();
    }
  }
  drawRootRelative(g, lifted, (c.width - c.height) / 2, 0, c.height, 3);
}

function setPlaced(placed) {
  state.placed = placed;
  $("caption3d").textContent = placed
    ? "3D (metres, camera frame: people placed in one scene; drag to rotate)"
    : "3D (metres, root-relative; drag to rotate)";
  draw3d(state.lastPose ? state.lastPose.people : []);
}

function enableRotation() {
  const c = $("view3d");
  let drag = null;
  c.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointerup", () => { drag = null; });
  c.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const view = state.placed ? state.sceneView : state.view; // the placed viewer stays above the floor
    view.yaw += (e.clientX - drag[0]) * 0.01;
    view.pitch = Math.max(state.placed ? 0.05 : -1.5, Math.min(1.5, view.pitch + (e.clientY - drag[1]) * 0.01));
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
  state.camera = state.scene = null; // a new scene: framed afresh
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
      if (m.camera) state.camera = m.camera;
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
    state.camera = state.clip.camera || null;
    state.scene = null; // a new scene: framed afresh
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
$("placed").addEventListener("change", (e) => setPlaced(e.target.checked));
enableRotation();
setPlaced($("placed").checked);
loadInfo().then(() => {
  if (new URLSearchParams(location.search).get("autostart") === "camera") $("camera").click();
});
