/* The embedding map, drawn by Apache ECharts (static/vendor/echarts/, the library's
   built file shipped in the package): a scatter chart on canvas, one series per colour
   group in large mode (no DOM node per point), search hits as a series drawn on top,
   wheel zoom and drag pan (inside dataZoom), the library's tooltip (built as DOM text,
   never HTML) and its click events. What the page reports as drawn is read back from
   the chart's option, not counted here. */
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const BINS = 8;  // a numeric field is coloured in this many equal-width ranges
const PLAIN = "#3b6ea5", OTHER = "#b0b0b0", NONE = "#d9d9d9";
const HITS = "search hits";

function rampColor(t) {
  t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(t)), f = t - i;
  const c = RAMP[i].map((v, j) => Math.round(v + f * (RAMP[i + 1][j] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/* values (one per point, null where missing, or null for no colouring) -> colour
   groups [{name, color, idx: point indices}]. All numbers: BINS ranges on a ramp;
   anything else: the PALETTE.length most common values, the rest "(other)". */
function colorGroups(values, n) {
  const all = [...Array(n).keys()];
  if (!values) return [{name: "points", color: PLAIN, idx: all}];
  const groups = new Map(), add = (name, color, i) => {
    if (!groups.has(name)) groups.set(name, {name, color, idx: []});
    groups.get(name).idx.push(i);
  };
  const present = all.filter(i => values[i] !== null);
  if (present.length && present.every(i => typeof values[i] === "number")) {
    let lo = Infinity, hi = -Infinity;
    for (const i of present) { lo = Math.min(lo, values[i]); hi = Math.max(hi, values[i]); }
    const width = (hi - lo) / BINS || 1, fmt = v => Number(v.toPrecision(4));
    const bin = v => Math.min(BINS - 1, Math.floor((v - lo) / width));
    for (const i of present.sort((a, b) => values[a] - values[b])) {
      const b = bin(values[i]), name = hi === lo ? String(lo)
        : `${fmt(lo + b * width)} – ${fmt(lo + (b + 1) * width)}`;
      add(name, rampColor(hi === lo ? 0.5 : (b + 0.5) / BINS), i);
    }
  } else {
    const counts = new Map();
    for (const i of present) { const k = String(values[i]); counts.set(k, (counts.get(k) || 0) + 1); }
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
    const color = new Map(top.map(([k], j) => [k, PALETTE[j]]));
    for (const [k] of top) groups.set(k, {name: k, color: color.get(k), idx: []});
    for (const i of present) {
      const k = String(values[i]);
      if (color.has(k)) groups.get(k).idx.push(i); else add("(other)", OTHER, i);
    }
  }
  for (const i of all) if (values[i] === null) add("(none)", NONE, i);
  return [...groups.values()];
}

class MapView {
  /* container: an empty, sized element; onPick(id) when a point is clicked */
  constructor(container, onPick) {
    this.chart = window.echarts.init(container, null, {renderer: "canvas"});
    this.onPick = onPick; this.data = null; this.groups = []; this.hitIdx = [];
    this.chart.on("click", p => { const i = this.pointOf(p); if (i !== null) this.onPick(this.data.ids[i]); });
  }

  dispose() { this.chart.dispose(); }
  resize() { this.chart.resize(); }

  /* data: {ids, x, y, hover}; values: one colour value per point, or null */
  setData(data, values) {
    this.data = data;
    this.groups = colorGroups(values, data.ids.length);
    this.render(true);
  }

  setHighlight(ids) {
    const want = new Set(ids || []);
    this.hitIdx = this.data ? this.data.ids.flatMap((id, i) => want.has(id) ? [i] : []) : [];
    this.render(false);
  }

  /* The sample index behind a chart event (series = colour group, or the hits). */
  pointOf(p) {
    if (p.componentType !== "series" || p.dataIndex === undefined) return null;
    const idx = p.seriesName === HITS ? this.hitIdx : (this.groups[p.seriesIndex] || {}).idx;
    return idx && idx[p.dataIndex] !== undefined ? idx[p.dataIndex] : null;
  }

  tooltip(p) {
    const i = this.pointOf(p);
    if (i === null) return "";
    const box = document.createElement("div"), id = document.createElement("b");
    box.className = "map-tip"; id.textContent = this.data.ids[i];
    box.append(id, `: ${this.data.hover[i]}`);
    return box;
  }

  render(fresh) {
    if (!this.data) return;
    const {x, y} = this.data, n = x.length, xy = idx => idx.map(i => [x[i], y[i]]);
    const size = n > 20000 ? 2 : n > 2000 ? 3 : 5;
    const series = this.groups.map(g => ({
      type: "scatter", name: g.name, data: xy(g.idx), large: true, largeThreshold: 500,
      progressive: 0, symbolSize: size, itemStyle: {color: g.color}, emphasis: {disabled: true}}));
    series.push({type: "scatter", name: HITS, data: xy(this.hitIdx), symbolSize: 11, z: 5,
                 itemStyle: {color: "#e4002b", borderColor: "#000", borderWidth: 1.5}});
    const axis = {type: "value", scale: true, show: false};
    this.chart.setOption({
      animation: false,
      grid: {left: 12, right: 12, top: 12, bottom: 40},
      xAxis: axis, yAxis: axis,
      dataZoom: [{type: "inside", xAxisIndex: 0, filterMode: "none"},
                 {type: "inside", yAxisIndex: 0, filterMode: "none"}],
      tooltip: {trigger: "item", confine: true, formatter: p => this.tooltip(p),
                className: "map-tooltip"},
      legend: {type: "scroll", bottom: 4, data: series.filter(s => s.data.length).map(s => s.name)},
      series,
    }, {notMerge: fresh, replaceMerge: ["series"]});
  }

  /* Read back from the chart: the series it holds and which the legend shows. */
  shown() {
    const opt = this.chart.getOption(), selected = (opt.legend && opt.legend[0].selected) || {};
    return (opt.series || []).filter(s => selected[s.name] !== false);
  }

  get drawn() {
    return this.shown().filter(s => s.name !== HITS).reduce((a, s) => a + s.data.length, 0);
  }

  get highlighted() {
    return this.shown().filter(s => s.name === HITS).reduce((a, s) => a + s.data.length, 0);
  }

  get legend() {
    const opt = this.chart.getOption();
    return opt.legend ? opt.legend[0].data : [];
  }

  /* Where sample point i is on the screen (client coordinates), e.g. to click it. */
  clientXY(i) {
    const [px, py] = this.chart.convertToPixel({gridIndex: 0}, [this.data.x[i], this.data.y[i]]);
    const r = this.chart.getDom().getBoundingClientRect();
    return [r.left + px, r.top + py];
  }
}

window.VecdbMap = {MapView};
