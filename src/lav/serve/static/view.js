// The result view: the screenshot on a canvas with the maps over it, zoom and pan, the selectors
// and the hover read-out. Colours are the product's (lav.render.overlay):
//   edge (cyan)       rgba(0, 200 + 55 v, 255, v * 0.3)
//   focus (red/yellow) rgba(255, 180 v, 0, v * 0.35)
//   difference        red (230, 40, 40) above zero, blue (40, 100, 230) below, |d| * 0.4
//   click             a green crosshair with a #1e3a5f ring and centre dot
// Any other map of the result (focus_sink_masked, edge_rollout, ...) is drawn in its own style, on
// its own grid (the array's shape: patch or merged), over the whole image as edge and focus are.
// Every piece of text from the server goes in with textContent, never as HTML.

import { enc, getBuffer, getJson } from "./api.js";
import { parseNpy } from "./npy.js";

// Kept equal to lav.render.overlay: low enough that a target keeps its own colour under the map.
const ALPHA = { edge: 0.3, focus: 0.35, diff: 0.4 };
const CLICK_GREEN = "rgb(0, 220, 0)";
const MARKER = "#1e3a5f";
const MAP_LAYERS = ["edge", "focus", "focus_x", "focus_y"];
/** Maps with their own controls; every other map of a result is offered in the "More maps" select. */
const OWN_CONTROLS = ["edge", "focus"];
const MIN_SCALE = 0.02;
const MAX_SCALE = 40;

function q8(x) {
  return Math.floor(Math.min(255, Math.max(0, x)) + 0.5);
}

/** [r, g, b, a] (0..255) of value v in style "edge" | "focus" | "diff". */
export function colour(style, v) {
  if (style === "edge") return [0, q8(200 + 55 * v), 255, q8(255 * v * ALPHA.edge)];
  if (style === "focus") return [255, q8(180 * v), 0, q8(255 * v * ALPHA.focus)];
  const a = q8(255 * Math.abs(v) * ALPHA.diff);
  return v >= 0 ? [230, 40, 40, a] : [40, 100, 230, a];
}

