"""Peer-behaviour attacks: half-open, slowloris, non-reading peers, dead peers.
usage: attack_peers.py WS_PORT HTTP_PORT   (server started with scratch/start.sh: ping 2/2 s, write-timeout 4 s)"""
import json, socket, sys, time, threading
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rawws import handshake, frame, text, Reader, rst

H = "127.0.0.1"; WS, HP = int(sys.argv[1]), int(sys.argv[2])

def closed_after(s, limit):
    """seconds until the server closes s (reading and discarding), or None."""
    t = time.monotonic(); s.settimeout(0.5)
    while time.monotonic() - t < limit:
        try:
            c = s.recv(65536)
            if not c: return round(time.monotonic() - t, 2)
        except socket.timeout: pass
        except ConnectionResetError: return round(time.monotonic() - t, 2)
    return None

# a) half-open: 100 bare TCP connections to each port, nothing sent
for port in (WS, HP):
    ss = [socket.create_connection((H, port)) for _ in range(100)]
    t0 = time.monotonic()
    # meanwhile a normal client still gets through
    s, h, rest = handshake(H, port, "/" if port == WS else "/ws"); ok = h.split("\r\n")[0]; s.close()
    res = [None] * len(ss)
    def w(i): res[i] = closed_after(ss[i], 15)
    th = [threading.Thread(target=w, args=(i,)) for i in range(len(ss))]; [x.start() for x in th]; [x.join() for x in th]
    print(f"half-open x100 port {port}: normal handshake meanwhile: {ok}; closed after s: min {min(r or 99 for r in res)} max {max(r or 99 for r in res)} never: {sum(r is None for r in res)}", flush=True)
    [x.close() for x in ss]

# b) slowloris: handshake one byte every 0.3 s
for port, path in ((WS, "/"), (HP, "/ws")):
    s = socket.create_connection((H, port)); s.settimeout(0.3)
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Pad: {'a'*200}\r\n\r\n".encode()
    t = time.monotonic(); i = 0; outcome = None
    while i < len(req) and time.monotonic() - t < 15:
        try:
            s.sendall(req[i:i+1]); i += 1
            time.sleep(0.3)
            try:
                c = s.recv(100)
                if not c: outcome = "closed"; break
                outcome = c[:40]; break
            except socket.timeout: pass
        except (BrokenPipeError, ConnectionResetError) as e: outcome = type(e).__name__; break
    print(f"slowloris {port}{path}: {outcome} after {round(time.monotonic()-t,1)} s, {i} bytes sent", flush=True)
    s.close()

# c) peers that stop reading (SO_RCVBUF 4096), each backpressure mode
for port, path in ((WS, "/"), (HP, "/ws")):
    for name, extra in [("block max", {"speed": "max"}), ("block paced 100Hz", {}),
                        ("drop max_lag .1 paced", {"backpressure": "drop", "max_lag": 0.1}),
                        ("drop max", {"backpressure": "drop", "max_lag": 0.1, "speed": "max"})]:
        s, h, rest = handshake(H, port, path, rcvbuf=4096); r = Reader(s, rest)
        m = {"type": "subscribe", "id": "a", "generator": "sine", "params": {"interval": 0.01}, "seed": 1}; m.update(extra)
        s.sendall(text(m)); r.until(lambda m: m["type"] == "subscribed")
        time.sleep(6)   # stop reading
        # now see whether the server gave up on us: drain
        got = closed_after(s, 0.1 if "paced" in name else 3)
        # drain all: how many bytes remain and what's the end
        s.settimeout(1); tot = 0; end = None
        try:
            while True:
                c = s.recv(1 << 20)
                if not c: end = "eof"; break
                tot += len(c)
        except socket.timeout: end = "still open"
        except ConnectionResetError: end = "reset"
        print(f"non-reader {port}{path} {name}: after 6 s idle -> {end}, {tot} bytes drained", flush=True)
        s.close()

# d) dead peer: subscribed to 1 Hz stream, never answers pings (never reads)
for port, path in ((WS, "/"), (HP, "/ws")):
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(text({"type": "subscribe", "id": "a", "generator": "sine", "params": {"interval": 1}}))
    t = time.monotonic(); time.sleep(7)
    s.settimeout(1); data = b""
    try:
        while True:
            c = s.recv(65536)
            if not c: break
            data += c
    except (socket.timeout, ConnectionResetError): pass
    r = Reader(s, rest + data); ops = []
    try:
        while True:
            op, p = r.next(); ops.append((op, p[:2] if op == 8 else b""))
    except Exception: pass
    print(f"dead peer {port}{path}: frames {[o for o,_ in ops]} close {[p for o,p in ops if o==8]}", flush=True)
    s.close()
