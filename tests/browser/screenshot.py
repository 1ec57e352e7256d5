#!/usr/bin/env python3
"""Screenshot of a running node's dashboard in headless Chromium (a manual tool; CI runs
dashboard_check.py). How docs/dashboard-100.png was made, with a 100-node cluster:

    cargo build --release
    NODE_COUNT=100 MAX_PORTS=200 BASE_PORT=23000 BIND_ADDR=127.0.0.1 \\
        DISCOVERY_DOMAIN=127.0.0.1 target/release/repram-flux &
    curl -X PUT --data hi 'http://127.0.0.1:23000/data/greeting?ttl=600'
    target/browser-venv/bin/python tests/browser/screenshot.py \\
        --url http://127.0.0.1:23000/ --complete --key greeting \\
        --traffic-port 23003 --traffic-port 23040 --out docs/dashboard-100.png

(tests/browser/run.sh prepares target/browser-venv.) Only 127.0.0.1 is contacted.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_check as dc  # noqa: E402


def shoot(args, page):
    page.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
              deviceScaleFactor=1, mobile=False)
    page.call("Page.enable")
    page.call("Page.navigate", url=args.url)
    page.wait_for("document.body !== null && !!document.body.dataset.generated",
                  "the first answer of /cluster", 60)
    if args.complete:
        page.wait_for(
            "document.getElementById('mesh-status').dataset.complete === 'true'"
            " && document.getElementById('summary').dataset.alive"
            " === document.getElementById('summary').dataset.nodes",
            "a complete mesh with every node alive", args.timeout)
    if args.key:
        page.eval(f"document.getElementById('kv-key').value = {json.dumps(args.key)};"
                  " document.getElementById('kv-watch-btn').click(); true")
    stop = threading.Event()
    traffic = threading.Thread(target=dc.write_traffic, args=(args.traffic_port or [], stop),
                               daemon=True)
    traffic.start()
    time.sleep(args.wait)
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    stop.set()
    traffic.join()
    with open(args.out, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    dc.log("page: " + str(page.eval("document.getElementById('summary').textContent")))
    dc.log(f"screenshot saved to {args.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--complete", action="store_true",
                   help="wait until the mesh is complete and every node alive")
    p.add_argument("--timeout", type=float, default=120, help="for --complete, seconds")
    p.add_argument("--key", help="watch this key on the page")
    p.add_argument("--traffic-port", type=int, action="append",
                   help="PUT about 20 keys a second to this port while waiting")
    p.add_argument("--wait", type=float, default=3, help="seconds before the screenshot")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=960)
    p.add_argument("--chromium", default="chromium")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="repram-shot-") as profile:
        with open(os.path.join(profile, "chromium.log"), "w") as chromium_log:
            proc = page = None
            try:
                proc, ws_url = dc.start_chromium(args.chromium, os.path.join(profile, "p"),
                                                 chromium_log)
                page = dc.Page(ws_url)
                shoot(args, page)
            except dc.Fail as e:
                dc.log(f"FAIL: {e}")
                return 1
            finally:
                if page is not None:
                    page.close()
                if proc is not None:
                    dc.stop_chromium(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