function minmax(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Float32Array(values.length);
  if (!(hi > lo)) return out; // a constant map is all zeros, as lav's minmax
  const span = hi - lo;
  for (let i = 0; i < values.length; i++) out[i] = (values[i] - lo) / span;
  return out;
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// The click's digit confidence (result.json click.confidence / click.alternatives), or "".
function fmtConfidence(rec) {
  const c = rec && rec.click;
  if (!c || c.confidence === null || c.confidence === undefined) return "";
  const alts = (c.alternatives || []).map(a => `(${a.x.toFixed(0)}, ${a.y.toFixed(0)}) ${(100 * a.p).toFixed(1)}%`);
  return `${(100 * c.confidence).toFixed(1)}%` + (alts.length ? `; next: ${alts.join("; ")}` : "");
}

function fmtClick(rec) {
  if (!rec) return "";
  if (rec.click) return `(${rec.click.x.toFixed(1)}, ${rec.click.y.toFixed(1)}) px`;
  return `none (${rec.click_error || "no coordinates"})`;
}

export class ResultView {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("#canvas");
    this.stage = root.querySelector("#stage");
    this.readout = root.querySelector("#readout");
    this.meta = root.querySelector("#meta");
    this.error = root.querySelector("#result-error");
    this.edgeSelect = root.querySelector("#edge-layer");
    this.focusSelect = root.querySelector("#focus-layer");
    this.headSelect = root.querySelector("#focus-head");
    this.extraSelect = root.querySelector("#extra-map");
    this.opacity = root.querySelector("#opacity");
    this.arrays = new Map();
    this.layers = {}; // name -> {rows, cols, data, style, canvas}
    this.scale = 1;
    this.ox = 0;
    this.oy = 0;
    this.token = 0;
    this.refreshes = 0;
    this.bind();
  }

  bind() {
    for (const box of this.root.querySelectorAll("input[data-layer]")) {
      box.addEventListener("change", () => this.refresh());
    }
    for (const radio of this.root.querySelectorAll("input[name=source]")) {
      radio.addEventListener("change", () => this.refresh());
    }
    for (const select of [this.edgeSelect, this.focusSelect, this.headSelect, this.extraSelect]) {
      select.addEventListener("change", () => this.refresh());
    }
    this.opacity.addEventListener("input", () => {
      this.root.querySelector("#opacity-value").textContent = `${this.opacity.value}%`;
      this.paint();
    });
    this.root.querySelector("#zoom-fit").addEventListener("click", () => this.fit());
    this.root.querySelector("#zoom-1").addEventListener("click", () => this.zoomTo(1));
    this.root.querySelector("#zoom-in").addEventListener("click", () => this.zoomBy(1.5));
    this.root.querySelector("#zoom-out").addEventListener("click", () => this.zoomBy(1 / 1.5));
    this.canvas.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const r = this.canvas.getBoundingClientRect();
        this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false },
    );
    let drag = null;
    this.canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, ox: this.ox, oy: this.oy };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener("pointerup", () => {
      drag = null;
    });
    this.canvas.addEventListener("pointermove", (e) => {
      if (drag && e.buttons) {
        this.ox = drag.ox + e.clientX - drag.x;
        this.oy = drag.oy + e.clientY - drag.y;
        this.paint();
      }
      const r = this.canvas.getBoundingClientRect();
      this.hover(e.clientX - r.left, e.clientY - r.top);
    });
    this.canvas.addEventListener("pointerleave", () => this.hover(null, null));
    new ResizeObserver(() => {
      if (this.image) this.resize();
    }).observe(this.stage);
  }

  // --- loading --------------------------------------------------------------------------------
  async open(id, options = {}) {
    const token = ++this.token;
    this.error.hidden = true;
    this.id = id;
    this.box = options.box || null;
    this.arrays = new Map();
    this.canvas.dataset.ready = "false";
    const rec = await getJson(`/api/results/${enc(id)}`);
    const image = new Image();
    image.src = `/api/results/${enc(id)}/image`;
    await image.decode();
    if (token !== this.token) return;
    this.rec = rec;
    this.image = image;
    this.root.querySelector("#download").href = `/api/results/${enc(id)}/download`;
    this.setupControls();
    this.showMeta();
    this.resize();
    this.fit();
    await this.refresh();
  }

  array(key) {
    if (!this.arrays.has(key)) {
      this.arrays.set(
        key,
        getBuffer(`/api/results/${enc(this.id)}/maps/${enc(key)}`).then((b) => parseNpy(b)),
      );
    }
    return this.arrays.get(key);
  }

  setupControls() {
    const rec = this.rec;
    const hasBase = !!rec.base;
    for (const radio of this.root.querySelectorAll("input[name=source]")) {
      radio.disabled = radio.value !== "adapter" && !hasBase;
      radio.checked = radio.value === "adapter";
    }
    this.root.querySelector("#source-adapter-label").textContent = rec.adapter ? "adapter" : "model";
    const fill = (select, first, labels) => {
      select.replaceChildren(el("option", first));
      select.firstChild.value = "mean";
      labels.forEach((label, i) => {
        const option = el("option", label);
        option.value = String(i);
        select.append(option);
      });
      select.value = "mean";
    };
    const edge = rec.maps.edge;
    const focus = rec.maps.focus;
    fill(this.edgeSelect, "mean of blocks", edge ? edge.layers.map((l) => `block ${l}`) : []);
    fill(this.focusSelect, "mean of layers", focus ? focus.layers.map((l) => `layer ${l}`) : []);
    this.headSelect.replaceChildren(el("option", "all heads"));
    this.headSelect.firstChild.value = "mean";
    this.headSelect.value = "mean";
    this.heads = null;
    if (focus && focus.arrays.includes("focus_heads")) {
      this.array("focus_heads").then((a) => {
        this.heads = a.shape[1];
        for (let h = 0; h < a.shape[1]; h++) {
          const option = el("option", `head ${h}`);
          option.value = String(h);
          this.headSelect.append(option);
        }
      });
    }
    for (const name of ["focus_x", "focus_y"]) {
      const box = this.root.querySelector(`input[data-layer=${name}]`);
      box.disabled = !(focus && focus.arrays.includes(name));
    }
    this.root.querySelector("#box-toggle").hidden = !this.box;
    const extras = Object.entries(rec.maps).filter(([name]) => !OWN_CONTROLS.includes(name));
    this.extraSelect.replaceChildren(el("option", "none"));
    this.extraSelect.firstChild.value = "";
    for (const [name, m] of extras) {
      const option = el("option", m.title || name);
      option.value = name;
      option.dataset.style = m.style;
      this.extraSelect.append(option);
    }
    this.extraSelect.value = "";
    this.root.querySelector("#extra-map-field").hidden = !extras.length;
  }

  showMeta() {
    const rec = this.rec;
    const rows = [
      ["Instruction", rec.instruction],
      ["Answer", rec.response + (rec.forced_response ? " (forced)" : "")],
      ["Click", fmtClick(rec)],
    ];
    if (fmtConfidence(rec)) rows.push(["Confidence", fmtConfidence(rec)]);
    if (rec.base) {
      rows.push(["Base answer", rec.base.response]);
      rows.push(["Base click", fmtClick(rec.base)]);
      if (fmtConfidence(rec.base)) rows.push(["Base confidence", fmtConfidence(rec.base)]);
    }
    if (this.box) rows.push(["Target box", `[${this.box.join(", ")}] px`]);
    rows.push(["Model", rec.model]);
    if (rec.adapter) rows.push(["Adapter", rec.adapter]);
    rows.push(["Image", `${rec.image_size[0]} x ${rec.image_size[1]} px, grid ${rec.grid.h} x ${rec.grid.w} patches of ${rec.grid.patch}`]);
    if (rec.maps.edge) rows.push(["Edge blocks", rec.maps.edge.layers.join(", ")]);
    if (rec.maps.focus) rows.push(["Focus layers", `${rec.maps.focus.layers.join(", ")} (${rec.maps.focus.info.tokens})`]);
    rows.push(["Maps", Object.entries(rec.maps).map(([name, m]) => `${name} (${m.title})`).join(", ")]);
    const t = rec.timings || {};
    rows.push(["Timings", Object.entries(t).map(([k, v]) => `${k} ${Number(v).toFixed(2)} s`).join(", ")]);
    this.meta.replaceChildren();
    for (const [k, v] of rows) {
      const dt = el("dt", k);
      const dd = el("dd", v);
      dd.dataset.meta = k.toLowerCase().replace(/ /g, "-");
      this.meta.append(dt, dd);
    }
  }

  // --- what is shown ----------------------------------------------------------------------------
  checked(name) {
    const box = this.root.querySelector(`input[data-layer=${name}]`);
    return !!box && box.checked && !box.disabled;
  }

  /** The maps to draw, bottom first: the checked layers, then the map picked under "More maps". */
  shown() {
    const names = MAP_LAYERS.filter((name) => this.checked(name));
    const extra = this.extraSelect.value;
    if (extra && this.rec.maps[extra] && !names.includes(extra)) names.push(extra);
    return names;
  }

  /** "edge" (cyan) or "focus" (red/yellow): as the result's map says, focus for focus x / y. */
  style(name) {
    const m = this.rec.maps[name];
    return m && m.style === "edge" ? "edge" : "focus";
  }

  source() {
    return this.root.querySelector("input[name=source]:checked").value;
  }

  /** The map `name` of one side ("" adapter, "base_" base) as shown: {rows, cols, data in [0,1]}. */
  async grid(name, prefix) {
    const side = prefix ? this.rec.base : this.rec;
    if (!side || !side.maps) return null;
    if (name === "edge") {
      if (!side.maps.edge) return null;
      const pick = this.edgeSelect.value;
      if (pick === "mean") return this.plain(await this.array(`${prefix}edge`));
      const layers = await this.array(`${prefix}edge_layers`);
      return this.slice(layers, Number(pick));
    }
    if (name === "focus") {
      if (!side.maps.focus) return null;
      const layer = this.focusSelect.value;
      const head = this.headSelect.value;
      if (layer === "mean" && head === "mean") return this.plain(await this.array(`${prefix}focus`));
      if (head === "mean") return this.slice(await this.array(`${prefix}focus_layers`), Number(layer));
      const heads = await this.array(`${prefix}focus_heads`);
      const [L, H, rows, cols] = heads.shape;
      const n = rows * cols;
      const h = Number(head);
      const picked = layer === "mean" ? [...Array(L).keys()] : [Number(layer)];
      const sum = new Float32Array(n);
      for (const l of picked) {
        const off = (l * H + h) * n;
        for (let i = 0; i < n; i++) sum[i] += heads.data[off + i];
      }
      return { rows, cols, data: minmax(sum) };
    }
    if (side.maps[name]) return this.plain(await this.array(`${prefix}${name}`));
    if (!side.maps.focus || !side.maps.focus.arrays.includes(name)) return null;
    return this.plain(await this.array(`${prefix}${name}`));
  }

  plain(a) {
    return { rows: a.shape[0], cols: a.shape[1], data: a.data };
  }

  slice(a, i) {
    const [, rows, cols] = a.shape;
    const n = rows * cols;
    return { rows, cols, data: minmax(a.data.subarray(i * n, (i + 1) * n)) };
  }

  async refresh() {
    const token = ++this.refreshes;
    const source = this.source();
    const layers = {};
    try {
      for (const name of this.shown()) {
        let shown;
        if (source === "diff") {
          const [a, b] = await Promise.all([this.grid(name, ""), this.grid(name, "base_")]);
          if (!a || !b) continue;
          const data = new Float32Array(a.data.length);
          for (let i = 0; i < data.length; i++) data[i] = a.data[i] - b.data[i];
          shown = { rows: a.rows, cols: a.cols, data, style: "diff" };
        } else {
          const g = await this.grid(name, source === "base" ? "base_" : "");
          if (!g) continue;
          shown = { ...g, style: this.style(name) };
        }
        shown.canvas = this.layerCanvas(shown);
        layers[name] = shown;
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    if (token !== this.refreshes) return;
    this.layers = layers;
    this.paint();
    this.canvas.dataset.ready = "true";
  }

  layerCanvas({ rows, cols, data, style }) {
    const c = document.createElement("canvas");
    c.width = cols;
    c.height = rows;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    for (let i = 0; i < rows * cols; i++) {
      const [r, g, b, a] = colour(style, data[i]);
      img.data.set([r, g, b, a], 4 * i);
    }
    ctx.putImageData(img, 0, 0);
    return c;
  }

  fail(err) {
    this.error.textContent = err && err.message ? err.message : String(err);
    this.error.hidden = false;
  }

  // --- drawing ---------------------------------------------------------------------------------
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.stage.clientWidth;
    const h = this.stage.clientHeight;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.paint();
  }

  fit() {
    if (!this.image) return;
    const w = this.stage.clientWidth;
    const h = this.stage.clientHeight;
    const [W, H] = this.rec.image_size;
    const s = Math.min(w / W, h / H);
    this.scale = s;
    this.ox = (w - W * s) / 2;
    this.oy = (h - H * s) / 2;
    this.paint();
  }

  zoomTo(s, cx, cy) {
    const x = cx ?? this.stage.clientWidth / 2;
    const y = cy ?? this.stage.clientHeight / 2;
    const next = Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));
    this.ox = x - ((x - this.ox) * next) / this.scale;
    this.oy = y - ((y - this.oy) * next) / this.scale;
    this.scale = next;
    this.paint();
  }

  zoomBy(f, cx, cy) {
    this.zoomTo(this.scale * f, cx, cy);
  }

  paint() {
    if (!this.image) return;
    const ctx = this.canvas.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    const s = this.scale;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * s, 0, 0, dpr * s, dpr * this.ox, dpr * this.oy);
    // Drawn in the original image's pixels: the server sends a display-size copy of a big screenshot.
    const [W, H] = this.rec.image_size;
    // Smooth when shrinking; past 1:1 every image pixel stays a sharp square, as every patch always does.
    ctx.imageSmoothingEnabled = s < 1;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.image, 0, 0, W, H);
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = Number(this.opacity.value) / 100;
    const drawn = [];
    for (const [name, layer] of Object.entries(this.layers)) {
      ctx.drawImage(layer.canvas, 0, 0, layer.cols, layer.rows, 0, 0, W, H);
      drawn.push(name);
    }
    ctx.globalAlpha = 1;
    if (this.box && this.checked("box")) {
      const [x1, y1, x2, y2] = this.box;
      ctx.lineWidth = 2 / s;
      ctx.strokeStyle = "#ff00d4";
      ctx.setLineDash([6 / s, 4 / s]);
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.setLineDash([]);
      drawn.push("box");
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.checked("click")) {
      const source = this.source();
      const clicks = [];
      if (source !== "base" && this.rec.click) clicks.push([this.rec.click, false]);
      if (source !== "adapter" && this.rec.base && this.rec.base.click) clicks.push([this.rec.base.click, source === "diff"]);
      for (const [c, dashed] of clicks) this.crosshair(ctx, c.x * s + this.ox, c.y * s + this.oy, dashed);
      if (clicks.length) drawn.push("click");
    }
    this.canvas.dataset.drawn = drawn.join(",");
    this.canvas.dataset.scale = String(s);
    this.root.querySelector("#zoom-value").textContent = `${Math.round(s * 100)}%`;
  }

  crosshair(ctx, x, y, dashed) {
    ctx.save();
    ctx.lineWidth = 2;
    ctx.strokeStyle = CLICK_GREEN;
    ctx.setLineDash(dashed ? [3, 3] : []);
    ctx.beginPath();
    ctx.moveTo(x - 16, y);
    ctx.lineTo(x - 5, y);
    ctx.moveTo(x + 5, y);
    ctx.lineTo(x + 16, y);
    ctx.moveTo(x, y - 16);
    ctx.lineTo(x, y - 5);
    ctx.moveTo(x, y + 5);
    ctx.lineTo(x, y + 16);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.strokeStyle = MARKER;
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillStyle = MARKER;
    ctx.beginPath();
    ctx.arc(x, y, 2, 0, 2 * Math.PI);
    ctx.fill();
    ctx.restore();
  }

  // --- the read-out -----------------------------------------------------------------------------
  hover(sx, sy) {
    this.readout.replaceChildren();
    if (sx === null || !this.image) return;
    const [W, H] = this.rec.image_size;
    const ix = (sx - this.ox) / this.scale;
    const iy = (sy - this.oy) / this.scale;
    if (ix < 0 || iy < 0 || ix >= W || iy >= H) return;
    const px = Math.floor(ix);
    const py = Math.floor(iy);
    const pixel = el("div", `pixel x ${px}, y ${py}`, "ro-pixel");
    pixel.dataset.x = String(px);
    pixel.dataset.y = String(py);
    this.readout.append(pixel);
    const source = this.source();
    for (const [name, layer] of Object.entries(this.layers)) {
      // The patch holding the pixel's centre, as lav.render.overlay maps pixels to patches.
      const col = Math.floor(((2 * px + 1) * layer.cols) / (2 * W));
      const row = Math.floor(((2 * py + 1) * layer.rows) / (2 * H));
      const value = layer.data[row * layer.cols + col];
      const label = source === "diff" ? `${name} (adapter - base)` : `${name}${source === "base" ? " (base)" : ""}`;
      const line = el("div", `${label}: patch row ${row}, col ${col}, value ${value.toFixed(4)}`, "ro-map");
      line.dataset.map = name;
      line.dataset.row = String(row);
      line.dataset.col = String(col);
      line.dataset.value = String(value);
      line.dataset.style = layer.style;
      this.readout.append(line);
    }
  }
}
