"""The dashboard in a real headless browser (Debian's chromium-headless-shell or chromium,
driven over the DevTools protocol): the page loads without console errors, lists the
collections, a text search shows the expected top hit, the map (Apache ECharts) draws its
sampled points (counted from the chart's own option), hover and click on a point work, a
search's hits are highlighted, a read-only key sees no admin controls and a
forged admin call from the page is refused, a wrong key gets a clear message.
Screenshots of each view go to build/dashboard-screenshots/ (or $VECDB_SCREENSHOT_DIR).
Skipped where no chromium is installed (scripts/test.sh installs it)."""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from harness import ROOT, InProcessServer, rand

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium installed")
ws_client = pytest.importorskip("websockets.sync.client")

ADMIN = "br-adm-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
RO = "br-ro-a1b2c3d4e5f60718293a4b5c6d7e8f90"
DIM, N, SAMPLE = 16, 3000, 2000
TEXTS = ["The cat sleeps on the warm sofa all afternoon.",
         "Stock markets fell sharply after the interest rate decision.",
         "The football team won the championship final on penalties.",
         "A recipe for fresh pasta with tomatoes and basil."]
SHOTS = Path(os.environ.get("VECDB_SCREENSHOT_DIR", ROOT / "build" / "dashboard-screenshots"))


