"""A slow reader (small SO_RCVBUF, reads in bursts with pauses) on a 100 Hz stream with
backpressure drop, max_lag 0.1: seq accounting (seq = previous seq + len + skipped), lag bound,
exact values. usage: slow_drop.py WS_PORT HTTP_PORT"""
import json, sys, time
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rawws import handshake, text, Reader, frame
import wsgen
WS, HP = int(sys.argv[1]), int(sys.argv[2])
ref = wsgen.create("sine", {"interval": 0.01}, seed=4).take(2000).values.tolist()
for port, path in ((WS, "/"), (HP, "/ws")):
    s, h, rest = handshake("127.0.0.1", port, path, rcvbuf=4096); r = Reader(s, rest)
    s.sendall(text({"type": "subscribe", "id": "d", "generator": "sine", "params": {"interval": 0.01}, "seed": 4,
                    "backpressure": "drop", "max_lag": 0.1}))
    nxt = None; skipped = 0; maxlag = 0; bad = 0; n = 0; t0 = time.monotonic(); stalls = 0
    while time.monotonic() - t0 < 6:
        op, p = r.next()
        if op == 9: s.sendall(frame(10, p)); continue
        if op == 8: print("closed", p[:2]); break
        m = json.loads(p)
        if m["type"] != "data": continue
        if nxt is not None and m["seq"] != nxt + m.get("skipped", 0): bad += 1
        skipped += m.get("skipped", 0); maxlag = max(maxlag, m.get("lag", 0))
        bad += sum(v != ref[m["seq"] + i] for i, v in enumerate(m["values"]))
        nxt = m["seq"] + len(m["values"]); n += len(m["values"])
        if int((time.monotonic() - t0) * 2) % 3 == 0 and stalls < 12:   # pause reading now and then
            time.sleep(0.4); stalls += 1
    print(f"{port}{path}: received {n} skipped {skipped} accounting/value errors {bad} max lag {maxlag:.3f} s", flush=True)
    s.close()
