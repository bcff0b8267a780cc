#!/usr/bin/env python3
"""The inspector of `cfwh dev` in a real browser: headless Chromium (Debian's package,
which `make test` installs) driven over the DevTools protocol.

1. `cfwh dev` on a free port; Chromium opens its inspector page.
2. Once the page is open and live, an event is sent, signed as Creative Force signs: the
   page shows it, with the consumer's outcome `processed`, without being reloaded.
3. Its row is clicked (a real mouse click): the detail shows its headers, the signature
   masked. "Send again" is clicked: a new row shows the same PayloadId, `duplicate`.
4. That row is clicked, then "Send with a new PayloadId": a third row, another PayloadId,
   `processed`.

--screenshot FILE writes a PNG of the page at the end (the picture of docs/local-development.md).
Needs `chromium` on PATH (or CFWH_CHROMIUM) and the websocket-client package (.venv).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import websocket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, sayer, sign, stop, wait_for_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_SECRET = "cfwh-dev-secret-not-for-production"
say = sayer("browser")


class Page:
    """One tab, over the DevTools protocol: commands answered by id, events ignored."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise SystemExit(f"browser: {method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise SystemExit(f"browser: {expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression, what, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise SystemExit(f"browser: the page never showed {what}; it shows:\n{self.js('document.body.innerText')}")

    def click(self, selector):
        """A real mouse click in the middle of the element."""
        box = self.wait(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()",
            selector,
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)


def rows(page):
    return page.js(
        "[...document.querySelectorAll('#rows tr')].map(tr => ({id: tr.dataset.id,"
        " payload: tr.querySelector('.payload').textContent, outcome: tr.querySelector('.outcome').textContent.trim()}))"
    )


def event_body():
    with open(os.path.join(ROOT, "events", "task.json"), "rb") as f:
        body = f.read()
    body = re.sub(rb'"EventDatetimeUtc"\s*:\s*\d+', b'"EventDatetimeUtc":%d' % int(time.time() * 1000), body)
    payload_id = str(uuid.uuid4())
    return re.sub(rb'"PayloadId"\s*:\s*"[^"]*"', b'"PayloadId":"%s"' % payload_id.encode(), body), payload_id


def chromium():
    for name in [os.environ.get("CFWH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]:
        if name and shutil.which(name):
            return shutil.which(name)
    raise SystemExit("browser: no chromium on PATH (make test installs Debian's package)")


def main():
    screenshot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    cfwh = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "cfwh")
    subprocess.run(["cargo", "build", "--quiet", "--package", "cfwh", "--bin", "cfwh"], cwd=ROOT, check=True)
    port = free_port()
    profile = tempfile.mkdtemp(prefix="cfwh-chromium-")
    dev_log = open(os.path.join(profile, "dev.log"), "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
    dev = subprocess.Popen([cfwh, "dev", "--addr", f"127.0.0.1:{port}"], env=env, stdout=dev_log, stderr=subprocess.STDOUT)
    browser = None
    try:
        wait_for_port(port, dev, 30, "browser: cfwh dev did not start")
        browser = subprocess.Popen(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--window-size=1400,800", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        active = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(active) or not open(active).read().strip():
            if browser.poll() is not None or time.time() > deadline:
                raise SystemExit("browser: chromium did not start")
            time.sleep(0.1)
        devtools = open(active).read().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=10) as r:
            tab = next(t for t in json.load(r) if t["type"] == "page")
        page = Page(tab["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Page.navigate", url=f"http://127.0.0.1:{port}/_cfwh/")
        page.wait("document.getElementById('status') && document.getElementById('status').textContent === 'live'",
                  "'live' (its event stream open)")
        say("the inspector is open and live")

        body, payload_id = event_body()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST", headers={
            "Content-Type": "application/json", "X-CF-Event": "Task completed", "X-CF-Signature": sign(DEV_SECRET, body)})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200, r.status
        page.wait(f"[...document.querySelectorAll('#rows tr')].some(tr => tr.querySelector('.payload').textContent"
                  f" === {json.dumps(payload_id)} && tr.querySelector('.outcome').textContent.includes('processed'))",
                  f"the event sent after it opened ({payload_id}, processed)")
        say(f"the page shows the event sent after it opened: {payload_id}, processed")

        first = next(r for r in rows(page) if r["payload"] == payload_id)
        page.click(f"#rows tr[data-id='{first['id']}']")
        page.wait(f"(document.querySelector('#detail h2') || {{}}).textContent?.startsWith('#{first['id']} ')",
                  "the detail of the delivery")
        headers = page.js("document.getElementById('headers').innerText")
        if sign(DEV_SECRET, body) in headers or "masked" not in headers:
            raise SystemExit(f"browser: the signature is not masked in the detail:\n{headers}")
        # The detail is drawn again when its record line arrives: a click meanwhile can
        # press one button and release on its replacement. Click once it is complete.
        page.wait("!!document.querySelector('#detail pre.lines')", "the record line in the detail")
        page.click("#resend")
        page.wait(f"[...document.querySelectorAll('#rows tr')].some(tr => Number(tr.dataset.id) > {first['id']}"
                  f" && tr.querySelector('.payload').textContent === {json.dumps(payload_id)}"
                  " && tr.querySelector('.outcome').textContent.includes('duplicate'))",
                  "the re-sent delivery as a duplicate")
        say("'Send again' produced a duplicate of the same PayloadId")

        again = next(r for r in rows(page) if r["payload"] == payload_id and int(r["id"]) > int(first["id"]))
        page.click(f"#rows tr[data-id='{again['id']}']")
        page.wait(f"(document.querySelector('#detail h2') || {{}}).textContent?.startsWith('#{again['id']} ')",
                  "the detail of the re-sent delivery")
        page.wait("!!document.querySelector('#detail pre.lines')", "the re-sent delivery's record line in the detail")
        page.click("#resend-fresh")
        fresh = page.wait(
            f"(() => {{ const r = [...document.querySelectorAll('#rows tr')].find(tr => Number(tr.dataset.id) > {first['id']} + 1"
            f" && tr.querySelector('.payload').textContent !== {json.dumps(payload_id)}"
            " && tr.querySelector('.outcome').textContent.includes('processed')); return r && r.querySelector('.payload').textContent; })()",
            "the delivery with a new PayloadId, processed")
        say(f"'Send with a new PayloadId' was processed as {fresh}")

        if screenshot:
            data = page.call("Page.captureScreenshot", format="png")["data"]
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(data))
            say(f"wrote {screenshot}")
    finally:
        if browser:
            browser.kill()
            browser.wait()
        stop(dev)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
