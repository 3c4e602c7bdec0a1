"""The HTML leaderboard in headless Chromium: loads without console errors, sorting a column
reorders rows, a screenshot is written. CI installs Debian's ``chromium``; elsewhere this skips.

Chromium is driven over ``--remote-debugging-pipe`` (DevTools protocol as NUL-terminated JSON
on fds 3/4), so no websocket or webdriver package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (CI: `apt-get install -y chromium`); HTML check skipped"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--window-size=1280,900"]


class DevTools:
    """Minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, exe: str, profile: str) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def child() -> None:  # the pipe ends must be fds 3 (commands) and 4 (replies) in Chromium
            a, b = os.dup2(to_chrome_r, 100), os.dup2(from_chrome_w, 101)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"], preexec_fn=child,
                                     close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next = 0
        self.events: list[dict] = []
        self._replies: dict[int, dict] = {}
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._r, 65536)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._q.put(json.loads(msg))

    def _pump(self, timeout: float) -> None:
        msg = self._q.get(timeout=timeout)
        if "id" in msg:
            self._replies[msg["id"]] = msg
        else:
            self.events.append(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self._next not in self._replies:
            self._pump(max(0.01, deadline - time.monotonic()))
        reply = self._replies.pop(self._next)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self._pump(max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 — closing best-effort
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    from hydra import compose, initialize_config_dir

    from srarena.harness.reports import synthetic
    from srarena.harness.reports.app import run_report

    root = tmp_path_factory.mktemp("html")
    uri = synthetic.demo_store(root)
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("report", overrides=[f"tracking.uri={uri}", f"out_dir={root / 'reports'}",
                                           f"paths.outputs={root}", "stats.n_boot=200",
                                           # only the comparison grids behind the thumbnails, no plots
                                           "figures.perception_distortion.y=[]", "figures.quality_vs_steps.metrics=[]",
                                           "figures.quality_vs_flops.metrics=[]"])
    assert run_report(cfg) == 0
    return root / "reports"


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            out.append(json.dumps(p.get("exceptionDetails", {}))[:500])
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(json.dumps(p.get("args", []))[:500])
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(p["entry"].get("text", "")[:500])
    return out


def test_leaderboard_html_in_headless_chromium(report_dir):
    page = report_dir / "leaderboard.html"
    html = page.read_text()
    assert "<script>" in html and "http://" not in html.split("<body>")[1].split("store sqlite")[0]
    profile = tempfile.mkdtemp(prefix="srarena-chromium-")
    cdp = DevTools(CHROMIUM, profile)
    try:
        target = next(t for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        sid = cdp.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            cdp.send(f"{domain}.enable", session=sid)
        cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
        cdp.wait_event("Page.loadEventFired")

        def js(expr: str):
            r = cdp.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=sid)
            assert "exceptionDetails" not in r, r
            return r["result"].get("value")

        assert js("document.querySelectorAll('.tab').length") == 2
        assert js("document.querySelectorAll('.panel.active').length") == 1
        assert js("document.querySelectorAll('.panel.active img.thumb').length") == 3
        assert js("document.querySelector('.panel.active a').getAttribute('href')").startswith("comparisons/")
        col = "Array.from(document.querySelectorAll('.panel.active thead th')).findIndex(h => h.textContent.startsWith('LPIPS'))"
        order = "Array.from(document.querySelectorAll('.panel.active tbody tr')).map(r => r.cells[0].textContent)"
        before = js(order)
        assert before == ["bicubic", "sr3", "ssmoe"]
        rect = js(f"(() => {{const h = document.querySelectorAll('.panel.active thead th')[{col}];"
                  "const r = h.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()")
        for kind in ("mousePressed", "mouseReleased"):  # a real click on the LPIPS header
            cdp.send("Input.dispatchMouseEvent", {"type": kind, "x": rect[0], "y": rect[1], "button": "left", "clickCount": 1},
                     session=sid)
        assert js(order) == ["ssmoe", "sr3", "bicubic"]  # ascending LPIPS: best first
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=sid)["data"]
        out = report_dir / "leaderboard_screenshot.png"
        out.write_bytes(base64.b64decode(shot))
        assert out.stat().st_size > 5000
        print(f"screenshot: {out}")
        # clicking the second tab shows the other dataset
        js("document.querySelectorAll('.tab')[1].click()")
        assert js("document.querySelector('.panel.active').id") == "panel-1"
        assert _errors(cdp.events) == []
    finally:
        cdp.close()
        shutil.rmtree(profile, ignore_errors=True)
