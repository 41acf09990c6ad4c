/* The embedding map: one <canvas>, points drawn as small squares (no DOM node per
   point), wheel to zoom, drag to pan, hover for a tooltip, click to open a point.
   Hit-testing uses a screen-space grid rebuilt on every draw. */
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const OTHER = "#b0b0b0";

function rampColor(t) {
  t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(t)), f = t - i;
  const c = RAMP[i].map((v, j) => Math.round(v + f * (RAMP[i + 1][j] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/* values (one per point, null where missing) -> {colors, legend}. Numbers get a
   ramp; anything else a palette by frequency (the 12 most common, the rest grey). */
function colorize(values) {
  const n = values ? values.length : 0;
  if (!n) return {colors: null, legend: []};
  const nums = values.filter(v => typeof v === "number");
  if (nums.length && nums.length === values.filter(v => v !== null).length) {
    let lo = Infinity, hi = -Infinity;
    for (const v of nums) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const span = hi - lo || 1;
    return {colors: values.map(v => v === null ? OTHER : rampColor((v - lo) / span)),
            legend: [[String(lo), rampColor(0)], [String(hi), rampColor(1)]]};
  }
  const counts = new Map();
  for (const v of values) { const k = v === null ? "(none)" : String(v); counts.set(k, (counts.get(k) || 0) + 1); }
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
  const color = new Map(top.map(([k], i) => [k, k === "(none)" ? OTHER : PALETTE[i]]));
  return {colors: values.map(v => color.get(v === null ? "(none)" : String(v)) || OTHER),
          legend: top.map(([k, c]) => [`${k} (${c})`, color.get(k)])};
}

/* A CSS colour ("#rrggbb" or "rgb(r,g,b)") as one little-endian RGBA pixel. */
function packColor(css) {
  const m = css.startsWith("#") ? [1, 3, 5].map(i => parseInt(css.slice(i, i + 2), 16))
                                : css.match(/\d+/g).map(Number);
  return ((255 << 24) | (m[2] << 16) | (m[1] << 8) | m[0]) >>> 0;
}

class MapView {
  constructor(canvas, tooltip, onPick) {
    this.canvas = canvas; this.tooltip = tooltip; this.onPick = onPick;
    this.data = null; this.colors = null; this.highlight = new Set();
    this.drawn = 0; this.view = {scale: 1, tx: 0, ty: 0}; this.drag = null;
    canvas.addEventListener("wheel", e => this.zoom(e), {passive: false});
    canvas.addEventListener("mousedown", e => { this.drag = {x: e.offsetX, y: e.offsetY, moved: false}; });
    canvas.addEventListener("mousemove", e => this.move(e));
    canvas.addEventListener("mouseup", e => this.up(e));
    canvas.addEventListener("mouseleave", () => { this.drag = null; this.tooltip.hidden = true; });
  }

  /* data: {ids, x, y, hover}; colors: one CSS colour per point or null */
  setData(data, colors) {
    this.data = data; this.colors = colors; this.view = {scale: 1, tx: 0, ty: 0};
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < data.x.length; i++) {
      x0 = Math.min(x0, data.x[i]); x1 = Math.max(x1, data.x[i]);
      y0 = Math.min(y0, data.y[i]); y1 = Math.max(y1, data.y[i]);
    }
    this.bounds = {x0, y0, sx: (x1 - x0) || 1, sy: (y1 - y0) || 1};
    this.draw();
  }

  setColors(colors) { this.colors = colors; this.draw(); }
  setHighlight(ids) { this.highlight = new Set(ids || []); this.draw(); }

  screen(i) {
    const w = this.canvas.width, h = this.canvas.height, pad = 12, b = this.bounds, v = this.view;
    const px = pad + (this.data.x[i] - b.x0) / b.sx * (w - 2 * pad);
    const py = h - pad - (this.data.y[i] - b.y0) / b.sy * (h - 2 * pad);
    return [px * v.scale + v.tx, py * v.scale + v.ty];
  }

  /* Points are written straight into an ImageData buffer (one 32-bit write a pixel),
     which stays fast at 50k points; search hits are drawn on top as rings. */
  draw() {
    const c = this.canvas, ctx = c.getContext("2d");
    const rect = c.getBoundingClientRect();
    if (rect.width && c.width !== Math.round(rect.width)) { c.width = Math.round(rect.width); }
    ctx.clearRect(0, 0, c.width, c.height);
    this.drawn = 0; this.grid = null;
    if (!this.data) return;
    const w = c.width, h = c.height, n = this.data.ids.length;
    const size = n > 20000 ? 2 : n > 2000 ? 3 : 4, half = size >> 1;
    const img = ctx.createImageData(w, h), buf = new Uint32Array(img.data.buffer);
    const rgba = (this.colors || []).map(packColor), plain = packColor("#3b6ea5");
    const hi = [], xs = this.data.x, ys = this.data.y, ids = this.data.ids, b = this.bounds;
    const v = this.view, pad = 12, lit = this.highlight.size > 0;  // screen(i), inlined
    const ax = (w - 2 * pad) / b.sx * v.scale, bx = pad * v.scale + v.tx - b.x0 * ax;
    const ay = -(h - 2 * pad) / b.sy * v.scale, by = (h - pad) * v.scale + v.ty - b.y0 * ay;
    for (let i = 0; i < n; i++) {
      const sx = xs[i] * ax + bx, sy = ys[i] * ay + by;
      const x = Math.round(sx) - half, y = Math.round(sy) - half;
      if (x < -size || y < -size || x >= w || y >= h) continue;
      this.drawn++;
      if (lit && this.highlight.has(ids[i])) { hi.push([sx, sy]); continue; }
      const color = this.colors ? rgba[i] : plain;
      for (let dy = Math.max(0, -y); dy < size && y + dy < h; dy++) {
        const row = (y + dy) * w;
        for (let dx = Math.max(0, -x); dx < size && x + dx < w; dx++) buf[row + x + dx] = color;
      }
    }
    ctx.putImageData(img, 0, 0);
    for (const [x, y] of hi) {
      ctx.fillStyle = "#e4002b"; ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fill();
      ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5; ctx.stroke();
    }
  }

  /* Screen-space grid of 8 px cells, built on the first hover after a draw. */
  index() {
    this.grid = new Map();
    const w = this.canvas.width, h = this.canvas.height;
    for (let i = 0; i < this.data.ids.length; i++) {
      const [x, y] = this.screen(i);
      if (x < 0 || y < 0 || x >= w || y >= h) continue;
      const key = Math.floor(x / 8) * 65536 + Math.floor(y / 8);
      const cell = this.grid.get(key);
      if (cell) cell.push(i); else this.grid.set(key, [i]);
    }
  }

  nearest(x, y) {
    if (!this.grid) this.index();
    let best = -1, bestD = 36;  // within 6 px
    const gx = Math.floor(x / 8), gy = Math.floor(y / 8);
    for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) {
      for (const i of this.grid.get((gx + dx) * 65536 + gy + dy) || []) {
        const [px, py] = this.screen(i), d = (px - x) ** 2 + (py - y) ** 2;
        if (d < bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  zoom(e) {
    e.preventDefault();
    const f = e.deltaY < 0 ? 1.25 : 0.8, v = this.view;
    v.tx = e.offsetX - (e.offsetX - v.tx) * f; v.ty = e.offsetY - (e.offsetY - v.ty) * f;
    v.scale *= f; this.draw();
  }

  move(e) {
    if (this.drag) {
      const dx = e.offsetX - this.drag.x, dy = e.offsetY - this.drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) {
        this.drag.moved = true; this.view.tx += dx; this.view.ty += dy;
        this.drag.x = e.offsetX; this.drag.y = e.offsetY; this.draw();
      }
      return;
    }
    if (!this.data) return;
    const i = this.nearest(e.offsetX, e.offsetY);
    this.tooltip.hidden = i < 0;
    if (i >= 0) {
      this.tooltip.textContent = `${this.data.ids[i]}: ${this.data.hover[i]}`;
      this.tooltip.style.left = `${e.offsetX + 14}px`; this.tooltip.style.top = `${e.offsetY + 10}px`;
    }
    this.canvas.style.cursor = i >= 0 ? "pointer" : "grab";
  }

  up(e) {
    const moved = this.drag && this.drag.moved;
    this.drag = null;
    if (moved || !this.data) return;
    const i = this.nearest(e.offsetX, e.offsetY);
    if (i >= 0) this.onPick(this.data.ids[i]);
  }
}

window.VecdbMap = {MapView, colorize};
