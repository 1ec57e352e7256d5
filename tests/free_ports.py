"""Print a base port whose WIDTH ports (argument, default 1) are all free on 127.0.0.1
right now, in 20000-32767: below Linux's ephemeral range, so no client socket takes one
of them meanwhile (the same rule as tests/common's free_range)."""
import random
import socket
import sys

width = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for _ in range(200):
    base = random.randrange(20000, 32768 - width)
    socks = []
    try:
        for p in range(base, base + width):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
else:
    raise SystemExit(f"no free range of {width} ports")
