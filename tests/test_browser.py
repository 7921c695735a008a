"""The run's HTML in a real browser: headless Chromium driven over the Chrome DevTools Protocol.

Opens index.html and every page of the session's pipeline run (test_pipeline.demo_run_once) and
checks: no console error or uncaught exception, no request to another host, every image loaded
(naturalWidth > 0), the synthetic notice visible at the top, and no JavaScript dialog (the XSS probe
``<script>alert(1)</script>`` in a title must never run).  Screenshots go to REVIEWLIB_SCREENSHOTS
(a folder) when that variable is set, else to the test's tmp folder.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import websocket  # websocket-client: a hard test dependency (pyproject's test extra), never skipped

from test_pipeline import PAGES, XSS, demo_run_once

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
if CHROMIUM is None:
    if IN_CI:  # CI sets CI=true: there the browser tests must run, a missing Chromium fails the build
        pytest.fail("CI=true but headless Chromium was not found (chromium, /usr/bin/chromium): the browser "
                    "tests must run in CI; install it with 'make browser' as root (Debian package chromium)",
                    pytrace=False)
    pytest.skip("headless Chromium not found (/usr/bin/chromium): run 'make browser' as root to install it",
                allow_module_level=True)


class Chromium:
    """A headless Chromium and one page, driven through the DevTools Protocol."""

    def __init__(self, user_data: Path):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", f"--user-data-dir={user_data}",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = user_data / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        port = port_file.read_text().splitlines()[0]
        self.browser = websocket.create_connection(f"ws://127.0.0.1:{port}{port_file.read_text().splitlines()[1]}",
                                                   timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.browser.send(json.dumps(msg))
        while True:
            reply = json.loads(self.browser.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, msg: dict) -> None:
        if "method" not in msg:
            return
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":  # dismiss it, and remember it happened
            self.browser.send(json.dumps({"id": 10**6 + len(self.events), "sessionId": self.session,
                                          "method": "Page.handleJavaScriptDialog", "params": {"accept": True}}))

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.browser.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self._event(json.loads(self.browser.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.browser.settimeout(30)

    def open(self, url: str) -> list[dict]:
        self.events = []
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        # let module scripts (itables) finish: wait until every DataTable is drawn or 10 s pass
        self.evaluate("""new Promise(done => { const t0 = Date.now(); (function poll() {
            const pending = document.querySelectorAll('table[id^=itables_]:not(.dataTable)').length;
            if (!pending || Date.now() - t0 > 10000) done(pending); else setTimeout(poll, 50); })(); })""")
        return self.events

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 6000) -> Path:
        """The whole page (up to ``max_height`` CSS pixels) as PNG."""
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        data = self.call("Page.captureScreenshot", session=True, format="png", clip=clip,
                         captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.browser.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chrome = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()


@pytest.fixture(scope="module")
def visited(browser, tmp_path_factory) -> dict[str, dict]:
    run = demo_run_once(tmp_path_factory)
    run_dir = run["result"].run_dir
    shots = Path(os.environ.get("REVIEWLIB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    pages = {"index": run_dir / "index.html", "results-index": run_dir.parent / "index.html"}
    pages.update({p: run_dir / f"{p}.html" for p in PAGES})
    out = {}
    for name, path in pages.items():
        events = browser.open(path.resolve().as_uri())
        out[name] = {
            "events": events,
            "images": browser.evaluate("Array.from(document.images).map(i => "
                                       "({src: i.getAttribute('src').slice(0, 60), w: i.naturalWidth}))"),
            "notice": browser.evaluate("""(() => { const n = document.getElementById('reviewlib-synthetic-notice');
                if (!n) return null; const r = n.getBoundingClientRect(); const s = getComputedStyle(n);
                return {text: n.innerText, top: r.top + window.scrollY, height: r.height,
                        visible: s.display !== 'none' && s.visibility !== 'hidden' && s.opacity !== '0'}; })()"""),
            "tables": browser.evaluate("document.querySelectorAll('table.dataTable').length"),
            # the XSS probe as the browser shows it: as text on the page, never as a script element
            "probe_as_text": browser.evaluate(f"document.body.innerText.includes({json.dumps(XSS)})"),
            "probe_as_script": browser.evaluate("Array.from(document.scripts).filter(s => "
                                                "s.textContent.trim() === 'alert(1)').length"),
            # the synthesis tables: where each sits, and whether any cell reaches past the window's right edge
            "synthesis": browser.evaluate("""Array.from(document.querySelectorAll('table.reviewlib-sof[id]')).map(t =>
                ({id: t.id, top: t.getBoundingClientRect().top + window.scrollY,
                  right: Math.max(...Array.from(t.querySelectorAll('th,td')).map(c => c.getBoundingClientRect().right)),
                  width: document.documentElement.clientWidth,
                  titles: t.querySelectorAll('[title]').length}))"""),
            "screenshot": browser.screenshot(shots / f"{name}.png"),
        }
    return out


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + json.dumps(p.get("args"))[:300])
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", "")[:300] + " " + p["entry"].get("url", "")[:100])
    return out


def test_no_console_errors(visited):
    assert {name: _errors(v["events"]) for name, v in visited.items() if _errors(v["events"])} == {}


def test_nothing_requested_from_another_host(visited):
    remote = {name: [e["params"]["request"]["url"] for e in v["events"]
                     if e["method"] == "Network.requestWillBeSent"
                     and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:", "blob:"))]
              for name, v in visited.items()}
    assert {k: v for k, v in remote.items() if v} == {}


def test_every_image_loaded(visited):
    broken = {name: [i for i in v["images"] if not i["w"]] for name, v in visited.items()}
    assert {k: v for k, v in broken.items() if v} == {}
    assert any(v["images"] for v in visited.values()), "the run should show figures"


def test_synthetic_notice_visible_at_the_top_of_every_page(visited):
    from reviewlib.report import synthetic_notice
    from reviewlib.protocol import load_protocol as _load
    SYNTHETIC_NOTICE = synthetic_notice(_load("car-t-autoimmune"))
    for name, v in visited.items():
        notice = v["notice"]
        assert notice and notice["visible"] and notice["height"] > 10, name
        assert notice["top"] < 200, name
        assert notice["text"].strip() == SYNTHETIC_NOTICE, name


def test_the_xss_probe_never_runs(visited):
    dialogs = {name: [e["params"].get("message") for e in v["events"] if e["method"] == "Page.javascriptDialogOpening"]
               for name, v in visited.items()}
    assert {k: v for k, v in dialogs.items() if v} == {}
    assert {name: v["probe_as_script"] for name, v in visited.items() if v["probe_as_script"]} == {}
    # the probe is on the pages that list the included record's title, shown as the text it is
    shown = sorted(name for name, v in visited.items() if v["probe_as_text"])
    assert shown, "the XSS probe title should be shown (escaped) on at least one page"


def test_interactive_tables_are_drawn_offline(visited):
    assert visited["01-search"]["tables"] >= 1
    assert visited["03-extract"]["tables"] >= 1


def test_evidence_map_cell_labels_are_readable_on_the_index(browser, tmp_path_factory):
    """Issue 16: at page width the map's cell labels were about 5 px; the index now shows it across the page."""
    from reviewlib.report import figures
    run_dir = demo_run_once(tmp_path_factory)["result"].run_dir
    browser.open((run_dir / "index.html").resolve().as_uri())
    shown = browser.evaluate("""(() => { const i = document.querySelector('img[src$="evidence_map.png"]');
        const link = i.closest('figure').querySelector('figcaption a');
        return {width: i.getBoundingClientRect().width, natural: i.naturalWidth,
                full_size: link ? link.getAttribute('href') : null}; })()""")
    label_px = figures.MAP_LABEL_PT / 72 * figures.DPI * shown["width"] / shown["natural"]
    assert label_px >= 10, f"cell labels drawn {label_px:.1f} px high in a 1280 px window"
    assert shown["full_size"] and shown["full_size"].endswith("evidence_map.png")


def test_summary_of_findings_leads_and_no_synthesis_column_is_out_of_view(visited):
    """Issue 10: the index and the report open with the summary of findings; its tables fit the window
    (1280 px) and every value carries its sources on hover."""
    for name in ("index", "04-report"):
        tables = {t["id"]: t for t in visited[name]["synthesis"]}
        sof = tables["reviewlib-summary-of-findings"]
        assert sof["titles"] > 0, name
        assert sof["top"] < 1000, f"{name}: the summary of findings should be near the top, not at {sof['top']}px"
        for t in tables.values():
            assert t["right"] <= t["width"] + 1, f"{name}: table {t['id']} reaches {t['right']}px of {t['width']}px"
    assert {"reviewlib-outcomes-table", "reviewlib-grade"} <= {t["id"] for t in visited["04-report"]["synthesis"]}
