"""Well-behaved client: sine at 100 Hz; records lag and arrival gaps, checks values.

usage: monitor.py WS_URL SECONDS OUTFILE
Writes a JSON summary (max gap, max lag, worst gap timestamps, value check).
"""
import asyncio, json, sys, time
import numpy as np
import websockets
import wsgen

async def main(url, secs, out):
    gaps = []; lags = []; vals = {}; worst = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "m", "generator": "sine",
                                  "params": {"interval": 0.01, "frequency": 1}, "seed": 1}))
        end = time.monotonic() + secs; last = None
        while time.monotonic() < end:
            m = json.loads(await ws.recv()); now = time.monotonic()
            if m["type"] != "data":
                continue
            if last is not None:
                g = now - last; gaps.append(g)
                if g > 0.05: worst.append((round(time.time(), 3), round(g, 4)))
            last = now
            lags.append(m.get("lag", 0.0))
            for i, v in enumerate(m["values"]):
                vals[m["seq"] + i] = v
    seqs = sorted(vals); n = seqs[-1] + 1
    ref = wsgen.create("sine", {"interval": 0.01, "frequency": 1}, seed=1).take(n).values
    contiguous = seqs == list(range(n))
    exact = all(vals[s] == ref[s] for s in seqs)
    res = {"samples": n, "contiguous": contiguous, "exact": exact,
           "max_gap_ms": round(max(gaps) * 1000, 1), "p99_gap_ms": round(float(np.percentile(gaps, 99)) * 1000, 1),
           "max_lag_ms": round(max(lags) * 1000, 1), "gaps_over_50ms": worst[:20], "n_over_50": len(worst)}
    json.dump(res, open(out, "w")); print(res)

asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3]))