class Page:
    """One browser tab over the DevTools protocol: evaluate JS, wait, screenshot."""

    def __init__(self, ws_url: str):
        self._conn = ws_client.connect(ws_url, max_size=None, open_timeout=20)
        self.ws = self._conn.__enter__()
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.dialogs: list[str] = []  # messages of confirm()/prompt() dialogs, accepted
        self.prompt_answers: list[str] = []  # typed into prompt() dialogs, in order
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)

    def send(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Page.javascriptDialogOpening":  # a person clicking OK
            self.dialogs.append(params["message"])
            answer = self.prompt_answers.pop(0) if params["type"] == "prompt" else ""
            self.ws.send(json.dumps({"id": next(self.ids), "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": True, "promptText": answer}}))
        if method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params["exceptionDetails"])[:400])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(json.dumps(params["args"])[:400])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error" \
                and params["entry"]["source"] != "network":  # 401/403 answers are expected
            self.errors.append(params["entry"]["text"])

    def js(self, expression: str, strict: bool = True):
        out = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                        returnByValue=True)
        if "exceptionDetails" in out:
            if not strict:
                return None
            raise AssertionError(f"{expression}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def wait(self, expression: str, timeout: float = 60):
        """Until ``expression`` is truthy (an exception, e.g. while the page loads, is not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression, strict=False)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}; page text: "
                             f"{self.js('document.body.innerText')[:1500]}")

    def go(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def screenshot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        (SHOTS / f"{name}.png").write_bytes(base64.b64decode(data))

    def use_key(self, key: str) -> None:
        """Type a key into the page's key box and submit it, as a person would."""
        self.wait("document.readyState == 'complete' && !!document.getElementById('key-input')")
        self.js(f"document.getElementById('key-input').value = {json.dumps(key)};"
                "document.getElementById('key-form').requestSubmit()")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcessServer(tmp_path_factory.mktemp("dashb") / "data", dashboard_port=0,
                        api_keys=[{"key": ADMIN, "role": "admin"}, {"key": RO, "role": "ro"}])
    with s.client(api_key=ADMIN, timeout=300) as c:  # the first text upsert loads the model
        c.create_collection("vecs", dim=DIM, index="flat")
        c.upsert("vecs", [f"p{i}" for i in range(N)], rand(N, DIM, seed=5),
                 payloads=[{"lang": ("en", "de", "fr")[i % 3], "n": i} for i in range(N)])
        c.create_collection("docs", encoder="minilm")
        c.upsert("docs", [f"d{i}" for i in range(len(TEXTS))], texts=TEXTS)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "--no-first-run", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
            elif not line and proc.poll() is not None:
                break
        assert port, "chromium did not start"
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def page(browser):
    """A fresh tab (its own sessionStorage: no key carried over from another test)."""
    req = urllib.request.Request(f"http://127.0.0.1:{browser}/json/new?about:blank",
                                 method="PUT")
    with urllib.request.urlopen(req, timeout=20) as resp:
        target = json.loads(resp.read())
    p = Page(target["webSocketDebuggerUrl"])
    yield p
    p._conn.__exit__(None, None, None)
    urllib.request.urlopen(f"http://127.0.0.1:{browser}/json/close/{target['id']}",
                           timeout=20).read()


def url(srv, hash_: str = "") -> str:
    return f"http://127.0.0.1:{srv.app.dashboard_port}/{hash_}"


def test_wrong_key_then_admin_views(srv, page):
    page.go(url(srv))
    page.wait("!document.getElementById('banner').hidden")
    assert "missing API key" in page.js("document.getElementById('banner').textContent")
    page.use_key("not-the-key")
    page.wait("document.getElementById('banner').textContent.includes('invalid API key')")
    page.screenshot("wrong-key")

    page.use_key(ADMIN)
    page.wait("document.querySelectorAll('a.coll-link').length == 2")
    assert page.js("[...document.querySelectorAll('a.coll-link')].map(a => a.textContent)"
                   ".sort()") == ["docs", "vecs"]
    assert page.js("document.getElementById('banner').hidden")
    assert page.js("!!document.getElementById('create-form')")
    page.screenshot("status")

    page.go(url(srv, "#/c/vecs/overview"))
    page.wait("document.querySelectorAll('.admin-btn').length > 0")
    assert page.js("document.body.innerText.includes('Shards')")
    config = page.js("document.querySelector('dl.kv').innerText")
    assert re.search(r"dimension\s+16", config) and "[object" not in config
    page.screenshot("collection")

    page.go(url(srv, "#/c/vecs/points"))
    page.wait("document.querySelectorAll('#points-out tbody tr').length == 50")
    page.js("document.querySelector('#points-form textarea').value = '{\"key\": \"lang\", "
            "\"matc\": \"en\"}'; document.getElementById('points-form').requestSubmit()")
    message = page.wait("(() => { const e = document.querySelector("
                        "'#points-form .err[data-field=filter]'); "
                        "return !e.hidden && e.textContent; })()")
    assert "unknown operator 'matc'" in message
    page.screenshot("points")

    page.go(url(srv, "#/c/docs/search"))
    page.wait("!!document.querySelector('#search-form input[name=text]')")
    page.js("document.querySelector('#search-form input[name=text]').value = "
            "'a kitten napping on the couch'; document.getElementById('search-form')"
            ".requestSubmit()")
    page.wait("document.querySelectorAll('#search-out tbody tr').length == 4")
    assert page.js("document.querySelector('#search-out tbody tr a.point-link')"
                   ".textContent") == "d0"
    page.screenshot("search")

    page.go(url(srv, "#/c/vecs/search"))  # no encoder: by id; its hits are drawn on the map
    page.wait("!!document.querySelector('#search-form input[name=id]') && "
              "!document.querySelector('#search-form input[name=text]')")
    page.js("document.querySelector('#search-form input[name=id]').value = 'p1';"
            "document.getElementById('search-form').requestSubmit()")
    page.wait("document.querySelectorAll('#search-out tbody tr').length == 10")

    page.go(url(srv, "#/c/vecs/map"))
    page.wait("window.vecdbDashboard.map && window.vecdbDashboard.mapView.drawn > 0")
    assert page.js("typeof echarts.version") == "string"  # drawn by the vendored library
    assert page.js("window.vecdbDashboard.map.sampled") == SAMPLE
    assert page.js("window.vecdbDashboard.mapView.drawn") == SAMPLE  # read from the chart
    in_sample = page.js("(() => { const m = window.vecdbDashboard.map; return "
                        "window.vecdbDashboard.hits.vecs.filter(id => m.ids.includes(id))"
                        ".length; })()")
    assert in_sample > 0 and page.js("window.vecdbDashboard.mapView.highlighted") == in_sample
    # the point farthest from any other (so nothing else is under the pointer there)
    i, x, y = page.js("(() => { const v = window.vecdbDashboard.mapView, n = v.data.ids.length;"
                      "const p = v.data.ids.map((_, i) => v.clientXY(i)); let best = 0, far = -1;"
                      "for (let i = 0; i < n; i++) { let d = Infinity; for (let j = 0; j < n; "
                      "j++) if (j !== i) d = Math.min(d, (p[i][0] - p[j][0]) ** 2 + (p[i][1] - "
                      "p[j][1]) ** 2); if (d > far) { far = d; best = i; } } "
                      "return [best, ...p[best]]; })()")
    point = page.js(f"window.vecdbDashboard.map.ids[{i}]")
    page.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)  # hover: the tooltip
    page.wait(f"[...document.querySelectorAll('.map-tip')].some(t => t.textContent.startsWith("
              f"{json.dumps(point + ': ')}) && t.textContent.includes('lang'))")
    for kind in ("mousePressed", "mouseReleased"):  # a click on the point opens it
        page.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  clickCount=1)
    page.wait(f"document.querySelector('#point-detail h3')?.textContent == {json.dumps(point)}")
    page.js("document.querySelector('#point-detail .close').click()")
    page.js("{ const s = document.querySelector('#map-form select[name=color]');"
            "s.value = 'lang'; s.dispatchEvent(new Event('change')); }")
    page.wait("window.vecdbDashboard.mapView.legend.filter(e => e != 'search hits')"
              ".length == 3")
    assert sorted(page.js("window.vecdbDashboard.mapView.legend")) == [
        "de", "en", "fr", "search hits"]
    assert page.js("window.vecdbDashboard.mapView.drawn") == SAMPLE
    assert page.js("window.vecdbDashboard.mapView.highlighted") == in_sample
    page.screenshot("map")
    assert page.errors == []


