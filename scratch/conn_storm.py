"""Connect/subscribe/disconnect storm on both endpoints (clean close, RST, FIN without close frame);
checks the server's connection gauge returns and RSS. usage: conn_storm.py WS_PORT HTTP_PORT ROUNDS"""
import json, os, socket, sys, time, threading, urllib.request
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rawws import handshake, frame, text, Reader, rst
H = "127.0.0.1"; WS, HP, ROUNDS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pid = open(os.path.join(os.path.dirname(__file__), "server.pid")).read().strip()
def rss(): return [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
def gauge():
    m = urllib.request.urlopen(f"http://{H}:{HP}/metrics").read().decode()
    return [l for l in m.splitlines() if l.startswith(("wsgen_connections ", "wsgen_http_streams "))]
def one(i, errs):
    port, path = (WS, "/") if i % 2 else (HP, "/ws")
    try:
        s, h, rest = handshake(H, port, path if i % 3 else path.rstrip("/") + "/sine?interval=0.01&speed=max")
        if not h.startswith("HTTP/1.1 101"): errs.append(h.split("\r\n")[0]); s.close(); return
        for k in range(i % 5):
            s.sendall(text({"type": "subscribe", "id": f"x{k}", "generator": ["sine", "normal", "random"][k % 3], "params": {"interval": 0.01}, "speed": "max" if k % 2 else 1}))
        time.sleep(0.01 * (i % 7))
        mode = i % 3
        if mode == 0: rst(s)
        elif mode == 1: s.sendall(frame(8, b"\x03\xe8")); s.close()
        else: s.shutdown(socket.SHUT_WR); s.close()
    except Exception as e: errs.append(repr(e)[:80])
print("before: rss kB", rss(), gauge(), flush=True)
for r in range(ROUNDS):
    errs = []; t = time.monotonic()
    th = [threading.Thread(target=one, args=(i, errs)) for i in range(200)]; [x.start() for x in th]; [x.join() for x in th]
    print(f"round {r}: 200 conns in {time.monotonic()-t:.2f}s errors {len(errs)} {errs[:3]}", flush=True)
time.sleep(3)
print("after: rss kB", rss(), gauge(), flush=True)
