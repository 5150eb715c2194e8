// The page's 3D viewer: three.js (the pinned npm package, fetched by `hotpose fetch-weights` and
// served at /vendor/three/ through index.html's import map) with OrbitControls: drag to orbit,
// wheel to zoom, right-drag (or shift-drag) to pan.
//
// Data are Human3.6M-17 joints in the camera frame (x right, y down, z forward, metres); the scene
// is three.js's y-up frame: (x, y, z) -> (x, -y, -z), so the video's camera sits at the origin looking
// down -Z, as a three.js camera does. Two views:
// - placed: joints_3d + root_3d, everyone in one scene, the camera's frustum drawn at the origin
//   (from the camera's intrinsics), a 1 m grid on the floor under the feet; people without a root
//   stand root-relative in a row left of the scene, labelled "no root";
// - root-relative: each person about their own pelvis, side by side 1 m apart, on a grid at the feet.
// Each person: bones and joints in their track colour, "id N" above the head. Clicking a joint picks
// it (its name and the 2D stage's confidence for it go to onPick). Renders on demand: one frame per
// change (new pose, orbit, resize), never a loop.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const FEET = [3, 6]; // r_ankle, l_ankle
const HEAD = 10;
const BONE_RADIUS = 0.022, JOINT_RADIUS = 0.035; // metres
const SIDE_BY_SIDE_M = 1.0; // root-relative: pelvis to pelvis
const VIEW = { placed: { yaw: 0.35, pitch: 0.45 }, relative: { yaw: 0.45, pitch: 0.3 } }; // radians

// camera frame (y down, z forward) -> scene (y up)
const toScene = (v) => new THREE.Vector3(v[0], -v[1], -v[2]);

// How well the 2D stage saw a person: 2 both feet, 1 most of the body, 0 neither (a head at the frame's
// edge, say). The floor counts the best-seen people only, as the renderer's (service/render.py).
function seen(p) {
  const ok = (p.keypoints_2d || []).map((k) => k[2] >= 0.5);
  if (FEET.every((f) => ok[f])) return 2;
  return ok.filter(Boolean).length >= (2 / 3) * ok.length ? 1 : 0;
}

function placedJoints(p) {
  const r = p.root_3d;
  if (!p.joints_3d || !r || r.length !== 3 || !r.every(Number.isFinite)) return null;
  return p.joints_3d.map((v) => [v[0] + r[0], v[1] + r[1], v[2] + r[2]]);
}

// The floor's camera-frame y (down is +): the lowest feet of the best-seen placed people, or null.
function placedFloor(people) {
  const placed = people.map((p) => [p, placedJoints(p)]).filter(([, j]) => j);
  if (!placed.length) return null;
  const best = Math.max(...placed.map(([p]) => seen(p)));
  let floor = -Infinity;
  for (const [p, j] of placed) if (seen(p) === best) for (const f of FEET) floor = Math.max(floor, j[f][1]);
  return floor;
}

// A text label that keeps its size on screen (about 14 px high) however far it is.
function labelSprite(text, color) {
  const c = document.createElement("canvas");
  c.width = 512; c.height = 64;
  const g = c.getContext("2d");
  g.font = "bold 40px sans-serif"; g.fillStyle = color; g.textAlign = "center"; g.textBaseline = "middle";
  g.fillText(text, 256, 32, 500);
  const tex = new THREE.CanvasTexture(c);
  tex.colorSpace = THREE.SRGBColorSpace;
  const sprite = new THREE.Sprite(new THREE.SpriteMaterial({
    map: tex, depthTest: false, transparent: true, sizeAttenuation: false,
  }));
  sprite.scale.set(0.32, 0.04, 1); // at distance 1, of a 45-degree view about 0.83 high
  sprite.renderOrder = 2;
  sprite.userData.text = text;
  return sprite;
}

