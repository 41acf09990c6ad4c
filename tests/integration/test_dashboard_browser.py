"""The dashboard in a real headless browser (Debian's chromium-headless-shell or chromium,
driven over the DevTools protocol): the page loads without console errors, lists the
collections, a text search shows the expected top hit, the map (Apache ECharts) draws its
sampled points (counted from the chart's own option), hover and click on a point work, a
search's hits are highlighted, a read-only key sees no admin controls and a
forged admin call from the page is refused, a wrong key gets a clear message.
Screenshots of each view go to build/dashboard-screenshots/ (or $VECDB_SCREENSHOT_DIR).
Skipped where no chromium is installed (scripts/test.sh installs it). The DevTools
helper is devtools.py (the benchmark bench/dashboard_bench.py uses it too)."""
from __future__ import annotations

import json
import re

import pytest

import devtools
from harness import InProcessServer, rand

pytestmark = pytest.mark.skipif(devtools.BROWSER is None, reason="no chromium installed")
pytest.importorskip("websockets.sync.client")

ADMIN = "br-adm-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
RO = "br-ro-a1b2c3d4e5f60718293a4b5c6d7e8f90"
DIM, N, SAMPLE = 16, 3000, 2000
TEXTS = ["The cat sleeps on the warm sofa all afternoon.",
         "Stock markets fell sharply after the interest rate decision.",
         "The football team won the championship final on penalties.",
         "A recipe for fresh pasta with tomatoes and basil."]


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
def chromium(tmp_path_factory):
    with devtools.browser(tmp_path_factory.mktemp("chromium")) as port:
        yield port


@pytest.fixture
def page(chromium):
    """A fresh tab (its own sessionStorage: no key carried over from another test)."""
    with devtools.tab(chromium) as p:
        yield p


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
