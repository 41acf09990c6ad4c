/* vecdb dashboard: hash routes (#/status, #/c/NAME/{overview,points,search,map}),
   every call to /api/ with the API key in a header. No innerHTML with data:
   everything from the server is set as text. */
"use strict";

const KEY_STORE = "vecdb.dashboard.key";
const state = {me: null, collections: [], hits: {}, map: null, mapView: null};
window.vecdbDashboard = state;  // the page's own state (read by tests and the console)

/* ------------------------------------------------------------------ helpers */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

function fmtUptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
}

const json = v => v === null || v === undefined ? "" : JSON.stringify(v);
const isAdmin = () => state.me && state.me.role === "admin";

class ApiError extends Error {
  constructor(status, error) {
    super(error.message); this.status = status; this.code = error.code;
    this.field = error.field || null; this.requestId = error.request_id || null;
  }
}

async function api(method, path, body) {
  const headers = {"Accept": "application/json"};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers["Authorization"] = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {method, headers, cache: "no-store",
                                 body: body === undefined ? undefined : JSON.stringify(body)});
  let data;
  try { data = await res.json(); } catch (e) { data = {error: {code: String(res.status), message: res.statusText}}; }
  if (!res.ok) {
    const err = new ApiError(res.status, data.error || {message: res.statusText});
    if (res.status === 401) askForKey(err.message);
    throw err;
  }
  return data;
}

/* An error next to the field it names (data-field prefix match), else in the form's
   general slot. */
function showError(form, err) {
  clearErrors(form);
  const slots = [...form.querySelectorAll(".err[data-field]")];
  const field = err.field || "";
  const slot = slots.find(s => s.dataset.field && field.startsWith(s.dataset.field))
            || form.querySelector(".err.general") || slots[0];
  slot.textContent = err.message + (err.requestId && err.status >= 500 ? ` (request id ${err.requestId})` : "");
  slot.hidden = false;
}

function clearErrors(form) {
  for (const s of form.querySelectorAll(".err")) { s.textContent = ""; s.hidden = true; }
}

const errSlot = (field) => el("div", {class: "err", "data-field": field, hidden: true});
const generalErr = () => el("div", {class: "err general", hidden: true});

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {text: h})))),
            el("tbody", {}, rows.map(r => el("tr", {}, r.map(c => c instanceof Node ? el("td", {}, c) : el("td", {text: c === null || c === undefined ? "" : String(c)}))))));
}

function kv(pairs) {
  return el("dl", {class: "kv"}, pairs.map(([k, v]) => [el("dt", {text: k}), el("dd", {}, v instanceof Node ? v : String(v ?? "–"))]));
}

function confirmAction(message) { return window.confirm(message); }

/* ------------------------------------------------------------------ key */
function askForKey(message) {
  const b = document.getElementById("banner");
  b.textContent = message ? `${message}: enter an API key above.` : "Enter an API key above.";
  b.hidden = false;
  document.getElementById("key-input").focus();
}

async function whoami() {
  try {
    state.me = await api("GET", "/api/whoami");
    document.getElementById("banner").hidden = true;
  } catch (e) {
    state.me = null;
    if (!(e instanceof ApiError && e.status === 401)) banner(e);
  }
  const who = document.getElementById("who");
  who.textContent = state.me ? (state.me.auth ? `${state.me.key} · ${state.me.role}${state.me.collections ? " · " + state.me.collections.join(", ") : ""}` : "no keys configured") : "";
  return state.me;
}

function banner(e) {
  const b = document.getElementById("banner");
  b.textContent = e.message; b.hidden = false;
}

/* ------------------------------------------------------------------ views */
function nav(name, tab) {
  const n = document.getElementById("nav");
  n.replaceChildren(el("a", {href: "#/status", class: name ? "" : "on", text: "Status"}));
  if (name) {
    for (const t of ["overview", "points", "search", "map"]) {
      n.append(el("a", {href: `#/c/${encodeURIComponent(name)}/${t}`, class: t === tab ? "on" : "", text: t === "overview" ? name : t}));
    }
  }
}

