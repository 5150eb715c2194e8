// Small line plots on a 2D canvas, hand-written (no plotting library): series over one x axis, a left
// and an optional right y axis, gaps where a value is null or NaN, a legend, a vertical cursor, and
// click/drag reported as an x value (the page seeks its timeline with it). Draws on demand: set()
// and cursor() schedule one redraw in the next animation frame, never a loop.

const AXIS = "#777", GRID = "#262626", TEXT = "#aaa", CURSOR = "#fff";
export const PAD = { left: 44, right: 44, top: 18, bottom: 20 }; // the plot frame's margins, px

// Round tick steps (1, 2, 5 x 10^n) giving about `n` ticks over [lo, hi].
function ticks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(n, 1);
  if (!(raw > 0) || !Number.isFinite(raw)) return [lo];
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function extent(series, axis) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) {
    if ((s.axis || "y") !== axis) continue;
    for (const v of s.values) if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  return lo <= hi ? [lo, hi] : null;
}

export class LinePlot {
  // options: {xLabel (a unit after each tick), yLabel, yRange / y2Range: [lo, hi] (grown to fit the data),
  //   dots (false: lines only), onSeek(x)}
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.o = options;
    this.x = [];
    this.series = []; // [{name, color, values (one per x; null or NaN: a gap), axis: "y" | "y2", dash}]
    this.xRange = null;
    this.cursorX = null;
    this.pending = false;
    this.draws = 0; // how many times it drew (for the browser tests and debugging)
    this.drawnPoints = []; // per series, the points drawn last time (finite values)
    if (options.onSeek) {
      let down = false;
      const seek = (e) => {
        const r = canvas.getBoundingClientRect();
        const px = (e.clientX - r.left) * (canvas.width / r.width);
        const x = this.xAt(px);
        if (x !== null) options.onSeek(x);
      };
      canvas.addEventListener("pointerdown", (e) => { down = true; canvas.setPointerCapture(e.pointerId); seek(e); });
      canvas.addEventListener("pointermove", (e) => { if (down) seek(e); });
      canvas.addEventListener("pointerup", () => { down = false; });
      canvas.style.cursor = "crosshair";
    }
  }

  set(x, series, xRange = null) {
    this.x = x;
    this.series = series;
    this.xRange = xRange;
    this.request();
  }

  cursor(x) {
    if (x === this.cursorX) return;
    this.cursorX = x;
    this.request();
  }

  request() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  range() {
    if (this.xRange) return this.xRange;
    return this.x.length ? [this.x[0], Math.max(this.x[this.x.length - 1], this.x[0] + 1e-6)] : [0, 1];
  }

  // canvas x pixel -> x value (clamped to the range), or null without data
  xAt(px) {
    if (!this.x.length) return null;
    const [lo, hi] = this.range();
    const w = this.canvas.width - PAD.left - PAD.right;
    return lo + Math.min(Math.max((px - PAD.left) / w, 0), 1) * (hi - lo);
  }

  draw() {
    const c = this.canvas, g = c.getContext("2d");
    const w = c.width - PAD.left - PAD.right, h = c.height - PAD.top - PAD.bottom;
    g.clearRect(0, 0, c.width, c.height);
    g.font = "11px sans-serif";
    const [x0, x1] = this.range();
    const px = (v) => PAD.left + ((v - x0) / (x1 - x0)) * w;
    const axes = {};
    for (const [axis, fixed] of [["y", this.o.yRange], ["y2", this.o.y2Range]]) {
      const data = extent(this.series, axis);
      if (!data && !fixed) continue;
      let [lo, hi] = fixed || data;
      if (data && fixed) { lo = Math.min(lo, data[0]); hi = Math.max(hi, data[1]); }
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      axes[axis] = { lo, hi, py: (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * h };
    }
    // grid and ticks: the left axis draws the grid; the right one only its labels
    g.strokeStyle = GRID; g.fillStyle = TEXT; g.lineWidth = 1;
    for (const [axis, a] of Object.entries(axes)) {
      g.textAlign = axis === "y" ? "right" : "left";
      for (const v of ticks(a.lo, a.hi, 4)) {
        const y = Math.round(a.py(v)) + 0.5;
        if (axis === "y") { g.beginPath(); g.moveTo(PAD.left, y); g.lineTo(PAD.left + w, y); g.stroke(); }
        g.fillText(String(v), axis === "y" ? PAD.left - 4 : PAD.left + w + 4, y + 4);
      }
    }
    g.textAlign = "center";
    for (const v of ticks(x0, x1, 6)) g.fillText(`${v}${this.o.xLabel || ""}`, px(v), c.height - 5);
    g.strokeStyle = AXIS;
    g.strokeRect(PAD.left + 0.5, PAD.top + 0.5, w, h);
    g.textAlign = "left";
    if (this.o.yLabel) g.fillText(this.o.yLabel, 4, PAD.top - 5);
    // the series: lines with gaps; a dot on each point when they are few enough to tell apart
    g.save();
    g.beginPath(); g.rect(PAD.left, PAD.top, w, h); g.clip();
    const dots = this.o.dots !== false && this.x.length <= w / 6;
    this.drawnPoints = this.series.map((s) => {
      const a = axes[s.axis || "y"];
      if (!a) return 0;
      g.strokeStyle = g.fillStyle = s.color; g.lineWidth = 2; g.setLineDash(s.dash || []);
      let n = 0, open = false;
      g.beginPath();
      s.values.forEach((v, i) => {
        if (v === null || !Number.isFinite(v)) { open = false; return; }
        const X = px(this.x[i]), Y = a.py(v);
        if (open) g.lineTo(X, Y); else g.moveTo(X, Y);
        open = true; n += 1;
      });
      g.stroke();
      g.setLineDash([]);
      if (dots) {
        s.values.forEach((v, i) => {
          if (v === null || !Number.isFinite(v)) return;
          g.beginPath(); g.arc(px(this.x[i]), a.py(v), 2.5, 0, 2 * Math.PI); g.fill();
        });
      }
      return n;
    });
    g.restore();
    // legend, above the frame on the right
    let lx = PAD.left + w;
    g.textAlign = "right";
    for (const s of [...this.series].reverse()) {
      g.fillStyle = s.color;
      g.fillText(s.name, lx, PAD.top - 5);
      lx -= g.measureText(s.name).width + 12;
    }
    if (this.cursorX !== null && this.cursorX >= x0 && this.cursorX <= x1) {
      const X = Math.round(px(this.cursorX)) + 0.5;
      g.strokeStyle = CURSOR; g.lineWidth = 1;
      g.beginPath(); g.moveTo(X, PAD.top); g.lineTo(X, PAD.top + h); g.stroke();
    }
    this.draws += 1;
  }
}
