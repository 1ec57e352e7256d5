#!/usr/bin/env python3
"""Drive headless Chromium over the DevTools protocol against the Fade board of a
running cluster (run by tests/browser/fade.sh).

Posts a short-lived message containing markup on the board of one node, sees it as
text on the board of another node with a countdown that fades it, opens it by key,
saves a screenshot, then sees it disappear after its TTL while a longer-lived message
stays. Exits non-zero with a message on the first failed check.

Only 127.0.0.1 is contacted. Needs the `websocket-client` package.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_check as dc  # noqa: E402

SHORT_TTL = 10
SHORT_TEXT = 'This one fades in 10 seconds. <script>alert("not code")</script> <b>not bold</b>'
ITEM = "document.querySelector('#board li[data-key=' + JSON.stringify({key}) + ']')"


def api_put(base, path, text, ttl):
    req = urllib.request.Request(f"{base}/{path}?ttl={ttl}", method="PUT",
                                 data=text.encode())
    with urllib.request.urlopen(req, timeout=5) as r:
        if r.status not in (201, 202):
            raise dc.Fail(f"PUT {path} answered {r.status}")


def origin(url):
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def item(key):
    return ITEM.format(key=json.dumps(key))


def run(args, page):
    page.call("Emulation.setDeviceMetricsOverride", width=1200, height=430,
              deviceScaleFactor=1, mobile=False)
    page.call("Page.enable")
    post, view = origin(args.post_url), origin(args.view_url)
    post_node = dc.http_json(f"{post}/health")["node_id"]
    view_node = dc.http_json(f"{view}/health")["node_id"]
    if post_node == view_node:
        raise dc.Fail("the two URLs reach the same node")

    # Messages from other clients: plain text, and the seed-era client's JSON text.
    now = int(time.time() * 1000)
    api_put(view, f"data/fade-{now - 2}-api", "Nothing posted here is ever written to disk.", 3600)
    api_put(post, f"cluster/put/fade-{now - 1}-seed",
            json.dumps({"message": "Posted through the seed-era route, read as JSON text."}), 300)

    # 1. Post on the first node's board, with the 10 s preset.
    page.call("Page.navigate", url=args.post_url)
    # Page.navigate returns before the new document exists: every check right after it
    # must hold on a half-loaded page too (optional chaining).
    page.wait_for("document.querySelector('#ttl option[value=\"10\"]') !== null",
                  "the 10 s TTL preset (REPRAM_MIN_TTL=1)", 20)
    page.wait_for(f"document.getElementById('node')?.textContent === {json.dumps(post_node)}",
                  f"the board names {post_node}", 10)
    page.eval(f"document.getElementById('msg').value = {json.dumps(SHORT_TEXT)};"
              f" document.getElementById('ttl').value = '{SHORT_TTL}';"
              " document.getElementById('post').click(); true")
    key = page.wait_for("document.getElementById('post-status').classList.contains('ok')"
                        " && document.getElementById('post-status').dataset.key",
                        "the post answered 201", 10)
    t_posted = time.monotonic()
    page.wait_for(f"{item(key)}?.querySelector('.text')?.textContent"
                  f" === {json.dumps(SHORT_TEXT)}", "the message on the posting board", 10)
    dc.log(f"posted {key!r} on {post_node}: shown on its board")

    # 2. The board of another node shows it, as text, counting down.
    page.call("Page.navigate", url=args.view_url)
    page.wait_for(f"document.getElementById('node')?.textContent === {json.dumps(view_node)}",
                  f"the board at {args.view_url} names {view_node}", 10)
    page.wait_for(f"{item(key)}?.querySelector('.text')?.textContent"
                  f" === {json.dumps(SHORT_TEXT)}", f"the message on {view_node}'s board", 10)
    if page.eval("document.querySelectorAll('#board script, #board b').length") != 0:
        raise dc.Fail("the message was rendered as markup")
    shown = page.eval("Array.from(document.querySelectorAll('#board li .text'))"
                      ".map(e => e.textContent)")
    for want in ["Nothing posted here is ever written to disk.",
                 "Posted through the seed-era route, read as JSON text."]:
        if want not in shown:
            raise dc.Fail(f"{want!r} is not on the board: {shown}")
    left = page.eval(f"{item(key)}.querySelector('.left').textContent")
    dc.log(f"{view_node}'s board shows it as text ({left}), with the other messages")

    # 3. Open it by key.
    page.eval(f"document.getElementById('open-key').value = {json.dumps(key)};"
              " document.getElementById('open').click(); true")
    page.wait_for("document.querySelector('#opened .text') !== null &&"
                  f" document.querySelector('#opened .text').textContent === {json.dumps(SHORT_TEXT)}",
                  "the message opened by key", 10)
    dc.log("opened by key: " + str(page.eval("document.getElementById('opened').firstChild.textContent")))

    # 4. It fades: screenshot while it does.
    page.wait_for(f"{item(key)} !== null && parseFloat({item(key)}.style.opacity) < 0.7",
                  "the message fading", SHORT_TTL + 5)
    page.eval("document.getElementById('open-key').value = '';"
              " document.getElementById('opened').textContent = ''; true")
    time.sleep(0.5)
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
    with open(args.screenshot, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    dc.log(f"screenshot saved to {args.screenshot}")

    # 5. Gone after its TTL, from the board and from every node; the others stay.
    page.wait_for(f"{item(key)} === null", "the message gone from the board", SHORT_TTL + 10)
    dc.log(f"gone from {view_node}'s board {time.monotonic() - t_posted:.1f} s after posting")
    for base in (post, view):
        if key in dc.http_json(f"{base}/scan")["keys"]:
            raise dc.Fail(f"{key} still in {base}/scan")
    time.sleep(2)
    if page.eval(f"{item(key)} !== null"):
        raise dc.Fail("the faded message came back")
    if page.eval("document.querySelectorAll('#board li').length") != 2:
        raise dc.Fail("the longer-lived messages left the board too")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--post-url", required=True)
    p.add_argument("--view-url", required=True)
    p.add_argument("--screenshot", required=True)
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="repram-fade-browser-") as profile:
        with open(os.path.join(profile, "chromium.log"), "w") as chromium_log:
            proc = page = None
            try:
                proc, ws_url = dc.start_chromium(args.chromium, os.path.join(profile, "profile"),
                                                 chromium_log)
                page = dc.Page(ws_url)
                run(args, page)
            except dc.Fail as e:
                dc.log(f"FAIL: {e}")
                if page is not None:
                    try:
                        print("---- page text ----\n" + str(page.eval("document.body.innerText"))[:4000],
                              flush=True)
                    except Exception:
                        pass
                return 1
            finally:
                if page is not None:
                    page.close()
                if proc is not None:
                    dc.stop_chromium(proc)
    dc.log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