async function viewStatus(main) {
  nav(null);
  const s = await api("GET", "/api/status");
  const cards = el("div", {class: "cards"},
    [["version", s.version ?? "–"], ["uptime", s.uptime_s === null ? "–" : fmtUptime(s.uptime_s)], ["collections", s.collections.length],
     ["points", s.points.toLocaleString()], ["memory (RSS)", fmtBytes(s.memory.rss_bytes)],
     ["GPU memory", fmtBytes(s.memory.gpu_bytes)], ["ready", s.ready === null ? "–" : s.ready ? "yes" : "recovering"]]
      .map(([k, v]) => el("div", {class: "card"}, el("div", {class: "muted", text: k}), el("div", {class: "big", text: String(v)}))));
  main.replaceChildren(el("h1", {text: "Server"}), cards, el("h2", {text: "Collections"}),
    s.collections.length ? table(["name", "points", "dim", "metric", "index", "encoder", "shards", "index state", "memory", "on disk"],
      s.collections.map(c => c.error ? [c.name, c.error] : [
        el("a", {href: `#/c/${encodeURIComponent(c.name)}/overview`, class: "coll-link", text: c.name}),
        c.points.toLocaleString(), c.dim, c.metric, c.index, c.encoder || "–", c.shards, c.index_state, fmtBytes(c.memory_bytes), fmtBytes(c.bytes_on_disk)]))
      : el("p", {class: "muted", text: "No collections yet."}));
  if (s.cluster) {
    main.append(el("h2", {text: "Cluster nodes"}), s.cluster.error ? el("p", {class: "muted", text: s.cluster.error})
      : table(["node", "address", "zone", "replicas", "primaries"], s.cluster.nodes.map(n => [n.id, n.address, n.zone, n.replicas, n.primaries])));
  }
  if (isAdmin()) main.append(createCollectionForm());
}

function createCollectionForm() {
  const f = el("form", {class: "admin", id: "create-form"},
    el("h2", {text: "Create a collection"}),
    el("label", {}, "name ", el("input", {name: "name", required: true})), errSlot("name"),
    el("label", {}, "dim ", el("input", {name: "dim", type: "number", min: 1, placeholder: "(from the encoder)"})), errSlot("dim"),
    el("label", {}, "metric ", el("select", {name: "metric"}, ["cosine", "ip", "l2"].map(m => el("option", {text: m})))),
    el("label", {}, "index ", el("select", {name: "index"}, ["auto", "flat", "hnsw", "ivf_flat", "ivf_pq"].map(m => el("option", {text: m})))),
    errSlot("index"),
    el("label", {}, "shards ", el("input", {name: "shards", type: "number", min: 1, placeholder: "default"})), errSlot("shards"),
    el("label", {}, "encoder ", el("input", {name: "encoder", placeholder: "e.g. minilm (optional)"})), errSlot("encoder"),
    el("button", {type: "submit", text: "Create"}), generalErr());
  f.addEventListener("submit", async ev => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(f));
    if (!confirmAction(`Create collection ${d.name}?`)) return;
    try {
      await api("POST", "/api/collections", {name: d.name, dim: d.dim || null, metric: d.metric, index: d.index,
                                             shards: d.shards || null, encoder: d.encoder || null});
      location.hash = `#/c/${encodeURIComponent(d.name)}/overview`;
    } catch (e) { showError(f, e); }
  });
  return f;
}