def test_read_only_key_sees_no_admin_controls_and_forged_calls_fail(srv, page):
    page.go(url(srv))
    page.use_key(RO)
    page.wait("document.querySelectorAll('a.coll-link').length == 2")
    assert not page.js("!!document.getElementById('create-form')")
    page.go(url(srv, "#/c/vecs/overview"))
    page.wait("document.body.innerText.includes('Shards')")
    assert page.js("document.querySelectorAll('.admin-btn, form.admin').length") == 0
    assert "needs admin" in page.js("document.body.innerText")  # why no snapshots are shown
    page.screenshot("collection-read-only")
    forged = page.js(
        "fetch('/api/collections', {method: 'POST', headers: {'Authorization': 'Bearer ' + "
        "sessionStorage.getItem('vecdb.dashboard.key'), 'Content-Type': 'application/json'}, "
        "body: JSON.stringify({name: 'forged', dim: 4})}).then(async r => [r.status, "
        "(await r.json()).error.message])")
    assert forged[0] == 403 and "needs admin" in forged[1]
    with srv.client(api_key=ADMIN) as c:
        assert "forged" not in [x.name for x in c.list_collections()]
    assert page.errors == []


def test_admin_actions_through_the_page(srv, page):
    page.go(url(srv))
    page.use_key(ADMIN)
    page.wait("!!document.getElementById('create-form')")
    page.js("{ const f = document.getElementById('create-form'); f.elements.name.value = "
            "'fromui'; f.elements.dim.value = '6'; f.elements.index.value = 'flat'; "
            "f.requestSubmit(); }")
    page.wait("document.querySelector('h1')?.textContent == 'fromui'")
    assert page.dialogs[-1] == "Create collection fromui?"
    with srv.client(api_key=ADMIN) as c:
        assert c.describe_collection("fromui").config.dim == 6
        c.upsert("fromui", ["u1"], rand(1, 6), payloads=[{"tag": "x"}])
    page.js("{ const f = document.getElementById('payload-index-form'); "
            "f.elements.field.value = 'tag'; f.requestSubmit(); }")
    page.wait("document.body.innerText.includes('keyword') && "
              "[...document.querySelectorAll('td')].some(td => td.textContent == 'tag')")
    page.js("[...document.querySelectorAll('button')].find(b => b.textContent == "
            "'Create snapshot').click()")
    page.wait("document.querySelectorAll('button.admin-btn').length > 0 && "
              "[...document.querySelectorAll('button')].some(b => b.textContent == 'restore…')")
    page.screenshot("collection-admin")
    page.prompt_answers.append("fromui")  # typing the name confirms the drop
    page.js("[...document.querySelectorAll('button')].find(b => b.textContent == "
            "'Drop collection').click()")
    page.wait("location.hash == '#/status' && document.querySelectorAll('a.coll-link').length == 2")
    with srv.client(api_key=ADMIN) as c:
        assert "fromui" not in [x.name for x in c.list_collections()]
        assert [s.collection for s in c.list_snapshots()] == ["fromui"]
    assert page.errors == []
