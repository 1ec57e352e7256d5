#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol against a running cluster.

Loads the dashboard of one node, checks that the rendered page shows the expected
number of alive nodes and a key written through the API on every node, writes a key
through the page's own form and watches it reach every node, saves a screenshot, then
SIGKILLs the process given by --kill-pid and checks that the open page marks its node
dead. Exits non-zero with a message on the first failed check.

Only 127.0.0.1 is contacted. Needs the `websocket-client` package.
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # websocket-client

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def log(msg):
    print(f"browser-test: {msg}", flush=True)


class Fail(Exception):
    pass


def http_json(url, method="GET", body=None, timeout=3):
    req = urllib.request.Request(url, method=method, data=body)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Page:
    """A minimal DevTools client for one page target."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise Fail(f"{method} failed: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise Fail(f"page script failed: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, what, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.eval(expression)
            if last:
                return last
            time.sleep(0.2)
        raise Fail(f"timed out after {timeout}s waiting for: {what} (last: {last!r})")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def start_chromium(chromium, profile, log_file):
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
        start_new_session=True,
    )
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail(f"chromium exited with status {proc.returncode}")
        try:
            with open(port_file) as f:
                port = int(f.readline().strip())
            break
        except (OSError, ValueError):
            time.sleep(0.1)
    else:
        raise Fail("chromium did not open its DevTools port within 30 s")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            targets = http_json(f"http://127.0.0.1:{port}/json/list")
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return proc, pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.1)
    raise Fail("chromium has no page target")


def stop_chromium(proc):
    """Stop Chromium and every process of its group (renderers, zygotes), then reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            continue
        break
    proc.wait()


def write_traffic(ports, stop):
    """PUT small values round-robin over `ports`, about 20 per second, until `stop`."""
    i = 0
    while ports and not stop.is_set():
        port = ports[i % len(ports)]
        try:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/data/demo-{i}?ttl=3600", method="PUT",
                data=f"value {i}".encode()), timeout=5).read()
        except OSError:
            pass
        i += 1
        stop.wait(0.05)


ROWS = "Array.from(document.querySelectorAll('#node-rows tr'))"