async function viewOverview(main, name) {
  const c = await api("GET", `/api/collections/${encodeURIComponent(name)}`);
  const cfg = c.config, defaults = new Set(c.default_index_params);
  main.replaceChildren(el("h1", {text: cfg.name}),
    kv([["points", c.points.toLocaleString()], ["dimension", cfg.dim], ["metric", cfg.metric], ["index", cfg.index],
        ["shards", cfg.shards], ["encoder", cfg.encoder || "–"], ["device", cfg.device], ["index state", c.index_state],
        ["quantization", cfg.quantization ? `${cfg.quantization} (rescore ${cfg.rescore || "default"})` : "none"],
        ["replication", cfg.replication_factor > 1 ? `${cfg.replication_factor} copies, write concern ${cfg.write_concern}` : "1 copy"],
        ["on disk", fmtBytes(c.bytes_on_disk)], ["memory (host)", fmtBytes(c.memory_bytes)], ["GPU memory", fmtBytes(c.gpu_memory_bytes)],
        ["aliases", c.aliases.length ? c.aliases.join(", ") : "–"]]),
    el("h2", {text: "Effective index parameters"}),
    Object.keys(c.effective_index_params).length ? table(["parameter", "value", "source"],
      Object.entries(c.effective_index_params).map(([k, v]) => [k, v, defaults.has(k) ? "default" : "set at creation"]))
      : el("p", {class: "muted", text: "none (flat: exact search)"}),
    el("h2", {text: "Shards"}),
    table(["#", "points", "index state", "index type", "memory", "applied seq", "checkpoint seq", "deleted pending", "device", "built params"],
      c.shards.map((s, i) => [i, s.points, s.index_state, s.index_type, fmtBytes(s.memory_bytes), s.applied_seq, s.checkpoint_seq, s.deleted_pending, s.device, json(s.built_params)])),
    el("h2", {text: "Payload indexes"}),
    Object.keys(c.payload_indexes).length ? table(["field", "type", "state"],
      Object.entries(c.payload_indexes).map(([k, v]) => [k, v.type, v.state])) : el("p", {class: "muted", text: "none"}),
    el("h2", {text: "Snapshots"}),
    c.snapshots === null ? el("p", {class: "muted", text: c.snapshots_error})
      : c.snapshots.length ? table(["name", "created", "points", "size", ""], c.snapshots.map(s => [s.name,
          new Date(s.created_at * 1000).toISOString(), s.points, fmtBytes(s.bytes),
          isAdmin() ? el("button", {class: "admin-btn", text: "restore…", onclick: () => restore(s)}) : ""]))
        : el("p", {class: "muted", text: "none"}));
  if (isAdmin()) main.append(adminPanel(name));
}

async function restore(snap) {
  const target = window.prompt(`Restore snapshot ${snap.name} as a new collection named:`, `${snap.collection}_restored`);
  if (!target) return;
  try {
    await api("POST", `/api/snapshots/${encodeURIComponent(snap.name)}/restore`, {collection: target});
    location.hash = `#/c/${encodeURIComponent(target)}/overview`;
  } catch (e) { banner(e); }
}

function adminPanel(name) {
  const base = `/api/collections/${encodeURIComponent(name)}`;
  const idx = el("form", {class: "admin", id: "payload-index-form"}, el("h2", {text: "Admin"}),
    el("label", {}, "payload index on field ", el("input", {name: "field", required: true})), errSlot("field"),
    el("select", {name: "type"}, ["keyword", "integer", "float", "bool", "datetime", "text"].map(t => el("option", {text: t}))),
    el("button", {type: "submit", class: "admin-btn", text: "Create payload index"}), generalErr());
  idx.addEventListener("submit", async ev => {
    ev.preventDefault();
    const d = Object.fromEntries(new FormData(idx));
    if (!confirmAction(`Create a ${d.type} payload index on ${d.field}?`)) return;
    try { await api("POST", `${base}/payload-indexes`, d); route(); } catch (e) { showError(idx, e); }
  });
  const actions = el("form", {class: "admin"}, generalErr(),
    el("button", {type: "button", class: "admin-btn", text: "Create snapshot", onclick: async () => {
      if (!confirmAction(`Create a snapshot of ${name}?`)) return;
      try { await api("POST", `${base}/snapshots`, {}); route(); } catch (e) { showError(actions, e); }
    }}),
    el("button", {type: "button", class: "admin-btn danger", text: "Drop collection", onclick: async () => {
      if (window.prompt(`Type ${name} to drop it and all its points:`) !== name) return;
      try { await api("DELETE", base); location.hash = "#/status"; } catch (e) { showError(actions, e); }
    }}));
  return el("div", {}, idx, actions);
}

function pointsTable(points, extraCols) {
  return table(["id", ...(extraCols || []).map(c => c[0]), "payload", "text"],
    points.map(p => [el("a", {href: "#", class: "point-link", text: p.id, onclick: ev => { ev.preventDefault(); openPoint(p.id); }}),
                     ...(extraCols || []).map(c => c[1](p)), el("code", {text: json(p.payload)}), p.text || ""]));
}

