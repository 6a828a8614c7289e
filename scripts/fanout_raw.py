"""Server CPU per data message under fan-out, with clients that cost almost nothing.

``wsgen bench fanout`` reads every message in Python (about 50,000 separate
messages a second per process), so on a small machine its own load
generator falls behind first. This script measures the server alone: it
starts ``wsgen serve`` (``--workers`` as given), opens raw WebSocket
connections (the handshake and the subscribe frames by hand), subscribes
``N`` sine streams at 100 samples/s and then only drains the sockets
(``recv_into``, no parsing). After 2 s of warm-up it reads the server's
CPU seconds (``/proc``, workers included) and its own count of data
messages (``/metrics``) over the window and prints CPU per data message,
and the kernel's part of it (system time: the ``send`` calls and the
loopback delivery to the clients).

    python scripts/fanout_raw.py [--subscriptions 1000] [--connections 20] [--seconds 10] [--batch] [--workers 1]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame (RFC 6455: clients mask)."""
    mask, n = os.urandom(4), len(payload)
    header = b"\x81" + (bytes((0x80 | n,)) if n < 126 else b"\xfe" + n.to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_connection(port: int, subscriptions: int, interval: float, batch: bool, k: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head.splitlines()[0]!r}")
    for i in range(subscriptions):
        s.sendall(masked_text_frame(json.dumps({"type": "subscribe", "id": f"c{k}s{i}", "generator": "sine",
                                                "params": {"interval": interval}, "batch": batch}).encode()))
    s.setblocking(False)
    return s


def server_cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the server and its workers."""
    pids, i, user, system = [pid], 0, 0, 0
    while i < len(pids):
        try:
            with open(f"/proc/{pids[i]}/task/{pids[i]}/children") as f:
                pids += [int(p) for p in f.read().split()]
            with open(f"/proc/{pids[i]}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
        i += 1
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def server_messages(http_url: str) -> tuple[float, float]:
    """(data messages, samples) the server has sent over WebSocket."""
    text = urllib.request.urlopen(http_url + "/metrics", timeout=10).read().decode()
    messages = sum(float(v) for v in re.findall(r'^wsgen_messages_sent_total\{path="ws"\} (\S+)$', text, re.M))
    samples = sum(float(v) for v in re.findall(r'^wsgen_samples_sent_total\{generator="sine",path="ws"\} (\S+)$',
                                               text, re.M))
    return messages, samples


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscriptions", type=int, default=1000)
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch", action="store_true")
    p.add_argument("--workers", default="1")
    a = p.parse_args()
    http_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wsgen.cli", "serve", "--port", "0", "--http-port", str(http_port),
                             "--log-level", "warning", "--workers", a.workers], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r"ws://[\d.]+:(\d+)", proc.stdout.readline())[1])
        http_url = f"http://127.0.0.1:{http_port}"
        per = [a.subscriptions // a.connections + (k < a.subscriptions % a.connections) for k in range(a.connections)]
        socks = [open_connection(port, n, a.interval, a.batch, k) for k, n in enumerate(per)]
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        buf = bytearray(1 << 20)

        def drain(until: float) -> None:
            while time.monotonic() < until:
                for key, _ in sel.select(0.05):
                    try:
                        key.fileobj.recv_into(buf)
                    except BlockingIOError:
                        pass

        drain(time.monotonic() + 2.0)
        cpu0, (m0, s0), t0 = server_cpu_seconds(proc.pid), server_messages(http_url), time.monotonic()
        drain(t0 + a.seconds)
        cpu1, (m1, s1), t1 = server_cpu_seconds(proc.pid), server_messages(http_url), time.monotonic()
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(30)
    elapsed, messages, samples = t1 - t0, m1 - m0, s1 - s0
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    print(json.dumps({"subscriptions": a.subscriptions, "connections": a.connections, "batch": a.batch,
                      "workers": a.workers, "seconds": round(elapsed, 2),
                      "messages_per_s": round(messages / elapsed), "samples_per_s": round(samples / elapsed),
                      "samples_due_per_s": round(a.subscriptions / a.interval),
                      "server_cpu_pct": round(100 * cpu / elapsed, 1),
                      "server_cpu_us_per_msg": round(1e6 * cpu / messages, 2) if messages else None,
                      "of_which_kernel_us": round(1e6 * system / messages, 2) if messages else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
