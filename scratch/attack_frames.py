"""Frame-level attacks on both endpoints. usage: attack_frames.py WS_PORT HTTP_PORT"""
import json, socket, sys, time, zlib
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rawws import handshake, frame, text, Reader, rst

H = "127.0.0.1"
WS, HP = int(sys.argv[1]), int(sys.argv[2])
ENDS = [(WS, "/"), (HP, "/ws")]

def sub(r, s, id="a", **kw):
    m = {"type": "subscribe", "id": id, "generator": "sine", "params": {"interval": 0.01}, "seed": 1}; m.update(kw)
    s.sendall(text(m)); return r.until(lambda m: m.get("id") == id and m["type"] in ("subscribed", "error"))

def alive(port, path):
    s, head, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(text({"type": "subscribe", "id": "z", "generator": "normal", "params": {"interval": 0}, "count": 3, "seed": 2}))
    m = r.until(lambda m: m["type"] == "ended"); s.close(); return m["type"] == "ended"

for port, path in ENDS:
    tag = f"{port}{path}"
    def report(name, got):
        print(f"[{tag}] {name}: {got}", flush=True)
    # 1 ping fragmented (FIN=0 control) -> 1002
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(9, b"x", fin=False)); report("fragmented ping", r.close_code())
    # 2 interleaved ping inside fragmented text: valid
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    msg = json.dumps({"type": "subscribe", "id": "f", "generator": "sine", "params": {"interval": 0.01}, "count": 5, "seed": 1}).encode()
    s.sendall(frame(1, msg[:10], fin=False) + frame(9, b"p1") + frame(0, msg[10:20], fin=False) + frame(10, b"unsolicited") + frame(0, msg[20:]))
    got = []
    while True:
        op, p = r.next()
        if op == 10: got.append(("pong", p))
        elif op == 1:
            m = json.loads(p); got.append(m["type"])
            if m["type"] in ("ended", "error"): break
    report("interleaved ping in fragments", got); s.close()
    # 3 invalid utf-8 text -> 1007
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(1, b'{"type":"list","x":"\xff\xfe"}')); report("invalid utf8 text", r.close_code())
    # 3b invalid utf-8 split over fragments (truncated multibyte at end)
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(1, b'{"type":"li\xe2\x82', fin=False) + frame(0, b'st"}')); report("utf8 split bad", r.close_code())
    # 3c invalid utf8 in binary frame (server accepts UTF-8 JSON in binary)
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(2, b'{"type":"list\xff"}'))
    try:
        m = r.until(lambda m: True); report("invalid utf8 binary", (m.get("code"), m.get("message", "")[:150]))
        s.sendall(text({"type": "list"})); m = r.until(lambda m: True); report(" then list", m["type"])
    except Exception as e: report("invalid utf8 binary", repr(e))
    s.close()
    # 4 oversized frame declared 2^62 length -> 1009
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(1, b"", length=1 << 62)[:14]); report("2^62 length header", r.close_code())
    # 4b oversized via fragments: 40 x 2KiB... 70 KiB total
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    for i in range(35):
        s.sendall(frame(1 if i == 0 else 0, b" " * 2048, fin=False))
    report("fragments totalling 70KiB", r.close_code())
    # 4c control frame > 125 bytes
    s, h, rest = handshake(H, port, path); r = Reader(s, rest)
    s.sendall(frame(9, b"x" * 200)); report("ping 200 bytes", r.close_code())
    # 4d reserved bits without extension, unknown opcode, unmasked client frame
    for name, fr in [("rsv1 no ext", frame(1, b'{"type":"list"}', rsv=4)), ("opcode 3", frame(3, b"x")),
                     ("unmasked", frame(1, b'{"type":"list"}', mask=False)), ("continuation first", frame(0, b"x"))]:
        s, h, rest = handshake(H, port, path); r = Reader(s, rest)
        s.sendall(fr); report(name, r.close_code())
    # 5 permessage-deflate offer
    s, h, rest = handshake(H, port, path, extra="Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")
    ext = [l for l in h.split("\r\n") if l.lower().startswith("sec-websocket-extensions")]
    report("pmd offer -> negotiated", ext)
    if ext:
        r = Reader(s, rest)
        # decompression bomb: 10 MB of spaces compressed to ~10 KB
        c = zlib.compressobj(9, zlib.DEFLATED, -15); bomb = c.compress(b" " * 10_000_000) + c.flush(zlib.Z_SYNC_FLUSH)
        bomb = bomb[:-4]
        t = time.monotonic(); s.sendall(frame(1, bomb, rsv=4)); report(f"pmd bomb {len(bomb)}B", (r.close_code(), round(time.monotonic() - t, 3)))
    s.close()
    # 6 RST mid-frame (subscribed fast stream, then half a frame and RST)
    for i in range(20):
        s, h, rest = handshake(H, port, path); r = Reader(s, rest)
        sub(r, s, speed="max")
        s.sendall(frame(1, b'{"type":"list"}' * 5)[:9]); rst(s)
    report("20x RST mid-frame on speed=max", "done")
    # 7 close frame with invalid code / bad payload
    for name, fr in [("close code 999", frame(8, b"\x03\xe7")), ("close 1-byte", frame(8, b"\x03")),
                     ("close bad utf8 reason", frame(8, b"\x03\xe8\xff"))]:
        s, h, rest = handshake(H, port, path); r = Reader(s, rest)
        s.sendall(fr); report(name, r.close_code())
    report("alive after all", alive(port, path))