let currentCollection = null;
async function openPoint(id) {
  const p = await api("GET", `/api/collections/${encodeURIComponent(currentCollection)}/points/${encodeURIComponent(id)}`);
  const box = document.getElementById("point-detail") || el("aside", {id: "point-detail"});
  box.replaceChildren(el("button", {class: "close", text: "×", onclick: () => box.remove()}), el("h3", {text: p.id}),
    el("pre", {text: JSON.stringify(p.payload, null, 2)}), p.text ? el("p", {text: p.text}) : "",
    el("button", {text: "more like this", onclick: () => {
      box.remove(); state.pendingSearch = {id: p.id};
      const target = `#/c/${encodeURIComponent(currentCollection)}/search`;
      if (location.hash === target) { runSearch(state.pendingSearch); state.pendingSearch = null; } else location.hash = target;
    }}));
  document.body.append(box);
}

async function viewPoints(main, name) {
  const f = el("form", {id: "points-form"},
    el("label", {}, "filter ", el("textarea", {name: "filter", rows: 2, cols: 60, placeholder: '{"must": [{"key": "lang", "match": "en"}]}'})),
    errSlot("filter"), el("label", {}, "page ", el("input", {name: "limit", type: "number", value: 50, min: 1})), errSlot("limit"),
    el("button", {type: "submit", text: "Scroll"}), generalErr());
  const out = el("div", {id: "points-out"});
  let cursor = null;
  const load = async (more) => {
    clearErrors(f);
    const d = Object.fromEntries(new FormData(f));
    try {
      const r = await api("POST", `/api/collections/${encodeURIComponent(name)}/points`,
                          {filter: d.filter, limit: d.limit, cursor: more ? cursor : null});
      cursor = r.next_cursor;
      if (!more) out.replaceChildren(el("p", {class: "muted", text: `${r.count.toLocaleString()} matching points`}));
      out.append(pointsTable(r.points));
      if (cursor) out.append(el("button", {text: "next page", onclick: ev => { ev.target.remove(); load(true); }}));
    } catch (e) { showError(f, e); }
  };
  f.addEventListener("submit", ev => { ev.preventDefault(); load(false); });
  main.replaceChildren(el("h1", {text: `${name}: points`}), f, out);
  load(false);
}

let searchForm = null;
async function viewSearch(main, name) {
  const info = state.collections.find(c => c.name === name);
  const byText = info && info.encoder;
  const f = el("form", {id: "search-form"},
    byText ? el("label", {}, "text ", el("input", {name: "text", size: 50, placeholder: "what to look for"})) : null, errSlot("text"),
    el("label", {}, byText ? "or point id " : "point id ", el("input", {name: "id", size: 24})), errSlot("id"),
    el("label", {}, "k ", el("input", {name: "k", type: "number", value: 10, min: 1})), errSlot("k"),
    el("label", {}, "ef_search ", el("input", {name: "ef_search", type: "number", min: 1, placeholder: "index default"})), errSlot("ef_search"),
    el("label", {}, "filter ", el("textarea", {name: "filter", rows: 2, cols: 60})), errSlot("filter"),
    el("button", {type: "submit", text: "Search"}), generalErr());
  searchForm = f;
  f.addEventListener("submit", ev => { ev.preventDefault(); runSearch(null); });
  main.replaceChildren(el("h1", {text: `${name}: search`}),
    el("p", {class: "muted", text: byText ? "By text (embedded by the collection's encoder) or by a stored point's id (more like this)." : "This collection has no encoder: search by a stored point's id (more like this)."}),
    f, el("div", {id: "search-out"}));
  if (state.pendingSearch) { const preset = state.pendingSearch; state.pendingSearch = null; await runSearch(preset); }
}

async function runSearch(preset) {
  const f = searchForm, name = currentCollection;
  if (!f || !document.body.contains(f)) return;
  if (preset) { for (const [k, v] of Object.entries(preset)) f.elements[k].value = v; if (f.elements.text) f.elements.text.value = ""; }
  clearErrors(f);
  const d = Object.fromEntries(new FormData(f));
  const body = {k: d.k, ef_search: d.ef_search || null, filter: d.filter};
  if (d.text) body.text = d.text; else body.id = d.id;
  const out = document.getElementById("search-out");
  try {
    const r = await api("POST", `/api/collections/${encodeURIComponent(name)}/search`, body);
    state.hits[name] = r.hits.map(h => h.id);
    out.replaceChildren(el("p", {class: "muted"}, `${r.hits.length} hits · `,
        el("a", {href: `#/c/${encodeURIComponent(name)}/map`, text: "show them on the map"})),
      pointsTable(r.hits, [["score", h => h.score === null ? "" : h.score.toFixed(4)],
                           ["", h => el("button", {class: "mlt", text: "more like this", onclick: () => runSearch({id: h.id})})]]));
  } catch (e) { showError(f, e); }
}

