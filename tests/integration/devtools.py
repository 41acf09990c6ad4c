"""Headless chromium over the DevTools protocol, for the dashboard's browser tests
(test_dashboard_browser.py) and its benchmark (bench/dashboard_bench.py): start the
browser, open a tab, evaluate JavaScript, wait, send input, take screenshots."""
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
SHOTS = Path(os.environ.get("VECDB_SCREENSHOT_DIR", ROOT / "build" / "dashboard-screenshots"))


class Page:
    """One browser tab over the DevTools protocol: evaluate JS, wait, screenshot."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect  # the [dev] extra's websockets
        self._conn = connect(ws_url, max_size=None, open_timeout=20)
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


@contextlib.contextmanager
def browser(profile: Path) -> Iterator[int]:
    """A headless chromium with its profile in ``profile``; yields its DevTools port."""
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


@contextlib.contextmanager
def tab(port: int) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) of the browser on DevTools ``port``."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank",
                                 method="PUT")
    with urllib.request.urlopen(req, timeout=20) as resp:
        target = json.loads(resp.read())
    p = Page(target["webSocketDebuggerUrl"])
    try:
        yield p
    finally:
        p._conn.__exit__(None, None, None)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{target['id']}",
                               timeout=20).read()
