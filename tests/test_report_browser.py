"""The HTML report in a real browser: Debian's headless Chromium, driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: no driver, no websocket, no download).

It counts every console error, uncaught exception, dialog and network request while the
report loads and while each section is opened, and checks in the page itself that hostile
evidence text renders as text. Skipped when ``chromium`` is not installed; CI installs
Debian's package and sets ``IRKIT_REQUIRE_CHROMIUM=1``, which turns the skip into a
failure. Run as a module from the checkout, it writes the screenshot of the README:

    python -m tests.test_report_browser CASE docs/report.png
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_report import hostile_case, scanned_corpus  # noqa: F401 (the fixtures)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def chromium() -> str | None:
    """Debian's chromium (or $IRKIT_CHROMIUM), if installed."""
    return os.environ.get("IRKIT_CHROMIUM") or shutil.which("chromium")


class Browser:
    """A headless Chromium on a DevTools pipe, one page, every event it reports kept."""

    def __init__(self, binary: str, width: int = 1366, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="irkit-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def pipes() -> None:  # fd 3: what Chromium reads, fd 4: what it writes
            read = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pipes,  # the test process runs no other thread
            pass_fds=(3, 4),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        event = dict(json.loads(message))
        if event.get("method") == "Page.javascriptDialogOpening":
            # Counted (problems), then dismissed: an open dialog would stall the page.
            self._next += 1
            dismiss = {
                "id": self._next,
                "method": "Page.handleJavaScriptDialog",
                "params": {"accept": False},
                "sessionId": event.get("sessionId"),
            }
            os.write(self._to_chrome, json.dumps(dismiss).encode() + b"\0")
        return event

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events meanwhile are kept)."""
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(60)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self.send(method, self.session, **params)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        """Until the page reports ``method`` (e.g. ``Page.loadEventFired``)."""
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            event = self._read(max(deadline - time.monotonic(), 0.1))
            if "method" in event:
                self.events.append(event)

    def open(self, url: str) -> None:
        """Load a page and wait for its load event."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (the test's own code, not the page's)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, target: Path, full: bool = False) -> None:
        """A PNG of the viewport (or the whole page)."""
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full)
        target.write_bytes(base64.b64decode(shot["data"]))

    def problems(self, page_url: str) -> dict[str, list[str]]:
        """Console errors, exceptions, dialogs and requests other than the page itself."""
        out: dict[str, list[str]] = {"console": [], "exceptions": [], "dialogs": [], "requests": []}
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out["console"].append(json.dumps(params.get("args"))[:300])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out["console"].append(params["entry"].get("text", "")[:300])
            elif method == "Runtime.exceptionThrown":
                out["exceptions"].append(json.dumps(params)[:300])
            elif method == "Page.javascriptDialogOpening":
                out["dialogs"].append(params.get("message", ""))
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != page_url:
                    out["requests"].append(url)
        return out

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture()
def browser() -> Iterator[Browser]:
    binary = chromium()
    if binary is None:
        if os.environ.get("IRKIT_REQUIRE_CHROMIUM") == "1":  # .ci/run installs it
            pytest.fail("chromium is not installed and IRKIT_REQUIRE_CHROMIUM=1")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


#: Opens every <details> of the page, so what they hold is rendered too.
OPEN_ALL = "document.querySelectorAll('details').forEach(d => d.open = true); true"


def _page_url(path: Path) -> str:
    return path.resolve().as_uri()


def _load(browser: Browser, page: Path) -> str:
    """Open a report and every <details> in it; its URL."""
    url = _page_url(page)
    browser.open(url)
    assert browser.evaluate(OPEN_ALL) is True
    browser.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")
    return url


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_report_loads_clean_in_chromium(
    request: pytest.FixtureRequest, browser: Browser, tmp_path: Path
) -> None:
    from irkit.report import write_report

    page = tmp_path / "report.html"
    written = write_report(request.getfixturevalue("scanned_corpus"), page)
    url = _load(browser, page)
    assert browser.problems(url) == {"console": [], "exceptions": [], "dialogs": [], "requests": []}
    # Everything rendered: every finding, the charts drawn at their size, the style applied.
    assert browser.evaluate("document.querySelectorAll('details.finding').length") == (
        written.findings_shown
    )
    width = "document.querySelector('#overview').getBoundingClientRect().width"
    assert browser.evaluate(width) > 800
    assert browser.evaluate("document.querySelectorAll('#overview rect').length") > 100
    assert browser.evaluate("getComputedStyle(document.querySelector('nav')).position") == "sticky"
    browser.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


#: Checks run in the page: what an injection would have left behind.
INJECTED = """({
  canary: typeof window.__irkit_pwned,
  scripts: document.scripts.length,
  embedded: document.querySelectorAll(
      'img,iframe,object,embed,textarea,form,input,svg image').length,
  styles: document.querySelectorAll('style').length,
  handlers: [...document.querySelectorAll('*')].filter(
      e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
  links: [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href'))
      .filter(h => !/^#[a-z]+(-[0-9]+)?$/.test(h)),
  shown: getComputedStyle(document.querySelector('main')).display,
  text: document.body.innerText,
})"""


def _assert_inert(browser: Browser, page: Path) -> None:
    from tests.test_report import HOSTILE

    url = _load(browser, page)
    found = browser.evaluate(INJECTED)
    assert found["canary"] == "undefined"
    assert (found["scripts"], found["embedded"], found["handlers"]) == (0, 0, 0)
    assert found["styles"] == 1 and found["shown"] == "block"
    assert found["links"] == []
    for name, value in HOSTILE.items():
        if name != "bidi":
            assert value in found["text"], name
    assert "invoice\\u202egpj.exe" in found["text"] and "\u202e" not in found["text"]
    assert browser.problems(url) == {"console": [], "exceptions": [], "dialogs": [], "requests": []}


def test_hostile_evidence_renders_as_text_and_runs_nothing(
    request: pytest.FixtureRequest, browser: Browser
) -> None:
    _assert_inert(browser, request.getfixturevalue("hostile_case") / "report.html")


def test_escaping_holds_without_the_policy(
    request: pytest.FixtureRequest, browser: Browser, tmp_path: Path
) -> None:
    """The policy is the second wall: with it cut out of the page, nothing runs either."""
    page = (request.getfixturevalue("hostile_case") / "report.html").read_text()
    policy = r'<meta http-equiv="Content-Security-Policy"[^>]*>\n'
    bare, cut = re.subn(policy, "", page)
    assert cut == 1
    (tmp_path / "bare.html").write_text(bare)
    _assert_inert(browser, tmp_path / "bare.html")


if __name__ == "__main__":  # the screenshot of the README: CASE OUT.png
    from irkit.report import write_report

    case, out = Path(sys.argv[1]), Path(sys.argv[2])
    binary = chromium()
    if binary is None:
        sys.exit("chromium is not installed")
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        write_report(case, page)
        shooter = Browser(binary, width=1280, height=1000)
        try:
            shooter.open(_page_url(page))
            shooter.screenshot(out)
            print(shooter.problems(_page_url(page)))
        finally:
            shooter.close()
