"""Clients for tests/public_abuse.rs, written as abusive or careless clients are.

  burst SRC PORTS XFF N      N GETs of /health from source address SRC, spread over the
                             comma-separated PORTS (one keep-alive connection each);
                             XFF is sent as X-Forwarded-For, "{i}" replaced by the request
                             number ("-" for none). Prints {"statuses": [...], "elapsed": s}.
  whole_body PORT SIZE TRIES PUT a SIZE-byte body with Python's http.client (which sends
                             the whole body before it reads) TRIES times. Prints
                             {"statuses": [...]} with "error:..." for tries that got no answer.
"""

import http.client
import json
import sys
import time


def burst(src, ports, xff, n):
    conns = {}
    statuses = []
    started = time.monotonic()
    for i in range(n):
        port = ports[i % len(ports)]
        headers = {}
        if xff != "-":
            headers["X-Forwarded-For"] = xff.replace("{i}", str(i))
        for attempt in range(2):
            conn = conns.get(port)
            if conn is None:
                conn = http.client.HTTPConnection(
                    src, port, timeout=10, source_address=(src, 0)
                )
                conns[port] = conn
            try:
                conn.request("GET", "/health", headers=headers)
                resp = conn.getresponse()
                resp.read()
                statuses.append(resp.status)
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conns.pop(port, None)
                if attempt == 1:
                    statuses.append("error:" + type(e).__name__)
    elapsed = time.monotonic() - started
    print(json.dumps({"statuses": statuses, "elapsed": elapsed}))


def whole_body(port, size, tries):
    body = b"x" * size
    statuses = []
    for i in range(tries):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            conn.request("PUT", "/data/whole-body-%d?ttl=60" % i, body=body)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        except (OSError, http.client.HTTPException) as e:
            statuses.append("error:" + type(e).__name__)
        finally:
            conn.close()
    print(json.dumps({"statuses": statuses}))


def main():
    cmd = sys.argv[1]
    if cmd == "burst":
        src, ports, xff, n = sys.argv[2:6]
        burst(src, [int(p) for p in ports.split(",")], xff, int(n))
    elif cmd == "whole_body":
        port, size, tries = sys.argv[2:5]
        whole_body(int(port), int(size), int(tries))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