async function viewMap(main, name) {
  const methods = (state.me && state.me.map_methods) || ["pca"];
  const f = el("form", {id: "map-form"},
    el("label", {}, "sample ", el("input", {name: "sample", type: "number", value: 2000, min: 1, max: 50000})), errSlot("sample"),
    el("label", {}, "projection ", el("select", {name: "method"}, methods.map(m => el("option", {text: m})))), errSlot("method"),
    el("label", {}, "colour by ", el("select", {name: "color"}, el("option", {value: "", text: "(none)"}))),
    el("label", {}, "filter ", el("textarea", {name: "filter", rows: 1, cols: 50})), errSlot("filter"),
    el("button", {type: "submit", text: "Draw"}), generalErr());
  const box = el("div", {id: "map"}), note = el("p", {class: "muted"});
  main.replaceChildren(el("h1", {text: `${name}: map`}), f, note, box);
  if (state.mapView) state.mapView.dispose();
  const view = new window.VecdbMap.MapView(box, id => openPoint(id));
  state.mapView = view;
  const load = async () => {
    clearErrors(f);
    const d = Object.fromEntries(new FormData(f));
    note.textContent = "projecting…";
    try {
      let r, refresh = true;  // the first request may start a new map, polls keep to it
      for (;;) {  // the projection runs in the background; poll until it is done
        r = await api("POST", `/api/collections/${encodeURIComponent(name)}/map`,
                      {sample: d.sample, method: d.method, color: d.color, filter: d.filter, refresh});
        refresh = false;
        if (r.state !== "running" || !document.body.contains(box)) break;
        note.textContent = `projecting ${r.sampled} points (${r.method})…`;
      }
      if (r.state === "failed") throw new ApiError(500, {message: r.error});
      state.map = r;
      const sel = f.elements.color;
      if (sel.options.length === 1) for (const fld of r.fields) sel.append(el("option", {text: fld}));
      note.textContent = `${r.sampled.toLocaleString()} of ${r.points.toLocaleString()} points (${r.method}); wheel to zoom, drag to pan, click a point to open it, click a legend entry to hide its points`;
      view.setData(r, r.color);
      view.setHighlight(state.hits[name]);
    } catch (e) { note.textContent = ""; showError(f, e); }
  };
  f.addEventListener("submit", ev => { ev.preventDefault(); load(); });
  f.elements.color.addEventListener("change", () => load());
  load();  // not awaited: the projection may take a while, navigation must not wait
}

/* ------------------------------------------------------------------ routing */
/* One route at a time: a key typed while the first page load still waits for its
   answer must not be overtaken by that older answer. */
let routing = Promise.resolve();
function route() {
  routing = routing.then(showRoute, showRoute);
  return routing;
}

async function showRoute() {
  const main = document.getElementById("main");
  if (!state.me && !(await whoami())) {
    main.replaceChildren(el("p", {class: "muted", text: "This server needs an API key."}));
    nav(null);
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "c" && parts[1]) {
      currentCollection = parts[1];
      const tab = parts[2] || "overview";
      nav(parts[1], tab);
      if (!state.collections.some(c => c.name === parts[1])) state.collections = (await api("GET", "/api/collections")).collections;
      main.replaceChildren(el("p", {class: "muted", text: "Loading…"}));
      await ({overview: viewOverview, points: viewPoints, search: viewSearch, map: viewMap}[tab] || viewOverview)(main, parts[1]);
    } else {
      state.collections = (await api("GET", "/api/collections")).collections;
      await viewStatus(main);
    }
  } catch (e) {
    main.replaceChildren(el("div", {class: "err page", text: e.message}));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", ev => {
    ev.preventDefault();
    const input = document.getElementById("key-input");
    if (input.value) sessionStorage.setItem(KEY_STORE, input.value);
    input.value = ""; state.me = null; state.collections = []; route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE); state.me = null; state.collections = []; route();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (state.mapView) state.mapView.resize(); });
  route();
});