def run(args, page):
    page.call("Emulation.setDeviceMetricsOverride", width=1280, height=960,
              deviceScaleFactor=1, mobile=False)
    page.call("Page.enable")
    page.call("Page.navigate", url=args.url)
    n = args.nodes

    # 1. n alive nodes, mesh complete.
    page.wait_for(
        f"{ROWS}.filter(r => r.dataset.state === 'alive').length === {n}"
        f" && document.getElementById('summary').dataset.alive === '{n}'"
        " && document.getElementById('mesh-status').dataset.complete === 'true'",
        f"{n} alive nodes and a complete mesh", 20)
    circles = page.eval("document.querySelectorAll('#mesh g.node').length")
    if circles != n:
        raise Fail(f"the mesh picture shows {circles} nodes, expected {n}")
    links = page.eval("document.querySelectorAll('#mesh line.link').length")
    if links != n * (n - 1) // 2:
        raise Fail(f"the mesh picture shows {links} links, expected {n * (n - 1) // 2}")
    log(f"page shows {n} alive nodes, {links} links, mesh complete")
    # "only nodes with a problem" hides every row of a healthy mesh.
    page.eval("document.getElementById('nodes-filter').click(); true")
    page.wait_for(f"{ROWS}.length === 1 && {ROWS}[0].classList.contains('empty')",
                  "the problem filter hides every healthy node", 5)
    page.eval("document.getElementById('nodes-filter').click(); true")
    page.wait_for(f"{ROWS}.length === {n}", "all rows back", 5)

    # 2. The key written through the API is on every node (watched through the form).
    page.eval(f"document.getElementById('kv-key').value = {json.dumps(args.key)};"
              " document.getElementById('kv-watch-btn').click(); true")
    page.wait_for(
        f"document.getElementById('kv-watch').dataset.holders === '{n}'"
        f" && {ROWS}.filter(r => r.lastChild.dataset.hasKey === 'true').length === {n}",
        f"key {args.key!r} shown on all {n} nodes", 10)
    log(f"page shows key {args.key!r} on all {n} nodes")

    # 3. A key written through the page's own form reaches every node; GET reads it back.
    form_key = "from the page <b>&amp; <img src=x>"
    page.eval(
        f"document.getElementById('kv-key').value = {json.dumps(form_key)};"
        " document.getElementById('kv-value').value = 'hello <script>alert(1)</script>';"
        " document.getElementById('kv-put').click(); true")
    page.wait_for("document.getElementById('kv-result').textContent.startsWith('PUT 201')",
                  "the form's PUT answered 201", 10)
    page.wait_for(
        f"document.getElementById('kv-watch').dataset.key === {json.dumps(form_key)}"
        f" && document.getElementById('kv-watch').dataset.holders === '{n}'",
        "the form's key on every node", 10)
    page.eval("document.getElementById('kv-get').click(); true")
    page.wait_for("document.getElementById('kv-result').textContent"
                  ".includes('hello <script>alert(1)</script>')",
                  "GET shows the value as text", 10)
    if page.eval("document.querySelectorAll('b, img, #kv-result script').length") != 0:
        raise Fail("user data was rendered as markup")
    log("form PUT reached every node; GET shows the value as plain text")

    # Some write traffic while the screenshot is taken, so the rates show.
    stop = threading.Event()
    traffic = threading.Thread(target=write_traffic, args=(args.traffic_port or [], stop),
                               daemon=True)
    traffic.start()
    page.eval(f"document.getElementById('kv-key').value = {json.dumps(args.key)};"
              " document.getElementById('kv-value').value = '';"
              " document.getElementById('kv-result').textContent = '';"
              " document.getElementById('kv-watch-btn').click(); true")
    page.wait_for(f"document.getElementById('kv-watch').dataset.key === {json.dumps(args.key)}"
                  f" && document.getElementById('kv-watch').dataset.holders === '{n}'",
                  "watching the API key again", 10)
    time.sleep(2.5)
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    stop.set()
    traffic.join()
    os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
    with open(args.screenshot, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    log(f"screenshot saved to {args.screenshot}")

    # 4. Kill one node; the open page marks it dead.
    if args.kill_pid:
        victim = http_json(f"http://127.0.0.1:{args.kill_port}/health")["node_id"]
        os.kill(args.kill_pid, signal.SIGKILL)
        t0 = time.monotonic()
        log(f"SIGKILLed pid {args.kill_pid} ({victim} on port {args.kill_port})")
        vid = json.dumps(victim)
        page.wait_for(
            f"{ROWS}.some(r => r.dataset.nodeId === {vid} && r.dataset.state === 'dead')"
            f" && Array.from(document.querySelectorAll('#events li'))"
            f".some(li => li.dataset.kind === 'dead' && li.dataset.peer === {vid})"
            f" && document.querySelector('#mesh g.node[data-state=\"dead\"]') !== null",
            f"{victim} marked dead", 15)
        log(f"page marked {victim} dead after {time.monotonic() - t0:.1f} s")
        page.wait_for(f"document.getElementById('summary').dataset.alive === '{n - 1}'",
                      f"{n - 1} alive nodes", 5)
        # The problem filter now shows the dead node alone.
        page.eval("document.getElementById('nodes-filter').click(); true")
        page.wait_for(f"{ROWS}.length === 1 && {ROWS}[0].dataset.nodeId === {vid}",
                      "the problem filter shows the dead node alone", 5)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--screenshot", required=True)
    p.add_argument("--kill-pid", type=int)
    p.add_argument("--kill-port", type=int)
    p.add_argument("--traffic-port", type=int, action="append")
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="repram-browser-") as profile:
        log_path = os.path.join(profile, "chromium.log")
        with open(log_path, "w") as chromium_log:
            proc = None
            page = None
            try:
                proc, ws_url = start_chromium(args.chromium, os.path.join(profile, "profile"),
                                              chromium_log)
                page = Page(ws_url)
                run(args, page)
            except Fail as e:
                log(f"FAIL: {e}")
                if page is not None:
                    try:
                        dump = page.eval("document.body.innerText")
                        print("---- page text ----\n" + str(dump)[:4000], flush=True)
                    except Exception:
                        pass
                return 1
            finally:
                if page is not None:
                    page.close()
                if proc is not None:
                    stop_chromium(proc)
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
