"""Longest interpreter-lock hold per phase of POST /score's work (a 1 ms ticker thread)."""
import json, sys, time, threading, collections
from wsgen.scoring.offline import parse, score_definition
ndet = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
body = json.dumps({"generator": "random", "params": {"anomaly_probability": 0.3}, "seed": 1, "first": 0,
                   "last": 9_999_999, "detections": list(range(0, 10 * ndet, 10))}).encode()
gaps = []; stop = False; phase = ["start"]
def tick():
    last = time.perf_counter()
    while not stop:
        time.sleep(0.001); now = time.perf_counter(); gaps.append((now - last, phase[0])); last = now
t = threading.Thread(target=tick); t.start()
t0 = time.perf_counter(); phase[0] = "json.loads"; d = json.loads(body.decode())
phase[0] = "parse"; defn = parse(d)
phase[0] = "score"; fig = score_definition(defn, None, None)
phase[0] = "render"; from fastapi.responses import JSONResponse; JSONResponse(fig)
stop = True; t.join()
worst = collections.defaultdict(float)
for g, p in gaps: worst[p] = max(worst[p], g)
print("total %.2f s; longest hold per phase (ms):" % (time.perf_counter() - t0), {k: round(v * 1000, 1) for k, v in worst.items()})
