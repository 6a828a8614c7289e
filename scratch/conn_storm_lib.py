"""One round of the connection storm (see conn_storm.py), importable."""
import socket, threading, time
from rawws import handshake, frame, text, rst
H = "127.0.0.1"
def one(i, ws, hp, errs):
    port, path = (ws, "/") if i % 2 else (hp, "/ws")
    try:
        s, h, rest = handshake(H, port, path if i % 3 else path.rstrip("/") + "/sine?interval=0.01&speed=max")
        for k in range(i % 5):
            s.sendall(text({"type": "subscribe", "id": f"x{k}", "generator": ["sine", "normal", "random"][k % 3], "params": {"interval": 0.01}, "speed": "max" if k % 2 else 1}))
        time.sleep(0.01 * (i % 7))
        mode = i % 3
        if mode == 0: rst(s)
        elif mode == 1: s.sendall(frame(8, b"\x03\xe8")); s.close()
        else: s.shutdown(socket.SHUT_WR); s.close()
    except Exception as e: errs.append(repr(e)[:80])
def storm(ws, hp, n):
    errs = []
    th = [threading.Thread(target=one, args=(i, ws, hp, errs)) for i in range(n)]; [x.start() for x in th]; [x.join() for x in th]
    return errs
