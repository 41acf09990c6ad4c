"""The dashboard's map in headless chromium: how long drawing N points and a zoom step
take (not a test; docs/dashboard.md, bench/RESULTS.md).

    python bench/dashboard_bench.py [--points 50000] [--dim 64] [--clusters 12]
                                    [--draws 5] [--zooms 10]

An in-process server (loopback, no API keys, dashboard on an ephemeral port) holds one
collection of ``--points`` synthetic clustered vectors (``--clusters`` Gaussian blobs,
payload ``topic`` = the blob; no model). Chromium (chromium-headless-shell or chromium)
opens its map page through the DevTools helper of the browser tests
(tests/integration/devtools.py), sets the sample to all the points and colours them by
``topic``. Timed in the page (performance.now(); the end is ECharts' ``finished`` event,
after the chart has painted), each a median over its repeats:

  new map      Draw -> painted: the server reads the sample and projects it (PCA), the
               JSON answer, the chart (once: the map is then cached on the server)
  cached map   Draw again: the request, the JSON of N points, the chart
  chart only   the chart alone: MapView.setData with the answer already in the page
  zoom step    one mouse-wheel notch over the map (a DevTools input event) -> painted

After every draw the count of drawn points is read from the page's state
(``window.vecdbDashboard.mapView.drawn``, the chart's own option) and must be N.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("", "server", "client", "tests/integration"):
    sys.path.insert(0, str(ROOT / sub))
import devtools  # noqa: E402 - tests/integration/devtools.py: the browser tests' helper
from harness import InProcessServer  # noqa: E402

# One Draw (the form's submit) timed in the page: until the answer is set and painted.
DRAW_JS = """(async () => {
  const s = window.vecdbDashboard, v = s.mapView, before = s.map, fin = [];
  const mark = () => fin.push(performance.now());
  v.chart.on("finished", mark);
  const t0 = performance.now();
  document.getElementById("map-form").requestSubmit();
  while (s.map === before || !fin.length) await new Promise(r => setTimeout(r, 2));
  v.chart.off("finished", mark);
  return fin[0] - t0;
})()"""
# The chart alone: setData (and the hits, as the page does) until painted.
CHART_JS = """(async () => {
  const s = window.vecdbDashboard, v = s.mapView, fin = [];
  const mark = () => fin.push(performance.now());
  v.chart.on("finished", mark);
  const t0 = performance.now();
  v.setData(s.map, s.map.color); v.setHighlight([]);
  while (!fin.length) await new Promise(r => setTimeout(r, 2));
  v.chart.off("finished", mark);
  return fin[0] - t0;
})()"""
# Arms a zoom measurement: the wheel event's time, then the first paint after it.
ARM_ZOOM_JS = """(() => {
  const v = window.vecdbDashboard.mapView, z = window.benchZoom = {t0: null, t1: null};
  const box = document.getElementById("map");
  box.addEventListener("wheel", () => { z.t0 = performance.now(); },
                       {capture: true, once: true});
  const mark = () => { if (z.t0 !== null && z.t1 === null) { z.t1 = performance.now();
                                                           v.chart.off("finished", mark); } };
  v.chart.on("finished", mark);
})()"""


def clustered(n: int, dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * 4
    labels = rng.integers(0, clusters, n)
    return centres[labels] + rng.standard_normal((n, dim)).astype(np.float32), labels


def load(srv: InProcessServer, a) -> None:
    vectors, labels = clustered(a.points, a.dim, a.clusters)
    with srv.client(timeout=300) as c:
        c.create_collection("bench", dim=a.dim, index="flat")
        for lo in range(0, a.points, 5000):
            hi = min(a.points, lo + 5000)
            c.upsert("bench", [f"p{i}" for i in range(lo, hi)], vectors[lo:hi],
                     payloads=[{"topic": f"t{labels[i]}"} for i in range(lo, hi)])


def drawn(page: devtools.Page, n: int) -> None:
    got = page.js("window.vecdbDashboard.mapView.drawn")
    assert got == n, f"the chart holds {got} points, not {n}"


def zoom_step(page: devtools.Page, x: float, y: float, delta: int) -> float:
    page.js(ARM_ZOOM_JS)
    page.send("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0,
              deltaY=delta)
    z = page.wait("window.benchZoom.t1 !== null && window.benchZoom", timeout=30)
    return z["t1"] - z["t0"]


def measure(page: devtools.Page, url: str, a) -> dict[str, list[float]]:
    page.go(url)
    page.wait("window.vecdbDashboard.map && window.vecdbDashboard.mapView.drawn > 0", 120)
    page.js(f"{{ const f = document.getElementById('map-form'); f.elements.sample.value = "
            f"'{a.points}'; f.elements.color.value = 'topic'; }}")
    out: dict[str, list[float]] = {"new map": [page.js(DRAW_JS)]}
    drawn(page, a.points)
    out["cached map"] = []
    for _ in range(a.draws):
        out["cached map"].append(page.js(DRAW_JS))
        drawn(page, a.points)
    out["chart only"] = []
    for _ in range(a.draws):
        out["chart only"].append(page.js(CHART_JS))
        drawn(page, a.points)
    box = page.js("(() => { const r = document.getElementById('map').getBoundingClientRect();"
                  " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
    out["zoom step"] = []
    for i in range(a.zooms):  # in, out, in, ...: the view stays around the whole map
        time.sleep(0.3)  # past the chart's own wheel throttling
        out["zoom step"].append(zoom_step(page, *box, -120 if i % 2 == 0 else 120))
    drawn(page, a.points)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--clusters", type=int, default=12)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--zooms", type=int, default=10)
    a = p.parse_args()
    if devtools.BROWSER is None:
        sys.exit("no chromium-headless-shell or chromium on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        srv = InProcessServer(Path(tmp) / "data", dashboard_port=0)
        try:
            t0 = time.perf_counter()
            load(srv, a)
            print(f"loaded {a.points} x {a.dim} in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            with devtools.browser(Path(tmp) / "chromium") as port, devtools.tab(port) as page:
                version = page.js("navigator.userAgent")
                out = measure(page, f"http://127.0.0.1:{srv.app.dashboard_port}/#/c/bench/map",
                              a)
                assert page.errors == [], page.errors
        finally:
            srv.stop()
    print(f"# {a.points:,} points ({a.dim}-d, {a.clusters} clusters, coloured by topic); "
          f"{platform.python_version()}, {version.split(')')[-1].strip()}")
    print("| step | median ms | min ms | max ms | runs |")
    print("|---|---|---|---|---|")
    for name, ms in out.items():
        print(f"| {name} | {statistics.median(ms):,.0f} | {min(ms):,.0f} | {max(ms):,.0f} "
              f"| {len(ms)} |")
    print(json.dumps({k: [round(x, 1) for x in v] for k, v in out.items()}), file=sys.stderr)


if __name__ == "__main__":
    main()