export function createViewer(canvas, { colors, edges, jointNames, onPick = () => {} }) {
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(1);
  renderer.setSize(canvas.width, canvas.height, false);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color("#000000");
  const camera = new THREE.PerspectiveCamera(45, canvas.width / canvas.height, 0.02, 500);
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false; // damping needs a render loop; we render on change only

  // The floor grid: 1 m squares over the scene's box and 2 m around it. Sized to the scene, not a
  // huge plane: lines passing far behind the viewer drew wrongly (software WebGL, at least).
  let grid = new THREE.GridHelper(2, 2);
  function placeGrid(box, floorY) {
    const size = 2 * Math.ceil(Math.max(box.max.x - box.min.x, box.max.z - box.min.z, 2) / 2) + 4;
    if (grid.userData.size !== size) {
      scene.remove(grid);
      grid.geometry.dispose();
      grid = new THREE.GridHelper(size, size, 0x777777, 0x3a3a3a);
      grid.userData.size = size;
      scene.add(grid);
    }
    grid.position.set(Math.round((box.min.x + box.max.x) / 2), -floorY, Math.round((box.min.z + box.max.z) / 2));
  }
  const frustum = new THREE.LineSegments(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: 0xcccccc }));
  const cameraLabel = labelSprite("camera", "#cccccc");
  const cameraPost = new THREE.Line(new THREE.BufferGeometry(), new THREE.LineBasicMaterial({ color: 0x666666 }));
  scene.add(frustum, cameraLabel, cameraPost);
  const pickMark = new THREE.Mesh(
    new THREE.SphereGeometry(JOINT_RADIUS * 2, 12, 8),
    new THREE.MeshBasicMaterial({ color: 0xffffff, wireframe: true }),
  );
  pickMark.visible = false;
  scene.add(pickMark);

  const boneGeometry = new THREE.CylinderGeometry(BONE_RADIUS, BONE_RADIUS, 1, 8); // along +Y, centred
  const jointGeometry = new THREE.SphereGeometry(JOINT_RADIUS, 10, 8);
  const materials = new Map(); // colour -> material
  const material = (col) => {
    if (!materials.has(col)) materials.set(col, new THREE.MeshBasicMaterial({ color: col }));
    return materials.get(col);
  };
  const figures = new Map(); // track_id -> {group, bones, joints, label, noRoot}

  const v = {
    placed: true,
    people: [], // the last people given
    camera: null, // {focal_px, cx, cy, width, height}: the video's camera, for the frustum
    floor: null, // placed view: the floor's camera-frame y, smoothed over updates (live) or the clip's (fixed)
    fixed: null, // a clip's {floor, box: {placed, relative}}: a steady scene while it plays or is scrubbed
    box: null, // the framing box (scene coords) the view fits while the user has not moved it
    userMoved: false,
    drawn: [], // per person as last drawn: {track_id, placed, joints}: joints_3d + root_3d when placed, else joints_3d
    renders: 0,
    pending: false,
    picked: null, // {track_id, joint}
  };

  function figure(trackId) {
    if (figures.has(trackId)) return figures.get(trackId);
    const col = colors[trackId % colors.length], m = material(col);
    const group = new THREE.Group();
    const bones = edges.map(() => new THREE.Mesh(boneGeometry, m));
    const joints = jointNames.map((name, j) => {
      const s = new THREE.Mesh(jointGeometry, m);
      s.userData = { trackId, joint: j };
      return s;
    });
    const label = labelSprite(`id ${trackId}`, col);
    group.add(...bones, ...joints, label);
    scene.add(group);
    const f = { group, bones, joints, label, noRoot: false };
    figures.set(trackId, f);
    return f;
  }

  function pose(f, pts) {
    const up = new THREE.Vector3(0, 1, 0);
    edges.forEach(([a, b], i) => {
      const d = new THREE.Vector3().subVectors(pts[b], pts[a]);
      const len = d.length();
      const bone = f.bones[i];
      bone.visible = len > 1e-6;
      if (!bone.visible) return;
      bone.position.addVectors(pts[a], pts[b]).multiplyScalar(0.5);
      bone.quaternion.setFromUnitVectors(up, d.divideScalar(len));
      bone.scale.set(1, len, 1);
    });
    pts.forEach((p, j) => f.joints[j].position.copy(p));
    f.label.position.set(pts[HEAD].x, pts[HEAD].y + 0.25, pts[HEAD].z);
  }

  function setLabel(f, trackId, noRoot) {
    if (f.noRoot === noRoot) return;
    f.noRoot = noRoot;
    f.group.remove(f.label);
    f.label.material.map.dispose(); f.label.material.dispose();
    f.label = labelSprite(noRoot ? `id ${trackId} (no root)` : `id ${trackId}`, colors[trackId % colors.length]);
    f.group.add(f.label);
  }

  // Root-relative joints of each person, side by side along x, as camera-frame points.
  function sideBySide(people, x0) {
    return people.map((p, n) => {
      const dx = x0 + n * SIDE_BY_SIDE_M;
      return p.joints_3d.map((q) => [q[0] + dx, q[1], q[2]]);
    });
  }

  function frustumLines(floorY) {
    const cam = v.camera || { focal_px: 1, cx: 0.5, cy: 0.5, width: 1, height: 1 };
    const d = 0.3; // metres: the pyramid's depth
    const corners = [[0, 0], [cam.width, 0], [cam.width, cam.height], [0, cam.height]]
      .map(([u, w]) => toScene([((u - cam.cx) / cam.focal_px) * d, ((w - cam.cy) / cam.focal_px) * d, d]));
    const o = new THREE.Vector3();
    const pts = [];
    corners.forEach((c, i) => pts.push(o, c, c, corners[(i + 1) % 4]));
    frustum.geometry.dispose();
    frustum.geometry = new THREE.BufferGeometry().setFromPoints(pts);
    cameraPost.geometry.dispose();
    cameraPost.geometry = new THREE.BufferGeometry().setFromPoints([o, new THREE.Vector3(0, -floorY, 0)]);
    cameraLabel.position.set(0, (cam.cy / cam.focal_px) * d + 0.12, -d); // above the frustum's top edge
  }

  function grow(box, pts) {
    for (const p of pts) box.expandByPoint(p);
    return box;
  }

  // The framing box: a clip's fixed one, else this update's, grown at once and shrunk slowly (live).
  function frameBox(pts, withCamera) {
    const key = v.placed ? "placed" : "relative";
    if (v.fixed) return v.fixed.box[key];
    const box = grow(new THREE.Box3(), pts);
    if (withCamera) box.expandByPoint(new THREE.Vector3());
    if (box.isEmpty()) return v.box || new THREE.Box3(new THREE.Vector3(-1.5, -1, -5), new THREE.Vector3(1.5, 1, 0));
    if (!v.box || v.box.key !== key) { box.key = key; return box; }
    const old = v.box;
    const mix = (a, b, grows) => (grows ? b : a + 0.1 * (b - a));
    const out = new THREE.Box3(
      new THREE.Vector3(mix(old.min.x, box.min.x, box.min.x < old.min.x), mix(old.min.y, box.min.y, box.min.y < old.min.y),
        mix(old.min.z, box.min.z, box.min.z < old.min.z)),
      new THREE.Vector3(mix(old.max.x, box.max.x, box.max.x > old.max.x), mix(old.max.y, box.max.y, box.max.y > old.max.y),
        mix(old.max.z, box.max.z, box.max.z > old.max.z)),
    );
    out.key = key;
    return out;
  }

  function fit(box) {
    const view = v.placed ? VIEW.placed : VIEW.relative;
    const centre = box.getCenter(new THREE.Vector3());
    const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 0.8);
    const dist = (radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2))) * (v.placed ? 0.65 : 0.95);
    const dir = new THREE.Vector3(Math.sin(view.yaw) * Math.cos(view.pitch), Math.sin(view.pitch),
      Math.cos(view.yaw) * Math.cos(view.pitch));
    camera.position.copy(centre).addScaledVector(dir, dist);
    controls.target.copy(centre);
    camera.near = Math.max(dist / 200, 0.01);
    camera.far = dist * 20;
    camera.updateProjectionMatrix();
    fitting = true;
    controls.update();
    fitting = false;
  }

  function update() {
    const lifted = v.people.filter((p) => p.joints_3d);
    const shown = new Set();
    v.drawn = [];
    const allPts = [];
    let floorY; // camera-frame y of the grid
    let frustumShown = false;
    if (v.placed) {
      const placed = [], unplaced = [];
      for (const p of lifted) { const j = placedJoints(p); if (j) placed.push([p, j]); else unplaced.push(p); }
      const f = v.fixed ? v.fixed.floor : placedFloor(lifted);
      if (v.fixed || v.floor === null) v.floor = f; else if (f !== null) v.floor += 0.3 * (f - v.floor);
      floorY = v.floor !== null ? v.floor : 1.5;
      // no root: root-relative in a row left of the scene, feet on the floor, as near as the nearest person
      const xs = placed.flatMap(([, j]) => j.map((q) => q[0]));
      const depth = placed.length ? Math.min(...placed.map(([, j]) => j[0][2])) : 3;
      const left = (xs.length ? Math.min(...xs) : 0) - 1.0 - (unplaced.length - 1) * SIDE_BY_SIDE_M;
      const rows = sideBySide(unplaced, left).map((j) => {
        const lift = floorY - Math.max(...FEET.map((k) => j[k][1]));
        return j.map((q) => [q[0], q[1] + lift, q[2] + depth]);
      });
      const all = [...placed.map(([p, j]) => [p, j, true]), ...unplaced.map((p, n) => [p, rows[n], false])];
      for (const [p, j, isPlaced] of all) {
        const fig = figure(p.track_id);
        setLabel(fig, p.track_id, !isPlaced);
        const pts = j.map(toScene);
        pose(fig, pts);
        allPts.push(...pts);
        shown.add(p.track_id);
        v.drawn.push({ track_id: p.track_id, placed: isPlaced, joints: isPlaced ? j : p.joints_3d });
      }
      frustumShown = placed.length > 0;
      if (frustumShown) frustumLines(floorY);
    } else {
      const rows = sideBySide(lifted, -((lifted.length - 1) / 2) * SIDE_BY_SIDE_M);
      floorY = v.fixed ? v.fixed.relativeFloor : Math.max(0.9, ...rows.flatMap((j) => FEET.map((k) => j[k][1])));
      lifted.forEach((p, n) => {
        const fig = figure(p.track_id);
        setLabel(fig, p.track_id, false);
        const pts = rows[n].map(toScene);
        pose(fig, pts);
        allPts.push(...pts);
        shown.add(p.track_id);
        v.drawn.push({ track_id: p.track_id, placed: false, joints: p.joints_3d });
      });
    }
    frustum.visible = cameraLabel.visible = cameraPost.visible = frustumShown;
    for (const [id, f] of figures) f.group.visible = shown.has(id);
    v.box = frameBox(allPts, frustumShown);
    placeGrid(v.box, floorY);
    if (!v.userMoved) fit(v.box);
    updatePick();
    request();
  }

  function updatePick() {
    const s = v.picked;
    const p = s && v.people.find((q) => q.track_id === s.trackId && q.joints_3d);
    const f = s && figures.get(s.trackId);
    pickMark.visible = Boolean(p && f && f.group.visible);
    if (!pickMark.visible) { if (s) onPick(null); return; }
    pickMark.position.copy(f.joints[s.joint].position);
    const kp = p.keypoints_2d && p.keypoints_2d[s.joint];
    onPick({ track_id: s.trackId, joint: s.joint, name: jointNames[s.joint], confidence: kp ? kp[2] : null });
  }

  function request() {
    if (v.pending) return;
    v.pending = true;
    requestAnimationFrame(() => {
      v.pending = false;
      renderer.render(scene, camera);
      v.renders += 1;
    });
  }

  // picking: a click (not a drag) on a joint
  const raycaster = new THREE.Raycaster();
  let down = null;
  canvas.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; });
  canvas.addEventListener("pointerup", (e) => {
    if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 4) { down = null; return; }
    down = null;
    const r = canvas.getBoundingClientRect();
    const ndc = new THREE.Vector2(((e.clientX - r.left) / r.width) * 2 - 1, -((e.clientY - r.top) / r.height) * 2 + 1);
    raycaster.setFromCamera(ndc, camera);
    const targets = [...figures.values()].filter((f) => f.group.visible).flatMap((f) => f.joints);
    const hit = raycaster.intersectObjects(targets, false)[0];
    v.picked = hit ? { trackId: hit.object.userData.trackId, joint: hit.object.userData.joint } : null;
    if (!hit) { pickMark.visible = false; onPick(null); request(); return; }
    updatePick();
    request();
  });
  let fitting = false; // a change made by fit() is not the user's
  controls.addEventListener("change", () => { if (!fitting) v.userMoved = true; request(); });

  // Screen position (canvas pixels) of a scene point.
  function screen(p) {
    const q = p.clone().project(camera);
    return [((q.x + 1) / 2) * canvas.width, ((1 - q.y) / 2) * canvas.height];
  }

  return {
    // people of one frame (a live pose message's or a clip frame's); camera: the video's, for the frustum
    show(people, cam = null) {
      v.people = people || [];
      if (cam) v.camera = cam;
      update();
    },
    setPlaced(placed) {
      v.placed = placed;
      v.box = null;
      v.userMoved = false;
      update();
    },
    // A clip: a fixed floor and framing over all its frames (people may come and go; the scene stays
    // put while it plays or is scrubbed). null: back to live framing.
    setClip(frames, cam = null) {
      v.camera = cam;
      v.floor = null;
      v.box = null;
      v.userMoved = false;
      if (!frames) { v.fixed = null; return; }
      const floors = frames.map((f) => placedFloor(f.people.filter((p) => p.joints_3d))).filter((y) => y !== null)
        .sort((a, b) => a - b);
      const floor = floors.length ? floors[floors.length >> 1] : 1.5;
      const placed = new THREE.Box3().expandByPoint(new THREE.Vector3());
      const relative = new THREE.Box3();
      let relativeFloor = 0.9;
      let most = 1;
      for (const f of frames) {
        const lifted = f.people.filter((p) => p.joints_3d);
        most = Math.max(most, lifted.length);
        for (const p of lifted) {
          const j = placedJoints(p);
          if (j) grow(placed, j.map(toScene));
          relativeFloor = Math.max(relativeFloor, ...FEET.map((k) => p.joints_3d[k][1]));
        }
      }
      for (const n of [0, most - 1]) { // the row's ends: pelvis +- 1 m, head to feet
        const x = (n - (most - 1) / 2) * SIDE_BY_SIDE_M;
        grow(relative, [toScene([x - 0.5, -1.0, -0.5]), toScene([x + 0.5, relativeFloor, 0.5])]);
      }
      placed.expandByPoint(toScene([0, floor, 0]));
      v.fixed = { floor, relativeFloor, box: { placed, relative } };
    },
    resetView() {
      v.userMoved = false;
      update();
    },
    resize(w, h) {
      renderer.setSize(w, h, false);
      camera.aspect = w / h;
      camera.updateProjectionMatrix();
      request();
    },
    // what the viewer shows, for the browser tests and debugging (read-only copies)
    state() {
      return {
        placed: v.placed,
        renders: v.renders,
        pending: v.pending,
        frustum: frustum.visible,
        floor: v.floor,
        grid: grid.position.toArray(),
        eye: camera.position.toArray(),
        target: controls.target.toArray(),
        userMoved: v.userMoved,
        picked: v.picked,
        people: v.drawn.map((d) => {
          const f = figures.get(d.track_id);
          return {
            track_id: d.track_id, placed: d.placed, joints: d.joints.map((q) => [...q]),
            screen: f.joints.map((s) => screen(s.position)), label: f.label.userData.text,
            color: colors[d.track_id % colors.length],
          };
        }),
      };
    },
  };
}
