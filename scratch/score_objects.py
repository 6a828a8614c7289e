"""POST /score with a 16 MiB body of {seq, score} detections (under MAX_BODY): json.loads and the
Definition validation hold the interpreter lock in single C calls for 0.2-0.35 s each, stalling the loop.
usage: score_objects.py HTTP_PORT"""
import json, sys, time, http.client
n = 580_000
body = json.dumps({"generator": "random", "params": {"anomaly_probability": 0.3}, "seed": 1, "first": 0, "last": 9_999_999,
                   "detections": [{"seq": i, "score": 0.5} for i in range(0, 10 * n, 10)]}, separators=(",", ":")).encode()
assert len(body) < 16 * 1024 * 1024
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120); t = time.monotonic()
c.request("POST", "/score", body, {"Content-Type": "application/json"}); r = c.getresponse(); d = r.read()
print(len(body), "bytes ->", r.status, round(time.monotonic() - t, 2), "s", d[:100])
