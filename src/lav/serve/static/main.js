// The pages: analyse (upload -> progress -> result), browse (saved results and evaluations), an
// evaluation's samples with filters, and the result view. Routing is by the URL's #fragment.

import { ApiError, del, enc, getJson, postForm } from "./api.js";
import { ResultView } from "./view.js";

const PAGES = ["analyse", "browse", "eval", "result"];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function pct(x) {
  return typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "";
}

function ordinal(n) {
  const s = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

class App {
  constructor() {
    this.view = new ResultView(document.getElementById("page-result"));
    this.health = null;
    this.file = null;
    this.job = null;
    this.events = null;
    this.evalData = null;
    this.maps = null; // the server's map choices: {always, optional, default}
    this.bindAnalyse();
    this.bindEval();
    window.addEventListener("hashchange", () => this.route());
  }

  async start() {
    try {
      this.health = await getJson("/api/health");
    } catch (err) {
      this.health = { model: null };
    }
    const m = this.health.model;
    document.getElementById("server-info").textContent = m
      ? `${m.model}${m.adapter ? ` + ${m.adapter}` : ""}`
      : "no model: browsing only";
    document.getElementById("no-model").hidden = !!m;
    document.getElementById("submit").disabled = !m;
    document.getElementById("compare-base").disabled = !(m && m.has_adapter);
    this.showMapChoices(m && m.maps);
    if (!location.hash) location.hash = m ? "#/analyse" : "#/browse";
    else this.route();
  }

  show(page) {
    for (const p of PAGES) document.getElementById(`page-${p}`).hidden = p !== page;
    document.getElementById("nav-analyse").classList.toggle("active", page === "analyse");
    document.getElementById("nav-browse").classList.toggle("active", page === "browse" || page === "eval");
  }

  route() {
    const hash = location.hash.replace(/^#\/?/, "");
    const [path, query] = hash.split("?");
    const [page, ...rest] = path.split("/");
    const id = decodeURIComponent(rest.join("/"));
    const params = new URLSearchParams(query || "");
    if (page === "result" && id) {
      this.show("result");
      const box = params.get("box");
      const parsed = box ? box.split(",").map(Number) : null;
      this.view.open(id, { box: parsed && parsed.length === 4 && parsed.every(Number.isFinite) ? parsed : null }).catch((err) => this.view.fail(err));
    } else if (page === "eval" && id) {
      this.show("eval");
      this.openEval(id);
    } else if (page === "browse") {
      this.show("browse");
      this.openBrowse();
    } else {
      this.show("analyse");
    }
  }

  // --- analyse --------------------------------------------------------------------------------
  bindAnalyse() {
    const drop = document.getElementById("drop");
    const input = document.getElementById("file");
    input.addEventListener("change", () => input.files[0] && this.setFile(input.files[0]));
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const f = e.dataTransfer && e.dataTransfer.files[0];
      if (f) this.setFile(f);
    });
    document.addEventListener("paste", (e) => {
      if (document.getElementById("page-analyse").hidden) return;
      for (const item of (e.clipboardData && e.clipboardData.items) || []) {
        if (item.kind === "file" && item.type.startsWith("image/")) {
          this.setFile(item.getAsFile());
          e.preventDefault();
          return;
        }
      }
    });
    document.getElementById("analyse-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    document.getElementById("cancel").addEventListener("click", () => {
      if (this.job) del(`/api/jobs/${enc(this.job)}`).catch(() => {});
    });
  }

  /** A tick box per map method a request may add; the server's --maps are ticked to begin with. */
  showMapChoices(maps) {
    const field = document.getElementById("more-maps");
    for (const label of field.querySelectorAll("label")) label.remove();
    this.maps = maps && Array.isArray(maps.optional) ? maps : null;
    field.hidden = !(this.maps && this.maps.optional.length);
    if (!this.maps) return;
    const ticked = new Set(this.maps.default || []);
    for (const name of this.maps.optional) {
      const label = el("label", null, "check");
      const box = el("input");
      box.type = "checkbox";
      box.name = "maps";
      box.value = name;
      box.checked = ticked.has(name);
      label.append(box, ` ${name}`);
      field.append(label);
    }
  }

  setFile(file) {
    this.file = file;
    document.getElementById("file-name").textContent = `${file.name || "pasted image"} (${Math.round(file.size / 1024)} KB)`;
    const preview = document.getElementById("preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
  }

  say(text) {
    const p = document.getElementById("analyse-error");
    p.textContent = text;
    p.hidden = !text;
  }

  async submit() {
    this.say("");
    const instruction = document.getElementById("instruction").value;
    if (!this.file) return this.say("Choose, drop or paste a screenshot first.");
    if (!instruction.trim()) return this.say("Type the instruction, e.g. 'Click the Save button'.");
    const limit = this.health && this.health.max_upload;
    if (limit && this.file.size > limit) return this.say(`The image is larger than ${Math.round(limit / 1048576)} MB.`);
    const form = new FormData();
    form.append("image", this.file, this.file.name || "screenshot.png");
    form.append("instruction", instruction);
    const response = document.getElementById("response").value;
    if (response.trim()) form.append("response", response);
    form.append("compare_base", document.getElementById("compare-base").checked ? "true" : "false");
    if (this.maps) {
      // Always named, so that unticking the server's --maps takes them away.
      const ticked = [...document.querySelectorAll("#more-maps input[name=maps]:checked")].map((b) => b.value);
      form.append("maps", [...(this.maps.always || []), ...ticked].join(","));
    }
    this.busy(true, "uploading");
    try {
      const { id } = await postForm("/api/analyze", form);
      this.job = id;
      this.follow(id);
    } catch (err) {
      this.busy(false);
      const retry = err instanceof ApiError && err.status === 503 ? " (the server is busy: try again in a moment)" : "";
      this.say(err.message + retry);
    }
  }

  busy(on, stage) {
    document.getElementById("progress").hidden = !on;
    document.getElementById("submit").disabled = on;
    if (stage) this.stage(stage);
  }

  stage(text) {
    document.getElementById("progress-stage").textContent = text;
  }

  describe(snap) {
    if (snap.state === "queued") return `queued: ${ordinal(snap.position)} in line`;
    if (snap.state === "running") return snap.cancelling ? "cancelling after this step" : snap.stage;
    return snap.state;
  }

  follow(id) {
    if (this.events) this.events.close();
    const events = new EventSource(`/api/jobs/${enc(id)}/events`);
    this.events = events;
    const onSnap = (e) => {
      const snap = JSON.parse(e.data);
      this.stage(this.describe(snap));
      if (snap.state === "done") {
        events.close();
        this.busy(false);
        location.hash = `#/result/${enc(snap.result)}`;
      } else if (snap.state === "failed" || snap.state === "cancelled") {
        events.close();
        this.busy(false);
        this.say(snap.state === "failed" ? snap.error : "Cancelled.");
      }
    };
    events.addEventListener("stage", onSnap);
    events.addEventListener("end", onSnap);
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) {
        this.busy(false);
        this.say("Lost the connection to the server.");
      }
    };
  }

  // --- browse ---------------------------------------------------------------------------------
  async openBrowse() {
    let data;
    try {
      data = await getJson("/api/browse");
    } catch (err) {
      return this.say(err.message);
    }
    const evals = document.querySelector("#evals tbody");
    const results = document.querySelector("#results tbody");
    evals.replaceChildren();
    results.replaceChildren();
    document.getElementById("browse-empty").hidden = data.evals.length + data.results.length > 0;
    const root = (r) => (data.roots[r.root] ? data.roots[r.root].name : String(r.root));
    for (const e of data.evals) {
      const tr = el("tr");
      const a = el("a", `${root(e)}/${e.path}`);
      a.href = `#/eval/${enc(e.id)}`;
      const td = el("td");
      td.append(a);
      const s = e.summary || {};
      const flips = s.flips || {};
      tr.append(td, el("td", s.n ?? ""), el("td", pct(s.accuracy)), el("td", pct(s.base_accuracy)), el("td", flips.fixed ?? ""), el("td", flips.broken ?? ""));
      evals.append(tr);
    }
    for (const r of data.results) {
      const tr = el("tr");
      const a = el("a", `${root(r)}/${r.path}`);
      a.href = `#/result/${enc(r.id)}`;
      const td = el("td");
      td.append(a);
      tr.append(td, el("td", r.instruction), el("td", r.response), el("td", r.has_base ? "yes" : ""));
      results.append(tr);
    }
  }

  // --- an evaluation ----------------------------------------------------------------------------
  bindEval() {
    document.getElementById("filter-outcome").addEventListener("change", () => this.renderSamples());
  }

  async openEval(id) {
    let data;
    try {
      data = await getJson(`/api/evals/${enc(id)}`);
    } catch (err) {
      document.getElementById("eval-title").textContent = err.message;
      return;
    }
    this.evalData = data;
    document.getElementById("eval-title").textContent = `Evaluation ${data.path || data.name}`;
    const s = data.summary || {};
    const parts = [`${s.n ?? data.samples.length} samples`, `accuracy ${pct(s.accuracy)}`];
    if (s.base) parts.push(`base ${pct(s.base.accuracy)}`);
    if (s.flips) parts.push(`fixed ${s.flips.fixed}, broken ${s.flips.broken}`);
    if (typeof s.mcnemar_p === "number") parts.push(`McNemar p = ${s.mcnemar_p.toPrecision(3)}`);
    // Without --save-maps lav eval keeps only the records: say why no row opens.
    if (data.samples.length && !data.samples.some((x) => x.result_id)) parts.push("no sample's maps were kept (run lav eval with --save-maps to open them here)");
    document.getElementById("eval-summary").textContent = parts.join(" · ");
    const groups = document.getElementById("group-filters");
    groups.replaceChildren();
    for (const field of data.group_fields) {
      const values = [...new Set(data.samples.map((x) => (x.groups || {})[field]).filter((v) => v !== undefined && v !== null).map(String))].sort();
      const label = el("label", `${field} `);
      const select = el("select");
      select.dataset.group = field;
      const all = el("option", "all");
      all.value = "";
      select.append(all);
      for (const v of values) {
        const o = el("option", v);
        o.value = v;
        select.append(o);
      }
      select.addEventListener("change", () => this.renderSamples());
      label.append(select);
      groups.append(label);
    }
    document.getElementById("filter-outcome").value = "all";
    this.renderSamples();
  }

  renderSamples() {
    const data = this.evalData;
    if (!data) return;
    const outcome = document.getElementById("filter-outcome").value;
    const wanted = [...document.querySelectorAll("#group-filters select")].filter((s) => s.value);
    const tbody = document.querySelector("#samples tbody");
    tbody.replaceChildren();
    let shown = 0;
    for (const x of data.samples) {
      if (outcome === "correct" && !x.correct) continue;
      if (outcome === "wrong" && x.correct) continue;
      if ((outcome === "fixed" || outcome === "broken") && x.flip !== outcome) continue;
      if (wanted.some((s) => String((x.groups || {})[s.dataset.group]) !== s.value)) continue;
      shown += 1;
      const tr = el("tr");
      tr.dataset.sample = String(x.id);
      if (x.flip) tr.dataset.flip = x.flip;
      const base = x.base && typeof x.base === "object" ? (x.base.correct ? "right" : "wrong") : "";
      const groups = Object.entries(x.groups || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
      const open = el("td");
      if (x.result_id) {
        const a = el("a", "open");
        const box = Array.isArray(x.bbox) && x.bbox.length === 4 ? `?box=${x.bbox.map(Number).join(",")}` : "";
        a.href = `#/result/${enc(x.result_id)}${box}`;
        open.append(a);
      }
      tr.append(el("td", x.id), el("td", x.instruction), el("td", x.response), el("td", x.correct ? "right" : "wrong", x.correct ? "ok" : "bad"), el("td", base + (x.flip ? ` (${x.flip})` : "")), el("td", groups), open);
      tbody.append(tr);
    }
    document.getElementById("eval-count").textContent = `${shown} of ${data.samples.length} shown`;
  }
}

new App().start();
